"""Compiled results against NumPy over the whole domain: special values bit for bit, the
documented ulp bounds elsewhere, accurate long reductions, exp2/log2/log10 as primitives.

Every unary function runs through a fused kernel and through the tape machine; reductions run
through fused kernels (one and several reduced axes), row kernels and the tape machine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from reliability.floats import ulps

import graphc

F32, F64 = np.float32, np.float64


def special_inputs(dt) -> np.ndarray:
    """Zeros of both signs, infinities, NaN, subnormals, the largest values, 1, and the
    overflow/underflow edges of exp, exp2, expm1, sinh and cosh in both precisions."""
    fi = np.finfo(dt)
    vals = [0.0, np.inf, np.nan, fi.smallest_subnormal, fi.smallest_normal, fi.max, 1.0, 0.5,
            2.0, 10.0, 1e-30, 3.0, 88.72283, 88.72284, 89.41599, 103.97208, 104.0, 127.99999,
            128.0, 149.0, 149.5, 150.0, 709.782712893384, 709.7827128933841, 710.4758600739439,
            745.1332191019411, 1023.9999999999999, 1024.0, 1074.0, 1074.5, 1075.0, 1e6,
            1e8]  # fmt: skip
    with np.errstate(over="ignore"):
        x = np.array(vals, dt)
    return np.unique(np.concatenate([x, -x]))


# (NumPy function, max ulps from the reference where that is finite and nonzero; where it is 0,
# inf or NaN we must give exactly the same, sign of zero included). The reference is NumPy's
# result for float64 and glibc's float64 result rounded to float32 for float32: NumPy's own
# float32 functions are not all correctly rounded (its exp2 gives 0 for 2^-149.5, whose
# nearest float32 is 2^-149, and is 2 subnormal ulps off near 2^-126).
UNARY = [
    (np.negative, 0), (np.positive, 0), (np.absolute, 0), (np.fabs, 0), (np.sign, 0),
    (np.exp, 2), (np.exp2, 2), (np.expm1, 3), (np.log, 2), (np.log2, 2), (np.log10, 3),
    (np.log1p, 2), (np.sqrt, 0), (np.cbrt, 2), (np.square, 0), (np.reciprocal, 0),
    (np.sin, 3), (np.cos, 3), (np.tan, 5), (np.sinh, 3), (np.cosh, 3), (np.tanh, 2),
    (np.arcsin, 3), (np.arccos, 3), (np.arctan, 2), (np.arcsinh, 3), (np.arccosh, 3),
    (np.arctanh, 3), (np.floor, 0), (np.ceil, 0), (np.trunc, 0), (np.rint, 0),
    (np.deg2rad, 0), (np.rad2deg, 0),
]  # fmt: skip


# exact operations, and NumPy's own formulas in the operand's precision: NumPy's float32 result
NUMPY_F32 = {np.negative, np.positive, np.absolute, np.fabs, np.sign, np.sqrt, np.square,
             np.reciprocal, np.floor, np.ceil, np.trunc, np.rint, np.deg2rad,
             np.rad2deg}  # fmt: skip


def reference(f, x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if x.dtype == F32 and f not in NUMPY_F32:
            return f(x.astype(F64)).astype(F32)
        return f(x)


def _compare(name: str, x: np.ndarray, got: np.ndarray, want: np.ndarray, bound: float) -> None:
    assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
    exact = ~np.isfinite(want) | (want == 0)
    g, w = got[exact], want[exact]
    same = (np.isnan(g) & np.isnan(w)) | ((g == w) & (np.signbit(g) == np.signbit(w)))
    assert same.all(), (name, x.dtype, x[exact][~same], g[~same], w[~same])
    # a zero from us where NumPy's is nonzero would hide behind the ulp distance of tiny values
    assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all(), name
    err = ulps(got[~exact], want[~exact])
    assert err.max(initial=0) <= bound, (name, x.dtype, x[~exact][err.argmax()], err.max())


# the functions whose ops the tape machine runs (a group with any other op is compiled instead)
TAPE = {np.negative, np.absolute, np.fabs, np.sign, np.exp, np.exp2, np.expm1, np.log, np.log2,
        np.log10, np.log1p, np.sqrt, np.cbrt, np.square, np.reciprocal, np.sin, np.cos, np.tan,
        np.tanh, np.floor, np.ceil, np.rint, np.deg2rad, np.rad2deg}  # fmt: skip


@pytest.mark.parametrize("dt", [F32, F64])
def test_every_unary_function_matches_numpy_at_special_values(path, dt):
    """One graph with every unary function, so each path compiles once per dtype."""
    x = special_inputs(dt)
    table = [(f, b) for f, b in UNARY if path == "kernel" or f in TAPE]
    fns = [f for f, _ in table]

    def all_fns(v):
        return tuple(f(v) for f in fns)

    jitted = graphc.jit(all_fns)
    got = jitted(x)
    assert ("_vm_run(" in jitted.lower(x).source) == (path == "tape")
    with np.errstate(all="ignore"):
        for (f, bound), g in zip(table, got, strict=True):
            _compare(f.__name__, x, np.asarray(g), reference(f, x), bound)


@pytest.mark.parametrize("dt", [F32, F64])
def test_every_unary_function_within_bound_on_spread_inputs(dt):
    """Bit patterns spread over every binade (both signs, subnormals) and dense ranges."""
    it = np.uint32 if dt == F32 else np.uint64
    n = 20_000
    step = (1 << (32 if dt == F32 else 64)) // n
    bits = (np.arange(n, dtype=np.uint64) * np.uint64(step) + np.uint64(12345)).astype(it)
    rng = np.random.default_rng(4)
    dense = rng.uniform(-800, 800, n)
    small = rng.uniform(-1, 1, n) * 10.0 ** rng.uniform(-12, 1, n)
    x = np.concatenate([bits.view(dt), dense.astype(dt), small.astype(dt)])
    x = x[np.isfinite(x)]
    fns = [f for f, _ in UNARY]
    got = graphc.jit(lambda v: tuple(f(v) for f in fns))(x)
    with np.errstate(all="ignore"):
        for (f, bound), g in zip(UNARY, got, strict=True):
            _compare(f.__name__, x, np.asarray(g), reference(f, x), bound)


# ---------------------------------------------------------------------------------------------
# exp2, log2, log10: primitives, correctly rounded or within 1 ulp, exact where NumPy is


def _f32_reference(f, x: np.ndarray) -> np.ndarray:
    """glibc's float64 function rounded to float32: the correctly rounded result but for
    double rounding (NumPy's own float32 versions are up to 2 ulp off)."""
    with np.errstate(all="ignore"):
        return f(x.astype(F64)).astype(F32)


@pytest.mark.parametrize("f", [np.exp2, np.log2, np.log10])
def test_exp2_log2_log10_are_primitives_within_1_ulp(f):
    g = graphc.jit(lambda v: f(v))
    text = str(graphc.trace(lambda v: f(v), np.ones(3)))
    assert f.__name__ in text and "exp " not in text and "mul" not in text, text
    rng = np.random.default_rng(1)
    lo, hi = (-1100, 1100) if f is np.exp2 else (0, 50)
    x64 = np.concatenate([rng.uniform(lo, hi, 50_000), 10.0 ** rng.uniform(-300, 300, 20_000)])
    with np.errstate(all="ignore"):
        assert ulps(g(x64), f(x64)).max() <= 1
    x32 = np.concatenate([rng.uniform(-160, 160, 50_000), rng.uniform(0, 4, 50_000)]).astype(F32)
    x32 = np.concatenate([x32, (10.0 ** rng.uniform(-44, 38, 20_000)).astype(F32)])
    assert ulps(g(x32), _f32_reference(f, x32)).max() <= 1


@pytest.mark.parametrize("dt", [F32, F64])
def test_exp2_overflow_underflow_and_exact_values(dt):
    fi = np.finfo(dt)
    top = 128.0 if dt == F32 else 1024.0
    low = 149.0 if dt == F32 else 1074.0
    x = np.array(
        [top, np.nextafter(dt(top), dt(0)), -low, -low - 0.5, -low - 1, -low + 0.5,
         -(top - 2), 0.0, -0.0, 1.0, 10.0, -3.0, np.inf, -np.inf, np.nan],
        dt,
    )  # fmt: skip
    got = graphc.jit(lambda v: np.exp2(v))(x)
    want = reference(np.exp2, x)
    assert got[0] == np.inf and np.isfinite(got[1])  # overflows exactly where NumPy's does
    assert got[2] == fi.smallest_subnormal and got[4] == 0
    _compare("exp2", x, got, want, 0)
    k = np.arange(-int(low), int(top), dtype=dt)  # exact powers (NumPy's float32 2^127 is not)
    assert np.array_equal(graphc.jit(lambda v: np.exp2(v))(k), np.ldexp(dt(1), k.astype(int)))


@pytest.mark.parametrize("dt", [F32, F64])
def test_log2_log10_exact_at_powers_and_special_values(dt):
    k = np.arange(-149 if dt == F32 else -1074, 128 if dt == F32 else 1024)
    p2 = np.ldexp(dt(1), k).astype(dt)
    assert np.array_equal(graphc.jit(lambda v: np.log2(v))(p2), k.astype(dt))
    n = 10 if dt == F32 else 22  # 10^n is exact up to here
    p10 = np.array([10.0**i for i in range(n + 1)], dt)
    assert np.array_equal(graphc.jit(lambda v: np.log10(v))(p10), np.arange(n + 1, dtype=dt))
    x = np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, np.finfo(dt).smallest_subnormal], dt)
    for f in (np.log2, np.log10):
        with np.errstate(all="ignore"):
            _compare(f.__name__, x, graphc.jit(lambda v, f=f: f(v))(x), f(x), 1)


