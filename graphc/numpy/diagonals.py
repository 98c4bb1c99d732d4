"""Diagonals and triangles: `diagonal` (a strided slice, so a view when compiled), `trace`,
`diag`, `diagflat`, `tril`, `triu` and the `*_indices_from` helpers."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import ShapeError
from graphc.numpy._core import _asarr, _axis, _no_extras, _static_int
from graphc.numpy.reductions import sum
from graphc.numpy.shapes import moveaxis, ravel, reshape
from graphc.numpy.ufuncs import where
from graphc.trace import bind, user_location


def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The diagonal of the (axis1, axis2) planes, as the last axis: a strided slice of the
    planes flattened, so it is a view when compiled and its gradient is a pad."""
    a = _asarr(a)
    if a.ndim < 2:
        raise ShapeError(
            f"diagonal: needs an array of at least 2 dimensions, got shape {tuple(a.shape)}",
            user_location(),
        )
    k = _static_int(offset, "diagonal: offset")
    ax1, ax2 = _axis(a, axis1, "diagonal", "axis1"), _axis(a, axis2, "diagonal", "axis2")
    if ax1 == ax2:
        raise ShapeError("diagonal: axis1 and axis2 cannot be the same", user_location())
    x = moveaxis(a, (ax1, ax2), (-2, -1))
    n, m = x.shape[-2:]
    length = builtins.max(0, builtins.min(n, m - k) if k >= 0 else builtins.min(n + k, m))
    flat = reshape(x, tuple(x.shape[:-2]) + (n * m,))
    start = (k if k >= 0 else -k * m) if length else 0
    stop = start + (length - 1) * (m + 1) + 1 if length else 0
    lead = flat.ndim - 1
    return bind(
        "slice",
        flat,
        start=(0,) * lead + (start,),
        stop=tuple(flat.shape[:-1]) + (stop,),
        step=(1,) * lead + (m + 1,),
    )


def trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
) -> Any:
    _no_extras("trace", out)
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def diag(v: Any, k: int = 0) -> Any:
    """The k-th diagonal of a 2-d array, or a 2-d array with a 1-d one on its k-th diagonal
    (a pad with interior zeros, reshaped)."""
    v = _asarr(v)
    k = _static_int(k, "diag: k")
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ShapeError(
            f"diag: input must be 1-d or 2-d, got shape {tuple(v.shape)}", user_location()
        )
    length = v.shape[0]
    n = length + builtins.abs(k)
    if length == 0:
        pads = ((0, n * n, 0),)
    else:
        start = k if k >= 0 else -k * n
        pads = ((start, n * n - (start + (length - 1) * (n + 1) + 1), n),)
    return reshape(bind("pad", v, pads=pads, value=0.0), (n, n))


def diagflat(v: Any, k: int = 0) -> Any:
    return diag(ravel(_asarr(v)), k)


def _tri(m: Any, k: Any, name: str, lower: bool) -> Any:
    m = _asarr(m)
    k = _static_int(k, f"{name}: k")
    if m.ndim < 1:
        raise ShapeError(f"{name}: needs an array of at least 1 dimension", user_location())
    rows, cols = m.shape[-2:] if m.ndim >= 2 else (m.shape[0], m.shape[0])
    zero = np.zeros((), m.dtype)
    if lower:
        return where(np.tri(rows, cols, k=k, dtype=bool), m, zero)
    return where(np.tri(rows, cols, k=k - 1, dtype=bool), zero, m)


def tril(m: Any, k: int = 0) -> Any:
    return _tri(m, k, "tril", True)


def triu(m: Any, k: int = 0) -> Any:
    return _tri(m, k, "triu", False)


def _indices_from(name: str, maker: Callable):
    def fn(arr: Any, k: int = 0) -> Any:
        arr = _asarr(arr)
        if arr.ndim != 2:
            raise ShapeError(f"np.{name}: needs a 2-d array", user_location())
        return maker(arr.shape[-2], k=k, m=arr.shape[-1])

    fn.__name__ = name
    return fn


triu_indices_from = _indices_from("triu_indices_from", np.triu_indices)
tril_indices_from = _indices_from("tril_indices_from", np.tril_indices)


def diag_indices_from(arr: Any) -> tuple:
    arr = _asarr(arr)
    if arr.ndim < 2 or len(set(arr.shape)) != 1:
        raise ShapeError("np.diag_indices_from: all dimensions must be equal", user_location())
    return np.diag_indices(arr.shape[0], arr.ndim)


FUNCTIONS: dict[Callable, Callable] = {
    np.trace: trace,
    np.diagonal: diagonal,
    np.diag: diag,
    np.triu: triu,
    np.tril: tril,
    np.diagflat: diagflat,
    np.triu_indices_from: triu_indices_from,
    np.tril_indices_from: tril_indices_from,
    np.diag_indices_from: diag_indices_from,
}
