"""Inlining: splice the region of every node that calls one once into the enclosing graph.

A `checkpoint` (and a function with custom derivatives, once differentiated) is a node holding
its body, so that autodiff can recompute the body in the backward pass and the partition keeps
only its operands. Before code generation the body's equations take the node's place, asked of
the op entry (`inline`), so they fuse with their neighbours like any others. The pass runs
after common-subexpression elimination: merging the backward's recomputation with the forward
values would undo the rematerialisation.

Example:
    >>> g2 = run_pipeline(g, ["inline"])   # no checkpoint equations left
"""

from __future__ import annotations

from graphc.ir import Graph, Node, TupleAval
from graphc.ops import REGISTRY
from passes.manager import PassReport, register


@register("inline")
def inline_calls(graph: Graph) -> tuple[Graph, PassReport]:
    """Splice the bodies of checkpoints and custom-derivative calls into the graph."""
    done: dict[int, tuple[Node, list[Node]]] = {}  # the call is kept: its id stays its own
    count = 0

    def splice(n: Node, orig: Node) -> Node | None:
        nonlocal count
        if (
            not n.inputs
            or not isinstance(n.inputs[0].aval, TupleAval)
            or isinstance(n.aval, TupleAval)
        ):
            return None
        call = n.inputs[0]
        expand = REGISTRY[call.op].inline
        if expand is None:
            return None
        entry = done.get(id(call))
        if entry is None or entry[0] is not call:
            entry = done[id(call)] = (call, expand(call))
            count += 1
        return entry[1][n.attrs["index"]]

    report = PassReport()
    out = graph.map(splice)
    if count:
        report.notes.append(f"inlined {count} region call(s)")
    return out, report
