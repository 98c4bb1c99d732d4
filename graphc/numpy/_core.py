"""The machinery every family of `graphc.numpy` shares: NumPy's type promotion (asked of NumPy's
own ufunc resolver), conversion of operands to tracers or arrays, and the checks of axis, shape
and count arguments, so each is checked once, the way NumPy checks it, at the user's line."""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.ir import AxisError, DTypeError, GraphcError, ShapeError, as_dtype
from graphc.trace import ArgumentError, Tracer, UnsupportedError, bind, user_location


def _dtype_token(x: Any) -> Any:
    """What NumPy's resolver needs for an operand: a dtype, or a Python type for weak scalars."""
    if isinstance(x, Tracer):
        return float if x.weak else x.dtype
    if isinstance(x, np.generic):  # NumPy scalars are strong, even np.float64 (a float subclass)
        return x.dtype
    if isinstance(x, bool):
        return np.dtype(np.bool_)
    if isinstance(x, (int, float, complex)):
        return type(x)
    return np.asarray(x).dtype


# (ufunc, operand tokens) -> NumPy's answer: a trace asks the same few questions per node
_RESOLVED: dict[tuple, tuple[np.dtype, ...]] = {}


def _resolve(ufunc: np.ufunc, args: Sequence[Any]) -> tuple[np.dtype, ...]:
    tokens = tuple([_dtype_token(a) for a in args]) + (None,) * ufunc.nout
    key = (ufunc, tokens)
    hit = _RESOLVED.get(key)
    if hit is not None:
        return hit
    try:
        out = _RESOLVED[key] = ufunc.resolve_dtypes(tokens)
        return out
    except Exception:
        kinds = ", ".join(str(t if isinstance(t, np.dtype) else t.__name__) for t in tokens[:-1])
        raise DTypeError(
            f"numpy.{ufunc.__name__} does not accept operands of type {kinds}", user_location()
        ) from None


def _convert(x: Any, dt: np.dtype) -> Any:
    if isinstance(x, Tracer):
        return x if x.dtype == dt else bind("cast", x, dtype=dt)
    arr = np.asarray(x)
    if arr.dtype == object:
        raise DTypeError(f"cannot use {type(x).__name__} as an array operand", user_location())
    return arr.astype(dt)


def _asarr(x: Any) -> Any:
    """Tracers stay; everything else becomes an ndarray (Python scalars keep NumPy's dtype)."""
    return x if isinstance(x, Tracer) else np.asarray(x)


def _any_traced(*xs: Any) -> bool:
    return builtins.any(isinstance(x, Tracer) for x in xs)


def astype(x: Any, dtype: Any) -> Any:
    dt = as_dtype(dtype)
    if isinstance(x, Tracer):
        return x if x.dtype == dt else bind("cast", x, dtype=dt)
    return np.asarray(x).astype(dt)


def _promote_all(arrays: Sequence[Any]) -> list[Any]:
    dts = [_asarr(a).dtype for a in arrays]
    dt = np.result_type(*dts)
    return [astype(_asarr(a), dt) for a in arrays]


def result_type(*args: Any) -> np.dtype:
    return np.result_type(*[_asarr(a).dtype if isinstance(a, Tracer) else a for a in args])


def _axes(
    name: str, axis: Any, ndim: int, *, what: str = "axis", single: bool = False
) -> tuple[int, ...]:
    """The axes that `axis` names in an array of ndim dimensions, made non-negative, in the
    order given. Every axis argument graphc accepts passes through here, so each is checked as
    NumPy checks it: an integer (a sequence of them unless `single`), -ndim <= axis < ndim
    (AxisError) and no axis twice; a bad one is an error at the user's line.

    Example:
        >>> _axes("sum", (-1, 0), 3)
        (2, 0)
    """
    if isinstance(axis, Tracer):
        raise UnsupportedError(
            f"{name}: {what} must be a Python int, not a traced value (it decides the "
            "result's shape)",
            user_location(),
        )
    seq = not single and isinstance(axis, (tuple, list, np.ndarray)) and np.ndim(axis) == 1
    items = list(axis) if seq else [axis]
    out = []
    for a in items:
        if isinstance(a, (bool, np.bool_, Tracer)):
            a_int = None
        else:
            try:
                a_int = operator.index(a)
            except TypeError:
                a_int = None
        if a_int is None:
            kind = "an integer" if single else "an integer or a tuple of integers"
            raise ArgumentError(f"{name}: {what} must be {kind}, got {axis!r}", user_location())
        if not -ndim <= a_int < ndim:
            where = "" if what == "axis" else f" (in {what})"
            raise AxisError(
                f"{name}: axis {a_int}{where} is out of bounds for a {ndim}-d array",
                user_location(),
                axis=a_int,
                ndim=ndim,
            )
        out.append(a_int % ndim)
    if len(set(out)) != len(out):
        twice = next(a for a in out if out.count(a) > 1)
        raise ShapeError(
            f"{name}: {what} {axis!r} names axis {twice} twice (a repeated axis)", user_location()
        )
    return tuple(out)


def _axis(x: Any, axis: Any, name: str, what: str = "axis") -> int:
    """One axis of x, made non-negative (checked by `_axes`)."""
    return _axes(name, axis, x.ndim, what=what, single=True)[0]


def _norm_axes(x: Any, axis: Any, name: str) -> tuple[int, ...]:
    """A reduction's axes, sorted (None: all of them)."""
    nd = len(np.shape(x))
    return tuple(range(nd)) if axis is None else tuple(sorted(_axes(name, axis, nd)))


def _static_int(v: Any, what: str) -> int:
    """A Python int that steers the trace (a count, an offset, a shift)."""
    if isinstance(v, Tracer):
        raise UnsupportedError(
            f"{what} must be a Python int, not a traced value (it decides the result's shape)",
            user_location(),
        )
    try:
        return operator.index(v)
    except TypeError:
        raise GraphcError(f"{what} must be an integer, got {v!r}", user_location()) from None


def _shape_arg(shape: Any) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _no_extras(name: str, out: Any = None, where: Any = None, initial: Any = None) -> None:
    for kw, v in (("out", out), ("where", where), ("initial", initial)):
        if v is not None and not (kw == "where" and v is True):
            raise UnsupportedError(f"np.{name}: {kw}= is not supported", user_location())


def _count(x: Any, axes: tuple[int, ...]) -> int:
    return int(np.prod([np.shape(x)[a] for a in axes], dtype=np.int64))


def _sum_dtype(x: Any) -> np.dtype:
    dt = x.dtype
    if dt == np.bool_ or (dt.kind == "i" and dt.itemsize < 8):
        return np.dtype(np.int64)
    if dt.kind == "u" and dt.itemsize < 8:
        return np.dtype(np.uint64)
    return dt


FUNCTIONS: dict[Callable, Callable] = {
    np.astype: astype,
    np.result_type: result_type,
}
