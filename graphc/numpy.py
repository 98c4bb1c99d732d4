"""`graphc.numpy`: the NumPy functions graphc traces, plus a few NumPy lacks (relu, sigmoid,
softmax, conv2d, ...). Inside a traced function plain `np.*` calls reach these same functions
through NumPy's dispatch protocols; calling them on concrete arrays computes at once.

Type promotion follows NumPy 2 exactly (including NEP 50 weak Python scalars, so `x_f32 * 2.0`
stays float32): graphc asks NumPy's own ufunc type resolver and inserts explicit `cast` nodes.

Example:
    >>> import graphc.numpy as gnp
    >>> gnp.softmax(np.array([0.0, 1e4]))
    array([0., 1.])
"""

from __future__ import annotations

import builtins
import math
import operator
import string
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from graphc.ir import DTypeError, GraphcError, ShapeError, as_dtype, make_const
from graphc.ops import registry
from graphc.trace import (
    HANDLED_FUNCTIONS,
    HANDLED_UFUNC_METHODS,
    HANDLED_UFUNCS,
    Tracer,
    TracerError,
    UnsupportedError,
    _meta,
    bind,
    user_location,
)

# ---------------------------------------------------------------------------------------------
# promotion


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


def _resolve(ufunc: np.ufunc, args: Sequence[Any]) -> tuple[np.dtype, ...]:
    tokens = tuple(_dtype_token(a) for a in args) + (None,) * ufunc.nout
    try:
        return ufunc.resolve_dtypes(tokens)
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


def _logical(op: str, ufunc: np.ufunc) -> Callable[..., Any]:
    """A handler for a binary logical ufunc: NumPy accepts any numeric operands (nonzero is
    true), the IR op takes booleans, so operands are cast to bool."""

    def handler(*args: Any) -> Any:
        _resolve(ufunc, args)  # reject what NumPy rejects
        return bind(op, *[_convert(a, np.dtype(np.bool_)) for a in args])

    handler.__name__ = ufunc.__name__
    return handler


def _integral(op: str, ufunc: np.ufunc) -> Callable[..., Any]:
    """A handler for floor/ceil: when NumPy keeps an integer or bool dtype (NumPy >= 2.3), the
    result is the operand itself; otherwise the float op, as for any ufunc."""

    def handler(x: Any) -> Any:
        dts = _resolve(ufunc, (x,))
        if dts[0].kind != "f":
            return _convert(x, dts[-1])
        return bind(op, _convert(x, dts[0]))

    handler.__name__ = ufunc.__name__
    return handler


def _ufunc(op: str, ufunc: np.ufunc) -> Callable[..., Any]:
    """A handler applying IR op `op` with NumPy's promotion rules for `ufunc`."""

    def handler(*args: Any) -> Any:
        dts = _resolve(ufunc, args)
        for a, d in zip(args, dts, strict=False):
            # NumPy raises OverflowError (or, comparing, answers exactly); never wrap silently
            if type(a) is int and d.kind in "iu" and not np.iinfo(d).min <= a <= np.iinfo(d).max:
                raise DTypeError(
                    f"numpy.{ufunc.__name__}: Python integer {a} is out of bounds "
                    f"for {d}; cast the array to a wider dtype first",
                    user_location(),
                )
        return bind(op, *[_convert(a, d) for a, d in zip(args, dts, strict=False)])

    handler.__name__ = ufunc.__name__
    return handler


def _asarr(x: Any) -> Any:
    """Tracers stay; everything else becomes an ndarray (Python scalars keep NumPy's dtype)."""
    return x if isinstance(x, Tracer) else np.asarray(x)


def _any_traced(*xs: Any) -> bool:
    return builtins.any(isinstance(x, Tracer) for x in xs)


# ---------------------------------------------------------------------------------------------
# elementwise

add = _ufunc("add", np.add)
subtract = _ufunc("sub", np.subtract)
multiply = _ufunc("mul", np.multiply)
divide = true_divide = _ufunc("div", np.true_divide)
maximum = _ufunc("maximum", np.maximum)
minimum = _ufunc("minimum", np.minimum)
less = _ufunc("lt", np.less)
less_equal = _ufunc("le", np.less_equal)
greater = _ufunc("gt", np.greater)
greater_equal = _ufunc("ge", np.greater_equal)
equal = _ufunc("eq", np.equal)
not_equal = _ufunc("ne", np.not_equal)
logical_and = _logical("logical_and", np.logical_and)
logical_or = _logical("logical_or", np.logical_or)
logical_xor = _logical("logical_xor", np.logical_xor)
logical_not = _ufunc("logical_not", np.logical_not)
negative = _ufunc("neg", np.negative)
absolute = abs = _ufunc("abs", np.absolute)
sign = _ufunc("sign", np.sign)
exp = _ufunc("exp", np.exp)
exp2 = _ufunc("exp2", np.exp2)
log2 = _ufunc("log2", np.log2)
log10 = _ufunc("log10", np.log10)
log = _ufunc("log", np.log)
log1p = _ufunc("log1p", np.log1p)
expm1 = _ufunc("expm1", np.expm1)
sqrt = _ufunc("sqrt", np.sqrt)
square = _ufunc("square", np.square)
sin = _ufunc("sin", np.sin)
cos = _ufunc("cos", np.cos)
tan = _ufunc("tan", np.tan)
tanh = _ufunc("tanh", np.tanh)
sinh = _ufunc("sinh", np.sinh)
cosh = _ufunc("cosh", np.cosh)
arcsin = asin = _ufunc("arcsin", np.arcsin)
arccos = acos = _ufunc("arccos", np.arccos)
arctan = atan = _ufunc("arctan", np.arctan)
arcsinh = asinh = _ufunc("arcsinh", np.arcsinh)
arccosh = acosh = _ufunc("arccosh", np.arccosh)
arctanh = atanh = _ufunc("arctanh", np.arctanh)
arctan2 = atan2 = _ufunc("arctan2", np.arctan2)
hypot = _ufunc("hypot", np.hypot)
cbrt = _ufunc("cbrt", np.cbrt)
fabs = _ufunc("abs", np.fabs)  # NumPy's fabs takes floats only: integers become float
fmax = _ufunc("fmax", np.fmax)
fmin = _ufunc("fmin", np.fmin)
copysign = _ufunc("copysign", np.copysign)
heaviside = _ufunc("heaviside", np.heaviside)
floor = _integral("floor", np.floor)
ceil = _integral("ceil", np.ceil)
trunc = _integral("trunc", np.trunc)
rint = _ufunc("round", np.rint)
isfinite = _ufunc("isfinite", np.isfinite)


def _float_division(op: str, ufunc: np.ufunc) -> Callable[..., Any]:
    """fmod, remainder, floor_divide: supported for floats; NumPy's integer versions (with their
    division-by-zero rules) are not."""
    float_op = _ufunc(op, ufunc)

    def handler(x: Any, y: Any) -> Any:
        if _resolve(ufunc, (x, y))[0].kind != "f":
            raise UnsupportedError(
                f"numpy.{ufunc.__name__} of integer operands is not supported; cast to float first",
                user_location(),
            )
        return float_op(x, y)

    handler.__name__ = ufunc.__name__
    return handler


fmod = _float_division("fmod", np.fmod)
remainder = mod = _float_division("remainder", np.remainder)
floor_divide = _float_division("floor_divide", np.floor_divide)
_float_unary = _ufunc("exp", np.exp)  # only used for its dtype rule, via _float_like


def _float_like(x: Any) -> Any:
    """x converted the way NumPy converts operands of float-only unary functions."""
    return _convert(x, _resolve(np.exp, (x,))[0])


def positive(x: Any) -> Any:
    return x


