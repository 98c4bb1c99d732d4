"""Batching (what `graphc.vmap` runs) as a graph transformation.

`batch(graph, in_dims, size)` turns a graph computing one example into one computing `size`
examples at once: input k carries the batch along axis `in_dims[k]` (None: it is the same for
every example). One walk over the nodes in topological order asks each op's entry for its
batching rule (`OpDef.batch`, next to its gradient rules) with the operands' batch axes; the
rule builds the batched computation from graph ops, on tracers, and says where its result's
batch axis is. What the batch does not reach is not touched: nodes with no batched operand
are the very nodes of the input graph, so work that is the same for every example (the
forward pass of a Jacobian, a model's weights) is done once.

The pass handles three kinds of node itself: sources (`input`, `const`: batched exactly when
they are batched inputs), `proj` (the result of a multi-result node, read from what that
node's rule returned), and ops whose entry has no batching rule: those run as a `scan` over
the batch axis, one example per step, reported under GRAPHC_DEBUG and, through the loop's
metadata (role `batch-loop`), in `Lowered.notes` of every compiled graph they end up in.

Regions (loop bodies, branches, fused bodies) are batched by the same function, called by
their ops' rules through the context (`BatchContext.batch`); the recursion depth is the
nesting of regions, never the size of a graph, and each (region, batched inputs) pair is
batched once per transformation.

Example:
    >>> g = graphc.trace(lambda x, w: np.tanh(x @ w), spec("f32[3]"), spec("f32[3,4]"))
    >>> bg = batch(g, [0, None], 8)      # x batched on axis 0, w shared
    >>> bg.inputs[0].aval, bg.outputs[0].aval
    (f32[8,3], f32[8,4])
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from graphc.env import debug_level
from graphc.ir import Aval, Graph, GraphcError, Meta, Node, TupleAval, make_input
from graphc.ops import REGISTRY, apply
from graphc.ops.batching import BatchingError, at, front, moveaxis, node_of
from graphc.ops.control import inline as inline_nodes
from graphc.trace import Tracer, meta_override

Dim = int | None
FIRST = "first"  # an output request: batched outputs with the batch axis first, others as they are
LOOP_ROLE = "batch-loop"  # the metadata role of the scans that stand in for missing rules


def batched_aval(aval: Aval, d: Dim, size: int) -> Aval:
    """The type of a value of type `aval` batched along axis `d` (itself when d is None)."""
    if d is None:
        return aval
    return Aval(aval.shape[:d] + (size,) + aval.shape[d:], aval.dtype)


class _Shared:
    """What one transformation's walks share: batched regions (by region and marks) and the
    loops that stand in for missing rules."""

    def __init__(self) -> None:
        self.regions: dict[tuple, tuple[Graph, Graph, list[bool]]] = {}
        self.loops: list[str] = []


class BatchContext:
    """What a batching rule gets as `bt` (see graphc/ops/batching.py): the batch size, the node
    being batched, the pass's own transform for the node's regions, splicing a graph in, and
    the loop over the batch.

    Example:
        >>> body, outs = bt.batch(node.attrs["body"], [True, False])   # inside a rule
    """

    def __init__(self, size: int, shared: _Shared):
        self.size = size
        self.node: Node | None = None
        self._shared = shared
        self._dims: list[Dim] = []
        self._args: list[Node] = []

    def batch(
        self, graph: Graph, in_batched: Sequence[bool], out_batched: Sequence[bool] | None = None
    ) -> tuple[Graph, list[bool]]:
        """`graph` (a region) batched: inputs marked True carry the batch axis first, and so
        do its batched outputs; outputs marked True in `out_batched` are made batched (repeated
        when the region computes them alike for all examples), those marked False must not be.
        Returns the batched graph and which of its outputs are batched."""
        key = (
            id(graph),
            tuple(bool(b) for b in in_batched),
            None if out_batched is None else tuple(bool(b) for b in out_batched),
        )
        hit = self._shared.regions.get(key)
        if hit is not None and hit[0] is graph:
            return hit[1], list(hit[2])
        in_dims = [0 if b else None for b in in_batched]
        spec: list = [FIRST] * len(graph.outputs)
        if out_batched is not None:
            spec = [0 if b else None for b in out_batched]
        g, dims = _batch_graph(graph, in_dims, self.size, spec, self._shared)
        outs = [d is not None for d in dims]
        self._shared.regions[key] = (graph, g, outs)  # the graph is kept: its id stays unique
        return g, list(outs)

    def inline(self, graph: Graph, args: Sequence[Any]) -> list[Tracer]:
        """The outputs of `graph` computed from `args` in the batched graph."""
        return [Tracer(n) for n in inline_nodes(graph, [node_of(a) for a in args])]

    def loop(self, reason: str) -> tuple[list[Node], list[Dim]] | tuple[Node, Dim]:
        """The current node computed one example at a time: a `scan` over the batch whose step
        is the node itself on one example's operands (the unbatched ones are the loop's
        invariants). For the rare op without a rule, and the cases a rule has no batched form
        for (`reason` says which); reported under GRAPHC_DEBUG and in `Lowered.notes`."""
        n = self.node
        assert n is not None
        step_in = [make_input(i.aval) for i in n.inputs]  # type: ignore[arg-type]
        r = apply(n.op, step_in, dict(n.attrs), n.meta)
        multi = isinstance(r.aval, TupleAval)
        n_res = len(r.aval.avals) if isinstance(r.aval, TupleAval) else 1
        outs = [apply("proj", [r], {"index": k}, n.meta) for k in range(n_res)] if multi else [r]
        shared = [k for k, d in enumerate(self._dims) if d is None]
        per_example = [k for k, d in enumerate(self._dims) if d is not None]
        body = Graph(
            [step_in[k] for k in shared] + [step_in[k] for k in per_example],
            outs,
            name=f"vmap loop: {n.op}: {reason}",
        )
        xs = [node_of(front(Tracer(self._args[k]), self._dims[k])) for k in per_example]
        attrs = {
            "body": body,
            "n_consts": len(shared),
            "n_carry": 0,
            "length": self.size,
            "reverse": False,
        }
        meta = Meta(n.meta.loc, n.meta.scope, None, LOOP_ROLE)
        scan = apply("scan", [self._args[k] for k in shared] + xs, attrs, meta)
        res = [apply("proj", [scan], {"index": k}, n.meta) for k in range(len(outs))]
        note = loop_note(scan)
        self._shared.loops.append(note)
        if debug_level():
            print(f"[graphc] {note}", file=sys.stderr)
        return (res, [0] * len(res)) if multi else (res[0], 0)


def loop_note(scan: Node) -> str:
    """How a loop standing in for a batching rule is reported."""
    body = scan.attrs["body"]
    what = (body.name or "vmap loop: ").removeprefix("vmap loop: ")
    where = f" ({scan.meta.loc})" if scan.meta.loc else ""
    return f"vmap: {what}{where}: runs as a loop over the batch of {scan.attrs['length']}"


def _check_result(n: Node, k: int | None, v: Node, d: Dim, size: int) -> None:
    want = n.aval if k is None else n.aval.avals[k]  # type: ignore[union-attr]
    want = batched_aval(want, d, size)  # type: ignore[arg-type]
    if v.aval != want:
        which = "" if k is None else f" (result {k})"
        raise GraphcError(
            f"internal: the batching rule of {n.op}{which} made {v.aval} with the batch at "
            f"axis {d}, not {want}",
            n.meta.loc,
        )


def _run_rule(ctx: BatchContext, n: Node, args: list[Node], dims: list[Dim]) -> tuple:
    """The node's rule (or the loop) on the batched operands: (values, dims) per result."""
    op = REGISTRY[n.op]
    ctx.node, ctx._dims, ctx._args = n, dims, args
    with meta_override(Meta(n.meta.loc, n.meta.scope, None, n.meta.role)):
        if op.batch is None:
            out = ctx.loop("no batching rule")
        else:
            out = op.batch(ctx, list(dims), *[Tracer(a) for a in args], **n.attrs)
    values, out_dims = out
    if isinstance(n.aval, TupleAval):
        values = [node_of(v) for v in values]
        for k, (v, d) in enumerate(zip(values, out_dims, strict=True)):
            _check_result(n, k, v, d, ctx.size)
        return values, list(out_dims)
    v = node_of(values)
    _check_result(n, None, v, out_dims, ctx.size)
    return v, out_dims


