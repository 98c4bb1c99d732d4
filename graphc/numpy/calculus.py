"""Along an axis: discrete differences, gradients, the trapezoidal rule, phase unwrapping,
and piecewise-linear interpolation."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import DTypeError, GraphcError, ShapeError
from graphc.numpy._core import _asarr, _axis, _norm_axes, _static_int, astype
from graphc.numpy.indexing import _slice_axis, take
from graphc.numpy.reductions import cumsum, sum
from graphc.numpy.shapes import broadcast_to, concatenate, ravel, reshape
from graphc.numpy.sorting import searchsorted
from graphc.numpy.ufuncs import absolute, clip, not_equal, remainder, subtract, where
from graphc.trace import UnsupportedError, user_location


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Any:
    """The n-th discrete difference along axis (booleans: not_equal, as NumPy)."""
    a = _asarr(a)
    n = _static_int(n, "diff: n")
    if n < 0:
        raise ShapeError(f"diff: order must be non-negative, got {n}", user_location())
    if a.ndim == 0:
        raise ShapeError("diff: needs an array of at least 1 dimension", user_location())
    ax = _axis(a, axis, "diff")
    parts = []
    for extra in (prepend, a, append):
        if extra is None:
            continue
        e = _asarr(extra)
        if e.ndim == 0:
            shape = list(a.shape)
            shape[ax] = 1
            e = broadcast_to(e, tuple(shape))
        parts.append(e)
    if len(parts) > 1:
        a = concatenate(parts, axis=ax)
    for _ in range(n):
        m = a.shape[ax]
        hi, lo = (
            _slice_axis(a, ax, builtins.min(1, m), m),
            _slice_axis(a, ax, 0, builtins.max(m - 1, 0)),
        )
        a = not_equal(hi, lo) if a.dtype == np.bool_ else subtract(hi, lo)
    return a


def ediff1d(ary: Any, to_end: Any = None, to_begin: Any = None) -> Any:
    """Differences between consecutive elements of the flattened array, with values added
    before and after."""
    ary = ravel(_asarr(ary))
    if ary.dtype == np.bool_:
        raise DTypeError(
            "np.ediff1d: booleans cannot be subtracted (NumPy rejects them); use np.diff, "
            "which compares neighbours, or cast to a number type first",
            user_location(),
        )
    parts = [diff(ary)]
    if to_begin is not None:
        parts.insert(0, astype(ravel(_asarr(to_begin)), ary.dtype))
    if to_end is not None:
        parts.append(astype(ravel(_asarr(to_end)), ary.dtype))
    return concatenate(parts) if len(parts) > 1 else parts[0]


def gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    """Second-order central differences inside, one-sided ones (first or second order) at the
    ends, for unit, scalar or coordinate-array spacing, as np.gradient."""
    f = _asarr(f)
    if f.dtype.kind != "f":
        f = astype(f, np.float64)
    axes = _norm_axes(f, axis, "gradient")
    if len(varargs) == 0:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacing = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes):
        spacing = list(varargs)
    else:
        raise ShapeError("np.gradient: invalid number of spacing arguments", user_location())
    if edge_order not in (1, 2):
        raise GraphcError("np.gradient: edge_order must be 1 or 2", user_location())
    out = []
    for ax, h in zip(axes, spacing, strict=True):
        n = f.shape[ax]
        if n < edge_order + 1:
            raise ShapeError(
                f"np.gradient: an axis of length {n} is too short for edge_order={edge_order} "
                f"(it needs at least {edge_order + 1} points)",
                user_location(),
            )
        bshape = [1] * f.ndim
        h = _asarr(h)
        if h.ndim == 0:
            dx = broadcast_to(astype(h, f.dtype), (n - 1,))
        elif h.shape == (n,):
            dx = astype(diff(h), f.dtype)
        else:
            raise ShapeError(
                f"np.gradient: spacing of shape {tuple(h.shape)} does not match an axis of "
                f"length {n}",
                user_location(),
            )

        def along(v: Any) -> Any:
            shp = list(bshape)
            shp[ax] = v.shape[0]
            return reshape(v, tuple(shp))

        def sl(a: int, b: int) -> Any:
            return _slice_axis(f, ax, a, b)

        parts = []
        d0 = dx[0:1]
        d_1 = dx[n - 2 : n - 1]
        if edge_order == 1:
            parts.append((sl(1, 2) - sl(0, 1)) / along(d0))
        else:
            d1, d2 = dx[0:1], dx[1:2]
            a = -(2.0 * d1 + d2) / (d1 * (d1 + d2))
            b = (d1 + d2) / (d1 * d2)
            c = -d1 / (d2 * (d1 + d2))
            parts.append(along(a) * sl(0, 1) + along(b) * sl(1, 2) + along(c) * sl(2, 3))
        if n > 2:
            d1, d2 = dx[0 : n - 2], dx[1 : n - 1]
            a = -d2 / (d1 * (d1 + d2))
            b = (d2 - d1) / (d1 * d2)
            c = d1 / (d2 * (d1 + d2))
            parts.append(along(a) * sl(0, n - 2) + along(b) * sl(1, n - 1) + along(c) * sl(2, n))
        if edge_order == 1:
            parts.append((sl(n - 1, n) - sl(n - 2, n - 1)) / along(d_1))
        else:
            d1, d2 = dx[n - 3 : n - 2], dx[n - 2 : n - 1]
            a = d2 / (d1 * (d1 + d2))
            b = -(d2 + d1) / (d1 * d2)
            c = (2.0 * d2 + d1) / (d2 * (d1 + d2))
            parts.append(
                along(a) * sl(n - 3, n - 2) + along(b) * sl(n - 2, n - 1) + along(c) * sl(n - 1, n)
            )
        out.append(concatenate(parts, axis=ax))
    return out[0] if len(out) == 1 else tuple(out)


def trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> Any:
    """The trapezoidal rule along axis."""
    y = _asarr(y)
    ax = _axis(y, axis, "trapezoid")
    n = y.shape[ax]
    if x is None:
        d = dx
    else:
        x = _asarr(x)
        d = diff(x, axis=ax if x.ndim > 1 else 0)
        if x.ndim == 1:
            shape = [1] * y.ndim
            shape[ax] = d.shape[0]
            d = reshape(d, tuple(shape))
    mid = _slice_axis(y, ax, 1, n) + _slice_axis(y, ax, 0, builtins.max(n - 1, 0))
    return sum(d * mid / 2.0, axis=ax)


def unwrap(p: Any, discont: Any = None, axis: int = -1, *, period: float = 2 * np.pi) -> Any:
    """Phases with jumps larger than discont replaced by their period complement, as
    np.unwrap (floats)."""
    p = _asarr(p)
    if p.dtype.kind != "f":
        p = astype(p, np.float64)
    ax = _axis(p, axis, "unwrap")
    n = p.shape[ax]
    if n < 2:
        return p
    dd = diff(p, axis=ax)
    if discont is None:
        discont = period / 2
    high = period / 2
    low = -high
    ddmod = remainder(dd - low, period) + low
    ddmod = where((ddmod == low) & (dd > 0), high, ddmod)
    correct = where(absolute(dd) < discont, 0.0, ddmod - dd)
    rest = _slice_axis(p, ax, 1, n) + cumsum(correct, axis=ax)
    return concatenate([_slice_axis(p, ax, 0, 1), rest], axis=ax)


def interp(
    x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None, period: Any = None
) -> Any:
    """Piecewise-linear interpolation of (xp, fp) at x, as np.interp (xp increasing);
    differentiable in x, xp and fp.

    Example:
        >>> interp(np.array([0.5, 2.0]), np.array([0.0, 1.0]), np.array([0.0, 10.0]))
        array([ 5., 10.])
    """
    if period is not None:
        raise UnsupportedError("np.interp: period= is not supported", user_location())
    x, xp, fp = _asarr(x), _asarr(xp), _asarr(fp)
    if xp.ndim != 1 or fp.ndim != 1 or xp.shape != fp.shape:
        raise ShapeError(
            f"np.interp: xp and fp must be 1-d of one length, got {tuple(xp.shape)} and "
            f"{tuple(fp.shape)}",
            user_location(),
        )
    if xp.shape[0] == 0:
        raise ShapeError("np.interp: xp and fp must not be empty", user_location())
    dt = np.result_type(x.dtype, xp.dtype, fp.dtype, np.float64)
    x, xp, fp = astype(x, dt), astype(xp, dt), astype(fp, dt)
    k = xp.shape[0]
    lo_v, hi_v = fp[0], fp[k - 1]
    if k == 1:
        y = broadcast_to(fp[0], x.shape)
    else:
        j = clip(searchsorted(xp, x, side="right") - 1, 0, k - 2)
        x0, x1 = take(xp, j), take(xp, j + 1)
        f0, f1 = take(fp, j), take(fp, j + 1)
        y = f0 + (f1 - f0) / (x1 - x0) * (x - x0)
        y = where(x == xp[k - 1], hi_v, y)
    left_v = lo_v if left is None else left
    right_v = hi_v if right is None else right
    y = where(x < xp[0], left_v, y)
    y = where(x > xp[k - 1], right_v, y)
    return astype(y, dt)


FUNCTIONS: dict[Callable, Callable] = {
    np.diff: diff,
    np.ediff1d: ediff1d,
    np.interp: interp,
    np.trapezoid: trapezoid,
    np.unwrap: unwrap,
    np.gradient: gradient,
}
