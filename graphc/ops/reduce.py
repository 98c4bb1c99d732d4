"""Reductions over a set of axes, with keepdims. `axes` is always a sorted tuple in the IR."""

from __future__ import annotations

import numpy as np

from graphc.ir import Aval, DTypeError, ShapeError
from graphc.ops.batching import batch_axis_attr, batched_axis, front
from graphc.ops.registry import Dedicated, Facts, Kind, bind, defop, norm_axes, reduced_shape


def _reduce_rule(op: str):
    def rule(x: Aval, *, axes: tuple[int, ...], keepdims: bool = False) -> Aval:
        ax = norm_axes(op, axes, x.ndim)
        if ax != tuple(axes):
            raise DTypeError(f"{op}: axes must be a sorted tuple of non-negative ints, got {axes}")
        if op != "reduce_sum" and op != "reduce_prod":
            for a in ax:
                if x.shape[a] == 0:
                    raise DTypeError(f"{op}: zero-size axis {a} has no identity")
        if x.dtype == np.bool_ and op in ("reduce_sum", "reduce_prod"):
            raise DTypeError(f"{op}: cast booleans to a number type first")
        return Aval(reduced_shape(x.shape, ax, keepdims), x.dtype)

    return rule


def keep(g, x_shape, axes, keepdims):
    """Reshape a reduction's result (or cotangent) to the keepdims shape, ready to broadcast."""
    if keepdims:
        return g
    return np.reshape(g, reduced_shape(x_shape, axes, True))


def _sum_vjp(g, out, x, *, axes, keepdims=False):
    return (np.broadcast_to(keep(g, x.shape, axes, keepdims), x.shape),)


def _sum_jvp(ts, out, x, *, axes, keepdims=False):
    return bind("reduce_sum", ts[0], axes=axes, keepdims=keepdims)


def _extremum_weights(out, x, axes, keepdims):
    # ties share the gradient equally, so the rule is symmetric and sums to exactly one
    hit = x == keep(out, x.shape, axes, keepdims)
    count = bind("reduce_sum", hit.astype(x.dtype), axes=axes, keepdims=True)
    return hit, count


def _extremum_vjp(g, out, x, *, axes, keepdims=False):
    hit, count = _extremum_weights(out, x, axes, keepdims)
    return (np.where(hit, keep(g, x.shape, axes, keepdims) / count, 0),)


def _extremum_jvp(ts, out, x, *, axes, keepdims=False):
    hit, count = _extremum_weights(out, x, axes, keepdims)
    r = bind("reduce_sum", np.where(hit, ts[0], 0), axes=axes, keepdims=True) / count
    return r if keepdims else np.reshape(r, out.shape)


def _prod_others(out, x, axes, keepdims):
    """d prod(x) / d x_i = product of the other elements, exact even where x has zeros."""
    zero = x == 0
    nzeros = bind("reduce_sum", zero.astype(x.dtype), axes=axes, keepdims=True)
    p_nonzero = bind("reduce_prod", np.where(zero, 1, x), axes=axes, keepdims=True)
    no_zeros = np.where(nzeros == 0, p_nonzero / np.where(zero, 1, x), 0)
    one_zero = np.where((nzeros == 1) & zero, p_nonzero, 0)
    return no_zeros + one_zero


def _prod_vjp(g, out, x, *, axes, keepdims=False):
    return (keep(g, x.shape, axes, keepdims) * _prod_others(out, x, axes, keepdims),)


def _prod_jvp(ts, out, x, *, axes, keepdims=False):
    return bind(
        "reduce_sum", ts[0] * _prod_others(out, x, axes, keepdims), axes=axes, keepdims=keepdims
    )


def _reduce_batch(bt, dims, x, *, axes, keepdims=False):
    # the same axes, numbered around the batch axis, which stays (moved left past the
    # reduced axes before it that are dropped)
    d = dims[0]
    new_axes = tuple(batched_axis(a, d) for a in axes)
    out_d = d if keepdims else d - sum(1 for a in axes if a < d)
    return bind(bt.node.op, x, axes=new_axes, keepdims=keepdims), out_d


