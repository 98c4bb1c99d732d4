"""NumPy functions graphc refuses, each with the reason and what to use instead: those whose
result's shape depends on the values (graphs have fixed shapes) and those that change an array
in place (traced values are immutable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.trace import UnsupportedError, user_location


def _data_dependent(name: str, hint: str = ""):
    """A handler for functions whose result's shape depends on the values: they cannot be
    traced into a graph of fixed shapes."""

    def fn(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedError(
            f"{name} is not supported by graphc: the shape of its result depends on the "
            f"values of its input, and graphc's graphs have fixed shapes{hint}",
            user_location(),
        )

    fn.__name__ = name.rsplit(".", 1)[-1]
    return fn


def _in_place_function(name: str, instead: str):
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedError(
            f"numpy.{name} changes an array in place, which graphc does not trace; use "
            f"{instead} instead",
            user_location(),
        )

    fn.__name__ = name
    return fn


def _numpy_name(fn: Callable) -> str:
    mod = "numpy.linalg" if fn.__module__.startswith("numpy.linalg") else "numpy"
    return f"{mod}.{fn.__name__}"


_SAME_SHAPE = "; np.where(cond, x, y) selects without changing the shape"
_DATA_DEPENDENT: list[tuple[Callable, str]] = [
    (np.unique, ""),
    (np.unique_values, ""),
    (np.unique_counts, ""),
    (np.unique_inverse, ""),
    (np.unique_all, ""),
    (np.nonzero, _SAME_SHAPE),
    (np.argwhere, _SAME_SHAPE),
    (np.flatnonzero, _SAME_SHAPE),
    (np.extract, "; np.where(cond, x, 0) keeps the shape"),
    (np.compress, "; np.where(cond, x, 0) keeps the shape"),
    (np.trim_zeros, ""),
    (np.linalg.lstsq, "; np.linalg.pinv(a) @ b gives the least-squares solution"),
    (np.bincount, "; a sum of one-hot rows, np.sum(x[:, None] == np.arange(n), 0), has n bins"),
    (np.intersect1d, ""),
    (np.union1d, ""),
    (np.setdiff1d, ""),
    (np.setxor1d, ""),
]

FUNCTIONS: dict[Callable, Callable] = {
    np.fill_diagonal: _in_place_function("fill_diagonal", "np.where(np.eye(n, dtype=bool), v, a)"),
    np.put: _in_place_function("put", "np.where or indexing into a new array"),
    np.place: _in_place_function("place", "np.where(mask, values, a)"),
    np.putmask: _in_place_function("putmask", "np.where(mask, values, a)"),
    np.copyto: _in_place_function("copyto", "the source array itself"),
    np.put_along_axis: _in_place_function("put_along_axis", "np.where with a one-hot mask"),
}
FUNCTIONS.update({fn: _data_dependent(_numpy_name(fn), hint) for fn, hint in _DATA_DEPENDENT})
