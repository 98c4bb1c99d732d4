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

from graphc.ir import (
    Aval,
    Const,
    Graph,
    GraphcError,
    Node,
    ShapeError,
    TupleAval,
    make_input,
    map_nodes,
    toposort,
)
from graphc.ops.batching import at, front, moveaxis, node_of
from graphc.ops.interp import evaluate
from graphc.ops.registry import Kind, apply, bind, defop


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
    *avals: Aval,
    body: Graph,
    n_consts: int,
    n_carry: int,
    length: int,
    reverse: bool,
    remat: bool = False,
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
    *args: np.ndarray,
    body: Graph,
    n_consts: int,
    n_carry: int,
    length: int,
    reverse: bool,
    remat: bool = False,
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
    vjp=lambda *a, **k: _scan_vjp(*a, **k),
    jvp=lambda *a, **k: _scan_jvp(*a, **k),
    prune=_scan_prune,
    regions=True,
    batch=lambda *a, **k: _scan_batch(*a, **k),
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
    vjp=lambda *a, **k: _while_vjp(*a, **k),
    jvp=lambda *a, **k: _while_jvp(*a, **k),
    prune=_while_prune,
    regions=True,
    batch=lambda *a, **k: _while_batch(*a, **k),
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
    vjp=lambda *a, **k: _cond_vjp(*a, **k),
    jvp=lambda *a, **k: _cond_jvp(*a, **k),
    prune=_cond_prune,
    regions=True,
    batch=lambda *a, **k: _cond_batch(*a, **k),
    doc="runs the branch its index picks (bool: branches[1] when true; int: clamped)",
)


# ---------------------------------------------------------------------------------------------
# derivatives
#
# The rules of these ops get `ad` (the autodiff pass's RuleContext): which operands are active,
# the pass's own `vjp`/`jvp` graph transforms to apply to the regions, and `replace`, which
# swaps the node for one computing the same results first and more besides (the loop that
# also records what the backward loop reads). Cotangents and tangents come per result and per
# operand, None standing for zero.


class LoopDerivativeError(GraphcError):
    """A derivative graphc cannot take through a loop (reverse mode through an unbounded
    while_loop)."""


def _floating(n: Node) -> bool:
    return isinstance(n.aval, Aval) and n.aval.dtype.kind == "f"


def _zeros(aval: Aval, meta: Any = None) -> Node:
    z = Node("const", (), {"value": Const(np.zeros((), aval.dtype))}, Aval((), aval.dtype), meta)
    return z if aval.shape == () else apply("broadcast_to", [z], {"shape": aval.shape}, meta)


def _projs(node: Node) -> list[Node]:
    return [apply("proj", [node], {"index": k}, node.meta) for k in range(len(node.aval.avals))]  # type: ignore[union-attr]


def inline(graph: Graph, args: list[Node]) -> list[Node]:
    """The outputs of `graph` computed from `args` by copies of its nodes (a graph's body
    spliced into another graph)."""
    mapping = {id(i): a for i, a in zip(graph.inputs, args, strict=True)}
    new = map_nodes(
        graph.nodes[len(graph.inputs) :], lambda n, o: None, nested=False, mapping=mapping
    )
    return [new[id(o)] for o in graph.outputs]


def _active_inputs(
    ad: Any, body: Graph, first_carry: int, n_carry: int, act: list[bool]
) -> tuple[list[bool], set[int]]:
    """Which body inputs carry derivatives: those of active operands, grown by every carry an
    active input reaches, to a fixed point. Also the ids of the body's active nodes."""
    act = list(act)
    while True:
        active = ad.active_nodes(body, [k for k, a in enumerate(act) if a])
        grown = list(act)
        for k in range(n_carry):
            if id(body.outputs[k]) in active and _floating(body.outputs[k]):
                grown[first_carry + k] = True
        if grown == act:
            return act, active
        act = grown


# -- scan --------------------------------------------------------------------------------------


