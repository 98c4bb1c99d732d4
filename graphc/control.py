"""Loops and branches in the IR: `scan`, `fori_loop`, `while_loop`, `cond` and `switch`.

The signatures and semantics are JAX's (`jax.lax.scan`, ...), so JAX code ports as it is. Each
function traces its body once into a graph held by one node (`graphc.ops.control`), whatever
the trip count; the body may close over outer values, which become the node's loop-invariant
operands. Carries, sequences and operands are pytrees. Called on concrete arrays outside a
traced function, they compute at once with the reference interpreter.

Example:
    >>> def cumsum(xs):
    ...     return graphc.scan(lambda c, x: (c + x, c + x), np.float32(0), xs)[1]
    >>> graphc.jit(cumsum)(np.arange(4, dtype=np.float32))
    array([0., 1., 3., 6.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.ir import (
    INLINE_MAX,
    Aval,
    Graph,
    GraphcError,
    Meta,
    Node,
    make_const,
    make_input,
    map_nodes,
    next_serial,
)
from graphc.ops import apply
from graphc.ops.interp import evaluate
from graphc.trace import Tracer, current_scope, leaf_aval, to_node, user_location
from graphc.tree_util import TreeDef, flatten, leaf_paths, tree_map, unflatten


class ControlFlowError(GraphcError, TypeError):
    """A loop or branch whose pieces do not fit together (a carry that changes type, branches
    of different types, a predicate that is not a boolean scalar). Also a TypeError, as in JAX.
    """


# ---------------------------------------------------------------------------------------------
# tracing a region


def _where(fn: Callable) -> str:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    if code is None:
        return name
    from graphc.trace import _display_path

    return f"{name} ({_display_path(code.co_filename)}:{code.co_firstlineno})"


def _leaf_node(x: Any, what: str, loc: str | None) -> tuple[Node, bool]:
    """(the node for an operand leaf, whether it promotes like a Python scalar)."""
    if isinstance(x, Tracer):
        return x.node, x.weak
    if isinstance(x, (bool, int, float, np.ndarray, np.generic)) and not isinstance(x, complex):
        leaf_aval(x)  # a dtype graphc does not handle is reported as such
        arr = np.asarray(x)
        return to_node(arr, meta=Meta(loc, current_scope())), type(x) is float
    raise ControlFlowError(
        f"{what} is a {type(x).__name__}; loop carries, sequences and operands must be "
        "arrays or numbers",
        loc,
    )


def _close_over(declared: list[Node], outputs: list[Node], start: int) -> tuple[Graph, list[Node]]:
    """The graph of a region traced after serial `start`: inputs are one new input per outer
    value it reads (in order of first use), then `declared`; and the outer values themselves.
    Only the region's own nodes are walked (the walk stops at older nodes), iteratively."""
    free: list[Node] = []
    is_free: set[int] = set()
    order: list[Node] = []
    state: dict[int, int] = {}

    def outer(n: Node) -> bool:
        # large constants (closed-over arrays) are operands too: they stay out of the text
        # of the body, and one copy serves every step
        return n.serial < start or (n.op == "const" and n.aval.size > INLINE_MAX)  # type: ignore[union-attr]

    for root in outputs:
        if outer(root):
            if id(root) not in is_free:
                is_free.add(id(root))
                free.append(root)
            continue
        if id(root) in state:
            continue
        stack = [(root, iter(root.inputs))]
        state[id(root)] = 1
        while stack:
            node, it = stack[-1]
            for child in it:
                if outer(child):
                    if id(child) not in is_free:
                        is_free.add(id(child))
                        free.append(child)
                    continue
                if id(child) not in state:
                    state[id(child)] = 1
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    mapping: dict[int, Node] = {
        id(f): make_input(f.aval, name=f.meta.name)  # type: ignore[arg-type]
        for f in free
    }
    free_inputs = [mapping[id(f)] for f in free]
    new = map_nodes(order, lambda n, orig: None, nested=False, mapping=mapping)
    outs = [new.get(id(o), o) for o in outputs]
    return Graph(free_inputs + declared, outs), free


