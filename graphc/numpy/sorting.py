"""Sorting and searching: sort and argsort (stable; sort is a gather, so gradients follow the
permutation), partitions, lexsort, searchsorted, digitize and isin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import GraphcError, ShapeError
from graphc.numpy._core import _asarr, _axis, _promote_all
from graphc.numpy.creation import zeros_like
from graphc.numpy.indexing import take, take_along_axis
from graphc.numpy.reductions import any
from graphc.numpy.shapes import expand_dims, ravel
from graphc.numpy.ufuncs import equal, logical_not
from graphc.trace import Tracer, UnsupportedError, bind, user_location


def _sortable(a: Any, axis: Any, name: str, kind: Any, order: Any) -> tuple[Any, int]:
    if order is not None:
        raise UnsupportedError(
            f"{name}: order= (structured arrays) is not supported", user_location()
        )
    a = _asarr(a)
    if axis is None:
        return ravel(a), 0
    return a, _axis(a, axis, name)


def argsort(
    a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None
) -> Any:
    """Indices that sort a along axis; always stable (ties keep their order)."""
    a, ax = _sortable(a, axis, "argsort", kind, order)
    return bind("argsort", a, axis=ax)


def sort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None) -> Any:
    """a sorted along axis: a gather with its argsort, so the gradient follows the
    permutation."""
    a, ax = _sortable(a, axis, "sort", kind, order)
    return take_along_axis(a, bind("argsort", a, axis=ax), ax)


def partition(
    a: Any, kth: Any, axis: Any = -1, kind: str = "introselect", order: Any = None
) -> Any:
    """A full sort, which is one valid partition (every kth element in its sorted place)."""
    return sort(a, axis=axis, order=order)


def argpartition(
    a: Any, kth: Any, axis: Any = -1, kind: str = "introselect", order: Any = None
) -> Any:
    """Indices of a full sort, which is one valid partition."""
    return argsort(a, axis=axis, order=order)


def lexsort(keys: Any, axis: int = -1) -> Any:
    """Indices sorting by the last key, ties broken by the ones before: stable sorts from the
    least significant key on."""
    ks = [keys[i] for i in range(keys.shape[0])] if isinstance(keys, Tracer) else list(keys)
    if not ks:
        raise ShapeError("np.lexsort: needs at least one key", user_location())
    ks = [_asarr(k) for k in ks]
    order = argsort(ks[0], axis=axis)
    for k in ks[1:]:
        order = take_along_axis(order, argsort(take_along_axis(k, order, axis), axis=axis), axis)
    return order


def searchsorted(a: Any, v: Any, side: str = "left", sorter: Any = None) -> Any:
    """Indices where v's elements would go into the sorted 1-d a (no gradient)."""
    a, v = _asarr(a), _asarr(v)
    if side not in ("left", "right"):
        raise GraphcError(
            f"np.searchsorted: side must be 'left' or 'right', got {side!r}", user_location()
        )
    if a.ndim != 1:
        raise ShapeError(
            f"np.searchsorted: a must be 1-d, got shape {tuple(a.shape)}", user_location()
        )
    if sorter is not None:
        a = take(a, sorter)
    a, v = _promote_all([a, v])
    return bind("searchsorted", a, v, side=side)


def digitize(x: Any, bins: Any, right: bool = False) -> Any:
    """Indices of the bins x falls into (bins monotonic; no gradient)."""
    x, bins = _asarr(x), _asarr(bins)
    if bins.ndim != 1:
        raise ShapeError("np.digitize: bins must be 1-d", user_location())
    if isinstance(bins, Tracer):
        raise UnsupportedError("np.digitize: bins must be constants, not traced", user_location())
    d = np.diff(bins)
    inc = bool(np.all(d >= 0))
    if not inc and not np.all(d <= 0):
        raise GraphcError(
            "np.digitize: bins must be monotonically increasing or decreasing", user_location()
        )
    side = "left" if right else "right"
    if inc:
        return searchsorted(bins, x, side=side)
    return bins.shape[0] - searchsorted(bins[::-1].copy(), x, side=side)


def isin(
    element: Any,
    test_elements: Any,
    assume_unique: bool = False,
    invert: bool = False,
    *,
    kind: Any = None,
) -> Any:
    """Whether each element is among test_elements (compared one by one)."""
    e, t = _asarr(element), ravel(_asarr(test_elements))
    if t.shape[0] == 0:
        r = zeros_like(e, dtype=np.bool_)
    else:
        r = any(equal(expand_dims(e, -1), t), axis=-1)
    return logical_not(r) if invert else r


FUNCTIONS: dict[Callable, Callable] = {
    np.sort: sort,
    np.argsort: argsort,
    np.searchsorted: searchsorted,
    np.lexsort: lexsort,
    np.digitize: digitize,
    np.isin: isin,
    np.partition: partition,
    np.argpartition: argpartition,
}