def _np_reduce(fn):
    return lambda x, *, axes, keepdims=False: np.asarray(fn(x, axis=axes, keepdims=keepdims))


defop(
    "reduce_sum",
    Kind.REDUCTION,
    _reduce_rule("reduce_sum"),
    _np_reduce(np.sum),
    arity=1,
    batch=_reduce_batch,
    vjp=_sum_vjp,
    jvp=_sum_jvp,
    doc="sum over axes",
    reduction="sum",
    facts=Facts(non_negative_if_operands=True),
)
defop(
    "reduce_max",
    Kind.REDUCTION,
    _reduce_rule("reduce_max"),
    _np_reduce(np.max),
    arity=1,
    batch=_reduce_batch,
    vjp=_extremum_vjp,
    jvp=_extremum_jvp,
    doc="max over axes; ties share the gradient",
    reduction="max",
    facts=Facts(non_negative_if_operands=True, finite_if_operands=True),
)
defop(
    "reduce_min",
    Kind.REDUCTION,
    _reduce_rule("reduce_min"),
    _np_reduce(np.min),
    arity=1,
    batch=_reduce_batch,
    vjp=_extremum_vjp,
    jvp=_extremum_jvp,
    doc="min over axes; ties share the gradient",
    reduction="min",
    facts=Facts(non_negative_if_operands=True, finite_if_operands=True),
)
defop(
    "reduce_prod",
    Kind.REDUCTION,
    _reduce_rule("reduce_prod"),
    _np_reduce(np.prod),
    arity=1,
    batch=_reduce_batch,
    vjp=_prod_vjp,
    jvp=_prod_jvp,
    doc="product over axes; exact gradient with zeros",
    reduction="prod",
    facts=Facts(non_negative_if_operands=True),
)


def _arg_rule(op: str):
    def rule(x: Aval, *, axis: int | None, keepdims: bool = False) -> Aval:
        if axis is None:
            if x.size == 0:
                raise DTypeError(f"{op}: empty operand")
            return Aval((1,) * x.ndim if keepdims else (), np.int64)
        (ax,) = norm_axes(op, axis, x.ndim)
        if ax != axis:
            raise DTypeError(f"{op}: axis must be non-negative, got {axis}")
        if x.shape[ax] == 0:
            raise DTypeError(f"{op}: zero-size axis {ax}")
        return Aval(reduced_shape(x.shape, (ax,), keepdims), np.int64)

    return rule


def _np_arg(fn):
    def impl(x, *, axis, keepdims=False):
        return np.asarray(fn(x, axis=axis, keepdims=keepdims), dtype=np.int64)

    return impl


def _arg_batch(bt, dims, x, *, axis, keepdims=False):
    d = dims[0]
    if axis is None:
        # the index into each example's flattened array
        x = front(x, d)
        flat = bind("reshape", x, shape=(bt.size, int(np.prod(x.shape[1:], dtype=np.int64))))
        out = bind(bt.node.op, flat, axis=1, keepdims=False)
        if keepdims:
            out = bind("reshape", out, shape=(bt.size,) + (1,) * (x.ndim - 1))
        return out, 0
    out_d = d - 1 if not keepdims and axis < d else d
    return bind(bt.node.op, x, axis=batched_axis(axis, d), keepdims=keepdims), out_d


defop(
    "argmax",
    Kind.REDUCTION,
    _arg_rule("argmax"),
    _np_arg(np.argmax),
    arity=1,
    differentiable=False,
    doc="index of the first maximum (flattened when axis is None)",
    batch=_arg_batch,
)
defop(
    "argmin",
    Kind.REDUCTION,
    _arg_rule("argmin"),
    _np_arg(np.argmin),
    arity=1,
    differentiable=False,
    doc="index of the first minimum (flattened when axis is None)",
    batch=_arg_batch,
)


# -- scans and sorting ---------------------------------------------------------------------------