def _scan_jvp(ts, out, *xs, ad, body, n_consts, n_carry, length, reverse, remat=False):
    n = out.node
    ops = list(n.inputs)
    nb, ny = len(body.inputs), len(body.outputs) - n_carry
    act0 = [t is not None and _floating(o) for t, o in zip(ts, ops, strict=True)]
    act, active = _active_inputs(ad, body, n_consts, n_carry, act0)
    wrt = [k for k in range(nb) if act[k]]
    jb = ad.jvp(body, wrt)
    tan_in = dict(zip(wrt, jb.inputs[nb:], strict=True))
    nout = len(body.outputs)
    carries = [k for k in range(n_carry) if act[n_consts + k]]
    ys = [
        j
        for j in range(ny)
        if _floating(body.outputs[n_carry + j]) and id(body.outputs[n_carry + j]) in active
    ]

    def tangent(k: int) -> Node:
        return ts[k].node if ts[k] is not None else _zeros(ops[k].aval, n.meta)

    parts = scan_parts(n_consts, n_carry, list(range(nb)))
    groups = [[k for k in part if act[k]] for part in parts]
    operands, inputs = [], []
    for part, act_part in zip(parts, groups, strict=True):
        operands += [ops[k] for k in part] + [tangent(k) for k in act_part]
        inputs += [jb.inputs[k] for k in part] + [tan_in[k] for k in act_part]
    outputs = (
        list(jb.outputs[:n_carry])
        + [jb.outputs[nout + k] for k in carries]
        + list(jb.outputs[n_carry:nout])
        + [jb.outputs[nout + n_carry + j] for j in ys]
    )
    attrs = {
        "body": Graph(inputs, outputs),
        "n_consts": n_consts + len(groups[0]),
        "n_carry": n_carry + len(carries),
        "length": length,
        "reverse": reverse,
    }
    res = _projs(apply("scan", operands, attrs, n.meta))
    nc2 = n_carry + len(carries)
    ad.replace(n, res[:n_carry] + res[nc2 : nc2 + ny])
    tangents: list = [None] * nout
    for j, k in enumerate(carries):
        tangents[k] = res[n_carry + j]
    for j, m in enumerate(ys):
        tangents[n_carry + m] = res[nc2 + ny + j]
    return tangents


