"""Elementwise functions: NumPy's ufuncs on tracers (each applies one IR op after NumPy's own
promotion, with explicit casts), the functions built from them (logaddexp, isclose, round to
decimals, ...), and the activations NumPy lacks (relu, sigmoid, gelu, ...)."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import DTypeError, GraphcError, make_const
from graphc.numpy._core import (
    _RESOLVED,
    _asarr,
    _convert,
    _dtype_token,
    _no_extras,
    _promote_all,
    _resolve,
    _static_int,
    astype,
)
from graphc.ops import apply
from graphc.trace import Tracer, UnsupportedError, bind, trace_meta, user_location


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

    outs = (None,) * ufunc.nout

    def fast(args: tuple) -> Tracer | None:
        # what `handler` does when no operand needs a cast and no check can fail: tracers of
        # the dtypes NumPy's promotion keeps, Python numbers for a float result (the common
        # case of tracing and of every gradient rule), without the general path's layers.
        # None: the general path decides (and reports whatever is wrong)
        tokens = []
        for a in args:
            t = type(a)
            if t is Tracer:
                tokens.append(float if a.weak else a.node.aval.dtype)
            elif t is float or t is int:
                tokens.append(t)
            else:
                return None
        dts = _RESOLVED.get((ufunc, tuple(tokens) + outs))
        if dts is None:
            return None
        meta = None
        nodes = []
        for a, d in zip(args, dts, strict=False):
            if type(a) is Tracer:
                if a.node.aval.dtype != d:
                    return None
                nodes.append(a.node)
            elif d.kind == "f":
                if meta is None:
                    meta = trace_meta()
                nodes.append(make_const(np.asarray(a).astype(d), meta=meta))
            else:
                return None
        try:
            node = apply(op, nodes, None, trace_meta() if meta is None else meta)
        except GraphcError:
            return None
        return Tracer(node)

    handler.fast = fast  # type: ignore[attr-defined]
    handler.__name__ = ufunc.__name__
    return handler


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


def _round_whole(x: Any, decimals: int = 0, out: Any = None) -> Any:
    _no_extras("round", out)
    if decimals != 0:
        raise UnsupportedError("np.round: only decimals=0 is supported", user_location())
    if _asarr(x).dtype.kind in "iu":  # NumPy returns integers unchanged (same dtype)
        return _asarr(x)
    return rint(x)


def round(x: Any, decimals: int = 0, out: Any = None) -> Any:
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


FUNCTIONS: dict[Callable, Callable] = {
    np.where: where,
    np.clip: clip,
    np.round: round,
    np.around: around,
    np.sinc: sinc,
    np.nan_to_num: nan_to_num,
    np.isclose: isclose,
    np.isposinf: isposinf,
    np.isneginf: isneginf,
    np.fix: fix,
}


UFUNCS: dict[np.ufunc, Callable] = {
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
    np.modf: modf,
    np.divmod: divmod_,
    np.ldexp: ldexp,
    np.signbit: signbit,
    np.float_power: float_power,
}
