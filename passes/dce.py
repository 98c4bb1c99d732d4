"""Dead-code elimination.

A Graph holds exactly what its outputs reach, so unreachable nodes vanish whenever a graph is
rebuilt; this pass does that rebuild and also asks each multi-result node's op entry (`prune`)
to drop the results nothing reads and the operands its regions no longer need (a fused
kernel's unused results, a loop's unused outputs and dead carries), which reachability alone
cannot see.
"""

from __future__ import annotations

from graphc.ir import Graph, Node, TupleAval, users
from graphc.ops import REGISTRY, apply
from passes.manager import PassReport, register


@register("dce")
def dce(graph: Graph) -> tuple[Graph, PassReport]:
    """Remove values nothing uses, including unused results of kernels and loops."""
    nodes = graph.nodes
    readers = users(nodes)
    out_ids = {id(o) for o in graph.outputs}
    shrink: dict[int, tuple[Node, dict[int, int]]] = {}
    for n in nodes:
        if not isinstance(n.aval, TupleAval) or id(n) in out_ids:
            continue
        prune = REGISTRY[n.op].prune
        if prune is None:
            continue
        used = {r.attrs["index"] for r in readers.get(id(n), []) if r.op == "proj"}
        pruned = prune(n, used)
        if pruned is not None:
            shrink[id(n)] = pruned
    if not shrink:
        return graph.derive(), PassReport()
    return reindex_projections(graph, shrink), PassReport()


def reindex_projections(graph: Graph, shrunk: dict[int, tuple[Node, dict[int, int]]]) -> Graph:
    """Rebuild `graph` with multi-result nodes replaced by others (`shrunk`: old node's id ->
    (new node, old result index -> new)), renumbering the `proj` nodes that read them (a new
    node with a single result is read directly)."""

    def replace(n: Node, orig: Node) -> Node | None:
        if id(orig) in shrunk:
            # the new node was made from the old one's operands: read their new versions
            # (an operand may itself be a result of a node replaced here)
            new = shrunk[id(orig)][0]
            now = {id(a): b for a, b in zip(orig.inputs, n.inputs, strict=True)}
            ins = [now.get(id(i), i) for i in new.inputs]
            if any(a is not b for a, b in zip(ins, new.inputs, strict=True)):
                new = new.with_inputs(ins)
            return new
        if orig.op == "proj" and id(orig.inputs[0]) in shrunk:
            f, index = n.inputs[0], shrunk[id(orig.inputs[0])][1]  # f: the replacement above
            if not isinstance(f.aval, TupleAval):
                return f
            return apply("proj", [f], {"index": index[orig.attrs["index"]]}, orig.meta)
        return None

    return graph.map(replace, nested=False)