def power(x: Any, y: Any) -> Any:
    """x ** y; a fixed integral exponent traces to `integer_pow` (exact and cheap)."""
    if (
        isinstance(x, Tracer)
        and isinstance(y, (int, float, np.integer, np.floating))
        and not isinstance(y, bool)
        and float(y).is_integer()
        and builtins.abs(y) <= 64
    ):
        dts = _resolve(np.power, (x, y))
        if dts[0].kind == "f" or (int(y) >= 0 and dts[0].kind in "iu"):
            return bind("integer_pow", _convert(x, dts[0]), n=int(y))
    dts = _resolve(np.power, (x, y))
    if dts[0].kind != "f" and isinstance(y, (int, np.integer)) and int(y) < 0:
        raise DTypeError(
            "integers to negative integer powers are not allowed (as in NumPy); "
            "cast to float first",
            user_location(),
        )
    if dts[0].kind != "f":
        raise DTypeError(
            "power of integer arrays with an array exponent is not supported; cast to float first",
            user_location(),
        )
    return bind("pow", _convert(x, dts[0]), _convert(y, dts[1]))


def reciprocal(x: Any) -> Any:
    dt = _resolve(np.reciprocal, (x,))[0]
    x = _convert(x, dt)
    if dt.kind == "f":
        return divide(1.0, x)
    # NumPy's integer reciprocal truncates: 1 -> 1, -1 -> -1, anything else -> 0
    return where(equal(absolute(x) if dt.kind == "i" else x, 1), x, 0)


def isnan(x: Any) -> Any:
    return not_equal(x, x)


def isinf(x: Any) -> Any:
    return logical_and(logical_not(isfinite(x)), logical_not(isnan(x)))


def logaddexp(a: Any, b: Any) -> Any:
    """log(exp(a) + exp(b)) without overflow."""
    m = maximum(a, b)
    d = subtract(a, b)
    # where a == b == +-inf, a - b is nan; the max alone is then the answer (a difference of
    # +-inf is fine: exp(-inf) = 0)
    return m + log1p(exp(-absolute(where(isnan(d), 0, d))))


def logaddexp2(a: Any, b: Any) -> Any:
    """log2(2**a + 2**b) without overflow."""
    m = maximum(a, b)
    d = subtract(a, b)
    # as NumPy: log2(1 + 2^-|d|) = log1p(exp2(-|d|)) / ln2, with exp2 exact at integers
    return m + log1p(exp2(-absolute(where(isnan(d), 0, d)))) * (1 / math.log(2))


def _angle_factor(x: Any, num: float, den: float) -> Any:
    # NumPy computes the constant in the operand's precision (float32: 180f / pi_f, which is
    # not 180 / pi rounded to float32)
    t = np.dtype(x.dtype).type if np.dtype(x.dtype) in (np.float32, np.float64) else np.float64
    return float(t(num) / t(den))


def deg2rad(x: Any) -> Any:
    x = _float_like(x)
    return x * _angle_factor(x, math.pi, 180.0)


def rad2deg(x: Any) -> Any:
    x = _float_like(x)
    return x * _angle_factor(x, 180.0, math.pi)


radians, degrees = deg2rad, rad2deg


def rsqrt(x: Any) -> Any:
    return bind("rsqrt", _float_like(x))


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), without overflow."""
    return bind("sigmoid", _float_like(x))


def relu(x: Any) -> Any:
    """max(x, 0) with derivative 0 at 0."""
    return bind("relu", _asarr(x))


def softplus(x: Any) -> Any:
    """log(1 + exp(x)), stable for large |x|."""
    return bind("softplus", _float_like(x))


def erf(x: Any) -> Any:
    return bind("erf", _float_like(x))


def gelu(x: Any, approximate: bool = True) -> Any:
    """Gaussian error linear unit; the tanh approximation by default."""
    x = _float_like(x)
    if approximate:
        return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


def stop_gradient(x: Any) -> Any:
    """The value of x, treated as a constant by differentiation."""
    return bind("stop_gradient", _asarr(x))


def astype(x: Any, dtype: Any) -> Any:
    dt = as_dtype(dtype)
    if isinstance(x, Tracer):
        return x if x.dtype == dt else bind("cast", x, dtype=dt)
    return np.asarray(x).astype(dt)


def where(cond: Any, x: Any = None, y: Any = None) -> Any:
    if x is None or y is None:
        raise UnsupportedError(
            "np.where(cond) with one argument gives data-dependent shapes; "
            "graphc supports np.where(cond, x, y)",
            user_location(),
        )
    cond = astype(cond, np.bool_)
    # promote x and y as NumPy does for where (weak Python scalars included)
    dts = (
        _resolve(np.add, (x, y))
        if not (_dtype_token(x) == _dtype_token(y) == np.bool_)
        else (np.dtype(np.bool_),) * 2
    )
    return bind("where", cond, _convert(x, dts[0]), _convert(y, dts[1]))


def clip(a: Any, a_min: Any = None, a_max: Any = None) -> Any:
    out = a
    if a_min is not None:
        out = maximum(out, a_min)
    if a_max is not None:
        out = minimum(out, a_max)
    return out


def full(shape: Sequence[int], value: Any, dtype: Any) -> Tracer:
    """A traced array of `shape` filled with `value` (kept as a broadcast, not materialised)."""
    c = make_const(np.asarray(value, dtype=as_dtype(dtype)), meta=_meta())
    return Tracer(registry.apply("broadcast_to", [c], {"shape": tuple(shape)}, _meta()))


def _like(fill: Callable[[Any], Any]):
    def fn(a: Any, dtype: Any = None, *args: Any, **kwargs: Any) -> Any:
        dt = as_dtype(dtype) if dtype is not None else _asarr(a).dtype
        if not isinstance(a, Tracer):
            return np.full(np.shape(a), fill(a), dtype=dt)
        return full(a.shape, fill(a), dt)

    return fn


zeros_like = _like(lambda a: 0)
ones_like = _like(lambda a: 1)


def full_like(a: Any, fill_value: Any, dtype: Any = None, *args: Any, **kwargs: Any) -> Any:
    return _like(lambda _: fill_value)(a, dtype)


# ---------------------------------------------------------------------------------------------
# reductions


def _norm_axes(x: Any, axis: Any) -> tuple[int, ...]:
    try:
        return registry.norm_axes("reduction", axis, len(np.shape(x)))
    except ShapeError as e:
        raise ShapeError(e.message, user_location()) from None


def _sum_dtype(x: Any) -> np.dtype:
    dt = x.dtype
    if dt == np.bool_ or (dt.kind == "i" and dt.itemsize < 8):
        return np.dtype(np.int64)
    if dt.kind == "u" and dt.itemsize < 8:
        return np.dtype(np.uint64)
    return dt


def _no_extras(name: str, out: Any = None, where: Any = None, initial: Any = None) -> None:
    if out is not None or where is not None or initial is not None:
        raise UnsupportedError(
            f"np.{name}: out=, where= and initial= are not supported", user_location()
        )


def _accumulation(op: str, name: str):
    """np.sum / np.prod: small integer and boolean operands accumulate in 64 bits, as NumPy."""

    def fn(
        x: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = None,
        where: Any = None,
    ) -> Any:
        _no_extras(name, out, where, initial)
        x = _asarr(x)
        x = astype(x, dtype if dtype is not None else _sum_dtype(x))
        return bind(op, x, axes=_norm_axes(x, axis), keepdims=bool(keepdims))

    fn.__name__ = name
    return fn


sum = _accumulation("reduce_sum", "sum")
prod = _accumulation("reduce_prod", "prod")


def _extremum(op: str, name: str):
    def fn(
        x: Any,
        axis: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = None,
        where: Any = None,
    ) -> Any:
        _no_extras(name, out, where, initial)
        x = _asarr(x)
        return bind(op, x, axes=_norm_axes(x, axis), keepdims=bool(keepdims))

    fn.__name__ = name
    return fn


max = amax = _extremum("reduce_max", "max")
min = amin = _extremum("reduce_min", "min")


def any(
    x: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    return max(astype(x, np.bool_), axis=axis, out=out, keepdims=keepdims, where=where)


def all(
    x: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    return min(astype(x, np.bool_), axis=axis, out=out, keepdims=keepdims, where=where)


def _count(x: Any, axes: tuple[int, ...]) -> int:
    return int(np.prod([np.shape(x)[a] for a in axes], dtype=np.int64))


def mean(
    x: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    *,
    where: Any = None,
) -> Any:
    _no_extras("mean", out, where)
    x = _asarr(x)
    out_dt = None
    if dtype is not None:
        x = astype(x, dtype)
    elif x.dtype.kind != "f":
        x = astype(x, np.float64)
    elif x.dtype == np.float16:  # NumPy accumulates float16 in float32
        x, out_dt = astype(x, np.float32), np.dtype(np.float16)
    axes = _norm_axes(x, axis)
    s = bind("reduce_sum", x, axes=axes, keepdims=bool(keepdims))
    if x.dtype.kind != "f":  # an integer dtype=: NumPy truncates the true quotient
        return astype(divide(s, _count(x, axes)), x.dtype)
    r = s * (1.0 / _count(x, axes)) if _count(x, axes) else s / 0.0
    return r if out_dt is None else astype(r, out_dt)


def var(
    x: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    *,
    where: Any = None,
    mean: Any = None,
    correction: Any = None,
) -> Any:
    _no_extras("var", out, where)
    if correction is not None:
        if ddof != 0:
            raise GraphcError(
                "np.var/np.std: ddof and correction can't be provided simultaneously",
                user_location(),
            )
        ddof = correction
    x = _asarr(x)
    if dtype is not None:
        x = astype(x, dtype)
    elif x.dtype.kind != "f":
        x = astype(x, np.float64)
    axes = _norm_axes(x, axis)
    m = globals()["mean"](x, axis=axes, keepdims=True) if mean is None else mean
    d = x - m
    n = _count(x, axes) - ddof
    s = bind("reduce_sum", d * d, axes=axes, keepdims=bool(keepdims))
    return s * (1.0 / n) if n > 0 else s / 0.0  # NumPy: inf/nan when ddof >= the count


def std(
    x: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kw: Any,
) -> Any:
    return sqrt(var(x, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kw))


def _arg(op: str):
    def fn(x: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        x = _asarr(x)
        ax = None if axis is None else _norm_axes(x, axis)[0]
        return bind(op, x, axis=ax, keepdims=bool(keepdims))

    fn.__name__ = op
    return fn


argmax = _arg("argmax")
argmin = _arg("argmin")


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) over axis, exact for any magnitude (shifted by the max)."""
    x = _float_like(x)
    axes = _norm_axes(x, axis)
    m = stop_gradient(max(x, axis=axes, keepdims=True))
    m = where(isfinite(m), m, 0)  # rows of -inf give -inf, not nan
    s = sum(exp(x - m), axis=axes, keepdims=True)
    out = log(s) + m
    return out if keepdims else reshape(out, registry.reduced_shape(x.shape, axes, False))