@pytest.mark.parametrize("f", [np.exp2, np.log2, np.log10])
def test_exp2_log2_log10_gradients(f):
    x = np.array([0.3, 1.7, 4.0, 9.5])
    graphc.check_grads(lambda v: np.sum(f(v) * v), (x,), order=2)
    d = {np.exp2: np.exp2(x) * math.log(2), np.log2: 1 / (x * math.log(2)),
         np.log10: 1 / (x * math.log(10))}[f]  # fmt: skip
    np.testing.assert_allclose(graphc.grad(lambda v: np.sum(f(v)))(x), d, rtol=1e-14)


def test_integer_inputs_promote_like_numpy():
    k = np.arange(-5, 6)
    for f in (np.exp2, np.log2, np.log10):
        with np.errstate(all="ignore"):
            got, want = graphc.jit(lambda v, f=f: f(v))(k), f(k)
        assert got.dtype == want.dtype and ulps(got, want).max() <= 1


# ---------------------------------------------------------------------------------------------
# signed zeros and other compositions


@pytest.mark.parametrize("dt", [F32, F64])
def test_sign_of_zero_and_nan(path, dt):
    x = np.array([-0.0, 0.0, np.nan, -np.inf, np.inf, -2.0, 3.0, -np.finfo(dt).smallest_subnormal],
                 dt)  # fmt: skip
    jitted = graphc.jit(lambda v: (np.sign(v), np.cbrt(v), -v, np.abs(v), np.sqrt(v)))
    got = jitted(x)
    assert ("_vm_run(" in jitted.lower(x).source) == (path == "tape")
    for f, g in zip((np.sign, np.cbrt, np.negative, np.abs, np.sqrt), got, strict=True):
        with np.errstate(invalid="ignore"):
            _compare(f.__name__, x, g, f(x), 0 if f is not np.cbrt else 1)


