"""Common-subexpression elimination: one node per distinct computation."""

from __future__ import annotations

from graphc.ir import Graph, Node
from passes import register


@register("cse")
def cse(graph: Graph) -> Graph:
    """Merge nodes that apply the same op, with equal attributes, to the same operands."""
    canon: dict[tuple, Node] = {}
    new: dict[int, Node] = {}
    for n in graph.nodes:
        if n.op == "input":
            new[id(n)] = n
            continue
        ins = tuple([new[id(i)] for i in n.inputs])
        key = (n.op, n.attr_key() if n.attrs else (), n.aval, tuple([id(i) for i in ins]))
        hit = canon.get(key)
        if hit is None:
            hit = n if ins == n.inputs else Node(n.op, ins, n.attrs, n.aval, n.meta)
            canon[key] = hit
        new[id(n)] = hit
    return graph.derive(outputs=[new[id(o)] for o in graph.outputs])