class _Traced:
    """One traced region: its graph (free values first), the outer values it reads, and the
    structure of what it returned."""

    def __init__(self, graph: Graph, free: list[Node], out_tree: TreeDef, out_weak: list[bool]):
        self.graph = graph
        self.free = free
        self.out_tree = out_tree
        self.out_weak = out_weak


def _trace_region(
    fn: Callable,
    avals: list[Aval],
    weak: list[bool],
    names: list[str],
    call: Callable[[list[Tracer]], Any],
    what: str,
    loc: str | None,
) -> _Traced:
    """Trace `call(tracers for avals)`; its result's leaves become the region's outputs."""
    start = next_serial()
    declared = [make_input(a, name=nm) for a, nm in zip(avals, names, strict=True)]
    tracers = [Tracer(n, weak=w) for n, w in zip(declared, weak, strict=True)]
    out = call(tracers)
    leaves, tree = flatten(out)
    outs, out_weak = [], []
    for p, leaf in zip(leaf_paths(tree, "result"), leaves, strict=True):
        node, w = _leaf_node(leaf, f"{what} {_where(fn)}: {p}", loc)
        outs.append(node)
        out_weak.append(w)
    graph, free = _close_over(declared, outs, start)
    return _Traced(graph, free, tree, out_weak)


def _results(op: str, operands: list[Node], attrs: dict, n: int, loc: str | None) -> list:
    """The node's `n` results: tracers while tracing, else arrays computed at once."""
    meta = Meta(loc, current_scope())
    try:
        node = apply(op, operands, attrs, meta)
    except GraphcError as e:
        raise type(e)(e.message, e.location or loc) from None
    projs = [apply("proj", [node], {"index": k}, meta) for k in range(n)]
    if all(o.op == "const" for o in operands):  # nothing traced: compute now
        return list(evaluate(Graph([], projs)))
    return [Tracer(p) for p in projs]


def _carry_problem(
    what: str, fn: Callable, paths: list[str], ins: list[Aval], outs: list[Node]
) -> tuple[int, str] | None:
    for k, (p, a, o) in enumerate(zip(paths, ins, outs, strict=True)):
        if o.aval != a:
            return k, (
                f"{what} {_where(fn)} changes the carry: {p} is {a} on input but {o.aval} "
                "on output; a carry keeps its shape and dtype from step to step"
            )
    return None


def _trace_carry_fn(
    fn: Callable,
    what: str,
    pre: list[Aval],
    pre_names: list[str],
    carry: list[Node],
    carry_weak: list[bool],
    carry_tree: TreeDef,
    call: Callable[[Any, list[Tracer]], Any],
    split: Callable[[Any], tuple[Any, Any]],
    loc: str | None,
) -> tuple[_Traced, list[Node], int]:
    """Trace a loop body over (`pre` per-step inputs, carry) whose result `split`s into
    (carry, rest); a carry leaf from a Python float takes the dtype the body gives it (as the
    unrolled loop would), every other change of type is an error. Returns the region, the
    (possibly cast) initial carry and how many of the region's outputs are the carry."""
    paths = leaf_paths(carry_tree, "carry")
    for _attempt in range(2):
        avals = [c.aval for c in carry]  # type: ignore[misc]
        holder: dict[str, Any] = {}

        def body(tracers: list[Tracer]) -> Any:
            pre_t, carry_t = tracers[: len(pre)], tracers[len(pre) :]
            res = call(unflatten(carry_tree, carry_t), pre_t)
            new_carry, rest = split(res)
            holder["n"] = len(flatten(new_carry)[0])
            new_tree = flatten(new_carry)[1]
            if new_tree != carry_tree:
                raise ControlFlowError(
                    f"{what} {_where(fn)} returns a carry of structure {new_tree}, but the "
                    f"initial carry has structure {carry_tree}",
                    loc,
                )
            return (new_carry, rest)

        region = _trace_region(
            fn, pre + avals, [False] * len(pre) + carry_weak, pre_names + paths, body, what, loc
        )
        n = holder["n"]
        outs = region.graph.outputs[:n]
        problem = _carry_problem(what, fn, paths, avals, list(outs))
        if problem is None:
            return region, carry, n
        k, msg = problem
        want = outs[k].aval
        if (
            _attempt == 0
            and carry_weak[k]
            and want.shape == avals[k].shape  # type: ignore[union-attr]
            and want.dtype.kind == avals[k].dtype.kind  # type: ignore[union-attr]
        ):
            # a Python float promotes like one: the body decides its dtype (NEP 50)
            carry = list(carry)
            c = carry[k]
            carry[k] = (
                make_const(c.attrs["value"].value.astype(want.dtype), meta=c.meta)
                if c.op == "const"
                else apply("cast", [c], {"dtype": want.dtype}, c.meta)
            )
            carry_weak = list(carry_weak)
            carry_weak[k] = False
            continue
        raise ControlFlowError(msg, loc)
    raise AssertionError("unreachable")


