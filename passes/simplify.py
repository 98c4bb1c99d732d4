"""Algebraic simplification: small local rewrites, applied bottom-up until nothing changes.

Each identity is one small function `rewrite(node) -> Node | None` with a docstring;
`REWRITES` lists them per op, and every elementwise op also gets `ELEMENTWISE_REWRITES`
(constant-operand canonicalisation). A rewrite returns a node of exactly the same type (shape
and dtype) as the one it replaces: where an identity would change the shape (`x * ones(4, 3)`
with `x` of shape (3,)), the result is `broadcast_to(x, (4, 3))`, or the rewrite does not apply.

Besides the textbook identities, two rewrites target what the autodiff pass leaves behind:
`reshape(reduce_sum(x, keepdims=True))` (sum_to_shape) becomes `reduce_sum(x, keepdims=False)`,
and `where(c, where(c, 1, 0) * g, 0)` (a masked cotangent) becomes `where(c, g, 0)`. An explicit
`broadcast_to` operand of an elementwise op is dropped when implicit broadcasting gives the same
type.

A "constant 1" (or 0) is a `const` whose every element is 1, possibly seen through `reshape`,
`broadcast_to` and `transpose` (`broadcast_to(reshape(1.0, (1, 1)), (3, 16))`, the VJP seeds'
shape). Such operands of elementwise ops are replaced by the scalar itself when implicit
broadcasting gives the same type, so later rewrites see plain scalars.

Numerics: what is exact, and what is not.
- Exact for every input, NaN and inf included: x*1, x/1, x-0, x**1, neg(neg x), a+(-b) = a-b,
  a-(-b) = a+b, x*(-1) = -x, the shape-op identities, where/cast identities, integer_pow 0
  (x**0 is 1 even for NaN, as in NumPy).
- x+0 -> x, 0-x -> -x and x*0 -> 0 ignore the sign of zero (as C compilers do under
  -fno-signed-zeros): -0.0 + 0.0 is +0.0 but the rewrite gives -0.0, 0.0 - 0.0 is +0.0 but
  -(0.0) is -0.0. The two zeros compare equal; only dividing by the zero (or a negative power
  of it) tells them apart, 1/-0.0 being -inf.
- x*0 is *not* 0 for a float x that is inf or NaN (it is NaN). So x*0 -> 0 only where x cannot
  be inf or NaN: integer and boolean dtypes, finite constants, and values that are finite by
  construction (`known_finite`: casts from bool or small integers, and tanh, sigmoid, erf, sin,
  cos, neg, abs, shape ops, where, ... of finite values; graph inputs are never assumed finite).
  For a general float x, x*0 is kept. (The result's zero may also differ in sign: -3*0 is -0.)
- log(exp x) -> x is exact mathematically and more accurate than evaluating (exp overflows
  to inf for x > 88 in float32). exp(log x) -> x only when x is known never negative
  (`known_non_negative`: produced by exp, sigmoid, softplus, sqrt, abs, square, ..., or a
  constant >= 0): for x < 0, log x is NaN, and exp(log x) is NaN, not x. NaN passes through
  both forms alike.
- Reassociating constants ((x*c1)*c2 -> x*(c1*c2), same for +) and sum(broadcast x) -> x*n
  round differently from the original (they are the usual "fast-math" rewrites); they can
  also move an overflow ((x*1e30)*1e-30 is inf for x = 1e10, x*1.0 is not). Integer
  arithmetic wraps modulo 2**bits, so for integers they are exact.

Facts about values (`known_finite`, `known_non_negative`) are derived from the producing ops
with an explicit stack (no recursion) and cached per node (nodes are immutable).

Example:
    >>> g = graphc.trace(lambda x: -(-x) * 1.0 + 0.0, graphc.spec("f32[3]"))
    >>> run_pipeline(g, ["simplify"]).op_counts()
    {}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from graphc.ir import Aval, Const, Graph, Node, make_const, substitute
from graphc.ops import REGISTRY, Kind, apply
from passes.manager import PassReport, register, rewrite

Rewrite = Callable[[Node], "Node | None"]

# at most this many rewrites are chained on one node before moving on (the pass manager's
# rounds continue from there); a safety net, not a tuning knob
_MAX_CHAIN = 32

# ---------------------------------------------------------------------------------------------
# building blocks


def _fill(value, aval: Aval, meta) -> Node:
    """A value of type `aval` whose every element is `value`: a scalar constant, broadcast."""
    c = make_const(np.asarray(value, dtype=aval.dtype), meta=meta)
    if aval.shape == ():
        return c
    return apply("broadcast_to", [c], {"shape": aval.shape}, meta)


def _as_type_of(x: Node, node: Node) -> Node | None:
    """`x` with `node`'s type: x itself, or x broadcast to node's shape; None if impossible."""
    if x.aval == node.aval:
        return x
    if not isinstance(x.aval, Aval) or x.dtype != node.dtype:
        return None
    try:
        shape = tuple(np.broadcast_shapes(x.shape, node.shape))
    except ValueError:
        return None
    if shape != node.shape:
        return None
    return apply("broadcast_to", [x], {"shape": node.shape}, node.meta)


def _scalar_const(node: Node) -> np.ndarray | None:
    """The value of a 0-d constant node, else None."""
    if node.op == "const" and node.shape == ():
        return node.attrs["value"].value
    return None


# ---------------------------------------------------------------------------------------------
# uniform constants

# small constants by content (Consts compare and hash by it; the answer depends on the data
# alone), large ones by node, weakly, so that the cache never keeps a large array alive
_UNIFORM: dict[Const, np.ndarray | None] = {}
_UNIFORM_LARGE: WeakKeyDictionary[Node, np.ndarray | None] = WeakKeyDictionary()
_SMALL = 4096  # elements


def uniform_value(node: Node) -> np.ndarray | None:
    """The one value (0-d array of node's dtype) every element of `node` has, when `node` is a
    non-empty constant seen through reshape/broadcast_to/transpose whose elements are all
    equal; else None. NaN constants are not uniform (NaN != NaN); -0.0 counts as 0."""
    while node.op != "const":
        if not REGISTRY[node.op].facts.value_preserving:
            return None
        node = node.inputs[0]
    c = node.attrs["value"]
    v = c.value
    cache: Any = _UNIFORM if v.size <= _SMALL else _UNIFORM_LARGE
    key = c if cache is _UNIFORM else node
    try:
        return cache[key]
    except KeyError:
        pass
    out = None
    if v.size > 0:
        first = v.reshape(-1)[0]
        if v.size == 1 or bool(np.all(v == first)):
            out = np.array(first, dtype=v.dtype)
    if len(_UNIFORM) >= 4096:  # a bound: constants of many programs pass through
        _UNIFORM.clear()
    cache[key] = out
    return out


def is_const_value(node: Node, value) -> bool:
    """Every element of `node` is a constant equal to `value`."""
    u = uniform_value(node)
    return u is not None and bool(u == value)


def is_one(node: Node) -> bool:
    return is_const_value(node, 1)


def is_zero(node: Node) -> bool:
    return is_const_value(node, 0)


# ---------------------------------------------------------------------------------------------
# facts about values, derived from the producing ops

Step = Callable[[Node], "bool | tuple[str, list[Node]]"]


def _finite_step(n: Node) -> bool | tuple[str, list[Node]]:
    """Whether `n` is finite everywhere: an answer, or ("all", operands that decide it)."""
    a = n.aval
    if not isinstance(a, Aval):
        return False
    if a.dtype.kind != "f":
        return True  # integers and booleans have no inf or NaN
    if n.op == "const":
        return bool(np.all(np.isfinite(n.attrs["value"].value)))
    if n.op == "cast":
        src = n.inputs[0].dtype
        if src.kind == "b":
            return True
        if src.kind in "iu":  # float16 overflows above 65504 (u16 and wider can get there)
            return a.dtype.itemsize >= 4 or src.itemsize == 1 or src == np.dtype(np.int16)
        # float -> float: only a narrower target can overflow
        return ("all", [n.inputs[0]]) if a.dtype.itemsize >= src.itemsize else False
    if REGISTRY[n.op].facts.finite_if_operands:
        return ("all", list(n.inputs))
    if n.op == "where":
        return ("all", list(n.inputs[1:]))
    if n.op == "gather":
        return ("all", [n.inputs[0]])
    if n.op == "pad":
        return ("all", list(n.inputs)) if math.isfinite(n.attrs.get("value", 0.0)) else False
    return False


# (the op entries' facts: never_negative is not set for rsqrt, nor div: 1/sqrt(-0.0) and
# 1/-0.0 are -inf)
def _non_negative_step(n: Node) -> bool | tuple[str, list[Node]]:
    """Whether `n` is never negative (NaN allowed): an answer, or the operands deciding it."""
    a = n.aval
    if not isinstance(a, Aval):
        return False
    if a.dtype.kind != "f":
        return a.dtype.kind in "bu"
    if n.op == "const":
        return not bool(np.any(n.attrs["value"].value < 0))
    facts = REGISTRY[n.op].facts
    if facts.never_negative:
        return True
    if n.op == "integer_pow":
        return n.attrs["n"] % 2 == 0
    if n.op == "cast":
        src = n.inputs[0].dtype
        return True if src.kind in "bu" else ("all", [n.inputs[0]])
    if facts.non_negative_if_operands:
        return ("all", list(n.inputs))
    if n.op == "maximum":
        return ("any", list(n.inputs))
    if n.op == "where":
        return ("all", list(n.inputs[1:]))
    if n.op == "gather":
        return ("all", [n.inputs[0]])
    if n.op == "pad":
        return ("all", list(n.inputs)) if n.attrs.get("value", 0.0) >= 0 else False
    return False


def _derive(node: Node, step: Step, cache: WeakKeyDictionary) -> bool:
    """Evaluate a fact defined by `step` at `node`, walking operands with an explicit stack."""
    stack = [node]
    while stack:
        n = stack[-1]
        if n in cache:
            stack.pop()
            continue
        s = step(n)
        if isinstance(s, bool):
            cache[n] = s
            stack.pop()
            continue
        how, deps = s
        todo = [d for d in deps if d not in cache]
        if todo:
            stack.extend(todo)
            continue
        vals = [cache[d] for d in deps]
        cache[n] = all(vals) if how == "all" else any(vals)
        stack.pop()
    return cache[node]


_FINITE: WeakKeyDictionary[Node, bool] = WeakKeyDictionary()
_NON_NEGATIVE: WeakKeyDictionary[Node, bool] = WeakKeyDictionary()


def known_finite(node: Node) -> bool:
    """`node` is finite everywhere whatever the graph's inputs (which are never assumed so)."""
    return _derive(node, _finite_step, _FINITE)


def known_non_negative(node: Node) -> bool:
    """`node` is never negative (it may be NaN) whatever the graph's inputs."""
    return _derive(node, _non_negative_step, _NON_NEGATIVE)


# ---------------------------------------------------------------------------------------------
# arithmetic identities


def _binary_operands(node: Node) -> list[tuple[Node, Node]]:
    """(x, c) pairs for a commutative binary node: both operand orders."""
    a, b = node.inputs
    return [(a, b), (b, a)]


def mul_by_one(node: Node) -> Node | None:
    """x * 1 -> x, 1 * x -> x."""
    for x, c in _binary_operands(node):
        if is_one(c):
            return _as_type_of(x, node)
    return None


def mul_by_minus_one(node: Node) -> Node | None:
    """x * -1 -> neg x, -1 * x -> neg x (exact, NaN and inf included)."""
    if node.dtype.kind not in "fi":
        return None
    for x, c in _binary_operands(node):
        if is_const_value(c, -1):
            return _as_type_of(apply("neg", [x], None, node.meta), node)
    return None


def mul_by_zero(node: Node) -> Node | None:
    """x * 0 -> 0 where x cannot be inf or NaN (integers, booleans, known-finite floats)."""
    for x, c in _binary_operands(node):
        if is_zero(c) and known_finite(x):
            return _fill(uniform_value(c), node.aval, node.meta)
    return None


def add_zero(node: Node) -> Node | None:
    """x + 0 -> x, 0 + x -> x."""
    for x, c in _binary_operands(node):
        if is_zero(c):
            return _as_type_of(x, node)
    return None


def sub_zero(node: Node) -> Node | None:
    """x - 0 -> x."""
    x, c = node.inputs
    return _as_type_of(x, node) if is_zero(c) else None


def zero_sub(node: Node) -> Node | None:
    """0 - x -> neg x."""
    c, x = node.inputs
    if not is_zero(c) or node.dtype == np.bool_:
        return None
    return _as_type_of(apply("neg", [x], None, node.meta), node)


def div_by_one(node: Node) -> Node | None:
    """x / 1 -> x."""
    x, c = node.inputs
    return _as_type_of(x, node) if is_one(c) else None


def pow_one(node: Node) -> Node | None:
    """x ** 1 -> x (pow with a constant exponent of 1)."""
    x, c = node.inputs
    return _as_type_of(x, node) if is_one(c) else None


def neg_neg(node: Node) -> Node | None:
    """neg(neg x) -> x."""
    (x,) = node.inputs
    return x.inputs[0] if x.op == "neg" else None


def idempotent_twice(node: Node) -> Node | None:
    """f(f x) -> f x for an op whose entry says it is idempotent (abs, relu, floor, ...)."""
    if len(node.inputs) != 1 or not REGISTRY[node.op].facts.idempotent:
        return None
    (x,) = node.inputs
    return x if x.op == node.op and x.attrs == node.attrs and x.aval == node.aval else None


def add_neg(node: Node) -> Node | None:
    """a + neg(b) -> a - b, neg(b) + a -> a - b."""
    for a, nb in _binary_operands(node):
        if nb.op == "neg":
            return apply("sub", [a, nb.inputs[0]], None, node.meta)
    return None


def sub_neg(node: Node) -> Node | None:
    """a - neg(b) -> a + b."""
    a, nb = node.inputs
    return apply("add", [a, nb.inputs[0]], None, node.meta) if nb.op == "neg" else None


def _reassociate(node: Node) -> Node | None:
    """(x op c1) op c2 -> x op (c1 op c2) for scalar constants c1, c2 and op in {add, mul}."""
    impl = REGISTRY[node.op].impl
    for inner, c2 in _binary_operands(node):
        v2 = _scalar_const(c2)
        if v2 is None or inner.op != node.op:
            continue
        for x, c1 in _binary_operands(inner):
            v1 = _scalar_const(c1)
            if v1 is None or _scalar_const(x) is not None:
                continue
            with np.errstate(all="ignore"):
                v = np.asarray(impl(v1, v2)).astype(node.dtype)
            c = make_const(v, meta=node.meta)
            return apply(node.op, [x, c], None, node.meta)
    return None


def reassociate_mul(node: Node) -> Node | None:
    """(x * c1) * c2 -> x * (c1*c2) for scalar constants (either operand order)."""
    return _reassociate(node)


def reassociate_add(node: Node) -> Node | None:
    """(x + c1) + c2 -> x + (c1+c2) for scalar constants (either operand order)."""
    return _reassociate(node)


def log_exp(node: Node) -> Node | None:
    """log(exp x) -> x (exact; avoids exp's overflow)."""
    (x,) = node.inputs
    return x.inputs[0] if x.op == "exp" else None


def exp_log(node: Node) -> Node | None:
    """exp(log x) -> x, only for x known never negative (else log x is NaN)."""
    (x,) = node.inputs
    if x.op == "log" and known_non_negative(x.inputs[0]):
        return x.inputs[0]
    return None


def integer_pow_trivial(node: Node) -> Node | None:
    """x ** 1 -> x; x ** 0 -> 1 (broadcast; 1 even for NaN, as np.power gives)."""
    n = node.attrs["n"]
    if n == 1:
        return node.inputs[0]
    if n == 0:
        return _fill(1, node.aval, node.meta)
    return None


def cast_same(node: Node) -> Node | None:
    """cast to the operand's own dtype -> the operand."""
    (x,) = node.inputs
    return x if x.aval == node.aval else None


def where_same(node: Node) -> Node | None:
    """where(c, x, x) -> x (broadcast to the result's shape when c is larger)."""
    _, x, y = node.inputs
    return _as_type_of(x, node) if x is y else None


def where_const(node: Node) -> Node | None:
    """where(all-true, x, y) -> x; where(all-false, x, y) -> y (broadcast as needed)."""
    c, x, y = node.inputs
    u = uniform_value(c)
    if u is None:
        return None
    return _as_type_of(x if bool(u) else y, node)


def where_nested_condition(node: Node) -> Node | None:
    """where(c, f(..., where(c, p, q), ...), y) -> where(c, f(..., p, ...), y) for an
    elementwise f whose result lines up with the outer where's (and q likewise in the other
    branch): where the outer where reads f, the inner one is p. This is the pattern the
    autodiff pass's masking leaves behind: where(c, where(c, 1, 0) * g, 0) -> where(c, g, 0)."""
    c = node.inputs[0]
    ins = list(node.inputs)
    changed = False
    for k in (1, 2):
        f = ins[k]
        if f.aval != node.aval:
            continue
        if f.op == "where" and f.inputs[0] is c:  # f is itself where(c, p, q)
            ins[k] = _as_type_of(f.inputs[k], f) or f
            changed |= ins[k] is not f
            continue
        fdef = REGISTRY.get(f.op)
        if fdef is None or fdef.kind is not Kind.ELEMENTWISE:
            continue
        fins = list(f.inputs)
        for m, w in enumerate(fins):
            if w.op == "where" and w.inputs[0] is c and w.aval == f.aval:
                fins[m] = _as_type_of(w.inputs[k], w) or w
        if any(a is not b for a, b in zip(fins, f.inputs, strict=True)):
            ins[k] = apply(f.op, fins, dict(f.attrs), f.meta)
            changed = True
    return apply("where", ins, None, node.meta) if changed else None


# ---------------------------------------------------------------------------------------------
# operands of elementwise ops


def _rule_type(node: Node, inputs: list[Node]) -> Aval | None:
    """The type node's op gives for other operands (None if its shape rule rejects them)."""
    try:
        return REGISTRY[node.op].shape(*[i.aval for i in inputs], **node.attrs)
    except Exception:
        return None


def scalar_operands(node: Node) -> Node | None:
    """Replace an operand that is a uniform constant (broadcast_to/reshape of a scalar, or an
    array of equal elements) by the scalar itself, when implicit broadcasting keeps the type."""
    ins = list(node.inputs)
    changed = False
    for k, i in enumerate(ins):
        if i.op == "const" and i.shape == ():
            continue
        u = uniform_value(i)
        if u is None:
            continue
        trial = ins[:k] + [make_const(u, meta=i.meta)] + ins[k + 1 :]
        if _rule_type(node, trial) == node.aval:
            ins, changed = trial, True
    return apply(node.op, ins, dict(node.attrs), node.meta) if changed else None


def implicit_broadcast(node: Node) -> Node | None:
    """An operand broadcast_to(x) -> x when the op's implicit broadcasting gives the same
    type (mul(broadcast_to(g, (64, 10)), h) -> mul(g, h) for g of shape (64, 1))."""
    ins = list(node.inputs)
    changed = False
    for k, i in enumerate(ins):
        if i.op != "broadcast_to":
            continue
        trial = ins[:k] + [i.inputs[0]] + ins[k + 1 :]
        if _rule_type(node, trial) == node.aval:
            ins, changed = trial, True
    return apply(node.op, ins, dict(node.attrs), node.meta) if changed else None


def uniform_elementwise(node: Node) -> Node | None:
    """An elementwise op of uniform constants (e.g. exp(broadcast_to(2.0, big))) -> its one
    value, broadcast: folding without materialising the array."""
    vals = [uniform_value(i) for i in node.inputs]
    if any(v is None for v in vals) or not isinstance(node.aval, Aval):
        return None
    try:
        with np.errstate(all="ignore"):
            v = np.asarray(REGISTRY[node.op].impl(*vals, **node.attrs))
    except Exception:
        return None
    if v.shape != ():
        return None
    return _fill(v.astype(node.dtype), node.aval, node.meta)


def shape_of_uniform(node: Node) -> Node | None:
    """reshape/transpose/broadcast_to (and max/min) of a uniform constant -> the scalar,
    broadcast to the result's shape."""
    (x,) = node.inputs
    if node.op == "broadcast_to" and x.op == "const" and x.shape == ():
        return None  # already the canonical form
    u = uniform_value(x)
    if u is None or node.aval.size == 0:
        return None
    return _fill(u, node.aval, node.meta)


# ---------------------------------------------------------------------------------------------
# shape ops


def reshape_same(node: Node) -> Node | None:
    """reshape to the operand's own shape -> the operand."""
    (x,) = node.inputs
    return x if x.aval == node.aval else None


def reshape_reshape(node: Node) -> Node | None:
    """reshape(reshape x) -> reshape x (or x, when the shapes agree)."""
    (r,) = node.inputs
    if r.op != "reshape":
        return None
    x = r.inputs[0]
    if x.aval == node.aval:
        return x
    return apply("reshape", [x], {"shape": node.shape}, node.meta)


def broadcast_same(node: Node) -> Node | None:
    """broadcast_to the operand's own shape -> the operand."""
    (x,) = node.inputs
    return x if x.aval == node.aval else None


def broadcast_broadcast(node: Node) -> Node | None:
    """broadcast_to(broadcast_to x) -> broadcast_to x."""
    (b,) = node.inputs
    if b.op != "broadcast_to":
        return None
    x = b.inputs[0]
    return (
        x if x.aval == node.aval else apply("broadcast_to", [x], {"shape": node.shape}, node.meta)
    )


def transpose_identity(node: Node) -> Node | None:
    """transpose by the identity permutation -> the operand."""
    perm = tuple(node.attrs["perm"])
    return node.inputs[0] if perm == tuple(range(len(perm))) else None


def transpose_transpose(node: Node) -> Node | None:
    """transpose(transpose x, p2) with inner p1 -> transpose x by p1[p2] (x if identity)."""
    (t,) = node.inputs
    if t.op != "transpose":
        return None
    p1, p2 = tuple(t.attrs["perm"]), tuple(node.attrs["perm"])
    perm = tuple(p1[i] for i in p2)
    x = t.inputs[0]
    if perm == tuple(range(len(perm))):
        return x
    return apply("transpose", [x], {"perm": perm}, node.meta)


# ---------------------------------------------------------------------------------------------
# reductions


def reshape_of_reduction(node: Node) -> Node | None:
    """reshape(reduce(x, keepdims=k)) to the shape of reduce(x, keepdims=not k) -> that
    reduction (what sum_to_shape's `reduce_sum(..., keepdims=True)` + reshape is)."""
    (r,) = node.inputs
    if r.op not in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod"):
        return None
    x = r.inputs[0]
    axes = tuple(r.attrs["axes"])
    keep = not r.attrs.get("keepdims", False)
    shape = (
        tuple(1 if i in axes else s for i, s in enumerate(x.shape))
        if keep
        else tuple(s for i, s in enumerate(x.shape) if i not in axes)
    )
    if shape != node.shape:
        return None
    return apply(r.op, [x], {"axes": axes, "keepdims": keep}, node.meta)


def reduce_unit_axes(node: Node) -> Node | None:
    """A reduction over no axes or over axes of length 1 only -> its operand (reshaped)."""
    (x,) = node.inputs
    if any(x.shape[a] != 1 for a in node.attrs["axes"]):
        return None
    if x.aval == node.aval:
        return x
    return apply("reshape", [x], {"shape": node.shape}, node.meta)


def sum_of_broadcast(node: Node) -> Node | None:
    """sum(broadcast_to(x, s)) over axes the broadcast created (new leading axes, stretched
    length-1 axes) -> x * (their element count), then reshape/broadcast to the result's
    shape; axes of x itself are still summed: sum(broadcast_to(x, (n, m)), 0) -> x * n."""
    (b,) = node.inputs
    if b.op != "broadcast_to":
        return None
    x = b.inputs[0]
    shape = b.shape
    lead = len(shape) - len(x.shape)
    axes = tuple(node.attrs["axes"])
    keepdims = node.attrs.get("keepdims", False)
    made = [a for a in axes if a < lead or x.shape[a - lead] != shape[a]]
    if not made:
        return None
    meta = node.meta
    x_axes = tuple(a - lead for a in axes if a >= lead)  # x's own axes among the summed ones
    if any(x.shape[i] != 1 for i in x_axes):
        # summing x's length-1 axes along with the others is free, and drops them
        y = apply("reduce_sum", [x], {"axes": x_axes, "keepdims": keepdims}, meta)
        rest = y.shape
    else:
        y = x
        rest = x.shape if keepdims else tuple(s for i, s in enumerate(x.shape) if i not in x_axes)
    count = int(np.prod([shape[a] for a in made], dtype=np.int64))
    if count != 1:
        y = apply("mul", [y, make_const(np.asarray(count, dtype=x.dtype), meta=meta)], None, meta)
    # line y up with the result: leading axes of the broadcast that survive become 1s
    kept_lead = lead if keepdims else sum(1 for a in range(lead) if a not in axes)
    target = (1,) * kept_lead + rest
    if y.shape != target:
        y = apply("reshape", [y], {"shape": target}, meta)
    return _as_type_of(y, node)


# ---------------------------------------------------------------------------------------------
# the table

REWRITES: dict[str, list[Rewrite]] = {
    "mul": [mul_by_one, mul_by_zero, mul_by_minus_one, reassociate_mul],
    "add": [add_zero, add_neg, reassociate_add],
    "sub": [sub_zero, zero_sub, sub_neg],
    "div": [div_by_one],
    "pow": [pow_one],
    "neg": [neg_neg],
    "log": [log_exp],
    "exp": [exp_log],
    "integer_pow": [integer_pow_trivial],
    "cast": [cast_same],
    "where": [where_same, where_const, where_nested_condition],
    "reshape": [reshape_same, reshape_reshape, reshape_of_reduction, shape_of_uniform],
    "broadcast_to": [broadcast_same, broadcast_broadcast, shape_of_uniform],
    "transpose": [transpose_identity, transpose_transpose, shape_of_uniform],
    "reduce_sum": [reduce_unit_axes, sum_of_broadcast],
    "reduce_max": [reduce_unit_axes, shape_of_uniform],
    "reduce_min": [reduce_unit_axes, shape_of_uniform],
    "reduce_prod": [reduce_unit_axes],
}
"""Rewrites by op, tried in order; the first that applies wins."""

ELEMENTWISE_REWRITES: list[Rewrite] = [
    idempotent_twice,
    uniform_elementwise,
    scalar_operands,
    implicit_broadcast,
]
"""Tried on every elementwise op after its own rewrites."""


_BY_OP: dict[str, list[Rewrite]] = {}


def rewrites_for(op: str) -> list[Rewrite]:
    """The rewrites tried on an `op` node: its own, then the elementwise ones if it is one."""
    rws = _BY_OP.get(op)
    if rws is None:
        d = REGISTRY.get(op)
        elementwise = d is not None and d.kind is Kind.ELEMENTWISE
        rws = _BY_OP[op] = REWRITES.get(op, []) + (ELEMENTWISE_REWRITES if elementwise else [])
    return rws


def simplify_node(node: Node) -> Node | None:
    """Apply the first rewrite that fits, then keep rewriting the result; None if none fits."""
    cur = node
    for _ in range(_MAX_CHAIN):
        if cur.op in ("input", "const") or not isinstance(cur.aval, Aval):
            break
        for rw in rewrites_for(cur.op):
            rep = rw(cur)
            if rep is not None and rep is not cur:
                cur = rep
                break
        else:
            break
    return None if cur is node else cur


def transposed_products(graph: Graph) -> Graph:
    """transpose(a @ b) -> transpose(b) @ transpose(a) when nothing else reads the product.

    Matrix products read transposed operands in place (BLAS takes them as they are), while
    elementwise kernels need contiguous operands. Weight gradients of layers that store their
    weights as (out, in) come out transposed; after this rewrite BLAS writes them directly in
    the layout the optimizer update reads.
    """
    readers: dict[int, int] = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers[id(i)] = readers.get(id(i), 0) + 1
    out_ids = {id(o) for o in graph.outputs}
    mapping: dict[int, Node] = {}
    for n in graph.nodes:
        if n.op != "transpose" or not n.inputs or n.inputs[0].op != "matmul":
            continue
        m = n.inputs[0]
        nd = len(m.shape)
        swap = tuple(range(nd - 2)) + (nd - 1, nd - 2)
        if tuple(n.attrs["perm"]) != swap or readers.get(id(m)) != 1 or id(m) in out_ids:
            continue
        a, b = m.inputs
        if len(a.shape) != nd or len(b.shape) != nd:
            continue

        def swapped(x: Node) -> Node:
            return apply("transpose", [x], {"perm": swap}, x.meta)

        mapping[id(n)] = apply("matmul", [swapped(b), swapped(a)], {}, m.meta)
    if not mapping:
        return graph
    return graph.derive(outputs=substitute(list(graph.outputs), mapping))


@register("simplify")
def simplify(graph: Graph) -> tuple[Graph, PassReport]:
    """Algebraic identities: x*1, x+0, transpose(transpose x), products of ones and zeros..."""
    report = PassReport()
    return rewrite(transposed_products(graph), simplify_node, report=report), report
