"""The Tracer methods that no NumPy function reaches: `x[key]` and ndarray's `astype` (whose
signature np.astype does not share). `dispatch.register_handlers` puts them in graphc.trace's
`HANDLED_METHODS`, where Tracer looks them up when they are called; every other operator, method
and property of Tracer is defined in trace.py and goes through NumPy's functions and ufuncs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import DTypeError, as_dtype
from graphc.numpy._core import astype
from graphc.numpy.indexing import getitem
from graphc.trace import user_location


def _astype(
    a: Any,
    dtype: Any,
    order: str = "K",
    casting: str = "unsafe",
    subok: bool = True,
    copy: Any = True,
) -> Any:
    # ndarray.astype's signature: api_call reports an argument it does not take as such
    dt = as_dtype(dtype)
    if casting != "unsafe" and not np.can_cast(a.dtype, dt, casting):
        raise DTypeError(
            f"cannot cast {a.dtype} to {dt} according to the rule {casting!r}", user_location()
        )
    return astype(a, dt)


METHODS: dict[str, Callable] = {
    "getitem": getitem,
    "astype": _astype,
}
