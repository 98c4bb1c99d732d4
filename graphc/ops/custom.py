"""Functions with derivative rules of their own, and regions recomputed in the backward pass.

custom_jvp_call  operands: args..., closed-over values...   attrs: fun, jvp, n_args
                 `fun` maps (args, closed) -> outputs; `jvp` maps (args, tangents, closed) ->
                 (outputs, output tangents), the user's rule traced like any function.
custom_vjp_call  operands: args..., closed-over values...   attrs: fun, fwd, bwd, n_args,
                 n_res. `fwd` maps (args, closed) -> (outputs, residuals); `bwd` maps
                 (residuals, output cotangents, closed) -> one cotangent per float arg.
checkpoint       operands: args...   attrs: body. Computes `body`; its reverse mode recomputes
                 the body's values in the backward pass instead of keeping them (remat).
once             x, whose derivative is refused: wraps what a custom_vjp rule returns, so that
                 differentiating it again is a clear error (as in JAX).

Each derivative of these is ordinary IR spliced into the graph from the user's rules, so it
fuses, compiles, prints and differentiates like the rest. `checkpoint` nodes are spliced in by
the `inline` pass just before fusion, after common-subexpression elimination could merge the
recomputation back into the forward values.

Example:
    >>> f = graphc.custom_jvp(lambda x: np.log1p(np.exp(x)))
    >>> f.defjvp(lambda p, t: (f(p[0]), t[0] / (1 + np.exp(-p[0]))))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.ir import Aval, Graph, GraphcError, Node, ShapeError, TupleAval, make_input
from graphc.ops.batching import batch_elementwise, front, node_of
from graphc.ops.control import _projs, _zeros, inline
from graphc.ops.interp import evaluate
from graphc.ops.registry import Kind, Tape, Template, apply, defop


class CustomDerivativeError(GraphcError, TypeError):
    """A custom derivative rule that does not fit its function, or a derivative it cannot
    give (forward mode of a custom_vjp function, reverse mode twice, a closed-over value)."""


def _floating(n: Node) -> bool:
    return isinstance(n.aval, Aval) and n.aval.dtype.kind == "f"


def _types(avals: Any) -> str:
    return "(" + ", ".join(map(str, avals)) + ")"


def _tuple(avals: list) -> TupleAval:
    return TupleAval(tuple(avals))


def _closed_active(n: Node, n_args: int, active: list[bool], what: str) -> None:
    if any(active[n_args:]):
        raise CustomDerivativeError(
            f"{what}: the function closes over a value that is being differentiated; pass it "
            "as an argument so that the rule gives its derivative",
            n.meta.loc,
        )


# -- custom_jvp ------------------------------------------------------------------------------------


def _jvp_call_rule(*avals: Aval, fun: Graph, jvp: Graph, n_args: int) -> TupleAval:
    ins = [i.aval for i in fun.inputs]
    if list(avals) != ins:
        raise ShapeError(f"custom_jvp_call: operands {_types(avals)} differ from {_types(ins)}")
    outs = [o.aval for o in fun.outputs]
    want = list(avals[:n_args]) + list(avals[:n_args]) + list(avals[n_args:])
    if [i.aval for i in jvp.inputs] != want:
        raise ShapeError("custom_jvp_call: the rule's inputs are not (args, tangents, closed)")
    if [o.aval for o in jvp.outputs] != outs + outs:
        raise ShapeError("custom_jvp_call: the rule's outputs are not (outputs, tangents)")
    return _tuple(outs)


def _call_impl(*args: np.ndarray, fun: Graph, **_: Any) -> tuple:
    return tuple(evaluate(fun, *args))


def _tangent_args(n: Node, ts: list, n_args: int) -> list[Node]:
    return [
        t.node if t is not None else _zeros(a.aval, n.meta)  # type: ignore[arg-type]
        for t, a in zip(ts[:n_args], n.inputs[:n_args], strict=True)
    ]


def _jvp_call_jvp(ts, out, *xs, ad, fun, jvp, n_args):
    n = out.node
    _closed_active(n, n_args, [t is not None for t in ts], "custom_jvp")
    ops = list(n.inputs)
    res = inline(jvp, ops[:n_args] + _tangent_args(n, ts, n_args) + ops[n_args:])
    nout = len(fun.outputs)
    ad.replace(n, res[:nout])
    return [t if _floating(o) else None for t, o in zip(res[nout:], fun.outputs, strict=True)]


def _jvp_call_vjp(cts, out, *xs, ad, fun, jvp, n_args):
    """Reverse mode from the JVP rule: the rule is linear in the tangents, so the cotangents
    of the args are its VJP with respect to the tangents (at zero tangents)."""
    n = out.node
    _closed_active(n, n_args, ad.active, "custom_jvp")
    ops = list(n.inputs)
    nout = len(fun.outputs)
    wrt = [n_args + k for k in range(n_args) if ad.active[k] and _floating(ops[k])]
    outs = [nout + m for m, c in enumerate(cts) if c is not None and _floating(fun.outputs[m])]
    grads: list = [None] * len(ops)
    if not wrt or not outs:
        return tuple(grads)
    joint = ad.vjp(jvp, wrt, seed="inputs", outputs=outs)
    zeros = [_zeros(a.aval, n.meta) for a in ops[:n_args]]  # type: ignore[arg-type]
    args = ops[:n_args] + zeros + ops[n_args:] + [cts[m - nout].node for m in outs]
    res = inline(joint, args)[len(jvp.outputs) :]
    for k, g in zip(wrt, res, strict=True):
        grads[k - n_args] = g
    return tuple(grads)


def _jvp_call_batch(bt, dims, *xs, fun, jvp, n_args):
    """Both the function and its rule batched alike: a tangent carries the batch where its
    value does, so the rule's tangents in and out are batched as the values are."""
    marks = [d is not None for d in dims]
    args, closed = marks[:n_args], marks[n_args:]
    nout = len(fun.outputs)
    outs = bt.batch(fun, marks)[1]
    natural = bt.batch(jvp, args + args + closed)[1]
    outs = [a or b or c for a, b, c in zip(outs, natural[:nout], natural[nout:], strict=True)]
    attrs = {
        "fun": bt.batch(fun, marks, outs)[0],
        "jvp": bt.batch(jvp, args + args + closed, outs + outs)[0],
        "n_args": n_args,
    }
    operands = [node_of(front(x, d)) for x, d in zip(xs, dims, strict=True)]
    res = _projs(apply("custom_jvp_call", operands, attrs, bt.node.meta))
    return res, [0 if o else None for o in outs]


