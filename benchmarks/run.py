"""graphc's benchmark suite (`make bench`): each workload against a NumPy baseline and, when they
are installed, PyTorch (eager and torch.compile) and JAX, all float32, medians of repeated runs.

Workloads (exactly as defined below):
1. gelu: loss = sum(gelu(x) * w), gelu(x) = 0.5 x (1 + tanh(0.7978845608 (x + 0.044715 x^3))),
   value and both gradients, x and w of 2^22 elements.
2. mlp: one SGD training step of a 784-512-256-10 ReLU MLP, batch 256, softmax cross-entropy.
3. convnet: one SGD step, batch 64 of 1x28x28: conv 8@3x3 -> ReLU -> maxpool 2 -> conv 16@3x3 ->
   ReLU -> maxpool 2 -> dense 400->10, cross-entropy.
4. chain: 2,000 alternating tanh/sin ops over 1,024 elements, value and gradient: first call
   (trace + compile) and steady state.
5. startup: process start to the first result of the MLP step, cold and warm on-disk cache.
6. large graphs, compile time (trace to first result, cold cache, median of 3): an RNN written
   as a Python loop over 500 steps (h = tanh(W h + U x_t + b), hidden size 32, loss = sum of
   the hidden states), value and gradients wrt W, U, b; and the chain of workload 4 with
   100,000 ops. Target for both: 10 s.
7. compile: trace to first result (cold cache, median of 3) of the MLP step of workload 2 and
   the chain of workload 4, for comparing versions of the compiler.
8. scan: the RNN of workload 6 written with graphc.scan (one compiled loop), forward only
   (the loss's value, jit): steady state against the same RNN unrolled by the Python loop,
   and the first call (new process, cold cache, median of 3) for 64 and for 1,024 steps,
   which should differ by less than 20% (the body compiles once, whatever the trip count).
9. lstm: one SGD step (learning rate 0.01) of a character-level LSTM: embedding 64, one LSTM
   layer of 256, sequence 128, batch 32, softmax cross-entropy over 96 symbols at every
   position; graphc (nn.LSTM, a scan over time, and the same model with the loop over time
   written in Python, "unrolled") against torch eager nn.LSTM, torch.compile and JAX lax.scan
   under jit, as ratios to the fastest of those peers. Then first call (trace and compile, new
   process, cold cache) and step time of graphc's step at sequence lengths 64 and 1024, scan
   and unrolled, with JAX's first call beside them.

10. vmap: per-example gradients of the loss of workload 2's MLP (one example's softmax
   cross-entropy) for a batch of 256, `vmap(grad(loss), in_axes=(None, 0, 0))`, against JAX
   `jit(vmap(grad))`, `torch.func.vmap(torch.func.grad)` and a Python loop over the examples
   calling graphc's compiled grad; and the Jacobian (reverse mode, under jit) of a 256 -> 256
   two-layer tanh MLP against JAX `jit(jacrev)`, first call and steady state.

11. torchstyle: the training steps of workloads 2 and 3 (SGD, lr 0.01) written in PyTorch style
   (`nn.Linear`/`nn.Conv2d` modules, `nn.CrossEntropyLoss`, `optim.SGD`, zero_grad, backward,
   step): one function, run with `graphc.torch` as a plain loop (lazy recording, the compiled
   executable found by the recorded structure) and through `graphc.torch.compile` (replayed),
   and with PyTorch itself (eager and torch.compile); graphc's functional `nn.train_step` of
   the same model is the baseline the ratios are taken to.


Usage: python benchmarks/run.py [gelu mlp convnet chain startup large compile scan lstm vmap
       torchstyle]
       [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import graphc  # noqa: E402
from graphc import numpy as gnp  # noqa: E402

RESULTS: list[tuple[str, str, float | None, str]] = []  # workload, implementation, ms, note


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def record(workload: str, impl: str, ms: float | None, note: str = "") -> None:
    RESULTS.append((workload, impl, ms, note))
    shown = f"{ms:9.2f} ms" if ms is not None else "        -   "
    print(f"  {impl:<34} {shown}  {note}", flush=True)


def try_import(name: str):
    try:
        return __import__(name)
    except Exception:
        return None


# the peers load in main(), so that importing this module (as the startup benchmark's
# subprocess does) costs only graphc's own import
torch = jax = jnp = None


def load_peers() -> None:
    global torch, jax, jnp
    torch = try_import("torch")
    jax = try_import("jax")
    if jax is not None:
        import jax.numpy as jnp

        jax.config.update("jax_platforms", "cpu")


def _torch_sgd(loss, params: dict):
    """The torch baselines' SGD update, in place, learning rate 0.01; returns the loss."""
    gs = torch.autograd.grad(loss, list(params.values()))
    with torch.no_grad():
        for v, g in zip(params.values(), gs, strict=True):
            v -= 0.01 * g
    return loss


def bench_torch(
    workload: str, make: Callable[[], Callable[[], object]], repeat: int, compile_too: bool = True
) -> None:
    if torch is None:
        record(workload, "torch eager", None, "torch not installed")
        return
    torch.set_num_threads(os.cpu_count() or 1)
    fn = make()
    record(workload, "torch eager", median_ms(fn, repeat))
    if compile_too:
        try:
            cfn = make(compiled=True)  # type: ignore[call-arg]
            t = time.perf_counter()
            cfn()
            first = time.perf_counter() - t
            record(workload, "torch.compile", median_ms(cfn, repeat), f"first call {first:.1f} s")
        except Exception as e:  # torch.compile needs a working C++ toolchain
            record(workload, "torch.compile", None, f"failed: {type(e).__name__}")


# ---------------------------------------------------------------------------------------------
# 1. gelu


C0, C1 = 0.7978845608, 0.044715


def gelu_loss(x, w):
    return np.sum(gnp.gelu(x) * w)


