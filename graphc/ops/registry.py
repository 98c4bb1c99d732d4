"""The op registry: everything about an op in one entry.

An `OpDef` carries the op's name, kind, shape+dtype rule, NumPy reference implementation, gradient
rules and (when it has one) its Numba emitter. Passes ask about an op's `kind`, never its name.

Gradient rules are written with NumPy operators on graph values: the autodiff pass calls them on
tracers, so `lambda g, out, x: (g * (1 - out * out),)` produces ordinary IR for tanh's backward.
Rules that need an op NumPy lacks call `bind("op", ...)`, which asks a traced operand to record
the node (its type's `__graphc_bind__`) and computes at once on arrays.

Example:
    >>> from graphc.ops import REGISTRY
    >>> REGISTRY["tanh"].kind
    <Kind.ELEMENTWISE: 'elementwise'>
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.ir import (
    Aval,
    DTypeError,
    GraphcError,
    Meta,
    Node,
    ShapeError,
    TupleAval,
    dtype_name,
    make_const,
)


class Kind(enum.Enum):
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    SHAPE = "shape"
    CONTRACTION = "contraction"
    OTHER = "other"
    SOURCE = "source"  # inputs and constants


ShapeRule = Callable[..., "Aval | TupleAval"]


# ---------------------------------------------------------------------------------------------
# typed facts about an op


@dataclass(frozen=True)
class Facts:
    """Algebraic and value-range facts that passes may rely on.

    linear                    linear in every operand that has a gradient (autodiff transposes it)
    idempotent                f(f(x)) == f(x) (abs, relu, floor, ...)
    value_preserving          moves or repeats elements without changing the set of values
    never_negative            a float result is never negative (NaN allowed)
    non_negative_if_operands  non-negative operands give a non-negative result
    finite_if_operands        finite operands give a finite result

    Example:
        >>> get("exp").facts.never_negative
        True
    """

    linear: bool = False
    idempotent: bool = False
    value_preserving: bool = False
    never_negative: bool = False
    non_negative_if_operands: bool = False
    finite_if_operands: bool = False


class Fusion(enum.Enum):
    """What a fused kernel can do with the op."""

    NONE = "none"  # a kernel boundary: runs on its own (contractions, gathers, dedicated kernels)
    ELEMENTWISE = "elementwise"  # one scalar expression per element
    VIEW = "view"  # read through the kernel's index arithmetic, no code of its own
    REDUCTION = "reduction"  # accumulated in the kernel's loops; `OpDef.reduction` says how


class Tape(enum.Enum):
    """How the tape machine (codegen/vm.py) runs the op, if at all."""

    NONE = "none"
    MATH = "math"  # an instruction on registers of the group's float dtype
    LOGIC = "logic"  # an instruction whose operands are booleans (registers hold 0 or 1)
    COPY = "copy"  # a register copy (views, casts the machine represents alike)
    OWN = "own"  # an instruction with an attribute operand, written out in vm.py


# lowerings: how generated code computes the op


@dataclass(frozen=True)
class Template:
    """A scalar expression with operands {0}, {1}, ...: `Template("({0} + {1})")`."""

    text: str


@dataclass(frozen=True)
class Emitter:
    """fn(ctx, node, *operand_expressions) -> scalar expression, for lowerings that depend on
    dtypes or attributes (ctx is codegen's EmitContext: literals, casts, math calls)."""

    fn: Callable[..., str]


@dataclass(frozen=True)
class MathCall:
    """A call of a math function: graphc's vectorisable version (codegen/mathlib.py) where it
    has one for the dtype, else `fallback`: a template over the operands (e.g.
    "np.arcsin({0})") or fn(ctx, dtype, *operands) -> expression; default np.<name>(...)."""

    name: str
    fallback: str | Callable[..., str] | None = None


@dataclass(frozen=True)
class Dedicated:
    """The op runs a dedicated compiled kernel of codegen/special.py named `name`."""

    name: str


Lowering = Template | Emitter | MathCall | Dedicated


@dataclass
class OpDef:
    """Everything graphc knows about one op.

    shape(*avals, **attrs) -> Aval       the shape+dtype rule; raises ShapeError on bad operands
    impl(*arrays, **attrs) -> ndarray    the NumPy reference (the interpreter runs this)
    vjp(g, out, *xs, **attrs) -> tuple   input cotangents (None = no gradient), built from graph ops
    jvp(ts, out, *xs, **attrs) -> value  output tangent from input tangents (None = zero)
    facts                                algebraic and value-range facts (Facts)
    fusion                               what a fused kernel does with it (default from kind)
    reduction                            for fused reductions: "sum", "prod", "max" or "min"
    tape                                 how the tape machine runs it (Tape.NONE: it does not)
    lowering                             how generated code computes it (None: NumPy fallback)
    prune(node, used) -> (node, {old: new}) | None
                                         for ops with several results: the node rebuilt to
                                         compute fewer results (at least `used`) or read fewer
                                         operands, with the new index of each kept result;
                                         None when nothing can go (dead-code elimination)
    regions                              the graphs the op holds in its attributes are programs
                                         of their own (a loop's body, a branch): the pass
                                         pipeline optimizes them like the top graph. False for
                                         a fused kernel, whose body is already-optimized code
                                         that must not be fused again
    inline(node) -> [result nodes]       for ops that call a region once (a checkpoint, a
                                         function with custom derivatives): the region's
                                         computation spliced into the enclosing graph, which
                                         the `inline` pass does before fusion
    batch(bt, dims, *xs, **attrs) -> (value, dim) | (values, dims)
                                         the batching rule (vmap): the op applied to operands
                                         that carry a batch axis at dims[k] (None: unbatched),
                                         built from graph ops, and where the result's batch
                                         axis is (lists for several results); `bt` is the
                                         batching pass's context (graphc/ops/batching.py).
                                         None: vmap runs the op in a loop over the batch
    """

    name: str
    kind: Kind
    shape: ShapeRule
    impl: Callable[..., Any]
    arity: int | None = None  # None: variadic
    vjp: Callable[..., tuple] | None = None
    jvp: Callable[..., Any] | None = None
    differentiable: bool = True  # False: the op has derivative zero (comparisons, floor, argmax)
    doc: str = ""
    facts: Facts = field(default_factory=Facts)
    fusion: Fusion | None = None
    reduction: str | None = None
    tape: Tape = Tape.NONE
    lowering: Lowering | None = None
    prune: Callable[[Node, set[int]], tuple[Node, dict[int, int]] | None] | None = None
    regions: bool = False
    inline: Callable[[Node], list[Node]] | None = None
    batch: Callable[..., tuple] | None = None

    def __post_init__(self) -> None:
        if self.fusion is None:
            self.fusion = (
                Fusion.REDUCTION
                if self.reduction
                else Fusion.ELEMENTWISE
                if self.kind is Kind.ELEMENTWISE
                else Fusion.NONE
            )
        if self.fusion is Fusion.REDUCTION and self.reduction not in _COMBINES:
            raise GraphcError(
                f"op {self.name!r}: a fused reduction needs reduction= one of {_COMBINES}"
            )
        if self.fusion is Fusion.ELEMENTWISE and not isinstance(
            self.lowering, (Template, Emitter, MathCall)
        ):
            raise GraphcError(f"op {self.name!r}: an elementwise fused op needs a scalar lowering")
        if self.differentiable and (self.vjp is None) != (self.jvp is None):
            missing = "jvp" if self.jvp is None else "vjp"
            raise GraphcError(
                f"op {self.name!r} is differentiable but has no {missing} rule: give both rules, "
                "or differentiable=False for an op whose derivative is zero"
            )

    def __repr__(self) -> str:
        return f"<op {self.name} ({self.kind.value})>"


_COMBINES = ("sum", "prod", "max", "min")
REGISTRY: dict[str, OpDef] = {}


def defop(name: str, kind: Kind, shape: ShapeRule, impl: Callable[..., Any], **kw: Any) -> OpDef:
    """Register an op. Re-registering a name is an error (one place per op).

    Example:
        >>> defop("my_neg", Kind.ELEMENTWISE, lambda a: a, np.negative, arity=1,
        ...       vjp=lambda g, out, x: (-g,), jvp=lambda ts, out, x: -ts[0],
        ...       lowering=Template("(-{0})"), tape=Tape.MATH, facts=Facts(linear=True))
        <op my_neg (elementwise)>
    """
    if name in REGISTRY:
        raise GraphcError(f"op {name!r} is already registered")
    op = OpDef(name, kind, shape, impl, **kw)
    REGISTRY[name] = op
    return op


_ATTRIBUTES: dict[str, tuple[frozenset[str], frozenset[str] | None]] = {}


def attribute_problem(op: OpDef, attrs: dict[str, Any]) -> str | None:
    """What is wrong with a node's attribute names for `op` (a required one missing, one the
    op does not take), read from the keyword parameters of its shape rule; None when fine.

    Example:
        >>> attribute_problem(get("reduce_sum"), {"keepdims": False})
        "reduce_sum needs the attribute 'axes'"
    """
    if op.name not in _ATTRIBUTES:
        try:
            params = list(inspect.signature(op.shape).parameters.values())
        except (TypeError, ValueError):
            params = []
        required = {p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
        names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        anything = any(p.kind is p.VAR_KEYWORD for p in params)
        _ATTRIBUTES[op.name] = (frozenset(required), None if anything else frozenset(names))
    required, accepted = _ATTRIBUTES[op.name]
    missing = sorted(required - set(attrs))
    if missing:
        return f"{op.name} needs the attribute {missing[0]!r}"
    unknown = [] if accepted is None else sorted(set(attrs) - accepted)
    if unknown:
        return f"{op.name} has no attribute {unknown[0]!r}"
    return None


def get(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise GraphcError(f"unknown op {name!r}") from None


def apply(
    op: str, inputs: Sequence[Node], attrs: dict[str, Any] | None = None, meta: Meta | None = None
) -> Node:
    """Create a node, running the op's shape rule. Raises ShapeError with the op's name."""
    d = get(op)
    attrs = attrs or {}
    if d.arity is not None and len(inputs) != d.arity:
        raise ShapeError(f"{op} takes {d.arity} operands, got {len(inputs)}")
    aval = d.shape(*[i.aval for i in inputs], **attrs)
    return Node(op, inputs, attrs, aval, meta)


# ---------------------------------------------------------------------------------------------
# building values inside gradient rules


def bind(op: str, *args: Any, **attrs: Any) -> Any:
    """Apply the registered op `op` to its operands.

    An operand whose type defines `__graphc_bind__(self, op, args, attrs)` decides what that
    means (the tracer records a node; the first such operand is asked, as NumPy asks the first
    operand with `__array_function__`). Otherwise every operand is concrete: the op's shape rule
    checks them, then its NumPy implementation runs at once.

    Example:
        >>> bind("add", np.ones(2), np.ones(2))
        array([2., 2.])
        >>> bind("reduce_sum", np.ones((2, 3)), axes=(1,), keepdims=False)
        array([3., 3.])
    """
    for a in args:
        hook = getattr(type(a), "__graphc_bind__", None)
        if hook is not None:
            return hook(a, op, args, attrs)
    d = get(op)
    arrs = [np.asarray(a) for a in args]
    out_aval = apply(op, [make_const(a) for a in arrs], attrs).aval
    return np.asarray(d.impl(*arrs, **attrs), dtype=out_aval.dtype)


# ---------------------------------------------------------------------------------------------
# shape-rule helpers


def fmt(*avals: Aval) -> str:
    return ", ".join(str(a) for a in avals)


def broadcast_shapes(op: str, *avals: Aval) -> tuple[int, ...]:
    first = avals[0].shape
    if all(a.shape == first for a in avals):  # the common case, without NumPy's machinery
        return first
    # scalars broadcast to anything: an array and scalars (x * 2.0) is the next common case
    shaped = [a.shape for a in avals if a.shape]
    if shaped and all(s == shaped[0] for s in shaped):
        return shaped[0]
    try:
        return tuple(np.broadcast_shapes(*[a.shape for a in avals]))
    except ValueError:
        raise ShapeError(f"{op}: operand shapes {fmt(*avals)} do not broadcast together") from None


def same_dtype(op: str, *avals: Aval) -> np.dtype:
    dt = avals[0].dtype
    for a in avals:
        if a.dtype != dt:
            raise DTypeError(f"{op}: operand dtypes differ ({fmt(*avals)})")
    return dt


def require_float(op: str, a: Aval) -> None:
    if a.dtype.kind != "f":
        raise DTypeError(f"{op}: needs a floating-point operand, got {a}")


def require_int(op: str, a: Aval) -> None:
    if a.dtype.kind not in "iu":
        raise DTypeError(f"{op}: index operand must be an integer array, got {a}")


def norm_axes(op: str, axes: Any, ndim: int) -> tuple[int, ...]:
    """Normalise an axis spec (None, int, tuple) to a sorted tuple of non-negative axes."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for a {ndim}-d operand")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def short(dt: np.dtype) -> str:
    return dtype_name(dt)
