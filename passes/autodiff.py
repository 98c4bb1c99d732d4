"""Automatic differentiation as graph transformations.

`vjp` (reverse mode) turns a graph into the *joint graph*: the same outputs plus the gradient of
each chosen input, built from each op's VJP rule, so the backward pass is ordinary IR that can be
printed, simplified, fused, compiled and differentiated again. `jvp` (forward mode) adds output
tangents for given input tangents, from each op's JVP rule.

Two things happen here once, for every op, instead of in every rule:
- Broadcasting is undone: a cotangent is summed to the shape of the operand it flows into
  (`sum_to_shape`), and tangents are broadcast to the shape of the value they belong to.
- Zero cotangents stay zero: `where` marks its branch cotangents as zero outside the taken
  branch (`Masked`); while such a cotangent flows back through elementwise ops the mask is
  re-applied after each rule, so `0 * inf` from the untaken branch (sqrt'(0), log'(0), ...) can
  never leak NaN into the result. `where(x > 0, sqrt(x), 0)` has gradient 0 at x <= 0.

Both walks are iterative: a 10,000-op chain differentiates without deep recursion.

Example:
    >>> g = graphc.trace(lambda x: np.sum(np.tanh(x)), graphc.spec("f32[3]"))
    >>> joint = vjp(g, wrt=[0])
    >>> len(joint.outputs)   # the loss and d loss / d x
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graphc.ir import (
    Aval,
    Graph,
    GraphcError,
    Meta,
    Node,
    TupleAval,
    is_float,
    make_const,
    make_input,
    map_nodes,
)
from graphc.ops import REGISTRY, Kind, Masked, apply, sum_to_shape
from graphc.trace import Tracer, meta_override


class AutodiffError(GraphcError):
    """A request autodiff cannot satisfy (e.g. differentiating with respect to an integer)."""


def _zeros(aval: Aval) -> Node:
    z = make_const(np.zeros((), aval.dtype))
    if aval.shape == ():
        return z
    return apply("broadcast_to", [z], {"shape": aval.shape}, z.meta)


def _ones(aval: Aval) -> Node:
    o = make_const(np.ones((), aval.dtype))
    if aval.shape == ():
        return o
    return apply("broadcast_to", [o], {"shape": aval.shape}, o.meta)


def _derived_meta(n: Node, role: str) -> Meta:
    return Meta(n.meta.loc, n.meta.scope, None, role)


def _conform(t: Tracer, aval: Aval) -> Tracer:
    """Cast a rule's result to the dtype of the value it belongs to (rules follow NumPy's
    promotion, e.g. a float64 constant could widen it)."""
    return t if t.dtype == aval.dtype else t.astype(aval.dtype)


def active_nodes(graph: Graph, wrt: Sequence[int]) -> set[int]:
    """Ids of nodes whose value depends differentiably on the inputs in `wrt`."""
    active = {id(graph.inputs[i]) for i in wrt}
    for n in graph.nodes:
        if n.op in ("input", "const"):
            continue
        # a multi-result node (a loop) is active through any operand; a result read from it
        # is active when it is a float
        if not isinstance(n.aval, TupleAval) and not is_float(n.dtype):
            continue
        if REGISTRY[n.op].differentiable and any(id(i) in active for i in n.inputs):
            active.add(id(n))
    return active


def _check_wrt(graph: Graph, wrt: Sequence[int]) -> None:
    for i in wrt:
        if not 0 <= i < len(graph.inputs):
            raise AutodiffError(
                f"cannot differentiate with respect to input {i}: the graph has "
                f"{len(graph.inputs)} inputs"
            )
        if not is_float(graph.inputs[i].dtype):
            raise AutodiffError(
                f"input {i} is {graph.inputs[i].aval}: only floating-point inputs have gradients"
            )


class RuleContext:
    """What the rules of a multi-result op (a loop, a branch) get besides their operands
    (keyword `ad`): which operands are active, the graph transforms to apply to the op's
    regions, and a way to replace the op's node by a new one that computes the same results
    first (a loop that also records what its derivative needs). The op layer cannot import
    this pass, so the pass hands its transforms down.

    Example:
        >>> joint = ad.vjp(body, wrt=[0, 1], outputs=[0])   # inside a rule
    """

    def __init__(self, active: list[bool], replaced: dict[int, list[Node]]):
        self.active = active
        self._replaced = replaced

    vjp = staticmethod(lambda *a, **k: vjp(*a, **k))
    jvp = staticmethod(lambda *a, **k: jvp(*a, **k))

    @staticmethod
    def active_nodes(graph: Graph, wrt: Sequence[int]) -> set[int]:
        return active_nodes(graph, wrt)

    def replace(self, old: Node, results: list[Node]) -> None:
        """Read result k of `old` as `results[k]` in the finished graph (the results must not
        depend on `old`): a loop replaced by one that also records what its derivative needs."""
        self._replaced[id(old)] = results


def _with_replacements(
    graph: Graph, replaced: dict[int, list[Node]], pairs: list
) -> tuple[Graph, list]:
    """`graph` reading the replacements' results instead of the replaced nodes'; `pairs`
    (grad_of) updated alike."""
    if not replaced:
        return graph, pairs

    def swap(n: Node, orig: Node) -> Node | None:
        if n.inputs and id(orig.inputs[0]) in replaced and not isinstance(n.aval, TupleAval):
            return replaced[id(orig.inputs[0])][orig.attrs["index"]]
        return None

    new = map_nodes(graph.nodes, swap, nested=False)
    get = new.get
    out = graph.derive(
        inputs=[get(id(i), i) for i in graph.inputs], outputs=[get(id(o), o) for o in graph.outputs]
    )
    return out, [(get(id(a), a), get(id(b), b)) for a, b in pairs]


def _tuple_ct(parts: dict[int, _Ct] | None, n: int) -> list:
    """The cotangent of each result of a multi-result node (None: zero)."""
    if not parts:
        return [None] * n
    return [parts[k].total()[0] if k in parts else None for k in range(n)]


@dataclass
class _Ct:
    """Accumulated cotangent contributions of one node."""

    parts: list
    masks: list  # same length; None where a contribution is unmasked

    def total(self) -> tuple[Tracer, Tracer | None]:
        acc = self.parts[0]
        for p in self.parts[1:]:
            acc = acc + p
        if any(m is None for m in self.masks):
            return acc, None
        mask = self.masks[0]
        for m in self.masks[1:]:
            mask = mask | m
        return acc, mask


def _vjp_multi(
    n: Node,
    parts: dict[int, _Ct],
    active: set[int],
    cts: dict[int, _Ct],
    replaced: dict[int, list[Node]],
) -> None:
    """Run the VJP rule of multi-result node n (given its results' cotangents) and add what
    it returns to its operands' cotangents."""
    op = REGISTRY[n.op]
    gs = _tuple_ct(parts, len(n.aval.avals))  # type: ignore[union-attr]
    ctx = RuleContext([id(i) in active for i in n.inputs], replaced)
    with meta_override(_derived_meta(n, "grad")):
        results = op.vjp(gs, Tracer(n), *[Tracer(i) for i in n.inputs], ad=ctx, **n.attrs)
    if len(results) != len(n.inputs):
        raise GraphcError(
            f"internal: the VJP rule of {n.op} returned {len(results)} "
            f"cotangents for {len(n.inputs)} operands"
        )
    for inp, r in zip(n.inputs, results, strict=True):
        if r is None or id(inp) not in active:
            continue
        r = _conform(r if isinstance(r, Tracer) else Tracer(r), inp.aval)  # type: ignore[arg-type]
        c = cts.setdefault(id(inp), _Ct([], []))
        c.parts.append(r)
        c.masks.append(None)


def vjp(
    graph: Graph, wrt: Sequence[int], *, seed: str = "inputs", outputs: Sequence[int] | None = None
) -> Graph:
    """Reverse mode: the joint graph computing the outputs and the gradients of inputs `wrt`.

    seed="inputs": the joint graph takes one cotangent input per differentiated output, after
    the original inputs (a VJP). seed="ones": every differentiated output gets cotangent 1 (the
    gradient of a scalar loss). `outputs` selects the outputs to differentiate (default: all);
    the joint graph returns all original outputs, then one gradient per `wrt` input.
    `joint.info["grad_of"]` lists (cotangent node, forward node) pairs: each accumulated
    cotangent and the value it is the gradient of.
    """
    _check_wrt(graph, wrt)
    outs = list(range(len(graph.outputs))) if outputs is None else list(outputs)
    active = active_nodes(graph, wrt)
    cts: dict[int, _Ct] = {}
    ct_inputs: list[Node] = []
    for k in outs:
        o = graph.outputs[k]
        if seed == "inputs":
            ci = make_input(o.aval, name=f"cotangent{k}")
            ct_inputs.append(ci)
            seed_node = ci
        elif seed == "ones":
            if not is_float(o.dtype):
                raise AutodiffError(
                    f"output {k} is {o.aval}: only floating-point outputs can be differentiated"
                )
            seed_node = _ones(o.aval)
        else:
            raise ValueError(f"seed must be 'inputs' or 'ones', got {seed!r}")
        if id(o) in active:
            c = cts.setdefault(id(o), _Ct([], []))
            c.parts.append(Tracer(seed_node))
            c.masks.append(None)

    grad_of: list[tuple[Node, Node]] = []
    tuple_cts: dict[int, dict[int, _Ct]] = {}  # multi-result node -> cotangents per result
    replaced: dict[int, list[Node]] = {}
    for n in reversed(graph.nodes):
        if isinstance(n.aval, TupleAval):
            if id(n) in active and id(n) in tuple_cts:
                _vjp_multi(n, tuple_cts.pop(id(n)), active, cts, replaced)
            continue
        entry = cts.get(id(n))
        if entry is None or n.op in ("input", "const"):
            continue
        if not any(id(i) in active for i in n.inputs):
            continue
        if n.inputs and isinstance(n.inputs[0].aval, TupleAval):
            # a result of a multi-result node: its cotangent waits there, per result
            g, _ = entry.total()
            grad_of.append((g.node, n))
            slot = tuple_cts.setdefault(id(n.inputs[0]), {})
            c = slot.setdefault(n.attrs["index"], _Ct([], []))
            c.parts.append(g)
            c.masks.append(None)
            continue
        op = REGISTRY[n.op]
        with meta_override(_derived_meta(n, "grad")):
            g, mask = entry.total()
            grad_of.append((g.node, n))
            ins = [Tracer(i) for i in n.inputs]
            results = op.vjp(g, Tracer(n), *ins, **n.attrs)
            if len(results) != len(n.inputs):
                raise GraphcError(
                    f"internal: the VJP rule of {n.op} returned {len(results)} "
                    f"cotangents for {len(n.inputs)} operands"
                )
            elementwise = op.kind is Kind.ELEMENTWISE
            for inp, r in zip(n.inputs, results, strict=True):
                if r is None or id(inp) not in active:
                    continue
                new_mask = None
                if isinstance(r, Masked):
                    r, new_mask = r.value, r.mask
                if not isinstance(r, Tracer):
                    r = Tracer(_zeros(n.aval)) + r  # a rule returned a constant
                if new_mask is None and elementwise and mask is not None:
                    # the incoming cotangent is zero outside `mask`: keep the result exactly so
                    if not op.facts.linear:
                        r = np.where(mask, r, np.zeros((), r.dtype))
                    new_mask = mask
                if tuple(r.shape) != inp.shape:
                    r, new_mask = sum_to_shape(r, inp.shape), None
                r = _conform(r, inp.aval)
                c = cts.setdefault(id(inp), _Ct([], []))
                c.parts.append(r)
                c.masks.append(new_mask)

    grads = []
    for i in wrt:
        x = graph.inputs[i]
        entry = cts.get(id(x))
        if entry is None:
            grads.append(_zeros(x.aval))
        else:
            with meta_override(_derived_meta(x, "grad")):
                grads.append(entry.total()[0].node)
            grad_of.append((grads[-1], x))
    joint = Graph(
        list(graph.inputs) + ct_inputs,
        list(graph.outputs) + grads,
        name=f"vjp({graph.name})" if graph.name else None,
    )
    joint, grad_of = _with_replacements(joint, replaced, grad_of)
    joint.info.update(
        grad_of=grad_of,
        n_primal_inputs=len(graph.inputs),
        n_primal_outputs=len(graph.outputs),
        wrt=tuple(wrt),
        differentiated=tuple(outs),
        primal_name=graph.name,
    )
    return joint


def jvp(graph: Graph, wrt: Sequence[int]) -> Graph:
    """Forward mode: a graph taking the original inputs then one tangent per `wrt` input, and
    returning the original outputs then one tangent per output (zeros where constant)."""
    _check_wrt(graph, wrt)
    tangent_inputs = [make_input(graph.inputs[i].aval, name=f"tangent{i}") for i in wrt]
    tan: dict[int, Tracer] = {
        id(graph.inputs[i]): Tracer(t) for i, t in zip(wrt, tangent_inputs, strict=True)
    }
    tuple_tan: dict[int, list] = {}  # multi-result node -> tangent per result (None: zero)
    replaced: dict[int, list[Node]] = {}
    for n in graph.nodes:
        if isinstance(n.aval, TupleAval):
            ts = [tan.get(id(i)) for i in n.inputs]
            if any(t is not None for t in ts) and REGISTRY[n.op].differentiable:
                ctx = RuleContext([t is not None for t in ts], replaced)
                with meta_override(_derived_meta(n, "tangent")):
                    outs = REGISTRY[n.op].jvp(
                        ts, Tracer(n), *[Tracer(i) for i in n.inputs], ad=ctx, **n.attrs
                    )
                tuple_tan[id(n)] = [
                    t if t is None or isinstance(t, Tracer) else Tracer(t) for t in outs
                ]
            continue
        if n.op in ("input", "const") or not is_float(n.dtype):
            continue
        if n.inputs and id(n.inputs[0]) in tuple_tan:
            t = tuple_tan[id(n.inputs[0])][n.attrs["index"]]
            if t is not None:
                tan[id(n)] = _conform(t, n.aval)  # type: ignore[arg-type]
            continue
        ts = [tan.get(id(i)) for i in n.inputs]
        if all(t is None for t in ts):
            continue
        op = REGISTRY[n.op]
        if not op.differentiable:
            continue
        with meta_override(_derived_meta(n, "tangent")):
            t = op.jvp(ts, Tracer(n), *[Tracer(i) for i in n.inputs], **n.attrs)
            if t is None:
                continue
            if not isinstance(t, Tracer):
                t = Tracer(_zeros(n.aval)) + t
            if tuple(t.shape) != n.shape:
                t = np.broadcast_to(t, n.shape)
            tan[id(n)] = _conform(t, n.aval)
    out_tangents = []
    for o in graph.outputs:
        t = tan.get(id(o))
        out_tangents.append(t.node if t is not None else _zeros(o.aval))
    g = Graph(
        list(graph.inputs) + tangent_inputs,
        list(graph.outputs) + out_tangents,
        name=f"jvp({graph.name})" if graph.name else None,
    )
    g, _ = _with_replacements(g, replaced, [])
    g.info.update(
        n_primal_inputs=len(graph.inputs), n_primal_outputs=len(graph.outputs), wrt=tuple(wrt)
    )
    return g
