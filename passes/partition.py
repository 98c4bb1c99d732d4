"""Split a joint (value + gradient) graph into a forward graph and a backward graph.

The forward graph takes the primal inputs and returns the primal outputs plus *residuals*: the
values the backward graph needs. The backward graph takes the residuals and the output
cotangents and returns the input gradients. These are the graphs users see pictured as "the
forward graph" and "the backward graph"; a training step runs one after the other.

Which values to save is a minimum cut (computed with networkx): every value the backward graph
needs is either saved or recomputed from saved values there. Cheap ops (elementwise and shape
ops) may be recomputed; contractions, reductions and the rest never are. Among all valid choices
the cut saves the fewest bytes: e.g. for `tanh(x @ W)` it saves the tanh output, not both it and
the matmul result, and an elementwise chain saves its single input rather than every step.

Example:
    >>> joint = passes.autodiff.vjp(graph, wrt=[0, 1])
    >>> p = partition(joint)
    >>> p.residual_bytes
    1024
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from graphc.ir import Graph, GraphcError, Node, make_input, substitute
from graphc.ops import REGISTRY, Kind

_RECOMPUTABLE = (Kind.ELEMENTWISE, Kind.SHAPE)


@dataclass
class Partition:
    """The result of `partition`: forward and backward graphs and what crosses between them."""

    forward: Graph
    backward: Graph
    residuals: list[Node]  # forward nodes saved for the backward graph, in order

    @property
    def residual_bytes(self) -> int:
        return sum(r.aval.nbytes for r in self.residuals)

    def __repr__(self) -> str:
        return (
            f"<Partition forward={len(self.forward.equations)} eqs, "
            f"backward={len(self.backward.equations)} eqs, {len(self.residuals)} residuals, "
            f"{self.residual_bytes} bytes>"
        )


def _backward_nodes(joint: Graph, ct_inputs: list[Node]) -> set[int]:
    """Nodes that depend on a cotangent input, plus the nodes only gradients use."""
    bwd = {id(c) for c in ct_inputs}
    for n in joint.nodes:
        if any(id(i) in bwd for i in n.inputs):
            bwd.add(id(n))
    return bwd


def partition(joint: Graph) -> Partition:
    """Split a joint graph from `passes.autodiff.vjp(..., seed="inputs")`."""
    info = joint.info
    if "n_primal_inputs" not in info or "grad_of" not in info:
        raise GraphcError("partition needs a joint graph made by passes.autodiff.vjp")
    n_in, n_out = info["n_primal_inputs"], info["n_primal_outputs"]
    primal_inputs = list(joint.inputs[:n_in])
    ct_inputs = list(joint.inputs[n_in:])
    primal_outputs = list(joint.outputs[:n_out])
    grads = list(joint.outputs[n_out:])

    bwd = _backward_nodes(joint, ct_inputs)
    # forward values the gradients need (constants are copied, never saved)
    fwd_nodes = [n for n in toposorted_upstream(grads) if id(n) not in bwd]
    fwd_ids = {id(n) for n in fwd_nodes}
    needed = {
        id(i)
        for n in toposorted_upstream(grads)
        if id(n) in bwd
        for i in n.inputs
        if id(i) in fwd_ids
    }
    needed |= {id(g) for g in grads if id(g) in fwd_ids}

    residuals = _min_cut(fwd_nodes, needed)
    res_inputs = [make_input(r.aval, name=f"residual{k}") for k, r in enumerate(residuals)]
    mapping = {id(r): ri for r, ri in zip(residuals, res_inputs, strict=True)}
    new_grads = substitute(grads, mapping)
    backward = Graph(res_inputs + ct_inputs, new_grads, name="backward")
    forward = Graph(primal_inputs, primal_outputs + residuals, name="forward")
    backward.info.update(
        n_residuals=len(residuals),
        # what the backward graph's inputs and outputs are in forward terms (for pictures):
        # the forward value each residual is, the forward output each cotangent belongs to,
        # the forward input each gradient is for
        residual_of=tuple(residuals),
        forward=forward,
        cotangent_of=tuple(info.get("differentiated", range(n_out))),
        grad_wrt=tuple(info.get("wrt", ())),
        primal_name=info.get("primal_name"),
    )
    forward.info.update(n_primal_outputs=n_out)
    return Partition(forward, backward, residuals)


def toposorted_upstream(outputs: list[Node]) -> list[Node]:
    from graphc.ir import toposort

    return toposort(outputs)


def _free_nodes(fwd_nodes: list[Node]) -> set[int]:
    """Constants and cheap values computed from constants alone: both sides can make them."""
    free: set[int] = set()
    for n in fwd_nodes:
        if n.op == "const" or (
            REGISTRY[n.op].kind in _RECOMPUTABLE
            and n.inputs
            and all(id(i) in free for i in n.inputs)
        ):
            free.add(id(n))
    return free


def _min_cut(fwd_nodes: list[Node], needed: set[int]) -> list[Node]:
    """The cheapest set of forward values from which the backward graph can recompute all it
    needs, by max-flow/min-cut over a graph where each value is an edge weighted by its size."""
    free = _free_nodes(fwd_nodes)
    needed = needed - free
    if not needed:
        return []
    G = nx.DiGraph()
    src, sink = "source", "sink"
    # edges without a capacity attribute have infinite capacity in networkx
    for n in fwd_nodes:
        a, b = (id(n), "in"), (id(n), "out")
        if id(n) in free:
            continue
        # +1 per computed value: among equally small cuts, save inputs rather than copies of them
        G.add_edge(a, b, capacity=float(n.aval.nbytes + (n.op != "input")))
        if n.op == "input" or REGISTRY[n.op].kind not in _RECOMPUTABLE:
            # only available from the forward pass: saving it, or something after it, is a must
            G.add_edge(src, a)
        for i in n.inputs:
            if id(i) not in free:
                G.add_edge((id(i), "out"), a)
        if id(n) in needed:
            G.add_edge(b, sink)
    _, (reachable, _) = nx.minimum_cut(G, src, sink)
    return [
        n
        for n in fwd_nodes
        if id(n) not in free and (id(n), "in") in reachable and (id(n), "out") not in reachable
    ]
