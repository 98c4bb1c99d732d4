"""sin, cos and tan over the whole finite domain: huge arguments are reduced exactly.

Compiled results (fused kernels and the tape machine, its sin+cos instruction included, values,
reductions and gradients) against an exact reference: long double (glibc reduces exactly at
any size) rounded to the working precision, and against NumPy. Inputs: every binade up to the
largest finite value, both sides of the switch between the fast and the exact reduction, the
floats nearest to multiples of pi/2 in many binades (found from the continued fraction of
2^e * 2/pi, with pi computed here independently of graphc), lanes mixed so that any vector lane
and the scalar remainder can hold the one huge argument.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from reliability.floats import ulps

import graphc
import graphc.codegen.driver as cg_driver
from graphc.codegen import vm
from graphc.codegen.mathlib import TRIG_FAST_LIMIT

F32, F64 = np.float32, np.float64
FNS = (np.sin, np.cos, np.tan)
# documented bounds (docs/codegen.md, "Accuracy of compiled math") against the exact result
BOUND = {F32: {np.sin: 1, np.cos: 1, np.tan: 1}, F64: {np.sin: 2, np.cos: 2, np.tan: 4}}
LONG_DOUBLE_EXACT = np.finfo(np.longdouble).nmant >= 63


def exact(f, x: np.ndarray) -> np.ndarray:
    """f(x) rounded to x's dtype from a reduction that is exact at every size."""
    hp = np.longdouble if LONG_DOUBLE_EXACT else F64
    with np.errstate(all="ignore"):
        return f(x.astype(hp)).astype(x.dtype)


def numpy_result(f, x: np.ndarray) -> np.ndarray:
    """NumPy's float64 result; for float32 the float64 one rounded (NumPy's float32 kernels
    are not all correctly rounded)."""
    with np.errstate(all="ignore"):
        return f(x.astype(F64)).astype(x.dtype)


def check(f, x: np.ndarray, got: np.ndarray, bound: float | None = None) -> None:
    bound = BOUND[x.dtype.type][f] if bound is None else bound
    got = np.asarray(got)
    assert got.dtype == x.dtype and got.shape == x.shape, (got.dtype, got.shape)
    err = ulps(got, exact(f, x))
    i = int(err.argmax())
    assert err[i] <= bound, (f.__name__, x.dtype, repr(x[i]), got[i], err[i])


def every_binade(dt, per: int, seed: int) -> np.ndarray:
    """per random values in every binade from 2^10 to the largest finite one, both signs."""
    rng = np.random.default_rng(seed)
    top = 128 if dt == F32 else 1024
    e = np.repeat(np.arange(10, top), per)
    x = rng.uniform(1.0, 2.0, e.size) * np.exp2(e.astype(F64))
    x = np.concatenate([x, [np.finfo(dt).max]]).astype(dt)
    return np.concatenate([x, -x])


def around_switch(dt) -> np.ndarray:
    """Floats on both sides of the magnitude where the exact reduction takes over."""
    limit = dt(TRIG_FAST_LIMIT["f32" if dt == F32 else "f64"])
    x = [limit]
    lo = hi = limit
    for _ in range(8):
        lo, hi = np.nextafter(lo, dt(0)), np.nextafter(hi, dt(np.inf))
        x += [lo, hi]
    x = np.array(x, dt)
    return np.concatenate([x, x * dt(0.75), x * dt(1.5), -x])


