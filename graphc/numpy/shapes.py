"""Shapes and axes: reshaping, transposing and moving axes, adding and removing unit axes,
broadcasting, joining arrays along an axis, flipping, and the shape queries."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.ir import AxisError, GraphcError, ShapeError
from graphc.numpy._core import (
    _asarr,
    _axes,
    _axis,
    _no_extras,
    _norm_axes,
    _promote_all,
    _shape_arg,
    _static_int,
    astype,
)
from graphc.trace import UnsupportedError, bind, user_location


def _resolve_reshape(size: int, shape: tuple) -> tuple[int, ...]:
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: more than one -1 in {shape}", user_location())
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise ShapeError(f"reshape: cannot reshape size {size} into {shape}", user_location())
        shape = tuple(size // known if s == -1 else s for s in shape)
    return shape


def reshape(
    x: Any, shape: Any = None, order: str = "C", *, newshape: Any = None, copy: Any = None
) -> Any:
    if order != "C":
        raise UnsupportedError("reshape: only order='C' is supported", user_location())
    x = _asarr(x)
    shape = _resolve_reshape(x.size, _shape_arg(newshape if shape is None else shape))
    if tuple(shape) == tuple(x.shape):
        return x
    return bind("reshape", x, shape=shape)


def ravel(x: Any, order: str = "C") -> Any:
    return reshape(x, (-1,), order)


def transpose(x: Any, axes: Any = None) -> Any:
    x = _asarr(x)
    nd = x.ndim
    if axes is None:
        perm = tuple(range(nd))[::-1]
    else:
        perm = _axes("transpose", axes, nd, what="axes")
        if len(perm) != nd:
            raise ShapeError(
                f"transpose: axes {axes!r} do not match a {nd}-d array",
                user_location(),
            )
    if perm == tuple(range(nd)):
        return x
    return bind("transpose", x, perm=perm)


def swapaxes(x: Any, axis1: Any, axis2: Any) -> Any:
    x = _asarr(x)
    perm = list(range(x.ndim))
    a, b = _axis(x, axis1, "swapaxes", "axis1"), _axis(x, axis2, "swapaxes", "axis2")
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def moveaxis(x: Any, source: Any, destination: Any) -> Any:
    x = _asarr(x)
    src = _axes("moveaxis", source, x.ndim, what="source")
    dst = _axes("moveaxis", destination, x.ndim, what="destination")
    if len(src) != len(dst):
        raise ShapeError(
            f"moveaxis: source {source!r} and destination {destination!r} name different "
            "numbers of axes",
            user_location(),
        )
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return transpose(x, order)


def rollaxis(a: Any, axis: Any, start: Any = 0) -> Any:
    """np.rollaxis: axis moved to sit before position start (prefer moveaxis)."""
    a = _asarr(a)
    n = a.ndim
    ax = _axis(a, axis, "rollaxis")
    # start is a position between axes, so n itself is allowed: -n <= start <= n
    st = _static_int(start, "rollaxis: start")
    if not -n <= st <= n:
        raise AxisError(
            f"rollaxis: start {st} is out of bounds for a {n}-d array "
            f"(it needs {-n} <= start <= {n})",
            user_location(),
            axis=st,
            ndim=n,
        )
    st = st + n if st < 0 else st
    if ax < st:
        st -= 1
    order = [i for i in range(n) if i != ax]
    order.insert(st, ax)
    return transpose(a, order)


def matrix_transpose(x: Any, /) -> Any:
    x = _asarr(x)
    if x.ndim < 2:
        raise ShapeError(
            "matrix_transpose: needs an array of at least 2 dimensions", user_location()
        )
    return swapaxes(x, -1, -2)


def permute_dims(a: Any, axes: Any = None) -> Any:
    return transpose(a, axes)


def broadcast_to(x: Any, shape: Any, subok: bool = False) -> Any:
    x = _asarr(x)
    shape = _shape_arg(shape)
    if tuple(shape) == tuple(x.shape):
        return x
    return bind("broadcast_to", x, shape=shape)


def broadcast_arrays(*args: Any, subok: bool = False) -> tuple[Any, ...]:
    args = [_asarr(a) for a in args]
    try:
        shp = np.broadcast_shapes(*[tuple(a.shape) for a in args])
    except ValueError:
        raise ShapeError(
            f"np.broadcast_arrays: shapes {[tuple(a.shape) for a in args]} do not broadcast",
            user_location(),
        ) from None
    return tuple(broadcast_to(a, shp) for a in args)


def expand_dims(x: Any, axis: Any) -> Any:
    x = _asarr(x)
    n_new = len(axis) if isinstance(axis, (tuple, list)) else 1
    axes = _axes("expand_dims", axis, x.ndim + n_new)
    nd = x.ndim + n_new
    it = iter(x.shape)
    return reshape(x, tuple(1 if i in axes else next(it) for i in range(nd)))


def squeeze(x: Any, axis: Any = None) -> Any:
    x = _asarr(x)
    if axis is None:
        axes = tuple(i for i, s in enumerate(x.shape) if s == 1)
    else:
        axes = _norm_axes(x, axis, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(
                    f"squeeze: axis {a} of {x.shape} has length {x.shape[a]}, not 1",
                    user_location(),
                )
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def _atleast(nd: int, arrays: Sequence[Any]) -> Any:
    out = []
    for a in arrays:
        a = _asarr(a)
        if a.ndim < nd:
            if nd == 3 and a.ndim == 2:
                a = reshape(a, tuple(a.shape) + (1,))
            elif nd == 3 and a.ndim == 1:
                a = reshape(a, (1,) + tuple(a.shape) + (1,))
            else:
                a = reshape(a, (1,) * (nd - a.ndim) + tuple(a.shape))
        out.append(a)
    return out[0] if len(out) == 1 else tuple(out)


def atleast_1d(*arys: Any) -> Any:
    return _atleast(1, arys)


def atleast_2d(*arys: Any) -> Any:
    return _atleast(2, arys)


def atleast_3d(*arys: Any) -> Any:
    return _atleast(3, arys)


def concatenate(
    arrays: Sequence[Any],
    axis: Any = 0,
    out: Any = None,
    dtype: Any = None,
    casting: str = "same_kind",
) -> Any:
    _no_extras("concatenate", out)
    arrays = list(arrays)
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    arrays = _promote_all(arrays) if dtype is None else [astype(a, dtype) for a in arrays]
    if not arrays:
        raise ShapeError("concatenate: needs at least one array", user_location())
    (ax,) = _axes("concatenate", axis, _asarr(arrays[0]).ndim, single=True)
    if len(arrays) == 1:
        return arrays[0]
    return bind("concatenate", *arrays, axis=ax)


def stack(
    arrays: Sequence[Any],
    axis: int = 0,
    out: Any = None,
    *,
    dtype: Any = None,
    casting: str = "same_kind",
) -> Any:
    _no_extras("stack", out)
    arrays = [_asarr(a) for a in arrays]
    if not arrays:
        raise ShapeError("stack: needs at least one array", user_location())
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(
            f"stack: all arrays must have the same shape, got {sorted(shapes)}", user_location()
        )
    ax = _axes("stack", axis, arrays[0].ndim + 1, single=True)[0]
    return concatenate([expand_dims(a, ax) for a in arrays], axis=ax, dtype=dtype)


def hstack(arrays: Sequence[Any], *, dtype: Any = None, casting: str = "same_kind") -> Any:
    arrays = [_asarr(a) for a in arrays]
    return concatenate(arrays, axis=0 if arrays[0].ndim == 1 else 1, dtype=dtype)


def vstack(arrays: Sequence[Any], *, dtype: Any = None, casting: str = "same_kind") -> Any:
    arrays = [_asarr(a) for a in arrays]
    rows = [reshape(a, (1, -1)) if a.ndim == 1 else a for a in arrays]
    return concatenate(rows, axis=0, dtype=dtype)


def dstack(tup: Sequence[Any], **kw: Any) -> Any:
    return concatenate(list(atleast_3d(*tup)) if len(tup) > 1 else [atleast_3d(*tup)], axis=2)


def column_stack(tup: Sequence[Any]) -> Any:
    arrs = [_asarr(a) for a in tup]
    return concatenate([reshape(a, (-1, 1)) if a.ndim < 2 else a for a in arrs], axis=1)


def block(arrays: Any) -> Any:
    """An array assembled from nested lists of blocks: the innermost lists are joined along
    the last axis, the next ones along the one before, and so on."""

    def depth(x: Any) -> int:
        d = 0
        while isinstance(x, list):
            if not x:
                raise ShapeError("np.block: lists cannot be empty", user_location())
            x, d = x[0], d + 1
        return d

    def leaves(x: Any) -> list[Any]:
        out, todo = [], [x]
        while todo:
            y = todo.pop()
            if isinstance(y, list):
                todo.extend(y)
            elif isinstance(y, tuple):
                raise GraphcError(
                    "np.block: use lists, not tuples, to nest blocks", user_location()
                )
            else:
                out.append(_asarr(y))
        return out

    d = depth(arrays)
    nd = builtins.max([d] + [a.ndim for a in leaves(arrays)])

    def build(x: Any, level: int) -> Any:
        if isinstance(x, list) != (level < d):
            raise ShapeError("np.block: list depths are mismatched", user_location())
        if not isinstance(x, list):
            a = _asarr(x)
            return reshape(a, (1,) * (nd - a.ndim) + tuple(a.shape))
        if not x:
            raise ShapeError("np.block: lists cannot be empty", user_location())
        return concatenate([build(e, level + 1) for e in x], axis=-(d - level))

    if d == 0:
        return _asarr(arrays)
    return build(arrays, 0)


def flip(x: Any, axis: Any = None) -> Any:
    x = _asarr(x)
    return bind("flip", x, axes=_norm_axes(x, axis, "flip"))


def flipud(m: Any) -> Any:
    return flip(m, axis=0)


def fliplr(m: Any) -> Any:
    m = _asarr(m)
    if m.ndim < 2:
        raise ShapeError("np.fliplr: needs an array of at least 2 dimensions", user_location())
    return flip(m, axis=1)


def rot90(m: Any, k: int = 1, axes: Sequence[int] = (0, 1)) -> Any:
    """m rotated by 90 degrees k times in the plane of axes (from the first towards the
    second)."""
    m = _asarr(m)
    k = _static_int(k, "np.rot90: k") % 4
    if len(axes) != 2:
        raise ShapeError("np.rot90: axes must name 2 axes", user_location())
    a0, a1 = _axis(m, axes[0], "rot90"), _axis(m, axes[1], "rot90")
    if a0 == a1:
        raise ShapeError("np.rot90: the two axes must differ", user_location())
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    if k == 1:
        return swapaxes(flip(m, a1), a0, a1)
    return flip(swapaxes(m, a0, a1), a1)


def shape(x: Any) -> tuple[int, ...]:
    return tuple(_asarr(x).shape)


def ndim(x: Any) -> int:
    return _asarr(x).ndim


def size(x: Any, axis: Any = None) -> int:
    x = _asarr(x)
    if axis is None:
        return x.size
    return int(np.prod([x.shape[a] for a in _axes("size", axis, x.ndim)], dtype=np.int64))


FUNCTIONS: dict[Callable, Callable] = {
    np.concatenate: concatenate,
    np.stack: stack,
    np.hstack: hstack,
    np.vstack: vstack,
    np.reshape: reshape,
    np.ravel: ravel,
    np.transpose: transpose,
    np.swapaxes: swapaxes,
    np.moveaxis: moveaxis,
    np.rollaxis: rollaxis,
    np.broadcast_to: broadcast_to,
    np.expand_dims: expand_dims,
    np.squeeze: squeeze,
    np.flip: flip,
    np.shape: shape,
    np.ndim: ndim,
    np.size: size,
    np.flipud: flipud,
    np.fliplr: fliplr,
    np.rot90: rot90,
    np.atleast_1d: atleast_1d,
    np.atleast_2d: atleast_2d,
    np.atleast_3d: atleast_3d,
    np.broadcast_arrays: broadcast_arrays,
    np.dstack: dstack,
    np.column_stack: column_stack,
    np.matrix_transpose: matrix_transpose,
    # NumPy 2's np.permute_dims is np.transpose: this later entry is the one that counts, and
    # its first parameter is named `a`, as np.transpose's is
    np.permute_dims: permute_dims,
    np.block: block,
}
