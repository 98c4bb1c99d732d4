"""Contractions (matmul) and NCHW image ops (conv2d, max/avg pooling) with their transposes.

Each image op comes with the ops its gradient needs, and those ops' gradients are again ops of
the same family, so derivatives of any order stay inside this small closed set:

    conv2d(x, w)              vjp -> conv2d_input_grad(g, w), conv2d_weight_grad(x, g)
    conv2d_input_grad(g, w)   vjp -> conv2d(h, w),            conv2d_weight_grad(h, g)
    conv2d_weight_grad(x, g)  vjp -> conv2d_input_grad(g, h), conv2d(x, h)
    max_pool2d(x)             vjp -> max_pool2d_grad(x, g)     (routes g to each window's argmax)
    max_pool2d_grad(x, g)     vjp -> max_pool2d_select(x, h)   (reads h at each window's argmax)
    avg_pool2d(x) <-> avg_pool2d_grad(g)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphc.ir import Aval, DTypeError, ShapeError
from graphc.ops.batching import batch_folded, batch_leading, fold, front, lift, moveaxis, unfold
from graphc.ops.registry import (
    Dedicated,
    Kind,
    bind,
    broadcast_shapes,
    defop,
    fmt,
    require_float,
    same_dtype,
)

# -- matmul ----------------------------------------------------------------------------------


def _matmul_rule(a: Aval, b: Aval) -> Aval:
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(f"matmul: operands must be at least 2-d in the IR, got {fmt(a, b)}")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(
            f"matmul: inner dimensions differ: {a} @ {b} ({a.shape[-1]} != {b.shape[-2]})"
        )
    dt = same_dtype("matmul", a, b)
    batch = broadcast_shapes("matmul", Aval(a.shape[:-2], dt), Aval(b.shape[:-2], dt))
    return Aval(batch + (a.shape[-2], b.shape[-1]), dt)


def _matmul_vjp(g, out, a, b):
    return g @ np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2) @ g


def _matmul_jvp(ts, out, a, b):
    ta, tb = ts
    terms = [
        t for t in (None if ta is None else ta @ b, None if tb is None else a @ tb) if t is not None
    ]
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _matmul_batch(bt, dims, a, b):
    da, db = dims
    rank = len(bt.node.shape)  # per-example: stack axes, then the matrix
    if db is None:
        a = front(a, da)
        if b.ndim == 2:
            # one product for the whole batch: the examples' rows stacked
            m, k = a.shape[-2:]
            rows = bind("reshape", a, shape=(int(np.prod(a.shape[:-1], dtype=np.int64)), k))
            return bind("reshape", bind("matmul", rows, b), shape=(*a.shape[:-1], b.shape[1])), 0
        return bind("matmul", lift(a, rank), b), 0
    if da is None:
        if a.ndim == 2 and b.ndim == 3:
            # one product: the examples' columns side by side, a @ [b_1 ... b_B]; the batch
            # axis of the result sits between its rows and columns
            b = moveaxis(b, db, 1)
            k, size, n = b.shape
            cols = bind("reshape", b, shape=(k, size * n))
            return bind("reshape", bind("matmul", a, cols), shape=(a.shape[0], size, n)), 1
        return bind("matmul", a, lift(front(b, db), rank)), 0
    a, b = lift(front(a, da), rank), lift(front(b, db), rank)
    if a.shape[-1] == 1:
        # a contraction over one element is a product: an outer product per example, which
        # fuses with what reads it (per-example gradients of dense layers)
        return bind("mul", a, b), 0
    return bind("matmul", a, b), 0


defop(
    "matmul",
    Kind.CONTRACTION,
    _matmul_rule,
    np.matmul,
    arity=2,
    vjp=_matmul_vjp,
    jvp=_matmul_jvp,
    batch=_matmul_batch,
    doc="a @ b on the last two axes, batch axes broadcast (1-d operands are "
    "reshaped by the tracer)",
)


# -- shared image helpers -----------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv_out_hw(hw, k, stride, padding) -> tuple[int, int]:
    return tuple((hw[i] + 2 * padding[i] - k[i]) // stride[i] + 1 for i in range(2))


def _windows(x, k, stride):
    """(N, C, OH, OW, kh, kw) view of the k-sized windows of x at the given stride."""
    return sliding_window_view(x, k, axis=(2, 3))[:, :, :: stride[0], :: stride[1]]


def _spread(g, k, stride, hw, scale=None):
    """Transpose of _windows for window contributions g[n, c, oh, ow, i, j] (or g / scale)."""
    n, c, oh, ow = g.shape[:4]
    out = np.zeros((n, c) + tuple(hw), g.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            part = g[..., i, j] if scale is None else g
            rows = slice(i, i + stride[0] * oh, stride[0])
            cols = slice(j, j + stride[1] * ow, stride[1])
            out[:, :, rows, cols] += part
    return out


def _check_image(op: str, x: Aval) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{op}: expects an NCHW image batch (4-d), got {x}")
    require_float(op, x)


# -- conv2d ------------------------------------------------------------------------------------


def _conv_rule(x: Aval, w: Aval, *, stride, padding) -> Aval:
    _check_image("conv2d", x)
    if w.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ShapeError(
            f"conv2d: weights must be (out, in={x.shape[1]}, kh, kw), got {w} for input {x}"
        )
    same_dtype("conv2d", x, w)
    oh, ow = conv_out_hw(x.shape[2:], w.shape[2:], stride, padding)
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"conv2d: kernel {w.shape[2:]} is larger than the padded input {x}")
    return Aval((x.shape[0], w.shape[0], oh, ow), x.dtype)


def _padded(x, padding):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x


def _conv_impl(x, w, *, stride, padding):
    win = _windows(_padded(x, padding), w.shape[2:], stride)
    return np.ascontiguousarray(
        np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    )


def _conv_vjp(g, out, x, w, *, stride, padding):
    return (
        bind("conv2d_input_grad", g, w, stride=stride, padding=padding, in_hw=tuple(x.shape[2:])),
        bind(
            "conv2d_weight_grad", x, g, stride=stride, padding=padding, kernel_hw=tuple(w.shape[2:])
        ),
    )


def _bilinear_jvp(op):
    def jvp(ts, out, a, b, **attrs):
        ta, tb = ts
        terms = [
            bind(op, ta, b, **attrs) if ta is not None else None,
            bind(op, a, tb, **attrs) if tb is not None else None,
        ]
        terms = [t for t in terms if t is not None]
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    return jvp


def _channels(w, d, axis: int, size: int):
    """Batched weights with the batch joined into channel axis `axis` (0: out, 1: in):
    (B, O, C, kh, kw) -> (B*O, C, kh, kw) or (O, B*C, kh, kw)."""
    w = moveaxis(w, d, axis)
    shape = tuple(w.shape)
    return bind("reshape", w, shape=shape[:axis] + (size * shape[axis + 1],) + shape[axis + 2 :])


def _patches(x, kernel_hw, stride, padding):
    """Image batches of every example, (B, N, C, H, W), as their windows: (B, N, C*kh*kw,
    oh*ow), a window's values in the order of a filter's (c, i, j). What a convolution whose
    images and filters both differ per example contracts with its filters, as one batched
    matrix product."""
    (ph, pw), (sh, sw), (kh, kw) = padding, stride, kernel_hw
    if ph or pw:
        x = bind("pad", x, pads=((0, 0, 0),) * 3 + ((ph, ph, 0), (pw, pw, 0)), value=0.0)
    b, n, c, hp, wp = x.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    taps = []
    for i in range(kh):
        for j in range(kw):
            t = bind(
                "slice",
                x,
                start=(0, 0, 0, i, j),
                stop=(b, n, c, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1),
                step=(1, 1, 1, sh, sw),
            )
            taps.append(bind("reshape", t, shape=(b, n, c, 1, oh, ow)))
    p = taps[0] if len(taps) == 1 else bind("concatenate", *taps, axis=3)
    return bind("reshape", p, shape=(b, n, c * kh * kw, oh * ow)), oh, ow


def _filters(w):
    """Filters of every example, (B, O, C, kh, kw), as (B, 1, O, C*kh*kw) matrices."""
    b, o = w.shape[:2]
    return bind("reshape", w, shape=(b, 1, o, int(np.prod(w.shape[2:]))))


def _conv_per_example(x, w, stride, padding):
    """conv2d with images and filters both per example: each example's windows times its
    filters, one batched matrix product."""
    p, oh, ow = _patches(x, w.shape[3:], stride, padding)
    y = bind("matmul", _filters(w), p)  # (B, N, O, oh*ow)
    return bind("reshape", y, shape=(*y.shape[:3], oh, ow))


def _conv_w_per_example(x, g, stride, padding, kernel_hw):
    """The filter gradient of each example from its own images and cotangents: its windows
    against its cotangents, summed over its images."""
    p, oh, ow = _patches(x, kernel_hw, stride, padding)
    b, n, o = g.shape[:3]
    g = bind("reshape", g, shape=(b, n, o, oh * ow))
    dw = bind("reduce_sum", bind("matmul", g, _mT(p)), axes=(1,), keepdims=False)
    return bind("reshape", dw, shape=(b, o, x.shape[2], *kernel_hw))


def _conv_in_per_example(g, w, stride, padding, in_hw):
    """The image gradient of each example from its own cotangents and filters: the windows'
    cotangents (filters times cotangents, one batched product), each tap added back where
    its window read (an interior-padded copy per tap)."""
    (ph, pw), (sh, sw) = padding, stride
    b, n, o, oh, ow = g.shape
    c, kh, kw = w.shape[2:]
    g = bind("reshape", g, shape=(b, n, o, oh * ow))
    cols = bind("matmul", _mT(_filters(w)), g)  # (B, N, C*kh*kw, oh*ow)
    cols = bind("reshape", cols, shape=(b, n, c, kh * kw, oh, ow))
    hp, wp = in_hw[0] + 2 * ph, in_hw[1] + 2 * pw
    total = None
    for i in range(kh):
        for j in range(kw):
            t = i * kw + j
            tap = bind(
                "slice",
                cols,
                start=(0, 0, 0, t, 0, 0),
                stop=(b, n, c, t + 1, oh, ow),
                step=(1,) * 6,
            )
            tap = bind("reshape", tap, shape=(b, n, c, oh, ow))
            rows = (i, hp - i - (oh - 1) * sh - 1, sh - 1)
            cols_ = (j, wp - j - (ow - 1) * sw - 1, sw - 1)
            placed = bind("pad", tap, pads=((0, 0, 0),) * 3 + (rows, cols_), value=0.0)
            total = placed if total is None else bind("add", total, placed)
    if ph or pw:
        total = bind(
            "slice",
            total,
            start=(0, 0, 0, ph, pw),
            stop=(b, n, c, ph + in_hw[0], pw + in_hw[1]),
            step=(1,) * 5,
        )
    return total


def _conv_batch(bt, dims, x, w, *, stride, padding):
    dx, dw = dims
    if dw is None:
        # the examples' images are one larger image batch
        y = bind("conv2d", fold(x, dx, bt.size), w, stride=stride, padding=padding)
        return unfold(y, bt.size, bt.node.shape[0]), 0
    if dx is None:
        # the examples' filters are one larger filter bank: their outputs side by side
        y = bind("conv2d", x, _channels(w, dw, 0, bt.size), stride=stride, padding=padding)
        return unfold(y, bt.size, bt.node.shape[1], axis=1), 1
    x, w = moveaxis(x, dx, 0), moveaxis(w, dw, 0)
    return _conv_per_example(x, w, stride, padding), 0


defop(
    "conv2d",
    Kind.CONTRACTION,
    _conv_rule,
    _conv_impl,
    lowering=Dedicated("conv2d"),
    arity=2,
    vjp=_conv_vjp,
    jvp=_bilinear_jvp("conv2d"),
    batch=_conv_batch,
    doc="cross-correlation of NCHW x with OIHW w, zero padding, stride",
)


def _conv_in_rule(g: Aval, w: Aval, *, stride, padding, in_hw) -> Aval:
    same_dtype("conv2d_input_grad", g, w)
    if g.ndim != 4 or w.ndim != 4 or g.shape[1] != w.shape[0]:
        raise ShapeError(f"conv2d_input_grad: mismatched {fmt(g, w)}")
    if conv_out_hw(in_hw, w.shape[2:], stride, padding) != g.shape[2:]:
        raise ShapeError(f"conv2d_input_grad: {g} is not a conv2d output for input size {in_hw}")
    return Aval((g.shape[0], w.shape[1]) + tuple(in_hw), g.dtype)


def _conv_in_impl(g, w, *, stride, padding, in_hw):
    ph, pw = padding
    hp = (in_hw[0] + 2 * ph, in_hw[1] + 2 * pw)
    contrib = np.einsum("nohw,ocij->nchwij", g, w)
    out = _spread(contrib, w.shape[2:], stride, hp)
    return np.ascontiguousarray(out[:, :, ph : ph + in_hw[0], pw : pw + in_hw[1]])


def _conv_in_vjp(h, out, g, w, *, stride, padding, in_hw):
    return (
        bind("conv2d", h, w, stride=stride, padding=padding),
        bind(
            "conv2d_weight_grad", h, g, stride=stride, padding=padding, kernel_hw=tuple(w.shape[2:])
        ),
    )


def _conv_in_batch(bt, dims, g, w, *, stride, padding, in_hw):
    dg, dw = dims
    attrs = {"stride": stride, "padding": padding, "in_hw": in_hw}
    if dw is None:
        y = bind("conv2d_input_grad", fold(g, dg, bt.size), w, **attrs)
        return unfold(y, bt.size, bt.node.shape[0]), 0
    if dg is None:
        # the filters' input channels of all examples side by side
        y = bind("conv2d_input_grad", g, _channels(w, dw, 1, bt.size), **attrs)
        return unfold(y, bt.size, bt.node.shape[1], axis=1), 1
    return _conv_in_per_example(moveaxis(g, dg, 0), moveaxis(w, dw, 0), stride, padding, in_hw), 0


defop(
    "conv2d_input_grad",
    Kind.CONTRACTION,
    _conv_in_rule,
    _conv_in_impl,
    lowering=Dedicated("conv2d_input_grad"),
    arity=2,
    vjp=_conv_in_vjp,
    jvp=_bilinear_jvp("conv2d_input_grad"),
    batch=_conv_in_batch,
    doc="transpose of conv2d in its input: the gradient of conv2d with respect to x",
)


def _conv_w_rule(x: Aval, g: Aval, *, stride, padding, kernel_hw) -> Aval:
    _check_image("conv2d_weight_grad", x)
    same_dtype("conv2d_weight_grad", x, g)
    if (
        g.ndim != 4
        or g.shape[0] != x.shape[0]
        or conv_out_hw(x.shape[2:], kernel_hw, stride, padding) != g.shape[2:]
    ):
        raise ShapeError(f"conv2d_weight_grad: {g} is not a conv2d output of {x}")
    return Aval((g.shape[1], x.shape[1]) + tuple(kernel_hw), x.dtype)


def _conv_w_impl(x, g, *, stride, padding, kernel_hw):
    win = _windows(_padded(x, padding), kernel_hw, stride)
    return np.ascontiguousarray(np.tensordot(g, win, axes=([0, 2, 3], [0, 2, 3])))


def _conv_w_vjp(h, out, x, g, *, stride, padding, kernel_hw):
    return (
        bind("conv2d_input_grad", g, h, stride=stride, padding=padding, in_hw=tuple(x.shape[2:])),
        bind("conv2d", x, h, stride=stride, padding=padding),
    )


def _image_channels(x, d, size: int):
    """Batched images (B, N, C, H, W) as N images of B*C channels."""
    x = moveaxis(x, d, 1)
    shape = tuple(x.shape)
    return bind("reshape", x, shape=(shape[0], size * shape[2]) + shape[3:])


def _conv_w_batch(bt, dims, x, g, *, stride, padding, kernel_hw):
    dx, dg = dims
    attrs = {"stride": stride, "padding": padding, "kernel_hw": kernel_hw}
    o, c = bt.node.shape[:2]
    if dg is None:
        # the examples' images as more input channels: one filter gradient per channel
        y = bind("conv2d_weight_grad", _image_channels(x, dx, bt.size), g, **attrs)
        return unfold(y, bt.size, c, axis=1), 1
    if dx is None:
        y = bind("conv2d_weight_grad", x, _image_channels(g, dg, bt.size), **attrs)
        return unfold(y, bt.size, o), 0
    # summed over each example's own images only: a filter gradient per example (what
    # per-example gradients of a convolution need)
    x, g = moveaxis(x, dx, 0), moveaxis(g, dg, 0)
    return _conv_w_per_example(x, g, stride, padding, kernel_hw), 0


defop(
    "conv2d_weight_grad",
    Kind.CONTRACTION,
    _conv_w_rule,
    _conv_w_impl,
    lowering=Dedicated("conv2d_weight_grad"),
    arity=2,
    vjp=_conv_w_vjp,
    jvp=_bilinear_jvp("conv2d_weight_grad"),
    batch=_conv_w_batch,
    doc="transpose of conv2d in its weights: the gradient of conv2d with respect to w",
)


# -- pooling ----------------------------------------------------------------------------------


def _pool_out(op: str, x: Aval, kernel, stride) -> tuple[int, int]:
    _check_image(op, x)
    oh, ow = conv_out_hw(x.shape[2:], kernel, stride, (0, 0))
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"{op}: window {tuple(kernel)} is larger than the input {x}")
    return oh, ow


def _pool_rule(op: str):
    def rule(x: Aval, *, kernel, stride) -> Aval:
        return Aval(x.shape[:2] + _pool_out(op, x, kernel, stride), x.dtype)

    return rule


def _argmax_positions(x, kernel, stride):
    """Row and column in x of the first maximum of every window, each (N, C, OH, OW)."""
    win = _windows(x, kernel, stride)
    n, c, oh, ow = win.shape[:4]
    a = win.reshape(n, c, oh, ow, -1).argmax(-1)
    di, dj = np.divmod(a, kernel[1])
    rows = np.arange(oh)[:, None] * stride[0] + di
    cols = np.arange(ow)[None, :] * stride[1] + dj
    return rows, cols


def _nc_index(x):
    n, c = x.shape[:2]
    return np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None]


def _maxpool_impl(x, *, kernel, stride):
    return np.ascontiguousarray(_windows(x, kernel, stride).max(axis=(-2, -1)))


def _maxpool_grad_rule(x: Aval, g: Aval, *, kernel, stride) -> Aval:
    want = x.shape[:2] + _pool_out("max_pool2d_grad", x, kernel, stride)
    if g.shape != want:
        raise ShapeError(f"max_pool2d_grad: cotangent {g} should have shape {want}")
    same_dtype("max_pool2d_grad", x, g)
    return x


def _maxpool_grad_impl(x, g, *, kernel, stride):
    rows, cols = _argmax_positions(x, kernel, stride)
    ni, ci = _nc_index(x)
    out = np.zeros_like(x)
    np.add.at(out, (ni, ci, rows, cols), g)
    return out


def _maxpool_select_rule(x: Aval, h: Aval, *, kernel, stride) -> Aval:
    if h.shape != x.shape:
        raise ShapeError(f"max_pool2d_select: {h} should have the shape of {x}")
    same_dtype("max_pool2d_select", x, h)
    return Aval(x.shape[:2] + _pool_out("max_pool2d_select", x, kernel, stride), x.dtype)


def _maxpool_select_impl(x, h, *, kernel, stride):
    rows, cols = _argmax_positions(x, kernel, stride)
    ni, ci = _nc_index(x)
    return h[ni, ci, rows, cols]


defop(
    "max_pool2d",
    Kind.OTHER,
    _pool_rule("max_pool2d"),
    _maxpool_impl,
    lowering=Dedicated("max_pool2d"),
    batch=batch_folded,
    arity=1,
    vjp=lambda g, out, x, **a: (bind("max_pool2d_grad", x, g, **a),),
    jvp=lambda ts, out, x, **a: bind("max_pool2d_select", x, ts[0], **a),
    doc="max over kernel-sized windows; the gradient goes to each window's first maximum",
)
defop(
    "max_pool2d_grad",
    Kind.OTHER,
    _maxpool_grad_rule,
    _maxpool_grad_impl,
    lowering=Dedicated("max_pool2d_grad"),
    batch=batch_folded,
    arity=2,
    vjp=lambda h, out, x, g, **a: (None, bind("max_pool2d_select", x, h, **a)),
    jvp=lambda ts, out, x, g, **a: (
        bind("max_pool2d_grad", x, ts[1], **a) if ts[1] is not None else None
    ),
    doc="g routed to the first maximum of each window of x (zero elsewhere)",
)
defop(
    "max_pool2d_select",
    Kind.OTHER,
    _maxpool_select_rule,
    _maxpool_select_impl,
    lowering=Dedicated("max_pool2d_select"),
    batch=batch_folded,
    arity=2,
    vjp=lambda g, out, x, h, **a: (None, bind("max_pool2d_grad", x, g, **a)),
    jvp=lambda ts, out, x, h, **a: (
        bind("max_pool2d_select", x, ts[1], **a) if ts[1] is not None else None
    ),
    doc="h read at the first maximum of each window of x",
)


def _avgpool_impl(x, *, kernel, stride):
    return np.ascontiguousarray(_windows(x, kernel, stride).mean(axis=(-2, -1), dtype=x.dtype))


def _avgpool_grad_rule(g: Aval, *, kernel, stride, in_hw) -> Aval:
    _check_image("avg_pool2d_grad", g)
    if conv_out_hw(in_hw, kernel, stride, (0, 0)) != g.shape[2:]:
        raise ShapeError(f"avg_pool2d_grad: {g} is not a pooling output for size {in_hw}")
    return Aval(g.shape[:2] + tuple(in_hw), g.dtype)


def _avgpool_grad_impl(g, *, kernel, stride, in_hw):
    return _spread(g / g.dtype.type(kernel[0] * kernel[1]), kernel, stride, in_hw, scale=True)


defop(
    "avg_pool2d",
    Kind.OTHER,
    _pool_rule("avg_pool2d"),
    _avgpool_impl,
    lowering=Dedicated("avg_pool2d"),
    batch=batch_folded,
    arity=1,
    vjp=lambda g, out, x, **a: (bind("avg_pool2d_grad", g, in_hw=tuple(x.shape[2:]), **a),),
    jvp=lambda ts, out, x, **a: bind("avg_pool2d", ts[0], **a),
    doc="mean over kernel-sized windows",
)
defop(
    "avg_pool2d_grad",
    Kind.OTHER,
    _avgpool_grad_rule,
    _avgpool_grad_impl,
    lowering=Dedicated("avg_pool2d_grad"),
    batch=batch_folded,
    arity=1,
    vjp=lambda h, out, g, *, kernel, stride, in_hw: (
        bind("avg_pool2d", h, kernel=kernel, stride=stride),
    ),
    jvp=lambda ts, out, g, **a: bind("avg_pool2d_grad", ts[0], **a),
    doc="transpose of avg_pool2d",
)


# -- linear algebra on stacks of square matrices -------------------------------------------------


def _square_rule(op: str, keep: bool):
    def rule(x: Aval) -> Aval:
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            raise ShapeError(f"{op}: needs a stack of square matrices (..., n, n), got {x}")
        if x.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise DTypeError(f"{op}: needs float32 or float64 matrices, got {x}")
        return x if keep else Aval(x.shape[:-2], x.dtype)

    return rule


def _mT(x):
    return np.swapaxes(x, -1, -2)


def _inv(x):
    return bind("inv", x)


def _mat(g):
    """A per-matrix value (...,) as (..., 1, 1), ready to broadcast against the matrices."""
    return np.expand_dims(g, (-2, -1))


defop(
    "inv",
    Kind.OTHER,
    _square_rule("inv", True),
    lambda x: np.linalg.inv(x),
    arity=1,
    vjp=lambda g, out, x: (-(_mT(out) @ g @ _mT(out)),),
    batch=batch_leading,
    jvp=lambda ts, out, x: -(out @ ts[0] @ out),
    doc="matrix inverse of each (..., n, n) matrix; gradient -inv(x)^T g inv(x)^T",
)


def _solve_rule(a: Aval, b: Aval) -> Aval:
    _square_rule("solve", True)(a)
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2] or b.shape[-2] != a.shape[-1]:
        raise ShapeError(
            f"solve: b must be (..., n, k) with a's batch shape and n, got a {a}, b {b}"
        )
    if b.dtype != a.dtype:
        raise DTypeError(f"solve: a and b must have one dtype, got {a} and {b}")
    return b


def _solve(a, b):
    return bind("solve", a, b)


defop(
    "solve",
    Kind.OTHER,
    _solve_rule,
    lambda a, b: np.linalg.solve(a, b),
    arity=2,
    batch=batch_leading,
    # x = a^-1 b: gb = a^-T g, ga = -gb x^T
    vjp=lambda g, out, a, b: (-(_solve(_mT(a), g) @ _mT(out)), _solve(_mT(a), g)),
    jvp=lambda ts, out, a, b: _solve(
        a,
        (ts[1] if ts[1] is not None else 0) - (ts[0] @ out if ts[0] is not None else 0),
    ),
    doc="solution x of a @ x = b for each (..., n, n) matrix a and (..., n, k) b (LU, as "
    "np.linalg.solve); gradients solve(a^T, g) for b and -solve(a^T, g) x^T for a",
)
defop(
    "det",
    Kind.OTHER,
    _square_rule("det", False),
    lambda x: np.asarray(np.linalg.det(x)),
    arity=1,
    vjp=lambda g, out, x: (_mat(g * out) * _mT(_inv(x)),),
    batch=batch_leading,
    jvp=lambda ts, out, x: out * np.sum(_mT(_inv(x)) * ts[0], axis=(-2, -1)),
    doc="determinant of each (..., n, n) matrix; gradient det(x) inv(x)^T",
)
defop(
    "logabsdet",
    Kind.OTHER,
    _square_rule("logabsdet", False),
    lambda x: np.asarray(np.linalg.slogdet(x)[1]),
    arity=1,
    vjp=lambda g, out, x: (_mat(g) * _mT(_inv(x)),),
    batch=batch_leading,
    jvp=lambda ts, out, x: np.sum(_mT(_inv(x)) * ts[0], axis=(-2, -1)),
    doc="log |det| of each (..., n, n) matrix (np.linalg.slogdet's second result)",
)
defop(
    "detsign",
    Kind.OTHER,
    _square_rule("detsign", False),
    lambda x: np.asarray(np.linalg.slogdet(x)[0]),
    arity=1,
    differentiable=False,
    batch=batch_leading,
    doc="sign of det of each (..., n, n) matrix, -1, 0 or 1 (np.linalg.slogdet's first result)",
)
