"""Shape and movement ops: reshape, transpose, broadcast, slicing, padding, concatenation, flips,
and integer-array indexing (gather) with its transpose (scatter_add).

Attributes are stored fully resolved (no -1 in reshape, no negative axes, slices as explicit
start/stop/step per dimension), so the IR states exactly what happens.
"""

from __future__ import annotations

import numpy as np

from graphc.ir import Aval, ShapeError
from graphc.ops.batching import at, batched_axis, front, iota, lift, moveaxis
from graphc.ops.registry import (
    Dedicated,
    Facts,
    Fusion,
    Kind,
    Tape,
    bind,
    broadcast_shapes,
    defop,
    fmt,
    require_int,
    same_dtype,
)


def sum_to_shape(g, shape: tuple[int, ...]):
    """Sum a cotangent over the dimensions that broadcasting added or stretched.

    This is the one place where graphc undoes broadcasting in gradients: the autodiff pass calls
    it on every operand's cotangent, so individual rules never deal with broadcasting.
    """
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1
    )
    # with no added leading axes, keepdims gives the target shape directly
    r = bind("reduce_sum", g, axes=axes, keepdims=lead == 0) if axes else g
    return r if tuple(r.shape) == shape else np.reshape(r, shape)


# -- reshape ---------------------------------------------------------------------------------


def _reshape_batch(bt, dims, x, *, shape):
    d, old = dims[0], bt.node.inputs[0].aval.shape
    if tuple(old[:d]) == tuple(shape[:d]):
        # the axes before the batch axis are kept: each example's trailing block is reshaped
        # in place (a view; what the tracer's 1-d matmul operands and results do)
        return bind("reshape", x, shape=(*shape[:d], bt.size, *shape[d:])), d
    return bind("reshape", front(x, d), shape=(bt.size, *shape)), 0


def _reshape_rule(x: Aval, *, shape: tuple[int, ...]) -> Aval:
    shape = tuple(shape)
    if any(s < 0 for s in shape) or int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ShapeError(f"reshape: cannot reshape {x} into shape {shape}")
    return Aval(shape, x.dtype)


defop(
    "reshape",
    Kind.SHAPE,
    _reshape_rule,
    lambda x, *, shape: np.reshape(x, shape),
    doc="the same elements in a new shape (C order; a view when compiled)",
    arity=1,
    vjp=lambda g, out, x, *, shape: (np.reshape(g, x.shape),),
    jvp=lambda ts, out, x, *, shape: np.reshape(ts[0], shape),
    batch=_reshape_batch,
    facts=Facts(
        linear=True, value_preserving=True, non_negative_if_operands=True, finite_if_operands=True
    ),
)


# -- transpose ---------------------------------------------------------------------------------


def _transpose_rule(x: Aval, *, perm: tuple[int, ...]) -> Aval:
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: {tuple(perm)} is not a permutation of the axes of {x}")
    return Aval(tuple(x.shape[p] for p in perm), x.dtype)


def _transpose_batch(bt, dims, x, *, perm):
    # the batch axis goes first, the others follow the permutation: one transpose
    d = dims[0]
    return bind("transpose", x, perm=(d, *(batched_axis(p, d) for p in perm))), 0


defop(
    "transpose",
    Kind.SHAPE,
    _transpose_rule,
    lambda x, *, perm: np.transpose(x, perm),
    doc="axes permuted by perm (a view when compiled)",
    arity=1,
    vjp=lambda g, out, x, *, perm: (np.transpose(g, tuple(np.argsort(perm))),),
    jvp=lambda ts, out, x, *, perm: np.transpose(ts[0], perm),
    batch=_transpose_batch,
    facts=Facts(
        linear=True, value_preserving=True, non_negative_if_operands=True, finite_if_operands=True
    ),
)


# -- broadcast_to ----------------------------------------------------------------------------


def _broadcast_rule(x: Aval, *, shape: tuple[int, ...]) -> Aval:
    shape = tuple(shape)
    if broadcast_shapes("broadcast_to", x, Aval(shape, x.dtype)) != shape:
        raise ShapeError(f"broadcast_to: cannot broadcast {x} to shape {shape}")
    return Aval(shape, x.dtype)