def scan_vjp_parts(
    ops: list[Node],
    cts: list,
    active: list[bool],
    ad: Any,
    meta: Any,
    *,
    body: Graph,
    n_consts: int,
    n_carry: int,
    length: int,
    reverse: bool,
    remat: bool = False,
) -> tuple[list[Node] | None, list[Node | None]]:
    """Reverse mode of a scan over `ops`: (the results of a forward scan that also records
    the per-step values the backward reads, or None when no derivative flows; the cotangent
    of each operand).

    The body's joint graph (its VJP) splits into what the cotangents do not reach (the
    forward work) and the rest (the backward step). What the backward step reads of the
    forward work becomes: nothing to store if it is a constant or an operand (consts and xs
    are read where they are); a value computed once before the loop if it depends on the
    consts alone; otherwise a per-step value the forward loop writes into a [length, ...]
    tape. The backward step then runs as a scan in the opposite direction whose carry holds
    the carries' cotangents and the consts' cotangents accumulated over the steps.

    With `remat`, the forward loop records only the carries, and the backward step computes
    the step's forward values again before using them (what `scan(..., checkpoint=k)` asks
    of its loop over segments)."""
    nb, nout = len(body.inputs), len(body.outputs)
    ny = nout - n_carry
    act0 = [a and _floating(o) for a, o in zip(active, ops, strict=True)]
    act, act_nodes = _active_inputs(ad, body, n_consts, n_carry, act0)
    none: list[Node | None] = [None] * len(ops)
    wrt = [k for k in range(nb) if act[k]]
    carries = [k for k in range(n_carry) if act[n_consts + k]]
    ys = [
        j
        for j in range(ny)
        if cts[n_carry + j] is not None and id(body.outputs[n_carry + j]) in act_nodes
    ]
    diff_outs = carries + [n_carry + j for j in ys]
    if not wrt or not diff_outs:
        return None, none
    joint = ad.vjp(body, wrt, seed="inputs", outputs=diff_outs)
    ct_in = list(joint.inputs[nb:])
    grads = list(joint.outputs[nout:])
    # the backward part: everything a cotangent reaches
    back: set[int] = {id(c) for c in ct_in}
    variant: set[int] = {id(i) for i in body.inputs[n_consts:]}
    back_nodes: list[Node] = []
    if remat:
        # rematerialised: the backward step recomputes the forward work from the step's
        # inputs, so the forward loop records nothing but the carries
        back_nodes = [m for m in toposort(grads) if m.op != "input"]
        back |= {id(m) for m in back_nodes}
    for m in [] if remat else joint.nodes:
        if any(id(i) in back for i in m.inputs):
            back.add(id(m))
            back_nodes.append(m)
        elif any(id(i) in variant for i in m.inputs):
            variant.add(id(m))
    residuals: list[Node] = []
    seen: set[int] = set()
    for m in back_nodes + grads:
        for r in m.inputs if id(m) in back else (m,):
            if id(r) not in back and id(r) not in seen and r.op != "const":
                seen.add(id(r))
                residuals.append(r)
    pos = {id(i): k for k, i in enumerate(body.inputs)}
    hoisted = [r for r in residuals if id(r) not in variant and id(r) not in pos]
    const_in = [r for r in residuals if id(r) in pos and pos[id(r)] < n_consts]
    x_in = [r for r in residuals if id(r) in pos and pos[id(r)] >= n_consts + n_carry]
    taped = [
        r
        for r in residuals
        if id(r) in variant and not (id(r) in pos and pos[id(r)] >= n_consts + n_carry)
    ]
    # the forward scan, also writing the tape
    fwd_body = Graph(body.inputs, list(body.outputs) + taped)
    fwd_attrs = {
        "body": fwd_body,
        "n_consts": n_consts,
        "n_carry": n_carry,
        "length": length,
        "reverse": reverse,
        **({"remat": True} if remat else {}),
    }
    fwd = _projs(apply("scan", ops, fwd_attrs, meta))
    tapes = fwd[nout:]
    # values computed once, before the backward loop
    inv = inline(Graph(body.inputs[:n_consts], hoisted), ops[:n_consts]) if hoisted else []
    # the backward step's inputs: new ones for computed residuals, the body's own otherwise
    mapping: dict[int, Node] = {}
    for r in hoisted + taped:
        if id(r) not in pos:
            mapping[id(r)] = make_input(r.aval)  # type: ignore[arg-type]

    def b_in(r: Node) -> Node:
        return mapping.get(id(r), r)

    acc_in = [make_input(ops[k].aval) for k in wrt if k < n_consts]  # type: ignore[arg-type]
    new = map_nodes(back_nodes, lambda n, o: None, nested=False, mapping=mapping)
    g_of = {k: new.get(id(g), mapping.get(id(g), g)) for k, g in zip(wrt, grads, strict=True)}
    ct_carry_in = ct_in[: len(carries)]
    ct_y_in = ct_in[len(carries) :]
    acc_out = [
        apply("add", [a, g_of[k]], None, meta)
        for a, k in zip(acc_in, [k for k in wrt if k < n_consts], strict=True)
    ]
    carry_out = [g_of[n_consts + k] for k in carries]
    x_grads = [k for k in wrt if k >= n_consts + n_carry]
    b_inputs = (
        [b_in(r) for r in hoisted]
        + [b_in(r) for r in const_in]
        + ct_carry_in
        + acc_in
        + [b_in(r) for r in taped]
        + [b_in(r) for r in x_in]
        + ct_y_in
    )
    b_outputs = carry_out + acc_out + [g_of[k] for k in x_grads]
    b_body = Graph(b_inputs, b_outputs)

    # operands of the backward scan
    def carry_ct(k: int) -> Node:
        c = cts[k]
        return c.node if c is not None else _zeros(ops[n_consts + k].aval, meta)

    b_ops = (
        inv
        + [ops[pos[id(r)]] for r in const_in]
        + [carry_ct(k) for k in carries]
        + [_zeros(ops[k].aval, meta) for k in wrt if k < n_consts]
        + [tapes[j] for j in range(len(taped))]
        + [ops[pos[id(r)]] for r in x_in]
        + [cts[n_carry + j].node for j in ys]
    )
    b_attrs = {
        "body": b_body,
        "n_consts": len(inv) + len(const_in),
        "n_carry": len(carries) + len(acc_in),
        "length": length,
        "reverse": not reverse,
    }
    back_res = _projs(apply("scan", b_ops, b_attrs, meta))
    out: list[Node | None] = list(none)
    for j, k in enumerate(carries):
        out[n_consts + k] = back_res[j]
    for j, k in enumerate([k for k in wrt if k < n_consts]):
        out[k] = back_res[len(carries) + j]
    nbc = len(carries) + len(acc_in)
    for j, k in enumerate(x_grads):
        out[k] = back_res[nbc + j]
    return fwd[:nout], out