def bench_gelu(repeat: int) -> None:
    print("\n[1] gelu value+grad over 2^22 float32 elements", flush=True)
    n = 1 << 22
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)

    def numpy_version():
        t = np.tanh(np.float32(C0) * (x + np.float32(C1) * x * x * x))
        g = 0.5 * x * (1 + t)
        loss = np.sum(g * w)
        dg = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * np.float32(C0) * (
            1 + 3 * np.float32(C1) * x * x
        )
        return loss, w * dg, g

    t_np = median_ms(numpy_version, max(3, repeat // 4), warmup=1)
    record("gelu", "NumPy (hand-written)", t_np)

    f = graphc.jit(graphc.value_and_grad(gelu_loss, argnums=(0, 1)))
    t = time.perf_counter()
    f(x, w)
    first = time.perf_counter() - t
    t_g = median_ms(lambda: f(x, w), repeat)
    record("gelu", "graphc", t_g, f"first call {first:.2f} s; {t_np / t_g:.0f}x NumPy")

    hand = _hand_fused_gelu()
    if hand is not None:
        t_h = median_ms(lambda: hand(x, w), repeat)
        record(
            "gelu",
            "hand-fused Numba kernel (2 threads)",
            t_h,
            f"graphc / hand-fused = {t_g / t_h:.2f}",
        )

    def make_torch(compiled: bool = False):
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(w).requires_grad_()

        def step(tx, tw):
            g = 0.5 * tx * (1 + torch.tanh(C0 * (tx + C1 * tx**3)))
            loss = (g * tw).sum()
            gx, gw = torch.autograd.grad(loss, (tx, tw))
            return loss, gx, gw

        fn = torch.compile(step) if compiled else step
        return lambda: fn(tx, tw)

    bench_torch("gelu", make_torch, repeat)
    if jax is not None:
        jf = jax.jit(
            jax.value_and_grad(
                lambda x, w: jnp.sum(0.5 * x * (1 + jnp.tanh(C0 * (x + C1 * x**3))) * w),
                argnums=(0, 1),
            )
        )
        jx, jw = jnp.asarray(x), jnp.asarray(w)
        record("gelu", "JAX jit", median_ms(lambda: jax.block_until_ready(jf(jx, jw)), repeat))
    else:
        record("gelu", "JAX jit", None, "jax not installed")


def _hand_fused_gelu():
    """The reference point: one hand-written single-pass kernel with a vectorizable tanh."""
    try:
        from numba import njit

        from graphc.codegen import mathlib
        from graphc.codegen.runtime import launch
    except Exception:
        return None
    tanh = mathlib.FUNCS.get(("tanh", "f32")) if hasattr(mathlib, "FUNCS") else None
    if tanh is None:
        return None

    @njit(nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy", cache=True)
    def kernel(x, w, gx, gw, part, lo, hi, c):
        # this chunk's slices, indexed from 0: LLVM then knows the indices are non-negative,
        # drops NumPy's wraparound test and vectorises the loop
        x, w, gx, gw = x[lo:hi], w[lo:hi], gx[lo:hi], gw[lo:hi]
        acc = np.float32(0)
        for i in range(hi - lo):
            a = x[i]
            t = tanh(np.float32(C0) * (a + np.float32(C1) * a * a * a))
            g = np.float32(0.5) * a * (np.float32(1) + t)
            acc += g * w[i]
            dg = np.float32(0.5) * (np.float32(1) + t) + np.float32(0.5) * a * (
                np.float32(1) - t * t
            ) * np.float32(C0) * (np.float32(1) + np.float32(3 * C1) * a * a)
            gx[i] = w[i] * dg
            gw[i] = g
        part[c] = acc

    # outputs preallocated once, as graphc's own are, so neither side pays first-touch faults
    out: dict = {}

    def run(x, w):
        if not out:
            out.update(gx=np.empty_like(x), gw=np.empty_like(w))
        part = np.zeros(2, np.float32)
        launch(kernel, 2, x.size, x, w, out["gx"], out["gw"], part)
        return part.sum(), out["gx"], out["gw"]

    return run


# ---------------------------------------------------------------------------------------------
# 2. MLP step

MLP_SHAPES = {
    "W1": (784, 512),
    "b1": (512,),
    "W2": (512, 256),
    "b2": (256,),
    "W3": (256, 10),
    "b3": (10,),
}


def mlp_loss(p, x, y):
    h = gnp.relu(x @ p["W1"] + p["b1"])
    h = gnp.relu(h @ p["W2"] + p["b2"])
    logits = h @ p["W3"] + p["b3"]
    return -np.mean(gnp.log_softmax(logits, axis=1)[np.arange(x.shape[0]), y])


def mlp_step(p, x, y):
    loss, g = graphc.value_and_grad(mlp_loss)(p, x, y)
    return {k: p[k] - np.float32(0.01) * g[k] for k in p}, loss


def mlp_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    p = {
        k: (rng.standard_normal(s) * (0.05 if len(s) == 2 else 0.0)).astype(np.float32)
        for k, s in MLP_SHAPES.items()
    }
    x = rng.random((256, 784), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    return p, x, y


def bench_mlp(repeat: int) -> None:
    print("\n[2] MLP training step 784-512-256-10, batch 256", flush=True)
    p, x, y = mlp_data()
    h1 = np.random.default_rng(1).random((256, 512), dtype=np.float32)
    h2 = np.random.default_rng(2).random((256, 256), dtype=np.float32)
    g3 = np.random.default_rng(3).random((256, 10), dtype=np.float32)

    # products into preallocated outputs, as graphc's own are: the baseline is the BLAS work
    # alone, without first-touch page faults on freshly allocated results
    pairs = [
        (x, p["W1"]),
        (h1, p["W2"]),
        (h2, p["W3"]),
        (h2.T, g3),
        (g3, p["W3"].T),
        (h1.T, h2),
        (h2, p["W2"].T),
        (x.T, h1),
    ]
    outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in pairs]

    def gemms():
        for (a, b), o in zip(pairs, outs, strict=True):
            np.matmul(a, b, out=o)

    t_gemm = median_ms(gemms, repeat)
    record("mlp", "its 8 GEMMs alone (NumPy BLAS)", t_gemm)

    def numpy_step():
        a1 = x @ p["W1"] + p["b1"]
        r1 = np.maximum(a1, 0)
        a2 = r1 @ p["W2"] + p["b2"]
        r2 = np.maximum(a2, 0)
        lo = r2 @ p["W3"] + p["b3"]
        m = lo.max(1, keepdims=True)
        e = np.exp(lo - m)
        sm = e / e.sum(1, keepdims=True)
        d = sm
        d[np.arange(256), y] -= 1
        d /= 256
        gW3, gb3 = r2.T @ d, d.sum(0)
        d2 = (d @ p["W3"].T) * (a2 > 0)
        gW2, gb2 = r1.T @ d2, d2.sum(0)
        d1 = (d2 @ p["W2"].T) * (a1 > 0)
        gW1, gb1 = x.T @ d1, d1.sum(0)
        return {
            k: p[k] - 0.01 * g
            for k, g in zip(
                ["W1", "b1", "W2", "b2", "W3", "b3"], [gW1, gb1, gW2, gb2, gW3, gb3], strict=True
            )
        }

    record("mlp", "NumPy (hand-written)", median_ms(numpy_step, repeat))
    f = graphc.jit(mlp_step)
    t = time.perf_counter()
    f(p, x, y)
    first = time.perf_counter() - t
    t_g = median_ms(lambda: f(p, x, y), repeat)
    record(
        "mlp", "graphc (function)", t_g, f"first call {first:.2f} s; {t_g / t_gemm:.2f}x its GEMMs"
    )
    _bench_mlp_layers(x, y, repeat, t_gemm)

    def make_torch(compiled: bool = False):
        tp = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in p.items()}
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def step(tx, ty):
            h = torch.relu(tx @ tp["W1"] + tp["b1"])
            h = torch.relu(h @ tp["W2"] + tp["b2"])
            loss = torch.nn.functional.cross_entropy(h @ tp["W3"] + tp["b3"], ty)
            return _torch_sgd(loss, tp)

        fn = torch.compile(step) if compiled else step
        return lambda: fn(tx, ty)

    bench_torch("mlp", make_torch, repeat)
    if jax is not None:

        def jloss(p, x, y):
            h = jax.nn.relu(x @ p["W1"] + p["b1"])
            h = jax.nn.relu(h @ p["W2"] + p["b2"])
            lp = jax.nn.log_softmax(h @ p["W3"] + p["b3"], axis=1)
            return -jnp.mean(lp[jnp.arange(x.shape[0]), y])

        @jax.jit
        def jstep(p, x, y):
            loss, g = jax.value_and_grad(jloss)(p, x, y)
            return {k: p[k] - 0.01 * g[k] for k in p}, loss

        jp = {k: jnp.asarray(v) for k, v in p.items()}
        jx, jy = jnp.asarray(x), jnp.asarray(y)
        record(
            "mlp", "JAX jit", median_ms(lambda: jax.block_until_ready(jstep(jp, jx, jy)), repeat)
        )
    else:
        record("mlp", "JAX jit", None, "jax not installed")


def _bench_mlp_layers(x, y, repeat: int, t_gemm: float) -> None:
    from graphc import nn

    model = nn.Chain(
        nn.Dense(784, 512, act=nn.relu), nn.Dense(512, 256, act=nn.relu), nn.Dense(256, 10)
    )
    _bench_layers("mlp", model, x, y, repeat, "{:.2f}x its GEMMs", t_gemm)


def _bench_layers(
    workload: str, model, x, y, repeat: int, ratio_fmt: str = "", base: float | None = None
) -> None:
    from graphc import nn

    step = nn.train_step(model, nn.cross_entropy, nn.SGD(lr=0.01))
    state = step.init(model)
    t = time.perf_counter()
    step(model, state, x, y)
    first = time.perf_counter() - t
    t_l = median_ms(lambda: step(model, state, x, y), repeat)
    note = f"first call {first:.2f} s"
    if base:
        note += "; " + ratio_fmt.format(t_l / base)
    record(workload, "graphc (nn layers, train_step)", t_l, note)


# ---------------------------------------------------------------------------------------------
# 3. ConvNet step

CONV_SHAPES = {
    "w1": (8, 1, 3, 3),
    "b1": (8,),
    "w2": (16, 8, 3, 3),
    "b2": (16,),
    "W": (400, 10),
    "b": (10,),
}


def conv_loss(p, x, y):
    h = gnp.max_pool2d(gnp.relu(gnp.conv2d(x, p["w1"]) + p["b1"][:, None, None]), 2)
    h = gnp.max_pool2d(gnp.relu(gnp.conv2d(h, p["w2"]) + p["b2"][:, None, None]), 2)
    logits = h.reshape(x.shape[0], -1) @ p["W"] + p["b"]
    return -np.mean(gnp.log_softmax(logits, axis=1)[np.arange(x.shape[0]), y])


def conv_step(p, x, y):
    loss, g = graphc.value_and_grad(conv_loss)(p, x, y)
    return {k: p[k] - np.float32(0.01) * g[k] for k in p}, loss


def bench_convnet(repeat: int) -> None:
    print("\n[3] ConvNet training step, batch 64 of 1x28x28", flush=True)
    rng = np.random.default_rng(0)
    p = {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in CONV_SHAPES.items()}
    x = rng.random((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    f = graphc.jit(conv_step)
    t = time.perf_counter()
    f(p, x, y)
    first = time.perf_counter() - t
    t_g = median_ms(lambda: f(p, x, y), repeat)
    lo = f.lower(p, x, y)
    record(
        "convnet",
        "graphc (function)",
        t_g,
        f"first call {first:.2f} s; NumPy fallbacks: {len(lo.fallbacks)}",
    )
    from graphc import nn

    cnn = nn.Chain(
        nn.Conv2d(1, 8, 3, act=nn.relu),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, act=nn.relu),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(400, 10),
    )
    _bench_layers("convnet", cnn, x, y, repeat)
    fi = graphc.jit(conv_step, backend="interpreter")
    record(
        "convnet",
        "graphc reference interpreter (NumPy)",
        median_ms(lambda: fi(p, x, y), max(3, repeat // 4)),
    )

    def make_torch(compiled: bool = False):
        tp = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in p.items()}
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        F = torch.nn.functional

        def step(tx, ty):
            h = F.max_pool2d(torch.relu(F.conv2d(tx, tp["w1"], tp["b1"])), 2)
            h = F.max_pool2d(torch.relu(F.conv2d(h, tp["w2"], tp["b2"])), 2)
            loss = F.cross_entropy(h.reshape(64, -1) @ tp["W"] + tp["b"], ty)
            return _torch_sgd(loss, tp)

        fn = torch.compile(step) if compiled else step
        return lambda: fn(tx, ty)

    bench_torch("convnet", make_torch, repeat)
    if jax is not None:
        from jax import lax

        def pool(h):
            return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

        def jloss(p, x, y):
            h = lax.conv(x, p["w1"], (1, 1), "VALID") + p["b1"][:, None, None]
            h = pool(jax.nn.relu(h))
            h = lax.conv(h, p["w2"], (1, 1), "VALID") + p["b2"][:, None, None]
            h = pool(jax.nn.relu(h))
            lp = jax.nn.log_softmax(h.reshape(x.shape[0], -1) @ p["W"] + p["b"], axis=1)
            return -jnp.mean(lp[jnp.arange(x.shape[0]), y])

        @jax.jit
        def jstep(p, x, y):
            loss, g = jax.value_and_grad(jloss)(p, x, y)
            return {k: p[k] - 0.01 * g[k] for k in p}, loss

        jp = {k: jnp.asarray(v) for k, v in p.items()}
        jx, jy = jnp.asarray(x), jnp.asarray(y)
        record(
            "convnet",
            "JAX jit",
            median_ms(lambda: jax.block_until_ready(jstep(jp, jx, jy)), repeat),
        )
    else:
        record("convnet", "JAX jit", None, "jax not installed")


# ---------------------------------------------------------------------------------------------
# 4. deep chain


def chain(x):
    for i in range(2000):
        x = np.sin(x) if i % 2 else np.tanh(x)
    return np.sum(x)


def bench_chain(repeat: int) -> None:
    print(
        "\n[4] deep chain: 2,000 alternating tanh/sin ops over 1,024 elements, value+grad",
        flush=True,
    )
    x = np.linspace(-1, 1, 1024, dtype=np.float32)
    with cold_cache():  # the first call compiles
        from passes import COMPILE_PIPELINE, run_pipeline

        traced = graphc.trace(graphc.value_and_grad(chain), x)
        t = time.perf_counter()
        run_pipeline(traced, COMPILE_PIPELINE)
        record(
            "chain",
            "graphc pass pipeline alone",
            (time.perf_counter() - t) * 1e3,
            f"{len(traced.equations)} equations",
        )
        f = graphc.jit(graphc.value_and_grad(chain))
        t = time.perf_counter()
        f(x)
        first = time.perf_counter() - t
        t_g = median_ms(lambda: f(x), repeat)
        record("chain", "graphc", t_g, f"first call {first:.2f} s (cold cache)")
    t_np = median_ms(lambda: graphc.value_and_grad(chain, backend="interpreter")(x), 3, 1)
    record("chain", "graphc reference interpreter (NumPy)", t_np, "includes tracing")
    if jax is not None:

        def jchain(x):
            for i in range(2000):
                x = jnp.sin(x) if i % 2 else jnp.tanh(x)
            return jnp.sum(x)

        jf = jax.jit(jax.value_and_grad(jchain))
        jx = jnp.asarray(x)
        t = time.perf_counter()
        jax.block_until_ready(jf(jx))
        first = time.perf_counter() - t
        record(
            "chain",
            "JAX jit",
            median_ms(lambda: jax.block_until_ready(jf(jx)), repeat),
            f"first call {first:.2f} s",
        )
    else:
        record("chain", "JAX jit", None, "jax not installed")


# ---------------------------------------------------------------------------------------------
# 6. large graphs: compile time


RNN_STEPS, RNN_HIDDEN, RNN_INPUT = 500, 32, 8


def rnn_loss(W, U, b, xs):
    h = np.zeros(RNN_HIDDEN, dtype=np.float32)
    total = 0.0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + U @ xs[t] + b)
        total = total + np.sum(h)
    return total


def rnn_loss_scan(W, U, b, xs):
    """rnn_loss as one loop: graphc.scan over the steps, the hidden state and the running
    total carried."""

    def step(carry, x):
        h, total = carry
        h = np.tanh(W @ h + U @ x + b)
        return (h, total + np.sum(h)), None

    (_, total), _ = graphc.scan(step, (np.zeros(RNN_HIDDEN, dtype=np.float32), 0.0), xs)
    return total


def rnn_data(steps: int = RNN_STEPS) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((RNN_HIDDEN, RNN_HIDDEN)) * 0.1).astype(np.float32)
    U = (rng.standard_normal((RNN_HIDDEN, RNN_INPUT)) * 0.1).astype(np.float32)
    b = np.zeros(RNN_HIDDEN, np.float32)
    xs = rng.standard_normal((steps, RNN_INPUT)).astype(np.float32)
    return W, U, b, xs


def long_chain(x):
    for i in range(100_000):
        x = np.sin(x) if i % 2 else np.tanh(x)
    return np.sum(x)


def first_call_seconds(make: Callable[[], Callable[[], object]], runs: int = 3) -> list[float]:
    """Trace-and-compile-to-first-result times, each with a fresh function and a cold cache."""
    out = []
    for _ in range(runs):
        with cold_cache():
            fn = make()
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return out


@contextlib.contextmanager
def cold_cache() -> Iterator[str]:
    """GRAPHC_CACHE_DIR set to a new empty folder for the block, then restored and removed."""
    cache = tempfile.mkdtemp(prefix="graphc-bench-")
    old = os.environ.get("GRAPHC_CACHE_DIR")
    os.environ["GRAPHC_CACHE_DIR"] = cache
    try:
        yield cache
    finally:
        if old is None:
            os.environ.pop("GRAPHC_CACHE_DIR", None)
        else:
            os.environ["GRAPHC_CACHE_DIR"] = old
        shutil.rmtree(cache, ignore_errors=True)


def bench_large(repeat: int) -> None:
    print("\n[6] large graphs: compile time (first call, cold cache, median of 3)", flush=True)
    W, U, b, xs = rnn_data()

    def make_rnn():
        f = graphc.jit(graphc.value_and_grad(rnn_loss, argnums=(0, 1, 2)))
        return lambda: f(W, U, b, xs)

    eqs = len(
        graphc.trace(graphc.value_and_grad(rnn_loss, argnums=(0, 1, 2)), W, U, b, xs).equations
    )
    ts = first_call_seconds(make_rnn)
    record(
        "large",
        f"RNN, {RNN_STEPS} unrolled steps, value+grad",
        float(np.median(ts)) * 1e3,
        f"{eqs} traced equations; runs {', '.join(f'{t:.1f}' for t in ts)} s; target 10 s",
    )
    x = np.linspace(-1, 1, 1024, dtype=np.float32)

    def make_chain():
        f = graphc.jit(graphc.value_and_grad(long_chain))
        return lambda: f(x)

    ts = first_call_seconds(make_chain)
    record(
        "large",
        "100,000-op chain, value+grad",
        float(np.median(ts)) * 1e3,
        f"runs {', '.join(f'{t:.1f}' for t in ts)} s; target 10 s",
    )


_FIRST_CALL = """
import time, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import numpy as np
import run as b
{setup}
t = time.perf_counter()
f()
print(time.perf_counter() - t)  # trace to first result, the imports excluded
"""

_COMPILE_CASES = {
    "MLP step": "p, x, y = b.mlp_data()\njf = b.graphc.jit(b.mlp_step)\nf = lambda: jf(p, x, y)",
    "2,000-op chain, value+grad": (
        "xc = np.linspace(-1, 1, 1024, dtype=np.float32)\n"
        "jf = b.graphc.jit(b.graphc.value_and_grad(b.chain))\nf = lambda: jf(xc)"
    ),
}


def first_call_in_new_process(setup: str, runs: int = 3) -> list[float]:
    """Seconds from the start of `f()` to its result, `setup` having defined f, each run in a
    new process with a cold kernel cache (imports excluded)."""
    code = _FIRST_CALL.format(root=ROOT, bench=os.path.join(ROOT, "benchmarks"), setup=setup)
    ts = []
    for _ in range(runs):
        with cold_cache():
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
        ts.append(float(out.stdout.split()[-1]))
    return ts


def bench_compile(repeat: int) -> None:
    """Trace-to-first-result of the MLP step and the 2,000-op chain's value and gradient, each
    in a new process with a cold kernel cache: what a change to the compiler costs or saves."""
    print("\n[7] compile time (first call, new process, cold cache, median of 3)", flush=True)
    for name, setup in _COMPILE_CASES.items():
        ts = first_call_in_new_process(setup)
        runs = ", ".join(f"{t:.2f}" for t in ts)
        record("compile", name, float(np.median(ts)) * 1e3, f"runs {runs} s")


# ---------------------------------------------------------------------------------------------
# 9. char-LSTM training step

LSTM_VOCAB, LSTM_EMBED, LSTM_HIDDEN, LSTM_SEQ, LSTM_BATCH = 96, 64, 256, 128, 32
LSTM_LR = 0.01
LSTM_COMPILE_SEQS = (64, 1024)
# limits of one first-call measurement: the unrolled graph at T=1024 is huge
LSTM_TIMEOUT = 1800  # seconds
LSTM_MEMORY_CAP = 8 << 30  # bytes of address space


def lstm_data(seq: int = LSTM_SEQ, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A batch of symbol ids (N, T) and the ids each position predicts (the next ones)."""
    ids = np.random.default_rng(seed).integers(0, LSTM_VOCAB, (LSTM_BATCH, seq + 1))
    return ids[:, :-1], ids[:, 1:]


def lstm_loss(logits, y):
    from graphc import nn

    return nn.cross_entropy(logits.reshape(-1, LSTM_VOCAB), y.reshape(-1))


def lstm_graphc_step(unrolled: bool = False):
    """(step, model, optimizer state) of graphc's training step: Embedding -> nn.LSTM (a scan
    over time) -> Dense; `unrolled` runs the same cell in a Python loop over time instead."""
    from graphc import nn

    class CharLSTM(nn.Module):
        def __init__(self):
            self.embed = nn.Embedding(LSTM_VOCAB, LSTM_EMBED, rng=0)
            self.lstm = nn.LSTM(LSTM_EMBED, LSTM_HIDDEN, batch_first=True, rng=1)
            self.head = nn.Dense(LSTM_HIDDEN, LSTM_VOCAB, rng=2)
            self.unrolled = unrolled

        def __call__(self, ids):
            x = self.embed(ids)
            if not self.unrolled:
                return self.head(self.lstm(x))
            state, hs = None, []
            for t in range(x.shape[1]):
                state = self.lstm.cell(x[:, t], state)
                hs.append(state[0])
            return self.head(np.stack(hs, axis=1))

    model = CharLSTM()
    step = nn.train_step(model, lstm_loss, nn.SGD(LSTM_LR))
    return step, model, step.init(model)


def lstm_jax_step():
    """(jitted step, parameters) of the JAX peer: the same model, lax.scan over time."""
    from jax import lax

    rng = np.random.default_rng(0)
    k = 1 / np.sqrt(LSTM_HIDDEN)
    g4 = 4 * LSTM_HIDDEN

    def u(*shape):
        return jnp.asarray(rng.uniform(-k, k, shape).astype(np.float32))

    p = {
        "emb": jnp.asarray(rng.standard_normal((LSTM_VOCAB, LSTM_EMBED)).astype(np.float32)),
        "w_ih": u(g4, LSTM_EMBED),
        "w_hh": u(g4, LSTM_HIDDEN),
        "b": u(g4),
        "w": u(LSTM_VOCAB, LSTM_HIDDEN),
        "b_out": u(LSTM_VOCAB),
    }

    def loss(p, x, y):
        xp = jnp.swapaxes(p["emb"][x] @ p["w_ih"].T + p["b"], 0, 1)  # (T, N, 4H)

        def cell(carry, xt):
            h, c = carry
            i, f, g, o = jnp.split(xt + h @ p["w_hh"].T, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        h0 = jnp.zeros((x.shape[0], LSTM_HIDDEN), jnp.float32)
        _, hs = lax.scan(cell, (h0, h0), xp)
        lp = jax.nn.log_softmax(jnp.swapaxes(hs, 0, 1) @ p["w"].T + p["b_out"], axis=-1)
        return -jnp.mean(jnp.take_along_axis(lp, y[..., None], axis=-1))

    @jax.jit
    def step(p, x, y):
        value, g = jax.value_and_grad(loss)(p, x, y)
        return {n: p[n] - LSTM_LR * g[n] for n in p}, value

    return step, p


_LSTM_FIRST_CALL = """
import time, sys
try:  # a graph too large to compile fails here with MemoryError, not on the machine's memory
    import resource
    resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
except (ImportError, ValueError, OSError):
    pass
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import run as b
x, y = b.lstm_data({seq})
step, model, state = b.lstm_graphc_step({unrolled})
t = time.perf_counter()
step(model, state, x, y)
print("first", time.perf_counter() - t, flush=True)  # trace to first result
print("step", b.median_ms(lambda: step(model, state, x, y), {repeat}, warmup=1), flush=True)
"""


def _lstm_first_call(
    seq: int, unrolled: bool, repeat: int
) -> tuple[float | None, float | None, str]:
    """(first call in s, step in ms, what went wrong) of graphc's step in a new process with a
    cold cache; None for what did not finish within LSTM_TIMEOUT or LSTM_MEMORY_CAP."""
    code = _LSTM_FIRST_CALL.format(
        root=ROOT,
        bench=os.path.join(ROOT, "benchmarks"),
        seq=seq,
        unrolled=unrolled,
        repeat=repeat,
        cap=LSTM_MEMORY_CAP,
    )
    first = step = None
    problem = ""
    with cold_cache():
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=LSTM_TIMEOUT,
            )
            out = proc.stdout
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
                problem = f"failed: {last[:120]}"
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            problem = f"did not finish in {LSTM_TIMEOUT} s"
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "first":
            first = float(value)
        elif key == "step":
            step = float(value)
    return first, step, problem


def bench_lstm(repeat: int) -> None:
    print(
        f"\n[9] char-LSTM training step: embedding {LSTM_EMBED}, LSTM {LSTM_HIDDEN}, sequence "
        f"{LSTM_SEQ}, batch {LSTM_BATCH}, {LSTM_VOCAB} symbols, SGD",
        flush=True,
    )
    x, y = lstm_data()
    peers: dict[str, float] = {}

    def make_torch(compiled: bool = False):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(LSTM_VOCAB, LSTM_EMBED)
        lstm = torch.nn.LSTM(LSTM_EMBED, LSTM_HIDDEN, batch_first=True)
        head = torch.nn.Linear(LSTM_HIDDEN, LSTM_VOCAB)
        params = {
            f"{i}.{n}": v for i, m in enumerate((emb, lstm, head)) for n, v in m.named_parameters()
        }
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def step(tx, ty):
            logits = head(lstm(emb(tx))[0])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, LSTM_VOCAB), ty.reshape(-1))
            return _torch_sgd(loss, params)

        fn = torch.compile(step) if compiled else step
        return lambda: fn(tx, ty)

    start = len(RESULTS)
    bench_torch("lstm", make_torch, max(3, repeat // 2))
    if jax is not None:
        jstep, jp = lstm_jax_step()
        jx, jy = jnp.asarray(x), jnp.asarray(y)
        t = time.perf_counter()
        jax.block_until_ready(jstep(jp, jx, jy))
        first = time.perf_counter() - t
        record(
            "lstm",
            "JAX jit (lax.scan)",
            median_ms(lambda: jax.block_until_ready(jstep(jp, jx, jy)), max(3, repeat // 2)),
            f"first call {first:.1f} s",
        )
    else:
        record("lstm", "JAX jit (lax.scan)", None, "jax not installed")
    for _, impl, ms, _ in RESULTS[start:]:
        if ms is not None:
            peers[impl] = ms
    best = min(peers, key=peers.__getitem__) if peers else None

    def ratio(ms: float | None) -> str:
        if ms is None or best is None:
            return ""
        return f"; {ms / peers[best]:.2f}x the fastest peer ({best})"

    for unrolled in (False, True):
        name = "graphc unrolled (Python loop)" if unrolled else "graphc (nn.LSTM, scan)"
        with cold_cache():
            try:
                step, model, state = lstm_graphc_step(unrolled)
                t = time.perf_counter()
                step(model, state, x, y)
                first = time.perf_counter() - t
                ms = median_ms(lambda: step(model, state, x, y), max(3, repeat // 2), warmup=1)
            except graphc.GraphcError as e:
                record("lstm", name, None, f"failed: {e}")
                continue
        lo = step.lower(model, state, x, y)
        note = f"first call {first:.1f} s; {len(lo.traced.equations)} traced equations"
        record("lstm", name, ms, note + ratio(ms))

    # compile time against sequence length: the scan's graph does not grow, the unrolled one's
    # does, linearly
    for seq in LSTM_COMPILE_SEQS:
        for unrolled in (False, True):
            name = f"T={seq} graphc {'unrolled' if unrolled else 'scan'}: first call"
            first, ms, problem = _lstm_first_call(seq, unrolled, 3)
            if first is None:
                record("lstm", name, None, problem)
                continue
            step_note = f"step {ms:.1f} ms" if ms is not None else f"step {problem}"
            record("lstm", name, first * 1e3, f"new process, cold cache; {step_note}")
        if jax is not None:
            jstep, jp = lstm_jax_step()
            jx, jy = (jnp.asarray(a) for a in lstm_data(seq))
            t = time.perf_counter()
            jax.block_until_ready(jstep(jp, jx, jy))
            first = time.perf_counter() - t
            ms = median_ms(lambda: jax.block_until_ready(jstep(jp, jx, jy)), 3, warmup=1)
            record("lstm", f"T={seq} JAX jit: first call", first * 1e3, f"step {ms:.1f} ms")


# ---------------------------------------------------------------------------------------------
# 5. startup

_STARTUP = """
import time, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import run as b
f = b.graphc.jit(b.mlp_step)
p, x, y = b.mlp_data()
f(p, x, y)
print(time.time())  # the moment the first result exists
"""


def bench_startup(repeat: int) -> None:
    print("\n[5] process start to first result of the MLP step", flush=True)
    cache = tempfile.mkdtemp(prefix="graphc-bench-")
    code = _STARTUP.format(root=ROOT, bench=os.path.join(ROOT, "benchmarks"))
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache)

    def run_once() -> tuple[float, float]:
        """(process start to first result, process start to exit), in seconds."""
        t = time.time()
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return float(out.stdout.split()[-1]) - t, time.time() - t

    try:
        cold, cold_total = run_once()
        warm_runs = [run_once() for _ in range(5)]
        warm = float(np.median([r[0] for r in warm_runs]))
        warm_total = float(np.median([r[1] for r in warm_runs]))
        # the process total also holds interpreter shutdown, where Numba's LLVM teardown
        # alone takes about 0.3 s in any process that compiled or loaded a kernel
        record("startup", "graphc cold cache", cold * 1e3, f"process total {cold_total:.2f} s")
        record("startup", "graphc warm cache", warm * 1e3, f"process total {warm_total:.2f} s")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# 8. loops


def bench_scan(repeat: int) -> None:
    print("\n[8] scan: the RNN as one compiled loop, forward only", flush=True)
    W, U, b, xs = rnn_data()
    loops = {"scan": graphc.jit(rnn_loss_scan), "unrolled": graphc.jit(rnn_loss)}
    values = {}
    for name, f in loops.items():
        with cold_cache():
            t = time.perf_counter()
            values[name] = f(W, U, b, xs)
            first = time.perf_counter() - t
            ms = median_ms(lambda f=f: f(W, U, b, xs), repeat)
        record(
            "scan",
            f"RNN, {RNN_STEPS} steps, {name}, value (jit)",
            ms,
            f"steady state; first call {first:.1f} s",
        )
    gap = abs(float(values["scan"]) - float(values["unrolled"]))
    if gap > 1e-3 * max(1.0, abs(float(values["unrolled"]))):
        print(f"    warning: scan and unrolled values differ: {values}", flush=True)
    firsts = {}
    for steps in (64, 1024):
        # each run in a new process with a cold cache: in one process, the second compile of
        # a graph finds its module and kernels already loaded
        setup = (
            f"data = b.rnn_data({steps})\njf = b.graphc.jit(b.rnn_loss_scan)\nf = lambda: jf(*data)"
        )
        ts = first_call_in_new_process(setup)
        firsts[steps] = float(np.median(ts))
        record(
            "scan",
            f"RNN scan, {steps} steps, first call",
            firsts[steps] * 1e3,
            f"new process, cold cache; runs {', '.join(f'{t:.2f}' for t in ts)} s",
        )
    ratio = firsts[1024] / firsts[64]
    print(f"    first call, 1024 vs 64 steps: x{ratio:.2f} (target: within 20%)", flush=True)


# ---------------------------------------------------------------------------------------------
# 8. vmap


def example_loss(p, x, y):
    """Workload 2's loss for one example: x (784,), y an integer label."""
    h = gnp.relu(x @ p["W1"] + p["b1"])
    h = gnp.relu(h @ p["W2"] + p["b2"])
    return -gnp.log_softmax(h @ p["W3"] + p["b3"])[y]


JAC_N = 256


def jac_mlp(p, x):
    return np.tanh(p["W2"] @ np.tanh(p["W1"] @ x + p["b1"]) + p["b2"])


def jac_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    s = np.float32(1 / np.sqrt(JAC_N))
    p = {
        "W1": (rng.standard_normal((JAC_N, JAC_N)) * s).astype(np.float32),
        "b1": np.zeros(JAC_N, np.float32),
        "W2": (rng.standard_normal((JAC_N, JAC_N)) * s).astype(np.float32),
        "b2": np.zeros(JAC_N, np.float32),
    }
    return p, rng.standard_normal(JAC_N).astype(np.float32)


def bench_vmap(repeat: int) -> None:
    print("\n[8] vmap: per-example gradients (MLP, batch 256) and a 256x256 Jacobian", flush=True)
    p, x, y = mlp_data()
    pe = graphc.vmap(graphc.grad(example_loss), in_axes=(None, 0, 0))
    t = time.perf_counter()
    pe(p, x, y)
    first = time.perf_counter() - t
    t_g = median_ms(lambda: pe(p, x, y), repeat)
    peers: dict[str, float] = {}
    g1 = graphc.jit(graphc.grad(example_loss))
    g1(p, x[0], y[0])

    def loop():
        return [g1(p, x[i], y[i]) for i in range(x.shape[0])]

    peers["Python loop over graphc's compiled grad"] = median_ms(loop, max(3, repeat // 4), 1)
    if jax is not None:

        def jloss(p, x, y):
            h = jax.nn.relu(x @ p["W1"] + p["b1"])
            h = jax.nn.relu(h @ p["W2"] + p["b2"])
            return -jax.nn.log_softmax(h @ p["W3"] + p["b3"])[y]

        jf = jax.jit(jax.vmap(jax.grad(jloss), in_axes=(None, 0, 0)))
        jp = {k: jnp.asarray(v) for k, v in p.items()}
        jx, jy = jnp.asarray(x), jnp.asarray(y)
        peers["JAX jit(vmap(grad))"] = median_ms(
            lambda: jax.block_until_ready(jf(jp, jx, jy)), repeat
        )
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
        from torch.func import grad as tgrad
        from torch.func import vmap as tvmap

        def tloss(p, x, y):
            h = torch.relu(x @ p["W1"] + p["b1"])
            h = torch.relu(h @ p["W2"] + p["b2"])
            logits = h @ p["W3"] + p["b3"]
            return torch.nn.functional.cross_entropy(logits[None], y[None])

        tf = tvmap(tgrad(tloss), in_dims=(None, 0, 0))
        tp = {k: torch.from_numpy(v) for k, v in p.items()}
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        peers["torch.func.vmap(grad)"] = median_ms(lambda: tf(tp, tx, ty), repeat)
    best = min(peers.values()) if peers else None
    note = f"first call {first:.2f} s"
    if best is not None:
        note += f"; {t_g / best:.2f}x the fastest peer"
    record("vmap", "graphc vmap(grad), per-example", t_g, note)
    for name, ms in peers.items():
        record("vmap", name, ms, f"graphc / this = {t_g / ms:.2f}")

    pj, xj = jac_data()
    jac = graphc.jit(graphc.jacobian(jac_mlp, argnums=1, mode="reverse"))
    t = time.perf_counter()
    jac(pj, xj)
    first = time.perf_counter() - t
    t_j = median_ms(lambda: jac(pj, xj), repeat)
    note = f"first call {first:.2f} s"
    if jax is not None:

        def jmlp(p, x):
            return jnp.tanh(p["W2"] @ jnp.tanh(p["W1"] @ x + p["b1"]) + p["b2"])

        jj = jax.jit(jax.jacrev(jmlp, argnums=1))
        jpj, jxj = {k: jnp.asarray(v) for k, v in pj.items()}, jnp.asarray(xj)
        t_jax = median_ms(lambda: jax.block_until_ready(jj(jpj, jxj)), repeat)
        note += f"; {t_j / t_jax:.2f}x JAX"
    record("vmap", "graphc jit(jacobian), 256x256", t_j, note)
    if jax is not None:
        record("vmap", "JAX jit(jacrev), 256x256", t_jax)


# ---------------------------------------------------------------------------------------------
# 9. PyTorch-style training steps


def torchstyle_model(torch_mod, which: str):
    """The MLP or ConvNet of workloads 2 and 3 as a PyTorch module, built with `torch_mod`
    (real PyTorch or graphc.torch: the code is the same)."""
    nn = torch_mod.nn
    if which == "mlp":
        return nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)
        )
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 10),
    )