def _flatten_operands(
    tree: Any, what: str, loc: str | None
) -> tuple[list[Node], list[bool], TreeDef]:
    leaves, td = flatten(tree)
    nodes, weak = [], []
    for p, leaf in zip(leaf_paths(td, what), leaves, strict=True):
        node, w = _leaf_node(leaf, p, loc)
        nodes.append(node)
        weak.append(w)
    return nodes, weak, td


# ---------------------------------------------------------------------------------------------
# scan


def scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    *,
    checkpoint: int | None = None,
    _remat: bool = False,
) -> tuple[Any, Any]:
    """Loop `f(carry, x) -> (carry, y)` over the leading axis of `xs`; return the final carry
    and the ys stacked (JAX's `lax.scan`). The body is traced once and compiled as one loop.

    `init` and `xs` are pytrees; `length` is needed when `xs` is None; `reverse` runs from the
    last step to the first (ys[t] still belongs to xs[t]). `unroll` is accepted for JAX
    compatibility: the compiled loop has no per-step overhead for unrolling to remove.

    `checkpoint=k` (graphc's own) trades compute for memory in reverse mode: the loop runs as
    segments of k steps, the forward pass keeps only the carry at the start of each segment,
    and the backward pass recomputes one segment's steps at a time. The values are the same;
    the recorded residuals shrink from `length` steps' worth to `length/k` carries plus one
    segment's steps (k near sqrt(length) minimises it).

    Example:
        >>> h, hs = graphc.scan(lambda h, x: (np.tanh(W @ h + x), h), h0, xs)
        >>> h, hs = graphc.scan(step, h0, xs, checkpoint=32)   # 10,000 steps, ~1/32 the tape
    """
    loc = user_location()
    if checkpoint is not None:
        return _checkpointed(f, init, xs, length, reverse, checkpoint, loc)
    if not isinstance(unroll, bool) and (not isinstance(unroll, (int, np.integer)) or unroll < 1):
        raise ControlFlowError(
            f"scan: unroll must be a positive int or a bool, got {unroll!r}", loc
        )
    carry, carry_weak, carry_tree = _flatten_operands(init, "init", loc)
    x_nodes, _, x_tree = _flatten_operands(xs, "xs", loc)
    lengths = set()
    for p, x in zip(leaf_paths(x_tree, "xs"), x_nodes, strict=True):
        if x.aval.ndim == 0:  # type: ignore[union-attr]
            raise ControlFlowError(f"scan: {p} is a scalar; sequences need a leading axis", loc)
        lengths.add(x.aval.shape[0])  # type: ignore[union-attr]
    if length is not None:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ControlFlowError(f"scan: length must be a non-negative int, got {length!r}", loc)
        length = int(length)
        if lengths and lengths != {length}:
            raise ControlFlowError(
                f"scan: length={length}, but the sequences have leading axes {sorted(lengths)}",
                loc,
            )
    elif len(lengths) > 1:
        raise ControlFlowError(
            f"scan: the sequences have different leading axes {sorted(lengths)}", loc
        )
    elif not lengths:
        raise ControlFlowError("scan: give xs or length (there is nothing to count steps)", loc)
    else:
        length = lengths.pop()
    x_avals = [Aval(x.aval.shape[1:], x.aval.dtype) for x in x_nodes]  # type: ignore[union-attr]

    def call(c: Any, x_t: list[Tracer]) -> Any:
        return f(c, unflatten(x_tree, x_t))

    def split(res: Any) -> tuple[Any, Any]:
        if not isinstance(res, (tuple, list)) or len(res) != 2:
            raise ControlFlowError(
                f"scan: the body {_where(f)} must return a pair (carry, y), got "
                f"{type(res).__name__}"
                + (f" of length {len(res)}" if isinstance(res, (tuple, list)) else ""),
                loc,
            )
        return res[0], res[1]

    # the region's declared inputs are (x slices, carry): reorder to the op's (carry, xs)
    region, carry, n_carry = _trace_carry_fn(
        f,
        "scan: the body",
        x_avals,
        leaf_paths(x_tree, "x"),
        carry,
        carry_weak,
        carry_tree,
        call,
        split,
        loc,
    )
    g = region.graph
    nf = len(region.free)
    nx = len(x_avals)
    ins = list(g.inputs)
    body = Graph(ins[:nf] + ins[nf + nx :] + ins[nf : nf + nx], g.outputs)
    attrs = {
        "body": body,
        "n_consts": nf,
        "n_carry": n_carry,
        "length": length,
        "reverse": bool(reverse),
        **({"remat": True} if _remat else {}),
    }
    res = _results("scan", region.free + carry + x_nodes, attrs, len(g.outputs), loc)
    final = unflatten(region.out_tree, res)
    return final[0], final[1]