def _scan_vjp(cts, out, *xs, ad, **attrs):
    n = out.node
    fwd, grads = scan_vjp_parts(list(n.inputs), cts, ad.active, ad, n.meta, **attrs)
    if fwd is not None:
        ad.replace(n, fwd)
    return tuple(grads)


# -- while_loop --------------------------------------------------------------------------------


def _while_jvp(ts, out, *xs, ad, cond, body, n_cond_consts, n_body_consts, max_trips):
    """The tangents run through the same loop: the carry grows by the active carries'
    tangents, which the condition does not read."""
    n = out.node
    ops = list(n.inputs)
    nc, nb = n_cond_consts, n_body_consts
    ncar = len(body.outputs)
    act0 = [t is not None and _floating(o) for t, o in zip(ts[nc:], ops[nc:], strict=True)]
    act, _ = _active_inputs(ad, body, nb, ncar, act0)
    wrt = [k for k in range(len(body.inputs)) if act[k]]
    jb = ad.jvp(body, wrt)
    tan_in = dict(zip(wrt, jb.inputs[len(body.inputs) :], strict=True))
    nin = len(body.inputs)
    bconsts = [k for k in range(nb) if act[k]]
    carries = [k for k in range(ncar) if act[nb + k]]

    def tangent(k: int) -> Node:  # k: position among the body's inputs
        t = ts[nc + k]
        return t.node if t is not None else _zeros(ops[nc + k].aval, n.meta)

    extra = [make_input(body.inputs[nb + k].aval) for k in carries]  # type: ignore[arg-type]
    new_cond = Graph(list(cond.inputs) + extra, cond.outputs)
    inputs = (
        list(jb.inputs[:nb])
        + [tan_in[k] for k in bconsts]
        + list(jb.inputs[nb:nin])
        + [tan_in[nb + k] for k in carries]
    )
    outputs = list(jb.outputs[:ncar]) + [jb.outputs[ncar + k] for k in carries]
    operands = (
        ops[:nc]
        + ops[nc : nc + nb]
        + [tangent(k) for k in bconsts]
        + ops[nc + nb :]
        + [tangent(nb + k) for k in carries]
    )
    attrs = {
        "cond": new_cond,
        "body": Graph(inputs, outputs),
        "n_cond_consts": nc,
        "n_body_consts": nb + len(bconsts),
        "max_trips": max_trips,
    }
    res = _projs(apply("while_loop", operands, attrs, n.meta))
    ad.replace(n, res[:ncar])
    tangents: list = [None] * ncar
    for j, k in enumerate(carries):
        tangents[k] = res[ncar + j]
    return tangents


def _identity_graph(avals: list[Aval], n_skip: int) -> Graph:
    ins = [make_input(a) for a in avals]
    return Graph(ins, ins[n_skip:])