def _pi(bits: int) -> Fraction:
    """pi to about 2^-bits, by Stormer's formula pi/4 = 6 atan(1/8) + 2 atan(1/57) + atan(1/239)
    (graphc's own table of 2/pi is computed another way)."""
    one = 1 << (bits + 32)

    def atan_inv(n: int) -> int:
        total, power, k, sign = 0, one // n, 1, 1
        while power:
            total += sign * (power // k)
            power //= n * n
            k, sign = k + 2, -sign
        return total

    return Fraction(4 * (6 * atan_inv(8) + 2 * atan_inv(57) + atan_inv(239)), one)


def nearest_to_multiples_of_half_pi(dt, exponents) -> np.ndarray:
    """For each e: floats q 2^e (q below 2^mant) with q 2^e 2/pi closest to an integer: the
    denominators of the continued fraction of frac(2^e 2/pi), the hardest arguments to reduce."""
    mant = 24 if dt == F32 else 53
    two_over_pi = 2 / _pi(1400)
    out = []
    for e in exponents:
        alpha = (two_over_pi * Fraction(2) ** int(e)) % 1
        q_prev, q, a = 0, 1, alpha
        while True:
            if a == 0:
                break
            a = 1 / a
            t = int(a)
            a -= t
            q_prev, q = q, t * q + q_prev
            if q >= 1 << mant:
                break
            if q.bit_length() > mant - 8:  # enough digits to be a float of that binade
                out.append(float(Fraction(q) * Fraction(2) ** int(e)))
    x = np.array(out, dt)
    x = x[np.isfinite(x)]
    return np.concatenate([x, -x])


# the floats nearest to a multiple of pi/2 in each precision (J.-M. Muller, Elementary
# Functions), and powers of two and ten that are easy to get wrong by a bit of 2/pi
KNOWN_HARD = {
    F64: [6381956970095103.0 * 2.0**797, 2.0**1023, 2.0**600, 1e22, 1e300],
    F32: [16367173.0 * 2.0**72, 2.0**127, 2.0**100, 1e22, 1e38],
}


def _all_trig(v):
    return np.sin(v), np.cos(v), np.tan(v)


@pytest.mark.parametrize("dt", [F32, F64])
def test_huge_arguments_in_every_binade(path, dt):
    """Values: exact reference within the documented bound, and NumPy within one ulp more
    (NumPy's own float64 error where it is not exact)."""
    x = np.concatenate([every_binade(dt, 24, seed=1), around_switch(dt)])
    jitted = graphc.jit(_all_trig)
    got = jitted(x)
    assert ("_vm_run(" in jitted.lower(x).source) == (path == "tape")
    for f, g in zip(FNS, got, strict=True):
        check(f, x, g)
        err = ulps(np.asarray(g), numpy_result(f, x))
        assert err.max() <= BOUND[dt][f] + 1, (f.__name__, repr(x[err.argmax()]), err.max())


@pytest.mark.parametrize("dt", [F32, F64])
def test_arguments_nearest_to_multiples_of_half_pi(path, dt):
    """Where the reduced argument is smallest (down to 2^-61 for float64): the reduction must
    keep ~120 bits of x 2/pi. Relative error, so a result near 0 must be right to its last
    bits, not just small."""
    top = 128 if dt == F32 else 1024
    rng = np.random.default_rng(5)
    exps = np.unique(np.concatenate([rng.integers(-20, top - 53, 40), [top - 60, 0, 30]]))
    x = np.concatenate([nearest_to_multiples_of_half_pi(dt, exps), np.array(KNOWN_HARD[dt], dt)])
    assert x.size > 100
    got = graphc.jit(_all_trig)(x)
    for f, g in zip(FNS, got, strict=True):
        check(f, x, g)


@pytest.mark.parametrize("dt", [F32, F64])
def test_special_values(path, dt):
    """inf and NaN give NaN; zeros keep their sign for sin and tan; the largest finite values
    and the smallest subnormals are within the bound."""
    fi = np.finfo(dt)
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, fi.max, -fi.max, fi.smallest_subnormal,
                  -fi.smallest_subnormal, fi.smallest_normal, 1e30, -1e30], dt)  # fmt: skip
    got = graphc.jit(_all_trig)(x)
    for f, g in zip(FNS, got, strict=True):
        g = np.asarray(g)
        assert np.isnan(g[:3]).all(), (f.__name__, g[:3])
        want = numpy_result(f, x)
        assert (g[3:5] == want[3:5]).all() and (np.signbit(g[3:5]) == np.signbit(want[3:5])).all()
        check(f, x[5:], g[5:])


