"""Arrays made from a shape or from another array: `full` and the `*_like` functions (traced
fills stay broadcasts, never materialised), and `copy` (a traced value is immutable)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.ir import as_dtype, make_const
from graphc.numpy._core import _asarr, _shape_arg
from graphc.ops import registry
from graphc.trace import Tracer, _meta


def full(shape: Sequence[int], value: Any, dtype: Any) -> Tracer:
    """A traced array of `shape` filled with `value` (kept as a broadcast, not materialised)."""
    c = make_const(np.asarray(value, dtype=as_dtype(dtype)), meta=_meta())
    return Tracer(registry.apply("broadcast_to", [c], {"shape": tuple(shape)}, _meta()))


def _like(fill: Callable[[Any], Any]):
    # order=, subok= and device= do not change values, and traced arrays have no layout
    def fn(
        a: Any,
        dtype: Any = None,
        order: str = "K",
        subok: bool = True,
        shape: Any = None,
        *,
        device: Any = None,
    ) -> Any:
        dt = as_dtype(dtype) if dtype is not None else _asarr(a).dtype
        shp = np.shape(a) if shape is None else _shape_arg(shape)
        if not isinstance(a, Tracer):
            return np.full(shp, fill(a), dtype=dt)
        return full(shp, fill(a), dt)

    return fn


zeros_like = _like(lambda a: 0)
ones_like = _like(lambda a: 1)


def full_like(
    a: Any,
    fill_value: Any,
    dtype: Any = None,
    order: str = "K",
    subok: bool = True,
    shape: Any = None,
    *,
    device: Any = None,
) -> Any:
    return _like(lambda _: fill_value)(a, dtype, shape=shape)


def empty_like(
    prototype: Any,
    dtype: Any = None,
    order: str = "K",
    subok: bool = True,
    shape: Any = None,
    *,
    device: Any = None,
) -> Any:
    """Zeros shaped like prototype (NumPy leaves them unset)."""
    p = _asarr(prototype)
    shp = tuple(p.shape) if shape is None else _shape_arg(shape)
    return np.zeros(shp, dtype=p.dtype if dtype is None else dtype)


def copy(x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


FUNCTIONS: dict[Callable, Callable] = {
    np.zeros_like: zeros_like,
    np.ones_like: ones_like,
    np.full_like: full_like,
    np.copy: copy,
    np.empty_like: empty_like,
}