def _while_vjp(cts, out, *xs, ad, cond, body, n_cond_consts, n_body_consts, max_trips):
    """With `max_trips=N`, the loop runs as a scan of N steps whose step applies the body
    while the condition holds and passes the carry on unchanged after (a `cond`); scan's
    reverse mode then records at most N steps and replays them backward. The results are
    checked: a condition that still holds after N trips is an error at run time."""
    n = out.node
    if max_trips is None:
        raise LoopDerivativeError(
            "reverse-mode differentiation through while_loop needs a bound on its trips: "
            "pass max_trips=N to graphc.while_loop (the backward pass replays at most N "
            "recorded steps), or use fori_loop/scan when the trip count is known",
            n.meta.loc,
        )
    ops = list(n.inputs)
    nc, nb = n_cond_consts, n_body_consts
    ncar = len(body.outputs)
    carry_avals = [o.aval for o in body.outputs]
    # the scan's step: consts (cond's, body's), carry -> carry
    c_in = [make_input(i.aval) for i in cond.inputs[:nc]]  # type: ignore[arg-type]
    b_in = [make_input(i.aval) for i in body.inputs[:nb]]  # type: ignore[arg-type]
    carry_in = [make_input(a) for a in carry_avals]  # type: ignore[arg-type]
    (go,) = inline(cond, c_in + carry_in)
    branches = (_identity_graph([i.aval for i in body.inputs], nb), body)  # type: ignore[misc]
    step = _projs(apply("cond", [go, *b_in, *carry_in], {"branches": branches}, n.meta))
    step_body = Graph(c_in + b_in + carry_in, step)
    attrs = {
        "body": step_body,
        "n_consts": nc + nb,
        "n_carry": ncar,
        "length": max_trips,
        "reverse": False,
    }
    fwd, grads = scan_vjp_parts(ops, cts, ad.active, ad, n.meta, **attrs)
    if fwd is None:
        fwd = _projs(apply("scan", ops, attrs, n.meta))
    (still,) = inline(cond, ops[:nc] + fwd)
    message = f"while_loop: the condition still holds after max_trips={max_trips} trips" + (
        f" (the loop at {n.meta.loc})" if n.meta.loc else ""
    )

    # the checks guard the cotangents too: a gradient alone must not come from a cut loop
    def checked(r: Node | None) -> Node | None:
        return None if r is None else apply("check", [still, r], {"message": message}, n.meta)

    ad.replace(n, [checked(r) for r in fwd])
    return tuple(checked(g) for g in grads)


# -- cond --------------------------------------------------------------------------------------


def _cond_jvp(ts, out, index, *xs, ad, branches):
    n = out.node
    ops = list(n.inputs[1:])
    nout = len(branches[0].outputs)
    wrt = [
        k
        for k, (t, o) in enumerate(zip(ts[1:], ops, strict=True))
        if t is not None and _floating(o)
    ]
    floats = [m for m in range(nout) if _floating(branches[0].outputs[m])]
    new_branches = []
    for b in branches:
        jb = ad.jvp(b, wrt)
        new_branches.append(
            Graph(jb.inputs, list(jb.outputs[:nout]) + [jb.outputs[nout + m] for m in floats])
        )
    operands = [n.inputs[0], *ops, *[ts[1 + k].node for k in wrt]]
    res = _projs(apply("cond", operands, {"branches": tuple(new_branches)}, n.meta))
    ad.replace(n, res[:nout])
    tangents: list = [None] * nout
    for j, m in enumerate(floats):
        tangents[m] = res[nout + j]
    return tangents


def _cond_vjp(cts, out, index, *xs, ad, branches):
    """Only the taken branch's VJP runs: a `cond` over the branches' backward graphs (each
    recomputes its branch's forward values from the operands)."""
    n = out.node
    ops = list(n.inputs[1:])
    wrt = [k for k, o in enumerate(ops) if ad.active[1 + k] and _floating(o)]
    outs = [m for m, c in enumerate(cts) if c is not None and _floating(branches[0].outputs[m])]
    none: list = [None] * (1 + len(ops))
    if not wrt or not outs:
        return tuple(none)
    nout = len(branches[0].outputs)
    backs = []
    for b in branches:
        joint = ad.vjp(b, wrt, seed="inputs", outputs=outs)
        backs.append(Graph(joint.inputs, joint.outputs[nout:]))
    operands = [n.inputs[0], *ops, *[cts[m].node for m in outs]]
    res = _projs(apply("cond", operands, {"branches": tuple(backs)}, n.meta))
    for j, k in enumerate(wrt):
        none[1 + k] = res[j]
    return tuple(none)


# ---------------------------------------------------------------------------------------------
# batching (vmap)
#
# The rules get `bt`, the batching pass's context: `bt.batch(graph, in_batched, out_batched)`
# batches a region whose batched inputs and outputs carry the batch axis first. Which carries
# are batched is a fixed point, as for derivatives: a carry the body computes from a batched
# value is batched from the start.


def _marks(dims: Any) -> list[bool]:
    return [d is not None for d in dims]


