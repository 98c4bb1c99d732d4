"""Matrix products for loop functions: BLAS through Numba's `np.dot(a, b, out)`, one compiled
function per dtype and operand layout, shared by every loop of the process and kept in Numba's
cache beside this file.

A loop function (`loops`) calls these instead of holding `np.dot` itself: Numba's
implementation of `np.dot` takes ~0.3 s to compile for each combination of operand types, which
every loop function would pay again; behind an explicitly typed function it is compiled once
(or loaded from the cache), and the loop's own compile only links it. Operands are typed
read-only: a loop passes its writable arrays as they are (Numba converts writable to
read-only), so one function serves both. Operands must be C- or F-contiguous (Numba would copy
any other layout on every call) and the result C-contiguous; `np.dot` picks gemm, gemv or a dot
product from the shapes.

Example:
    >>> d = dot("float32", "C", "F")
    >>> a = np.ones((2, 3), np.float32); b = np.ones((4, 3), np.float32).T
    >>> out = np.empty((2, 4), np.float32); d(a, b, out); out[0, 0]
    3.0
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

_DOTS: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    np.dot(a, b, out)


def dot(dtype: str, a_layout: str, b_layout: str) -> Any:
    """The compiled `np.dot(a, b, out)` for 2-d operands of `dtype` ("float32" or "float64")
    and layouts "C" or "F", writing a C-contiguous `out`.

    Example:
        >>> dot("float64", "C", "C").signatures[0][2]
        Array(float64, 2, 'C', False, aligned=True)
    """
    key = (dtype, a_layout, b_layout)
    with _lock:
        fn = _DOTS.get(key)
        if fn is None:
            from numba import njit, types

            dt = getattr(types, dtype)
            sig = types.void(
                types.Array(dt, 2, a_layout, readonly=True),
                types.Array(dt, 2, b_layout, readonly=True),
                types.Array(dt, 2, "C"),
            )
            fn = _DOTS[key] = njit(sig, cache=True, nogil=True, error_model="numpy")(_product)
    return fn