def _batch_graph(
    graph: Graph, in_dims: Sequence[Dim], size: int, out_spec: Sequence[Any], shared: _Shared
) -> tuple[Graph, list[Dim]]:
    """The walk: `graph` batched with inputs at `in_dims`; each output placed as `out_spec`
    asks (an axis; None: must be unbatched; FIRST: batch axis first if batched)."""
    if len(in_dims) != len(graph.inputs):
        raise GraphcError(
            f"internal: {len(in_dims)} batch axes for a graph of {len(graph.inputs)} inputs"
        )
    vals: dict[int, Node] = {}
    dims: dict[int, Dim] = {}
    multi: dict[int, tuple[list[Node], list[Dim]]] = {}
    inputs = []
    for x, d in zip(graph.inputs, in_dims, strict=True):
        v = x if d is None else make_input(batched_aval(x.aval, d, size), name=x.meta.name)  # type: ignore[arg-type]
        vals[id(x)], dims[id(x)] = v, d
        inputs.append(v)
    ctx = BatchContext(size, shared)
    for n in graph.nodes:
        if id(n) in vals:
            continue
        ins = n.inputs
        if n.op == "proj" and id(ins[0]) in multi:
            res, ds = multi[id(ins[0])]
            k = n.attrs["index"]
            vals[id(n)], dims[id(n)] = res[k], ds[k]
            continue
        ds = [dims[id(i)] for i in ins]
        if all(d is None for d in ds):
            # the same for every example: the node itself (rebuilt when an operand came out
            # of a rule as a new, still unbatched, value)
            new_ins = [vals[id(i)] for i in ins]
            same = all(a is b for a, b in zip(new_ins, ins, strict=True))
            vals[id(n)] = n if same else n.with_inputs(new_ins)
            dims[id(n)] = None
            continue
        values, out_dims = _run_rule(ctx, n, [vals[id(i)] for i in ins], ds)
        if isinstance(n.aval, TupleAval):
            multi[id(n)] = (values, out_dims)
            vals[id(n)], dims[id(n)] = n, None  # read only through its projs
        else:
            vals[id(n)], dims[id(n)] = values, out_dims
    outputs, placed = [], []
    for k, (o, want) in enumerate(zip(graph.outputs, out_spec, strict=True)):
        v, d = vals[id(o)], dims[id(o)]
        if want is FIRST:
            want = None if d is None else 0
        elif want is None and d is not None:
            err = BatchingError(f"output {k} is computed per example, but its out_axes is None")
            err.output = k  # type: ignore[attr-defined]
            raise err
        if want is not None and d != want:
            with meta_override(Meta(o.meta.loc, o.meta.scope, None, o.meta.role)):
                t = Tracer(v)
                v = node_of(moveaxis(t, d, want) if d is not None else at(t, None, want, size))
            d = want
        outputs.append(v)
        placed.append(d)
    return Graph(inputs, outputs, name=graph.name), placed


