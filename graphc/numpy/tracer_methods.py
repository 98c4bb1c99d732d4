"""Tracer's NumPy operators (`+`, `@`, `<`, `&`, `x[i]`, ...), ndarray's methods and
properties (`x.sum()`, `x.T`), and clear errors for the ndarray attributes tracers lack.
`install_tracer_methods` puts them on the Tracer class, once, when graphc.numpy is imported:
they share code with graphc.numpy's functions, which is why they are not defined in trace.py."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import DTypeError, as_dtype
from graphc.numpy._core import _dtype_token, _no_extras, astype
from graphc.numpy.contractions import dot, matmul
from graphc.numpy.creation import zeros_like
from graphc.numpy.diagonals import diagonal, trace
from graphc.numpy.indexing import getitem, take
from graphc.numpy.reductions import (
    all,
    any,
    argmax,
    argmin,
    cumprod,
    cumsum,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from graphc.numpy.shapes import ravel, reshape, squeeze, swapaxes, transpose
from graphc.numpy.sorting import argsort
from graphc.numpy.splitting import repeat
from graphc.numpy.ufuncs import (
    absolute,
    add,
    clip,
    divide,
    equal,
    floor_divide,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    multiply,
    negative,
    not_equal,
    power,
    remainder,
    round,
    subtract,
)
from graphc.trace import (
    ArgumentError,
    Tracer,
    TracerError,
    UnsupportedAttributeError,
    UnsupportedError,
    api_call,
    user_location,
)


def _unsupported_op(name: str) -> Callable:
    def op(self, *args: Any) -> Any:
        raise UnsupportedError(
            f"the {name} operator is not supported on traced arrays", user_location()
        )

    return op


def _logical_or_bitwise(logical: Callable, name: str):
    def op(a: Any, b: Any) -> Any:
        if _dtype_token(a) == np.bool_ and _dtype_token(b) == np.bool_:
            return logical(a, b)
        raise UnsupportedError(
            f"the {name} operator is only supported on boolean arrays "
            "(bitwise integer operations are not)",
            user_location(),
        )

    return op


def _invert(a: Any) -> Any:
    if a.dtype == np.bool_:
        return logical_not(a)
    raise UnsupportedError("the ~ operator is only supported on boolean arrays", user_location())


_and = _logical_or_bitwise(logical_and, "&")
_or = _logical_or_bitwise(logical_or, "|")
_xor = _logical_or_bitwise(logical_xor, "^")


def _weak(result: Any, *operands: Any) -> Any:
    """Python arithmetic between Python floats gives a Python float: a weak result, when every
    operand is weak (a traced Python float or a Python number)."""
    if isinstance(result, Tracer) and builtins.all(
        (isinstance(o, Tracer) and o.weak) or (type(o) in (int, float)) for o in operands
    ):
        result.weak = True
    return result


def install_tracer_methods() -> None:
    """Give Tracer NumPy's operators, ndarray's methods and properties, and clear errors
    for the ndarray attributes it lacks (called once, by graphc.numpy's __init__)."""
    T = Tracer
    T.__add__ = lambda a, b: _weak(add(a, b), a, b)
    T.__radd__ = lambda a, b: _weak(add(b, a), a, b)
    T.__sub__ = lambda a, b: _weak(subtract(a, b), a, b)
    T.__rsub__ = lambda a, b: _weak(subtract(b, a), a, b)
    T.__mul__ = lambda a, b: _weak(multiply(a, b), a, b)
    T.__rmul__ = lambda a, b: _weak(multiply(b, a), a, b)
    T.__truediv__ = lambda a, b: _weak(divide(a, b), a, b)
    T.__rtruediv__ = lambda a, b: _weak(divide(b, a), a, b)
    T.__pow__ = lambda a, b: _weak(power(a, b), a, b)
    T.__rpow__ = lambda a, b: _weak(power(b, a), a, b)
    T.__matmul__ = lambda a, b: matmul(a, b)
    T.__rmatmul__ = lambda a, b: matmul(b, a)
    T.__neg__ = lambda a: _weak(negative(a), a)
    T.__pos__ = lambda a: a
    T.__abs__ = lambda a: absolute(a)
    T.__lt__ = lambda a, b: less(a, b)
    T.__le__ = lambda a, b: less_equal(a, b)
    T.__gt__ = lambda a, b: greater(a, b)
    T.__ge__ = lambda a, b: greater_equal(a, b)
    T.__eq__ = lambda a, b: equal(a, b)  # type: ignore[assignment]
    T.__ne__ = lambda a, b: not_equal(a, b)  # type: ignore[assignment]
    T.__and__ = lambda a, b: _and(a, b)
    T.__rand__ = lambda a, b: _and(b, a)
    T.__or__ = lambda a, b: _or(a, b)
    T.__ror__ = lambda a, b: _or(b, a)
    T.__xor__ = lambda a, b: _xor(a, b)
    T.__rxor__ = lambda a, b: _xor(b, a)
    T.__invert__ = _invert
    # float // and % (integer operands get remainder's clear "cast to float first" error)
    T.__floordiv__ = lambda a, b: _weak(floor_divide(a, b), a, b)
    T.__rfloordiv__ = lambda a, b: _weak(floor_divide(b, a), a, b)
    T.__mod__ = lambda a, b: _weak(remainder(a, b), a, b)
    T.__rmod__ = lambda a, b: _weak(remainder(b, a), a, b)
    for name, sym in [
        ("lshift", "<<"),
        ("rshift", ">>"),
        ("divmod", "divmod"),
    ]:
        setattr(T, f"__{name}__", _unsupported_op(sym))
        setattr(T, f"__r{name}__", _unsupported_op(sym))
    T.__getitem__ = lambda a, k: getitem(a, k)
    _install_methods(T)
    T.view = _method("view", _m_view)


# ndarray's methods, with ndarray's signatures: keywords NumPy accepts either work or raise a
# clear error naming them; unknown keywords are reported as such (see trace.api_call)


def _m_reshape(a: Any, *shape: Any, order: str = "C", copy: Any = None) -> Any:
    if not shape:
        raise ArgumentError("reshape needs a shape", user_location())
    return reshape(a, shape[0] if len(shape) == 1 else shape, order)


def _m_transpose(a: Any, *axes: Any) -> Any:
    if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], (int, np.integer))):
        axes = axes[0]
    return transpose(a, axes or None)


