"""Elementwise ops: unary math, binary arithmetic with NumPy broadcasting, comparisons, where.

Binary ops broadcast implicitly (NumPy rules) but require equal dtypes: the tracer inserts
explicit casts following NumPy's promotion, so the IR never promotes silently. Gradient rules
return cotangents of the output's shape; the autodiff pass sums them to each input's shape.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.ir import Aval, DTypeError, as_dtype
from graphc.ops.batching import batch_elementwise
from graphc.ops.registry import (
    Emitter,
    Facts,
    Kind,
    MathCall,
    Tape,
    Template,
    bind,
    broadcast_shapes,
    defop,
    require_float,
    same_dtype,
)


class Masked:
    """A cotangent known to be zero wherever `mask` is False (returned by `where`'s rule).

    The autodiff pass keeps the mask while it flows back through elementwise ops and re-applies
    it after each rule, so `0 * inf` from an untaken branch never turns into NaN.
    """

    __slots__ = ("value", "mask")

    def __init__(self, value: Any, mask: Any):
        self.value = value
        self.mask = mask


# ---------------------------------------------------------------------------------------------
# unary


def _same(op: str, *, float_only: bool = True):
    def rule(x: Aval) -> Aval:
        if float_only:
            require_float(op, x)
        return x

    return rule


def unary(
    name: str,
    impl,
    deriv=None,
    *,
    float_only: bool = True,
    vjp=None,
    jvp=None,
    differentiable: bool = True,
    doc: str = "",
    **kw: Any,
) -> None:
    """Register a unary elementwise op; `deriv(x, out)` gives both gradient rules at once.
    Its batching rule is the elementwise one."""
    if deriv is not None:
        vjp = vjp or (lambda g, out, x: (g * deriv(x, out),))
        jvp = jvp or (lambda ts, out, x: ts[0] * deriv(x, out))
    defop(
        name,
        Kind.ELEMENTWISE,
        _same(name, float_only=float_only),
        impl,
        arity=1,
        vjp=vjp,
        jvp=jvp,
        differentiable=differentiable,
        doc=doc,
        batch=batch_elementwise,
        **kw,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number never overflows; both branches are exact rearrangements
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_LN2, _LN10 = math.log(2.0), math.log(10.0)


def _sigmoid_expr(e: Any, dt: np.dtype, x: str) -> str:
    one = e.lit(1, dt)
    return f"({one} / ({one} + np.exp(-{x})))"


def _softplus_expr(e: Any, dt: np.dtype, x: str) -> str:
    return f"np.logaddexp({e.lit(0, dt)}, {x})"


def _erf_expr(e: Any, dt: np.dtype, x: str) -> str:
    return f"{e.scalar_type(dt)}(math.erf({x}))"


unary(
    "neg",
    np.negative,
    float_only=False,
    doc="-x",
    facts=Facts(linear=True, finite_if_operands=True),
    vjp=lambda g, out, x: (-g,),
    jvp=lambda ts, out, x: -ts[0],
    lowering=Template("(-{0})"),
    tape=Tape.MATH,
)
unary(
    "abs",
    np.abs,
    lambda x, out: np.sign(x),
    float_only=False,
    doc="|x|; derivative sign(x), so 0 at x = 0",
    lowering=Template("abs({0})"),
    tape=Tape.MATH,
    facts=Facts(idempotent=True, never_negative=True, finite_if_operands=True),
)


def _emit_sign(e, n, x: str) -> str:
    if n.dtype.kind != "f":
        return f"np.sign({x})"
    # NumPy's sign of -0.0 is +0.0 (Numba's keeps the sign); NaN stays NaN
    one, zero = e.lit(1, n.dtype), e.lit(0, n.dtype)
    return f"({one} if {x} > {zero} else (-{one} if {x} < {zero} else {x} + {zero}))"


unary(
    "sign",
    np.sign,
    float_only=False,
    differentiable=False,
    doc="sign(x), NaN for NaN, +0.0 for either zero; derivative 0",
    lowering=Emitter(_emit_sign),
    tape=Tape.MATH,
    facts=Facts(idempotent=True, finite_if_operands=True),
)
unary(
    "exp",
    np.exp,
    lambda x, out: out,
    doc="e ** x",
    lowering=MathCall("exp"),
    tape=Tape.MATH,
    facts=Facts(never_negative=True),
)
unary(
    "exp2",
    np.exp2,
    lambda x, out: out * _LN2,
    doc="2 ** x; derivative 2 ** x ln 2",
    lowering=MathCall("exp2"),
    tape=Tape.MATH,
)
unary(
    "log2",
    np.log2,
    lambda x, out: (1 / _LN2) / x,
    doc="base-2 logarithm (exact at powers of two); derivative 1/(x ln 2)",
    lowering=MathCall("log2"),
    tape=Tape.MATH,
)
unary(
    "log10",
    np.log10,
    lambda x, out: (1 / _LN10) / x,
    doc="base-10 logarithm (exact at powers of ten); derivative 1/(x ln 10)",
    lowering=MathCall("log10"),
    tape=Tape.MATH,
)
unary(
    "log",
    np.log,
    lambda x, out: 1 / x,
    doc="log x; derivative 1/x (inf at 0)",
    lowering=MathCall("log"),
    tape=Tape.MATH,
)
unary(
    "log1p",
    np.log1p,
    lambda x, out: 1 / (1 + x),
    doc="log(1 + x), accurate near 0",
    lowering=MathCall("log1p"),
    tape=Tape.MATH,
    facts=Facts(non_negative_if_operands=True),
)
unary(
    "expm1",
    np.expm1,
    lambda x, out: out + 1,
    doc="exp(x) - 1, accurate near 0",
    lowering=MathCall("expm1"),
    tape=Tape.MATH,
    facts=Facts(non_negative_if_operands=True),
)
unary(
    "sqrt",
    np.sqrt,
    lambda x, out: 0.5 / out,
    doc="sqrt x; derivative inf at 0",
    lowering=Template("np.sqrt({0})"),
    tape=Tape.MATH,
    facts=Facts(never_negative=True),
)
unary(
    "rsqrt",
    lambda x: (1 / np.sqrt(x)).astype(x.dtype),
    lambda x, out: -0.5 * out / x,
    doc="1 / sqrt(x); derivative -0.5 x^-1.5 (inf at 0)",
    lowering=Emitter(lambda e, n, x: f"({e.lit(1, n.dtype)} / np.sqrt({x}))"),
    tape=Tape.MATH,
)
unary(
    "square",
    np.square,
    lambda x, out: 2 * x,
    doc="x * x",
    float_only=False,
    lowering=Template("({0} * {0})"),
    tape=Tape.MATH,
    facts=Facts(never_negative=True),
)
unary(
    "sin",
    np.sin,
    lambda x, out: np.cos(x),
    doc="sine",
    lowering=MathCall("sin"),
    tape=Tape.MATH,
    facts=Facts(finite_if_operands=True),
)
unary(
    "cos",
    np.cos,
    lambda x, out: -np.sin(x),
    doc="cosine",
    lowering=MathCall("cos"),
    tape=Tape.MATH,
    facts=Facts(finite_if_operands=True),
)
unary(
    "tan",
    np.tan,
    lambda x, out: 1 + out * out,
    doc="tangent",
    lowering=MathCall("tan"),
    tape=Tape.MATH,
)
unary(
    "tanh",
    np.tanh,
    lambda x, out: 1 - out * out,
    doc="hyperbolic tangent",
    lowering=MathCall("tanh"),
    tape=Tape.MATH,
    facts=Facts(non_negative_if_operands=True, finite_if_operands=True),
)
unary(
    "sinh",
    np.sinh,
    lambda x, out: np.cosh(x),
    doc="hyperbolic sine (compiled from expm1: accurate near 0)",
    lowering=MathCall("sinh"),
)
unary(
    "cosh",
    np.cosh,
    lambda x, out: np.sinh(x),
    doc="hyperbolic cosine (compiled without overflowing before cosh itself does)",
    lowering=MathCall("cosh"),
)
unary(
    "arcsin",
    np.arcsin,
    lambda x, out: 1 / np.sqrt((1 - x) * (1 + x)),
    doc="inverse sine; derivative 1/sqrt(1 - x^2), inf at +-1",
    lowering=MathCall("asin", fallback="np.arcsin({0})"),
)
unary(
    "arccos",
    np.arccos,
    lambda x, out: -1 / np.sqrt((1 - x) * (1 + x)),
    doc="inverse cosine; derivative -1/sqrt(1 - x^2), -inf at +-1",
    lowering=MathCall("acos", fallback="np.arccos({0})"),
)
unary(
    "arctan",
    np.arctan,
    lambda x, out: 1 / (1 + x * x),
    doc="inverse tangent; derivative 1/(1 + x^2)",
    lowering=MathCall("atan", fallback="np.arctan({0})"),
)
unary(
    "arcsinh",
    np.arcsinh,
    lambda x, out: 1 / np.hypot(1, x),
    doc="inverse hyperbolic sine; derivative 1/sqrt(1 + x^2), without overflow",
    lowering=MathCall("asinh", fallback="np.arcsinh({0})"),
)
unary(
    "arccosh",
    np.arccosh,
    lambda x, out: 1 / np.sqrt((x - 1) * (x + 1)),
    doc="inverse hyperbolic cosine; derivative 1/sqrt(x^2 - 1), inf at 1",
    lowering=MathCall("acosh", fallback="np.arccosh({0})"),
)
unary(
    "arctanh",
    np.arctanh,
    lambda x, out: 1 / ((1 - x) * (1 + x)),
    doc="inverse hyperbolic tangent; derivative 1/(1 - x^2), inf at +-1",
    lowering=MathCall("atanh", fallback="np.arctanh({0})"),
)
unary(
    "cbrt",
    np.cbrt,
    lambda x, out: 1 / (3 * (out * out)),
    doc="cube root; derivative 1/(3 cbrt(x)^2), inf at 0",
    lowering=MathCall("cbrt"),
    tape=Tape.MATH,
)
unary(
    "sigmoid",
    _sigmoid,
    lambda x, out: out * (1 - out),
    doc="1/(1+exp(-x)), computed without overflow for any x",
    lowering=MathCall("sigmoid", fallback=_sigmoid_expr),
    tape=Tape.MATH,
    facts=Facts(never_negative=True, finite_if_operands=True),
)
unary(
    "relu",
    lambda x: np.maximum(x, 0).astype(x.dtype),
    vjp=lambda g, out, x: (np.where(x > 0, g, 0),),
    jvp=lambda ts, out, x: np.where(x > 0, ts[0], 0),
    float_only=False,
    doc="max(x, 0); derivative 0 at x = 0",
    lowering=Emitter(
        lambda e, n, x: f"({x} if not ({x} <= {e.lit(0, n.dtype)}) else {e.lit(0, n.dtype)})"
    ),
    tape=Tape.MATH,
    facts=Facts(idempotent=True, never_negative=True, finite_if_operands=True),
)
unary(
    "softplus",
    lambda x: np.logaddexp(0, x).astype(x.dtype),
    lambda x, out: bind("sigmoid", x),
    doc="log(1 + exp x), stable for large |x|",
    lowering=MathCall("softplus", fallback=_softplus_expr),
    tape=Tape.MATH,
    facts=Facts(never_negative=True),
)
unary(
    "erf",
    _erf,
    lambda x, out: _TWO_OVER_SQRT_PI * np.exp(-(x * x)),
    doc="the error function; derivative 2/sqrt(pi) exp(-x^2)",
    lowering=MathCall("erf", fallback=_erf_expr),
    tape=Tape.MATH,
    facts=Facts(non_negative_if_operands=True, finite_if_operands=True),
)
unary(
    "floor",
    np.floor,
    differentiable=False,
    doc="derivative 0",
    lowering=Template("np.floor({0})"),
    tape=Tape.MATH,
    facts=Facts(idempotent=True, non_negative_if_operands=True, finite_if_operands=True),
)
unary(
    "ceil",
    np.ceil,
    differentiable=False,
    doc="derivative 0",
    lowering=Template("np.ceil({0})"),
    tape=Tape.MATH,
    facts=Facts(idempotent=True, non_negative_if_operands=True, finite_if_operands=True),
)
unary(
    "trunc",
    np.trunc,
    differentiable=False,
    doc="round towards 0; derivative 0",
    lowering=Template("np.trunc({0})"),
    facts=Facts(idempotent=True, non_negative_if_operands=True, finite_if_operands=True),
)
unary(
    "round",
    np.round,
    differentiable=False,
    doc="round half to even; derivative 0",
    lowering=Template("np.rint({0})"),
    tape=Tape.MATH,
    facts=Facts(idempotent=True, non_negative_if_operands=True, finite_if_operands=True),
)
unary(
    "stop_gradient",
    lambda x: x,
    float_only=False,
    differentiable=False,
    doc="identity whose derivative is taken to be 0",
    lowering=Template("{0}"),
    tape=Tape.COPY,
    facts=Facts(idempotent=True, non_negative_if_operands=True, finite_if_operands=True),
)


def _bool_rule(op: str):
    def rule(x: Aval) -> Aval:
        return Aval(x.shape, np.bool_)

    return rule


defop(
    "isfinite",
    Kind.ELEMENTWISE,
    _bool_rule("isfinite"),
    np.isfinite,
    doc="not inf and not nan; derivative 0",
    arity=1,
    differentiable=False,
    lowering=Emitter(
        lambda e, n, x: f"np.isfinite({x})" if n.inputs[0].dtype.kind == "f" else "True"
    ),
    tape=Tape.MATH,
    batch=batch_elementwise,
)
defop(
    "logical_not",
    Kind.ELEMENTWISE,
    _bool_rule("logical_not"),
    np.logical_not,
    doc="boolean not",
    arity=1,
    differentiable=False,
    lowering=Template("(not {0})"),
    tape=Tape.LOGIC,
    batch=batch_elementwise,
)


def _cast_rule(x: Aval, *, dtype: Any) -> Aval:
    return Aval(x.shape, as_dtype(dtype))


def _cast_vjp(g, out, x, *, dtype):
    if x.dtype.kind == "f" and as_dtype(dtype).kind == "f":
        return (g.astype(x.dtype),)
    return (None,)


def _cast_jvp(ts, out, x, *, dtype):
    if ts[0] is None or as_dtype(dtype).kind != "f":
        return None
    return ts[0].astype(dtype)


defop(
    "cast",
    Kind.ELEMENTWISE,
    _cast_rule,
    lambda x, *, dtype: x.astype(as_dtype(dtype)),
    arity=1,
    vjp=_cast_vjp,
    jvp=_cast_jvp,
    doc="x.astype(dtype)",
    facts=Facts(linear=True),
    lowering=Emitter(lambda e, n, x: e.cast(x, n.inputs[0].dtype, n.dtype)),
    tape=Tape.COPY,
    batch=batch_elementwise,
)


def _ipow_rule(x: Aval, *, n: int) -> Aval:
    if x.dtype.kind not in "fiu":
        raise DTypeError(f"integer_pow: needs a numeric operand, got {x}")
    if n < 0 and x.dtype.kind != "f":
        raise DTypeError("integer_pow: integers to negative powers are not allowed")
    return x


def _ipow_deriv(x, n):
    if n == 0:
        return None
    if n == 1:
        return 1
    return n * (x if n == 2 else bind("integer_pow", x, n=n - 1))


def _ipow_vjp(g, out, x, *, n):
    d = _ipow_deriv(x, n)
    return (None if d is None else g * d,)


def _ipow_jvp(ts, out, x, *, n):
    d = _ipow_deriv(x, n)
    return None if d is None else ts[0] * d


defop(
    "integer_pow",
    Kind.ELEMENTWISE,
    _ipow_rule,
    lambda x, *, n: np.power(x, n).astype(x.dtype),
    arity=1,
    vjp=_ipow_vjp,
    jvp=_ipow_jvp,
    lowering=Emitter(lambda e, node, x: e.integer_pow(x, node.attrs["n"], node.dtype)),
    doc="x ** n for a fixed integer n (what `x ** 2` traces to)",
    tape=Tape.OWN,
    batch=batch_elementwise,
)


# ---------------------------------------------------------------------------------------------
# binary


def _binary_rule(
    op: str, *, out_bool: bool = False, float_only: bool = False, bool_only: bool = False
):
    def rule(x: Aval, y: Aval) -> Aval:
        shape = broadcast_shapes(op, x, y)
        dt = same_dtype(op, x, y)
        if float_only:
            require_float(op, x)
        if bool_only and dt != np.bool_:
            raise DTypeError(f"{op}: needs boolean operands, got {x}, {y}")
        return Aval(shape, np.bool_ if out_bool else dt)

    return rule


def binary(
    name: str,
    impl,
    *,
    vjp=None,
    jvp=None,
    out_bool=False,
    float_only=False,
    bool_only=False,
    differentiable=True,
    doc: str = "",
    **kw: Any,
) -> None:
    """Register a binary elementwise op (NumPy broadcasting, equal dtypes); its batching rule
    is the elementwise one."""
    defop(
        name,
        Kind.ELEMENTWISE,
        _binary_rule(name, out_bool=out_bool, float_only=float_only, bool_only=bool_only),
        impl,
        arity=2,
        vjp=vjp,
        jvp=jvp,
        differentiable=differentiable,
        doc=doc,
        batch=batch_elementwise,
        **kw,
    )


def _add_jvp(ts, out, x, y):
    tx, ty = ts
    if tx is None:
        return ty
    return tx if ty is None else tx + ty


def _sub_jvp(ts, out, x, y):
    tx, ty = ts
    if ty is None:
        return tx
    return -ty if tx is None else tx - ty


def _sum_terms(*terms):
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    acc = terms[0]
    for t in terms[1:]:
        acc = acc + t
    return acc


def _mul_jvp(ts, out, x, y):
    tx, ty = ts
    return _sum_terms(None if tx is None else tx * y, None if ty is None else x * ty)


def _div_jvp(ts, out, x, y):
    tx, ty = ts
    return _sum_terms(None if tx is None else tx / y, None if ty is None else -(out * ty) / y)


def _pow_dx(out, x, y):
    # d/dx x**y = y * x**(y-1); taken as 0 where y == 0 so that 0**0 has derivative 0
    return np.where(y == 0, 0, y * x ** (y - 1))


def _pow_dy(out, x, y):
    # d/dy x**y = log(x) * x**y; taken as 0 at x == 0 (where x**y is 0 or 1 for y >= 0)
    return np.where(x == 0, 0, np.log(np.where(x == 0, 1, x)) * out)


def _pow_jvp(ts, out, x, y):
    tx, ty = ts
    return _sum_terms(
        None if tx is None else tx * _pow_dx(out, x, y),
        None if ty is None else ty * _pow_dy(out, x, y),
    )


def _wins(pick):
    """(x wins, y wins) for maximum/minimum: `pick` is np.greater or np.less."""
    return (lambda x, y: pick(x, y)), (lambda x, y: pick(y, x))


def _nan_loses(pick):
    """(x wins, y wins) for fmax/fmin: a NaN operand loses to a number."""
    return (lambda x, y: pick(x, y) | (y != y)), (lambda x, y: pick(y, x) | (x != x))


def _minmax_vjp(wins):
    # ties split the cotangent equally between the operands (as JAX and PyTorch do)
    x_wins, y_wins = wins

    def vjp(g, out, x, y):
        half = g * 0.5
        gx = np.where(x_wins(x, y), g, np.where(x == y, half, 0))
        gy = np.where(y_wins(x, y), g, np.where(x == y, half, 0))
        return gx, gy

    return vjp


def _minmax_jvp(wins):
    x_wins = wins[0]

    def jvp(ts, out, x, y):
        tx, ty = ts
        tx = 0 if tx is None else tx
        ty = 0 if ty is None else ty
        return np.where(x_wins(x, y), tx, np.where(x == y, (tx + ty) * 0.5, ty))

    return jvp


binary(
    "add",
    np.add,
    doc="x + y",
    vjp=lambda g, out, x, y: (g, g),
    jvp=_add_jvp,
    facts=Facts(linear=True, non_negative_if_operands=True),
    lowering=Template("({0} + {1})"),
    tape=Tape.MATH,
)
binary(
    "sub",
    np.subtract,
    doc="x - y",
    vjp=lambda g, out, x, y: (g, -g),
    jvp=_sub_jvp,
    facts=Facts(linear=True),
    lowering=Template("({0} - {1})"),
    tape=Tape.MATH,
)
binary(
    "mul",
    np.multiply,
    doc="x * y",
    vjp=lambda g, out, x, y: (g * y, g * x),
    jvp=_mul_jvp,
    lowering=Template("({0} * {1})"),
    tape=Tape.MATH,
    facts=Facts(non_negative_if_operands=True),
)
binary(
    "div",
    np.true_divide,
    doc="x / y (true division)",
    float_only=True,
    lowering=Template("({0} / {1})"),
    vjp=lambda g, out, x, y: (g / y, -(g * out) / y),
    jvp=_div_jvp,
    tape=Tape.MATH,
)
binary(
    "pow",
    np.power,
    float_only=True,
    lowering=Template("({0} ** {1})"),
    vjp=lambda g, out, x, y: (g * _pow_dx(out, x, y), g * _pow_dy(out, x, y)),
    jvp=_pow_jvp,
    doc="x ** y; d/dx is inf at x = 0 for 0 < y < 1 (x**0.5 at 0), and 0 where y == 0",
    tape=Tape.MATH,
)
binary(
    "maximum",
    np.maximum,
    vjp=_minmax_vjp(_wins(np.greater)),
    jvp=_minmax_jvp(_wins(np.greater)),
    lowering=Template("({0} if ({0} > {1} or {0} != {0}) else {1})"),
    doc="ties split the gradient equally",
    tape=Tape.MATH,
    facts=Facts(finite_if_operands=True),
)
binary(
    "minimum",
    np.minimum,
    vjp=_minmax_vjp(_wins(np.less)),
    jvp=_minmax_jvp(_wins(np.less)),
    lowering=Template("({0} if ({0} < {1} or {0} != {0}) else {1})"),
    doc="ties split the gradient equally",
    tape=Tape.MATH,
    facts=Facts(non_negative_if_operands=True, finite_if_operands=True),
)


def _nonzero(h):
    """h with zeros replaced by 1: (x / h) / h is then 0, not NaN, at the origin."""
    return np.where(h == 0, 1, h)


def _hypot_jvp(ts, out, x, y):
    tx, ty = ts
    h = _nonzero(out)
    return _sum_terms(None if tx is None else tx * (x / h), None if ty is None else ty * (y / h))


def _atan2_grads(out, y, x):
    h = _nonzero(np.hypot(x, y))
    return (x / h) / h, -((y / h) / h)  # d/dy, d/dx


def _atan2_jvp(ts, out, y, x):
    ty, tx = ts
    dy, dx = _atan2_grads(out, y, x)
    return _sum_terms(None if ty is None else ty * dy, None if tx is None else tx * dx)


def _mod_vjp(quot):
    def vjp(g, out, x, y):
        return g, -(g * quot(x / y))

    return vjp


def _mod_jvp(quot):
    def jvp(ts, out, x, y):
        tx, ty = ts
        return _sum_terms(tx, None if ty is None else -(ty * quot(x / y)))

    return jvp


def _heaviside_emit(e, n, x, h):
    zero, one = e.lit(0, n.dtype), e.lit(1, n.dtype)
    return (
        f"({x} if {x} != {x} else ({zero} if {x} < {zero} else ({h} if {x} == {zero} else {one})))"
    )


binary(
    "arctan2",
    np.arctan2,
    float_only=True,
    vjp=lambda g, out, y, x: tuple(g * d for d in _atan2_grads(out, y, x)),
    jvp=_atan2_jvp,
    lowering=MathCall("atan2", fallback="np.arctan2({0}, {1})"),
    doc="the angle of the point (x, y), operands (y, x); gradient (x, -y) / (x^2 + y^2), 0 at 0",
)
binary(
    "hypot",
    np.hypot,
    float_only=True,
    vjp=lambda g, out, x, y: (g * (x / _nonzero(out)), g * (y / _nonzero(out))),
    jvp=_hypot_jvp,
    lowering=MathCall("hypot"),
    doc="sqrt(x^2 + y^2) without overflow; gradient (x, y) / out, 0 at the origin",
)
binary(
    "fmax",
    np.fmax,
    vjp=_minmax_vjp(_nan_loses(np.greater)),
    jvp=_minmax_jvp(_nan_loses(np.greater)),
    lowering=Template("({0} if ({0} >= {1} or {1} != {1}) else {1})"),
    doc="maximum ignoring NaN (NaN only if both are); ties split the gradient equally",
)
binary(
    "fmin",
    np.fmin,
    vjp=_minmax_vjp(_nan_loses(np.less)),
    jvp=_minmax_jvp(_nan_loses(np.less)),
    lowering=Template("({0} if ({0} <= {1} or {1} != {1}) else {1})"),
    doc="minimum ignoring NaN (NaN only if both are); ties split the gradient equally",
)
binary(
    "copysign",
    np.copysign,
    float_only=True,
    vjp=lambda g, out, x, y: (g * (np.sign(x) * np.copysign(1, y)), None),
    jvp=lambda ts, out, x, y: None if ts[0] is None else ts[0] * (np.sign(x) * np.copysign(1, y)),
    lowering=Template("np.copysign({0}, {1})"),
    doc="|x| with the sign bit of y; d/dx sign(x) * sign(y) (0 at x = 0), d/dy 0",
)
binary(
    "heaviside",
    np.heaviside,
    float_only=True,
    vjp=lambda g, out, x, h: (None, np.where(x == 0, g, 0)),
    jvp=lambda ts, out, x, h: None if ts[1] is None else np.where(x == 0, ts[1], 0),
    lowering=Emitter(_heaviside_emit),
    doc="0 for x < 0, h at x = 0, 1 for x > 0; derivative 0 in x, 1 in h where x == 0",
)
binary(
    "fmod",
    np.fmod,
    float_only=True,
    vjp=_mod_vjp(np.trunc),
    jvp=_mod_jvp(np.trunc),
    lowering=Template("np.fmod({0}, {1})"),
    doc="C's remainder, sign of x; d/dx 1, d/dy -trunc(x/y)",
)
binary(
    "remainder",
    np.remainder,
    float_only=True,
    vjp=_mod_vjp(np.floor),
    jvp=_mod_jvp(np.floor),
    lowering=MathCall("remainder"),
    doc="Python's x % y, sign of y (a zero result too); d/dx 1, d/dy -floor(x/y)",
)
binary(
    "floor_divide",
    np.floor_divide,
    float_only=True,
    differentiable=False,
    lowering=MathCall("floor_divide"),  # Numba's np.floor_divide is floor(x / y): 1 // 0.1 = 10
    doc="Python's x // y for floats; derivative 0",
)
for _name, _fn, _sym in [
    ("lt", np.less, "<"),
    ("le", np.less_equal, "<="),
    ("gt", np.greater, ">"),
    ("ge", np.greater_equal, ">="),
    ("eq", np.equal, "=="),
    ("ne", np.not_equal, "!="),
]:
    binary(
        _name,
        _fn,
        out_bool=True,
        differentiable=False,
        lowering=Template(f"({{0}} {_sym} {{1}})"),
        tape=Tape.MATH,
        doc=f"x {_sym} y; derivative 0",
    )
binary(
    "logical_and",
    np.logical_and,
    doc="boolean and",
    bool_only=True,
    differentiable=False,
    lowering=Template("({0} & {1})"),
    tape=Tape.LOGIC,
)
binary(
    "logical_or",
    np.logical_or,
    doc="boolean or",
    bool_only=True,
    differentiable=False,
    lowering=Template("({0} | {1})"),
    tape=Tape.LOGIC,
)
binary(
    "logical_xor",
    np.logical_xor,
    doc="boolean exclusive or",
    bool_only=True,
    differentiable=False,
    lowering=Template("({0} ^ {1})"),
    tape=Tape.LOGIC,
)


# ---------------------------------------------------------------------------------------------
# where


def _where_rule(c: Aval, x: Aval, y: Aval) -> Aval:
    if c.dtype != np.bool_:
        raise DTypeError(f"where: condition must be boolean, got {c}")
    shape = broadcast_shapes("where", c, x, y)
    return Aval(shape, same_dtype("where", x, y))


def _where_vjp(g, out, c, x, y):
    zero = np.zeros((), g.dtype)
    return (None, Masked(np.where(c, g, zero), c), Masked(np.where(c, zero, g), np.logical_not(c)))


def _where_jvp(ts, out, c, x, y):
    _, tx, ty = ts
    if tx is None and ty is None:
        return None
    zero = np.zeros((), out.dtype)
    return np.where(c, zero if tx is None else tx, zero if ty is None else ty)


defop(
    "where",
    Kind.ELEMENTWISE,
    _where_rule,
    np.where,
    arity=3,
    vjp=_where_vjp,
    lowering=Template("({1} if {0} else {2})"),
    jvp=_where_jvp,
    doc="c ? x : y; the untaken branch gets an exactly zero gradient, even where it is not finite",
    tape=Tape.OWN,
    batch=batch_elementwise,
)
