"""Accuracy, special values and vectorization of graphc.codegen.mathlib.

Every function runs inside Numba loop kernels like the generated ones: four kernels in all (float32
and float64, each strict and with fastmath={"contract", "reassoc", "arcp"}), each computing all
the functions, so the whole file compiles only a handful of kernels. Errors are measured in ulps
against a reference computed in higher precision (float64 for float32 functions, long double or
glibc's erf for float64 functions) and rounded to the working precision.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from numba import njit

from graphc.codegen import mathlib as ml
from graphc.codegen.mathlib import (
    acos_f32,
    acos_f64,
    acosh_f32,
    acosh_f64,
    asin_f32,
    asin_f64,
    asinh_f32,
    asinh_f64,
    atan2_f32,
    atan2_f64,
    atan_f32,
    atan_f64,
    atanh_f32,
    atanh_f64,
    cbrt_f32,
    cbrt_f64,
    cos_f32,
    cos_f64,
    cosh_f32,
    cosh_f64,
    erf_f32,
    erf_f64,
    exp2_f32,
    exp2_f64,
    exp_f32,
    exp_f64,
    expm1_f32,
    expm1_f64,
    floor_divide_f32,
    floor_divide_f64,
    hypot_f32,
    hypot_f64,
    log1p_f32,
    log1p_f64,
    log2_f32,
    log2_f64,
    log10_f32,
    log10_f64,
    log_f32,
    log_f64,
    remainder_f32,
    remainder_f64,
    sigmoid_f32,
    sigmoid_f64,
    sin_f32,
    sin_f64,
    sinh_f32,
    sinh_f64,
    softplus_f32,
    softplus_f64,
    tan_f32,
    tan_f64,
    tanh_f32,
    tanh_f64,
)

OPS = (
    "exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus", "erf", "sin", "cos", "tan",
    "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh", "atanh", "exp2", "log2", "log10",
    "cbrt",
)  # fmt: skip
BINARY = ("atan2", "hypot", "floor_divide", "remainder")
NUMPY_NAME = dict(asin="arcsin", acos="arccos", atan="arctan", asinh="arcsinh", acosh="arccosh",
                  atanh="arctanh", atan2="arctan2")  # fmt: skip
DTYPES = {"f32": np.float32, "f64": np.float64}

# Max ulp error over the whole domain (sin/cos/tan included: huge arguments are reduced exactly), as
# documented in the
# mathlib docstring (float32: all 2^32 inputs checked; float64: 12.8M sampled inputs; the sample
# here is smaller). float64 erf is compared with glibc's erf (itself within 0.8 ulp).
MAX_ULP = {
    "f32": dict(exp=1, expm1=1, log=1, log1p=1, tanh=1, sigmoid=2, softplus=2, erf=1, sin=1, cos=1,
                tan=1, sinh=1, cosh=1, asin=1, acos=1, atan=1, asinh=1, acosh=1, atanh=1,
                atan2=1, hypot=1, floor_divide=0, remainder=0, exp2=1, log2=1, log10=1, cbrt=1),
    "f64": dict(exp=1, expm1=2, log=1, log1p=1, tanh=1, sigmoid=2, softplus=2, erf=2, sin=2, cos=2,
                tan=4, sinh=2, cosh=2, asin=2, acos=2, atan=1, asinh=2, acosh=2, atanh=2,
                atan2=2, hypot=1, floor_divide=0, remainder=0, exp2=1, log2=1, log10=1, cbrt=1),
}  # fmt: skip
# below these the fast Cody-Waite reduction is used, beyond them the out-of-line Payne-Hanek one
TRIG_FAST = {"f32": 1.5 * 2.0**35, "f64": 1.5 * 2.0**29}
FASTMATH = {"contract", "reassoc", "arcp"}


# ---------------------------------------------------------------------------------------------
# kernels: a loop like the generated ones, all functions in one loop body


@njit(error_model="numpy")
def _all_f32(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[0, i] = exp_f32(v)
        out[1, i] = expm1_f32(v)
        out[2, i] = log_f32(v)
        out[3, i] = log1p_f32(v)
        out[4, i] = tanh_f32(v)
        out[5, i] = sigmoid_f32(v)
        out[6, i] = softplus_f32(v)
        out[7, i] = erf_f32(v)
        out[8, i] = sin_f32(v)
        out[9, i] = cos_f32(v)
        out[10, i] = tan_f32(v)


# the inverse and hyperbolic functions in a loop of their own: one loop body with all 19 is
# too large for LLVM's loop vectorizer (each function alone, or these groups, vectorize)
@njit(error_model="numpy")
def _more_f32(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[11, i] = sinh_f32(v)
        out[12, i] = cosh_f32(v)
        out[13, i] = asin_f32(v)
        out[14, i] = acos_f32(v)
        out[15, i] = atan_f32(v)
        out[16, i] = asinh_f32(v)
        out[17, i] = acosh_f32(v)
        out[18, i] = atanh_f32(v)


@njit(error_model="numpy")
def _exp_log_f32(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[19, i] = exp2_f32(v)
        out[20, i] = log2_f32(v)
        out[21, i] = log10_f32(v)
        out[22, i] = cbrt_f32(v)


@njit(error_model="numpy")
def _binary_f32(x, y, out):
    for i in range(x.shape[0]):
        out[0, i] = atan2_f32(x[i], y[i])
        out[1, i] = hypot_f32(x[i], y[i])
        out[2, i] = floor_divide_f32(x[i], y[i])
        out[3, i] = remainder_f32(x[i], y[i])


@njit(error_model="numpy")
def _all_f64(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[0, i] = exp_f64(v)
        out[1, i] = expm1_f64(v)
        out[2, i] = log_f64(v)
        out[3, i] = log1p_f64(v)
        out[4, i] = tanh_f64(v)
        out[5, i] = sigmoid_f64(v)
        out[6, i] = softplus_f64(v)
        out[7, i] = erf_f64(v)
        out[8, i] = sin_f64(v)
        out[9, i] = cos_f64(v)
        out[10, i] = tan_f64(v)


# the inverse and hyperbolic functions in a loop of their own: one loop body with all 19 is
# too large for LLVM's loop vectorizer (each function alone, or these groups, vectorize)
@njit(error_model="numpy")
def _more_f64(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[11, i] = sinh_f64(v)
        out[12, i] = cosh_f64(v)
        out[13, i] = asin_f64(v)
        out[14, i] = acos_f64(v)
        out[15, i] = atan_f64(v)
        out[16, i] = asinh_f64(v)
        out[17, i] = acosh_f64(v)
        out[18, i] = atanh_f64(v)


@njit(error_model="numpy")
def _exp_log_f64(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[19, i] = exp2_f64(v)
        out[20, i] = log2_f64(v)
        out[21, i] = log10_f64(v)
        out[22, i] = cbrt_f64(v)


@njit(error_model="numpy")
def _binary_f64(x, y, out):
    for i in range(x.shape[0]):
        out[0, i] = atan2_f64(x[i], y[i])
        out[1, i] = hypot_f64(x[i], y[i])
        out[2, i] = floor_divide_f64(x[i], y[i])
        out[3, i] = remainder_f64(x[i], y[i])


@njit(cache=True)
def _erf_ref(x, out):
    for i in range(x.shape[0]):
        out[i] = math.erf(x[i])


_STRICT = {
    "f32": (_all_f32, _more_f32, _exp_log_f32),
    "f64": (_all_f64, _more_f64, _exp_log_f64),
}
# not cached, so that their LLVM IR can be inspected; default error_model ("python")
_FAST = {dt: tuple(njit(fastmath=FASTMATH)(k.py_func) for k in ks) for dt, ks in _STRICT.items()}


def run_all(x: np.ndarray, fast: bool = False) -> dict[str, np.ndarray]:
    dt = "f32" if x.dtype == np.float32 else "f64"
    out = np.empty((len(OPS), x.size), x.dtype)
    for kern in (_FAST if fast else _STRICT)[dt]:
        kern(np.ascontiguousarray(x), out)
    return dict(zip(OPS, out, strict=True))


def run_binary(x: np.ndarray, y: np.ndarray, dt: str) -> dict[str, np.ndarray]:
    t = DTYPES[dt]
    x, y = np.ascontiguousarray(x, t), np.ascontiguousarray(y, t)
    out = np.empty((len(BINARY), x.size), t)
    {"f32": _binary_f32, "f64": _binary_f64}[dt](x, y, out)
    return dict(zip(BINARY, out, strict=True))


# ---------------------------------------------------------------------------------------------
# references and ulp distance


def ulp_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in units in the last place, via the bit patterns: floats are mapped to integers
    that are monotonic in the value (-0.0 and +0.0 both map to 0), so the distance counts the
    representable numbers between a and b. Two NaNs are 0 apart, a NaN and a number infinitely.
    """
    assert a.dtype == b.dtype
    it = np.int32 if a.dtype == np.float32 else np.int64
    lo = np.iinfo(it).min

    def ordered(v):
        i = v.view(it).astype(np.int64)
        return np.where(i < 0, np.int64(lo) - i, i)  # sign-magnitude -> two's complement

    ia, ib = ordered(a), ordered(b)
    same_sign = (ia < 0) == (ib < 0)
    with np.errstate(over="ignore"):
        d = np.where(same_sign, np.abs(ia - ib).astype(np.float64),
                     np.abs(ia.astype(np.float64) - ib.astype(np.float64)))  # fmt: skip
    na, nb = np.isnan(a), np.isnan(b)
    d[na & nb] = 0.0
    d[na ^ nb] = np.inf
    return d


