"""The main job shown by `make demo`: graphc end to end on the seed functions.

1. trace NumPy functions and print their IR;
2. derive a gradient graph and split it into forward and backward graphs;
3. optimize and fuse, showing each pass and the fused kernels;
4. compile with Numba and run, compared with NumPy.
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seeds  # noqa: E402

import graphc  # noqa: E402
from graphc import numpy as gnp  # noqa: E402
from passes import COMPILE_PIPELINE, run_pipeline  # noqa: E402
from passes.autodiff import vjp  # noqa: E402
from passes.partition import partition  # noqa: E402


def banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}")


def median_ms(fn, repeat: int = 15) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def main() -> None:
    banner("1. Tracing: NumPy functions become graph IR")
    for name in ("poly", "sqdiff", "mlp"):
        fn = getattr(seeds, name)
        print(f"\n-- {name}: {fn.__doc__.splitlines()[0]}")
        print(graphc.trace(fn, *seeds.EXAMPLE_ARGS[name]).verify().pretty())

    banner("2. Differentiation: the gradient graph of the MLP's squared error, and its split")
    g = graphc.trace(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"])
    joint = vjp(g, wrt=[2, 3, 4, 5]).verify()
    print("joint graph (outputs: loss, dW1, db1, dW2, db2):")
    print(joint)
    p = partition(joint)
    print(f"\nforward graph: {len(p.forward.equations)} equations; backward graph: "
          f"{len(p.backward.equations)} equations; {len(p.residuals)} saved residuals "
          f"({p.residual_bytes} bytes): {', '.join(str(r.aval) for r in p.residuals)}")

    banner("3. Optimization and fusion: gelu(x) * w summed, with both gradients")

    def gelu_loss(x, w):
        return np.sum(gnp.gelu(x) * w)

    vg = graphc.value_and_grad(gelu_loss, argnums=(0, 1))
    traced = graphc.trace(vg, graphc.spec("f32[4194304]"), graphc.spec("f32[4194304]"))
    print(f"before: {len(traced.equations)} equations")
    fused = run_pipeline(traced, COMPILE_PIPELINE, diffs=True)
    for rec in fused.info["pipeline"]:
        print("  " + rec.summary())
    print("after:")
    print(fused)

    banner("4. Compiled with Numba: the same function, run")
    rng = np.random.default_rng(0)
    n = 1 << 22
    x = rng.standard_normal(n).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    f = graphc.jit(vg)
    t = time.perf_counter()
    (value, (gx, gw)) = f(x, w)
    print(f"first call (trace + passes + codegen + compile or cache load): "
          f"{time.perf_counter() - t:.2f} s")

    def numpy_version():
        c = np.float32(0.7978845608)
        t = np.tanh(c * (x + np.float32(0.044715) * x**3))
        gelu = 0.5 * x * (1 + t)
        loss = np.sum(gelu * w)
        dgelu = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * np.float32(0.044715) * x * x)
        return loss, w * dgelu, gelu

    ref = numpy_version()
    print(f"loss {float(value):.4f} (NumPy {float(ref[0]):.4f}); max |dx - NumPy| "
          f"{float(np.max(np.abs(gx - ref[1]))):.2e}; max |dw - NumPy| "
          f"{float(np.max(np.abs(gw - ref[2]))):.2e}")
    t_graphc = median_ms(lambda: f(x, w))
    t_numpy = median_ms(numpy_version, repeat=5)
    print(f"steady state over 2^22 float32 elements: graphc {t_graphc:.1f} ms, hand-written NumPy "
          f"{t_numpy:.1f} ms ({t_numpy / t_graphc:.0f}x)")
    lowered = f.lower(x, w)
    print(f"\n{lowered}; generated module: {lowered.path}")
    kernel = lowered.source[lowered.source.index("@njit"):lowered.source.index("def run")]
    print(kernel.rstrip())


if __name__ == "__main__":
    main()