def _m_astype(
    a: Any,
    dtype: Any,
    order: str = "K",
    casting: str = "unsafe",
    subok: bool = True,
    copy: Any = True,
) -> Any:
    dt = as_dtype(dtype)
    if casting != "unsafe" and not np.can_cast(a.dtype, dt, casting):
        raise DTypeError(
            f"cannot cast {a.dtype} to {dt} according to the rule {casting!r}", user_location()
        )
    return astype(a, dt)


def _m_sum(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: Any = False,
    initial: Any = None,
    where: Any = True,
) -> Any:
    return sum(a, axis, dtype, out, keepdims, initial, where)


def _m_prod(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: Any = False,
    initial: Any = None,
    where: Any = True,
) -> Any:
    return prod(a, axis, dtype, out, keepdims, initial, where)


def _m_mean(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: Any = False,
    *,
    where: Any = True,
) -> Any:
    return mean(a, axis, dtype, out, keepdims, where=where)


def _m_var(
    a,
    axis=None,
    dtype=None,
    out=None,
    ddof=0,
    keepdims=False,
    *,
    where=True,
    mean=None,
    correction=None,
):
    return var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction)


def _m_std(
    a,
    axis=None,
    dtype=None,
    out=None,
    ddof=0,
    keepdims=False,
    *,
    where=True,
    mean=None,
    correction=None,
):
    return std(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction)


def _m_max(
    a: Any,
    axis: Any = None,
    out: Any = None,
    keepdims: Any = False,
    initial: Any = None,
    where: Any = True,
) -> Any:
    return max(a, axis, out, keepdims, initial, where)


def _m_min(
    a: Any,
    axis: Any = None,
    out: Any = None,
    keepdims: Any = False,
    initial: Any = None,
    where: Any = True,
) -> Any:
    return min(a, axis, out, keepdims, initial, where)


def _m_any(
    a: Any, axis: Any = None, out: Any = None, keepdims: Any = False, *, where: Any = True
) -> Any:
    return any(a, axis, out, keepdims, where=where)


def _m_all(
    a: Any, axis: Any = None, out: Any = None, keepdims: Any = False, *, where: Any = True
) -> Any:
    return all(a, axis, out, keepdims, where=where)


def _m_argmax(a: Any, axis: Any = None, out: Any = None, *, keepdims: Any = False) -> Any:
    return argmax(a, axis, out, keepdims=keepdims)


def _m_argmin(a: Any, axis: Any = None, out: Any = None, *, keepdims: Any = False) -> Any:
    return argmin(a, axis, out, keepdims=keepdims)


def _m_ravel(a: Any, order: Any = "C") -> Any:
    return ravel(a, order)


def _m_dot(a: Any, b: Any, out: Any = None) -> Any:
    _no_extras("dot", out)
    return dot(a, b)


def _m_clip(a: Any, min: Any = None, max: Any = None, out: Any = None) -> Any:
    _no_extras("clip", out)
    return clip(a, min, max)


def _m_round(a: Any, decimals: Any = 0, out: Any = None) -> Any:
    return round(a, decimals, out)


def _m_copy(a: Any, order: Any = "C") -> Any:
    return a


def _m_take(a: Any, indices: Any, axis: Any = None, out: Any = None, mode: Any = "raise") -> Any:
    return take(a, indices, axis, out, mode)


def _m_trace(
    a: Any, offset: Any = 0, axis1: Any = 0, axis2: Any = 1, dtype: Any = None, out: Any = None
) -> Any:
    return trace(a, offset, axis1, axis2, dtype, out)