def log_softmax(x: Any, axis: Any = -1) -> Any:
    """x - logsumexp(x), computed as (x - max) - log(sum(exp(x - max))): subtracting the max
    first keeps large logits exact (1e4 + log 2 is not representable in float32)."""
    x = _float_like(x)
    axes = _norm_axes(x, axis)
    m = stop_gradient(max(x, axis=axes, keepdims=True))
    shifted = x - where(isfinite(m), m, 0)
    return shifted - log(sum(exp(shifted), axis=axes, keepdims=True))


def softmax(x: Any, axis: Any = -1) -> Any:
    """exp(x) / sum(exp(x)), computed from the max-shifted values."""
    x = _float_like(x)
    axes = _norm_axes(x, axis)
    e = exp(x - stop_gradient(max(x, axis=axes, keepdims=True)))
    return e / sum(e, axis=axes, keepdims=True)


# ---------------------------------------------------------------------------------------------
# shapes


def _shape_arg(shape: Any) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _resolve_reshape(size: int, shape: tuple) -> tuple[int, ...]:
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: more than one -1 in {shape}", user_location())
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise ShapeError(f"reshape: cannot reshape size {size} into {shape}", user_location())
        shape = tuple(size // known if s == -1 else s for s in shape)
    return shape


def reshape(
    x: Any, shape: Any = None, order: str = "C", *, newshape: Any = None, copy: Any = None
) -> Any:
    if order != "C":
        raise UnsupportedError("reshape: only order='C' is supported", user_location())
    x = _asarr(x)
    shape = _resolve_reshape(x.size, _shape_arg(newshape if shape is None else shape))
    if tuple(shape) == tuple(x.shape):
        return x
    return bind("reshape", x, shape=shape)


def ravel(x: Any, order: str = "C") -> Any:
    return reshape(x, (-1,), order)


def transpose(x: Any, axes: Any = None) -> Any:
    x = _asarr(x)
    nd = x.ndim
    perm = (
        tuple(range(nd))[::-1] if axes is None else tuple(int(a) % nd for a in axes) if nd else ()
    )
    if perm == tuple(range(nd)):
        return x
    return bind("transpose", x, perm=perm)


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    x = _asarr(x)
    perm = list(range(x.ndim))
    a, b = axis1 % x.ndim, axis2 % x.ndim
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def moveaxis(x: Any, source: Any, destination: Any) -> Any:
    x = _asarr(x)
    src = [s % x.ndim for s in np.atleast_1d(source)]
    dst = [d % x.ndim for d in np.atleast_1d(destination)]
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return transpose(x, order)


def broadcast_to(x: Any, shape: Any, subok: bool = False) -> Any:
    x = _asarr(x)
    shape = _shape_arg(shape)
    if tuple(shape) == tuple(x.shape):
        return x
    return bind("broadcast_to", x, shape=shape)


def expand_dims(x: Any, axis: Any) -> Any:
    x = _asarr(x)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    nd = x.ndim + len(axes)
    axes = registry.norm_axes("expand_dims", axes, nd)
    it = iter(x.shape)
    return reshape(x, tuple(1 if i in axes else next(it) for i in range(nd)))


def squeeze(x: Any, axis: Any = None) -> Any:
    x = _asarr(x)
    if axis is None:
        axes = tuple(i for i, s in enumerate(x.shape) if s == 1)
    else:
        axes = _norm_axes(x, axis)
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(
                    f"squeeze: axis {a} of {x.shape} has length {x.shape[a]}, not 1",
                    user_location(),
                )
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def _promote_all(arrays: Sequence[Any]) -> list[Any]:
    dts = [_asarr(a).dtype for a in arrays]
    dt = np.result_type(*dts)
    return [astype(_asarr(a), dt) for a in arrays]


def concatenate(
    arrays: Sequence[Any],
    axis: Any = 0,
    out: Any = None,
    dtype: Any = None,
    casting: str = "same_kind",
) -> Any:
    arrays = list(arrays)
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    arrays = _promote_all(arrays) if dtype is None else [astype(a, dtype) for a in arrays]
    if not arrays:
        raise ShapeError("concatenate: needs at least one array", user_location())
    (ax,) = _norm_axes(arrays[0], axis)
    if len(arrays) == 1:
        return arrays[0]
    return bind("concatenate", *arrays, axis=ax)


def stack(
    arrays: Sequence[Any],
    axis: int = 0,
    out: Any = None,
    *,
    dtype: Any = None,
    casting: str = "same_kind",
) -> Any:
    arrays = [_asarr(a) for a in arrays]
    if not arrays:
        raise ShapeError("stack: needs at least one array", user_location())
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(
            f"stack: all arrays must have the same shape, got {sorted(shapes)}", user_location()
        )
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis, dtype=dtype)


def hstack(arrays: Sequence[Any], **kw: Any) -> Any:
    arrays = [_asarr(a) for a in arrays]
    return concatenate(arrays, axis=0 if arrays[0].ndim == 1 else 1)


def vstack(arrays: Sequence[Any], **kw: Any) -> Any:
    arrays = [_asarr(a) for a in arrays]
    return concatenate([reshape(a, (1, -1)) if a.ndim == 1 else a for a in arrays], axis=0)


