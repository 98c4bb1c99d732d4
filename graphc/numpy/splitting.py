"""Arrays cut along an axis and put together again: split and its variants, tile, repeat,
roll, resize, append, insert and delete (slices, gathers and joins, so their gradients come
from those ops)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import GraphcError, ShapeError
from graphc.numpy._core import (
    _any_traced,
    _asarr,
    _axis,
    _promote_all,
    _shape_arg,
    _static_int,
    astype,
)
from graphc.numpy.indexing import _slice_axis
from graphc.numpy.shapes import (
    broadcast_to,
    concatenate,
    expand_dims,
    moveaxis,
    ravel,
    reshape,
    squeeze,
    stack,
)
from graphc.trace import Tracer, UnsupportedError, bind, user_location


def _split(name: str, ary: Any, indices_or_sections: Any, axis: Any, equal: bool) -> list[Any]:
    ary = _asarr(ary)
    ax = _axis(ary, axis, name)
    n = ary.shape[ax]
    if isinstance(indices_or_sections, Tracer):
        raise UnsupportedError(
            f"{name}: sections and split points must be Python ints, not traced values",
            user_location(),
        )
    if np.ndim(indices_or_sections) == 0:
        sections = _static_int(indices_or_sections, f"{name}: sections")
        if sections <= 0:
            raise ShapeError(f"{name}: the number of sections must be positive", user_location())
        if equal and n % sections:
            raise ShapeError(
                f"{name}: an axis of length {n} does not split into {sections} equal "
                "sections (np.array_split allows unequal ones)",
                user_location(),
            )
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        points = [builtins.sum(sizes[:i]) for i in range(sections + 1)]
    else:
        points = [0] + [_static_int(i, f"{name}: split point") for i in indices_or_sections] + [n]
    return [_slice_axis(ary, ax, a, b) for a, b in zip(points[:-1], points[1:], strict=True)]


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    return _split("split", ary, indices_or_sections, axis, True)


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    return _split("array_split", ary, indices_or_sections, axis, False)


def hsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    ary = _asarr(ary)
    if ary.ndim == 0:
        raise ShapeError("np.hsplit only works on arrays of 1 or more dimensions", user_location())
    return split(ary, indices_or_sections, axis=1 if ary.ndim > 1 else 0)


def vsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    if _asarr(ary).ndim < 2:
        raise ShapeError("np.vsplit only works on arrays of 2 or more dimensions", user_location())
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    if _asarr(ary).ndim < 3:
        raise ShapeError("np.dsplit only works on arrays of 3 or more dimensions", user_location())
    return split(ary, indices_or_sections, axis=2)


def unstack(x: Any, /, *, axis: int = 0) -> tuple[Any, ...]:
    x = _asarr(x)
    ax = _axis(x, axis, "unstack")
    return tuple(squeeze(p, ax) for p in split(x, x.shape[ax], axis=ax))


def tile(A: Any, reps: Any) -> Any:
    """A repeated reps times along each axis: a broadcast of A with a unit axis before each of
    its axes, reshaped (its gradient sums the copies)."""
    A = _asarr(A)
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    reps = tuple(_static_int(r, "tile: reps") for r in reps)
    if builtins.any(r < 0 for r in reps):
        raise ShapeError(f"tile: negative repetitions in {reps}", user_location())
    d = builtins.max(len(reps), A.ndim)
    reps = (1,) * (d - len(reps)) + reps
    shape = (1,) * (d - A.ndim) + tuple(A.shape)
    x = reshape(A, tuple(v for s in shape for v in (1, s)))
    x = broadcast_to(x, tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s)))
    return reshape(x, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def repeat(a: Any, repeats: Any, axis: Any = None) -> Any:
    """Each element repeated along axis (flattened first when axis is None): a broadcast for
    one count, a gather for a count per element."""
    a = _asarr(a)
    if isinstance(repeats, Tracer):
        raise UnsupportedError(
            "repeat: repeats must be Python ints, not traced values (they decide the "
            "result's shape)",
            user_location(),
        )
    if axis is None:
        a, ax = ravel(a), 0
    else:
        ax = _axis(a, axis, "repeat")
    r = np.asarray(repeats)
    if r.dtype.kind not in "iu" or r.ndim > 1:
        raise GraphcError(
            f"repeat: repeats must be an int or a 1-d sequence of ints, got {repeats!r}",
            user_location(),
        )
    if np.any(r < 0):
        raise ShapeError(f"repeat: negative repeats {repeats!r}", user_location())
    n = a.shape[ax]
    if r.size == 1:
        x = expand_dims(a, ax + 1)
        shape = list(x.shape)
        shape[ax + 1] = int(r.reshape(()))
        out = list(a.shape)
        out[ax] = n * shape[ax + 1]
        return reshape(broadcast_to(x, tuple(shape)), tuple(out))
    if r.shape != (n,):
        raise ShapeError(
            f"repeat: {r.size} repeat counts for an axis of length {n}", user_location()
        )
    return bind("gather", a, np.repeat(np.arange(n, dtype=np.int64), r), axis=ax)


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """Elements shifted cyclically along axes: two slices joined in the other order."""
    a = _asarr(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    if isinstance(shift, Tracer) or isinstance(axis, Tracer):
        raise UnsupportedError(
            "roll: shift and axis must be Python ints, not traced values", user_location()
        )
    try:
        pairs = np.broadcast(shift, axis)
    except ValueError:
        raise ShapeError(
            f"roll: shift {shift!r} and axis {axis!r} have different lengths", user_location()
        ) from None
    if pairs.ndim > 1:
        raise ShapeError("roll: shift and axis must be ints or 1-d sequences", user_location())
    totals = [0] * a.ndim
    for s, ax in pairs:
        totals[_axis(a, ax, "roll")] += _static_int(s, "roll: shift")
    for ax, s in enumerate(totals):
        n = a.shape[ax]
        if n and s % n:
            s %= n
            a = concatenate([_slice_axis(a, ax, n - s, n), _slice_axis(a, ax, 0, n - s)], axis=ax)
    return a


def resize(a: Any, new_shape: Any) -> Any:
    """a's elements repeated (flattened) to fill new_shape."""
    a = ravel(_asarr(a))
    shape = _shape_arg(new_shape)
    total = int(np.prod(shape, dtype=np.int64))
    if builtins.any(d < 0 for d in shape):
        raise ShapeError(
            "np.resize: all elements of new_shape must be non-negative", user_location()
        )
    n = a.shape[0]
    if n == 0 or total == 0:
        return np.zeros(shape, dtype=a.dtype)
    reps = -(-total // n)
    return reshape(_slice_axis(tile(a, reps), 0, 0, total), shape)


def _array_like(v: Any) -> Any:
    """An operand that may be a (nested) list holding traced values: stacked."""
    if isinstance(v, (list, tuple)) and builtins.any(
        isinstance(e, (Tracer, list, tuple)) for e in v
    ):
        parts = [_array_like(e) for e in v]
        if _any_traced(*parts):
            return stack(_promote_all(parts))
    return _asarr(v)


def append(arr: Any, values: Any, axis: Any = None) -> Any:
    arr, values = _array_like(arr), _array_like(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)])
    return concatenate([arr, values], axis=axis)


