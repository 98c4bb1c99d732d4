"""What batching rules share: moving and materialising batch axes, and the generic rules.

A batching rule (`OpDef.batch`) is called by the batching pass (`passes/batching.py`, which
`graphc.vmap` runs) as `rule(bt, dims, *xs, **attrs)`: the operands are graph values of the
batched graph, `dims[k]` says where operand k carries the batch axis (None: it has none, it is
the same for every example), and the attributes are the node's own. The rule returns the
result and where its batch axis is: `(value, dim)`, or `(values, dims)` for an op with several
results. Rules are NumPy code on graph values, like the gradient rules, so what they build is
ordinary IR. The context `bt` is the pass's (the op layer cannot import passes):

    bt.size                       the batch size
    bt.node                       the node being batched (its per-example types and attributes)
    bt.batch(graph, in_batched, out_batched=None) -> (graph, out_batched)
                                  a region batched: inputs marked True carry the batch axis
                                  first, outputs too (those listed True are made batched)
    bt.inline(graph, args)        a graph's outputs computed from args, in the batched graph
    bt.loop(reason)               the node computed by a loop over the batch (a `scan`), for
                                  the cases a rule has no better form for

Example:
    >>> defop("my_neg", Kind.ELEMENTWISE, ..., batch=batch_elementwise)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.ops.registry import bind

Dim = int | None


class BatchingError(GraphcError, ValueError):
    """A vmap that cannot be done as asked: batch sizes that differ, an axis out of range,
    in_axes or out_axes that do not fit the arguments or results."""


def node_of(x: Any) -> Any:
    """The graph node behind a rule's operand (rules get graph values, regions take nodes)."""
    return getattr(x, "node", x)


def moveaxis(x: Any, src: int, dst: int) -> Any:
    """x with its axis `src` moved to position `dst` (a transpose; x itself when in place)."""
    if src == dst:
        return x
    perm = list(range(x.ndim))
    perm.insert(dst, perm.pop(src))
    return bind("transpose", x, perm=tuple(perm))


def at(x: Any, d: Dim, to: int, size: int) -> Any:
    """x with its batch axis at `to`; an unbatched x is repeated `size` times along a new axis
    there (for ops whose operands must all carry the batch)."""
    if d is not None:
        return moveaxis(x, d, to)
    shape = tuple(x.shape)
    if to:
        x = bind("reshape", x, shape=shape[:to] + (1,) + shape[to:])
    return bind("broadcast_to", x, shape=shape[:to] + (size,) + shape[to:])


def front(x: Any, d: Dim) -> Any:
    """A batched x with its batch axis first; an unbatched x as it is."""
    return x if d is None else moveaxis(x, d, 0)


def lift(x: Any, rank: int) -> Any:
    """x, batched on its first axis, with unit axes after the batch axis up to `rank`
    per-example axes: what lines its per-example axes up with those of a broadcast."""
    extra = rank - (x.ndim - 1)
    if extra <= 0:
        return x
    shape = tuple(x.shape)
    return bind("reshape", x, shape=shape[:1] + (1,) * extra + shape[1:])


def batched_axis(axis: int, d: int) -> int:
    """Where per-example axis `axis` is in an array batched at `d`."""
    return axis + 1 if axis >= d else axis


def batch_elementwise(bt: Any, dims: Sequence[Dim], *xs: Any, **attrs: Any) -> tuple[Any, Dim]:
    """The rule of every elementwise op (NumPy broadcasting included): the op applied to the
    batched operands. When all batched operands have the result's rank and their batch axis
    at one place, it stays there, and an unbatched operand reaching past it gets a unit axis
    (a view); otherwise batch axes go first, with unit axes where an operand has fewer axes
    than the result."""
    op = bt.node.op
    rank = len(bt.node.shape)
    batched = [(x, d) for x, d in zip(xs, dims, strict=True) if d is not None]
    places = {d for _, d in batched}
    if len(places) == 1 and all(x.ndim - 1 == rank for x, _ in batched):
        (d,) = places
        args = [
            x if dx is not None else _unit_at(x, d, rank) for x, dx in zip(xs, dims, strict=True)
        ]
        return bind(op, *args, **attrs), d
    moved = [
        x if d is None else lift(moveaxis(x, d, 0), rank) for x, d in zip(xs, dims, strict=True)
    ]
    return bind(op, *moved, **attrs), 0


def _unit_at(x: Any, d: int, rank: int) -> Any:
    """Unbatched x, broadcast against values of `rank` per-example axes batched at `d`: with a
    unit axis where the batch axis falls among its own axes (x itself when it lies left of
    them all: x lines up with the result's last axes)."""
    p = d - (rank - x.ndim)
    if p <= 0:
        return x
    shape = tuple(x.shape)
    return bind("reshape", x, shape=shape[:p] + (1,) + shape[p:])


def batch_axis_attr(name: str):
    """The rule of an op of one operand whose attribute `name` is one axis and whose result
    has the operand's axes (cumsum, cumprod, argsort): the axis renumbered around the batch
    axis, which stays where it is."""

    def rule(bt: Any, dims: Sequence[Dim], x: Any, **attrs: Any) -> tuple[Any, Dim]:
        d = dims[0]
        attrs[name] = batched_axis(attrs[name], d)
        return bind(bt.node.op, x, **attrs), d

    return rule


def batch_leading(bt: Any, dims: Sequence[Dim], *xs: Any, **attrs: Any) -> tuple[Any, Dim]:
    """The rule of ops on stacks of matrices (`(..., m, n)`, the leading axes any): every
    operand with the batch axis first, repeated along it where unbatched (their stacks must
    agree)."""
    if len(xs) == 1:
        return bind(bt.node.op, front(xs[0], dims[0]), **attrs), 0
    moved = [at(x, d, 0, bt.size) for x, d in zip(xs, dims, strict=True)]
    return bind(bt.node.op, *moved, **attrs), 0


def fold(x: Any, d: Dim, size: int) -> Any:
    """x with the batch joined into its first axis (an image batch): (B, N, ...) -> (B*N, ...);
    an unbatched x is repeated first."""
    x = at(x, d, 0, size)
    shape = tuple(x.shape)
    return bind("reshape", x, shape=(shape[0] * shape[1],) + shape[2:])


def unfold(y: Any, size: int, n: int, axis: int = 0) -> Any:
    """The inverse of `fold` on axis `axis`: (..., B*n, ...) -> (..., B, n, ...)."""
    shape = tuple(y.shape)
    return bind("reshape", y, shape=shape[:axis] + (size, n) + shape[axis + 1 :])


def batch_folded(bt: Any, dims: Sequence[Dim], *xs: Any, **attrs: Any) -> tuple[Any, Dim]:
    """The rule of image ops whose operands share the image batch (pooling and its
    gradients): the batch joins the image batch, N images of B examples as B*N images."""
    y = bind(bt.node.op, *[fold(x, d, bt.size) for x, d in zip(xs, dims, strict=True)], **attrs)
    return unfold(y, bt.size, bt.node.shape[0]), 0


def iota(size: int, rank: int) -> np.ndarray:
    """0..size-1 shaped (size, 1, ..., 1) with `rank` unit axes: the example index, ready to
    broadcast against index arrays that are batched on their first axis."""
    return np.arange(size, dtype=np.int64).reshape((size,) + (1,) * rank)


__all__ = [
    "BatchingError",
    "at",
    "batch_axis_attr",
    "batch_elementwise",
    "batch_folded",
    "batch_leading",
    "batched_axis",
    "fold",
    "front",
    "iota",
    "lift",
    "moveaxis",
    "node_of",
    "unfold",
]