def flip(x: Any, axis: Any = None) -> Any:
    x = _asarr(x)
    return bind("flip", x, axes=_norm_axes(x, axis))


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Any:
    if mode != "constant":
        raise UnsupportedError(
            f"np.pad: mode={mode!r} is not supported (only 'constant')", user_location()
        )
    x = _asarr(x)
    pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    if np.ndim(constant_values) != 0:
        raise UnsupportedError("np.pad: constant_values must be a single number", user_location())
    return bind(
        "pad", x, pads=tuple((int(lo), int(hi), 0) for lo, hi in pw), value=float(constant_values)
    )


def take(a: Any, indices: Any, axis: Any = None, out: Any = None, mode: str = "raise") -> Any:
    if mode != "raise":
        raise UnsupportedError("np.take: only mode='raise' is supported", user_location())
    a = _asarr(a)
    if axis is None:
        a, axis = ravel(a), 0
    (ax,) = _norm_axes(a, axis)
    return bind("gather", a, _index_array(indices, a.shape[ax]), axis=ax)


# ---------------------------------------------------------------------------------------------
# contractions


def matmul(a: Any, b: Any) -> Any:
    """NumPy's matmul: 1-d operands are promoted to matrices and the added axis removed."""
    dts = _resolve(np.matmul, (a, b))
    a, b = _convert(a, dts[0]), _convert(b, dts[1])
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul: operands must not be scalars (use *)", user_location())
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ShapeError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}", user_location())
    out = bind("matmul", a2, b2)
    if a.ndim == 1:
        out = squeeze(out, -2)
    if b.ndim == 1:
        out = squeeze(out, -1)
    return out


def dot(a: Any, b: Any, out: Any = None) -> Any:
    a, b = _asarr(a), _asarr(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if b.ndim <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 2]))


def vdot(a: Any, b: Any) -> Any:
    return dot(ravel(a), ravel(b))


def inner(a: Any, b: Any) -> Any:
    a, b = _asarr(a), _asarr(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


def outer(a: Any, b: Any, out: Any = None) -> Any:
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """Sum over the given axes of a and b, as one matmul between two reshapes."""
    dts = _resolve(np.matmul, (a, b))
    a, b = _convert(a, dts[0]), _convert(b, dts[1])
    if isinstance(axes, (int, np.integer)):
        ax_a = list(range(a.ndim - int(axes), a.ndim))
        ax_b = list(range(int(axes)))
    else:
        ax_a, ax_b = ([int(v)] if np.isscalar(v) else [int(i) for i in v] for v in axes)
    ax_a = [i % a.ndim for i in ax_a]
    ax_b = [i % b.ndim for i in ax_b]
    for i, j in zip(ax_a, ax_b, strict=True):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(
                f"tensordot: axis {i} of {a.shape} and axis {j} of {b.shape} differ",
                user_location(),
            )
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [i for i in range(b.ndim) if i not in ax_b]
    k = int(np.prod([a.shape[i] for i in ax_a], dtype=np.int64))
    a2 = reshape(transpose(a, free_a + ax_a), (-1, k))
    b2 = reshape(transpose(b, ax_b + free_b), (k, -1))
    out = bind("matmul", a2, b2)
    return reshape(out, tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b))


def _einsum_parse(spec: str, n: int) -> tuple[list[str], str]:
    spec = spec.replace(" ", "")
    if "." in spec:
        raise UnsupportedError("einsum: '...' is not supported; name every axis", user_location())
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != n:
        raise ShapeError(
            f"einsum: {spec!r} names {len(ins)} operands but {n} were given", user_location()
        )
    if not arrow:
        counts = {c: lhs.count(c) for c in lhs if c in string.ascii_letters}
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
    for s in ins:
        if len(set(s)) != len(s):
            raise UnsupportedError(
                f"einsum: repeated index within one operand ({s!r}: "
                "diagonals/traces) is not supported",
                user_location(),
            )
    return ins, out


def _einsum_one(x: Any, s: str, keep: str) -> tuple[Any, str]:
    """Sum x over its letters not in `keep`."""
    axes = tuple(i for i, c in enumerate(s) if c not in keep)
    if not axes:
        return x, s
    return bind("reduce_sum", x, axes=axes, keepdims=False), "".join(c for c in s if c in keep)


def _einsum_pair(a: Any, sa: str, b: Any, sb: str, keep: str) -> tuple[Any, str]:
    a, sa = _einsum_one(a, sa, sb + keep)
    b, sb = _einsum_one(b, sb, sa + keep)
    batch = [c for c in sa if c in sb and c in keep]
    contract = [c for c in sa if c in sb and c not in keep]
    fa = [c for c in sa if c not in sb]
    fb = [c for c in sb if c not in sa]
    dims = {**dict(zip(sa, a.shape, strict=True)), **dict(zip(sb, b.shape, strict=True))}
    for c in set(sa) & set(sb):
        if a.shape[sa.index(c)] != b.shape[sb.index(c)]:
            raise ShapeError(
                f"einsum: index {c!r} has sizes {a.shape[sa.index(c)]} and {b.shape[sb.index(c)]}",
                user_location(),
            )

    def size(cs):
        return int(np.prod([dims[c] for c in cs], dtype=np.int64))

    a3 = reshape(
        transpose(a, [sa.index(c) for c in batch + fa + contract]),
        (size(batch), size(fa), size(contract)),
    )
    b3 = reshape(
        transpose(b, [sb.index(c) for c in batch + contract + fb]),
        (size(batch), size(contract), size(fb)),
    )
    out = bind("matmul", a3, b3)
    letters = batch + fa + fb
    return reshape(out, tuple(dims[c] for c in letters)), "".join(letters)


def einsum(spec: str, *operands: Any, **kwargs: Any) -> Any:
    """Einstein summation for named axes (no '...' and no repeated index within an operand),
    lowered to transposes, reshapes, reductions and batched matmuls."""
    if kwargs.get("out") is not None:
        raise UnsupportedError("einsum: out= is not supported", user_location())
    ins, out_s = _einsum_parse(spec, len(operands))
    ops = _promote_all(operands)
    acc, s = ops[0], ins[0]
    for j in range(1, len(ops)):
        later = "".join(ins[j + 1 :]) + out_s
        acc, s = _einsum_pair(acc, s, ops[j], ins[j], later)
    acc, s = _einsum_one(acc, s, out_s)
    return transpose(acc, [s.index(c) for c in out_s]) if out_s else acc


# ---------------------------------------------------------------------------------------------
# images


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0) -> Any:
    """2-d cross-correlation of NCHW images x with OIHW weights w (zero padding)."""
    dts = _resolve(np.multiply, (x, w))
    return bind(
        "conv2d",
        _convert(x, dts[0]),
        _convert(w, dts[1]),
        stride=_pair(stride),
        padding=_pair(padding),
    )


def max_pool2d(x: Any, kernel: Any = 2, stride: Any = None) -> Any:
    """Max over kernel-sized windows of NCHW images (stride defaults to the kernel)."""
    k = _pair(kernel)
    return bind("max_pool2d", _float_like(x), kernel=k, stride=_pair(stride) if stride else k)


def avg_pool2d(x: Any, kernel: Any = 2, stride: Any = None) -> Any:
    """Mean over kernel-sized windows of NCHW images (stride defaults to the kernel)."""
    k = _pair(kernel)
    return bind("avg_pool2d", _float_like(x), kernel=k, stride=_pair(stride) if stride else k)


# ---------------------------------------------------------------------------------------------
# indexing


def _index_array(idx: Any, n: int) -> Any:
    """An integer index array (traced or concrete, negatives wrapped when concrete)."""
    if isinstance(idx, Tracer):
        if idx.dtype == np.bool_:
            raise UnsupportedError(
                "boolean mask indexing gives data-dependent shapes; use "
                "np.where(mask, x, 0) instead",
                user_location(),
            )
        if idx.dtype.kind not in "iu":
            raise DTypeError(f"index arrays must be integers, got {idx.dtype}", user_location())
        return idx
    arr = np.asarray(idx)
    if isinstance(idx, list) and arr.size == 0:  # x[[]] selects nothing, as in NumPy
        arr = arr.astype(np.int64)
    if arr.dtype == np.bool_:
        raise UnsupportedError(
            "boolean mask indexing gives data-dependent shapes; use np.where(mask, x, 0) instead",
            user_location(),
        )
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"index arrays must be integers, got {arr.dtype}", user_location())
    if arr.size and (arr.max() >= n or arr.min() < -n):
        raise ShapeError(
            f"index {int(arr.max() if arr.max() >= n else arr.min())} is out of "
            f"bounds for an axis of length {n}",
            user_location(),
        )
    return np.where(arr < 0, arr + n, arr).astype(np.int64)


