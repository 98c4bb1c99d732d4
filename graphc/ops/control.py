"""Control flow: ops whose attributes hold graphs (regions) that run many times or by choice.

scan        operands: consts..., init carry..., xs...   attrs: body, n_consts, n_carry,
            length, reverse. The body maps (consts, carry, x slices) -> (carry, y slices); the
            node yields the final carry and the per-step ys stacked on a new leading axis of
            `length` (ys[t] belongs to xs[t], also when the loop runs in reverse).
while_loop  operands: cond consts..., body consts..., init carry...   attrs: cond, body,
            n_cond_consts, n_body_consts, max_trips. `cond` maps (its consts, carry) -> a
            boolean scalar, `body` (its consts, carry) -> carry; the node yields the carry
            once `cond` is false. With `max_trips`, running more trips than that is an error.
cond        operands: index, operands...   attrs: branches (a tuple of graphs of the same
            signature). A boolean index picks branches[1] when true (two branches); an integer
            index is clamped into range, as `graphc.switch` (and JAX's) does.

Every result is a tuple (a TupleAval) read with `proj`, so one loop computes all of its values
once. The shape rules check each region's signature against the operands, and the NumPy
references run the regions with the reference interpreter.

Example:
    >>> g = graphc.trace(lambda xs: graphc.scan(lambda c, x: (c + x, c), 0.0, xs), np.ones(4))
    >>> [n.op for n in g.equations][:1]
    ['scan']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.ir import Aval, Graph, GraphcError, Node, ShapeError, TupleAval, toposort
from graphc.ops.interp import evaluate
from graphc.ops.registry import Kind, apply, defop


def _types(avals: Any) -> str:
    return "(" + ", ".join(str(a) for a in avals) + ")"


def _expect(what: str, got: list, want: list) -> None:
    if list(got) != list(want):
        raise ShapeError(f"{what}: {_types(got)} differ from {_types(want)}")


def _outs(graph: Graph) -> list[Aval]:
    return [o.aval for o in graph.outputs]  # type: ignore[misc]


def _ins(graph: Graph) -> list[Aval]:
    return [i.aval for i in graph.inputs]  # type: ignore[misc]


def read_inputs(graph: Graph, outputs: list[int]) -> set[int]:
    """Positions of the inputs of `graph` that its outputs at `outputs` depend on."""
    pos = {id(n): k for k, n in enumerate(graph.inputs)}
    return {pos[id(n)] for n in toposort([graph.outputs[k] for k in outputs]) if id(n) in pos}


def _live_carries(body: Graph, first_carry: int, n_carry: int, live: set[int]) -> set[int]:
    """`live` body outputs (carry k is output k) grown by every carry they read, to a fixed
    point: a carry that feeds a live value must itself be carried."""
    live = set(live)
    while True:
        reached = read_inputs(body, sorted(live))
        grown = live | {k for k in range(n_carry) if first_carry + k in reached}
        if grown == live:
            return live
        live = grown


def _restricted(graph: Graph, ins: list[int], outs: list[int]) -> Graph:
    return Graph([graph.inputs[k] for k in ins], [graph.outputs[k] for k in outs])


# ---------------------------------------------------------------------------------------------
# scan


def scan_parts(n_consts: int, n_carry: int, operands: list) -> tuple[list, list, list]:
    """(consts, carry, xs) of a scan's operands (or of its body's inputs)."""
    return (
        list(operands[:n_consts]),
        list(operands[n_consts : n_consts + n_carry]),
        list(operands[n_consts + n_carry :]),
    )


def _scan_rule(
    *avals: Aval, body: Graph, n_consts: int, n_carry: int, length: int, reverse: bool
) -> TupleAval:
    if not isinstance(body, Graph):
        raise ShapeError("scan: body must be a graph")
    if length < 0:
        raise ShapeError(f"scan: length must be non-negative, got {length}")
    if len(avals) != len(body.inputs):
        raise ShapeError(f"scan: {len(avals)} operands for a body of {len(body.inputs)} inputs")
    if n_consts < 0 or n_carry < 0 or n_consts + n_carry > len(avals):
        raise ShapeError(f"scan: bad operand counts n_consts={n_consts}, n_carry={n_carry}")
    consts, carry, xs = scan_parts(n_consts, n_carry, list(avals))
    b_consts, b_carry, b_xs = scan_parts(n_consts, n_carry, _ins(body))
    _expect("scan: the loop-invariant operands", consts, b_consts)
    _expect("scan: the initial carry", carry, b_carry)
    outs = _outs(body)
    if len(outs) < n_carry:
        raise ShapeError(f"scan: the body returns {len(outs)} values for {n_carry} carries")
    _expect("scan: the body's carry out", outs[:n_carry], carry)
    for k, (x, bx) in enumerate(zip(xs, b_xs, strict=True)):
        if x.shape[:1] != (length,) or x.shape[1:] != bx.shape or x.dtype != bx.dtype:
            raise ShapeError(
                f"scan: sequence {k} is {x}; a body reading {bx} per step over {length} "
                f"steps needs {Aval((length, *bx.shape), bx.dtype)}"
            )
    ys = [Aval((length, *y.shape), y.dtype) for y in outs[n_carry:]]
    return TupleAval(tuple(carry) + tuple(ys))


def _scan_impl(
    *args: np.ndarray, body: Graph, n_consts: int, n_carry: int, length: int, reverse: bool
) -> tuple:
    consts, carry, xs = scan_parts(n_consts, n_carry, list(args))
    ys = [np.empty((length, *y.shape), y.dtype) for y in _outs(body)[n_carry:]]
    for t in range(length - 1, -1, -1) if reverse else range(length):
        outs = evaluate(body, *consts, *carry, *[x[t] for x in xs])
        carry = outs[:n_carry]
        for y, v in zip(ys, outs[n_carry:], strict=True):
            y[t] = v
    return tuple(carry) + tuple(ys)


def _scan_prune(n: Node, used: set[int]) -> tuple[Node, dict[int, int]] | None:
    a = n.attrs
    body, nc, ncar = a["body"], a["n_consts"], a["n_carry"]
    live = _live_carries(body, nc, ncar, used)
    reached = read_inputs(body, sorted(live))
    outs = sorted(live)
    ins = [
        k for k in range(len(body.inputs)) if k in reached or nc <= k < nc + ncar and k - nc in live
    ]
    if len(outs) == len(body.outputs) and len(ins) == len(body.inputs):
        return None
    attrs = dict(a)
    attrs["body"] = _restricted(body, ins, outs)
    attrs["n_consts"] = sum(1 for k in ins if k < nc)
    attrs["n_carry"] = sum(1 for k in outs if k < ncar)
    new = apply("scan", [n.inputs[k] for k in ins], attrs, n.meta)
    return new, {k: j for j, k in enumerate(outs)}


defop(
    "scan",
    Kind.OTHER,
    _scan_rule,
    _scan_impl,
    differentiable=False,
    prune=_scan_prune,
    regions=True,
    doc="a loop over the leading axis of its sequences: the body maps (consts, carry, x[t]) to "
    "(carry, y[t]); results: the final carry, then the ys stacked",
)


# ---------------------------------------------------------------------------------------------
# while_loop


class TripLimitError(GraphcError, RuntimeError):
    """A `while_loop` with `max_trips` would run more trips than that."""


def _while_rule(
    *avals: Aval,
    cond: Graph,
    body: Graph,
    n_cond_consts: int,
    n_body_consts: int,
    max_trips: int | None,
) -> TupleAval:
    if not isinstance(cond, Graph) or not isinstance(body, Graph):
        raise ShapeError("while_loop: cond and body must be graphs")
    if max_trips is not None and (type(max_trips) is not int or max_trips < 0):
        raise ShapeError(f"while_loop: max_trips must be a non-negative int, got {max_trips!r}")
    nc, nb = n_cond_consts, n_body_consts
    if nc < 0 or nb < 0 or nc + nb > len(avals):
        raise ShapeError(f"while_loop: bad operand counts {nc}, {nb} for {len(avals)} operands")
    cconsts, bconsts, carry = list(avals[:nc]), list(avals[nc : nc + nb]), list(avals[nc + nb :])
    _expect("while_loop: the condition's inputs", _ins(cond), cconsts + carry)
    _expect("while_loop: the body's inputs", _ins(body), bconsts + carry)
    _expect("while_loop: the body's carry out", _outs(body), carry)
    if _outs(cond) != [Aval((), np.dtype(np.bool_))]:
        raise ShapeError(f"while_loop: the condition returns {_types(_outs(cond))}, not (bool[])")
    return TupleAval(tuple(carry))


def _while_impl(
    *args: np.ndarray,
    cond: Graph,
    body: Graph,
    n_cond_consts: int,
    n_body_consts: int,
    max_trips: int | None,
) -> tuple:
    nc, nb = n_cond_consts, n_body_consts
    cconsts, bconsts, carry = list(args[:nc]), list(args[nc : nc + nb]), list(args[nc + nb :])
    trips = 0
    while bool(evaluate(cond, *cconsts, *carry)[0]):
        if max_trips is not None and trips == max_trips:
            raise TripLimitError(
                f"while_loop: the condition still holds after max_trips={max_trips} trips"
            )
        carry = evaluate(body, *bconsts, *carry)
        trips += 1
    return tuple(carry)


def _while_prune(n: Node, used: set[int]) -> tuple[Node, dict[int, int]] | None:
    a = n.attrs
    cond, body, nc, nb = a["cond"], a["body"], a["n_cond_consts"], a["n_body_consts"]
    ncar = len(body.outputs)
    cond_reads = read_inputs(cond, [0])
    live = set(used) | {k - nc for k in cond_reads if k >= nc}
    live = _live_carries(body, nb, ncar, live)
    carries = sorted(live)
    body_reads = read_inputs(body, carries)
    cconsts = [k for k in range(nc) if k in cond_reads]
    bconsts = [k for k in range(nb) if k in body_reads]
    if len(cconsts) == nc and len(bconsts) == nb and len(carries) == ncar:
        return None
    attrs = dict(a)
    attrs["cond"] = _restricted(cond, cconsts + [nc + k for k in carries], [0])
    attrs["body"] = _restricted(body, bconsts + [nb + k for k in carries], carries)
    attrs["n_cond_consts"], attrs["n_body_consts"] = len(cconsts), len(bconsts)
    operands = (
        [n.inputs[k] for k in cconsts]
        + [n.inputs[nc + k] for k in bconsts]
        + [n.inputs[nc + nb + k] for k in carries]
    )
    new = apply("while_loop", operands, attrs, n.meta)
    return new, {k: j for j, k in enumerate(carries)}


defop(
    "while_loop",
    Kind.OTHER,
    _while_rule,
    _while_impl,
    differentiable=False,
    prune=_while_prune,
    regions=True,
    doc="a loop that runs its body over the carry while its condition holds",
)


# ---------------------------------------------------------------------------------------------
# cond


def _cond_rule(index: Aval, *avals: Aval, branches: tuple) -> TupleAval:
    if not isinstance(branches, tuple) or not branches:
        raise ShapeError("cond: needs a non-empty tuple of branch graphs")
    if not all(isinstance(b, Graph) for b in branches):
        raise ShapeError("cond: every branch must be a graph")
    if index.shape != ():
        raise ShapeError(f"cond: the index must be a scalar, got {index}")
    if index.dtype == np.bool_:
        if len(branches) != 2:
            raise ShapeError(
                f"cond: a boolean index chooses between 2 branches, not {len(branches)}"
            )
    elif index.dtype.kind not in "iu":
        raise ShapeError(f"cond: the index must be a boolean or an integer scalar, got {index}")
    first = _outs(branches[0])
    for k, b in enumerate(branches):
        _expect(f"cond: branch {k}'s inputs", _ins(b), list(avals))
        _expect(f"cond: branch {k}'s outputs", _outs(b), first)
    return TupleAval(tuple(first))


def branch_index(index: Any, n: int) -> int:
    """The branch a concrete index picks: booleans as 0/1, integers clamped to [0, n-1]."""
    return int(min(max(int(index), 0), n - 1))


def _cond_impl(index: np.ndarray, *args: np.ndarray, branches: tuple) -> tuple:
    return tuple(evaluate(branches[branch_index(index, len(branches))], *args))


def _cond_prune(n: Node, used: set[int]) -> tuple[Node, dict[int, int]] | None:
    branches = n.attrs["branches"]
    outs = sorted(used)
    reads: set[int] = set()
    for b in branches:
        reads |= read_inputs(b, outs)
    ins = sorted(reads)
    if len(outs) == len(branches[0].outputs) and len(ins) == len(branches[0].inputs):
        return None
    new_branches = tuple(_restricted(b, ins, outs) for b in branches)
    operands = [n.inputs[0]] + [n.inputs[1 + k] for k in ins]
    new = apply("cond", operands, {"branches": new_branches}, n.meta)
    return new, {k: j for j, k in enumerate(outs)}


defop(
    "cond",
    Kind.OTHER,
    _cond_rule,
    _cond_impl,
    differentiable=False,
    prune=_cond_prune,
    regions=True,
    doc="runs the branch its index picks (bool: branches[1] when true; int: clamped)",
)
