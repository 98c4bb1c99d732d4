"""Structural checks on a graph: run after every pass in tests, on request otherwise.

Example:
    >>> graphc.verify(graphc.trace(np.tanh, np.ones(3)))
"""

from __future__ import annotations

from graphc.ir import Aval, Graph, GraphcError, Node, TupleAval, nested_graphs, toposort
from graphc.ops import registry


class VerifyError(GraphcError):
    """The graph breaks an invariant (a bug in whatever built it)."""


def verify(graph: Graph) -> Graph:
    """Check: acyclic; every op registered with the right arity; every node's type equals its
    op's shape rule; graph inputs are distinct input nodes and the only ones reachable; and
    the same of every nested graph (a fused kernel's body, a loop's body, a branch), whose
    signature its node's shape rule checks against the node's operands and results. Nested
    graphs are checked from a worklist, not by recursion; a problem inside one names the node
    that holds it.

    Returns the graph, so that a check can wrap an expression.

    Example:
        >>> g = verify(graph)   # the graph, or VerifyError("in the body of fused node 3: ...")
    """
    work: list[tuple[Graph, str]] = [(graph, "")]
    seen: set[int] = set()
    while work:
        g, where = work.pop()
        if id(g) in seen:
            continue
        seen.add(id(g))
        try:
            nested = _verify_one(g)
        except VerifyError as e:
            if not where:
                raise
            raise VerifyError(f"{where}: {e.message}") from None
        for k, (n, body) in enumerate(nested):
            # the node's shape rule has checked the body's signature against its operands
            inner = f"in the body of {n.op} node {k}" + (f" ({where})" if where else "")
            work.append((body, inner))
    return graph


def _verify_one(graph: Graph) -> list[tuple[Node, Graph]]:
    """Check one graph; return the (node, nested graph) pairs it holds."""
    nested: list[tuple[Node, Graph]] = []
    ins = {id(n) for n in graph.inputs}
    if len(ins) != len(graph.inputs):
        raise VerifyError("a graph input is listed twice")
    for i, n in enumerate(graph.inputs):
        if n.op != "input":
            raise VerifyError(f"graph input {i} is a {n.op} node, not an input")
    try:
        nodes = toposort(graph.outputs)
    except GraphcError as e:
        raise VerifyError(e.message) from None
    for n in nodes:
        if n.op == "input":
            if id(n) not in ins:
                raise VerifyError(
                    f"an input node of type {n.aval} is used but is not one of "
                    "the graph's inputs (a value leaked from another trace?)"
                )
            continue
        try:
            op = registry.get(n.op)
        except GraphcError as e:
            raise VerifyError(e.message) from None
        if op.arity is not None and len(n.inputs) != op.arity:
            raise VerifyError(f"{n.op} has {len(n.inputs)} operands, expected {op.arity}")
        for i in n.inputs:
            if isinstance(i.aval, TupleAval) and n.op != "proj":
                raise VerifyError(f"{n.op} reads a multi-output {i.op} node directly")
        problem = registry.attribute_problem(op, dict(n.attrs))
        if problem is not None:
            raise VerifyError(problem)
        try:
            want = op.shape(*[i.aval for i in n.inputs], **n.attrs)
        except GraphcError as e:
            raise VerifyError(f"{n.op}: its shape rule rejects the operands: {e.message}") from None
        except TypeError as e:
            raise VerifyError(f"{n.op}: bad attributes {dict(n.attrs)}: {e}") from None
        if want != n.aval:
            raise VerifyError(f"{n.op}: node type {n.aval} differs from its rule's {want}")
        for body in nested_graphs(n):
            nested.append((n, body))
    for o in graph.outputs:
        if not isinstance(o.aval, (Aval, TupleAval)):
            raise VerifyError("a graph output has no type")
    return nested