def _static_indices(obj: Any, n: int, name: str) -> np.ndarray:
    if isinstance(obj, Tracer):
        raise UnsupportedError(
            f"np.{name}: the positions must be constants, not traced (they decide the "
            "result's shape)",
            user_location(),
        )
    if isinstance(obj, slice):
        return np.arange(n)[obj]
    idx = np.asarray(obj)
    if idx.dtype == np.bool_:
        if idx.shape != (n,):
            raise ShapeError(
                f"np.{name}: a boolean mask of shape {idx.shape} for an axis of length {n}",
                user_location(),
            )
        return np.flatnonzero(idx)
    if idx.dtype.kind not in "iu":
        raise GraphcError(f"np.{name}: positions must be integers, got {obj!r}", user_location())
    return idx


def delete(arr: Any, obj: Any, axis: Any = None) -> Any:
    """arr without the entries at obj along axis (flattened without an axis): a gather of
    the kept positions."""
    arr = _asarr(arr)
    if axis is None:
        arr, ax = ravel(arr), 0
    else:
        ax = _axis(arr, axis, "delete")
    n = arr.shape[ax]
    idx = _static_indices(obj, n, "delete")
    if np.any((idx < -n) | (idx >= n)):
        raise ShapeError(
            f"np.delete: index {obj!r} is out of bounds for an axis of length {n}",
            user_location(),
        )
    keep = np.ones(n, dtype=bool)
    keep[idx % n if n else idx] = False
    return bind("gather", arr, np.flatnonzero(keep).astype(np.int64), axis=ax)


def insert(arr: Any, obj: Any, values: Any, axis: Any = None) -> Any:
    """values inserted before the positions obj along axis (flattened without an axis)."""
    arr = _asarr(arr)
    if axis is None:
        arr, ax = ravel(arr), 0
    else:
        ax = _axis(arr, axis, "insert")
    n = arr.shape[ax]
    scalar_obj = np.ndim(obj) == 0 and not isinstance(obj, slice)
    idx = np.atleast_1d(_static_indices(obj, n + 1, "insert"))
    if np.any((idx < -n) | (idx > n)):
        raise ShapeError(
            f"np.insert: index {obj!r} is out of bounds for an axis of length {n}",
            user_location(),
        )
    idx = np.where(idx < 0, idx + n, idx)
    vals = astype(_array_like(values), arr.dtype)
    if vals.ndim > arr.ndim:
        raise ShapeError(
            f"np.insert: values of shape {tuple(vals.shape)} have more dimensions than the "
            f"array of shape {tuple(arr.shape)}",
            user_location(),
        )
    vals = reshape(vals, (1,) * (arr.ndim - vals.ndim) + tuple(vals.shape))
    if scalar_obj:
        # one position: values may hold several entries along the axis (as NumPy)
        vals = moveaxis(vals, 0, ax)
        idx = np.full(vals.shape[ax], idx[0])
    elif idx.size == 1:  # NumPy: a one-element list inserts every entry of values there
        idx = np.full(vals.shape[ax], idx[0])
    shape = list(arr.shape)
    shape[ax] = idx.size
    try:
        np.broadcast_shapes(tuple(vals.shape), tuple(shape))
    except ValueError:
        raise ShapeError(
            f"np.insert: values of shape {tuple(vals.shape)} do not fit {idx.size} "
            f"position(s) along axis {ax} of shape {tuple(arr.shape)}",
            user_location(),
        ) from None
    joined = concatenate([arr, broadcast_to(vals, tuple(shape))], axis=ax)
    # original entry i sorts at 2i + 1, a value inserted before position k at 2k (stable)
    keys = np.concatenate([2 * np.arange(n) + 1, 2 * idx])
    return bind("gather", joined, np.argsort(keys, kind="stable").astype(np.int64), axis=ax)


FUNCTIONS: dict[Callable, Callable] = {
    np.tile: tile,
    np.repeat: repeat,
    np.roll: roll,
    np.split: split,
    np.array_split: array_split,
    np.append: append,
    np.hsplit: hsplit,
    np.vsplit: vsplit,
    np.dsplit: dsplit,
    np.unstack: unstack,
    np.delete: delete,
    np.insert: insert,
    np.resize: resize,
}