def torchstyle_step(torch_mod, model):
    """A PyTorch training step (SGD, lr 0.01), written once for both libraries."""
    loss_fn = torch_mod.nn.CrossEntropyLoss()
    opt = torch_mod.optim.SGD(model.parameters(), lr=0.01)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def interleaved_ms(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median milliseconds per call of each function, timed in turn (one call of each per
    round, after two warm-up rounds): on a shared machine whose load changes, every variant
    sees the same conditions, so the ratios between them mean something."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeat + 2):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if r >= 2:
                times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


def bench_torchstyle(repeat: int) -> None:
    print("\n[9] PyTorch-style training steps: graphc.torch, PyTorch, graphc.nn", flush=True)
    import graphc.torch as gtorch
    from graphc import nn as gnn

    if torch is not None:  # as the other workloads, unless OMP_NUM_THREADS says otherwise
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    rng = np.random.default_rng(0)
    shapes = {"mlp": ((256, 784), 256), "convnet": ((64, 1, 28, 28), 64)}
    for which, (xshape, n) in shapes.items():
        x = rng.random(xshape, dtype=np.float32)
        y = rng.integers(0, 10, n)
        w = f"{which} (torch style)"
        if which == "mlp":
            base_model = gnn.Chain(
                gnn.Dense(784, 512, act=gnn.relu),
                gnn.Dense(512, 256, act=gnn.relu),
                gnn.Dense(256, 10),
            )
        else:
            base_model = gnn.Chain(
                gnn.Conv2d(1, 8, 3, act=gnn.relu),
                gnn.MaxPool2d(2),
                gnn.Conv2d(8, 16, 3, act=gnn.relu),
                gnn.MaxPool2d(2),
                gnn.Flatten(),
                gnn.Dense(400, 10),
            )
        ts = gnn.train_step(base_model, gnn.cross_entropy, gnn.SGD(lr=0.01))
        st = ts.init(base_model)
        fns: dict[str, Callable[[], object]] = {"base": lambda: ts(base_model, st, x, y)}

        gtorch.manual_seed(0)
        gx, gy = gtorch.from_numpy(x), gtorch.from_numpy(y)
        step = torchstyle_step(gtorch, torchstyle_model(gtorch, which))
        before = gtorch.cache_info()
        t = time.perf_counter()
        step(gx, gy)
        first = time.perf_counter() - t
        fns["plain"] = lambda: step(gx, gy)
        cstep = gtorch.compile(torchstyle_step(gtorch, torchstyle_model(gtorch, which)))
        fns["compiled"] = lambda: cstep(gx, gy)
        # graphc's three in turn; PyTorch's after them, on their own: its worker threads spin
        # on after a call and would slow down whichever call came next
        ms = interleaved_ms(fns, repeat)
        after = gtorch.cache_info()
        base = ms["base"]
        record(w, "graphc.nn train_step (baseline)", base, "timed in turn with the next two")
        record(
            w,
            "graphc.torch plain loop",
            ms["plain"],
            f"{ms['plain'] / base:.2f}x baseline; first call {first:.2f} s; "
            f"{after.compiles - before.compiles} compile(s) in "
            f"{after.realizations - before.realizations} realizations",
        )
        record(w, "graphc.torch.compile", ms["compiled"], f"{ms['compiled'] / base:.2f}x baseline")
        if torch is None:
            record(w, "torch eager", None, "torch not installed")
            continue
        torch.manual_seed(0)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        eager = torchstyle_step(torch, torchstyle_model(torch, which))
        te = median_ms(lambda: eager(tx, ty), repeat)
        record(
            w,
            "torch eager",
            te,
            f"graphc.torch plain {ms['plain'] / te:.2f}x, compiled {ms['compiled'] / te:.2f}x",
        )
        try:
            tc = torch.compile(torchstyle_step(torch, torchstyle_model(torch, which)))
            t = time.perf_counter()
            tc(tx, ty)
            first = time.perf_counter() - t
            record(
                w,
                "torch.compile",
                median_ms(lambda: tc(tx, ty), repeat),
                f"first call {first:.1f} s",
            )
        except Exception as e:  # torch.compile needs a working C++ toolchain
            record(w, "torch.compile", None, f"failed: {type(e).__name__}")


BENCHES = {
    "gelu": bench_gelu,
    "mlp": bench_mlp,
    "convnet": bench_convnet,
    "chain": bench_chain,
    "startup": bench_startup,
    "large": bench_large,
    "compile": bench_compile,
    "scan": bench_scan,
    "lstm": bench_lstm,
    "vmap": bench_vmap,
    "torchstyle": bench_torchstyle,
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="*", default=list(BENCHES))
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    load_peers()
    print(
        f"graphc {graphc.__version__}; numpy {np.__version__}; "
        f"torch {getattr(torch, '__version__', 'not installed')}; "
        f"jax {getattr(jax, '__version__', 'not installed')}; {os.cpu_count()} cores"
    )
    for name in args.which:
        BENCHES[name](args.repeat)
    print("\nsummary (median ms)")
    for w, impl, ms, note in RESULTS:
        print(f"{w:<8} {impl:<38} {'-' if ms is None else f'{ms:.2f}':>10}  {note}")


if __name__ == "__main__":
    main()