def _is_array_index(k: Any) -> bool:
    return isinstance(k, (Tracer, np.ndarray, list)) and not isinstance(k, bool)


def getitem(x: Any, key: Any) -> Any:
    """x[key] for ints, slices (any step), None, Ellipsis and integer arrays."""
    x = _asarr(x)
    key = key if isinstance(key, tuple) else (key,)
    n_used = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')", user_location())
    if n_used > x.ndim:
        raise ShapeError(
            f"too many indices ({n_used}) for an array of shape {x.shape}", user_location()
        )
    if Ellipsis in [k for k in key if not _is_array_index(k)]:
        i = next(i for i, k in enumerate(key) if k is Ellipsis and not _is_array_index(k))
        key = key[:i] + (slice(None),) * (x.ndim - n_used) + key[i + 1 :]
    key = key + (slice(None),) * (x.ndim - builtins.sum(1 for k in key if k is not None))
    has_array = builtins.any(_is_array_index(k) for k in key)
    if has_array and builtins.any(k is None for k in key):
        raise UnsupportedError(
            "combining None (np.newaxis) with array indices is not supported", user_location()
        )

    # 1. basic slicing, dimension by dimension
    starts, stops, steps, flips = [], [], [], []
    kinds = []  # per input dim: 'slice', 'int', or ('array', idx)
    dim = 0
    for k in key:
        if k is None:
            continue
        n = x.shape[dim]
        if isinstance(k, slice):
            a, b, s = k.indices(n)
            if s < 0:  # walk the flipped axis forwards instead
                cnt = len(range(a, b, s))
                flips.append(dim)
                a = n - 1 - a
                s = -s
                b = a + (cnt - 1) * s + 1 if cnt else a
            b = builtins.max(a, b)
            starts.append(a), stops.append(b), steps.append(s)
            kinds.append("slice")
        elif _is_array_index(k):
            starts.append(0), stops.append(n), steps.append(1)
            kinds.append(("array", _index_array(k, n)))
        else:
            if isinstance(k, (bool, np.bool_)):
                raise UnsupportedError(
                    "boolean mask indexing gives data-dependent shapes; use "
                    "np.where(mask, x, 0) instead",
                    user_location(),
                )
            try:
                i = operator.index(k)
            except TracerError:
                raise UnsupportedError(
                    "a traced scalar cannot be used as an index; index with a "
                    "traced integer array (x[idx]) or np.take",
                    user_location(),
                ) from None
            except (TypeError, ValueError):
                raise ShapeError(
                    f"invalid index {k!r}: only integers, slices, ..., None and "
                    "integer arrays are valid indices",
                    user_location(),
                ) from None
            if not -n <= i < n:
                raise ShapeError(
                    f"index {i} is out of bounds for an axis of length {n}", user_location()
                )
            i %= n
            if has_array:
                starts.append(0), stops.append(n), steps.append(1)
                kinds.append(("array", np.asarray(i, dtype=np.int64)))
            else:
                starts.append(i), stops.append(i + 1), steps.append(1)
                kinds.append("int")
        dim += 1
    if flips:
        x = bind("flip", x, axes=tuple(flips))
    if (starts, stops, steps) != ([0] * x.ndim, list(x.shape), [1] * x.ndim):
        x = bind("slice", x, start=tuple(starts), stop=tuple(stops), step=tuple(steps))

    if has_array:
        adv = [i for i, k in enumerate(kinds) if isinstance(k, tuple)]
        idx = [kinds[i][1] for i in adv]
        if adv == list(range(adv[0], adv[0] + len(adv))):
            return bind("gather", x, *idx, axis=adv[0])
        # separated array indices: NumPy puts the indexed axes first
        rest = [i for i in range(x.ndim) if i not in adv]
        return bind("gather", transpose(x, adv + rest), *idx, axis=0)

    # 2. drop integer-indexed dims, insert new axes
    shape, dim = [], 0
    for k in key:
        if k is None:
            shape.append(1)
            continue
        if kinds[dim] != "int":
            shape.append(x.shape[dim])
        dim += 1
    return reshape(x, tuple(shape))


# ---------------------------------------------------------------------------------------------
# diagonals, triangles, tiling, rolling, splitting, averages: compositions of slice, pad,
# reshape, broadcast_to, concatenate, where and gather, so their gradients, fusion and compiled
# forms come from those ops


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


def _axis(x: Any, axis: Any, name: str) -> int:
    """One axis of x, normalised; a bad one is a ShapeError naming the user's line."""
    ax = _static_int(axis, f"{name}: axis")
    if not -x.ndim <= ax < x.ndim:
        raise ShapeError(
            f"{name}: axis {ax} is out of range for an array of shape {tuple(x.shape)}",
            user_location(),
        )
    return ax % x.ndim


def _slice_axis(x: Any, ax: int, start: int, stop: int) -> Any:
    return getitem(x, (slice(None),) * ax + (slice(start, stop),))