def _broadcast_batch(bt, dims, x, *, shape):
    x = lift(front(x, dims[0]), len(shape))
    return bind("broadcast_to", x, shape=(bt.size, *shape)), 0


defop(
    "broadcast_to",
    Kind.SHAPE,
    _broadcast_rule,
    lambda x, *, shape: np.array(np.broadcast_to(x, shape), order="C"),  # 0-d stays 0-d
    doc="x repeated along new or unit axes to shape; its gradient sums them back",
    arity=1,
    vjp=lambda g, out, x, *, shape: (sum_to_shape(g, x.shape),),
    jvp=lambda ts, out, x, *, shape: np.broadcast_to(ts[0], shape),
    batch=_broadcast_batch,
    facts=Facts(
        linear=True,
        value_preserving=True,
        non_negative_if_operands=True,
        finite_if_operands=True,
    ),
    fusion=Fusion.VIEW,
    tape=Tape.COPY,
)


# -- slice / pad -------------------------------------------------------------------------------


def _count(start: int, stop: int, step: int) -> int:
    return max(0, -(-(stop - start) // step))


def _slice_rule(x: Aval, *, start, stop, step) -> Aval:
    if not (len(start) == len(stop) == len(step) == x.ndim):
        raise ShapeError(f"slice: needs start/stop/step for each of the {x.ndim} axes of {x}")
    out = []
    for n, a, b, s in zip(x.shape, start, stop, step, strict=True):
        if s <= 0 or not 0 <= a <= b <= n:
            raise ShapeError(f"slice: bad range {a}:{b}:{s} for an axis of length {n}")
        out.append(_count(a, b, s))
    return Aval(tuple(out), x.dtype)


def _slice_impl(x, *, start, stop, step):
    return x[tuple(slice(a, b, s) for a, b, s in zip(start, stop, step, strict=True))]


def _slice_vjp(g, out, x, *, start, stop, step):
    pads = []
    for n, a, s, c in zip(x.shape, start, step, out.shape, strict=True):
        pads.append((a, n - (a + (c - 1) * s + 1), s - 1) if c else (0, n, 0))
    return (bind("pad", g, pads=tuple(pads), value=0.0),)


def _slice_batch(bt, dims, x, *, start, stop, step):
    d = dims[0]

    def put(t: tuple, v: int) -> tuple:
        return (*t[:d], v, *t[d:])

    return bind("slice", x, start=put(start, 0), stop=put(stop, bt.size), step=put(step, 1)), d


defop(
    "slice",
    Kind.SHAPE,
    _slice_rule,
    _slice_impl,
    arity=1,
    vjp=_slice_vjp,
    jvp=lambda ts, out, x, **a: bind("slice", ts[0], **a),
    batch=_slice_batch,
    facts=Facts(linear=True, non_negative_if_operands=True, finite_if_operands=True),
    doc="x[start:stop:step] on every axis (positive steps; negative ones trace as flip)",
)


def _pad_rule(x: Aval, *, pads, value: float = 0.0) -> Aval:
    if len(pads) != x.ndim:
        raise ShapeError(f"pad: needs (low, high, interior) for each of the {x.ndim} axes of {x}")
    out = []
    for n, (lo, hi, it) in zip(x.shape, pads, strict=True):
        if lo < 0 or hi < 0 or it < 0:
            raise ShapeError(f"pad: negative padding {(lo, hi, it)}")
        out.append(lo + hi + n + max(n - 1, 0) * it)
    return Aval(tuple(out), x.dtype)


def _pad_inner(pads, shape):
    return tuple(
        slice(lo, lo + (n - 1) * (it + 1) + 1, it + 1) if n else slice(lo, lo)
        for (lo, _, it), n in zip(pads, shape, strict=True)
    )


def _pad_impl(x, *, pads, value=0.0):
    out_shape = _pad_rule(Aval(x.shape, x.dtype), pads=pads).shape
    out = np.full(out_shape, value, dtype=x.dtype)
    out[_pad_inner(pads, x.shape)] = x
    return out


def _pad_vjp(g, out, x, *, pads, value=0.0):
    sl = _pad_inner(pads, x.shape)
    return (
        bind(
            "slice",
            g,
            start=tuple(s.start for s in sl),
            stop=tuple(s.stop for s in sl),
            step=tuple(s.step for s in sl),
        ),
    )


def _pad_batch(bt, dims, x, *, pads, value=0.0):
    d = dims[0]
    return bind("pad", x, pads=(*pads[:d], (0, 0, 0), *pads[d:]), value=value), d


defop(
    "pad",
    Kind.SHAPE,
    _pad_rule,
    _pad_impl,
    arity=1,
    vjp=_pad_vjp,
    jvp=lambda ts, out, x, *, pads, value=0.0: bind("pad", ts[0], pads=pads, value=0.0),
    batch=_pad_batch,
    doc="pad each axis with (low, high, interior) copies of value",
)


# -- concatenate / flip ------------------------------------------------------------------------


def _concat_rule(*xs: Aval, axis: int) -> Aval:
    if not xs:
        raise ShapeError("concatenate: needs at least one array")
    dt = same_dtype("concatenate", *xs)
    nd = xs[0].ndim
    if not 0 <= axis < nd:
        raise ShapeError(f"concatenate: axis {axis} out of range for {xs[0]}")
    for a in xs:
        pairs = enumerate(zip(a.shape, xs[0].shape, strict=True))
        if a.ndim != nd or any(s != t for i, (s, t) in pairs if i != axis):
            raise ShapeError(f"concatenate: shapes {fmt(*xs)} differ outside axis {axis}")
    shape = list(xs[0].shape)
    shape[axis] = sum(a.shape[axis] for a in xs)
    return Aval(tuple(shape), dt)


def _concat_vjp(g, out, *xs, axis):
    cts, off = [], 0
    for x in xs:
        n = x.shape[axis]
        start = tuple(off if i == axis else 0 for i in range(out.ndim))
        stop = tuple(off + n if i == axis else s for i, s in enumerate(out.shape))
        cts.append(bind("slice", g, start=start, stop=stop, step=(1,) * out.ndim))
        off += n
    return tuple(cts)


def _concat_jvp(ts, out, *xs, axis):
    if all(t is None for t in ts):
        return None
    parts = [np.zeros(x.shape, x.dtype) if t is None else t for t, x in zip(ts, xs, strict=True)]
    return bind("concatenate", *parts, axis=axis)


def _concat_batch(bt, dims, *xs, axis):
    # every operand needs the batch: unbatched ones are repeated along it
    moved = [at(x, d, 0, bt.size) for x, d in zip(xs, dims, strict=True)]
    return bind("concatenate", *moved, axis=axis + 1), 0


defop(
    "concatenate",
    Kind.SHAPE,
    _concat_rule,
    lambda *xs, axis: np.concatenate(xs, axis=axis),
    doc="operands joined along axis",
    vjp=_concat_vjp,
    jvp=_concat_jvp,
    batch=_concat_batch,
    facts=Facts(linear=True, non_negative_if_operands=True, finite_if_operands=True),
)


def _flip_rule(x: Aval, *, axes: tuple[int, ...]) -> Aval:
    if any(not 0 <= a < x.ndim for a in axes):
        raise ShapeError(f"flip: axes {axes} out of range for {x}")
    return x


def _flip_batch(bt, dims, x, *, axes):
    d = dims[0]
    return bind("flip", x, axes=tuple(batched_axis(a, d) for a in axes)), d


defop(
    "flip",
    Kind.SHAPE,
    _flip_rule,
    lambda x, *, axes: np.flip(x, axes).copy(),
    doc="the order of elements reversed along axes",
    arity=1,
    vjp=lambda g, out, x, *, axes: (np.flip(g, axes),),
    jvp=lambda ts, out, x, *, axes: np.flip(ts[0], axes),
    batch=_flip_batch,
    facts=Facts(linear=True, non_negative_if_operands=True, finite_if_operands=True),
)


# -- gather / scatter_add ---------------------------------------------------------------------


def _index_shape(op: str, idx: tuple[Aval, ...]) -> tuple[int, ...]:
    for i in idx:
        require_int(op, i)
    return broadcast_shapes(op, *idx)


def _gather_rule(x: Aval, *idx: Aval, axis: int) -> Aval:
    k = len(idx)
    if k == 0 or not 0 <= axis <= x.ndim - k:
        raise ShapeError(f"gather: {k} index arrays at axis {axis} do not fit {x}")
    b = _index_shape("gather", idx)
    return Aval(x.shape[:axis] + b + x.shape[axis + k :], x.dtype)


def _gather_impl(x, *idx, axis):
    return x[(slice(None),) * axis + tuple(idx)]


def _gather_vjp(g, out, x, *idx, axis):
    return (bind("scatter_add", g, *idx, axis=axis, shape=x.shape),) + (None,) * len(idx)


def _scatter_rule(u: Aval, *idx: Aval, axis: int, shape: tuple[int, ...]) -> Aval:
    k = len(idx)
    b = _index_shape("scatter_add", idx)
    want = tuple(shape[:axis]) + b + tuple(shape[axis + k :])
    if k == 0 or u.shape != want:
        raise ShapeError(f"scatter_add: updates {u} do not match {want} for shape {shape}")
    return Aval(tuple(shape), u.dtype)


def _scatter_impl(u, *idx, axis, shape):
    out = np.zeros(shape, u.dtype)
    np.add.at(out, (slice(None),) * axis + tuple(idx), u)
    return out


def _batched_indices(idx, dims, rank: int) -> list:
    """Index arrays with their batch axis first, lined up with a broadcast of `rank` axes."""
    return [i if d is None else lift(front(i, d), rank) for i, d in zip(idx, dims, strict=True)]


def _gather_batch(bt, dims, x, *idx, axis):
    dx, di = dims[0], dims[1:]
    if all(d is None for d in di):
        # the same positions in every example: the batch axis is one more leading axis
        return bind("gather", front(x, dx), *idx, axis=axis + 1), 0
    rank = len(bt.node.shape) - (bt.node.inputs[0].aval.ndim - len(idx))  # indices' broadcast
    idx = _batched_indices(idx, di, rank)
    if dx is None:
        return bind("gather", x, *idx, axis=axis), axis
    # each example reads its own x: its batch axis is indexed too, by the example's number
    x = moveaxis(x, dx, axis)
    return bind("gather", x, iota(bt.size, rank), *idx, axis=axis), axis


def _scatter_batch(bt, dims, u, *idx, axis, shape):
    du, di = dims[0], dims[1:]
    if all(d is None for d in di):
        return bind("scatter_add", front(u, du), *idx, axis=axis + 1, shape=(bt.size, *shape)), 0
    # the transpose of the gather above: the batch axis of the result is indexed by the
    # example's number, so examples never add into each other's rows
    rank = bt.node.inputs[0].aval.ndim - (len(shape) - len(idx))
    idx = _batched_indices(idx, di, rank)
    u = at(u, du, axis, bt.size)
    out_shape = (*shape[:axis], bt.size, *shape[axis:])
    return bind("scatter_add", u, iota(bt.size, rank), *idx, axis=axis, shape=out_shape), axis


defop(
    "gather",
    Kind.OTHER,
    _gather_rule,
    _gather_impl,
    lowering=Dedicated("gather"),
    vjp=_gather_vjp,
    jvp=lambda ts, out, x, *idx, axis: bind("gather", ts[0], *idx, axis=axis),
    batch=_gather_batch,
    doc="x[:, ..., i1, i2, ...] with k integer arrays (broadcast together) at axes "
    "axis..axis+k-1; covers np.take and x[np.arange(n), labels]",
)
defop(
    "scatter_add",
    Kind.OTHER,
    _scatter_rule,
    _scatter_impl,
    lowering=Dedicated("scatter_add"),
    vjp=lambda g, out, u, *idx, axis, shape: (
        (bind("gather", g, *idx, axis=axis),) + (None,) * len(idx)
    ),
    jvp=lambda ts, out, u, *idx, axis, shape: bind(
        "scatter_add", ts[0], *idx, axis=axis, shape=shape
    ),
    batch=_scatter_batch,
    doc="zeros(shape) with u added at the gathered positions (repeated indices accumulate)",
)
