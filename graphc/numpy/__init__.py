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

from graphc.ir import AxisError, DTypeError, GraphcError, ShapeError, as_dtype, make_const
from graphc.ops import registry
from graphc.trace import (
    HANDLED_FUNCTIONS,
    HANDLED_UFUNC_METHODS,
    HANDLED_UFUNCS,
    ArgumentError,
    ArgumentValueError,
    Tracer,
    TracerError,
    UnsupportedAttributeError,
    UnsupportedError,
    _meta,
    api_call,
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


# ---------------------------------------------------------------------------------------------
# reductions


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


def _norm_axes(x: Any, axis: Any, name: str) -> tuple[int, ...]:
    """A reduction's axes, sorted (None: all of them)."""
    nd = len(np.shape(x))
    return tuple(range(nd)) if axis is None else tuple(sorted(_axes(name, axis, nd)))


def _sum_dtype(x: Any) -> np.dtype:
    dt = x.dtype
    if dt == np.bool_ or (dt.kind == "i" and dt.itemsize < 8):
        return np.dtype(np.int64)
    if dt.kind == "u" and dt.itemsize < 8:
        return np.dtype(np.uint64)
    return dt


def _no_extras(name: str, out: Any = None, where: Any = None, initial: Any = None) -> None:
    for kw, v in (("out", out), ("where", where), ("initial", initial)):
        if v is not None and not (kw == "where" and v is True):
            raise UnsupportedError(f"np.{name}: {kw}= is not supported", user_location())


def _mask(x: Any, where: Any) -> Any:
    """A reduction's where= mask as booleans of x's shape (None: every element counts)."""
    if where is None or where is True:
        return None
    m = astype(_asarr(where), np.bool_)
    try:
        ok = np.broadcast_shapes(tuple(m.shape), tuple(x.shape)) == tuple(x.shape)
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(
            f"where= mask of shape {tuple(m.shape)} does not broadcast to the operand's "
            f"shape {tuple(x.shape)}",
            user_location(),
        )
    return m


def _fill_unmasked(x: Any, m: Any, value: Any) -> Any:
    """x where the mask holds, `value` (in x's dtype) elsewhere."""
    return x if m is None else bind("where", broadcast_to(m, x.shape), x, _fill(x, value))


def _fill(x: Any, value: Any) -> Any:
    return np.asarray(value).astype(x.dtype) if np.ndim(value) == 0 else astype(value, x.dtype)


def _accumulation(op: str, name: str):
    """np.sum / np.prod: small integer and boolean operands accumulate in 64 bits, as NumPy.
    where= leaves masked-out elements at the identity; initial= joins the result."""
    identity, combine = (0, "add") if op == "reduce_sum" else (1, "mul")

    def fn(
        x: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = None,
        where: Any = None,
    ) -> Any:
        _no_extras(name, out)
        x = _asarr(x)
        x = astype(x, dtype if dtype is not None else _sum_dtype(x))
        x = _fill_unmasked(x, _mask(x, where), identity)
        r = bind(op, x, axes=_norm_axes(x, axis, name), keepdims=bool(keepdims))
        return r if initial is None else bind(combine, r, _fill(r, initial))

    fn.__name__ = name
    return fn


sum = _accumulation("reduce_sum", "sum")
prod = _accumulation("reduce_prod", "prod")


def _extremum(op: str, name: str):
    """np.max / np.min. There is no identity, so where= needs initial= (as in NumPy), which
    then stands in for masked-out elements and is also the result of an empty reduction."""
    combine = "maximum" if op == "reduce_max" else "minimum"

    def fn(
        x: Any,
        axis: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = None,
        where: Any = None,
    ) -> Any:
        _no_extras(name, out)
        x = _asarr(x)
        m = _mask(x, where)
        if m is not None and initial is None:
            raise ShapeError(
                f"np.{name}: where= needs initial= (the reduction has no identity to give "
                "masked-out elements)",
                user_location(),
            )
        axes = _norm_axes(x, axis, name)
        shape = registry.reduced_shape(tuple(x.shape), axes, bool(keepdims))
        if initial is not None and _count(x, axes) == 0:
            return broadcast_to(_fill(x, initial), shape)
        x = _fill_unmasked(x, m, initial)
        r = bind(op, x, axes=axes, keepdims=bool(keepdims))
        return r if initial is None else bind(combine, r, _fill(r, initial))

    fn.__name__ = name
    return fn


max = amax = _extremum("reduce_max", "max")
min = amin = _extremum("reduce_min", "min")


def ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """Peak to peak, max - min over axis (ties at either end share the gradient).

    Example:
        >>> gnp.ptp(np.array([[1.0, 4.0], [2.0, 3.0]]), axis=1)
        array([3., 1.])
    """
    _no_extras("ptp", out)
    a = _asarr(a)
    axes = _norm_axes(a, axis, "ptp")
    return subtract(max(a, axes, keepdims=keepdims), min(a, axes, keepdims=keepdims))


def _logical_reduction(
    red: Callable, identity: bool, x: Any, axis: Any, out: Any, keepdims: Any, where: Any
) -> Any:
    """np.any / np.all: masked-out elements and empty reductions give the identity."""
    _no_extras("any" if identity is False else "all", out)
    x = astype(_asarr(x), np.bool_)
    x = _fill_unmasked(x, _mask(x, where), identity)
    empty = _count(x, _norm_axes(x, axis, "any" if identity is False else "all")) == 0
    return red(x, axis=axis, out=out, keepdims=keepdims, initial=identity if empty else None)


def any(
    x: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    return _logical_reduction(max, False, x, axis, out, keepdims, where)


def all(
    x: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    return _logical_reduction(min, True, x, axis, out, keepdims, where)


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
    _no_extras("mean", out)
    x = _asarr(x)
    out_dt = None
    if dtype is not None:
        x = astype(x, dtype)
    elif x.dtype.kind != "f":
        x = astype(x, np.float64)
    elif x.dtype == np.float16:  # NumPy accumulates float16 in float32
        x, out_dt = astype(x, np.float32), np.dtype(np.float16)
    axes = _norm_axes(x, axis, "mean")
    m = _mask(x, where)
    if m is not None:  # the mean of the selected elements: their sum over their count
        s = sum(x, axis=axes, keepdims=keepdims, where=m)
        n = sum(broadcast_to(m, x.shape), axis=axes, keepdims=keepdims)
        r = divide(s, astype(n, s.dtype))
        return r if out_dt is None else astype(r, out_dt)
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
    _no_extras("var", out)
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
    axes = _norm_axes(x, axis, "var")
    mask = _mask(x, where)
    if mask is not None:
        mu = globals()["mean"](x, axis=axes, keepdims=True, where=mask) if mean is None else mean
        d = x - mu
        s = sum(d * d, axis=axes, keepdims=keepdims, where=mask)
        cnt = sum(broadcast_to(mask, x.shape), axis=axes, keepdims=keepdims)
        dof = astype(cnt, s.dtype) - ddof
        return divide(
            s, globals()["where"](dof > 0, dof, 0.0)
        )  # NumPy: inf/nan when ddof >= the count
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
        _no_extras(op, out)
        x = _asarr(x)
        ax = None if axis is None else _axes(op, axis, x.ndim, single=True)[0]
        return bind(op, x, axis=ax, keepdims=bool(keepdims))

    fn.__name__ = op
    return fn


argmax = _arg("argmax")
argmin = _arg("argmin")


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) over axis, exact for any magnitude (shifted by the max)."""
    x = _float_like(x)
    axes = _norm_axes(x, axis, "logsumexp")
    m = stop_gradient(max(x, axis=axes, keepdims=True))
    m = where(isfinite(m), m, 0)  # rows of -inf give -inf, not nan
    s = sum(exp(x - m), axis=axes, keepdims=True)
    out = log(s) + m
    return out if keepdims else reshape(out, registry.reduced_shape(x.shape, axes, False))


def log_softmax(x: Any, axis: Any = -1) -> Any:
    """x - logsumexp(x), computed as (x - max) - log(sum(exp(x - max))): subtracting the max
    first keeps large logits exact (1e4 + log 2 is not representable in float32)."""
    x = _float_like(x)
    axes = _norm_axes(x, axis, "log_softmax")
    m = stop_gradient(max(x, axis=axes, keepdims=True))
    shifted = x - where(isfinite(m), m, 0)
    return shifted - log(sum(exp(shifted), axis=axes, keepdims=True))


def softmax(x: Any, axis: Any = -1) -> Any:
    """exp(x) / sum(exp(x)), computed from the max-shifted values."""
    x = _float_like(x)
    axes = _norm_axes(x, axis, "softmax")
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
    if axes is None:
        perm = tuple(range(nd))[::-1]
    else:
        perm = _axes("transpose", axes, nd, what="axes")
        if len(perm) != nd:
            raise ShapeError(
                f"transpose: axes {axes!r} do not match a {nd}-d array",
                user_location(),
            )
    if perm == tuple(range(nd)):
        return x
    return bind("transpose", x, perm=perm)


def swapaxes(x: Any, axis1: Any, axis2: Any) -> Any:
    x = _asarr(x)
    perm = list(range(x.ndim))
    a, b = _axis(x, axis1, "swapaxes", "axis1"), _axis(x, axis2, "swapaxes", "axis2")
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def moveaxis(x: Any, source: Any, destination: Any) -> Any:
    x = _asarr(x)
    src = _axes("moveaxis", source, x.ndim, what="source")
    dst = _axes("moveaxis", destination, x.ndim, what="destination")
    if len(src) != len(dst):
        raise ShapeError(
            f"moveaxis: source {source!r} and destination {destination!r} name different "
            "numbers of axes",
            user_location(),
        )
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return transpose(x, order)


def rollaxis(a: Any, axis: Any, start: Any = 0) -> Any:
    """np.rollaxis: axis moved to sit before position start (prefer moveaxis)."""
    a = _asarr(a)
    n = a.ndim
    ax = _axis(a, axis, "rollaxis")
    # start is a position between axes, so n itself is allowed: -n <= start <= n
    st = _static_int(start, "rollaxis: start")
    if not -n <= st <= n:
        raise AxisError(
            f"rollaxis: start {st} is out of bounds for a {n}-d array "
            f"(it needs {-n} <= start <= {n})",
            user_location(),
            axis=st,
            ndim=n,
        )
    st = st + n if st < 0 else st
    if ax < st:
        st -= 1
    order = [i for i in range(n) if i != ax]
    order.insert(st, ax)
    return transpose(a, order)


def broadcast_to(x: Any, shape: Any, subok: bool = False) -> Any:
    x = _asarr(x)
    shape = _shape_arg(shape)
    if tuple(shape) == tuple(x.shape):
        return x
    return bind("broadcast_to", x, shape=shape)


def expand_dims(x: Any, axis: Any) -> Any:
    x = _asarr(x)
    n_new = len(axis) if isinstance(axis, (tuple, list)) else 1
    axes = _axes("expand_dims", axis, x.ndim + n_new)
    nd = x.ndim + n_new
    it = iter(x.shape)
    return reshape(x, tuple(1 if i in axes else next(it) for i in range(nd)))


def squeeze(x: Any, axis: Any = None) -> Any:
    x = _asarr(x)
    if axis is None:
        axes = tuple(i for i, s in enumerate(x.shape) if s == 1)
    else:
        axes = _norm_axes(x, axis, "squeeze")
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
    _no_extras("concatenate", out)
    arrays = list(arrays)
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    arrays = _promote_all(arrays) if dtype is None else [astype(a, dtype) for a in arrays]
    if not arrays:
        raise ShapeError("concatenate: needs at least one array", user_location())
    (ax,) = _axes("concatenate", axis, _asarr(arrays[0]).ndim, single=True)
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
    _no_extras("stack", out)
    arrays = [_asarr(a) for a in arrays]
    if not arrays:
        raise ShapeError("stack: needs at least one array", user_location())
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(
            f"stack: all arrays must have the same shape, got {sorted(shapes)}", user_location()
        )
    ax = _axes("stack", axis, arrays[0].ndim + 1, single=True)[0]
    return concatenate([expand_dims(a, ax) for a in arrays], axis=ax, dtype=dtype)


def hstack(arrays: Sequence[Any], *, dtype: Any = None, casting: str = "same_kind") -> Any:
    arrays = [_asarr(a) for a in arrays]
    return concatenate(arrays, axis=0 if arrays[0].ndim == 1 else 1, dtype=dtype)


def vstack(arrays: Sequence[Any], *, dtype: Any = None, casting: str = "same_kind") -> Any:
    arrays = [_asarr(a) for a in arrays]
    rows = [reshape(a, (1, -1)) if a.ndim == 1 else a for a in arrays]
    return concatenate(rows, axis=0, dtype=dtype)


def flip(x: Any, axis: Any = None) -> Any:
    x = _asarr(x)
    return bind("flip", x, axes=_norm_axes(x, axis, "flip"))


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
    _no_extras("take", out)
    if mode != "raise":
        raise UnsupportedError("np.take: only mode='raise' is supported", user_location())
    a = _asarr(a)
    if axis is None:
        a, axis = ravel(a), 0
    (ax,) = _axes("take", axis, a.ndim, single=True)
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
    _no_extras("dot", out)
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
    _no_extras("outer", out)
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """Sum over the given axes of a and b, as one matmul between two reshapes."""
    dts = _resolve(np.matmul, (a, b))
    a, b = _convert(a, dts[0]), _convert(b, dts[1])
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, (bool, np.bool_)):
        # NumPy's reading: the last n axes of a with the first n of b (none for n <= 0)
        n = int(axes)
        if n > builtins.min(a.ndim, b.ndim):
            raise AxisError(
                f"tensordot: axes={n} sums over the last {n} axes of a and the first {n} of b, "
                f"but a has {a.ndim} and b has {b.ndim}",
                user_location(),
                axis=n,
                ndim=builtins.min(a.ndim, b.ndim),
            )
        ax_a = _axes("tensordot", list(range(-n, 0)), a.ndim, what="axes")
        ax_b = _axes("tensordot", list(range(n)), b.ndim, what="axes")
    else:
        try:
            spec_a, spec_b = axes
        except (TypeError, ValueError):
            raise GraphcError(
                f"tensordot: axes must be an int or a pair (axes of a, axes of b), got {axes!r}",
                user_location(),
            ) from None
        ax_a = _axes("tensordot", spec_a, a.ndim, what="axes of a")
        ax_b = _axes("tensordot", spec_b, b.ndim, what="axes of b")
        if len(ax_a) != len(ax_b):
            raise ShapeError(
                f"tensordot: {len(ax_a)} axes of a {tuple(ax_a)} but {len(ax_b)} of b "
                f"{tuple(ax_b)}; they are summed in pairs",
                user_location(),
            )
    ax_a, ax_b = list(ax_a), list(ax_b)
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


def _einsum_check(spec: Any, operands: Sequence[Any]) -> None:
    """Reject subscripts NumPy rejects, with NumPy's reasons: characters that are not letters,
    a malformed '->', operand counts and ranks that do not match, output labels that are
    repeated or appear in no input, and one label with different sizes."""
    if not isinstance(spec, str):
        raise UnsupportedError(
            "np.einsum: only the subscripts-string form einsum('ij,jk->ik', a, b) is supported",
            user_location(),
        )
    text = spec.replace(" ", "")
    lhs, arrow, out = text.partition("->")
    if "-" in lhs or ">" in lhs or (arrow and ("-" in out or ">" in out)):
        raise ShapeError(
            f"np.einsum: {spec!r} does not have a proper '->' before the output subscripts",
            user_location(),
        )
    for c in lhs + out:
        if c not in string.ascii_letters and c not in ",.":
            raise ShapeError(
                f"np.einsum: invalid subscript {c!r} in {spec!r}; subscripts must be letters",
                user_location(),
            )
    if "." in text:
        return  # '...' gets its own message from the parser
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise ShapeError(
            f"np.einsum: {spec!r} names {len(ins)} operand{'s' * (len(ins) != 1)} but "
            f"{len(operands)} {'was' if len(operands) == 1 else 'were'} given",
            user_location(),
        )
    sizes: dict[str, tuple[int, int]] = {}
    for k, (sub, x) in enumerate(zip(ins, operands, strict=True)):
        shape = tuple(np.shape(x))
        if len(sub) != len(shape):
            raise ShapeError(
                f"np.einsum: operand {k} has {len(shape)} dimension"
                f"{'s' * (len(shape) != 1)} (shape {shape}) but its subscripts {sub!r} "
                f"name {len(sub)}",
                user_location(),
            )
        for c, d in zip(sub, shape, strict=True):
            if c in sizes and sizes[c][0] != d and sizes[c][1] == k:
                raise ShapeError(
                    f"np.einsum: repeated index {c!r} of operand {k} has lengths "
                    f"{sizes[c][0]} and {d}",
                    user_location(),
                )
            if c in sizes and sizes[c][0] != d and 1 not in (sizes[c][0], d):
                raise ShapeError(
                    f"np.einsum: index {c!r} has size {sizes[c][0]} in operand {sizes[c][1]} "
                    f"but {d} in operand {k}",
                    user_location(),
                )
            if c not in sizes or sizes[c][0] == 1:  # a length of 1 broadcasts, as in NumPy
                sizes[c] = (d, k)
    if arrow:
        for c in out:
            if out.count(c) > 1:
                raise ShapeError(
                    f"np.einsum: output subscript {c!r} appears more than once in {spec!r}",
                    user_location(),
                )
            if c not in sizes:
                raise ShapeError(
                    f"np.einsum: output subscript {c!r} appears in no input of {spec!r}",
                    user_location(),
                )


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
    unknown = sorted(set(kwargs) - {"out", "dtype", "order", "casting", "optimize"})
    if unknown:  # order, casting and optimize do not change the values
        raise ArgumentError(
            f"np.einsum: got an unexpected keyword argument {unknown[0]!r}", user_location()
        )
    _einsum_check(spec, operands)
    ins, out_s = _einsum_parse(spec, len(operands))
    dtype = kwargs.get("dtype")
    ops = _promote_all(operands) if dtype is None else [astype(o, dtype) for o in operands]
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


def _axis(x: Any, axis: Any, name: str, what: str = "axis") -> int:
    """One axis of x, made non-negative (checked by `_axes`)."""
    return _axes(name, axis, x.ndim, what=what, single=True)[0]


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
    ax1, ax2 = _axis(a, axis1, "diagonal", "axis1"), _axis(a, axis2, "diagonal", "axis2")
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
    axes = _norm_axes(a, axis, "average")
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
            given = list(_axes("average", axis, a.ndim))
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
        axes = _axes("norm", axis, nd)
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
    _no_extras("round", out)
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
    if axis is None:
        return x.size
    return int(np.prod([x.shape[a] for a in _axes("size", axis, x.ndim)], dtype=np.int64))


def result_type(*args: Any) -> np.dtype:
    return np.result_type(*[_asarr(a).dtype if isinstance(a, Tracer) else a for a in args])


_FUNCTIONS: dict[Callable, Callable] = {
    np.sum: sum,
    np.prod: prod,
    np.max: max,
    np.amax: amax,
    np.min: min,
    np.amin: amin,
    np.ptp: ptp,
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
    np.rollaxis: rollaxis,
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
    _install_methods(T)


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
        "UnsupportedAttributeError",
        "ArgumentError",
        "api_call",
        "bind",
        "user_location",
    )
]


# ---------------------------------------------------------------------------------------------
# more of NumPy's surface: differences, padding modes, statistics, products, grids and
# np.linalg's SVD family. Compositions of the ops above, except svd (graphc/ops/decomp.py) and
# searchsorted (graphc/ops/sorting.py).

from graphc.ops.decomp import eigh_parts as _eigh_parts  # noqa: E402
from graphc.ops.decomp import qr_parts as _qr_parts  # noqa: E402
from graphc.ops.decomp import svd_parts as _svd_parts  # noqa: E402


def _einsum_prepare(spec: str, operands: Sequence[Any]) -> tuple[str, list[Any]]:
    """Rewrite an einsum with '...' or a repeated index within one operand into one that names
    every axis once per operand: '...' becomes fresh letters (operands broadcast against each
    other there), and each repeated index becomes a diagonal of the operand."""
    spec = spec.replace(" ", "")
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    ops = [_asarr(o) for o in operands]
    if len(ins) != len(ops):
        return spec, ops  # _einsum_parse reports the mismatch
    if not arrow:
        counts = {c: lhs.count(c) for c in lhs if c in string.ascii_letters}
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
        if "..." in lhs:
            out = "..." + out
    if "..." in spec:
        free = [c for c in string.ascii_letters if c not in spec]
        dims = []
        for s, x in zip(ins, ops, strict=True):
            named = len(s.replace("...", ""))
            if s.count("...") > 1 or ("..." in s and x.ndim < named):
                raise ShapeError(
                    f"einsum: operand {s!r} does not fit an array of shape {tuple(x.shape)}",
                    user_location(),
                )
            dims.append(x.ndim - named if "..." in s else 0)
        width = builtins.max(dims)
        try:
            common = np.broadcast_shapes(
                *[
                    tuple(x.shape[s.index("...") : s.index("...") + d])
                    for s, x, d in zip(ins, ops, dims, strict=True)
                    if "..." in s
                ]
            )
        except ValueError:
            raise ShapeError(
                "einsum: the axes under '...' do not broadcast together", user_location()
            ) from None
        letters = "".join(free[:width])
        for i, (s, x, d) in enumerate(zip(ins, ops, dims, strict=True)):
            if "..." not in s:
                continue
            at = s.index("...")
            want = tuple(x.shape[:at]) + tuple(common[width - d :]) + tuple(x.shape[at + d :])
            if want != tuple(x.shape):
                ops[i] = broadcast_to(x, want)
            ins[i] = s.replace("...", letters[width - d :])
        out = out.replace("...", letters)
    inputs = set("".join(ins))
    for c in out:
        if c not in inputs or out.count(c) > 1:
            raise ShapeError(
                f"einsum: output index {c!r} "
                + ("appears more than once" if c in inputs else "is not in any operand"),
                user_location(),
            )
    for i, (s, x) in enumerate(zip(ins, ops, strict=True)):
        if len(s) != x.ndim:
            raise ShapeError(
                f"einsum: operand {i} has {x.ndim} axes but {s!r} names {len(s)}",
                user_location(),
            )
        while len(set(s)) != len(s):
            c = next(c for c in s if s.count(c) > 1)
            a = s.index(c)
            b = s.index(c, a + 1)
            if x.shape[a] != x.shape[b]:
                raise ShapeError(
                    f"einsum: repeated index {c!r} of operand {i} has lengths {x.shape[a]} "
                    f"and {x.shape[b]}",
                    user_location(),
                )
            x = diagonal(x, 0, a, b)
            s = s[:a] + s[a + 1 : b] + s[b + 1 :] + c
        ins[i], ops[i] = s, x
    return ",".join(ins) + "->" + out, ops


_einsum_named = einsum


def _einsum_broadcast_ones(spec: str, operands: Sequence[Any]) -> list[Any]:
    """Operands with each axis of length 1 broadcast to its index's length in the other
    operands (NumPy's einsum broadcasts such axes)."""
    lhs = spec.replace(" ", "").partition("->")[0]
    subs = lhs.split(",")
    if "." in lhs or len(subs) != len(operands):
        return list(operands)
    size: dict[str, int] = {}
    for sub, x in zip(subs, operands, strict=True):
        for c, d in zip(sub, np.shape(x), strict=True):
            size[c] = builtins.max(size.get(c, 1), d)
    out = []
    for sub, x in zip(subs, operands, strict=True):
        want = tuple(size[c] for c in sub)
        out.append(broadcast_to(_asarr(x), want) if want != tuple(np.shape(x)) else x)
    return out


def einsum(spec: str, *operands: Any, **kwargs: Any) -> Any:  # noqa: F811
    """Einstein summation as in np.einsum, including '...' and repeated indices within one
    operand (diagonals, traces: "ii->", "ii->i", "bii->bi"), lowered to diagonals,
    transposes, reshapes, reductions and batched matmuls.

    Example:
        >>> einsum("ii->", np.eye(3))
        np.float64(3.0)
    """
    _einsum_check(spec, operands)
    operands = _einsum_broadcast_ones(spec, operands)
    spec, ops = _einsum_prepare(spec, operands)
    if ops and builtins.all(o.dtype == np.bool_ for o in ops):
        # NumPy's boolean einsum: any of the ands, i.e. a count that is not zero
        counts = _einsum_named(spec, *[astype(o, np.int64) for o in ops], **kwargs)
        return not_equal(counts, 0)
    return _einsum_named(spec, *ops, **kwargs)


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Any:
    """The n-th discrete difference along axis (booleans: not_equal, as NumPy)."""
    a = _asarr(a)
    n = _static_int(n, "diff: n")
    if n < 0:
        raise ShapeError(f"diff: order must be non-negative, got {n}", user_location())
    if a.ndim == 0:
        raise ShapeError("diff: needs an array of at least 1 dimension", user_location())
    ax = _axis(a, axis, "diff")
    parts = []
    for extra in (prepend, a, append):
        if extra is None:
            continue
        e = _asarr(extra)
        if e.ndim == 0:
            shape = list(a.shape)
            shape[ax] = 1
            e = broadcast_to(e, tuple(shape))
        parts.append(e)
    if len(parts) > 1:
        a = concatenate(parts, axis=ax)
    for _ in range(n):
        m = a.shape[ax]
        hi, lo = (
            _slice_axis(a, ax, builtins.min(1, m), m),
            _slice_axis(a, ax, 0, builtins.max(m - 1, 0)),
        )
        a = not_equal(hi, lo) if a.dtype == np.bool_ else subtract(hi, lo)
    return a


def ediff1d(ary: Any, to_end: Any = None, to_begin: Any = None) -> Any:
    """Differences between consecutive elements of the flattened array, with values added
    before and after."""
    ary = ravel(_asarr(ary))
    if ary.dtype == np.bool_:
        raise DTypeError(
            "np.ediff1d: booleans cannot be subtracted (NumPy rejects them); use np.diff, "
            "which compares neighbours, or cast to a number type first",
            user_location(),
        )
    parts = [diff(ary)]
    if to_begin is not None:
        parts.insert(0, astype(ravel(_asarr(to_begin)), ary.dtype))
    if to_end is not None:
        parts.append(astype(ravel(_asarr(to_end)), ary.dtype))
    return concatenate(parts) if len(parts) > 1 else parts[0]


def sinc(x: Any) -> Any:
    """sin(pi x) / (pi x), 1 at 0. Near 0 a Taylor polynomial replaces the quotient, so every
    derivative is right there (the quotient's second derivative cancels catastrophically)."""
    x = _asarr(x)
    x = x if x.dtype.kind == "f" else astype(x, np.float64)  # as NumPy's where(x == 0, 1e-20, x)
    y = x * np.pi
    small = absolute(y) < 1e-3
    ys = where(small, 1.0, y)
    y2 = y * y
    return where(small, 1 - y2 / 6 + y2 * y2 / 120, sin(ys) / ys)


_pad_constant = pad
_PAD_INDEXED = ("edge", "reflect", "symmetric", "wrap")
_PAD_STAT = {"maximum": "max", "minimum": "min", "mean": "mean", "median": "median"}


def _pad_widths(a: Any, width: Any, what: str) -> list[tuple[int, int]]:
    if isinstance(width, Tracer):
        raise UnsupportedError(f"np.pad: {what} must be Python ints, not traced", user_location())
    try:
        w = np.asarray(width)
    except ValueError:
        raise ShapeError(
            f"np.pad: {what} {width!r} is not a regular array", user_location()
        ) from None
    if w.dtype.kind not in "iu":
        raise ArgumentError(f"np.pad: {what} must be integers, got {width!r}", user_location())
    try:
        w = np.broadcast_to(w.astype(np.int64), (a.ndim, 2))
    except ValueError:
        raise ArgumentValueError(
            f"np.pad: {what} {width!r} does not fit an array of {a.ndim} dimensions",
            user_location(),
        ) from None
    if np.any(w < 0):
        raise ArgumentValueError(
            f"np.pad: {what} must not be negative, got {width!r}", user_location()
        )
    return [(int(lo), int(hi)) for lo, hi in w]


def pad(x: Any, pad_width: Any, mode: Any = "constant", **kwargs: Any) -> Any:  # noqa: F811
    """np.pad. 'constant' (one value, or values per axis and side), 'edge', 'reflect',
    'symmetric' and 'wrap' (a gather along each axis with NumPy's own index map, so the gradient
    sums the copies), 'maximum', 'minimum', 'mean', 'median' (optionally over stat_length),
    'linear_ramp' and 'empty' (zeros).

    Example:
        >>> pad(np.array([1.0, 2.0, 3.0]), 2, mode="reflect")
        array([3., 2., 1., 2., 3., 2., 1.])
    """
    x = _asarr(x)
    if callable(mode):
        raise UnsupportedError("np.pad: a function as mode is not supported", user_location())
    allowed = {
        "constant": {"constant_values"},
        "empty": set(),
        "edge": set(),
        "wrap": set(),
        "reflect": {"reflect_type"},
        "symmetric": {"reflect_type"},
        "linear_ramp": {"end_values"},
        **{m: {"stat_length"} for m in _PAD_STAT},
    }
    if mode not in allowed:
        raise GraphcError(f"np.pad: mode {mode!r} is not supported", user_location())
    extra = set(kwargs) - allowed[mode]
    if extra:
        raise GraphcError(
            f"np.pad: unsupported keyword(s) {sorted(extra)} for mode {mode!r}", user_location()
        )
    widths = _pad_widths(x, pad_width, "pad_width")
    if x.dtype == np.bool_ and kwargs.get("reflect_type", "even") == "odd":
        raise DTypeError(
            "np.pad: reflect_type='odd' of a boolean array is not supported", user_location()
        )
    if mode == "linear_ramp" and x.dtype == np.bool_:
        raise DTypeError(
            "np.pad: mode='linear_ramp' of a boolean array is not supported", user_location()
        )
    if mode == "constant":
        cv = kwargs.get("constant_values", 0)
        if np.ndim(cv) == 0 and not isinstance(cv, Tracer):
            return _pad_constant(x, pad_width, "constant", cv)
    if mode == "empty":
        return _pad_constant(x, pad_width, "constant", 0)
    if mode in ("reflect", "symmetric") and kwargs.get("reflect_type", "even") != "even":
        if kwargs["reflect_type"] != "odd":
            raise GraphcError("np.pad: reflect_type must be 'even' or 'odd'", user_location())
    for ax, (lo, hi) in enumerate(widths):
        if lo == 0 and hi == 0:
            continue
        n = x.shape[ax]
        if mode in _PAD_INDEXED:
            if n == 0:
                raise ShapeError(
                    f"np.pad: can't extend the empty axis {ax} with mode {mode!r}",
                    user_location(),
                )
            if kwargs.get("reflect_type", "even") == "odd":
                # odd reflections are linear in x, but with repeated reflections a padded value
                # mixes several elements: NumPy's own pad of the identity gives the matrix
                mat = np.pad(np.eye(n), ((lo, hi), (0, 0)), mode=mode, reflect_type="odd")
                work = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
                moved = moveaxis(astype(x, work), ax, -1)
                body = moveaxis(matmul(moved, mat.T.astype(work)), -1, ax)
                if x.dtype.kind in "iu":
                    body = astype(rint(body), x.dtype)
            else:
                idx = np.pad(np.arange(n, dtype=np.int64), (lo, hi), mode=mode)
                body = bind("gather", x, idx, axis=ax)
            x = body
            continue
        sides = []
        for side, w in ((0, lo), (1, hi)):
            shape = list(x.shape)
            shape[ax] = w
            if mode == "constant":
                v = _pad_side_value(kwargs.get("constant_values", 0), ax, side, x.ndim)
                sides.append(broadcast_to(astype(v, x.dtype), tuple(shape)))
            elif mode == "linear_ramp":
                end = astype(
                    _pad_side_value(kwargs.get("end_values", 0), ax, side, x.ndim), x.dtype
                )
                edge = _slice_axis(x, ax, 0, 1) if side == 0 else _slice_axis(x, ax, n - 1, n)
                # NumPy's ramp: from the end value towards the edge, excluding the edge
                t = np.arange(w, dtype=np.float64) / builtins.max(w, 1)
                if side == 1:
                    t = t[::-1]
                tshape = [1] * x.ndim
                tshape[ax] = w
                t = t.reshape(tshape)
                if x.dtype.kind == "f":
                    t = t.astype(x.dtype)
                if x.dtype.kind in "iub":
                    ramp = floor(astype(end, np.float64) + astype(edge - end, np.float64) * t)
                else:
                    ramp = end + (edge - end) * t
                sides.append(astype(ramp, x.dtype))
            else:
                length = kwargs.get("stat_length")
                k = n if length is None else _pad_side_value(length, ax, side, x.ndim)
                k = builtins.min(_static_int(k, "np.pad: stat_length"), n)
                if k <= 0 or n == 0:
                    raise ShapeError(
                        f"np.pad: no values to compute the {mode} of along axis {ax}",
                        user_location(),
                    )
                part = _slice_axis(x, ax, 0, k) if side == 0 else _slice_axis(x, ax, n - k, n)
                stat = globals()[_PAD_STAT[mode]](part, axis=ax, keepdims=True)
                if x.dtype.kind in "iu":
                    stat = astype(round(stat), x.dtype)
                sides.append(broadcast_to(astype(stat, x.dtype), tuple(shape)))
        x = concatenate([sides[0], x, sides[1]], axis=ax)
    return x


def _pad_side_value(values: Any, ax: int, side: int, nd: int) -> Any:
    """One axis' one side of a pad-values spec (a scalar, (before, after), or per axis)."""
    if isinstance(values, Tracer):
        if values.ndim == 0:
            return values
        raise UnsupportedError("np.pad: traced per-axis values are not supported", user_location())
    v = np.asarray(values)
    try:
        return np.broadcast_to(v, (nd, 2))[ax, side]
    except ValueError:
        raise ShapeError(
            f"np.pad: values {values!r} do not fit an array of {nd} dimensions", user_location()
        ) from None


# -- nan-aware reductions and statistics ------------------------------------------------------


def _nan_masked(a: Any, fill: float) -> tuple[Any, Any]:
    """a with NaNs replaced by fill, and the NaN mask (None for non-float arrays)."""
    a = _asarr(a)
    if a.dtype.kind != "f":
        return a, None
    m = isnan(a)
    return where(m, np.asarray(fill, a.dtype), a), m


def nansum(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    """sum treating NaNs as 0."""
    _no_extras("nansum", out, kw.get("where"), kw.get("initial"))
    return sum(_nan_masked(a, 0.0)[0], axis=axis, dtype=dtype, keepdims=keepdims)


def nanprod(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    """prod treating NaNs as 1."""
    _no_extras("nanprod", out, kw.get("where"), kw.get("initial"))
    return prod(_nan_masked(a, 1.0)[0], axis=axis, dtype=dtype, keepdims=keepdims)


def _nan_extremum(name: str, fill: float, red: Callable):
    def fn(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Any:
        _no_extras(name, out, kw.get("where"), kw.get("initial"))
        v, m = _nan_masked(a, fill)
        r = red(v, axis=axis, keepdims=keepdims)
        if m is None:
            return r
        # a slice of NaNs only gives NaN, as NumPy (which also warns)
        return where(all(m, axis=axis, keepdims=keepdims), np.asarray(np.nan, r.dtype), r)

    fn.__name__ = name
    fn.__doc__ = f"{red.__name__} ignoring NaNs (NaN for slices of NaNs only)."
    return fn


nanmax = _nan_extremum("nanmax", -np.inf, max)
nanmin = _nan_extremum("nanmin", np.inf, min)


def _nan_arg(name: str, fill: float, red: Callable):
    def fn(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        v, m = _nan_masked(a, fill)
        r = red(v, axis=axis, keepdims=keepdims)
        if m is None:
            return r
        # NumPy raises for a slice of NaNs only, which compiled code cannot; -1 marks it
        if axis is None:
            dead = all(m)
        else:
            dead = all(m, axis=axis, keepdims=keepdims)
        return where(dead, np.asarray(-1, r.dtype), r)

    fn.__name__ = name
    fn.__doc__ = f"{red.__name__} ignoring NaNs; -1 for slices of NaNs only."
    return fn


nanargmax = _nan_arg("nanargmax", -np.inf, argmax)
nanargmin = _nan_arg("nanargmin", np.inf, argmin)


def _nan_count(m: Any, a: Any, axis: Any, keepdims: bool) -> Any:
    if m is None:
        axes = _norm_axes(a, axis, "nan reduction")
        return np.asarray(_count(a, axes), dtype=np.int64)
    return sum(logical_not(m), axis=axis, keepdims=keepdims)


def nanmean(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    """mean of the non-NaN values (NaN where there are none)."""
    _no_extras("nanmean", out, kw.get("where"))
    a = _asarr(a)
    if a.dtype.kind != "f":
        return mean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    v, m = _nan_masked(a, 0.0)
    if dtype is not None:
        v = astype(v, dtype)
    s = sum(v, axis=axis, keepdims=keepdims)
    return s / astype(_nan_count(m, a, axis, keepdims), s.dtype)


def nanvar(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kw: Any,
) -> Any:
    """var of the non-NaN values (NaN where fewer than ddof + 1 remain)."""
    _no_extras("nanvar", out, kw.get("where"))
    a = _asarr(a)
    if a.dtype.kind != "f":
        return var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    v, m = _nan_masked(a, 0.0)
    if dtype is not None:
        v = astype(v, dtype)
    cnt = astype(_nan_count(m, a, axis, True), v.dtype)
    mu = sum(v, axis=axis, keepdims=True) / cnt
    d = where(m, np.zeros((), v.dtype), v - mu)
    s = sum(d * d, axis=axis, keepdims=keepdims)
    dof = astype(_nan_count(m, a, axis, keepdims), v.dtype) - ddof
    ok = dof > 0
    return where(ok, s / where(ok, dof, 1), np.asarray(np.nan, v.dtype))


def nanstd(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kw: Any,
) -> Any:
    """std of the non-NaN values."""
    return sqrt(nanvar(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kw))


def nancumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """cumsum treating NaNs as 0."""
    return cumsum(_nan_masked(a, 0.0)[0], axis=axis, dtype=dtype, out=out)


def nancumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """cumprod treating NaNs as 1."""
    return cumprod(_nan_masked(a, 1.0)[0], axis=axis, dtype=dtype, out=out)


_QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(name: str, a: Any, q: Any, axis: Any, method: str, keepdims: bool, nan: bool) -> Any:
    """Quantiles from a sort along the reduced axes: the two neighbouring order statistics,
    interpolated as NumPy's methods do; the gradient flows to those two elements."""
    if isinstance(q, Tracer):
        raise UnsupportedError(f"np.{name}: q must be a constant, not traced", user_location())
    if method not in _QUANTILE_METHODS:
        raise UnsupportedError(
            f"np.{name}: method={method!r} is not supported (supported: "
            f"{', '.join(_QUANTILE_METHODS)})",
            user_location(),
        )
    try:
        qa = np.asarray(q, dtype=np.float64)
    except (TypeError, ValueError):
        raise GraphcError(f"np.{name}: q must be numbers, got {q!r}", user_location()) from None
    if np.any(~((qa >= 0) & (qa <= 1))):
        what = (
            "Percentiles must be in the range [0, 100]"
            if "percentile" in name
            else ("Quantiles must be in the range [0, 1]")
        )
        raise GraphcError(f"np.{name}: {what}, got {q!r}", user_location())
    a = _asarr(a)
    jumps = method in ("lower", "higher", "nearest")
    out_dt = a.dtype
    if not jumps:
        if a.dtype == np.bool_ and "median" not in name:
            raise DTypeError(
                f"np.{name}: boolean arrays cannot be interpolated (NumPy rejects them); cast "
                "to a number type first",
                user_location(),
            )
        if a.dtype.kind != "f":
            a = astype(a, np.float64)
        # NumPy's promotion of a with q (a Python float q is weak)
        qt = q if isinstance(q, (int, float)) else np.asarray(q).dtype
        out_dt = np.result_type(a.dtype, qt)
    scalar_in = a.ndim == 0
    if scalar_in and axis is None:
        a = reshape(a, (1,))
    axes = _norm_axes(a, axis, name)
    if not axes:
        raise ShapeError(f"np.{name}: needs at least one axis to reduce", user_location())
    if builtins.any(a.shape[i] == 0 for i in axes):
        if jumps or not (nan or "median" in name):
            raise ShapeError(f"np.{name}: cannot take quantiles of an empty axis", user_location())
        # NumPy: NaN (with a warning) for the median (and nan-quantiles) of nothing
        shape = qa.shape + registry.reduced_shape(tuple(a.shape), axes, bool(keepdims))
        return np.full(shape, np.nan, dtype=out_dt)
    rest = [i for i in range(a.ndim) if i not in axes]
    x = transpose(a, rest + list(axes))
    n = _count(a, axes)
    x = reshape(x, tuple(a.shape[i] for i in rest) + (n,))
    s = sort(x, axis=-1)
    qf = qa.reshape(qa.shape + (1,) * len(rest) + (1,))
    nan = nan and a.dtype.kind == "f"
    if nan:
        cnt = sum(logical_not(isnan(x)), axis=-1, keepdims=True)
        pos = astype(cnt - 1, np.float64) * qf  # (q..., rest..., 1)
    else:
        pos = np.asarray((n - 1) * qf)
    lo_f = floor(pos)
    frac = pos - lo_f
    if method == "lower":
        hi_f, frac = lo_f, frac * 0
    elif method == "higher":
        lo_f = ceil(pos)
        hi_f, frac = lo_f, frac * 0
    elif method == "nearest":
        lo_f = rint(pos)  # NumPy rounds half to even here
        hi_f, frac = lo_f, frac * 0
    else:
        hi_f = lo_f + 1
        if method == "midpoint":
            frac = (
                where(frac > 0, 0.5, frac)
                if isinstance(frac, Tracer)
                else np.where(frac > 0, 0.5, frac)
            )
    lo = clip(astype(lo_f, np.int64), 0, n - 1)
    hi = clip(astype(hi_f, np.int64), 0, n - 1)
    if nan:  # never read the NaNs sorted to the end: lerp with NaN * 0 is NaN
        last = maximum(cnt - 1, 0)
        lo, hi = minimum(lo, last), minimum(hi, last)
    lead = qa.ndim
    sb = broadcast_to(s, qa.shape + tuple(s.shape)) if lead else s
    shape = qa.shape + tuple(s.shape[:-1]) + (1,)
    v_lo = take_along_axis(sb, broadcast_to(lo, shape), axis=-1)
    v_hi = take_along_axis(sb, broadcast_to(hi, shape), axis=-1)
    if jumps:
        r = v_lo
    else:
        t = astype(frac, out_dt)
        d = astype(v_hi - v_lo, out_dt)
        v_lo, v_hi = astype(v_lo, out_dt), astype(v_hi, out_dt)
        # NumPy's lerp: from the nearer end, so t = 1 gives the upper value exactly
        r = where(t >= 0.5, v_hi - d * (1 - t), v_lo + d * t)
    r = reshape(r, tuple(r.shape[:-1]))
    if scalar_in and axis is None:
        return r
    if a.dtype.kind == "f":
        bad = all(isnan(x), axis=-1) if nan else any(isnan(x), axis=-1)
        r = where(bad, np.asarray(np.nan, r.dtype), r)
    if keepdims:
        r = reshape(r, qa.shape + tuple(1 if i in axes else a.shape[i] for i in range(a.ndim)))
    return r


def _per_cent(q: Any) -> Any:
    """q / 100, a Python float for a Python number (NumPy treats those as weak)."""
    return (
        q / 100
        if isinstance(q, (int, float)) and not isinstance(q, bool)
        else np.true_divide(q, 100)
    )


def quantile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    """q-th quantiles along axis (NaN where a slice holds NaN), by sorting.

    Example:
        >>> quantile(np.array([3.0, 1.0, 2.0, 4.0]), 0.5)
        np.float64(2.5)
    """
    _no_extras("quantile", out, weights)
    return _quantile("quantile", a, q, axis, interpolation or method, keepdims, False)


def percentile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    """q-th percentiles along axis, by sorting."""
    _no_extras("percentile", out, weights)
    return _quantile("percentile", a, _per_cent(q), axis, interpolation or method, keepdims, False)


def median(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Any:
    """The median along axis, by sorting."""
    _no_extras("median", out)
    return _quantile("median", a, 0.5, axis, "linear", keepdims, False)


def nanquantile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    """quantile of the non-NaN values (NaN for slices of NaNs only)."""
    _no_extras("nanquantile", out, weights)
    return _quantile("nanquantile", a, q, axis, interpolation or method, keepdims, True)


def nanpercentile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    """percentile of the non-NaN values."""
    _no_extras("nanpercentile", out, weights)
    return _quantile(
        "nanpercentile", a, _per_cent(q), axis, interpolation or method, keepdims, True
    )


def nanmedian(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Any:
    """median of the non-NaN values."""
    _no_extras("nanmedian", out)
    return _quantile("nanmedian", a, 0.5, axis, "linear", keepdims, True)


def cov(
    m: Any,
    y: Any = None,
    rowvar: bool = True,
    bias: bool = False,
    ddof: Any = None,
    fweights: Any = None,
    aweights: Any = None,
    *,
    dtype: Any = None,
) -> Any:
    """Covariance matrix of the variables in m's rows (columns with rowvar=False).

    Example:
        >>> cov(np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]))
        array([[ 1., -1.],
               [-1.,  1.]])
    """
    if fweights is not None or aweights is not None:
        raise UnsupportedError("np.cov: fweights= and aweights= are not supported", user_location())
    x = _asarr(m)
    if x.ndim > 2:
        raise ShapeError(
            f"np.cov: m has more than 2 dimensions ({tuple(x.shape)})", user_location()
        )
    dt = np.result_type(x.dtype, np.float64) if dtype is None else np.dtype(dtype)
    x = astype(atleast_2d(x), dt)
    if not rowvar and x.shape[0] != 1:
        x = transpose(x)
    if y is not None:
        yy = astype(atleast_2d(_asarr(y)), dt)
        if not rowvar and yy.shape[0] != 1:
            yy = transpose(yy)
        x = concatenate([x, yy], axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    n = x.shape[1] - _static_int(ddof, "np.cov: ddof")
    xc = x - mean(x, axis=1, keepdims=True)
    c = matmul(xc, transpose(xc))
    c = c * (1.0 / n) if n > 0 else c / 0.0
    return squeeze(c)


def corrcoef(x: Any, y: Any = None, rowvar: bool = True, *, dtype: Any = None) -> Any:
    """Pearson correlation coefficients, clipped to [-1, 1] as NumPy."""
    c = cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return c / c
    d = sqrt(diagonal(c))
    c = c / reshape(d, (-1, 1)) / reshape(d, (1, -1))
    return clip(c, -1, 1)


def _windows(a: Any, width: int) -> Any:
    """Sliding windows (len(a) - width + 1, width) of a 1-d array: one gather."""
    n = a.shape[0]
    idx = np.arange(n - width + 1)[:, None] + np.arange(width)[None, :]
    return bind("gather", a, idx.astype(np.int64), axis=0)


def _convolve(name: str, a: Any, v: Any, mode: str) -> Any:
    dts = _resolve(np.multiply, (a, v))
    a, v = _convert(a, dts[0]), _convert(v, dts[1])
    if a.ndim != 1 or v.ndim != 1:
        raise ShapeError(
            f"np.{name}: needs 1-d arrays, got shapes {tuple(a.shape)} and {tuple(v.shape)}",
            user_location(),
        )
    n, m = a.shape[0], v.shape[0]
    if n == 0 or m == 0:
        raise ShapeError(f"np.{name}: an input is empty", user_location())
    if mode not in ("full", "same", "valid"):
        raise GraphcError(
            f"np.{name}: mode must be 'full', 'same' or 'valid', got {mode!r}", user_location()
        )
    boolean = a.dtype == np.bool_
    if boolean:
        a, v = astype(a, np.int64), astype(v, np.int64)
    ap = pad(a, (m - 1, m - 1))
    full = matmul(_windows(ap, m), flip(v))
    if boolean:
        full = not_equal(full, 0)
    short, long_ = builtins.min(n, m), builtins.max(n, m)
    if mode == "full":
        return full
    if mode == "same":
        start = (short - 1) // 2
        return _slice_axis(full, 0, start, start + long_)
    return _slice_axis(full, 0, short - 1, long_)


def convolve(a: Any, v: Any, mode: str = "full") -> Any:
    """Discrete 1-d convolution (as np.convolve): sliding windows times the flipped kernel."""
    return _convolve("convolve", a, v, mode)


def correlate(a: Any, v: Any, mode: str = "valid") -> Any:
    """Discrete 1-d cross-correlation (as np.correlate): a convolution with v reversed."""
    return _convolve("correlate", a, flip(_asarr(v)), mode)


def searchsorted(a: Any, v: Any, side: str = "left", sorter: Any = None) -> Any:
    """Indices where v's elements would go into the sorted 1-d a (no gradient)."""
    a, v = _asarr(a), _asarr(v)
    if side not in ("left", "right"):
        raise GraphcError(
            f"np.searchsorted: side must be 'left' or 'right', got {side!r}", user_location()
        )
    if a.ndim != 1:
        raise ShapeError(
            f"np.searchsorted: a must be 1-d, got shape {tuple(a.shape)}", user_location()
        )
    if sorter is not None:
        a = take(a, sorter)
    a, v = _promote_all([a, v])
    return bind("searchsorted", a, v, side=side)


def interp(
    x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None, period: Any = None
) -> Any:
    """Piecewise-linear interpolation of (xp, fp) at x, as np.interp (xp increasing);
    differentiable in x, xp and fp.

    Example:
        >>> interp(np.array([0.5, 2.0]), np.array([0.0, 1.0]), np.array([0.0, 10.0]))
        array([ 5., 10.])
    """
    if period is not None:
        raise UnsupportedError("np.interp: period= is not supported", user_location())
    x, xp, fp = _asarr(x), _asarr(xp), _asarr(fp)
    if xp.ndim != 1 or fp.ndim != 1 or xp.shape != fp.shape:
        raise ShapeError(
            f"np.interp: xp and fp must be 1-d of one length, got {tuple(xp.shape)} and "
            f"{tuple(fp.shape)}",
            user_location(),
        )
    if xp.shape[0] == 0:
        raise ShapeError("np.interp: xp and fp must not be empty", user_location())
    dt = np.result_type(x.dtype, xp.dtype, fp.dtype, np.float64)
    x, xp, fp = astype(x, dt), astype(xp, dt), astype(fp, dt)
    k = xp.shape[0]
    lo_v, hi_v = fp[0], fp[k - 1]
    if k == 1:
        y = broadcast_to(fp[0], x.shape)
    else:
        j = clip(searchsorted(xp, x, side="right") - 1, 0, k - 2)
        x0, x1 = take(xp, j), take(xp, j + 1)
        f0, f1 = take(fp, j), take(fp, j + 1)
        y = f0 + (f1 - f0) / (x1 - x0) * (x - x0)
        y = where(x == xp[k - 1], hi_v, y)
    left_v = lo_v if left is None else left
    right_v = hi_v if right is None else right
    y = where(x < xp[0], left_v, y)
    y = where(x > xp[k - 1], right_v, y)
    return astype(y, dt)


def trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> Any:
    """The trapezoidal rule along axis."""
    y = _asarr(y)
    ax = _axis(y, axis, "trapezoid")
    n = y.shape[ax]
    if x is None:
        d = dx
    else:
        x = _asarr(x)
        d = diff(x, axis=ax if x.ndim > 1 else 0)
        if x.ndim == 1:
            shape = [1] * y.ndim
            shape[ax] = d.shape[0]
            d = reshape(d, tuple(shape))
    mid = _slice_axis(y, ax, 1, n) + _slice_axis(y, ax, 0, builtins.max(n - 1, 0))
    return sum(d * mid / 2.0, axis=ax)


def nan_to_num(
    x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None
) -> Any:
    """NaN -> nan, +inf -> posinf (default: the largest finite value), -inf -> neginf."""
    x = _asarr(x)
    if x.dtype.kind != "f":
        return x
    info = np.finfo(x.dtype)
    hi = info.max if posinf is None else posinf
    lo = info.min if neginf is None else neginf
    dt = x.dtype
    x = where(isnan(x), np.asarray(nan, dt), x)
    x = where(x == np.inf, np.asarray(hi, dt), x)
    return where(x == -np.inf, np.asarray(lo, dt), x)


def isclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Any:
    """|a - b| <= atol + rtol |b| elementwise (infinities equal only to themselves)."""
    a, b = _promote_all([_asarr(a), _asarr(b)])
    if a.dtype.kind not in "f":
        a, b = astype(a, np.float64), astype(b, np.float64)
    fin = isfinite(a) & isfinite(b)
    d = absolute(a - b)
    close = where(fin, d <= atol + rtol * absolute(b), a == b)
    if equal_nan:
        close = close | (isnan(a) & isnan(b))
    return close


def polyval(p: Any, x: Any) -> Any:
    """The polynomial with coefficients p (highest power first) at x, by Horner's rule."""
    p = _asarr(p)
    if p.ndim != 1:
        raise ShapeError(f"np.polyval: p must be 1-d, got shape {tuple(p.shape)}", user_location())
    y = zeros_like(_asarr(x)) * p[0] if p.shape[0] else zeros_like(_asarr(x))
    for i in range(p.shape[0]):
        y = y * x + p[i]
    return y


def count_nonzero(a: Any, axis: Any = None, *, keepdims: bool = False) -> Any:
    """The number of nonzero elements along axis (int64)."""
    return sum(astype(_asarr(a), np.bool_), axis=axis, keepdims=keepdims)


def cumulative_sum(
    x: Any,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    include_initial: bool = False,
) -> Any:
    """np.cumulative_sum: cumsum, optionally starting with 0."""
    return _cumulative("cumulative_sum", cumsum, 0, x, axis, dtype, out, include_initial)


def cumulative_prod(
    x: Any,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    include_initial: bool = False,
) -> Any:
    """np.cumulative_prod: cumprod, optionally starting with 1."""
    return _cumulative("cumulative_prod", cumprod, 1, x, axis, dtype, out, include_initial)


def _cumulative(
    name: str,
    fn: Callable,
    init: int,
    x: Any,
    axis: Any,
    dtype: Any,
    out: Any,
    include_initial: bool,
) -> Any:
    x = _asarr(x)
    if axis is None:
        if x.ndim > 1:
            raise ShapeError(
                f"np.{name}: axis is required for arrays of more than 1 dimension", user_location()
            )
        axis = 0
    r = fn(x, axis=axis, dtype=dtype, out=out)
    if include_initial:
        ax = _axis(r, axis, name)
        shape = list(r.shape)
        shape[ax] = 1
        r = concatenate([broadcast_to(np.asarray(init, r.dtype), tuple(shape)), r], axis=ax)
    return r


def real(x: Any) -> Any:
    """The real part: the array itself (graphc has no complex numbers)."""
    return _asarr(x)


def imag(x: Any) -> Any:
    """The imaginary part: zeros (graphc has no complex numbers)."""
    return zeros_like(_asarr(x))


def conjugate(x: Any, **kw: Any) -> Any:
    """The complex conjugate: the array itself (graphc has no complex numbers)."""
    return _asarr(x)


conj = conjugate


def signbit(x: Any) -> Any:
    """True where the sign bit is set (also -0.0 and NaNs with the bit)."""
    x = _float_like(x)
    return less(copysign(np.ones((), x.dtype), x), 0)


def fix(x: Any, out: Any = None) -> Any:
    """Round towards zero."""
    return trunc(x)


def float_power(x: Any, y: Any) -> Any:
    """x ** y in at least float64."""
    return power(astype(_asarr(x), np.result_type(_asarr(x).dtype, np.float64)), y)


def isposinf(x: Any) -> Any:
    return equal(x, np.inf)


def isneginf(x: Any) -> Any:
    return equal(x, -np.inf)


def isreal(x: Any) -> Any:
    return ones_like(_asarr(x), dtype=np.bool_)


def iscomplexobj(x: Any) -> bool:
    return False


def isrealobj(x: Any) -> bool:
    return True


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


def select(condlist: Sequence[Any], choicelist: Sequence[Any], default: Any = 0) -> Any:
    """The first choice whose condition holds, elementwise: nested where from the last."""
    if len(condlist) != len(choicelist):
        raise ShapeError(
            "np.select: condlist and choicelist must have the same length", user_location()
        )
    if not condlist:
        raise ShapeError("np.select: needs at least one condition", user_location())
    choices = [_asarr(c) for c in choicelist]
    dflt = default if isinstance(default, (int, float)) else _asarr(default).dtype
    dt = np.result_type(np.result_type(*[c.dtype for c in choices]), dflt)
    choices = [astype(c, dt) for c in choices] + [astype(_asarr(default), dt)]
    r = choices[-1]
    for c, v in zip(reversed(condlist), reversed(choices[:-1]), strict=True):
        c = _asarr(c)
        if c.dtype != np.bool_:
            raise DTypeError(
                f"np.select: conditions must be boolean, got {c.dtype}", user_location()
            )
        r = where(c, v, r)
    return r


# -- shapes, stacking, products ---------------------------------------------------------------


def flipud(m: Any) -> Any:
    return flip(m, axis=0)


def fliplr(m: Any) -> Any:
    m = _asarr(m)
    if m.ndim < 2:
        raise ShapeError("np.fliplr: needs an array of at least 2 dimensions", user_location())
    return flip(m, axis=1)


def rot90(m: Any, k: int = 1, axes: Sequence[int] = (0, 1)) -> Any:
    """m rotated by 90 degrees k times in the plane of axes (from the first towards the
    second)."""
    m = _asarr(m)
    k = _static_int(k, "np.rot90: k") % 4
    if len(axes) != 2:
        raise ShapeError("np.rot90: axes must name 2 axes", user_location())
    a0, a1 = _axis(m, axes[0], "rot90"), _axis(m, axes[1], "rot90")
    if a0 == a1:
        raise ShapeError("np.rot90: the two axes must differ", user_location())
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    if k == 1:
        return swapaxes(flip(m, a1), a0, a1)
    return flip(swapaxes(m, a0, a1), a1)


def _atleast(nd: int, arrays: Sequence[Any]) -> Any:
    out = []
    for a in arrays:
        a = _asarr(a)
        if a.ndim < nd:
            if nd == 3 and a.ndim == 2:
                a = reshape(a, tuple(a.shape) + (1,))
            elif nd == 3 and a.ndim == 1:
                a = reshape(a, (1,) + tuple(a.shape) + (1,))
            else:
                a = reshape(a, (1,) * (nd - a.ndim) + tuple(a.shape))
        out.append(a)
    return out[0] if len(out) == 1 else tuple(out)


def atleast_1d(*arys: Any) -> Any:
    return _atleast(1, arys)


def atleast_2d(*arys: Any) -> Any:
    return _atleast(2, arys)


def atleast_3d(*arys: Any) -> Any:
    return _atleast(3, arys)


def broadcast_arrays(*args: Any, subok: bool = False) -> tuple[Any, ...]:
    args = [_asarr(a) for a in args]
    try:
        shp = np.broadcast_shapes(*[tuple(a.shape) for a in args])
    except ValueError:
        raise ShapeError(
            f"np.broadcast_arrays: shapes {[tuple(a.shape) for a in args]} do not broadcast",
            user_location(),
        ) from None
    return tuple(broadcast_to(a, shp) for a in args)


def dstack(tup: Sequence[Any], **kw: Any) -> Any:
    return concatenate(list(atleast_3d(*tup)) if len(tup) > 1 else [atleast_3d(*tup)], axis=2)


def column_stack(tup: Sequence[Any]) -> Any:
    arrs = [_asarr(a) for a in tup]
    return concatenate([reshape(a, (-1, 1)) if a.ndim < 2 else a for a in arrs], axis=1)


def append(arr: Any, values: Any, axis: Any = None) -> Any:
    arr, values = _array_like(arr), _array_like(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)])
    return concatenate([arr, values], axis=axis)


def hsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    ary = _asarr(ary)
    if ary.ndim == 0:
        raise ShapeError("np.hsplit only works on arrays of 1 or more dimensions", user_location())
    return split(ary, indices_or_sections, axis=1 if ary.ndim > 1 else 0)


def vsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    if _asarr(ary).ndim < 2:
        raise ShapeError("np.vsplit only works on arrays of 2 or more dimensions", user_location())
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    if _asarr(ary).ndim < 3:
        raise ShapeError("np.dsplit only works on arrays of 3 or more dimensions", user_location())
    return split(ary, indices_or_sections, axis=2)


def unstack(x: Any, /, *, axis: int = 0) -> tuple[Any, ...]:
    x = _asarr(x)
    ax = _axis(x, axis, "unstack")
    return tuple(squeeze(p, ax) for p in split(x, x.shape[ax], axis=ax))


def matrix_transpose(x: Any, /) -> Any:
    x = _asarr(x)
    if x.ndim < 2:
        raise ShapeError(
            "matrix_transpose: needs an array of at least 2 dimensions", user_location()
        )
    return swapaxes(x, -1, -2)


def permute_dims(a: Any, axes: Any = None) -> Any:
    return transpose(a, axes)


def diagflat(v: Any, k: int = 0) -> Any:
    return diag(ravel(_asarr(v)), k)


def vander(x: Any, N: Any = None, increasing: bool = False) -> Any:
    """Columns of powers of x (decreasing unless increasing)."""
    x = _asarr(x)
    if x.ndim != 1:
        raise ShapeError("np.vander: x must be 1-d", user_location())
    n = x.shape[0] if N is None else _static_int(N, "np.vander: N")
    cols = [x**i for i in range(n)] if n else []
    cols = [ones_like(x) if i == 0 else c for i, c in enumerate(cols)]
    if not increasing:
        cols = cols[::-1]
    return stack(cols, axis=1) if cols else reshape(zeros_like(x), (x.shape[0], 0))


def cross(
    a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None
) -> Any:
    """Cross product of 3-vectors (2-vectors get a zero z; two 2-vectors give the z value)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _promote_all([_asarr(a), _asarr(b)])
    a = moveaxis(a, _axis(a, axisa, "cross"), -1)
    b = moveaxis(b, _axis(b, axisb, "cross"), -1)
    na, nb = a.shape[-1], b.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ShapeError(
            f"np.cross: incompatible dimensions for cross product (dimension must be 2 or 3), "
            f"got {na} and {nb}",
            user_location(),
        )

    def comp(x: Any, i: int) -> Any:
        return x[..., i] if i < x.shape[-1] else None

    a0, a1, a2 = comp(a, 0), comp(a, 1), comp(a, 2)
    b0, b1, b2 = comp(b, 0), comp(b, 1), comp(b, 2)
    z = a0 * b1 - a1 * b0
    if na == 2 and nb == 2:
        return z
    x = (a1 * b2 if b2 is not None else 0) - (a2 * b1 if a2 is not None else 0)
    y = (a2 * b0 if a2 is not None else 0) - (a0 * b2 if b2 is not None else 0)
    shp = np.broadcast_shapes(tuple(a.shape[:-1]), tuple(b.shape[:-1]))
    c = stack([broadcast_to(_asarr(t), shp) for t in (x, y, z)], axis=-1)
    return moveaxis(c, -1, _axis(c, axisc, "cross"))


def kron(a: Any, b: Any) -> Any:
    """Kronecker product: an outer product of the two, reshaped block-wise."""
    a, b = _asarr(a), _asarr(b)
    nd = builtins.max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + tuple(a.shape)
    sb = (1,) * (nd - b.ndim) + tuple(b.shape)
    a2 = reshape(a, tuple(v for s in sa for v in (s, 1)))
    b2 = reshape(b, tuple(v for s in sb for v in (1, s)))
    return reshape(multiply(a2, b2), tuple(x * y for x, y in zip(sa, sb, strict=True)))


def vecdot(x1: Any, x2: Any, /, *, axis: int = -1, **kw: Any) -> Any:
    """Dot products of vectors along axis (broadcast over the rest)."""
    p = multiply(x1, x2)
    ax = _axis(p, axis, "vecdot")
    if p.dtype == np.bool_:
        return greater(sum(p, axis=ax), 0)
    return sum(p, axis=ax, dtype=p.dtype)


def matvec(x1: Any, x2: Any, /, **kw: Any) -> Any:
    """Matrix-vector products over stacks: (..., m, n) with (..., n)."""
    x2 = _asarr(x2)
    return squeeze(matmul(x1, expand_dims(x2, -1)), -1)


def vecmat(x1: Any, x2: Any, /, **kw: Any) -> Any:
    """Vector-matrix products over stacks: (..., m) with (..., m, n)."""
    x1 = _asarr(x1)
    return squeeze(matmul(expand_dims(x1, -2), x2), -2)


def meshgrid(
    *xi: Any, copy: bool = True, sparse: bool = False, indexing: str = "xy"
) -> tuple[Any, ...]:
    """Coordinate arrays from 1-d coordinate vectors (broadcasts)."""
    if indexing not in ("xy", "ij"):
        raise GraphcError("np.meshgrid: indexing must be 'xy' or 'ij'", user_location())
    xs = [ravel(_asarr(x)) for x in xi]
    nd = len(xs)
    shapes = []
    for i, x in enumerate(xs):
        s = [1] * nd
        s[i] = x.shape[0]
        if indexing == "xy" and nd > 1 and i < 2:
            s[0], s[1] = s[1], s[0]
        shapes.append(tuple(s))
    out = [reshape(x, s) for x, s in zip(xs, shapes, strict=True)]
    if not sparse and out:
        out = list(broadcast_arrays(*out))
    return tuple(out)


def linspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: Any = None,
    axis: int = 0,
    *,
    device: Any = None,
) -> Any:
    """num evenly spaced values from start to stop (traced ends allowed; the count is
    static)."""
    num = _static_int(num, "np.linspace: num")
    if num < 0:
        raise GraphcError(
            f"np.linspace: number of samples, {num}, must be non-negative", user_location()
        )
    # NumPy's own promotion of the ends with the (weak) float count: f32 ends stay f32
    tokens = [
        ((0.0 if e.weak else e.dtype) if isinstance(e, Tracer) else e)
        if isinstance(e, (Tracer, int, float))
        else np.asarray(e).dtype
        for e in (start, stop)
    ]
    dt = np.result_type(*tokens, float(num))
    start, stop = _asarr(start), _asarr(stop)
    start, stop = astype(start, dt), astype(stop, dt)
    div = (num - 1) if endpoint else num
    delta = stop - start
    shp = np.broadcast_shapes(tuple(start.shape), tuple(stop.shape))
    t = np.arange(num, dtype=dt).reshape((num,) + (1,) * len(shp))
    step = delta / div if div > 0 else delta * np.nan
    y = expand_dims(start, 0) + t * (expand_dims(step, 0) if div > 0 else expand_dims(delta * 0, 0))
    y = broadcast_to(y, (num,) + tuple(shp))
    if endpoint and num > 1:
        y = concatenate(
            [_slice_axis(y, 0, 0, num - 1), expand_dims(broadcast_to(stop, shp), 0)], axis=0
        )
    if axis != 0:
        y = moveaxis(y, 0, _axis(y, axis, "linspace"))
    if dtype is not None:
        y = astype(floor(y) if np.dtype(dtype).kind in "iu" else y, dtype)
    return (y, step) if retstep else y


def logspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    base: Any = 10.0,
    dtype: Any = None,
    axis: int = 0,
) -> Any:
    """base ** linspace(start, stop)."""
    y = power(base, linspace(start, stop, num, endpoint, axis=axis))
    return y if dtype is None else astype(y, dtype)


# -- linear algebra: SVD and what builds on it ------------------------------------------------


def _matrices(a: Any, name: str) -> Any:
    a = _asarr(a)
    if a.dtype.kind in "biu":
        a = astype(a, np.float64)
    elif a.dtype not in (np.float32, np.float64):
        raise DTypeError(
            f"numpy.linalg.{name}: arrays of type {a.dtype} are not supported "
            "(float32 and float64 are)",
            user_location(),
        )
    if a.ndim < 2:
        raise ShapeError(
            f"numpy.linalg.{name}: needs matrices (..., m, n), got shape {tuple(a.shape)}",
            user_location(),
        )
    return a


class SVDResult(NamedTuple):
    U: Any
    S: Any
    Vh: Any


def _svd(
    a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False
) -> Any:
    """np.linalg.svd: U, S, Vh (or only S with compute_uv=False) from one `svd` op.
    Gradients need distinct (and, for U and Vh of a non-square matrix, nonzero) singular
    values; full_matrices=True of a non-square matrix has values but no gradient."""
    a = _matrices(a, "svd")
    m, n = a.shape[-2:]
    fm = bool(full_matrices) and compute_uv and m != n
    packed = bind("svd", a, full_matrices=fm)
    u, s, vh = _svd_parts(packed, m, n, fm)
    return SVDResult(u, s, vh) if compute_uv else s


def _svdvals(x: Any, /) -> Any:
    return _svd(x, compute_uv=False)


_norm_basic = _norm


def _norm_svd(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """np.linalg.norm, with the matrix norms that need singular values (ord=2, -2, 'nuc')."""
    xa = _asarr(x)
    if ord not in (2, -2, "nuc") or isinstance(ord, bool):
        return _norm_basic(x, ord, axis, keepdims)
    if axis is None:
        if xa.ndim != 2:
            return _norm_basic(x, ord, axis, keepdims)
        axes = (0, 1)
    else:
        axes = tuple(np.atleast_1d(axis).tolist())
        if len(axes) != 2:
            return _norm_basic(x, ord, axis, keepdims)
    row, col = (_axis(xa, axes[0], "norm"), _axis(xa, axes[1], "norm"))
    if row == col:
        raise ShapeError("norm: duplicate axes", user_location())
    mats = moveaxis(_matrices(xa, "norm"), (row, col), (-2, -1))
    s = _svdvals(mats)
    r = max(s, axis=-1) if ord == 2 else min(s, axis=-1) if ord == -2 else sum(s, axis=-1)
    if keepdims:
        r = reshape(r, tuple(1 if i in (row, col) else d for i, d in enumerate(xa.shape)))
    return r


def _pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = None) -> Any:
    """Moore-Penrose pseudo-inverse from the SVD: singular values at or below
    rcond * max(s) are treated as zero (default rcond: max(m, n) * eps)."""
    a0 = _asarr(a)
    if a0.ndim >= 2 and a0.size == 0:  # NumPy: an empty result of the input's dtype
        return np.zeros(tuple(a0.shape[:-2]) + (a0.shape[-1], a0.shape[-2]), dtype=a0.dtype)
    a = _matrices(a, "pinv")
    m, n = a.shape[-2:]
    if rcond is None:
        rcond = rtol if rtol is not None else builtins.max(m, n) * np.finfo(a.dtype).eps
    u, s, vh = _svd(a, full_matrices=False)
    cutoff = np.asarray(rcond) * max(s, axis=-1, keepdims=True) if s.shape[-1] else 0
    keep = s > cutoff
    s_inv = where(keep, 1 / where(keep, s, 1), np.zeros((), s.dtype))
    return matmul(swapaxes(vh, -1, -2) * expand_dims(s_inv, -2), swapaxes(u, -1, -2))


def _matrix_rank(A: Any, tol: Any = None, hermitian: bool = False, *, rtol: Any = None) -> Any:
    """The number of singular values above tol (default: max(s) * max(m, n) * eps)."""
    A = _asarr(A)
    if A.ndim < 2:
        return astype(count_nonzero(A) > 0, np.int64)
    if A.size == 0:
        return np.zeros(tuple(A.shape[:-2]), dtype=np.int64)
    a = _matrices(A, "matrix_rank")
    s = _svdvals(a)
    m, n = a.shape[-2:]
    if tol is None:
        r = rtol if rtol is not None else builtins.max(m, n) * np.finfo(a.dtype).eps
        tol = max(s, axis=-1, keepdims=True) * r
    else:
        tol = expand_dims(_asarr(tol), -1)
    return count_nonzero(s > tol, axis=-1)


def _cond(x: Any, p: Any = None) -> Any:
    """Condition number: s_max / s_min for p None, 2 or -2, else norm(x, p) norm(inv(x), p)."""
    x = _matrices(x, "cond")
    if p is None or p in (2, -2):
        s = _svdvals(x)
        r = max(s, axis=-1) / min(s, axis=-1)
        return 1 / r if p == -2 else r
    return _norm_svd(x, p, axis=(-2, -1)) * _norm_svd(linalg.inv(x), p, axis=(-2, -1))


def _matrix_power(a: Any, n: int) -> Any:
    """a to the integer power n by repeated squaring (negative n: of inv(a))."""
    a = _asarr(a)
    n = _static_int(n, "numpy.linalg.matrix_power: n")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(
            f"numpy.linalg.matrix_power: needs square matrices (..., n, n), got shape "
            f"{tuple(a.shape)}",
            user_location(),
        )
    if n == 0:
        eye = np.eye(a.shape[-1], dtype=a.dtype)
        return broadcast_to(eye, tuple(a.shape)) + zeros_like(a)
    if n < 0:
        a, n = linalg.inv(a), -n
    result, base = None, a
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def _multi_dot(arrays: Sequence[Any], *, out: Any = None) -> Any:
    arrays = [_asarr(a) for a in arrays]
    if len(arrays) < 2:
        raise ShapeError("numpy.linalg.multi_dot: needs at least two arrays", user_location())
    r = arrays[0]
    for b in arrays[1:]:
        r = dot(r, b)
    return r


def _vector_norm(x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    x = _asarr(x)
    if axis is None:
        r = _norm_basic(ravel(x), ord, 0)
        return reshape(r, (1,) * x.ndim) if keepdims else r
    axes = _norm_axes(x, axis, "linalg.vector_norm")
    if len(axes) == 1:
        return _norm_basic(x, ord, axes[0], keepdims)
    rest = [i for i in range(x.ndim) if i not in axes]
    y = reshape(transpose(x, rest + list(axes)), tuple(x.shape[i] for i in rest) + (-1,))
    r = _norm_basic(y, ord, -1)
    if keepdims:
        r = reshape(r, tuple(1 if i in axes else s for i, s in enumerate(x.shape)))
    return r


def _matrix_norm(x: Any, /, *, keepdims: bool = False, ord: Any = "fro") -> Any:
    return _norm_svd(x, ord, axis=(-2, -1), keepdims=keepdims)


class EighResult(NamedTuple):
    eigenvalues: Any
    eigenvectors: Any


def _uplo(UPLO: Any, name: str) -> bool:
    if UPLO not in ("L", "U"):
        raise GraphcError(f"numpy.linalg.{name}: UPLO argument must be 'L' or 'U'", user_location())
    return UPLO == "L"


def _eigh(a: Any, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices, read from one
    triangle as NumPy does; eigenvector gradients need distinct eigenvalues."""
    lower = _uplo(UPLO, "eigh")
    a = _square(a, "eigh")
    w, v = _eigh_parts(bind("eigh", a, lower=lower), a.shape[-1])
    return EighResult(w, v)


def _eigvalsh(a: Any, UPLO: str = "L") -> Any:
    return _eigh(a, UPLO).eigenvalues


def _cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """The Cholesky factor of symmetric positive definite matrices (lower, or upper with
    upper=True, each read from its own triangle as NumPy does)."""
    a = _square(a, "cholesky")
    if upper:
        return swapaxes(bind("cholesky", swapaxes(a, -1, -2)), -1, -2)
    return bind("cholesky", a)


class QRResult(NamedTuple):
    Q: Any
    R: Any


def _qr(a: Any, mode: str = "reduced") -> Any:
    """np.linalg.qr for modes 'reduced', 'complete' and 'r'; gradients for the reduced
    factorisation of matrices with at least as many rows as columns."""
    if mode not in ("reduced", "complete", "r"):
        raise UnsupportedError(
            f"numpy.linalg.qr: mode={mode!r} is not supported ('reduced', 'complete', 'r' are)",
            user_location(),
        )
    a = _matrices(a, "qr")
    m, n = a.shape[-2:]
    complete = mode == "complete" and m > n
    q, r = _qr_parts(bind("qr", a, complete=complete), m, n, complete)
    return r if mode == "r" else QRResult(q, r)


linalg.qr = staticmethod(_qr)
linalg.eigh = staticmethod(_eigh)
linalg.eigvalsh = staticmethod(_eigvalsh)
linalg.cholesky = staticmethod(_cholesky)
linalg.norm = staticmethod(_norm_svd)
linalg.svd = staticmethod(_svd)
linalg.svdvals = staticmethod(_svdvals)
linalg.pinv = staticmethod(_pinv)
linalg.matrix_rank = staticmethod(_matrix_rank)
linalg.cond = staticmethod(_cond)
linalg.matrix_power = staticmethod(_matrix_power)
linalg.multi_dot = staticmethod(_multi_dot)
linalg.vector_norm = staticmethod(_vector_norm)
linalg.matrix_norm = staticmethod(_matrix_norm)
linalg.outer = staticmethod(outer)
linalg.cross = staticmethod(lambda x1, x2, /, *, axis=-1: cross(x1, x2, axis=axis))
linalg.trace = staticmethod(lambda x, /, *, offset=0, dtype=None: trace(x, offset, -2, -1, dtype))
linalg.diagonal = staticmethod(lambda x, /, *, offset=0: diagonal(x, offset, -2, -1))
linalg.matmul = staticmethod(matmul)
linalg.tensordot = staticmethod(tensordot)
linalg.vecdot = staticmethod(vecdot)
linalg.matrix_transpose = staticmethod(matrix_transpose)


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


# -- more compositions: comparisons of whole arrays, insert/delete, spacing, gradients,
# polynomials, partitions ------------------------------------------------------------------


def allclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Any:
    """Whether every element of a is close to b (a traced boolean)."""
    return all(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def array_equal(a1: Any, a2: Any, equal_nan: bool = False) -> Any:
    """Same shape and elements (a Python False for different shapes, as NumPy)."""
    a1, a2 = _asarr(a1), _asarr(a2)
    if tuple(a1.shape) != tuple(a2.shape):
        return False
    eq = equal(a1, a2)
    if equal_nan and a1.dtype.kind == "f" and a2.dtype.kind == "f":
        eq = eq | (isnan(a1) & isnan(a2))
    return all(eq)


def array_equiv(a1: Any, a2: Any) -> Any:
    """Elements equal after broadcasting (False when the shapes do not broadcast)."""
    a1, a2 = _asarr(a1), _asarr(a2)
    try:
        np.broadcast_shapes(tuple(a1.shape), tuple(a2.shape))
    except ValueError:
        return False
    return all(equal(a1, a2))


def _array_like(v: Any) -> Any:
    """An operand that may be a (nested) list holding traced values: stacked."""
    if isinstance(v, (list, tuple)) and builtins.any(
        isinstance(e, (Tracer, list, tuple)) for e in v
    ):
        parts = [_array_like(e) for e in v]
        if _any_traced(*parts):
            return stack(_promote_all(parts))
    return _asarr(v)


def _static_indices(obj: Any, n: int, name: str) -> np.ndarray:
    if isinstance(obj, Tracer):
        raise UnsupportedError(
            f"np.{name}: the positions must be constants, not traced (they decide the "
            "result's shape)",
            user_location(),
        )
    if isinstance(obj, slice):
        return np.arange(n)[obj]
    idx = np.asarray(obj)
    if idx.dtype == np.bool_:
        if idx.shape != (n,):
            raise ShapeError(
                f"np.{name}: a boolean mask of shape {idx.shape} for an axis of length {n}",
                user_location(),
            )
        return np.flatnonzero(idx)
    if idx.dtype.kind not in "iu":
        raise GraphcError(f"np.{name}: positions must be integers, got {obj!r}", user_location())
    return idx


def delete(arr: Any, obj: Any, axis: Any = None) -> Any:
    """arr without the entries at obj along axis (flattened without an axis): a gather of
    the kept positions."""
    arr = _asarr(arr)
    if axis is None:
        arr, ax = ravel(arr), 0
    else:
        ax = _axis(arr, axis, "delete")
    n = arr.shape[ax]
    idx = _static_indices(obj, n, "delete")
    if np.any((idx < -n) | (idx >= n)):
        raise ShapeError(
            f"np.delete: index {obj!r} is out of bounds for an axis of length {n}",
            user_location(),
        )
    keep = np.ones(n, dtype=bool)
    keep[idx % n if n else idx] = False
    return bind("gather", arr, np.flatnonzero(keep).astype(np.int64), axis=ax)


def insert(arr: Any, obj: Any, values: Any, axis: Any = None) -> Any:
    """values inserted before the positions obj along axis (flattened without an axis)."""
    arr = _asarr(arr)
    if axis is None:
        arr, ax = ravel(arr), 0
    else:
        ax = _axis(arr, axis, "insert")
    n = arr.shape[ax]
    scalar_obj = np.ndim(obj) == 0 and not isinstance(obj, slice)
    idx = np.atleast_1d(_static_indices(obj, n + 1, "insert"))
    if np.any((idx < -n) | (idx > n)):
        raise ShapeError(
            f"np.insert: index {obj!r} is out of bounds for an axis of length {n}",
            user_location(),
        )
    idx = np.where(idx < 0, idx + n, idx)
    vals = astype(_array_like(values), arr.dtype)
    if vals.ndim > arr.ndim:
        raise ShapeError(
            f"np.insert: values of shape {tuple(vals.shape)} have more dimensions than the "
            f"array of shape {tuple(arr.shape)}",
            user_location(),
        )
    vals = reshape(vals, (1,) * (arr.ndim - vals.ndim) + tuple(vals.shape))
    if scalar_obj:
        # one position: values may hold several entries along the axis (as NumPy)
        vals = moveaxis(vals, 0, ax)
        idx = np.full(vals.shape[ax], idx[0])
    elif idx.size == 1:  # NumPy: a one-element list inserts every entry of values there
        idx = np.full(vals.shape[ax], idx[0])
    shape = list(arr.shape)
    shape[ax] = idx.size
    try:
        np.broadcast_shapes(tuple(vals.shape), tuple(shape))
    except ValueError:
        raise ShapeError(
            f"np.insert: values of shape {tuple(vals.shape)} do not fit {idx.size} "
            f"position(s) along axis {ax} of shape {tuple(arr.shape)}",
            user_location(),
        ) from None
    joined = concatenate([arr, broadcast_to(vals, tuple(shape))], axis=ax)
    # original entry i sorts at 2i + 1, a value inserted before position k at 2k (stable)
    keys = np.concatenate([2 * np.arange(n) + 1, 2 * idx])
    return bind("gather", joined, np.argsort(keys, kind="stable").astype(np.int64), axis=ax)


def geomspace(
    start: Any, stop: Any, num: int = 50, endpoint: bool = True, dtype: Any = None, axis: int = 0
) -> Any:
    """num values spaced evenly on a log scale from start to stop (of one sign)."""
    start, stop = _asarr(start), _asarr(stop)
    if builtins.any(not isinstance(e, Tracer) and np.any(e == 0) for e in (start, stop)):
        raise GraphcError("np.geomspace: geometric sequence cannot include zero", user_location())
    y = exp(linspace(log(absolute(start)), log(absolute(stop)), num, endpoint, axis=0))
    y = y * expand_dims(sign(start), 0)
    num = y.shape[0]
    if num:
        parts = [expand_dims(broadcast_to(astype(start, y.dtype), y.shape[1:]), 0)]
        if endpoint and num > 1:
            parts += [
                _slice_axis(y, 0, 1, num - 1),
                expand_dims(broadcast_to(astype(stop, y.dtype), y.shape[1:]), 0),
            ]
        else:
            parts += [_slice_axis(y, 0, 1, num)]
        y = concatenate(parts, axis=0)
    if axis != 0:
        y = moveaxis(y, 0, _axis(y, axis, "geomspace"))
    return y if dtype is None else astype(y, dtype)


def gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    """Second-order central differences inside, one-sided ones (first or second order) at the
    ends, for unit, scalar or coordinate-array spacing, as np.gradient."""
    f = _asarr(f)
    if f.dtype.kind != "f":
        f = astype(f, np.float64)
    axes = _norm_axes(f, axis, "gradient")
    if len(varargs) == 0:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacing = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes):
        spacing = list(varargs)
    else:
        raise ShapeError("np.gradient: invalid number of spacing arguments", user_location())
    if edge_order not in (1, 2):
        raise GraphcError("np.gradient: edge_order must be 1 or 2", user_location())
    out = []
    for ax, h in zip(axes, spacing, strict=True):
        n = f.shape[ax]
        if n < edge_order + 1:
            raise ShapeError(
                f"np.gradient: an axis of length {n} is too short for edge_order={edge_order} "
                f"(it needs at least {edge_order + 1} points)",
                user_location(),
            )
        bshape = [1] * f.ndim
        h = _asarr(h)
        if h.ndim == 0:
            dx = broadcast_to(astype(h, f.dtype), (n - 1,))
        elif h.shape == (n,):
            dx = astype(diff(h), f.dtype)
        else:
            raise ShapeError(
                f"np.gradient: spacing of shape {tuple(h.shape)} does not match an axis of "
                f"length {n}",
                user_location(),
            )

        def along(v: Any) -> Any:
            shp = list(bshape)
            shp[ax] = v.shape[0]
            return reshape(v, tuple(shp))

        def sl(a: int, b: int) -> Any:
            return _slice_axis(f, ax, a, b)

        parts = []
        d0 = dx[0:1]
        d_1 = dx[n - 2 : n - 1]
        if edge_order == 1:
            parts.append((sl(1, 2) - sl(0, 1)) / along(d0))
        else:
            d1, d2 = dx[0:1], dx[1:2]
            a = -(2.0 * d1 + d2) / (d1 * (d1 + d2))
            b = (d1 + d2) / (d1 * d2)
            c = -d1 / (d2 * (d1 + d2))
            parts.append(along(a) * sl(0, 1) + along(b) * sl(1, 2) + along(c) * sl(2, 3))
        if n > 2:
            d1, d2 = dx[0 : n - 2], dx[1 : n - 1]
            a = -d2 / (d1 * (d1 + d2))
            b = (d2 - d1) / (d1 * d2)
            c = d1 / (d2 * (d1 + d2))
            parts.append(along(a) * sl(0, n - 2) + along(b) * sl(1, n - 1) + along(c) * sl(2, n))
        if edge_order == 1:
            parts.append((sl(n - 1, n) - sl(n - 2, n - 1)) / along(d_1))
        else:
            d1, d2 = dx[n - 3 : n - 2], dx[n - 2 : n - 1]
            a = d2 / (d1 * (d1 + d2))
            b = -(d2 + d1) / (d1 * d2)
            c = (2.0 * d2 + d1) / (d2 * (d1 + d2))
            parts.append(
                along(a) * sl(n - 3, n - 2) + along(b) * sl(n - 2, n - 1) + along(c) * sl(n - 1, n)
            )
        out.append(concatenate(parts, axis=ax))
    return out[0] if len(out) == 1 else tuple(out)


def digitize(x: Any, bins: Any, right: bool = False) -> Any:
    """Indices of the bins x falls into (bins monotonic; no gradient)."""
    x, bins = _asarr(x), _asarr(bins)
    if bins.ndim != 1:
        raise ShapeError("np.digitize: bins must be 1-d", user_location())
    if isinstance(bins, Tracer):
        raise UnsupportedError("np.digitize: bins must be constants, not traced", user_location())
    d = np.diff(bins)
    inc = bool(np.all(d >= 0))
    if not inc and not np.all(d <= 0):
        raise GraphcError(
            "np.digitize: bins must be monotonically increasing or decreasing", user_location()
        )
    side = "left" if right else "right"
    if inc:
        return searchsorted(bins, x, side=side)
    return bins.shape[0] - searchsorted(bins[::-1].copy(), x, side=side)


def isin(
    element: Any,
    test_elements: Any,
    assume_unique: bool = False,
    invert: bool = False,
    *,
    kind: Any = None,
) -> Any:
    """Whether each element is among test_elements (compared one by one)."""
    e, t = _asarr(element), ravel(_asarr(test_elements))
    if t.shape[0] == 0:
        r = zeros_like(e, dtype=np.bool_)
    else:
        r = any(equal(expand_dims(e, -1), t), axis=-1)
    return logical_not(r) if invert else r


def choose(a: Any, choices: Sequence[Any], out: Any = None, mode: str = "raise") -> Any:
    """choices[a] elementwise: nested where over the (few) choices; indices outside them
    are NaN-free zeros rather than errors (mode='clip' and 'wrap' as NumPy)."""
    _no_extras("choose", out)
    a = _asarr(a)
    cs = _promote_all([_asarr(c) for c in choices])
    k = len(cs)
    if mode == "clip":
        a = clip(a, 0, k - 1)
    elif mode == "wrap":
        a = remainder(astype(a, np.float64), k)
    elif mode != "raise":
        raise GraphcError(
            f"np.choose: mode must be 'raise', 'wrap' or 'clip', got {mode!r}", user_location()
        )
    if not isinstance(a, Tracer) and (np.any(a < 0) or np.any(a >= k)):
        raise ShapeError("np.choose: invalid entry in choice array", user_location())
    r = cs[-1]
    for i in range(k - 2, -1, -1):
        r = where(equal(a, i), cs[i], r)
    return r


def piecewise(x: Any, condlist: Any, funclist: Sequence[Any], *args: Any, **kw: Any) -> Any:
    """funclist[i](x) where condlist[i] holds (later conditions win), an optional last
    function where none does, else 0. Every function sees all of x; the selection is a
    where, so gradients are NaN-free outside each piece."""
    x = _asarr(x)
    conds = list(condlist) if isinstance(condlist, (list, tuple)) else [condlist]
    n = len(conds)
    if len(funclist) not in (n, n + 1):
        raise ShapeError(
            f"np.piecewise: with {n} condition(s) there must be {n} or {n + 1} functions",
            user_location(),
        )

    def value(fn: Any) -> Any:
        v = fn(x, *args, **kw) if callable(fn) else fn
        return broadcast_to(astype(_asarr(v), x.dtype), tuple(x.shape))

    if len(funclist) == n + 1:
        r = value(funclist[-1])
    else:
        r = zeros_like(x)
    for c, fn in zip(conds, funclist[:n], strict=True):
        r = where(astype(_asarr(c), np.bool_), value(fn), r)
    return r


def angle(z: Any, deg: bool = False) -> Any:
    """The argument of real numbers: pi for negative ones, else 0 (180/0 in degrees)."""
    z = _asarr(z)
    z = z if z.dtype.kind == "f" else astype(z, np.float64)
    return where(signbit(z), 180.0 if deg else np.pi, 0.0) * ones_like(z)


def iscomplex(x: Any) -> Any:
    return zeros_like(_asarr(x), dtype=np.bool_)


def real_if_close(a: Any, tol: float = 100) -> Any:
    return _asarr(a)


def _indices_from(name: str, maker: Callable):
    def fn(arr: Any, k: int = 0) -> Any:
        arr = _asarr(arr)
        if arr.ndim != 2:
            raise ShapeError(f"np.{name}: needs a 2-d array", user_location())
        return maker(arr.shape[-2], k=k, m=arr.shape[-1])

    fn.__name__ = name
    return fn


triu_indices_from = _indices_from("triu_indices_from", np.triu_indices)
tril_indices_from = _indices_from("tril_indices_from", np.tril_indices)


def diag_indices_from(arr: Any) -> tuple:
    arr = _asarr(arr)
    if arr.ndim < 2 or len(set(arr.shape)) != 1:
        raise ShapeError("np.diag_indices_from: all dimensions must be equal", user_location())
    return np.diag_indices(arr.shape[0], arr.ndim)


def resize(a: Any, new_shape: Any) -> Any:
    """a's elements repeated (flattened) to fill new_shape."""
    a = ravel(_asarr(a))
    shape = _shape_arg(new_shape)
    total = int(np.prod(shape, dtype=np.int64))
    if builtins.any(d < 0 for d in shape):
        raise ShapeError(
            "np.resize: all elements of new_shape must be non-negative", user_location()
        )
    n = a.shape[0]
    if n == 0 or total == 0:
        return np.zeros(shape, dtype=a.dtype)
    reps = -(-total // n)
    return reshape(_slice_axis(tile(a, reps), 0, 0, total), shape)


def partition(
    a: Any, kth: Any, axis: Any = -1, kind: str = "introselect", order: Any = None
) -> Any:
    """A full sort, which is one valid partition (every kth element in its sorted place)."""
    return sort(a, axis=axis, order=order)


def argpartition(
    a: Any, kth: Any, axis: Any = -1, kind: str = "introselect", order: Any = None
) -> Any:
    """Indices of a full sort, which is one valid partition."""
    return argsort(a, axis=axis, order=order)


def modf(x: Any) -> tuple[Any, Any]:
    """Fractional and integral parts (both with x's sign)."""
    x = _float_like(x)
    t = trunc(x)
    return x - t, t


def divmod_(x: Any, y: Any) -> tuple[Any, Any]:
    """(x // y, x % y) for floats."""
    return floor_divide(x, y), remainder(x, y)


def ldexp(x: Any, i: Any) -> Any:
    """x * 2**i."""
    x = _float_like(x)
    return x * power(np.asarray(2.0, x.dtype), astype(_asarr(i), x.dtype))


def polyder(p: Any, m: int = 1) -> Any:
    """The m-th derivative of the polynomial with coefficients p (highest power first)."""
    p = _asarr(p)
    m = _static_int(m, "np.polyder: m")
    if m < 0:
        raise GraphcError("np.polyder: order of derivative must be positive", user_location())
    for _ in range(m):
        n = p.shape[0] - 1
        if n <= 0:
            return zeros_like(p[:1]) if p.shape[0] else p
        p = _slice_axis(p, 0, 0, n) * np.arange(n, 0, -1).astype(
            p.dtype if p.dtype.kind == "f" else np.int64
        )
    return p


def polyint(p: Any, m: int = 1, k: Any = None) -> Any:
    """The m-th antiderivative of p, with integration constants k (0 by default)."""
    p = _asarr(p)
    m = _static_int(m, "np.polyint: m")
    ks = np.zeros(m) if k is None else np.atleast_1d(k)
    if len(ks) == 1 and m > 1:
        ks = np.full(m, ks[0])
    if p.dtype.kind != "f":
        p = astype(p, np.float64)
    for i in range(m):
        n = p.shape[0]
        p = concatenate(
            [p / np.arange(n, 0, -1).astype(p.dtype), astype(_asarr(ks[i]), p.dtype)[None]]
        )
    return p


def _poly_pair(a1: Any, a2: Any) -> tuple[Any, Any]:
    a1, a2 = _promote_all([atleast_1d(_asarr(a1)), atleast_1d(_asarr(a2))])
    n = builtins.max(a1.shape[0], a2.shape[0])
    return pad(a1, (n - a1.shape[0], 0)), pad(a2, (n - a2.shape[0], 0))


def polyadd(a1: Any, a2: Any) -> Any:
    x, y = _poly_pair(a1, a2)
    return x + y


def polysub(a1: Any, a2: Any) -> Any:
    x, y = _poly_pair(a1, a2)
    return x - y


def polymul(a1: Any, a2: Any) -> Any:
    return convolve(atleast_1d(_asarr(a1)), atleast_1d(_asarr(a2)))


def polyfit(
    x: Any, y: Any, deg: int, rcond: Any = None, full: bool = False, w: Any = None, cov: Any = False
) -> Any:
    """Least-squares polynomial coefficients (highest power first), as np.polyfit: the
    column-scaled Vandermonde matrix's pseudo-inverse applied to y."""
    if full or w is not None or cov:
        raise UnsupportedError("np.polyfit: full=, w= and cov= are not supported", user_location())
    deg = _static_int(deg, "np.polyfit: deg")
    x, y = _asarr(x), _asarr(y)
    if deg < 0:
        raise GraphcError("np.polyfit: expected deg >= 0", user_location())
    if x.ndim != 1 or x.shape[0] == 0:
        raise ShapeError("np.polyfit: expected a non-empty 1-d x", user_location())
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ShapeError("np.polyfit: expected y of x's length (1-d or 2-d)", user_location())
    dt = np.result_type(x.dtype, y.dtype, np.float64)
    x, y = astype(x, dt), astype(y, dt)
    if rcond is None:
        rcond = x.shape[0] * np.finfo(dt).eps
    lhs = vander(x, deg + 1)
    scale = sqrt(sum(lhs * lhs, axis=0))
    c = matmul(_pinv(lhs / scale, rcond=rcond), y)
    return c / (scale if c.ndim == 1 else reshape(scale, (-1, 1)))


def block(arrays: Any) -> Any:
    """An array assembled from nested lists of blocks: the innermost lists are joined along
    the last axis, the next ones along the one before, and so on."""

    def depth(x: Any) -> int:
        d = 0
        while isinstance(x, list):
            if not x:
                raise ShapeError("np.block: lists cannot be empty", user_location())
            x, d = x[0], d + 1
        return d

    def leaves(x: Any) -> list[Any]:
        out, todo = [], [x]
        while todo:
            y = todo.pop()
            if isinstance(y, list):
                todo.extend(y)
            elif isinstance(y, tuple):
                raise GraphcError(
                    "np.block: use lists, not tuples, to nest blocks", user_location()
                )
            else:
                out.append(_asarr(y))
        return out

    d = depth(arrays)
    nd = builtins.max([d] + [a.ndim for a in leaves(arrays)])

    def build(x: Any, level: int) -> Any:
        if isinstance(x, list) != (level < d):
            raise ShapeError("np.block: list depths are mismatched", user_location())
        if not isinstance(x, list):
            a = _asarr(x)
            return reshape(a, (1,) * (nd - a.ndim) + tuple(a.shape))
        if not x:
            raise ShapeError("np.block: lists cannot be empty", user_location())
        return concatenate([build(e, level + 1) for e in x], axis=-(d - level))

    if d == 0:
        return _asarr(arrays)
    return build(arrays, 0)


def lexsort(keys: Any, axis: int = -1) -> Any:
    """Indices sorting by the last key, ties broken by the ones before: stable sorts from the
    least significant key on."""
    ks = [keys[i] for i in range(keys.shape[0])] if isinstance(keys, Tracer) else list(keys)
    if not ks:
        raise ShapeError("np.lexsort: needs at least one key", user_location())
    ks = [_asarr(k) for k in ks]
    order = argsort(ks[0], axis=axis)
    for k in ks[1:]:
        order = take_along_axis(order, argsort(take_along_axis(k, order, axis), axis=axis), axis)
    return order


def unwrap(p: Any, discont: Any = None, axis: int = -1, *, period: float = 2 * np.pi) -> Any:
    """Phases with jumps larger than discont replaced by their period complement, as
    np.unwrap (floats)."""
    p = _asarr(p)
    if p.dtype.kind != "f":
        p = astype(p, np.float64)
    ax = _axis(p, axis, "unwrap")
    n = p.shape[ax]
    if n < 2:
        return p
    dd = diff(p, axis=ax)
    if discont is None:
        discont = period / 2
    high = period / 2
    low = -high
    ddmod = remainder(dd - low, period) + low
    ddmod = where((ddmod == low) & (dd > 0), high, ddmod)
    correct = where(absolute(dd) < discont, 0.0, ddmod - dd)
    rest = _slice_axis(p, ax, 1, n) + cumsum(correct, axis=ax)
    return concatenate([_slice_axis(p, ax, 0, 1), rest], axis=ax)


def _tensorinv(a: Any, ind: int = 2) -> Any:
    a = _asarr(a)
    ind = _static_int(ind, "numpy.linalg.tensorinv: ind")
    if ind <= 0:
        raise GraphcError("numpy.linalg.tensorinv: ind must be a positive integer", user_location())
    old = tuple(a.shape)
    front = int(np.prod(old[:ind], dtype=np.int64))
    back = int(np.prod(old[ind:], dtype=np.int64))
    if front != back:
        raise ShapeError(
            f"numpy.linalg.tensorinv: the first {ind} axes of shape {old} do not hold as many "
            "elements as the rest",
            user_location(),
        )
    return reshape(linalg.inv(reshape(a, (front, back))), old[ind:] + old[:ind])


def _tensorsolve(a: Any, b: Any, axes: Any = None) -> Any:
    a, b = _asarr(a), _asarr(b)
    if axes is not None:
        allaxes = list(range(a.ndim))
        for k in axes:
            allaxes.remove(k % a.ndim)
            allaxes.insert(a.ndim, k % a.ndim)
        a = transpose(a, allaxes)
    rest = tuple(a.shape[b.ndim :])
    m = int(np.prod(b.shape, dtype=np.int64))
    k = int(np.prod(rest, dtype=np.int64))
    if m != k or tuple(a.shape[: b.ndim]) != tuple(b.shape):
        raise ShapeError(
            f"numpy.linalg.tensorsolve: a of shape {tuple(a.shape)} does not fit b of shape "
            f"{tuple(b.shape)}",
            user_location(),
        )
    return reshape(linalg.solve(reshape(a, (m, k)), ravel(b)), rest)


linalg.tensorinv = staticmethod(_tensorinv)
linalg.tensorsolve = staticmethod(_tensorsolve)


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


_round_whole = round


def round(x: Any, decimals: int = 0, out: Any = None) -> Any:  # noqa: A001, F811
    """x rounded to the given number of decimals, as NumPy computes it: rint(x * 10**d) / 10**d
    (rint(x / 10**-d) * 10**-d for negative d), halves to even.

    Example:
        >>> round(np.array([1.2345, 2.5, 15.0]), 1)
        array([ 1.2,  2.5, 15. ])
    """
    d = _static_int(decimals, "np.round: decimals")
    if d == 0:
        return _round_whole(x, 0, out)
    _no_extras("round", out)
    x = _asarr(x)
    if x.dtype.kind in "biu":
        if d > 0:
            return x
        f = 10.0 ** (-d)
        return astype(rint(astype(x, np.float64) / f) * f, x.dtype)
    if d > 0:
        f = np.asarray(10.0**d, x.dtype)
        return rint(x * f) / f
    f = np.asarray(10.0 ** (-d), x.dtype)
    return rint(x / f) * f


around = round


def _in_place_function(name: str, instead: str):
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedError(
            f"numpy.{name} changes an array in place, which graphc does not trace; use "
            f"{instead} instead",
            user_location(),
        )

    fn.__name__ = name
    return fn


_MORE_FUNCTIONS: dict[Callable, Callable] = {
    np.einsum: einsum,
    np.pad: pad,
    np.diff: diff,
    np.ediff1d: ediff1d,
    np.sinc: sinc,
    np.ptp: ptp,
    np.nansum: nansum,
    np.nanprod: nanprod,
    np.nanmax: nanmax,
    np.nanmin: nanmin,
    np.nanargmax: nanargmax,
    np.nanargmin: nanargmin,
    np.nanmean: nanmean,
    np.nanvar: nanvar,
    np.nanstd: nanstd,
    np.nancumsum: nancumsum,
    np.nancumprod: nancumprod,
    np.quantile: quantile,
    np.percentile: percentile,
    np.median: median,
    np.nanquantile: nanquantile,
    np.nanpercentile: nanpercentile,
    np.nanmedian: nanmedian,
    np.cov: cov,
    np.corrcoef: corrcoef,
    np.convolve: convolve,
    np.correlate: correlate,
    np.searchsorted: searchsorted,
    np.interp: interp,
    np.trapezoid: trapezoid,
    np.nan_to_num: nan_to_num,
    np.isclose: isclose,
    np.polyval: polyval,
    np.count_nonzero: count_nonzero,
    np.cumulative_sum: cumulative_sum,
    np.cumulative_prod: cumulative_prod,
    np.real: real,
    np.imag: imag,
    np.isreal: isreal,
    np.iscomplexobj: iscomplexobj,
    np.isrealobj: isrealobj,
    np.isposinf: isposinf,
    np.isneginf: isneginf,
    np.fix: fix,
    np.empty_like: empty_like,
    np.select: select,
    np.flipud: flipud,
    np.fliplr: fliplr,
    np.rot90: rot90,
    np.atleast_1d: atleast_1d,
    np.atleast_2d: atleast_2d,
    np.atleast_3d: atleast_3d,
    np.broadcast_arrays: broadcast_arrays,
    np.dstack: dstack,
    np.column_stack: column_stack,
    np.append: append,
    np.hsplit: hsplit,
    np.vsplit: vsplit,
    np.dsplit: dsplit,
    np.unstack: unstack,
    np.matrix_transpose: matrix_transpose,
    np.permute_dims: permute_dims,
    np.diagflat: diagflat,
    np.vander: vander,
    np.cross: cross,
    np.kron: kron,
    np.vecdot: vecdot,
    np.matvec: matvec,
    np.vecmat: vecmat,
    np.meshgrid: meshgrid,
    np.linspace: linspace,
    np.logspace: logspace,
    np.linalg.norm: linalg.norm,
    np.linalg.svd: linalg.svd,
    np.linalg.svdvals: linalg.svdvals,
    np.linalg.pinv: linalg.pinv,
    np.linalg.matrix_rank: linalg.matrix_rank,
    np.linalg.cond: linalg.cond,
    np.linalg.matrix_power: linalg.matrix_power,
    np.linalg.multi_dot: linalg.multi_dot,
    np.linalg.vector_norm: linalg.vector_norm,
    np.linalg.matrix_norm: linalg.matrix_norm,
    np.linalg.outer: linalg.outer,
    np.linalg.cross: linalg.cross,
    np.linalg.trace: linalg.trace,
    np.linalg.diagonal: linalg.diagonal,
    np.linalg.matmul: linalg.matmul,
    np.linalg.tensordot: linalg.tensordot,
    np.linalg.vecdot: linalg.vecdot,
    np.linalg.matrix_transpose: linalg.matrix_transpose,
    np.linalg.eigh: linalg.eigh,
    np.linalg.eigvalsh: linalg.eigvalsh,
    np.linalg.cholesky: linalg.cholesky,
    np.linalg.qr: linalg.qr,
}
_MORE_FUNCTIONS.update(
    {
        np.round: round,
        np.around: around,
        np.block: block,
        np.lexsort: lexsort,
        np.unwrap: unwrap,
        np.linalg.tensorinv: linalg.tensorinv,
        np.linalg.tensorsolve: linalg.tensorsolve,
        np.allclose: allclose,
        np.array_equal: array_equal,
        np.array_equiv: array_equiv,
        np.delete: delete,
        np.insert: insert,
        np.geomspace: geomspace,
        np.gradient: gradient,
        np.digitize: digitize,
        np.isin: isin,
        np.choose: choose,
        np.piecewise: piecewise,
        np.angle: angle,
        np.iscomplex: iscomplex,
        np.real_if_close: real_if_close,
        np.triu_indices_from: triu_indices_from,
        np.tril_indices_from: tril_indices_from,
        np.diag_indices_from: diag_indices_from,
        np.resize: resize,
        np.partition: partition,
        np.argpartition: argpartition,
        np.polyder: polyder,
        np.polyint: polyint,
        np.polyadd: polyadd,
        np.polysub: polysub,
        np.polymul: polymul,
        np.polyfit: polyfit,
        np.fill_diagonal: _in_place_function(
            "fill_diagonal", "np.where(np.eye(n, dtype=bool), v, a)"
        ),
        np.put: _in_place_function("put", "np.where or indexing into a new array"),
        np.place: _in_place_function("place", "np.where(mask, values, a)"),
        np.putmask: _in_place_function("putmask", "np.where(mask, values, a)"),
        np.copyto: _in_place_function("copyto", "the source array itself"),
        np.put_along_axis: _in_place_function("put_along_axis", "np.where with a one-hot mask"),
    }
)
for _fn, _hint in [
    (np.unique, ""),
    (np.unique_values, ""),
    (np.unique_counts, ""),
    (np.unique_inverse, ""),
    (np.unique_all, ""),
    (np.nonzero, "; np.where(cond, x, y) selects without changing the shape"),
    (np.argwhere, "; np.where(cond, x, y) selects without changing the shape"),
    (np.flatnonzero, "; np.where(cond, x, y) selects without changing the shape"),
    (np.extract, "; np.where(cond, x, 0) keeps the shape"),
    (np.compress, "; np.where(cond, x, 0) keeps the shape"),
    (np.trim_zeros, ""),
    (np.linalg.lstsq, "; np.linalg.pinv(a) @ b gives the least-squares solution"),
    (np.bincount, "; a sum of one-hot rows, np.sum(x[:, None] == np.arange(n), 0), has n bins"),
    (np.intersect1d, ""),
    (np.union1d, ""),
    (np.setdiff1d, ""),
    (np.setxor1d, ""),
]:
    _mod = "numpy.linalg" if _fn.__module__.startswith("numpy.linalg") else "numpy"
    _MORE_FUNCTIONS[_fn] = _data_dependent(f"{_mod}.{_fn.__name__}", _hint)
HANDLED_FUNCTIONS.update(_MORE_FUNCTIONS)
HANDLED_UFUNCS.update(
    {
        np.modf: modf,
        np.divmod: divmod_,
        np.ldexp: ldexp,
        np.signbit: signbit,
        np.float_power: float_power,
        np.conjugate: conjugate,
        np.vecdot: vecdot,
        np.matvec: matvec,
        np.vecmat: vecmat,
    }
)


for _uf, _fn in list(HANDLED_UFUNCS.items()):
    if _uf.nin == 2 and _uf.nout == 1 and (_uf, "outer") not in HANDLED_UFUNC_METHODS:
        HANDLED_UFUNC_METHODS[(_uf, "outer")] = _ufunc_outer(_fn, _uf.__name__)
HANDLED_UFUNC_METHODS.update(
    {
        (np.add, "accumulate"): lambda a, axis=0, dtype=None, out=None: cumsum(a, axis, dtype, out),
        (np.multiply, "accumulate"): lambda a, axis=0, dtype=None, out=None: cumprod(
            a, axis, dtype, out
        ),
        (np.logaddexp, "reduce"): lambda a, axis=0, dtype=None, out=None, keepdims=False: logsumexp(
            _float_like(a) if dtype is None else astype(a, dtype), axis, keepdims
        ),
    }
)


def _m_view(a: Any, *args: Any, **kwargs: Any) -> Any:
    if args or kwargs:
        raise UnsupportedError(
            "ndarray.view(dtype) reinterprets the bytes, which graphc does not trace; "
            "use astype to convert values",
            user_location(),
        )
    return a


Tracer.view = _method("view", _m_view)

__all__ += [  # noqa: PLE0605
    n
    for n in (
        "einsum diff ediff1d sinc ptp pad nansum nanprod nanmax nanmin nanargmax nanargmin "
        "nanmean nanvar nanstd nancumsum nancumprod quantile percentile median nanquantile "
        "nanpercentile nanmedian cov corrcoef convolve correlate searchsorted interp trapezoid "
        "nan_to_num isclose polyval count_nonzero cumulative_sum cumulative_prod real imag "
        "conjugate conj signbit fix float_power isposinf isneginf isreal iscomplexobj isrealobj "
        "empty_like select flipud fliplr rot90 atleast_1d atleast_2d atleast_3d "
        "broadcast_arrays dstack column_stack append hsplit vsplit dsplit unstack "
        "matrix_transpose permute_dims diagflat vander cross kron vecdot matvec vecmat meshgrid "
        "linspace logspace SVDResult allclose array_equal array_equiv delete insert rollaxis "
        "geomspace gradient digitize isin choose piecewise angle iscomplex real_if_close "
        "triu_indices_from tril_indices_from diag_indices_from resize partition argpartition "
        "modf ldexp polyder polyint polyadd polysub polymul polyfit EighResult block lexsort "
        "unwrap QRResult"
    ).split()
    if n not in __all__
]