def _scan_rule(op: str):
    def rule(x: Aval, *, axis: int) -> Aval:
        if not 0 <= axis < x.ndim:
            raise ShapeError(f"{op}: axis {axis} is out of range for {x}")
        if x.dtype == np.bool_:
            raise DTypeError(f"{op}: cast booleans to a number type first")
        return x

    return rule


def _rev_cumsum(g, axis):
    """sum over j >= i along axis: the transpose of cumsum."""
    return np.flip(bind("cumsum", np.flip(g, axis), axis=axis), axis)


defop(
    "cumsum",
    Kind.OTHER,
    _scan_rule("cumsum"),
    lambda x, *, axis: np.cumsum(x, axis=axis),
    arity=1,
    vjp=lambda g, out, x, *, axis: (_rev_cumsum(g, axis),),
    jvp=lambda ts, out, x, *, axis: bind("cumsum", ts[0], axis=axis),
    lowering=Dedicated("cumsum"),
    batch=batch_axis_attr("axis"),
    facts=Facts(linear=True),
    doc="running sums along axis; its gradient is the reversed running sum of the cotangent",
)


def _shift(v, d: int, axis: int, fill: float):
    """v moved d places towards the end of `axis` (d < 0: towards the start), `fill` entering."""
    n = v.shape[axis]
    d = max(-n, min(n, d))
    pad_shape = list(v.shape)
    pad_shape[axis] = abs(d)
    pad = np.full(pad_shape, fill, dtype=v.dtype)
    keep = [slice(None)] * v.ndim
    if d >= 0:
        keep[axis] = slice(0, n - d)
        return np.concatenate([pad, v[tuple(keep)]], axis=axis)
    keep[axis] = slice(-d, n)
    return np.concatenate([v[tuple(keep)], pad], axis=axis)


def _recurrence(a, b, axis: int, reverse: bool = False):
    """y with y_i = b_i + a_i * y_(i-1) along axis (y_(i+1) with reverse), y before the start
    0: a prefix scan of the affine maps v -> a_i v + b_i, in log2(n) doubling steps of
    elementwise ops (Hillis-Steele), so it differentiates like any other elementwise code."""
    n = a.shape[axis]
    step = -1 if reverse else 1
    d = 1
    while d < n:
        a_prev = _shift(a, step * d, axis, 1.0)
        b_prev = _shift(b, step * d, axis, 0.0)
        a, b = a * a_prev, b + a * b_prev
        d *= 2
    return b


def _cumprod_vjp(g, out, x, *, axis):
    # grad_i = prod_(k<i) x_k * sum_(j>=i) g_j prod_(i<k<=j) x_k: the exclusive product times
    # a backward recurrence, without dividing by x (exact where x has zeros)
    before = _shift(out, 1, axis, 1.0)
    after = _shift(x, -1, axis, 0.0)
    return (before * _recurrence(after, g, axis, reverse=True),)


def _cumprod_jvp(ts, out, x, *, axis):
    # the product rule as a recurrence: dout_j = x_j dout_(j-1) + t_j out_(j-1)
    return _recurrence(x, ts[0] * _shift(out, 1, axis, 1.0), axis)


defop(
    "cumprod",
    Kind.OTHER,
    _scan_rule("cumprod"),
    lambda x, *, axis: np.cumprod(x, axis=axis),
    arity=1,
    vjp=_cumprod_vjp,
    jvp=_cumprod_jvp,
    lowering=Dedicated("cumprod"),
    batch=batch_axis_attr("axis"),
    doc="running products along axis; gradients by recurrences of products (exact at zeros, "
    "no division)",
)


def _argsort_rule(x: Aval, *, axis: int) -> Aval:
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"argsort: axis {axis} is out of range for {x}")
    return Aval(x.shape, np.int64)


defop(
    "argsort",
    Kind.OTHER,
    _argsort_rule,
    lambda x, *, axis: np.argsort(x, axis=axis, kind="stable").astype(np.int64),
    arity=1,
    differentiable=False,
    lowering=Dedicated("argsort"),
    batch=batch_axis_attr("axis"),
    doc="indices that sort x along axis (stable: ties keep their order; NaNs last); "
    "np.sort gathers with them, so its gradient follows the permutation",
)