def test_ulp_diff():
    f = np.float32
    a = np.array([1.0, 1.0, -0.0, 0.0, np.nan, np.inf, 1e-45, -1e-45, 3.4028235e38], f)
    b = np.array([1.0, np.nextafter(f(1), f(2)), 0.0, 1e-45, np.nan, 3.4028235e38, -1e-45, 0.0,
                  np.inf], f)  # fmt: skip
    assert ulp_diff(a, b).tolist() == [0, 1, 0, 1, 0, 1, 2, 1, 1]
    x = np.array([1.0, -2.0, 5e-324, -np.inf], np.float64)
    y = np.array([np.nextafter(1.0, 0.0), np.nextafter(-2.0, -3.0), -5e-324, np.nan], np.float64)
    assert ulp_diff(x, y).tolist() == [1, 1, 2, np.inf]
    assert ulp_diff(np.array([1e300]), np.array([-1e300]))[0] > 1e18


def reference(op: str, x: np.ndarray) -> np.ndarray:
    """op(x) computed in higher precision, rounded to x.dtype."""
    hp = np.float64 if x.dtype == np.float32 else np.longdouble
    with np.errstate(all="ignore"):  # signalling NaNs in the bit sweep
        v = x.astype(hp)
        if op == "erf":
            r = np.empty(x.size, np.float64)
            _erf_ref(x.astype(np.float64), r)
        elif op == "sigmoid":
            r = 1 / (1 + np.exp(-v))
        elif op == "softplus":
            r = np.logaddexp(hp(0), v)
        else:
            r = getattr(np, NUMPY_NAME.get(op, op))(v)
        return r.astype(x.dtype)


