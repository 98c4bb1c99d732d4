"""Common-subexpression elimination: one node per distinct computation."""

from __future__ import annotations

from graphc.ir import Graph, Node
from passes.manager import PassReport, register


@register("cse")
def cse(graph: Graph) -> tuple[Graph, PassReport]:
    """Merge nodes that apply the same op, with equal attributes, to the same operands."""
    canon: dict[tuple, Node] = {}

    def merge(n: Node, orig: Node) -> Node | None:
        if n.op == "input":
            return None
        # operands are already canonical, so their ids identify the computation
        key = (n.op, n.attr_key() if n.attrs else (), n.aval, tuple([id(i) for i in n.inputs]))
        return canon.setdefault(key, n)

    # one table per walk: a fused body's nodes are never merged with the graph's own
    return graph.map(merge, nested=False), PassReport()