def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The diagonal of the (axis1, axis2) planes, as the last axis: a strided slice of the
    planes flattened, so it is a view when compiled and its gradient is a pad."""
    a = _asarr(a)
    if a.ndim < 2:
        raise ShapeError(
            f"diagonal: needs an array of at least 2 dimensions, got shape {tuple(a.shape)}",
            user_location(),
        )
    k = _static_int(offset, "diagonal: offset")
    ax1, ax2 = _axis(a, axis1, "diagonal"), _axis(a, axis2, "diagonal")
    if ax1 == ax2:
        raise ShapeError("diagonal: axis1 and axis2 cannot be the same", user_location())
    x = moveaxis(a, (ax1, ax2), (-2, -1))
    n, m = x.shape[-2:]
    length = builtins.max(0, builtins.min(n, m - k) if k >= 0 else builtins.min(n + k, m))
    flat = reshape(x, tuple(x.shape[:-2]) + (n * m,))
    start = (k if k >= 0 else -k * m) if length else 0
    stop = start + (length - 1) * (m + 1) + 1 if length else 0
    lead = flat.ndim - 1
    return bind(
        "slice",
        flat,
        start=(0,) * lead + (start,),
        stop=tuple(flat.shape[:-1]) + (stop,),
        step=(1,) * lead + (m + 1,),
    )


def trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
) -> Any:
    _no_extras("trace", out)
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def diag(v: Any, k: int = 0) -> Any:
    """The k-th diagonal of a 2-d array, or a 2-d array with a 1-d one on its k-th diagonal
    (a pad with interior zeros, reshaped)."""
    v = _asarr(v)
    k = _static_int(k, "diag: k")
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ShapeError(
            f"diag: input must be 1-d or 2-d, got shape {tuple(v.shape)}", user_location()
        )
    length = v.shape[0]
    n = length + builtins.abs(k)
    if length == 0:
        pads = ((0, n * n, 0),)
    else:
        start = k if k >= 0 else -k * n
        pads = ((start, n * n - (start + (length - 1) * (n + 1) + 1), n),)
    return reshape(bind("pad", v, pads=pads, value=0.0), (n, n))


def _tri(m: Any, k: Any, name: str, lower: bool) -> Any:
    m = _asarr(m)
    k = _static_int(k, f"{name}: k")
    if m.ndim < 1:
        raise ShapeError(f"{name}: needs an array of at least 1 dimension", user_location())
    rows, cols = m.shape[-2:] if m.ndim >= 2 else (m.shape[0], m.shape[0])
    zero = np.zeros((), m.dtype)
    if lower:
        return where(np.tri(rows, cols, k=k, dtype=bool), m, zero)
    return where(np.tri(rows, cols, k=k - 1, dtype=bool), zero, m)


def tril(m: Any, k: int = 0) -> Any:
    return _tri(m, k, "tril", True)


def triu(m: Any, k: int = 0) -> Any:
    return _tri(m, k, "triu", False)


def tile(A: Any, reps: Any) -> Any:
    """A repeated reps times along each axis: a broadcast of A with a unit axis before each of
    its axes, reshaped (its gradient sums the copies)."""
    A = _asarr(A)
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    reps = tuple(_static_int(r, "tile: reps") for r in reps)
    if builtins.any(r < 0 for r in reps):
        raise ShapeError(f"tile: negative repetitions in {reps}", user_location())
    d = builtins.max(len(reps), A.ndim)
    reps = (1,) * (d - len(reps)) + reps
    shape = (1,) * (d - A.ndim) + tuple(A.shape)
    x = reshape(A, tuple(v for s in shape for v in (1, s)))
    x = broadcast_to(x, tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s)))
    return reshape(x, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def repeat(a: Any, repeats: Any, axis: Any = None) -> Any:
    """Each element repeated along axis (flattened first when axis is None): a broadcast for
    one count, a gather for a count per element."""
    a = _asarr(a)
    if isinstance(repeats, Tracer):
        raise UnsupportedError(
            "repeat: repeats must be Python ints, not traced values (they decide the "
            "result's shape)",
            user_location(),
        )
    if axis is None:
        a, ax = ravel(a), 0
    else:
        ax = _axis(a, axis, "repeat")
    r = np.asarray(repeats)
    if r.dtype.kind not in "iu" or r.ndim > 1:
        raise GraphcError(
            f"repeat: repeats must be an int or a 1-d sequence of ints, got {repeats!r}",
            user_location(),
        )
    if np.any(r < 0):
        raise ShapeError(f"repeat: negative repeats {repeats!r}", user_location())
    n = a.shape[ax]
    if r.size == 1:
        x = expand_dims(a, ax + 1)
        shape = list(x.shape)
        shape[ax + 1] = int(r.reshape(()))
        out = list(a.shape)
        out[ax] = n * shape[ax + 1]
        return reshape(broadcast_to(x, tuple(shape)), tuple(out))
    if r.shape != (n,):
        raise ShapeError(
            f"repeat: {r.size} repeat counts for an axis of length {n}", user_location()
        )
    return bind("gather", a, np.repeat(np.arange(n, dtype=np.int64), r), axis=ax)


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """Elements shifted cyclically along axes: two slices joined in the other order."""
    a = _asarr(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    if isinstance(shift, Tracer) or isinstance(axis, Tracer):
        raise UnsupportedError(
            "roll: shift and axis must be Python ints, not traced values", user_location()
        )
    try:
        pairs = np.broadcast(shift, axis)
    except ValueError:
        raise ShapeError(
            f"roll: shift {shift!r} and axis {axis!r} have different lengths", user_location()
        ) from None
    if pairs.ndim > 1:
        raise ShapeError("roll: shift and axis must be ints or 1-d sequences", user_location())
    totals = [0] * a.ndim
    for s, ax in pairs:
        totals[_axis(a, ax, "roll")] += _static_int(s, "roll: shift")
    for ax, s in enumerate(totals):
        n = a.shape[ax]
        if n and s % n:
            s %= n
            a = concatenate([_slice_axis(a, ax, n - s, n), _slice_axis(a, ax, 0, n - s)], axis=ax)
    return a


def _split(name: str, ary: Any, indices_or_sections: Any, axis: Any, equal: bool) -> list[Any]:
    ary = _asarr(ary)
    ax = _axis(ary, axis, name)
    n = ary.shape[ax]
    if isinstance(indices_or_sections, Tracer):
        raise UnsupportedError(
            f"{name}: sections and split points must be Python ints, not traced values",
            user_location(),
        )
    if np.ndim(indices_or_sections) == 0:
        sections = _static_int(indices_or_sections, f"{name}: sections")
        if sections <= 0:
            raise ShapeError(f"{name}: the number of sections must be positive", user_location())
        if equal and n % sections:
            raise ShapeError(
                f"{name}: an axis of length {n} does not split into {sections} equal "
                "sections (np.array_split allows unequal ones)",
                user_location(),
            )
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        points = [builtins.sum(sizes[:i]) for i in range(sections + 1)]
    else:
        points = [0] + [_static_int(i, f"{name}: split point") for i in indices_or_sections] + [n]
    return [_slice_axis(ary, ax, a, b) for a, b in zip(points[:-1], points[1:], strict=True)]


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    return _split("split", ary, indices_or_sections, axis, True)


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    return _split("array_split", ary, indices_or_sections, axis, False)


def average(
    a: Any, axis: Any = None, weights: Any = None, returned: bool = False, *, keepdims: Any = False
) -> Any:
    """The (weighted) mean over axis; with returned=True also the sum of the weights."""
    a = _asarr(a)
    axes = _norm_axes(a, axis)
    keepdims = bool(keepdims)
    if weights is None:
        avg = mean(a, axis=axes, keepdims=keepdims)
        scl: Any = np.asarray(a.size / builtins.max(avg.size, 1), dtype=avg.dtype)
    else:
        w = _asarr(weights)
        if a.dtype.kind in "biu":
            dt = np.result_type(a.dtype, w.dtype, np.float64)
        else:
            dt = np.result_type(a.dtype, w.dtype)
        if tuple(a.shape) != tuple(w.shape):
            if axis is None:
                raise ShapeError(
                    f"average: weights of shape {tuple(w.shape)} differ from a's shape "
                    f"{tuple(a.shape)}; give the axis they run along",
                    user_location(),
                )
            given = [int(v) % a.ndim for v in np.atleast_1d(axis)]
            if tuple(w.shape) != tuple(a.shape[g] for g in given):
                raise ShapeError(
                    f"average: weights of shape {tuple(w.shape)} do not match a's shape "
                    f"{tuple(a.shape)} along axis {axis}",
                    user_location(),
                )
            w = transpose(w, tuple(int(i) for i in np.argsort(given)))
            w = reshape(w, tuple(s if i in given else 1 for i, s in enumerate(a.shape)))
        scl = sum(w, axis=axes, dtype=dt, keepdims=keepdims)
        if not isinstance(scl, Tracer) and np.any(scl == 0):
            raise GraphcError("average: the weights sum to zero", user_location())
        avg = sum(multiply(astype(a, dt), astype(w, dt)), axis=axes, keepdims=keepdims) / scl
    if not returned:
        return avg
    if tuple(np.shape(scl)) != tuple(avg.shape):
        scl = broadcast_to(scl, avg.shape)
    return avg, scl


def _scan(op: str, name: str):
    """np.cumsum / np.cumprod: flattened without an axis; small ints accumulate in 64 bits."""

    def fn(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
        _no_extras(name, out)
        a = _asarr(a)
        if axis is None:
            a, ax = ravel(a), 0
        else:
            ax = _axis(a, axis, name)
        a = astype(a, dtype if dtype is not None else _sum_dtype(a))
        return bind(op, a, axis=ax)

    fn.__name__ = name
    return fn


cumsum = _scan("cumsum", "cumsum")
cumprod = _scan("cumprod", "cumprod")


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


def take_along_axis(arr: Any, indices: Any, axis: Any = -1) -> Any:
    """arr[..., indices, ...] along one axis: a gather with every other axis indexed by a
    broadcast arange."""
    arr, idx = _asarr(arr), _asarr(indices)
    if axis is None:
        arr, ax = ravel(arr), 0
    else:
        ax = _axis(arr, axis, "take_along_axis")
    if idx.ndim != arr.ndim:
        raise ShapeError(
            f"take_along_axis: indices of shape {tuple(idx.shape)} need as many dimensions as "
            f"the array, of shape {tuple(arr.shape)}",
            user_location(),
        )
    if not isinstance(idx, Tracer):
        idx = _index_array(idx, arr.shape[ax])
    parts = []
    for i, n in enumerate(arr.shape):
        if i == ax:
            parts.append(idx)
        else:
            parts.append(np.arange(n, dtype=np.int64).reshape((n,) + (1,) * (arr.ndim - 1 - i)))
    return bind("gather", arr, *parts, axis=0)


def sort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None) -> Any:
    """a sorted along axis: a gather with its argsort, so the gradient follows the
    permutation."""
    a, ax = _sortable(a, axis, "sort", kind, order)
    return take_along_axis(a, bind("argsort", a, axis=ax), ax)


# ---------------------------------------------------------------------------------------------
# linear algebra (np.linalg)


def _square(a: Any, name: str) -> Any:
    a = _asarr(a)
    if a.dtype.kind in "biu":
        a = astype(a, np.float64)
    elif a.dtype not in (np.float32, np.float64):
        raise DTypeError(
            f"numpy.linalg.{name}: arrays of type {a.dtype} are not supported "
            "(float32 and float64 are)",
            user_location(),
        )
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(
            f"numpy.linalg.{name}: needs square matrices (..., n, n), got shape {tuple(a.shape)}",
            user_location(),
        )
    return a


class SlogdetResult(NamedTuple):
    sign: Any
    logabsdet: Any


def _norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """np.linalg.norm: vector norms (None, 2, 1, inf, -inf, 0, any p) and matrix norms
    (None, 'fro', 1, -1, inf, -inf), from abs, powers and reductions."""
    x = _asarr(x)
    if x.dtype.kind in "biu":
        x = astype(x, np.float64)
    nd = x.ndim
    if axis is None:
        if ord is None:
            r = sqrt(sum(x * x))
            return reshape(r, (1,) * nd) if keepdims else r
        axes = tuple(range(nd))
    else:
        axes = tuple(np.atleast_1d(axis).tolist())
        if len(axes) in (1, 2):
            norm_ax = _norm_axes(x, axes)
            if len(norm_ax) != len(axes):
                raise ShapeError("norm: duplicate axes", user_location())
            axes = tuple(a % nd for a in axes)
    if len(axes) == 1:
        if isinstance(ord, str):
            raise GraphcError(f"norm: invalid norm order {ord!r} for vectors", user_location())
        kw = {"axis": axes, "keepdims": keepdims}
        if ord == np.inf:
            return max(absolute(x), **kw)
        if ord == -np.inf:
            return min(absolute(x), **kw)
        if ord == 0:
            return sum(astype(not_equal(x, 0), x.dtype), **kw)
        if ord == 1:
            return sum(absolute(x), **kw)
        if ord is None or ord == 2:
            return sqrt(sum(x * x, **kw))
        p = float(ord)
        return power(sum(power(absolute(x), p), **kw), 1.0 / p)
    if len(axes) == 2:
        row, col = axes
        if ord in (2, -2, "nuc"):
            raise UnsupportedError(
                f"norm: the matrix norm ord={ord!r} needs singular values, which graphc does "
                "not compute",
                user_location(),
            )
        if ord is None or ord in ("fro", "f"):
            r = sqrt(sum(x * x, axis=axes))
        elif ord in (1, -1):
            red = max if ord == 1 else min
            r = red(sum(absolute(x), axis=row), axis=col - 1 if col > row else col)
        elif ord in (np.inf, -np.inf):
            red = max if ord == np.inf else min
            r = red(sum(absolute(x), axis=col), axis=row - 1 if row > col else row)
        else:
            raise GraphcError(f"norm: invalid norm order {ord!r} for matrices", user_location())
        if keepdims:
            r = reshape(r, tuple(1 if i in axes else s for i, s in enumerate(x.shape)))
        return r
    raise ShapeError(
        f"norm: axis must name 1 or 2 axes (a vector or a matrix norm), got {axis!r} for an "
        f"array of shape {tuple(x.shape)}",
        user_location(),
    )


class linalg:  # noqa: N801  (mirrors np.linalg)
    """graphc's np.linalg: norm (a composition), inv, det and slogdet (ops with NumPy
    fallbacks when compiled), solve (an op of its own, LU as in NumPy)."""

    norm = staticmethod(_norm)

    @staticmethod
    def inv(a: Any) -> Any:
        return bind("inv", _square(a, "inv"))

    @staticmethod
    def det(a: Any) -> Any:
        return bind("det", _square(a, "det"))

    @staticmethod
    def slogdet(a: Any) -> SlogdetResult:
        a = _square(a, "slogdet")
        return SlogdetResult(bind("detsign", a), bind("logabsdet", a))

    @staticmethod
    def solve(a: Any, b: Any) -> Any:
        a, b = _square(a, "solve"), _asarr(b)
        b = astype(b, np.result_type(a.dtype, b.dtype, np.float32))
        a = astype(a, b.dtype)
        if b.ndim == 0 or b.shape[-1 if b.ndim == 1 else -2] != a.shape[-1]:
            raise ShapeError(
                f"numpy.linalg.solve: b of shape {tuple(b.shape)} does not fit a of shape "
                f"{tuple(a.shape)}",
                user_location(),
            )
        # NumPy 2: a 1-d b is one vector; otherwise b is a stack of (n, k) matrices
        vec = b.ndim == 1
        if vec:
            b = reshape(b, (b.shape[0], 1))
        batch = np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
        a = broadcast_to(a, batch + tuple(a.shape[-2:]))
        b = broadcast_to(b, batch + tuple(b.shape[-2:]))
        x = bind("solve", a, b)
        return reshape(x, tuple(x.shape[:-1])) if vec else x


def _ufunc_reduce(fn: Callable, name: str, accumulates: bool):
    """np.<ufunc>.reduce(x, axis=0, dtype=None, keepdims=False) as the matching reduction."""

    def handler(
        x: Any,
        axis: Any = 0,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = None,
        where: Any = True,
    ) -> Any:
        if out is not None or initial is not None or where is not True:
            raise UnsupportedError(
                f"numpy.{name}.reduce: out=, initial= and where= are not supported",
                user_location(),
            )
        x = _asarr(x)
        if accumulates:
            return fn(x, axis=axis, dtype=dtype, keepdims=keepdims)
        if dtype is not None:
            x = astype(x, dtype)
        return fn(x, axis=axis, keepdims=keepdims)

    return handler


HANDLED_UFUNC_METHODS.update(
    {
        (np.add, "reduce"): _ufunc_reduce(sum, "add", True),
        (np.multiply, "reduce"): _ufunc_reduce(prod, "multiply", True),
        (np.maximum, "reduce"): _ufunc_reduce(max, "maximum", False),
        (np.minimum, "reduce"): _ufunc_reduce(min, "minimum", False),
    }
)


# ---------------------------------------------------------------------------------------------
# wiring into the tracer

_UFUNCS: dict[np.ufunc, Callable] = {
    np.add: add,
    np.subtract: subtract,
    np.multiply: multiply,
    np.true_divide: divide,
    np.power: power,
    np.maximum: maximum,
    np.minimum: minimum,
    np.less: less,
    np.less_equal: less_equal,
    np.greater: greater,
    np.greater_equal: greater_equal,
    np.equal: equal,
    np.not_equal: not_equal,
    np.logical_and: logical_and,
    np.logical_or: logical_or,
    np.logical_xor: logical_xor,
    np.logical_not: logical_not,
    np.negative: negative,
    np.positive: positive,
    np.absolute: absolute,
    np.sign: sign,
    np.exp: exp,
    np.log: log,
    np.log1p: log1p,
    np.expm1: expm1,
    np.sqrt: sqrt,
    np.square: square,
    np.sin: sin,
    np.cos: cos,
    np.tan: tan,
    np.tanh: tanh,
    np.sinh: sinh,
    np.cosh: cosh,
    np.arcsin: arcsin,  # also np.asin, np.acos, ... (the same ufuncs in NumPy 2)
    np.arccos: arccos,
    np.arctan: arctan,
    np.arcsinh: arcsinh,
    np.arccosh: arccosh,
    np.arctanh: arctanh,
    np.arctan2: arctan2,
    np.hypot: hypot,
    np.cbrt: cbrt,
    np.fabs: fabs,
    np.fmax: fmax,
    np.fmin: fmin,
    np.copysign: copysign,
    np.heaviside: heaviside,
    np.fmod: fmod,
    np.remainder: remainder,
    np.floor_divide: floor_divide,
    np.trunc: trunc,
    np.deg2rad: deg2rad,
    np.radians: radians,
    np.rad2deg: rad2deg,
    np.degrees: degrees,
    np.logaddexp2: logaddexp2,
    np.floor: floor,
    np.ceil: ceil,
    np.rint: rint,
    np.isfinite: isfinite,
    np.isnan: isnan,
    np.isinf: isinf,
    np.reciprocal: reciprocal,
    np.log2: log2,
    np.log10: log10,
    np.exp2: exp2,
    np.logaddexp: logaddexp,
    np.matmul: matmul,
}
HANDLED_UFUNCS.update(_UFUNCS)


def round(x: Any, decimals: int = 0, out: Any = None) -> Any:
    if decimals != 0:
        raise UnsupportedError("np.round: only decimals=0 is supported", user_location())
    if _asarr(x).dtype.kind in "iu":  # NumPy returns integers unchanged (same dtype)
        return _asarr(x)
    return rint(x)


around = round


def copy(x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


def shape(x: Any) -> tuple[int, ...]:
    return tuple(_asarr(x).shape)


def ndim(x: Any) -> int:
    return _asarr(x).ndim


def size(x: Any, axis: Any = None) -> int:
    x = _asarr(x)
    return x.size if axis is None else x.shape[axis]


def result_type(*args: Any) -> np.dtype:
    return np.result_type(*[_asarr(a).dtype if isinstance(a, Tracer) else a for a in args])


_FUNCTIONS: dict[Callable, Callable] = {
    np.sum: sum,
    np.prod: prod,
    np.max: max,
    np.amax: amax,
    np.min: min,
    np.amin: amin,
    np.mean: mean,
    np.var: var,
    np.std: std,
    np.argmax: argmax,
    np.argmin: argmin,
    np.any: any,
    np.all: all,
    np.where: where,
    np.clip: clip,
    np.concatenate: concatenate,
    np.stack: stack,
    np.hstack: hstack,
    np.vstack: vstack,
    np.reshape: reshape,
    np.ravel: ravel,
    np.transpose: transpose,
    np.swapaxes: swapaxes,
    np.moveaxis: moveaxis,
    np.broadcast_to: broadcast_to,
    np.expand_dims: expand_dims,
    np.squeeze: squeeze,
    np.flip: flip,
    np.pad: pad,
    np.take: take,
    np.dot: dot,
    np.vdot: vdot,
    np.inner: inner,
    np.outer: outer,
    np.tensordot: tensordot,
    np.einsum: einsum,
    np.zeros_like: zeros_like,
    np.ones_like: ones_like,
    np.full_like: full_like,
    np.round: round,
    np.around: around,
    np.copy: copy,
    np.shape: shape,
    np.ndim: ndim,
    np.size: size,
    np.astype: astype,
    np.result_type: result_type,
    np.trace: trace,
    np.diagonal: diagonal,
    np.diag: diag,
    np.triu: triu,
    np.tril: tril,
    np.tile: tile,
    np.repeat: repeat,
    np.roll: roll,
    np.split: split,
    np.array_split: array_split,
    np.average: average,
    np.cumsum: cumsum,
    np.cumprod: cumprod,
    np.sort: sort,
    np.argsort: argsort,
    np.take_along_axis: take_along_axis,
    np.linalg.norm: linalg.norm,
    np.linalg.inv: linalg.inv,
    np.linalg.det: linalg.det,
    np.linalg.slogdet: linalg.slogdet,
    np.linalg.solve: linalg.solve,
}
HANDLED_FUNCTIONS.update(_FUNCTIONS)


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


def _install_operators() -> None:
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
    T.T = property(lambda a: transpose(a))
    T.mT = property(lambda a: swapaxes(a, -1, -2))
    T.reshape = lambda a, *shape, order="C": reshape(
        a, shape[0] if len(shape) == 1 else shape, order
    )
    T.transpose = lambda a, *axes: transpose(
        a,
        None if not axes else axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes,
    )
    T.astype = lambda a, dtype, **kw: astype(a, dtype)
    T.sum = lambda a, axis=None, dtype=None, out=None, keepdims=False: sum(
        a, axis, dtype, out, keepdims
    )
    T.prod = lambda a, axis=None, dtype=None, out=None, keepdims=False: prod(
        a, axis, dtype, out, keepdims
    )
    T.mean = lambda a, axis=None, dtype=None, out=None, keepdims=False: mean(
        a, axis, dtype, out, keepdims
    )
    T.var = lambda a, axis=None, dtype=None, out=None, ddof=0, keepdims=False: var(
        a, axis, dtype, out, ddof, keepdims
    )
    T.std = lambda a, axis=None, dtype=None, out=None, ddof=0, keepdims=False: std(
        a, axis, dtype, out, ddof, keepdims
    )
    T.max = lambda a, axis=None, out=None, keepdims=False: max(a, axis, out, keepdims)
    T.min = lambda a, axis=None, out=None, keepdims=False: min(a, axis, out, keepdims)
    T.any = lambda a, axis=None, out=None, keepdims=False: any(a, axis, out, keepdims)
    T.all = lambda a, axis=None, out=None, keepdims=False: all(a, axis, out, keepdims)
    T.argmax = lambda a, axis=None, out=None, *, keepdims=False: argmax(a, axis, keepdims=keepdims)
    T.argmin = lambda a, axis=None, out=None, *, keepdims=False: argmin(a, axis, keepdims=keepdims)
    T.squeeze = lambda a, axis=None: squeeze(a, axis)
    T.ravel = lambda a, order="C": ravel(a, order)
    T.flatten = lambda a, order="C": ravel(a, order)
    T.dot = lambda a, b: dot(a, b)
    T.swapaxes = lambda a, i, j: swapaxes(a, i, j)
    T.clip = lambda a, lo=None, hi=None: clip(a, lo, hi)
    T.round = lambda a, decimals=0: round(a, decimals)
    T.copy = lambda a: a
    T.take = lambda a, indices, axis=None: take(a, indices, axis)
    T.trace = lambda a, offset=0, axis1=0, axis2=1, dtype=None, out=None: trace(
        a, offset, axis1, axis2, dtype, out
    )
    T.diagonal = lambda a, offset=0, axis1=0, axis2=1: diagonal(a, offset, axis1, axis2)
    T.repeat = lambda a, repeats, axis=None: repeat(a, repeats, axis)
    T.cumsum = lambda a, axis=None, dtype=None, out=None: cumsum(a, axis, dtype, out)
    T.cumprod = lambda a, axis=None, dtype=None, out=None: cumprod(a, axis, dtype, out)
    T.argsort = lambda a, axis=-1, kind=None, order=None: argsort(a, axis, kind, order)

    def _item(a: Any, *args: Any) -> Any:
        raise TracerError(
            ".item() of a traced value is not known while tracing; return the "
            "array and convert it outside the traced function",
            user_location(),
        )

    T.item = _item
    T.tolist = _item


_install_operators()

__all__ = [
    n
    for n in dir()
    if not n.startswith("_")
    and n
    not in (
        "annotations",
        "builtins",
        "math",
        "operator",
        "string",
        "np",
        "Any",
        "Callable",
        "Sequence",
        "Aval",
        "DTypeError",
        "GraphcError",
        "ShapeError",
        "as_dtype",
        "make_const",
        "registry",
        "HANDLED_FUNCTIONS",
        "HANDLED_UFUNC_METHODS",
        "HANDLED_UFUNCS",
        "NamedTuple",
        "Tracer",
        "TracerError",
        "UnsupportedError",
        "bind",
        "user_location",
    )
]
