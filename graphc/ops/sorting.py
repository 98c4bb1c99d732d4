"""searchsorted: where values would be inserted into a sorted array (no gradient; compiled code
runs NumPy's binary search as a visible fallback).

Example:
    >>> from graphc.ops import REGISTRY
    >>> REGISTRY["searchsorted"].differentiable
    False
"""

from __future__ import annotations

import numpy as np

from graphc.ir import Aval, DTypeError, ShapeError
from graphc.ops.registry import Kind, bind, defop


def _searchsorted_rule(a: Aval, v: Aval, *, side: str) -> Aval:
    if a.ndim != 1:
        raise ShapeError(f"searchsorted: the sorted array must be 1-d, got {a}")
    if side not in ("left", "right"):
        raise ShapeError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    if a.dtype != v.dtype:
        raise DTypeError(f"searchsorted: operand dtypes differ ({a}, {v})")
    return Aval(v.shape, np.dtype(np.int64))


def _searchsorted_batch(bt, dims, a, v, *, side):
    if dims[0] is not None:
        # one sorted array per example: no single binary search serves them all
        return bt.loop("a sorted array per example")
    return bind("searchsorted", a, v, side=side), dims[1]


defop(
    "searchsorted",
    Kind.OTHER,
    _searchsorted_rule,
    lambda a, v, *, side: np.asarray(np.searchsorted(a, v, side=side), dtype=np.int64),
    arity=2,
    differentiable=False,
    batch=_searchsorted_batch,
    doc="indices where v's elements would be inserted to keep the 1-d array a sorted",
)