defop(
    "custom_jvp_call",
    Kind.OTHER,
    _jvp_call_rule,
    _call_impl,
    vjp=lambda *a, **k: _jvp_call_vjp(*a, **k),
    jvp=lambda *a, **k: _jvp_call_jvp(*a, **k),
    inline=lambda n: inline(n.attrs["fun"], list(n.inputs)),
    batch=_jvp_call_batch,
    doc="a function with a user JVP rule (graphc.custom_jvp): fun computes, jvp differentiates",
)


# -- custom_vjp ------------------------------------------------------------------------------------


def _vjp_call_rule(
    *avals: Aval, fun: Graph, fwd: Graph, bwd: Graph, n_args: int, n_res: int
) -> TupleAval:
    ins = [i.aval for i in fun.inputs]
    if list(avals) != ins or [i.aval for i in fwd.inputs] != ins:
        raise ShapeError(f"custom_vjp_call: operands {_types(avals)} differ from {_types(ins)}")
    outs = [o.aval for o in fun.outputs]
    fwd_outs = [o.aval for o in fwd.outputs]
    if fwd_outs[: len(outs)] != outs or len(fwd_outs) != len(outs) + n_res:
        raise ShapeError("custom_vjp_call: the forward rule's outputs are not (outputs, residuals)")
    want = fwd_outs[len(outs) :] + outs + list(avals[n_args:])
    if [i.aval for i in bwd.inputs] != want:
        raise ShapeError("custom_vjp_call: the backward rule's inputs are not (res, cts, closed)")
    floats = [a for a in avals[:n_args] if a.dtype.kind == "f"]
    if [o.aval for o in bwd.outputs] != floats:
        raise ShapeError("custom_vjp_call: the backward rule's outputs are not the args' types")
    return _tuple(outs)


