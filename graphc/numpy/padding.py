"""np.pad in every mode: constant values, the indexed modes (edge, reflect, symmetric, wrap:
a gather with NumPy's own index map), statistics of the edge (maximum, minimum, mean, median),
linear ramps."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import DTypeError, GraphcError, ShapeError
from graphc.numpy._core import _asarr, _static_int, astype
from graphc.numpy.contractions import matmul
from graphc.numpy.indexing import _slice_axis
from graphc.numpy.reductions import max, mean, min
from graphc.numpy.shapes import broadcast_to, concatenate, moveaxis
from graphc.numpy.statistics import median
from graphc.numpy.ufuncs import floor, rint, round
from graphc.trace import (
    ArgumentError,
    ArgumentValueError,
    Tracer,
    UnsupportedError,
    bind,
    user_location,
)


def _pad_constant(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Any:
    if mode != "constant":
        raise UnsupportedError(
            f"np.pad: mode={mode!r} is not supported (only 'constant')", user_location()
        )
    x = _asarr(x)
    pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    if np.ndim(constant_values) != 0:
        raise UnsupportedError("np.pad: constant_values must be a single number", user_location())
    return bind(
        "pad", x, pads=tuple((int(lo), int(hi), 0) for lo, hi in pw), value=float(constant_values)
    )


_PAD_INDEXED = ("edge", "reflect", "symmetric", "wrap")
_PAD_STAT = {"maximum": max, "minimum": min, "mean": mean, "median": median}


def _pad_widths(a: Any, width: Any, what: str) -> list[tuple[int, int]]:
    if isinstance(width, Tracer):
        raise UnsupportedError(f"np.pad: {what} must be Python ints, not traced", user_location())
    try:
        w = np.asarray(width)
    except ValueError:
        raise ShapeError(
            f"np.pad: {what} {width!r} is not a regular array", user_location()
        ) from None
    if w.dtype.kind not in "iu":
        raise ArgumentError(f"np.pad: {what} must be integers, got {width!r}", user_location())
    try:
        w = np.broadcast_to(w.astype(np.int64), (a.ndim, 2))
    except ValueError:
        raise ArgumentValueError(
            f"np.pad: {what} {width!r} does not fit an array of {a.ndim} dimensions",
            user_location(),
        ) from None
    if np.any(w < 0):
        raise ArgumentValueError(
            f"np.pad: {what} must not be negative, got {width!r}", user_location()
        )
    return [(int(lo), int(hi)) for lo, hi in w]


def pad(x: Any, pad_width: Any, mode: Any = "constant", **kwargs: Any) -> Any:
    """np.pad. 'constant' (one value, or values per axis and side), 'edge', 'reflect',
    'symmetric' and 'wrap' (a gather along each axis with NumPy's own index map, so the gradient
    sums the copies), 'maximum', 'minimum', 'mean', 'median' (optionally over stat_length),
    'linear_ramp' and 'empty' (zeros).

    Example:
        >>> pad(np.array([1.0, 2.0, 3.0]), 2, mode="reflect")
        array([3., 2., 1., 2., 3., 2., 1.])
    """
    x = _asarr(x)
    if callable(mode):
        raise UnsupportedError("np.pad: a function as mode is not supported", user_location())
    allowed = {
        "constant": {"constant_values"},
        "empty": set(),
        "edge": set(),
        "wrap": set(),
        "reflect": {"reflect_type"},
        "symmetric": {"reflect_type"},
        "linear_ramp": {"end_values"},
        **{m: {"stat_length"} for m in _PAD_STAT},
    }
    if mode not in allowed:
        raise GraphcError(f"np.pad: mode {mode!r} is not supported", user_location())
    extra = set(kwargs) - allowed[mode]
    if extra:
        raise GraphcError(
            f"np.pad: unsupported keyword(s) {sorted(extra)} for mode {mode!r}", user_location()
        )
    widths = _pad_widths(x, pad_width, "pad_width")
    if x.dtype == np.bool_ and kwargs.get("reflect_type", "even") == "odd":
        raise DTypeError(
            "np.pad: reflect_type='odd' of a boolean array is not supported", user_location()
        )
    if mode == "linear_ramp" and x.dtype == np.bool_:
        raise DTypeError(
            "np.pad: mode='linear_ramp' of a boolean array is not supported", user_location()
        )
    if mode == "constant":
        cv = kwargs.get("constant_values", 0)
        if np.ndim(cv) == 0 and not isinstance(cv, Tracer):
            return _pad_constant(x, pad_width, "constant", cv)
    if mode == "empty":
        return _pad_constant(x, pad_width, "constant", 0)
    if mode in ("reflect", "symmetric") and kwargs.get("reflect_type", "even") != "even":
        if kwargs["reflect_type"] != "odd":
            raise GraphcError("np.pad: reflect_type must be 'even' or 'odd'", user_location())
    for ax, (lo, hi) in enumerate(widths):
        if lo == 0 and hi == 0:
            continue
        n = x.shape[ax]
        if mode in _PAD_INDEXED:
            if n == 0:
                raise ShapeError(
                    f"np.pad: can't extend the empty axis {ax} with mode {mode!r}",
                    user_location(),
                )
            if kwargs.get("reflect_type", "even") == "odd":
                # odd reflections are linear in x, but with repeated reflections a padded value
                # mixes several elements: NumPy's own pad of the identity gives the matrix
                mat = np.pad(np.eye(n), ((lo, hi), (0, 0)), mode=mode, reflect_type="odd")
                work = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
                moved = moveaxis(astype(x, work), ax, -1)
                body = moveaxis(matmul(moved, mat.T.astype(work)), -1, ax)
                if x.dtype.kind in "iu":
                    body = astype(rint(body), x.dtype)
            else:
                idx = np.pad(np.arange(n, dtype=np.int64), (lo, hi), mode=mode)
                body = bind("gather", x, idx, axis=ax)
            x = body
            continue
        sides = []
        for side, w in ((0, lo), (1, hi)):
            shape = list(x.shape)
            shape[ax] = w
            if mode == "constant":
                v = _pad_side_value(kwargs.get("constant_values", 0), ax, side, x.ndim)
                sides.append(broadcast_to(astype(v, x.dtype), tuple(shape)))
            elif mode == "linear_ramp":
                end = astype(
                    _pad_side_value(kwargs.get("end_values", 0), ax, side, x.ndim), x.dtype
                )
                edge = _slice_axis(x, ax, 0, 1) if side == 0 else _slice_axis(x, ax, n - 1, n)
                # NumPy's ramp: from the end value towards the edge, excluding the edge
                t = np.arange(w, dtype=np.float64) / builtins.max(w, 1)
                if side == 1:
                    t = t[::-1]
                tshape = [1] * x.ndim
                tshape[ax] = w
                t = t.reshape(tshape)
                if x.dtype.kind == "f":
                    t = t.astype(x.dtype)
                if x.dtype.kind in "iub":
                    ramp = floor(astype(end, np.float64) + astype(edge - end, np.float64) * t)
                else:
                    ramp = end + (edge - end) * t
                sides.append(astype(ramp, x.dtype))
            else:
                length = kwargs.get("stat_length")
                k = n if length is None else _pad_side_value(length, ax, side, x.ndim)
                k = builtins.min(_static_int(k, "np.pad: stat_length"), n)
                if k <= 0 or n == 0:
                    raise ShapeError(
                        f"np.pad: no values to compute the {mode} of along axis {ax}",
                        user_location(),
                    )
                part = _slice_axis(x, ax, 0, k) if side == 0 else _slice_axis(x, ax, n - k, n)
                stat = _PAD_STAT[mode](part, axis=ax, keepdims=True)
                if x.dtype.kind in "iu":
                    stat = astype(round(stat), x.dtype)
                sides.append(broadcast_to(astype(stat, x.dtype), tuple(shape)))
        x = concatenate([sides[0], x, sides[1]], axis=ax)
    return x


def _pad_side_value(values: Any, ax: int, side: int, nd: int) -> Any:
    """One axis' one side of a pad-values spec (a scalar, (before, after), or per axis)."""
    if isinstance(values, Tracer):
        if values.ndim == 0:
            return values
        raise UnsupportedError("np.pad: traced per-axis values are not supported", user_location())
    v = np.asarray(values)
    try:
        return np.broadcast_to(v, (nd, 2))[ax, side]
    except ValueError:
        raise ShapeError(
            f"np.pad: values {values!r} do not fit an array of {nd} dimensions", user_location()
        ) from None


FUNCTIONS: dict[Callable, Callable] = {
    np.pad: pad,
}