def _carry_fixed_point(bt: Any, body: Graph, first: int, n_carry: int, ins: list[bool]) -> list:
    """The body's inputs marked batched, grown by every carry the body's batched values reach,
    to a fixed point."""
    ins = list(ins)
    while True:
        _, outs = bt.batch(body, ins)
        grown = list(ins)
        for k in range(n_carry):
            grown[first + k] = grown[first + k] or outs[k]
        if grown == ins:
            return ins
        ins = grown


def _scan_batch(bt, dims, *ops, body, n_consts, n_carry, length, reverse, remat=False):
    """A batched scan is one scan over batched steps: batched consts and carries carry the
    batch axis first, batched sequences second (so that each step's slice has it first), and
    the stacked ys have it second."""
    ins = _carry_fixed_point(bt, body, n_consts, n_carry, _marks(dims))
    _, natural = bt.batch(body, ins)
    new_body, outs = bt.batch(body, ins, ins[n_consts : n_consts + n_carry] + natural[n_carry:])
    operands = []
    for k, (x, d) in enumerate(zip(ops, dims, strict=True)):
        if k >= n_consts + n_carry:
            operands.append(x if d is None else moveaxis(x, d, 1))
        elif ins[k]:
            operands.append(at(x, d, 0, bt.size))
        else:
            operands.append(x)
    attrs = {
        "body": new_body,
        "n_consts": n_consts,
        "n_carry": n_carry,
        "length": length,
        "reverse": reverse,
        **({"remat": True} if remat else {}),
    }
    res = _projs(apply("scan", [node_of(x) for x in operands], attrs, bt.node.meta))
    out_dims = [0 if b else None for b in outs[:n_carry]]
    out_dims += [1 if b else None for b in outs[n_carry:]]
    return res, out_dims


def _rank_mask(p: Any, rank: int) -> Any:
    """A per-example boolean (B,) shaped (B, 1, ..., 1) to select among values of `rank`
    per-example axes."""
    return p if rank == 0 else bind("reshape", p, shape=(p.shape[0],) + (1,) * rank)


def _while_batch(bt, dims, *ops, cond, body, n_cond_consts, n_body_consts, max_trips):
    """With a condition the same for all examples, one loop over batched carries. With a
    condition per example, the loop runs while any example's holds, and a trip changes only
    the carries of the examples whose condition still holds (the others keep their values)."""
    nc, nb = n_cond_consts, n_body_consts
    ncar = len(body.outputs)
    marks = _marks(dims)
    c_marks, b_marks, carry = marks[:nc], marks[nc : nc + nb], marks[nc + nb :]
    carry = _carry_fixed_point(bt, body, nb, ncar, b_marks + carry)[nb:]
    _, (per_example,) = bt.batch(cond, c_marks + carry)
    if per_example:
        carry = [True] * ncar  # every carry may stop changing at its own trip
    cconsts = [front(x, d) for x, d in zip(ops[:nc], dims[:nc], strict=True)]
    bconsts = [front(x, d) for x, d in zip(ops[nc : nc + nb], dims[nc : nc + nb], strict=True)]
    init = [
        at(x, d, 0, bt.size) if c else x
        for x, d, c in zip(ops[nc + nb :], dims[nc + nb :], carry, strict=True)
    ]
    meta = bt.node.meta
    if not per_example:
        new_cond, _ = bt.batch(cond, c_marks + carry, [False])
        new_body, _ = bt.batch(body, b_marks + carry, carry)
        attrs = {
            "cond": new_cond,
            "body": new_body,
            "n_cond_consts": nc,
            "n_body_consts": nb,
            "max_trips": max_trips,
        }
        operands = [node_of(x) for x in cconsts + bconsts + init]
        res = _projs(apply("while_loop", operands, attrs, meta))
        return res, [0 if c else None for c in carry]
    b_cond, _ = bt.batch(cond, c_marks + carry, [True])
    b_body, _ = bt.batch(body, b_marks + carry, carry)
    # the condition: does any example still run
    c_in = [make_input(i.aval) for i in b_cond.inputs]  # type: ignore[arg-type]
    (p,) = inline(b_cond, c_in)
    any_cond = Graph(c_in, [apply("reduce_max", [p], {"axes": (0,), "keepdims": False}, meta)])
    # the step: the body's new carry where an example still runs, its old one elsewhere
    cc_in = [make_input(i.aval) for i in b_cond.inputs[:nc]]  # type: ignore[arg-type]
    bc_in = [make_input(i.aval) for i in b_body.inputs[:nb]]  # type: ignore[arg-type]
    car_in = [make_input(i.aval) for i in b_body.inputs[nb:]]  # type: ignore[arg-type]
    (p,) = inline(b_cond, cc_in + car_in)
    new = inline(b_body, bc_in + car_in)
    step = []
    for old, upd in zip(car_in, new, strict=True):
        rank = len(old.aval.shape) - 1  # type: ignore[union-attr]
        mask = p if rank == 0 else apply("reshape", [p], {"shape": (bt.size,) + (1,) * rank}, meta)
        step.append(apply("where", [mask, upd, old], None, meta))
    attrs = {
        "cond": any_cond,
        "body": Graph(cc_in + bc_in + car_in, step),
        "n_cond_consts": nc,
        "n_body_consts": nc + nb,
        "max_trips": max_trips,
    }
    operands = [node_of(x) for x in cconsts + cconsts + bconsts + init]
    res = _projs(apply("while_loop", operands, attrs, meta))
    return res, [0] * ncar


