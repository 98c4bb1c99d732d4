"""Indexing and selection: `x[key]` (ints, slices, None, ..., integer arrays), `take`,
`take_along_axis`, and choosing elementwise among arrays (`select`, `choose`, `piecewise`),
which are `where` so gradients stay NaN-free outside each choice."""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.ir import DTypeError, GraphcError, ShapeError
from graphc.numpy._core import _asarr, _axes, _axis, _no_extras, _promote_all, astype
from graphc.numpy.creation import zeros_like
from graphc.numpy.shapes import broadcast_to, ravel, reshape, transpose
from graphc.numpy.ufuncs import clip, equal, remainder, where
from graphc.trace import Tracer, TracerError, UnsupportedError, bind, user_location


def _index_array(idx: Any, n: int) -> Any:
    """An integer index array (traced or concrete, negatives wrapped when concrete)."""
    if isinstance(idx, Tracer):
        if idx.dtype == np.bool_:
            raise UnsupportedError(
                "boolean mask indexing gives data-dependent shapes; use "
                "np.where(mask, x, 0) instead",
                user_location(),
            )
        if idx.dtype.kind not in "iu":
            raise DTypeError(f"index arrays must be integers, got {idx.dtype}", user_location())
        return idx
    arr = np.asarray(idx)
    if isinstance(idx, list) and arr.size == 0:  # x[[]] selects nothing, as in NumPy
        arr = arr.astype(np.int64)
    if arr.dtype == np.bool_:
        raise UnsupportedError(
            "boolean mask indexing gives data-dependent shapes; use np.where(mask, x, 0) instead",
            user_location(),
        )
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"index arrays must be integers, got {arr.dtype}", user_location())
    if arr.size and (arr.max() >= n or arr.min() < -n):
        raise ShapeError(
            f"index {int(arr.max() if arr.max() >= n else arr.min())} is out of "
            f"bounds for an axis of length {n}",
            user_location(),
        )
    return np.where(arr < 0, arr + n, arr).astype(np.int64)


def _is_array_index(k: Any) -> bool:
    return isinstance(k, (Tracer, np.ndarray, list)) and not isinstance(k, bool)


def getitem(x: Any, key: Any) -> Any:
    """x[key] for ints, slices (any step), None, Ellipsis and integer arrays."""
    x = _asarr(x)
    key = key if isinstance(key, tuple) else (key,)
    n_used = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')", user_location())
    if n_used > x.ndim:
        raise ShapeError(
            f"too many indices ({n_used}) for an array of shape {x.shape}", user_location()
        )
    if Ellipsis in [k for k in key if not _is_array_index(k)]:
        i = next(i for i, k in enumerate(key) if k is Ellipsis and not _is_array_index(k))
        key = key[:i] + (slice(None),) * (x.ndim - n_used) + key[i + 1 :]
    key = key + (slice(None),) * (x.ndim - builtins.sum(1 for k in key if k is not None))
    has_array = builtins.any(_is_array_index(k) for k in key)
    if has_array and builtins.any(k is None for k in key):
        raise UnsupportedError(
            "combining None (np.newaxis) with array indices is not supported", user_location()
        )

    # 1. basic slicing, dimension by dimension
    starts, stops, steps, flips = [], [], [], []
    kinds = []  # per input dim: 'slice', 'int', or ('array', idx)
    dim = 0
    for k in key:
        if k is None:
            continue
        n = x.shape[dim]
        if isinstance(k, slice):
            a, b, s = k.indices(n)
            if s < 0:  # walk the flipped axis forwards instead
                cnt = len(range(a, b, s))
                flips.append(dim)
                a = n - 1 - a
                s = -s
                b = a + (cnt - 1) * s + 1 if cnt else a
            b = builtins.max(a, b)
            starts.append(a), stops.append(b), steps.append(s)
            kinds.append("slice")
        elif _is_array_index(k):
            starts.append(0), stops.append(n), steps.append(1)
            kinds.append(("array", _index_array(k, n)))
        else:
            if isinstance(k, (bool, np.bool_)):
                raise UnsupportedError(
                    "boolean mask indexing gives data-dependent shapes; use "
                    "np.where(mask, x, 0) instead",
                    user_location(),
                )
            try:
                i = operator.index(k)
            except TracerError:
                raise UnsupportedError(
                    "a traced scalar cannot be used as an index; index with a "
                    "traced integer array (x[idx]) or np.take",
                    user_location(),
                ) from None
            except (TypeError, ValueError):
                raise ShapeError(
                    f"invalid index {k!r}: only integers, slices, ..., None and "
                    "integer arrays are valid indices",
                    user_location(),
                ) from None
            if not -n <= i < n:
                raise ShapeError(
                    f"index {i} is out of bounds for an axis of length {n}", user_location()
                )
            i %= n
            if has_array:
                starts.append(0), stops.append(n), steps.append(1)
                kinds.append(("array", np.asarray(i, dtype=np.int64)))
            else:
                starts.append(i), stops.append(i + 1), steps.append(1)
                kinds.append("int")
        dim += 1
    if flips:
        x = bind("flip", x, axes=tuple(flips))
    if (starts, stops, steps) != ([0] * x.ndim, list(x.shape), [1] * x.ndim):
        x = bind("slice", x, start=tuple(starts), stop=tuple(stops), step=tuple(steps))

    if has_array:
        adv = [i for i, k in enumerate(kinds) if isinstance(k, tuple)]
        idx = [kinds[i][1] for i in adv]
        if adv == list(range(adv[0], adv[0] + len(adv))):
            return bind("gather", x, *idx, axis=adv[0])
        # separated array indices: NumPy puts the indexed axes first
        rest = [i for i in range(x.ndim) if i not in adv]
        return bind("gather", transpose(x, adv + rest), *idx, axis=0)

    # 2. drop integer-indexed dims, insert new axes
    shape, dim = [], 0
    for k in key:
        if k is None:
            shape.append(1)
            continue
        if kinds[dim] != "int":
            shape.append(x.shape[dim])
        dim += 1
    return reshape(x, tuple(shape))