def _vjp_call_jvp(ts, out, *xs, ad, **attrs):
    raise CustomDerivativeError(
        "a graphc.custom_vjp function has no forward-mode derivative (as in JAX); give it a "
        "graphc.custom_jvp rule instead, which serves both modes",
        out.node.meta.loc,
    )


def _vjp_call_vjp(cts, out, *xs, ad, fun, fwd, bwd, n_args, n_res):
    n = out.node
    _closed_active(n, n_args, ad.active, "custom_vjp")
    ops = list(n.inputs)
    nout = len(fun.outputs)
    res = inline(fwd, ops)
    ad.replace(n, res[:nout])
    ct_nodes = [
        c.node if c is not None else _zeros(o.aval, n.meta)  # type: ignore[arg-type]
        for c, o in zip(cts, fun.outputs, strict=True)
    ]
    grads_f = inline(bwd, res[nout:] + ct_nodes + ops[n_args:])
    grads: list = [None] * len(ops)
    floats = [k for k in range(n_args) if _floating(ops[k])]
    for k, g in zip(floats, grads_f, strict=True):
        grads[k] = apply("once", [g], None, n.meta)
    return tuple(grads)


def _vjp_call_batch(bt, dims, *xs, fun, fwd, bwd, n_args, n_res):
    """The function and both rules batched alike. The backward rule gives each argument's
    cotangent batched as the argument is: an argument shared by all examples gets the sum of
    the examples' cotangents (it feeds all of them)."""
    marks = [d is not None for d in dims]
    nout = len(fun.outputs)
    f_out = bt.batch(fun, marks)[1]
    fw_out = bt.batch(fwd, marks)[1]
    outs = [a or b for a, b in zip(f_out, fw_out[:nout], strict=True)]
    res = fw_out[nout:]
    closed = marks[n_args:]
    floats = [k for k in range(n_args) if fun.inputs[k].aval.dtype.kind == "f"]  # type: ignore[union-attr]
    b_marks = res + outs + closed
    natural = bt.batch(bwd, b_marks)[1]
    want = [natural[j] or marks[k] for j, k in enumerate(floats)]
    b_graph = bt.batch(bwd, b_marks, want)[0]
    # the cotangents of shared arguments: summed over the examples
    ins = [make_input(i.aval) for i in b_graph.inputs]  # type: ignore[arg-type]
    cts = inline(b_graph, ins)
    meta = bt.node.meta
    cts = [
        apply("reduce_sum", [c], {"axes": (0,), "keepdims": False}, meta)
        if w and not marks[k]
        else c
        for c, w, k in zip(cts, want, floats, strict=True)
    ]
    attrs = {
        "fun": bt.batch(fun, marks, outs)[0],
        "fwd": bt.batch(fwd, marks, outs + res)[0],
        "bwd": Graph(ins, cts),
        "n_args": n_args,
        "n_res": n_res,
    }
    operands = [node_of(front(x, d)) for x, d in zip(xs, dims, strict=True)]
    out = _projs(apply("custom_vjp_call", operands, attrs, meta))
    return out, [0 if o else None for o in outs]


defop(
    "custom_vjp_call",
    Kind.OTHER,
    _vjp_call_rule,
    _call_impl,
    vjp=lambda *a, **k: _vjp_call_vjp(*a, **k),
    jvp=lambda *a, **k: _vjp_call_jvp(*a, **k),
    inline=lambda n: inline(n.attrs["fun"], list(n.inputs)),
    batch=_vjp_call_batch,
    doc="a function with user forward and backward rules (graphc.custom_vjp)",
)


def _refuse_again(g: Any, out: Any, *args: Any, **kwargs: Any) -> Any:
    raise CustomDerivativeError(
        "a graphc.custom_vjp function is differentiable once, in reverse mode (as in JAX): "
        "its backward rule has no derivative of its own; give the function a "
        "graphc.custom_jvp rule to differentiate it to any order",
        out.node.meta.loc,
    )


