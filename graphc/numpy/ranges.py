"""Evenly spaced values and coordinate grids: linspace, logspace, geomspace (traced ends
allowed, static counts) and meshgrid."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.numpy._core import _asarr, _axis, _static_int, astype
from graphc.numpy.indexing import _slice_axis
from graphc.numpy.shapes import (
    broadcast_arrays,
    broadcast_to,
    concatenate,
    expand_dims,
    moveaxis,
    ravel,
    reshape,
)
from graphc.numpy.ufuncs import absolute, exp, floor, log, power, sign
from graphc.trace import Tracer, user_location


def linspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: Any = None,
    axis: int = 0,
    *,
    device: Any = None,
) -> Any:
    """num evenly spaced values from start to stop (traced ends allowed; the count is
    static)."""
    num = _static_int(num, "np.linspace: num")
    if num < 0:
        raise GraphcError(
            f"np.linspace: number of samples, {num}, must be non-negative", user_location()
        )
    # NumPy's own promotion of the ends with the (weak) float count: f32 ends stay f32
    tokens = [
        ((0.0 if e.weak else e.dtype) if isinstance(e, Tracer) else e)
        if isinstance(e, (Tracer, int, float))
        else np.asarray(e).dtype
        for e in (start, stop)
    ]
    dt = np.result_type(*tokens, float(num))
    start, stop = _asarr(start), _asarr(stop)
    start, stop = astype(start, dt), astype(stop, dt)
    div = (num - 1) if endpoint else num
    delta = stop - start
    shp = np.broadcast_shapes(tuple(start.shape), tuple(stop.shape))
    t = np.arange(num, dtype=dt).reshape((num,) + (1,) * len(shp))
    step = delta / div if div > 0 else delta * np.nan
    y = expand_dims(start, 0) + t * (expand_dims(step, 0) if div > 0 else expand_dims(delta * 0, 0))
    y = broadcast_to(y, (num,) + tuple(shp))
    if endpoint and num > 1:
        y = concatenate(
            [_slice_axis(y, 0, 0, num - 1), expand_dims(broadcast_to(stop, shp), 0)], axis=0
        )
    if axis != 0:
        y = moveaxis(y, 0, _axis(y, axis, "linspace"))
    if dtype is not None:
        y = astype(floor(y) if np.dtype(dtype).kind in "iu" else y, dtype)
    return (y, step) if retstep else y


def logspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    base: Any = 10.0,
    dtype: Any = None,
    axis: int = 0,
) -> Any:
    """base ** linspace(start, stop)."""
    y = power(base, linspace(start, stop, num, endpoint, axis=axis))
    return y if dtype is None else astype(y, dtype)


def geomspace(
    start: Any, stop: Any, num: int = 50, endpoint: bool = True, dtype: Any = None, axis: int = 0
) -> Any:
    """num values spaced evenly on a log scale from start to stop (of one sign)."""
    start, stop = _asarr(start), _asarr(stop)
    if builtins.any(not isinstance(e, Tracer) and np.any(e == 0) for e in (start, stop)):
        raise GraphcError("np.geomspace: geometric sequence cannot include zero", user_location())
    y = exp(linspace(log(absolute(start)), log(absolute(stop)), num, endpoint, axis=0))
    y = y * expand_dims(sign(start), 0)
    num = y.shape[0]
    if num:
        parts = [expand_dims(broadcast_to(astype(start, y.dtype), y.shape[1:]), 0)]
        if endpoint and num > 1:
            parts += [
                _slice_axis(y, 0, 1, num - 1),
                expand_dims(broadcast_to(astype(stop, y.dtype), y.shape[1:]), 0),
            ]
        else:
            parts += [_slice_axis(y, 0, 1, num)]
        y = concatenate(parts, axis=0)
    if axis != 0:
        y = moveaxis(y, 0, _axis(y, axis, "geomspace"))
    return y if dtype is None else astype(y, dtype)


def meshgrid(
    *xi: Any, copy: bool = True, sparse: bool = False, indexing: str = "xy"
) -> tuple[Any, ...]:
    """Coordinate arrays from 1-d coordinate vectors (broadcasts)."""
    if indexing not in ("xy", "ij"):
        raise GraphcError("np.meshgrid: indexing must be 'xy' or 'ij'", user_location())
    xs = [ravel(_asarr(x)) for x in xi]
    nd = len(xs)
    shapes = []
    for i, x in enumerate(xs):
        s = [1] * nd
        s[i] = x.shape[0]
        if indexing == "xy" and nd > 1 and i < 2:
            s[0], s[1] = s[1], s[0]
        shapes.append(tuple(s))
    out = [reshape(x, s) for x, s in zip(xs, shapes, strict=True)]
    if not sparse and out:
        out = list(broadcast_arrays(*out))
    return tuple(out)


FUNCTIONS: dict[Callable, Callable] = {
    np.meshgrid: meshgrid,
    np.linspace: linspace,
    np.logspace: logspace,
    np.geomspace: geomspace,
}