def _cond_batch(bt, dims, index, *ops, branches):
    """With one index for all examples, one `cond` of batched branches. With an index per
    example, every branch runs on the whole batch and each example takes its branch's results
    (a select, as JAX does): both sides are computed."""
    di, marks = dims[0], _marks(dims[1:])
    args = [front(x, d) for x, d in zip(ops, dims[1:], strict=True)]
    nout = len(branches[0].outputs)
    meta = bt.node.meta
    if di is None:
        outs = [False] * nout
        for b in branches:
            outs = [o or n for o, n in zip(outs, bt.batch(b, marks)[1], strict=True)]
        new = tuple(bt.batch(b, marks, outs)[0] for b in branches)
        operands = [node_of(index)] + [node_of(x) for x in args]
        res = _projs(apply("cond", operands, {"branches": new}, meta))
        return res, [0 if o else None for o in outs]
    results = [bt.inline(bt.batch(b, marks, [True] * nout)[0], args) for b in branches]
    idx = front(index, di)
    n = len(branches)
    if idx.dtype != np.bool_:
        # clamped into range, as an unbatched index is
        lo, hi = np.zeros((), idx.dtype), np.asarray(n - 1, idx.dtype)
        idx = bind("maximum", bind("minimum", idx, hi), lo)
    out = []
    for m in range(nout):
        rank = len(branches[0].outputs[m].aval.shape)  # type: ignore[union-attr]
        if idx.dtype == np.bool_:
            v = bind("where", _rank_mask(idx, rank), results[1][m], results[0][m])
        else:
            v = results[0][m]
            for k in range(1, n):
                pick = _rank_mask(bind("eq", idx, np.asarray(k, idx.dtype)), rank)
                v = bind("where", pick, results[k][m], v)
        out.append(v)
    return out, [0] * nout


def _check_batch(bt, dims, pred, x, *, message):
    # the check fails when it fails for any example
    if dims[0] is not None:
        pred = bind("reduce_max", pred, axes=(dims[0],), keepdims=False)
    return bind("check", pred, x, message=message), dims[1]


# -- check -------------------------------------------------------------------------------------


def _check_impl(pred: np.ndarray, x: np.ndarray, *, message: str) -> np.ndarray:
    if bool(pred):
        raise TripLimitError(message)
    return x


def _check_rule(pred: Aval, x: Aval, *, message: str) -> Aval:
    if pred != Aval((), np.dtype(np.bool_)):
        raise ShapeError(f"check: the condition must be bool[], got {pred}")
    return x


defop(
    "check",
    Kind.OTHER,
    _check_rule,
    _check_impl,
    arity=2,
    vjp=lambda g, out, pred, x, *, message: (None, g),
    jvp=lambda ts, out, pred, x, *, message: ts[1],
    batch=_check_batch,
    doc="x, after checking at run time that `pred` is false (else an error with `message`)",
)