@pytest.mark.parametrize("dt", [F32, F64])
def test_one_huge_lane_in_any_position(path, dt):
    """A single huge argument at every position of arrays whose length leaves a scalar
    remainder: every vector lane and the remainder loop redo it, and only it."""
    n = 67
    base = np.linspace(-3.0, 3.0, n).astype(dt)
    huge = dt(KNOWN_HARD[dt][0])
    rows = np.repeat(base[None, :], n, axis=0)
    rows[np.arange(n), np.arange(n)] = huge
    x = rows.ravel()
    jitted = graphc.jit(lambda v: (np.sin(v), np.cos(v) * 2.0))
    s, c2 = jitted(x)
    check(np.sin, x, s)
    check(np.cos, x, np.asarray(c2) / dt(2.0))
    # the normal lanes are the fast path's bits, unchanged by their huge neighbour
    s0, c0 = jitted(base)
    for r in range(0, n, 11):
        keep = np.arange(n) != r
        np.testing.assert_array_equal(np.asarray(s)[r * n : (r + 1) * n][keep], s0[keep])
        np.testing.assert_array_equal(np.asarray(c2)[r * n : (r + 1) * n][keep], c0[keep])


@pytest.mark.parametrize("dt", [F32, F64])
def test_inside_fused_expressions_and_reductions(path, dt):
    """Trig of huge intermediate values inside a longer fused expression, and sums of it (the
    whole space, and per row)."""
    x = every_binade(dt, 2, seed=9)
    x = x[np.abs(x) < np.finfo(dt).max / 2]  # 2x stays finite
    x = x[: x.size - x.size % 8].reshape(8, -1)

    def f(v):
        w = v * 2.0  # huge intermediate values (exact: a power of two)
        y = np.exp(np.sin(w)) + np.cos(w) * np.tan(v)
        return y, np.sum(np.sin(w)), np.sum(np.cos(v), axis=1)

    y, total, rows = graphc.jit(f)(x)
    w = (x * dt(2.0)).astype(dt)
    with np.errstate(all="ignore"):
        s, c, t = exact(np.sin, w), exact(np.cos, w), exact(np.tan, x)
        want_y = (np.exp(s.astype(F64)) + c.astype(F64) * t.astype(F64)).astype(dt)
    eps = float(np.finfo(dt).eps)
    scale = np.abs(np.exp(s.astype(F64))) + np.abs(c.astype(F64) * t.astype(F64))
    assert (np.abs(np.asarray(y, F64) - want_y) <= 8 * eps * scale).all()
    want_total = exact(np.sin, w).astype(F64).sum()
    assert abs(float(total) - want_total) <= 4 * eps * w.size
    want_rows = exact(np.cos, x).astype(F64).sum(axis=1)
    np.testing.assert_allclose(np.asarray(rows, F64), want_rows, rtol=0, atol=4 * eps * x.shape[1])


def test_sin_and_cos_instruction_of_the_tape_machine(monkeypatch):
    """The tape machine runs sin and cos of one value as one instruction; both halves reduce
    huge arguments exactly."""
    monkeypatch.setattr(cg_driver, "VM_MIN_OPS", 0)
    progs = []
    real = vm.translate

    def record(*a, **k):
        progs.append(real(*a, **k))
        return progs[-1]

    monkeypatch.setattr(vm, "translate", record)
    for dt in (F32, F64):
        x = np.concatenate(
            [every_binade(dt, 3, seed=11), nearest_to_multiples_of_half_pi(dt, [60])]
        )
        s, c = graphc.jit(lambda v: (np.sin(v) + 0.0, np.cos(v) * 1.0))(x)
        check(np.sin, x, s)
        check(np.cos, x, c)
    assert any("sincos" in line for p in progs for line in p.listing)


@pytest.mark.parametrize("dt", [F32, F64])
def test_gradients_at_huge_arguments(path, dt):
    """d sin = cos, d cos = -sin, d tan = 1 + tan^2, at huge arguments (the backward graph
    evaluates the same functions)."""
    x = np.concatenate([every_binade(dt, 1, seed=13), np.array(KNOWN_HARD[dt], dt)])
    gs = graphc.jit(graphc.grad(lambda v: np.sum(np.sin(v))))(x)
    gc = graphc.jit(graphc.grad(lambda v: np.sum(np.cos(v))))(x)
    check(np.cos, x, gs)
    check(np.sin, x, -np.asarray(gc))
