"""The reference interpreter: evaluates any graph with each op's NumPy implementation.

It belongs to the op layer: it needs nothing but the graph and the op entries, and the fused op
(whose NumPy reference runs its body) uses it.

It is the oracle every backend is tested against, so it stays simple: walk the nodes in order,
call `impl`, check the result has the type the shape rule promised, free values after their last
use.

Example:
    >>> g = graphc.trace(lambda x: np.tanh(x) * 2, np.ones(3))
    >>> graphc.evaluate(g, np.zeros(3))
    [array([0., 0., 0.])]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.ir import Graph, GraphcError, TupleAval
from graphc.ops import registry


def _check_args(graph: Graph, args: tuple) -> list[np.ndarray]:
    if len(args) != len(graph.inputs):
        raise GraphcError(f"the graph takes {len(graph.inputs)} inputs, got {len(args)}")
    out = []
    for i, (node, a) in enumerate(zip(graph.inputs, args, strict=True)):
        arr = np.asarray(a)
        want = node.aval
        if arr.shape != want.shape:
            raise GraphcError(f"input {i}: expected shape {want.shape}, got {arr.shape}")
        if arr.dtype != want.dtype:
            if not np.can_cast(arr.dtype, want.dtype, "same_kind"):
                raise GraphcError(f"input {i}: expected dtype {want.dtype}, got {arr.dtype}")
            arr = arr.astype(want.dtype)
        out.append(arr)
    return out


def evaluate(graph: Graph, *args: Any) -> list[np.ndarray]:
    """Run `graph` on concrete arrays; returns the list of output arrays."""
    vals = _check_args(graph, args)
    env: dict[int, Any] = {id(n): v for n, v in zip(graph.inputs, vals, strict=True)}
    nodes = graph.nodes
    # free each value after its last reader, so long chains do not hold every intermediate
    last_use: dict[int, int] = {}
    for pos, n in enumerate(nodes):
        for i in n.inputs:
            last_use[id(i)] = pos
    keep = {id(o) for o in graph.outputs}
    for pos, n in enumerate(nodes):
        if n.op == "input":
            continue
        op = registry.get(n.op)
        ins = [env[id(i)] for i in n.inputs]
        try:
            # untaken where-branches may legitimately overflow or divide by zero
            with np.errstate(all="ignore"):
                out = op.impl(*ins, **n.attrs)
        except GraphcError as e:  # raised on purpose (a loop over its bound, a body's op)
            if e.location is None and n.meta.loc:
                raise type(e)(e.message, n.meta.loc) from None
            raise
        except Exception as e:  # a bug in an impl, or bad runtime data (e.g. index out of range)
            where = f" (traced at {n.meta.loc})" if n.meta.loc else ""
            raise GraphcError(f"evaluating {n.op}{where} failed: {e}") from e
        env[id(n)] = _conform(n, out)
        for i in set(map(id, n.inputs)):
            if last_use.get(i) == pos and i not in keep:
                env.pop(i, None)
    return [env[id(o)] for o in graph.outputs]


def _conform(n, out: Any) -> Any:
    """Check (and normalise) an impl's result against the node's type."""
    aval = n.aval
    if isinstance(aval, TupleAval):
        return tuple(_conform_one(n.op, a, o) for a, o in zip(aval.avals, out, strict=True))
    return _conform_one(n.op, aval, out)


def _conform_one(op: str, aval, out: Any) -> np.ndarray:
    arr = np.asarray(out)
    if arr.shape != aval.shape:
        raise GraphcError(f"internal: {op} produced shape {arr.shape}, its rule says {aval}")
    if arr.dtype != aval.dtype:
        arr = arr.astype(aval.dtype)
    return arr