def _slice_axis(x: Any, ax: int, start: int, stop: int) -> Any:
    return getitem(x, (slice(None),) * ax + (slice(start, stop),))


def take(a: Any, indices: Any, axis: Any = None, out: Any = None, mode: str = "raise") -> Any:
    _no_extras("take", out)
    if mode != "raise":
        raise UnsupportedError("np.take: only mode='raise' is supported", user_location())
    a = _asarr(a)
    if axis is None:
        a, axis = ravel(a), 0
    (ax,) = _axes("take", axis, a.ndim, single=True)
    return bind("gather", a, _index_array(indices, a.shape[ax]), axis=ax)


def take_along_axis(arr: Any, indices: Any, axis: Any = -1) -> Any:
    """arr[..., indices, ...] along one axis: a gather with every other axis indexed by a
    broadcast arange."""
    arr, idx = _asarr(arr), _asarr(indices)
    if axis is None:
        arr, ax = ravel(arr), 0
    else:
        ax = _axis(arr, axis, "take_along_axis")
    if idx.ndim != arr.ndim:
        raise ShapeError(
            f"take_along_axis: indices of shape {tuple(idx.shape)} need as many dimensions as "
            f"the array, of shape {tuple(arr.shape)}",
            user_location(),
        )
    if not isinstance(idx, Tracer):
        idx = _index_array(idx, arr.shape[ax])
    parts = []
    for i, n in enumerate(arr.shape):
        if i == ax:
            parts.append(idx)
        else:
            parts.append(np.arange(n, dtype=np.int64).reshape((n,) + (1,) * (arr.ndim - 1 - i)))
    return bind("gather", arr, *parts, axis=0)


def select(condlist: Sequence[Any], choicelist: Sequence[Any], default: Any = 0) -> Any:
    """The first choice whose condition holds, elementwise: nested where from the last."""
    if len(condlist) != len(choicelist):
        raise ShapeError(
            "np.select: condlist and choicelist must have the same length", user_location()
        )
    if not condlist:
        raise ShapeError("np.select: needs at least one condition", user_location())
    choices = [_asarr(c) for c in choicelist]
    dflt = default if isinstance(default, (int, float)) else _asarr(default).dtype
    dt = np.result_type(np.result_type(*[c.dtype for c in choices]), dflt)
    choices = [astype(c, dt) for c in choices] + [astype(_asarr(default), dt)]
    r = choices[-1]
    for c, v in zip(reversed(condlist), reversed(choices[:-1]), strict=True):
        c = _asarr(c)
        if c.dtype != np.bool_:
            raise DTypeError(
                f"np.select: conditions must be boolean, got {c.dtype}", user_location()
            )
        r = where(c, v, r)
    return r


def choose(a: Any, choices: Sequence[Any], out: Any = None, mode: str = "raise") -> Any:
    """choices[a] elementwise: nested where over the (few) choices; indices outside them
    are NaN-free zeros rather than errors (mode='clip' and 'wrap' as NumPy)."""
    _no_extras("choose", out)
    a = _asarr(a)
    cs = _promote_all([_asarr(c) for c in choices])
    k = len(cs)
    if mode == "clip":
        a = clip(a, 0, k - 1)
    elif mode == "wrap":
        a = remainder(astype(a, np.float64), k)
    elif mode != "raise":
        raise GraphcError(
            f"np.choose: mode must be 'raise', 'wrap' or 'clip', got {mode!r}", user_location()
        )
    if not isinstance(a, Tracer) and (np.any(a < 0) or np.any(a >= k)):
        raise ShapeError("np.choose: invalid entry in choice array", user_location())
    r = cs[-1]
    for i in range(k - 2, -1, -1):
        r = where(equal(a, i), cs[i], r)
    return r


def piecewise(x: Any, condlist: Any, funclist: Sequence[Any], *args: Any, **kw: Any) -> Any:
    """funclist[i](x) where condlist[i] holds (later conditions win), an optional last
    function where none does, else 0. Every function sees all of x; the selection is a
    where, so gradients are NaN-free outside each piece."""
    x = _asarr(x)
    conds = list(condlist) if isinstance(condlist, (list, tuple)) else [condlist]
    n = len(conds)
    if len(funclist) not in (n, n + 1):
        raise ShapeError(
            f"np.piecewise: with {n} condition(s) there must be {n} or {n + 1} functions",
            user_location(),
        )

    def value(fn: Any) -> Any:
        v = fn(x, *args, **kw) if callable(fn) else fn
        return broadcast_to(astype(_asarr(v), x.dtype), tuple(x.shape))

    if len(funclist) == n + 1:
        r = value(funclist[-1])
    else:
        r = zeros_like(x)
    for c, fn in zip(conds, funclist[:n], strict=True):
        r = where(astype(_asarr(c), np.bool_), value(fn), r)
    return r


FUNCTIONS: dict[Callable, Callable] = {
    np.take: take,
    np.take_along_axis: take_along_axis,
    np.select: select,
    np.choose: choose,
    np.piecewise: piecewise,
}