def _checkpointed(
    f: Callable, init: Any, xs: Any, length: int | None, reverse: bool, k: Any, loc: str | None
) -> tuple[Any, Any]:
    """scan(f, ...) as an outer scan over segments of k steps, each an inner scan; the outer
    loop rematerialises its steps in reverse mode. Steps left over (length % k) run as a
    plain scan after the segments (before them when reversed)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ControlFlowError(f"scan: checkpoint must be a positive int, got {k!r}", loc)
    k = int(k)
    leaves = flatten(xs)[0]
    if length is None:
        if not leaves:
            raise ControlFlowError("scan: give xs or length (there is nothing to count steps)", loc)
        length = int(np.shape(leaves[0])[0])
    n_seg, rest = divmod(length, k)
    if n_seg == 0:
        return scan(f, init, xs, length=length, reverse=reverse)
    main = slice(rest, length) if reverse else slice(0, length - rest)
    tail = slice(0, rest) if reverse else slice(length - rest, length)

    def part(x: Any, s: slice, shape: tuple | None = None) -> Any:
        x = x[s]
        return np.reshape(x, shape + np.shape(x)[1:]) if shape else x

    xs_main = tree_map(lambda x: part(x, main, (n_seg, k)), xs)

    def segment(c: Any, xseg: Any) -> tuple[Any, Any]:
        return scan(f, c, xseg, length=k, reverse=reverse)

    carry, ys = scan(segment, init, xs_main, length=n_seg, reverse=reverse, _remat=True)
    ys = tree_map(lambda y: np.reshape(y, (n_seg * k, *np.shape(y)[2:])), ys)
    if rest:
        carry, ys_tail = scan(
            f, carry, tree_map(lambda x: part(x, tail), xs), length=rest, reverse=reverse
        )
        ys = tree_map(lambda a, b: np.concatenate([b, a] if reverse else [a, b]), ys, ys_tail)
    return carry, ys


# ---------------------------------------------------------------------------------------------
# fori_loop and while_loop


def fori_loop(lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any], init_val: Any) -> Any:
    """`for i in range(lower, upper): val = body_fun(i, val)`; return val (JAX's
    `lax.fori_loop`). With concrete bounds this is a `scan` (differentiable in both modes);
    with traced bounds a `while_loop`.

    Example:
        >>> graphc.fori_loop(0, 10, lambda i, x: x * 0.5, x0)
    """
    loc = user_location()
    if not isinstance(lower, Tracer) and not isinstance(upper, Tracer):
        for name, b in (("lower", lower), ("upper", upper)):
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
                raise ControlFlowError(f"fori_loop: {name} must be an int, got {b!r}", loc)
        lo, hi = int(lower), int(upper)

        def step(c: Any, _: Any) -> tuple[Any, None]:
            i, val = c
            return (i + 1, body_fun(i, val)), None

        (_, val), _ = scan(step, (np.int64(lo), init_val), None, length=max(hi - lo, 0))
        return val

    def cond_fun(c: Any) -> Any:
        return c[0] < c[1]

    def body(c: Any) -> Any:
        i, hi, val = c
        return (i + 1, hi, body_fun(i, val))

    lo_node = lower if isinstance(lower, Tracer) else np.int64(lower)
    hi_node = upper if isinstance(upper, Tracer) else np.int64(upper)
    return while_loop(cond_fun, body, (lo_node, hi_node, init_val))[2]


def while_loop(
    cond_fun: Callable[[Any], Any],
    body_fun: Callable[[Any], Any],
    init_val: Any,
    *,
    max_trips: int | None = None,
) -> Any:
    """`while cond_fun(val): val = body_fun(val)`; return val (JAX's `lax.while_loop`).

    `max_trips=N` bounds the loop: running more than N trips is an error at run time, and the
    bound is what lets graphc differentiate the loop in reverse mode (it records at most N
    steps).

    Example:
        >>> graphc.while_loop(lambda x: np.sum(x) < 10, lambda x: x * 2, x0, max_trips=64)
    """
    loc = user_location()
    if max_trips is not None and (
        isinstance(max_trips, bool) or not isinstance(max_trips, (int, np.integer)) or max_trips < 0
    ):
        raise ControlFlowError(
            f"while_loop: max_trips must be a non-negative int, got {max_trips!r}", loc
        )
    carry, carry_weak, carry_tree = _flatten_operands(init_val, "init_val", loc)
    body_region, carry, _ = _trace_carry_fn(
        body_fun,
        "while_loop: the body",
        [],
        [],
        carry,
        carry_weak,
        carry_tree,
        lambda c, _: body_fun(c),
        lambda res: (res, None),
        loc,
    )
    paths = leaf_paths(carry_tree, "carry")
    avals = [c.aval for c in carry]  # type: ignore[misc]
    cond_region = _trace_region(
        cond_fun,
        avals,
        [False] * len(avals),
        paths,
        lambda ts: cond_fun(unflatten(carry_tree, ts)),
        "while_loop: the condition",
        loc,
    )
    outs = cond_region.graph.outputs
    if len(outs) != 1 or outs[0].aval != Aval((), np.dtype(np.bool_)):
        got = ", ".join(str(o.aval) for o in outs) or "nothing"
        raise ControlFlowError(
            f"while_loop: the condition {_where(cond_fun)} must return a boolean scalar, got {got}",
            loc,
        )
    body_graph = body_region.graph.with_outputs(body_region.graph.outputs[: len(carry)])
    attrs = {
        "cond": cond_region.graph,
        "body": Graph(body_graph.inputs, body_graph.outputs),
        "n_cond_consts": len(cond_region.free),
        "n_body_consts": len(body_region.free),
        "max_trips": None if max_trips is None else int(max_trips),
    }
    operands = cond_region.free + body_region.free + carry
    res = _results("while_loop", operands, attrs, len(carry), loc)
    return unflatten(carry_tree, res)


# ---------------------------------------------------------------------------------------------
# cond and switch


def _branches(
    index: Node,
    fns: Sequence[Callable],
    names: list[str],
    operands: tuple,
    what: str,
    loc: str | None,
) -> Any:
    nodes, weak, tree = _flatten_operands(operands, "operands", loc)
    avals = [n.aval for n in nodes]  # type: ignore[misc]
    paths = leaf_paths(tree, "operands")
    regions = [
        _trace_region(
            fn,
            avals,
            weak,
            paths,
            lambda ts, fn=fn: fn(*unflatten(tree, ts)),
            f"{what}: {nm}",
            loc,
        )
        for fn, nm in zip(fns, names, strict=True)
    ]
    first = regions[0]
    for r, nm, fn in zip(regions[1:], names[1:], fns[1:], strict=True):
        a = [o.aval for o in first.graph.outputs]
        b = [o.aval for o in r.graph.outputs]
        if r.out_tree != first.out_tree or a != b:
            shape = "" if r.out_tree == first.out_tree else " (of another structure)"
            raise ControlFlowError(
                f"{what}: the branches return different types: {names[0]} {_where(fns[0])} "
                f"gives ({', '.join(map(str, a))}), {nm} {_where(fn)} gives "
                f"({', '.join(map(str, b))}){shape}",
                loc,
            )
    # every branch takes the operands, then every outer value any branch reads
    free = free_union(regions)
    attrs = {"branches": tuple(with_free(r, free) for r in regions)}
    res = _results("cond", [index, *nodes, *free], attrs, len(first.graph.outputs), loc)
    return unflatten(first.out_tree, res)


def free_union(regions: list[_Traced]) -> list[Node]:
    """The outer values any of `regions` reads, each once, in order of first use."""
    free: list[Node] = []
    seen: set[int] = set()
    for r in regions:
        for v in r.free:
            if id(v) not in seen:
                seen.add(id(v))
                free.append(v)
    return free


def with_free(region: _Traced, free: list[Node]) -> Graph:
    """The region's graph taking its declared inputs first, then every value of `free`
    (unused ones too), so that regions of one node share one signature."""
    g = region.graph
    own = {id(v): g.inputs[k] for k, v in enumerate(region.free)}
    extra = [own.get(id(v)) or make_input(v.aval) for v in free]  # type: ignore[arg-type]
    return Graph(list(g.inputs[len(region.free) :]) + extra, g.outputs)


def _index_node(x: Any, what: str, loc: str | None) -> Node:
    if isinstance(x, Tracer):
        return x.node
    if isinstance(x, (bool, int, np.integer, np.bool_, np.ndarray, float, np.floating)):
        return to_node(np.asarray(x), meta=Meta(loc, current_scope()))
    raise ControlFlowError(f"{what} must be a scalar array or number, got {type(x).__name__}", loc)


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """`true_fun(*operands)` if `pred` else `false_fun(*operands)`, with only the chosen branch
    run (JAX's `lax.cond`). `pred` is a boolean scalar; both branches must return the same
    types.

    Example:
        >>> graphc.cond(x.sum() > 0, lambda x: x, lambda x: -x, x)
    """
    loc = user_location()
    p = _index_node(pred, "cond: the predicate", loc)
    if p.aval.shape != () or p.aval.dtype != np.bool_:  # type: ignore[union-attr]
        hint = " (compare it, e.g. pred != 0)" if p.aval.shape == () else ""  # type: ignore[union-attr]
        raise ControlFlowError(
            f"cond: the predicate must be a boolean scalar, got {p.aval}{hint}", loc
        )
    return _branches(p, [false_fun, true_fun], ["false_fun", "true_fun"], operands, "cond", loc)


def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """`branches[index](*operands)`, with `index` clamped into range and only that branch run
    (JAX's `lax.switch`).

    Example:
        >>> graphc.switch(k, [np.sin, np.cos, np.tanh], x)
    """
    loc = user_location()
    branches = list(branches)
    if not branches or not all(callable(b) for b in branches):
        raise ControlFlowError("switch: branches must be a non-empty sequence of functions", loc)
    i = _index_node(index, "switch: the index", loc)
    if i.aval.shape != () or i.aval.dtype.kind not in "iu":  # type: ignore[union-attr]
        raise ControlFlowError(f"switch: the index must be an integer scalar, got {i.aval}", loc)
    names = [f"branches[{k}]" for k in range(len(branches))]
    return _branches(i, branches, names, operands, "switch", loc)


__all__ = ["ControlFlowError", "cond", "fori_loop", "scan", "switch", "while_loop"]
