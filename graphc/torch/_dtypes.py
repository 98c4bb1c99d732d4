"""PyTorch's dtypes and type promotion, on NumPy dtypes.

PyTorch promotes by category (bool < integer < floating) and by priority: tensors with
dimensions decide first, then zero-dimensional tensors, then Python numbers, and a lower
priority operand only matters when its category is higher. So `int_tensor + 1.5` is float32
(the default dtype), `f32_tensor + f64_scalar_tensor` stays float32, and integer division `/`
gives the default float dtype. NumPy (and graphc's tracer, which follows NumPy) differs on
each of these, so graphc.torch decides the result dtype here and casts its operands before
the graphc.numpy operation runs.

Example:
    >>> result_type(np.dtype("int64"), 1.5)
    dtype('float32')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.ir import DTYPE_NAMES, DTypeError

__all__ = [
    "DTYPES",
    "category",
    "get_default_dtype",
    "promote_types",
    "result_type",
    "set_default_dtype",
    "to_dtype",
]

float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

# the names graphc.torch exports (torch.float, torch.long, ...)
DTYPES: dict[str, np.dtype] = {
    "float16": float16,
    "half": half,
    "float32": float32,
    "float": float32,
    "float64": float64,
    "double": double,
    "int8": int8,
    "int16": int16,
    "short": short,
    "int32": int32,
    "int": int32,
    "int64": int64,
    "long": long,
    "uint8": uint8,
    "bool": bool_,
}

_default = [float32]


def get_default_dtype() -> np.dtype:
    """The dtype of floating-point tensors made from Python numbers (float32)."""
    return _default[0]


def set_default_dtype(dt: Any) -> None:
    """Change the default floating-point dtype (float32 or float64).

    Example:
        >>> torch.set_default_dtype(torch.float64)
    """
    d = to_dtype(dt)
    if d.kind != "f":
        raise DTypeError(f"the default dtype must be a floating-point dtype, not {d}")
    _default[0] = d


def to_dtype(dt: Any) -> np.dtype:
    """A dtype from a NumPy dtype, a dtype name or a Python type (float -> the default)."""
    if dt is float:
        return get_default_dtype()
    if dt is int:
        return int64
    if dt is bool:
        return bool_
    if isinstance(dt, str) and dt in DTYPES:
        return DTYPES[dt]
    try:
        d = np.dtype(dt)
    except TypeError:
        raise DTypeError(f"{dt!r} is not a dtype") from None
    if d not in DTYPE_NAMES:
        raise DTypeError(f"dtype {d} is not supported by graphc.torch")
    return d


def category(dt: np.dtype) -> int:
    """0 bool, 1 integer, 2 floating point."""
    return 0 if dt.kind == "b" else 2 if dt.kind == "f" else 1


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's promote_types: the higher category wins; within one, NumPy's rule."""
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def _scalar_category(x: Any) -> int:
    return 0 if isinstance(x, bool) else 2 if isinstance(x, float) else 1


def result_type(*operands: Any) -> np.dtype:
    """The dtype of an elementwise operation on `operands`: dtypes of tensors (with their
    dimensionality: pass `(dtype, ndim)` pairs or dtypes for tensors with dimensions) and
    Python numbers.

    Example:
        >>> result_type((np.dtype("float32"), 1), (np.dtype("float64"), 0))
        dtype('float32')
    """
    dims: np.dtype | None = None
    zeros: dict[int, np.dtype] = {}
    scalars = -1
    for x in operands:
        if isinstance(x, tuple):
            dt, nd = x
        elif isinstance(x, np.dtype):
            dt, nd = x, 1
        else:
            scalars = max(scalars, _scalar_category(x))
            continue
        if nd:
            dims = dt if dims is None else promote_types(dims, dt)
        else:
            c = category(dt)
            zeros[c] = dt if c not in zeros else promote_types(zeros[c], dt)
    out = dims
    for c in sorted(zeros, reverse=True):
        if out is None:
            out = zeros[c]
            break
        if c > category(out):
            out = zeros[c]
            break
    if scalars >= 0 and (out is None or scalars > category(out)):
        out = {0: bool_, 1: int64, 2: get_default_dtype()}[scalars]
    if out is None:
        raise DTypeError("no operand to take a dtype from")
    return out
