"""The NumPy functions, ufuncs and ufunc methods tracers handle: each family module's table,
joined into graphc.trace's dispatch tables by `register_handlers` (once, when graphc.numpy is
imported), with the Tracer methods no NumPy function reaches (`tracer_methods.METHODS`). A NumPy
function is handled by one family only, so the order of the families does not matter; every
binary ufunc also gets its `outer` method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.numpy import (
    _core,
    calculus,
    complex_numbers,
    contractions,
    creation,
    diagonals,
    indexing,
    linear_algebra,
    padding,
    polynomials,
    ranges,
    reductions,
    shapes,
    sorting,
    splitting,
    statistics,
    tracer_methods,
    ufuncs,
    unsupported,
)
from graphc.numpy._core import _asarr
from graphc.numpy.shapes import reshape
from graphc.trace import (
    HANDLED_FUNCTIONS,
    HANDLED_METHODS,
    HANDLED_UFUNC_METHODS,
    HANDLED_UFUNCS,
    UnsupportedError,
    user_location,
)

FUNCTION_TABLES: tuple[dict[Callable, Callable], ...] = (
    _core.FUNCTIONS,
    ufuncs.FUNCTIONS,
    creation.FUNCTIONS,
    shapes.FUNCTIONS,
    indexing.FUNCTIONS,
    reductions.FUNCTIONS,
    diagonals.FUNCTIONS,
    contractions.FUNCTIONS,
    splitting.FUNCTIONS,
    sorting.FUNCTIONS,
    statistics.FUNCTIONS,
    linear_algebra.FUNCTIONS,
    padding.FUNCTIONS,
    calculus.FUNCTIONS,
    polynomials.FUNCTIONS,
    ranges.FUNCTIONS,
    complex_numbers.FUNCTIONS,
    unsupported.FUNCTIONS,
)
UFUNC_TABLES: tuple[dict[np.ufunc, Callable], ...] = (
    ufuncs.UFUNCS,
    contractions.UFUNCS,
    complex_numbers.UFUNCS,
)
UFUNC_METHOD_TABLES: tuple[dict[tuple[np.ufunc, str], Callable], ...] = (reductions.UFUNC_METHODS,)


def _ufunc_outer(fn: Callable, name: str) -> Callable:
    """ufunc.outer(a, b): fn of a with b's axes appended, against b."""

    def handler(a: Any, b: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise UnsupportedError(
                f"numpy.{name}.outer: keyword arguments {sorted(kwargs)} are not supported",
                user_location(),
            )
        a, b = _asarr(a), _asarr(b)
        return fn(reshape(a, tuple(a.shape) + (1,) * b.ndim), b)

    return handler


def _joined(tables: tuple[dict[Any, Callable], ...]) -> dict[Any, Callable]:
    """The tables as one; a key in two of them is an error (which family wins would depend on
    the order of the tables)."""
    out: dict[Any, Callable] = {}
    for table in tables:
        for key, handler in table.items():
            if key in out:
                raise RuntimeError(f"graphc.numpy handles {key!r} in two families")
            out[key] = handler
    return out


def register_handlers() -> None:
    """Fill graphc.trace's dispatch tables, which its Tracer's `__array_function__`,
    `__array_ufunc__` and its methods without a NumPy function (`x[key]`, `astype`) consult."""
    HANDLED_METHODS.update(tracer_methods.METHODS)
    HANDLED_FUNCTIONS.update(_joined(FUNCTION_TABLES))
    HANDLED_UFUNCS.update(_joined(UFUNC_TABLES))
    HANDLED_UFUNC_METHODS.update(_joined(UFUNC_METHOD_TABLES))
    for uf, fn in list(HANDLED_UFUNCS.items()):
        if uf.nin == 2 and uf.nout == 1 and (uf, "outer") not in HANDLED_UFUNC_METHODS:
            HANDLED_UFUNC_METHODS[(uf, "outer")] = _ufunc_outer(fn, uf.__name__)