def _m_cumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    return cumsum(a, axis, dtype, out)


def _m_cumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    return cumprod(a, axis, dtype, out)


def _m_argsort(
    a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None
) -> Any:
    return argsort(a, axis, kind, order, stable=stable)


def _m_real(a: Any) -> Any:
    return a  # graphc's dtypes are all real


def _m_conj(a: Any) -> Any:
    return a


def _m_imag(a: Any) -> Any:
    return zeros_like(a)


def _m_concrete(name: str) -> Callable:
    def fn(a: Any, *args: Any, **kwargs: Any) -> Any:
        raise TracerError(
            f".{name}() of a traced value is not known while tracing; return the array and "
            "convert it outside the traced function",
            user_location(),
        )

    return fn


def _m_view(a: Any, *args: Any, **kwargs: Any) -> Any:
    if args or kwargs:
        raise UnsupportedError(
            "ndarray.view(dtype) reinterprets the bytes, which graphc does not trace; "
            "use astype to convert values",
            user_location(),
        )
    return a


_METHODS: dict[str, Callable] = {
    "reshape": _m_reshape,
    "transpose": _m_transpose,
    "astype": _m_astype,
    "sum": _m_sum,
    "prod": _m_prod,
    "mean": _m_mean,
    "var": _m_var,
    "std": _m_std,
    "max": _m_max,
    "min": _m_min,
    "any": _m_any,
    "all": _m_all,
    "argmax": _m_argmax,
    "argmin": _m_argmin,
    "squeeze": lambda a, axis=None: squeeze(a, axis),
    "ravel": _m_ravel,
    "flatten": _m_ravel,
    "dot": _m_dot,
    "swapaxes": lambda a, axis1, axis2: swapaxes(a, axis1, axis2),
    "clip": _m_clip,
    "round": _m_round,
    "copy": _m_copy,
    "take": _m_take,
    "trace": _m_trace,
    "diagonal": lambda a, offset=0, axis1=0, axis2=1: diagonal(a, offset, axis1, axis2),
    "repeat": lambda a, repeats, axis=None: repeat(a, repeats, axis),
    "cumsum": _m_cumsum,
    "cumprod": _m_cumprod,
    "argsort": _m_argsort,
    "conj": _m_conj,
    "conjugate": _m_conj,
    "item": _m_concrete("item"),
    "tolist": _m_concrete("tolist"),
    "tobytes": _m_concrete("tobytes"),
}


_PROPERTIES: dict[str, Callable] = {
    "T": lambda a: transpose(a),
    "mT": lambda a: swapaxes(a, -1, -2),
    "real": _m_real,
    "imag": _m_imag,
    "flat": ravel,  # indexing and iterating a flattened array is what .flat offers
    "nbytes": lambda a: a.size * a.dtype.itemsize,
    "itemsize": lambda a: a.dtype.itemsize,
}


# ndarray attributes tracers do not have, by why: each raises a clear error
_IN_PLACE = ("fill", "sort", "resize", "put", "itemset", "partition", "setfield", "setflags")


_HINTS = {
    "sort": "use np.sort(x)",
    "fill": "use np.full_like(x, value)",
    "nonzero": "its result's shape depends on the values; use np.where(cond, x, y)",
    "compress": "its result's shape depends on the values; use np.where(cond, x, 0)",
    "tofile": "return the array and save it outside the traced function",
    "dump": "return the array and save it outside the traced function",
    "dumps": "return the array and save it outside the traced function",
}


def _method(name: str, fn: Callable) -> Callable:
    call = f".{name}()"

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return api_call(call, fn, (self, *args), kwargs)

    method.__name__ = name
    method.__qualname__ = f"Tracer.{name}"
    method.__doc__ = f"Like numpy.ndarray.{name}, on a traced array."
    return method


def _property(name: str, fn: Callable) -> property:
    return property(lambda self: api_call(f".{name}", fn, (self,), {}))


def _missing_attribute(self: Any, name: str) -> Any:
    if name.startswith("_") or not hasattr(np.ndarray, name):
        raise AttributeError(f"'Tracer' object has no attribute {name!r}")
    if name in _IN_PLACE:
        why = "changes the array in place, which graphc does not trace; build a new array"
    else:
        why = "is not supported on traced arrays"
    hint = _HINTS.get(name)
    raise UnsupportedAttributeError(
        f"ndarray.{name} {why}{'; ' + hint if hint else ''}", user_location()
    )


def _install_methods(T: type) -> None:
    for name, fn in _METHODS.items():
        setattr(T, name, _method(name, fn))
    for name, fn in _PROPERTIES.items():
        setattr(T, name, _property(name, fn))
    T.__getattr__ = _missing_attribute
    # a traced value is immutable: copies are the value itself (a deep copy of its node would
    # be a node of no graph)
    T.__copy__ = lambda a: a
    T.__deepcopy__ = lambda a, memo=None: a