@pytest.mark.parametrize("dt", [F32, F64])
def test_binary_functions_special_values(dt):
    """remainder's zero takes the divisor's sign; power, logaddexp, logaddexp2, hypot, arctan2,
    fmod, copysign and floor_divide match NumPy on every pair of special values."""
    fi = np.finfo(dt)
    sv = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -2.0, 3.5, -3.5,
                   fi.max, -fi.max, fi.smallest_subnormal, 1e-30, 100.0], dt)  # fmt: skip
    a, b = (v.ravel() for v in np.meshgrid(sv, sv))
    fns = [(np.remainder, 0), (np.fmod, 0), (np.floor_divide, 0), (np.copysign, 0),
           (np.power, 2), (np.logaddexp, 2), (np.logaddexp2, 3), (np.hypot, 1),
           (np.arctan2, 2)]  # fmt: skip
    got = graphc.jit(lambda x, y: tuple(f(x, y) for f, _ in fns))(a, b)
    with np.errstate(all="ignore"):
        for (f, bound), g in zip(fns, got, strict=True):
            _compare(f.__name__, a, g, f(a, b), bound)


@pytest.mark.parametrize("dt", [F32, F64])
def test_angle_conversions_use_numpys_constants(dt):
    x = np.random.default_rng(2).uniform(-1000, 1000, 5000).astype(dt)
    for f in (np.rad2deg, np.deg2rad, np.radians, np.degrees):
        assert np.array_equal(graphc.jit(lambda v, f=f: f(v))(x), f(x)), f.__name__


# ---------------------------------------------------------------------------------------------
# long reductions: error close to NumPy's pairwise summation on every compiled path


def _exact_sum(x: np.ndarray) -> float:
    return math.fsum(x.astype(F64).ravel())


@pytest.fixture(scope="module")
def big32():
    rng = np.random.default_rng(0)
    return rng.random(1 << 24, dtype=F32)


@pytest.mark.slow
def test_long_float32_sums_are_accurate(path, big32):
    x = big32
    n = x.size
    exact = _exact_sum(x)
    xd = x.astype(F64)
    cases = {
        "sum": (lambda a: np.sum(a), exact),
        "mean": (lambda a: np.mean(a), exact / n),
        "sum of squares": (lambda a: np.sum(a * a), math.fsum((xd * xd).tolist())),
        "rows": (lambda a: np.sum(a.reshape(4, -1), axis=1), None),
        "variance": (lambda a: np.var(a), float(np.mean((xd - xd.mean()) ** 2))),
    }
    for name, (f, want) in cases.items():
        got = np.asarray(graphc.jit(f)(x), F64)
        if want is None:
            want = np.array([_exact_sum(r) for r in x.reshape(4, -1)])
        rel = np.max(np.abs(got - want) / np.abs(want))
        ref = np.max(np.abs(np.asarray(f(x), F64) - want) / np.abs(want))
        # NumPy: ~1e-8 here; a sequential sum of 2^24 float32 values errs by ~1e-4
        assert rel <= max(8 * ref, 2e-7), (name, path, rel, ref)


def test_sum_over_several_reduced_axes_is_blocked():
    """A reduction whose reduced axes cannot be collapsed (a broadcast operand) folds each
    pass over the innermost axis as a block."""
    rng = np.random.default_rng(3)
    a = rng.random(4096, dtype=F32)
    b = rng.random(1024, dtype=F32)
    got = float(graphc.jit(lambda u, v: np.sum(u[:, None] * v[None, :]))(a, b))
    want = math.fsum((a[:, None].astype(F64) * b[None, :]).ravel())
    assert abs(got - want) / want <= 2e-7
