"""The compiled image kernels (graphc/codegen/special.py) on the seed ConvNet's shapes.

Batch 64 of 1x28x28, float32: conv 8@3x3 -> ReLU -> maxpool 2 -> conv 16@3x3 -> ReLU -> maxpool 2
-> dense 400->10, cross-entropy. For every image op of that network's training step (and the
loss's gather/scatter_add), medians of repeated calls:

    NumPy reference (REGISTRY[op].impl) | special.KERNELS[op] | the same on one thread | torch

torch, when importable (never a dependency), runs the same op eagerly on its CPU build. Its
max-pool backward is handed the argmax indices saved by its forward; ours recomputes them from x.

With --im2col, the alternative the kernels were chosen against: im2col (a compiled gather into
(N, C*KH*KW, OH*OW) columns) + BLAS matmul, col2im for the input gradient.

Then whole training steps (forward, backward, SGD update):
  * graphc with its image ops sent back to their NumPy references,
  * graphc calling special.KERNELS (how the driver runs them),
  * torch eager.
This script switches between the first two by replacing the driver's entry points for these ops
(`call` and `impl` of graphc.codegen.runtime, which generated modules import when loaded) before
anything is compiled.

Usage: python benchmarks/conv_bench.py [--repeat N] [--no-torch] [--no-step] [--im2col]
                                      [--torch-threads N]
For single-thread comparisons: OPENBLAS_NUM_THREADS=1 GRAPHC_THREADS=1 python ... --im2col
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from graphc.codegen import runtime, special  # noqa: E402
from graphc.ops import REGISTRY  # noqa: E402

# The driver's entry points for non-fused ops, switchable between the NumPy references and the
# compiled kernels. They must be replaced before any graph is compiled: generated modules import
# them when loaded.
USE_SPECIAL = True


def _switching_call(name: str, attrs: dict, *args):
    if USE_SPECIAL and name in special.KERNELS:
        return special.KERNELS[name](*args, **attrs)
    return REGISTRY[name].impl(*args, **attrs)


def _switching_impl(op: str, attrs: dict, *args):
    return _switching_call(op, attrs, *args)


runtime.impl = _switching_impl
runtime.call = _switching_call  # the driver calls dedicated kernels through call

import graphc  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import CONV_SHAPES as SHAPES  # noqa: E402
from run import conv_step, median_ms  # noqa: E402


def median_us(fn: Callable[[], object], repeat: int, warmup: int = 3) -> float:
    return median_ms(fn, repeat, warmup) * 1e3


def try_torch():
    try:
        import torch

        return torch
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------
# the ops


def op_cases(rng) -> list[tuple[str, str, tuple, dict]]:
    f32 = np.float32
    x = rng.random((64, 1, 28, 28), dtype=f32)
    w1 = (rng.standard_normal((8, 1, 3, 3)) * 0.3).astype(f32)
    h1 = np.maximum(rng.standard_normal((64, 8, 26, 26)), 0).astype(f32)  # after ReLU: ties
    p1 = rng.standard_normal((64, 8, 13, 13)).astype(f32)
    w2 = (rng.standard_normal((16, 8, 3, 3)) * 0.1).astype(f32)
    h2 = np.maximum(rng.standard_normal((64, 16, 11, 11)), 0).astype(f32)
    p2 = rng.standard_normal((64, 16, 5, 5)).astype(f32)
    logp = rng.standard_normal((64, 10)).astype(f32)
    rows, labels = np.arange(64), rng.integers(0, 10, 64)
    g64 = rng.standard_normal(64).astype(f32)
    s = {"stride": (1, 1), "padding": (0, 0)}
    pk = {"kernel": (2, 2), "stride": (2, 2)}
    return [
        ("conv1 forward", "conv2d", (x, w1), s),
        ("conv1 weight grad", "conv2d_weight_grad", (x, h1), {"kernel_hw": (3, 3), **s}),
        ("conv1 input grad *", "conv2d_input_grad", (h1, w1), {"in_hw": (28, 28), **s}),
        ("pool1 forward", "max_pool2d", (h1,), pk),
        ("pool1 grad", "max_pool2d_grad", (h1, p1), pk),
        ("conv2 forward", "conv2d", (p1, w2), s),
        ("conv2 weight grad", "conv2d_weight_grad", (p1, h2), {"kernel_hw": (3, 3), **s}),
        ("conv2 input grad", "conv2d_input_grad", (h2, w2), {"in_hw": (13, 13), **s}),
        ("pool2 forward", "max_pool2d", (h2,), pk),
        ("pool2 grad", "max_pool2d_grad", (h2, p2), pk),
        ("loss gather", "gather", (logp, rows, labels), {"axis": 0}),
        ("loss scatter_add", "scatter_add", (g64, rows, labels), {"axis": 0, "shape": (64, 10)}),
    ]


def torch_op(torch, op: str, args: tuple, attrs: dict) -> Callable[[], object]:
    F = torch.nn.functional
    t = [torch.from_numpy(a) for a in args]
    if op == "conv2d":
        return lambda: F.conv2d(t[0], t[1])
    if op in ("conv2d_input_grad", "conv2d_weight_grad"):
        if op == "conv2d_input_grad":
            g, w = t
            x = torch.zeros((g.shape[0], w.shape[1]) + tuple(attrs["in_hw"]))
            mask, k = [True, False, False], 0
        else:
            x, g = t
            w = torch.zeros((g.shape[1], x.shape[1]) + tuple(attrs["kernel_hw"]))
            mask, k = [False, True, False], 1
        return lambda: torch.ops.aten.convolution_backward(
            g, x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask
        )[k]
    if op == "max_pool2d":
        return lambda: F.max_pool2d(t[0], 2, 2)
    if op == "max_pool2d_grad":
        x, g = t
        _, idx = F.max_pool2d(x, 2, 2, return_indices=True)
        return lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            g, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx
        )
    if op == "gather":
        return lambda: t[0][t[1], t[2]]
    if op == "scatter_add":
        u, r, c = t
        return lambda: torch.zeros(64, 10).index_put_((r, c), u, accumulate=True)
    raise KeyError(op)


def bench_ops(repeat: int, torch) -> None:
    rng = np.random.default_rng(0)
    print(f"\nper op, float32, median of {repeat} calls, µs ({runtime.N_THREADS} threads)")
    head = f"{'op':<20} {'NumPy ref':>10} {'graphc':>9} {'1 thread':>9} {'speedup':>8}"
    head += f" {'torch':>8}" if torch is not None else ""
    print(head)
    tot = {"ref": 0.0, "ours": 0.0, "one": 0.0, "torch": 0.0}
    for name, op, args, attrs in op_cases(rng):
        ref = REGISTRY[op].impl
        fast = special.KERNELS[op]
        np.testing.assert_allclose(fast(*args, **attrs), ref(*args, **attrs), rtol=1e-4, atol=1e-3)
        t_ref = median_us(lambda: ref(*args, **attrs), max(5, repeat // 10))
        t_ours = median_us(lambda: fast(*args, **attrs), repeat)
        n_threads = runtime.N_THREADS
        runtime.N_THREADS = 1
        try:
            t_one = median_us(lambda: fast(*args, **attrs), repeat)
        finally:
            runtime.N_THREADS = n_threads
        line = f"{name:<20} {t_ref:>10.1f} {t_ours:>9.1f} {t_one:>9.1f} {t_ref / t_ours:>7.0f}x"
        if torch is not None:
            t_torch = median_us(torch_op(torch, op, args, attrs), repeat)
            line += f" {t_torch:>8.1f}"
            tot["torch"] += 0 if name.endswith("*") else t_torch
        if not name.endswith("*"):
            tot["ref"] += t_ref
            tot["ours"] += t_ours
            tot["one"] += t_one
        print(line, flush=True)
    line = (
        f"{'sum (step ops)':<20} {tot['ref']:>10.1f} {tot['ours']:>9.1f} {tot['one']:>9.1f} "
        f"{tot['ref'] / tot['ours']:>7.0f}x"
    )
    if torch is not None:
        line += f" {tot['torch']:>8.1f}"
    print(line)
    print("* not part of the training step (the images need no gradient)")


# ---------------------------------------------------------------------------------------------
# the im2col + GEMM alternative (stride 1, no padding: the ConvNet's convolutions)


def _im2col_kernels():
    from numba import njit, uint64

    @njit(cache=True, nogil=True)
    def im2col(x, col, KH, KW):
        N, C, H, W = x.shape
        OH, OW = H - KH + 1, W - KW + 1
        xf, cf = x.reshape(-1), col.reshape(-1)
        for n in range(N):
            for c in range(C):
                for kh in range(KH):
                    for kw in range(KW):
                        d = ((n * C + c) * KH * KW + kh * KW + kw) * OH * OW
                        s = ((n * C + c) * H + kh) * W + kw
                        for _i in range(OH):
                            for j in range(OW):
                                cf[uint64(d + j)] = xf[uint64(s + j)]
                            d += OW
                            s += W

    @njit(cache=True, nogil=True)
    def col2im(col, dx, KH, KW):
        N, C, H, W = dx.shape
        OH, OW = H - KH + 1, W - KW + 1
        df, cf = dx.reshape(-1), col.reshape(-1)
        df[:] = 0
        for n in range(N):
            for c in range(C):
                for kh in range(KH):
                    for kw in range(KW):
                        s = ((n * C + c) * KH * KW + kh * KW + kw) * OH * OW
                        d = ((n * C + c) * H + kh) * W + kw
                        for _i in range(OH):
                            for j in range(OW):
                                df[uint64(d + j)] += cf[uint64(s + j)]
                            s += OW
                            d += W

    return im2col, col2im


def bench_im2col(repeat: int) -> None:
    im2col, col2im = _im2col_kernels()
    rng = np.random.default_rng(0)
    print(f"\nim2col + BLAS matmul vs the direct kernels, float32, median of {repeat}, µs")
    print(f"{'op':<20} {'im2col':>8} {'GEMM':>8} {'col2im':>8} {'total':>8} {'direct':>8}")
    s = {"stride": (1, 1), "padding": (0, 0)}
    for layer, xs, ws in [
        ("conv1", (64, 1, 28, 28), (8, 1, 3, 3)),
        ("conv2", (64, 8, 13, 13), (16, 8, 3, 3)),
    ]:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        N, C, H, W = xs
        O, _, KH, KW = ws
        OH, OW = H - KH + 1, W - KW + 1
        K, P = C * KH * KW, OH * OW
        g = rng.standard_normal((N, O, OH, OW)).astype(np.float32)
        col = np.empty((N, K, P), np.float32)
        wm, g3 = w.reshape(O, K), g.reshape(N, O, P)
        dx = np.empty_like(x)
        t_col = median_us(lambda: im2col(x, col, KH, KW), repeat)
        # forward: out[n] = wm @ col[n]
        np.testing.assert_allclose(
            np.matmul(wm, col).reshape(g.shape), special.conv2d(x, w, **s), rtol=1e-4, atol=1e-4
        )
        t_f = median_us(lambda: np.matmul(wm, col), repeat)
        t_fd = median_us(lambda: special.conv2d(x, w, **s), repeat)
        print(
            f"{layer + ' forward':<20} {t_col:>8.1f} {t_f:>8.1f} {'':>8} {t_col + t_f:>8.1f} "
            f"{t_fd:>8.1f}"
        )
        # weight gradient: dw = sum_n g[n] @ col[n].T, batched (faster here than tensordot's
        # single GEMM over (n, p), which first copies both operands into place)
        np.testing.assert_allclose(
            np.matmul(g3, col.transpose(0, 2, 1)).sum(0).reshape(ws),
            special.conv2d_weight_grad(x, g, kernel_hw=(KH, KW), **s),
            rtol=1e-3,
            atol=1e-2,
        )
        t_w = median_us(lambda: np.matmul(g3, col.transpose(0, 2, 1)).sum(0), repeat)
        t_wd = median_us(lambda: special.conv2d_weight_grad(x, g, kernel_hw=(KH, KW), **s), repeat)
        print(
            f"{layer + ' weight grad':<20} {t_col:>8.1f} {t_w:>8.1f} {'':>8} "
            f"{t_col + t_w:>8.1f} {t_wd:>8.1f}"
        )
        # input gradient: dcol[n] = wm.T @ g[n], then col2im
        dcol = np.matmul(wm.T, g3)
        col2im(dcol, dx, KH, KW)
        np.testing.assert_allclose(
            dx, special.conv2d_input_grad(g, w, in_hw=(H, W), **s), rtol=1e-4, atol=1e-3
        )
        t_i = median_us(lambda: np.matmul(wm.T, g3), repeat)
        t_c2i = median_us(lambda: col2im(dcol, dx, KH, KW), repeat)
        t_id = median_us(lambda: special.conv2d_input_grad(g, w, in_hw=(H, W), **s), repeat)
        print(
            f"{layer + ' input grad':<20} {'':>8} {t_i:>8.1f} {t_c2i:>8.1f} "
            f"{t_i + t_c2i:>8.1f} {t_id:>8.1f}"
        )
    print(
        "(im2col and col2im on one thread, BLAS and the direct kernels on their own; "
        "OPENBLAS_NUM_THREADS=1 GRAPHC_THREADS=1 compares single threads)"
    )


# ---------------------------------------------------------------------------------------------
# whole steps: benchmarks/run.py's ConvNet workload, defined there


def bench_steps(repeat: int, torch) -> None:
    global USE_SPECIAL
    rng = np.random.default_rng(0)
    p = {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in SHAPES.items()}
    x = rng.random((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    print(f"\ntraining step (forward, backward, SGD), batch 64, median of {repeat}, ms")
    f = graphc.jit(conv_step)
    results = {}
    for use in (False, True):
        USE_SPECIAL = use
        t = time.perf_counter()
        _, loss = f(p, x, y)
        first = time.perf_counter() - t
        n = repeat if use else max(5, repeat // 10)
        results[use] = median_us(lambda: f(p, x, y), n) / 1e3
        label = "graphc + special kernels" if use else "graphc (NumPy image ops)"
        print(f"{label:<32} {results[use]:8.2f}   (first call {first:.2f} s, loss {loss:.4f})")
    USE_SPECIAL = True
    if torch is None:
        print(f"{'torch eager':<32} {'-':>8}   (torch not installed)")
        return
    tp = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in p.items()}
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    F = torch.nn.functional

    def tstep():
        h = F.max_pool2d(torch.relu(F.conv2d(tx, tp["w1"], tp["b1"])), 2)
        h = F.max_pool2d(torch.relu(F.conv2d(h, tp["w2"], tp["b2"])), 2)
        loss = F.cross_entropy(h.reshape(64, -1) @ tp["W"] + tp["b"], ty)
        gs = torch.autograd.grad(loss, list(tp.values()))
        with torch.no_grad():
            for v, g in zip(tp.values(), gs, strict=True):
                v -= 0.01 * g
        return loss

    t_torch = median_us(tstep, repeat) / 1e3
    print(
        f"{'torch eager':<32} {t_torch:8.2f}   (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-step", action="store_true")
    ap.add_argument("--im2col", action="store_true", help="also time im2col + GEMM")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: keep)")
    a = ap.parse_args()
    torch = None if a.no_torch else try_torch()
    if torch is None and not a.no_torch:
        print("torch is not installed: no torch column")
    elif torch is not None and a.torch_threads:
        torch.set_num_threads(a.torch_threads)
    bench_ops(a.repeat, torch)
    if a.im2col:
        bench_im2col(a.repeat)
    if not a.no_step:
        bench_steps(a.repeat, torch)


if __name__ == "__main__":
    main()