def batch(
    graph: Graph,
    in_dims: Sequence[Dim],
    size: int,
    out_dims: Sequence[Dim | str] | None = None,
) -> Graph:
    """`graph` computing `size` examples at once. Input k carries the batch along axis
    `in_dims[k]` (None: shared by all examples). Output k gets it at axis `out_dims[k]`
    (None: the output must be the same for all examples, which is then not repeated;
    "first": first if batched; default: every output batched at axis 0, repeated where it is
    the same for all). `info["out_dims"]` says where each output's batch axis is and
    `info["batch_loops"]` lists the ops that run as a loop over the batch.

    Example:
        >>> bg = batch(g, [0, None], 8, out_dims=[1])
    """
    if out_dims is None:
        out_dims = [0] * len(graph.outputs)
    shared = _Shared()
    spec = [FIRST if d == FIRST else d for d in out_dims]
    if len(spec) != len(graph.outputs):
        raise GraphcError(f"batch: {len(spec)} output axes for {len(graph.outputs)} outputs")
    g, placed = _batch_graph(graph, in_dims, size, spec, shared)
    g.in_tree, g.out_tree = graph.in_tree, graph.out_tree
    g.info.update(out_dims=placed, batch_loops=list(shared.loops), batch_size=size)
    return g


__all__ = ["BatchContext", "BatchingError", "LOOP_ROLE", "batch", "batched_aval", "loop_note"]