defop(
    "once",
    Kind.ELEMENTWISE,
    lambda x: x,
    lambda x: x,
    arity=1,
    vjp=_refuse_again,
    jvp=_refuse_again,
    lowering=Template("{0}"),
    tape=Tape.COPY,
    batch=batch_elementwise,
    doc="x, whose derivative is an error: what a custom_vjp rule's backward returns",
)


# -- checkpoint ------------------------------------------------------------------------------------


def _checkpoint_rule(*avals: Aval, body: Graph) -> TupleAval:
    ins = [i.aval for i in body.inputs]
    if list(avals) != ins:
        raise ShapeError(f"checkpoint: operands {_types(avals)} differ from {_types(ins)}")
    return _tuple([o.aval for o in body.outputs])


def _checkpoint_jvp(ts, out, *xs, ad, body):
    n = out.node
    wrt = [
        k
        for k, (t, o) in enumerate(zip(ts, n.inputs, strict=True))
        if t is not None and _floating(o)
    ]
    jb = ad.jvp(body, wrt)
    nout = len(body.outputs)
    floats = [m for m in range(nout) if _floating(body.outputs[m])]
    g = Graph(jb.inputs, list(jb.outputs[:nout]) + [jb.outputs[nout + m] for m in floats])
    res = _projs(apply("checkpoint", [*n.inputs, *[ts[k].node for k in wrt]], {"body": g}, n.meta))
    ad.replace(n, res[:nout])
    tangents: list = [None] * nout
    for j, m in enumerate(floats):
        tangents[m] = res[nout + j]
    return tangents


def _checkpoint_vjp(cts, out, *xs, ad, body):
    """The backward is another checkpoint: the body's joint graph, which computes the body's
    values again from the operands, so only the operands are kept for it."""
    n = out.node
    ops = list(n.inputs)
    wrt = [k for k, o in enumerate(ops) if ad.active[k] and _floating(o)]
    outs = [m for m, c in enumerate(cts) if c is not None and _floating(body.outputs[m])]
    grads: list = [None] * len(ops)
    if not wrt or not outs:
        return tuple(grads)
    joint = ad.vjp(body, wrt, seed="inputs", outputs=outs)
    back = Graph(joint.inputs, joint.outputs[len(body.outputs) :])
    operands = ops + [cts[m].node for m in outs]
    res = _projs(apply("checkpoint", operands, {"body": back}, n.meta))
    for j, k in enumerate(wrt):
        grads[k] = res[j]
    return tuple(grads)


def _checkpoint_prune(n: Node, used: set[int]) -> tuple[Node, dict[int, int]] | None:
    body = n.attrs["body"]
    if len(used) == len(body.outputs):
        return None
    keep = sorted(used)
    g = Graph(body.inputs, [body.outputs[k] for k in keep])
    return apply("checkpoint", list(n.inputs), {"body": g}, n.meta), {
        k: j for j, k in enumerate(keep)
    }


def _checkpoint_batch(bt, dims, *xs, body):
    # a checkpoint of the batched body: recomputed in the backward pass all the same
    marks = [d is not None for d in dims]
    g, outs = bt.batch(body, marks)
    operands = [node_of(front(x, d)) for x, d in zip(xs, dims, strict=True)]
    res = _projs(apply("checkpoint", operands, {"body": g}, bt.node.meta))
    return res, [0 if o else None for o in outs]


defop(
    "checkpoint",
    Kind.OTHER,
    _checkpoint_rule,
    lambda *args, body: tuple(evaluate(body, *args)),
    vjp=lambda *a, **k: _checkpoint_vjp(*a, **k),
    jvp=lambda *a, **k: _checkpoint_jvp(*a, **k),
    prune=_checkpoint_prune,
    inline=lambda n: inline(n.attrs["body"], list(n.inputs)),
    batch=_checkpoint_batch,
    doc="its body's values, recomputed in the backward pass rather than kept (remat)",
)
