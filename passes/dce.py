"""Dead-code elimination.

A Graph holds exactly what its outputs reach, so unreachable nodes vanish whenever a graph is
rebuilt; this pass does that rebuild and also drops the unused results of multi-output (fused)
nodes, which reachability alone cannot see.
"""

from __future__ import annotations

from graphc.ir import Graph, Node, TupleAval, users
from passes.manager import PassReport, register


@register("dce")
def dce(graph: Graph) -> tuple[Graph, PassReport]:
    """Remove values nothing uses, including unused results of fused kernels."""
    nodes = graph.nodes
    readers = users(nodes)
    out_ids = {id(o) for o in graph.outputs}
    shrink: dict[int, Node] = {}
    for n in nodes:
        if not isinstance(n.aval, TupleAval) or id(n) in out_ids:
            continue
        used = sorted({r.attrs["index"] for r in readers.get(id(n), []) if r.op == "proj"})
        if len(used) == len(n.aval.avals):
            continue
        from passes.fuse import restrict_outputs

        shrink[id(n)] = restrict_outputs(n, used)
    if not shrink:
        return graph.derive(), PassReport()
    from passes.fuse import reindex_projections

    return reindex_projections(graph, shrink), PassReport()