def numpy_result(op: str, x: np.ndarray) -> np.ndarray:
    """What NumPy itself gives in x.dtype (what generated code falls back to without mathlib)."""
    t = x.dtype.type
    with np.errstate(all="ignore"):
        if op == "sigmoid":  # the stable form (scipy.special.expit); 1 / (1 + exp(-x))
            e = np.exp(-np.abs(x))  # gives 0 instead of a subnormal for x < -88.7 (float32)
            return np.where(x >= 0, t(1) / (t(1) + e), e / (t(1) + e))
        if op == "softplus":
            return np.logaddexp(t(0), x)
        if op == "erf":
            return np.array([math.erf(float(v)) for v in x], x.dtype)
        return getattr(np, NUMPY_NAME.get(op, op))(x)


# ---------------------------------------------------------------------------------------------
# inputs


def _bit_sweep(dt: str, n: int) -> np.ndarray:
    """n bit patterns evenly spread over all of them: every binade, both signs, subnormals."""
    if dt == "f32":
        return (
            (np.arange(n, dtype=np.uint64) * ((1 << 32) // n) + 12345)
            .astype(np.uint32)
            .view(np.float32)
        )
    step = np.uint64(((1 << 64) // n) | 1)
    return (np.arange(n, dtype=np.uint64) * step + np.uint64(987654321)).view(np.float64)


def _dense(dt: str, n: int) -> np.ndarray:
    """Dense linear sweeps over the ranges where the functions do something interesting."""
    t = DTYPES[dt]
    lim = {"f32": (-110.0, 110.0, 4.5, 12.0), "f64": (-750.0, 750.0, 6.5, 40.0)}[dt]
    rng = np.random.default_rng(12345)
    parts = [
        np.linspace(lim[0], lim[1], n),  # exp / expm1 / sigmoid / softplus, both edges
        np.linspace(-lim[2], lim[2], n),  # erf
        np.linspace(-lim[3], lim[3], n),  # tanh, sin, cos, tan
        np.linspace(-1.0, 4.0, n),  # log, log1p
        rng.uniform(-1, 1, n) * 10.0 ** rng.uniform(-12, 0, n),  # small |x|, all signs
        np.linspace(-2000.0, 2000.0, n),  # trig
        rng.uniform(-1, 1, n) * TRIG_FAST[dt],  # trig, all of the fast reduction's range
    ]
    return np.concatenate(parts).astype(t)


def _trig_hard(dt: str, n: int) -> np.ndarray:
    """Floats nearest to multiples of pi/2: where argument reduction cancels the most."""
    kmax = 2**35 if dt == "f32" else 2**29
    rng = np.random.default_rng(7)
    k = np.concatenate([np.arange(1, n), rng.integers(1, kmax, n)]).astype(np.longdouble)
    x = (k * (np.longdouble(np.pi) + (np.longdouble(np.pi) - np.pi)) / 2).astype(DTYPES[dt])
    return np.concatenate([x, -x, np.nextafter(x, 2 * x)])


def special_values(dt: str) -> np.ndarray:
    t = DTYPES[dt]
    fi = np.finfo(t)
    tiny_sub = fi.smallest_subnormal
    big_sub = np.nextafter(fi.smallest_normal, t(0))
    base = [0.0, 1.0, 2.0, 0.5, np.inf, np.nan, tiny_sub, big_sub, fi.smallest_normal, fi.max,
            fi.eps, 1e-30, 30.0, 1e30, math.pi / 2, math.pi, 1e6, 1e10]  # fmt: skip
    if dt == "f32":
        # exp overflows past 88.72283 (0x42b17217), underflows to 0 below -103.97208
        edges = [88.72283, 88.72284, 88.7, 88.8, -103.97208, -103.97209, -87.33, -100.0, 9.1,
                 -17.33, 3.92, 3.83, 16.7, 120.0]  # fmt: skip
    else:
        edges = [
            709.782712893384,
            709.7827128933841,
            709.7,
            -745.1332191019411,
            -745.1332191019412,
            -708.4,
            -740.0,
            19.1,
            -37.5,
            5.93,
            6.0,
            37.0,
            800.0,
        ]
    vals = np.array(base + edges, t)
    vals = np.concatenate([vals, -vals])
    # subnormals are ordered by bit pattern: the first few and the last few
    nsub = np.array([1, 2, 3, 1000], np.int64 if dt == "f64" else np.int32)
    sub = np.concatenate([nsub, fi.smallest_normal.view(nsub.dtype) - nsub]).view(t)
    return np.concatenate([vals, sub, -sub])


# ---------------------------------------------------------------------------------------------
# tests


def test_lookup():
    assert set(ml.FUNCS) == {(op, dt) for op in OPS + BINARY for dt in DTYPES}
    for (op, dt), fn in ml.FUNCS.items():
        if op in BINARY:
            assert fn(7.0, 2.0) == run_binary(np.array([7.0]), np.array([2.0]), dt)[op][0]
            continue
        name = ml.source_name(op, dt)
        assert name == f"{op}_{dt}" and getattr(ml, name) is fn
        ns: dict = {}
        exec(f"from graphc.codegen.mathlib import {name}", ns)
        assert ns[name] is fn
        want = run_all(np.array([0.5], DTYPES[dt]))[op][:1]
        assert np.array_equal([fn(0.5)], want, equal_nan=True)  # callable from Python
    with pytest.raises(KeyError):
        ml.source_name("sqrt", "f32")


def _inputs(dt: str) -> np.ndarray:
    n = 200_000 if dt == "f32" else 60_000
    return np.concatenate([_bit_sweep(dt, 5 * n), _dense(dt, n), special_values(dt)])


@pytest.fixture(scope="module", params=list(DTYPES))
def sweep(request):
    dt = request.param
    x = _inputs(dt)
    return dt, x, run_all(x)


def test_accuracy(sweep):
    dt, x, got = sweep
    report, bad = [], []
    for op in OPS:
        err = ulp_diff(got[op], reference(op, x))
        worst = float(err.max())
        report.append(f"{op}={worst:g}")
        if worst > MAX_ULP[dt][op]:
            bad.append(f"{op}_{dt}: {worst:g} ulp at x={x[err.argmax()]!r}")
    print(f"max ulp {dt}: " + ", ".join(report))
    assert not bad, bad


def test_special_values_match_numpy(sweep):
    """Where NumPy gives inf, -inf, NaN or a (signed) zero, we give exactly the same; elsewhere
    the result is within the documented error of the exact value."""
    dt = sweep[0]
    x = special_values(dt)
    got = run_all(x)
    for op in OPS:
        want = numpy_result(op, x)
        exact = ~np.isfinite(want) | (want == 0)
        g, w = got[op][exact], want[exact]
        same = (np.isnan(g) & np.isnan(w)) | ((g == w) & (np.signbit(g) == np.signbit(w)))
        assert same.all(), (op, dt, x[exact][~same], g[~same], w[~same])
        keep = ~exact
        err = ulp_diff(got[op][keep], reference(op, x[keep]))
        assert err.max(initial=0) <= MAX_ULP[dt][op], (op, dt, x[keep][err.argmax()])


@pytest.mark.parametrize("dt", list(DTYPES))
def test_saturation_and_edges(dt):
    t = DTYPES[dt]
    fi = np.finfo(t)
    big = np.array([40.0, 100.0, 1e4, fi.max, np.inf], t)  # saturated in both precisions
    r = run_all(np.concatenate([big, -big]))
    n = big.size
    assert (r["tanh"][:n] == 1).all() and (r["tanh"][n:] == -1).all()
    assert (r["erf"][:n] == 1).all() and (r["erf"][n:] == -1).all()
    assert (r["sigmoid"][:n] == 1).all() and (r["sigmoid"][-3:] == 0).all()
    assert (r["softplus"][:n] == big).all() and (r["softplus"][-2:] == 0).all()
    assert (r["expm1"][n + 1 :] == -1).all()
    assert (r["exp"][-3:] == 0).all() and np.isinf(r["exp"][n - 2 : n]).all()
    lg = run_all(np.array([-1.0, -fi.smallest_subnormal, -np.inf, 0.0, -0.0], t))
    assert np.isnan(lg["log"][:3]).all() and (lg["log"][3:] == -np.inf).all()
    assert lg["log1p"][0] == -np.inf and np.isnan(lg["log1p"][2])
    assert np.isnan(run_all(np.array([-1.5, -2.0, -np.inf], t))["log1p"]).all()
    # the last finite exp and the first infinite one, the last nonzero and the first zero
    e = {
        "f32": [88.72283, 88.72284, -103.97208, -103.97209],
        "f64": [709.782712893384, 709.7827128933841, -745.1332191019411, -745.1332191019412],
    }
    ex = run_all(np.array(e[dt], t))["exp"]
    assert np.isfinite(ex[0]) and ex[1] == np.inf and ex[2] == fi.smallest_subnormal and ex[3] == 0


@pytest.mark.parametrize("dt", list(DTYPES))
def test_trig_argument_reduction(dt):
    """Near multiples of pi/2 and at huge arguments up to the largest finite value, on both sides
    of the switch from the fast reduction to the exact one, the error bound holds."""
    t = DTYPES[dt]
    rng = np.random.default_rng(3)
    lo = np.log10(TRIG_FAST[dt] / 4)
    far = 10.0 ** rng.uniform(lo, np.log10(np.finfo(t).max), 20_000)
    edge = np.array([TRIG_FAST[dt]]) * np.array([1 - 2.0**-20, 1.0, 1 + 2.0**-20])
    far = np.concatenate([far, edge, [np.finfo(t).max]]).astype(t)
    x = np.concatenate([_trig_hard(dt, 20_000), far, -far])
    got = run_all(x)
    for op in ("sin", "cos", "tan"):
        err = ulp_diff(got[op], reference(op, x))
        assert err.max() <= MAX_ULP[dt][op], (op, dt, x[err.argmax()])


@pytest.mark.parametrize("dt", list(DTYPES))
def test_fastmath_kernel_same_results(dt):
    """Called from a kernel compiled with fastmath={"contract", "reassoc", "arcp"} (and the
    default error_model), the functions give bit-identical results: their own instructions keep
    strict IEEE semantics after inlining."""
    x = np.concatenate([special_values(dt), _dense(dt, 5_000), _trig_hard(dt, 2_000)])
    a, b = run_all(x), run_all(x, fast=True)
    for op in OPS:
        assert (ulp_diff(a[op], b[op]) == 0).all(), op


def _loop_of(fn):
    @njit(fastmath=FASTMATH)
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return loop


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dt", list(DTYPES))
def test_loop_is_vectorized(dt, op):
    """Each function in a loop of its own is inlined (no call left in the loop) and the loop
    uses vector types. sin, cos and tan leave one call: to the masked vector variant of their
    out-of-line huge-argument path, once per vector. (A loop calling many of them at once may
    exceed the vectorizer's budget, which differs between CPUs; kernels call one or a few.)"""
    x = np.linspace(0.5, 2.0, 64).astype(DTYPES[dt])
    kern = _loop_of(getattr(ml, f"{op}_{dt}"))
    kern(x, np.empty_like(x))
    llvm = kern.inspect_llvm(kern.signatures[0])
    # the loop's own function (not the Python wrapper, not the vector variants' definitions)
    bodies = re.split(r"\ndefine ", llvm)[1:]
    names = [re.search(r"@([\w.$]+)\(", b).group(1) for b in bodies]
    body = next(b for b, n in zip(bodies, names, strict=True) if n.startswith("_ZN5tests"))
    calls = set(re.findall(r"call [^@\n]*@(\S+?)\(", body))
    assert not [c for c in calls if "7codegen7mathlib" in c], calls  # mangled module name
    huge = {c for c in calls if c.startswith("graphc_")}
    if op in ("sin", "cos", "tan"):
        # the vectorized loop calls the masked variant; the scalar remainder the scalar one
        assert huge and all(re.fullmatch(rf"graphc_{op}_huge_{dt}(_m\d+)?", c) for c in huge), huge
        assert any(re.fullmatch(rf"graphc_{op}_huge_{dt}_m\d+", c) for c in huge), huge
    else:
        assert not huge, huge
    # some float32 functions work in float64 vectors
    widths = {int(w) for w in re.findall(r"<(\d+) x (?:float|double)>", body)}
    if (dt, op) in SCALAR_LOOPS:
        assert not widths, f"{op}_{dt} vectorizes now: drop it from SCALAR_LOOPS"
    else:
        assert widths and max(widths) >= 4, (op, widths)


# functions whose loops LLVM leaves scalar (per-element branches on the argument's range)
SCALAR_LOOPS = {("f64", "erf"), ("f32", "cbrt"), ("f64", "cbrt")}


@pytest.mark.parametrize("dt", list(DTYPES))
def test_hyperbolic_overflow_edges(dt):
    """sinh and cosh overflow exactly where the rounded result does (exp overflows earlier:
    float32 past 88.72283, float64 past 709.782712893384)."""
    last, first = {"f32": (89.415985, 89.41599), "f64": (710.4758600739439, 710.475860073944)}[dt]
    x = np.array([last, first, -last, -first], DTYPES[dt])
    r = run_all(x)
    assert np.isfinite(r["cosh"][[0, 2]]).all() and (r["cosh"][[1, 3]] == np.inf).all()
    assert np.isfinite(r["sinh"][[0, 2]]).all()
    assert r["sinh"][1] == np.inf and r["sinh"][3] == -np.inf
    assert (ulp_diff(r["cosh"][[0, 2]], reference("cosh", x[[0, 2]])) <= MAX_ULP[dt]["cosh"]).all()


@pytest.mark.parametrize("dt", list(DTYPES))
def test_binary_functions(dt):
    """atan2, hypot and floor_divide: ulp error on spread bit patterns and normal values, and
    exactly NumPy's result on every pair of special values (signed zeros, infinities, NaN,
    subnormals, overflow edges)."""
    t = DTYPES[dt]
    hp = np.float64 if dt == "f32" else np.longdouble
    rng = np.random.default_rng(11)
    n = 200_000
    x = np.concatenate([_bit_sweep(dt, n), rng.standard_normal(n).astype(t)])
    y = np.concatenate([_bit_sweep(dt, n)[::-1], rng.standard_normal(n).astype(t)])
    got = run_binary(x, y, dt)
    with np.errstate(all="ignore"):
        refs = {
            "atan2": np.arctan2(x.astype(hp), y.astype(hp)).astype(t),
            "hypot": np.hypot(x.astype(hp), y.astype(hp)).astype(t),
            "floor_divide": np.floor_divide(x, y),  # exact: NumPy's own algorithm
            "remainder": np.remainder(x, y),  # exact, signed zeros included
        }
    for op in BINARY:
        err = ulp_diff(got[op], refs[op])
        assert err.max() <= MAX_ULP[dt][op], (op, dt, x[err.argmax()], y[err.argmax()])
    sv = special_values(dt)
    sx, sy = (a.ravel() for a in np.meshgrid(sv, sv))
    got = run_binary(sx, sy, dt)
    with np.errstate(all="ignore"):
        for op, f in [
            ("atan2", np.arctan2),
            ("hypot", np.hypot),
            ("floor_divide", np.floor_divide),
            ("remainder", np.remainder),
        ]:
            want = f(sx, sy)
            exact = ~np.isfinite(want) | (want == 0)
            g, w = got[op][exact], want[exact]
            same = (np.isnan(g) & np.isnan(w)) | ((g == w) & (np.signbit(g) == np.signbit(w)))
            assert same.all(), (op, dt, sx[exact][~same], sy[exact][~same], g[~same], w[~same])
            if op in ("floor_divide", "remainder"):  # NumPy's own algorithm: exactly its result
                assert np.array_equal(got[op], want, equal_nan=True), (op, dt)
                continue
            err = ulp_diff(
                got[op][~exact], f(sx[~exact].astype(hp), sy[~exact].astype(hp)).astype(t)
            )
            assert err.max(initial=0) <= MAX_ULP[dt][op], (op, dt)
