"""Time graphc.codegen.mathlib against NumPy and against libm calls in a Numba loop.

For each function and dtype, over N elements (default 4M), prints the time per element of
  numpy:  the NumPy ufunc on the whole array (NumPy's own SIMD loops where it has them),
  libm:   an @njit loop calling the scalar math/np function (what Numba does without SVML),
  ours:   the same @njit loop calling graphc.codegen.mathlib's function,
each the median of R runs, and the speed-ups of ours. Not a test: run it by hand.

    .venv/bin/python benchmarks/mathlib_bench.py [--n 4000000] [--repeats 9] [--only exp,tanh]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from numba import njit

from graphc.codegen import mathlib as ml

try:
    from scipy.special import erf as _np_erf
except ImportError:  # SciPy is optional: no NumPy column for erf without it
    _np_erf = None

# inputs: a range where each function does real work
RANGES = {
    "exp": {"f32": (-80, 80), "f64": (-700, 700)},
    "expm1": {"f32": (-20, 80), "f64": (-40, 700)},
    "log": (1e-3, 1e3),
    "log1p": (-0.9, 1e3),
    "tanh": (-10, 10),
    "sigmoid": (-20, 20),
    "softplus": (-20, 20),
    "erf": (-5, 5),
    "sin": (-100, 100),
    "cos": (-100, 100),
    "tan": (-100, 100),
}


def numpy_fn(op):
    if op == "sigmoid":
        return lambda x: 1 / (1 + np.exp(-x))
    if op == "softplus":
        return lambda x: np.logaddexp(x.dtype.type(0), x)
    if op == "erf":
        return _np_erf
    return getattr(np, op)


def libm_fn(op, t):
    """The scalar function a generated kernel would call without mathlib (t: the scalar type)."""
    one = t(1)
    if op == "sigmoid":
        return njit(lambda v: one / (one + np.exp(-v)))
    if op == "softplus":
        return njit(lambda v: np.logaddexp(v * 0, v))
    if op == "erf":
        return njit(lambda v: math.erf(v))
    f = getattr(np, op)
    return njit(lambda v: f(v))


def loop(fn):
    @njit(error_model="numpy")
    def kernel(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return kernel


def median_time(f, repeats):
    f()  # warm up (and compile)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--only", default="", help="comma-separated function names")
    args = ap.parse_args()
    ops = [o for o in ml.OPS if not args.only or o in args.only.split(",")]
    rng = np.random.default_rng(0)
    print(f"n = {args.n:,} elements, median of {args.repeats} runs, time per element in ns")
    print(f"{'function':12s} {'numpy':>8s} {'libm':>8s} {'ours':>8s} "
          f"{'libm/ours':>10s} {'numpy/ours':>11s}")  # fmt: skip
    for dt, t in (("f32", np.float32), ("f64", np.float64)):
        for op in ops:
            lo, hi = RANGES[op][dt] if isinstance(RANGES[op], dict) else RANGES[op]
            x = rng.uniform(lo, hi, args.n).astype(t)
            out = np.empty_like(x)
            per = 1e9 / args.n
            npf = numpy_fn(op)
            t_np = median_time(lambda: npf(x), args.repeats) * per if npf else float("nan")
            k_libm, k_ours = loop(libm_fn(op, t)), loop(ml.FUNCS[(op, dt)])
            t_libm = median_time(lambda: k_libm(x, out), args.repeats) * per
            t_ours = median_time(lambda: k_ours(x, out), args.repeats) * per
            print(f"{op + '_' + dt:12s} {t_np:8.2f} {t_libm:8.2f} {t_ours:8.2f} "
                  f"{t_libm / t_ours:9.1f}x {t_np / t_ours:10.1f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
