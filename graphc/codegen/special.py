"""Compiled kernels for the non-elementwise ops: NCHW convolution and pooling, gather, scatter_add.

`KERNELS` maps an op name to a function with the signature and results of the op's NumPy
reference (`REGISTRY[op].impl`): positional arrays, keyword attributes, a new C-contiguous array
of the reference's shape and dtype. float32 and float64 run compiled code (Numba, `nogil`, cached
on disk); anything else (other dtypes, arguments the op's shape rule would reject) goes to the
reference, which then behaves, or raises, exactly as before.

    >>> from graphc.codegen.special import KERNELS
    >>> y = KERNELS["conv2d"](x, w, stride=(1, 1), padding=(0, 0))

Method per op, chosen by measuring on the seed ConvNet (batch 64, float32; 2-core AMD EPYC with
AVX-512; medians in µs on one thread for both columns, OPENBLAS_NUM_THREADS=1; the machine was
shared, so absolute values vary by ~30% between runs, the ranking did not;
`benchmarks/conv_bench.py --im2col` reproduces them):

    op                   im2col  BLAS GEMM  col2im   total  |  direct (this module)
    conv1 forward            35        100             135  |   107
    conv1 weight grad        35        208             243  |    87
    conv1 input grad                   135      64     200  |   123
    conv2 forward            92        220             313  |   248
    conv2 weight grad        92        287             379  |   228
    conv2 input grad                   210     142     352  |   245

The direct kernels win every case: the GEMMs are small (16×72×121 per image for conv2), and
im2col's copy (or col2im's scatter) costs as much as a third of a whole direct convolution. So
the three convolutions are direct loops (`_taps`, `_dots` below, 50-85 GMAC/s on one core),
max/avg pooling are direct loops, and gather/scatter_add are flat loops over a linear index.
Images are split across threads in chunks of the batch (`runtime.launch`) when the work pays
for the ~15 µs hand-off (`_PAR_MIN_MACS`, `_PAR_MIN_ELEMS`); on an idle machine conv2's forward
takes 138 µs on two threads against 235 µs on one. The weight gradient sums per-chunk partials,
so its last bits can depend on the number of threads.

Numerics: convolutions and avg_pool2d sum in a different order than the references (float32
results agree to ~1e-6 relative); max pooling, avg_pool2d_grad, gather and scatter_add move or
add values in the reference's order and agree exactly, including NaN (max-pool propagates it;
the gradient goes to the first NaN, np.argmax's rule), ties (the first maximum) and repeated
indices (contributions add in order).

Memory: results of 64 KB or more reuse the memory of earlier results once nothing refers to
them (`_empty`), which saves the page faults of fresh allocations (1.5 ms per ConvNet step).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable

import numpy as np
from numba import njit, uint64

from graphc.codegen import runtime

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
# `contract` lets LLVM fuse a*b+c into one FMA; reductions also need `reassoc` to vectorize.
# Neither changes NaN/inf behaviour, so NaN propagation still matches the references.
_jit = njit(**_JIT, fastmath={"contract"})
_jit_sum = njit(**_JIT, fastmath={"contract", "reassoc"})

# Convolution tiles hold this many elements per channel row (images × padded plane); 2K floats
# keep the rows a tap pass touches in L1.
_TILE = 2048
# Work below which a second thread costs more than it saves. Handing a chunk to the pool and
# collecting it costs ~15 µs, so a split pays from ~30 µs of single-threaded work: ~2M
# multiply-adds of convolution, ~256K pooled input elements (a gradient counts twice).
_PAR_MIN_MACS = 1 << 21
_PAR_MIN_ELEMS = 1 << 18


def _ref(op: str) -> Callable:
    from graphc.ops import REGISTRY

    return REGISTRY[op].impl


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _float_arrays(*xs) -> bool:
    """True when every operand is an ndarray of one supported float dtype."""
    if not all(isinstance(x, np.ndarray) for x in xs):
        return False
    dt = xs[0].dtype
    return dt in _FLOATS and all(x.dtype == dt for x in xs)


def _c(x: np.ndarray) -> np.ndarray:
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


# Results of 64 KB and more reuse the memory of an earlier result that nothing refers to any
# more. A fresh allocation of that size is a new mmap whose pages fault on first touch, ~2 µs per
# 4 KB page on this VM: the two 1.4 MB results of the ConvNet step (conv1's output, pool1's
# gradient) faulted 692 times per step, 1.5 ms of a 4.3 ms step. (glibc maps every repeated
# allocation of the size it last unmapped, so its own dynamic threshold does not help.)
_RECYCLE_MIN_BYTES = 1 << 16
_RECYCLE_SLOTS = 8
_recycled: list[np.ndarray] = []  # flat uint8 buffers, least recently handed out first
_recycle_lock = threading.Lock()


def _empty(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A new uninitialized C-contiguous array, like np.empty.

    Its memory may be that of a result handed out before whose array, and every view of it, has
    been dropped: a buffer is reused only when the recycling list holds the sole reference to it
    (views keep their base alive, so their buffers stay referenced)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < _RECYCLE_MIN_BYTES:
        return np.empty(shape, dtype)
    with _recycle_lock:
        buf = None
        for i in range(len(_recycled)):
            # references: the list's and getrefcount's argument
            if _recycled[i].nbytes == nbytes and sys.getrefcount(_recycled[i]) == 2:
                buf = _recycled.pop(i)
                break
        if buf is None:
            buf = np.empty(nbytes, np.uint8)
            if len(_recycled) >= _RECYCLE_SLOTS:
                del _recycled[0]
        _recycled.append(buf)
        return buf.view(dtype).reshape(shape)


def _zeros(shape: tuple, dtype: np.dtype) -> np.ndarray:
    out = _empty(shape, dtype)
    out.fill(0)
    return out


def _nchunks(n: int, work: int, min_work: int) -> int:
    if work < min_work or n < 2:
        return 1
    return min(runtime.N_THREADS, n)


# =============================================================================================
# convolution
#
# All three convolution ops reduce to two loop kernels on a "full-width" layout: a tile of B
# images is staged channel-major, each image as its zero-padded Hp×Wp plane stored row after row
# (plane stride S = Hp*Wp). An output at (oh, ow) then sits at linear position
# t*S + oh*sh*Wp + ow*sw of the tile, and tap (c, kh, kw) of the kernel reads the input at that
# position plus the constant offset c*B*S + kh*Wp + kw. So for every tap, all outputs of the tile
# read one contiguous run of the staged input: the inner loops are long, unit-stride and
# vectorize, at the price of also computing the (discarded) positions between rows and images.
# Other strides compute at every position and keep every sh-th row, sw-th column.
#
#   _taps:  acc[o, j] = sum_k wm[o, k] * src[offs[k] + j]      (forward; input grad)
#   _dots:  dw[o, k] += sum_j g[o, j] * src[offs[k] + j]        (weight grad)
#
# Both work on 2 rows × 8 taps per pass over j, so one load of each input run feeds two
# accumulators and each accumulator store carries 8 multiply-adds.
# =============================================================================================


@_jit
def _taps(src, offs, wm, acc, n):
    """acc[o, j] = sum_k wm[o, k] * src[offs[k] + j] for j < n."""
    O, K = wm.shape
    K8 = K - K % 8
    O2 = O - O % 2
    for o in range(0, O2, 2):
        a = acc[o, :n]
        b = acc[o + 1, :n]
        ra = wm[o]
        rb = wm[o + 1]
        for j in range(n):
            a[j] = 0
            b[j] = 0
        for k in range(0, K8, 8):
            wa0, wa1, wa2, wa3 = ra[k], ra[k + 1], ra[k + 2], ra[k + 3]
            wa4, wa5, wa6, wa7 = ra[k + 4], ra[k + 5], ra[k + 6], ra[k + 7]
            wb0, wb1, wb2, wb3 = rb[k], rb[k + 1], rb[k + 2], rb[k + 3]
            wb4, wb5, wb6, wb7 = rb[k + 4], rb[k + 5], rb[k + 6], rb[k + 7]
            x0 = src[offs[k] : offs[k] + n]
            x1 = src[offs[k + 1] : offs[k + 1] + n]
            x2 = src[offs[k + 2] : offs[k + 2] + n]
            x3 = src[offs[k + 3] : offs[k + 3] + n]
            x4 = src[offs[k + 4] : offs[k + 4] + n]
            x5 = src[offs[k + 5] : offs[k + 5] + n]
            x6 = src[offs[k + 6] : offs[k + 6] + n]
            x7 = src[offs[k + 7] : offs[k + 7] + n]
            for j in range(n):
                y0, y1, y2, y3 = x0[j], x1[j], x2[j], x3[j]
                y4, y5, y6, y7 = x4[j], x5[j], x6[j], x7[j]
                s = a[j]
                t = b[j]
                s += wa0 * y0
                t += wb0 * y0
                s += wa1 * y1
                t += wb1 * y1
                s += wa2 * y2
                t += wb2 * y2
                s += wa3 * y3
                t += wb3 * y3
                s += wa4 * y4
                t += wb4 * y4
                s += wa5 * y5
                t += wb5 * y5
                s += wa6 * y6
                t += wb6 * y6
                s += wa7 * y7
                t += wb7 * y7
                a[j] = s
                b[j] = t
        for k in range(K8, K):
            wa0 = ra[k]
            wb0 = rb[k]
            x0 = src[offs[k] : offs[k] + n]
            for j in range(n):
                y0 = x0[j]
                a[j] += wa0 * y0
                b[j] += wb0 * y0
    for o in range(O2, O):  # the last row when O is odd: 1 row × 8 taps
        a = acc[o, :n]
        ra = wm[o]
        for j in range(n):
            a[j] = 0
        for k in range(0, K8, 8):
            wa0, wa1, wa2, wa3 = ra[k], ra[k + 1], ra[k + 2], ra[k + 3]
            wa4, wa5, wa6, wa7 = ra[k + 4], ra[k + 5], ra[k + 6], ra[k + 7]
            x0 = src[offs[k] : offs[k] + n]
            x1 = src[offs[k + 1] : offs[k + 1] + n]
            x2 = src[offs[k + 2] : offs[k + 2] + n]
            x3 = src[offs[k + 3] : offs[k + 3] + n]
            x4 = src[offs[k + 4] : offs[k + 4] + n]
            x5 = src[offs[k + 5] : offs[k + 5] + n]
            x6 = src[offs[k + 6] : offs[k + 6] + n]
            x7 = src[offs[k + 7] : offs[k + 7] + n]
            for j in range(n):
                s = a[j]
                s += wa0 * x0[j]
                s += wa1 * x1[j]
                s += wa2 * x2[j]
                s += wa3 * x3[j]
                s += wa4 * x4[j]
                s += wa5 * x5[j]
                s += wa6 * x6[j]
                s += wa7 * x7[j]
                a[j] = s
        for k in range(K8, K):
            wa0 = ra[k]
            x0 = src[offs[k] : offs[k] + n]
            for j in range(n):
                a[j] += wa0 * x0[j]


@_jit_sum
def _dots(g, src, offs, dw, n, zero):
    """dw[o, k] += sum_{j < n} g[o, j] * src[offs[k] + j]."""
    O, K = dw.shape
    K8 = K - K % 8
    O2 = O - O % 2
    for o in range(0, O2, 2):
        ga = g[o, :n]
        gb = g[o + 1, :n]
        da = dw[o]
        db = dw[o + 1]
        for k in range(0, K8, 8):
            x0 = src[offs[k] : offs[k] + n]
            x1 = src[offs[k + 1] : offs[k + 1] + n]
            x2 = src[offs[k + 2] : offs[k + 2] + n]
            x3 = src[offs[k + 3] : offs[k + 3] + n]
            x4 = src[offs[k + 4] : offs[k + 4] + n]
            x5 = src[offs[k + 5] : offs[k + 5] + n]
            x6 = src[offs[k + 6] : offs[k + 6] + n]
            x7 = src[offs[k + 7] : offs[k + 7] + n]
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
            t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = zero
            for j in range(n):
                u = ga[j]
                v = gb[j]
                y = x0[j]
                s0 += u * y
                t0 += v * y
                y = x1[j]
                s1 += u * y
                t1 += v * y
                y = x2[j]
                s2 += u * y
                t2 += v * y
                y = x3[j]
                s3 += u * y
                t3 += v * y
                y = x4[j]
                s4 += u * y
                t4 += v * y
                y = x5[j]
                s5 += u * y
                t5 += v * y
                y = x6[j]
                s6 += u * y
                t6 += v * y
                y = x7[j]
                s7 += u * y
                t7 += v * y
            da[k] += s0
            da[k + 1] += s1
            da[k + 2] += s2
            da[k + 3] += s3
            da[k + 4] += s4
            da[k + 5] += s5
            da[k + 6] += s6
            da[k + 7] += s7
            db[k] += t0
            db[k + 1] += t1
            db[k + 2] += t2
            db[k + 3] += t3
            db[k + 4] += t4
            db[k + 5] += t5
            db[k + 6] += t6
            db[k + 7] += t7
        for k in range(K8, K):
            x0 = src[offs[k] : offs[k] + n]
            s0 = t0 = zero
            for j in range(n):
                y = x0[j]
                s0 += ga[j] * y
                t0 += gb[j] * y
            da[k] += s0
            db[k] += t0
    for o in range(O2, O):
        ga = g[o, :n]
        for k in range(K):
            x0 = src[offs[k] : offs[k] + n]
            s0 = zero
            for j in range(n):
                s0 += ga[j] * x0[j]
            dw[o, k] += s0


# Staging and unstaging copy rows between flat arrays. Indices are non-negative by construction;
# uint64 indices tell Numba so, which drops its negative-index fix-up and lets short row copies
# compile to plain vector moves (4x faster than 4-d indexing here).


@_jit
def _stage(src, n0, nb, buf, row, S, rstep, cstep, base):
    """Copy images n0..n0+nb of src (N, R, Hs, Ws) into the tile buf (R rows of `row` elements,
    image t at t*S): src[n0 + t, r, i, j] -> buf[r*row + t*S + base + i*rstep + j*cstep]."""
    R, Hs, Ws = src.shape[1], src.shape[2], src.shape[3]
    sf = src.reshape(-1)
    for t in range(nb):
        for r in range(R):
            s0 = ((n0 + t) * R + r) * Hs * Ws
            d0 = r * row + t * S + base
            for _i in range(Hs):
                if cstep == 1:
                    for j in range(Ws):
                        buf[uint64(d0 + j)] = sf[uint64(s0 + j)]
                else:
                    for j in range(Ws):
                        buf[uint64(d0 + j * cstep)] = sf[uint64(s0 + j)]
                s0 += Ws
                d0 += rstep


@_jit
def _unstage(acc, n0, nb, out, S, rstep, cstep):
    """out[n0 + t, r, i, j] = acc[r, t*S + i*rstep + j*cstep] (the transpose of _stage)."""
    R, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    af = acc.reshape(-1)
    of = out.reshape(-1)
    L = acc.shape[1]
    for t in range(nb):
        for r in range(R):
            s0 = r * L + t * S
            d0 = ((n0 + t) * R + r) * OH * OW
            for _i in range(OH):
                if cstep == 1:
                    for j in range(OW):
                        of[uint64(d0 + j)] = af[uint64(s0 + j)]
                else:
                    for j in range(OW):
                        of[uint64(d0 + j)] = af[uint64(s0 + j * cstep)]
                s0 += rstep
                d0 += OW


@_jit
def _tap_offsets(R, row, taps):
    """offs[(r, kh, kw)] = r*row + kh*W + kw + base for taps = (KH, KW, W, base), in the order
    of the weight matrix's columns."""
    KH, KW, W, base = taps
    offs = np.empty(R * KH * KW, np.int64)
    for r in range(R):
        for kh in range(KH):
            for kw in range(KW):
                offs[(r * KH + kh) * KW + kw] = r * row + kh * W + kw + base
    return offs


@_jit
def _conv_taps_k(src, wm, out, B, S, row, taps, stage, span, unstage, lo, hi, chunk):
    """Images [lo, hi) of conv2d or conv2d_input_grad, B per tile: stage src, run the taps,
    unstage into out. The tile has a row of `row` >= B*S elements per channel of src;
    stage = (rstep, cstep, base) and unstage = (rstep, cstep) place an image in it; span is
    the length of one image's outputs there."""
    R = src.shape[1]
    offs = _tap_offsets(R, row, taps)
    buf = np.zeros(R * row, src.dtype)
    acc = np.empty((wm.shape[0], B * S), src.dtype)
    for n0 in range(lo, hi, B):
        nb = min(B, hi - n0)
        _stage(src, n0, nb, buf, row, S, stage[0], stage[1], stage[2])
        _taps(buf, offs, wm, acc, (nb - 1) * S + span)
        _unstage(acc, n0, nb, out, S, unstage[0], unstage[1])


@_jit
def _conv_wgrad_k(x, g, parts, B, S, taps, xstage, gstage, span, lo, hi, chunk):
    """Adds images [lo, hi)'s weight gradient to parts[chunk] (O, C*KH*KW)."""
    C, O = x.shape[1], g.shape[1]
    offs = _tap_offsets(C, B * S, taps)
    buf = np.zeros(C * B * S, x.dtype)
    gbuf = np.zeros((O, B * S), x.dtype)
    gb = gbuf.reshape(-1)
    zero = np.zeros(1, x.dtype)[0]
    for n0 in range(lo, hi, B):
        nb = min(B, hi - n0)
        _stage(x, n0, nb, buf, B * S, S, xstage[0], xstage[1], xstage[2])
        _stage(g, n0, nb, gb, B * S, S, gstage[0], gstage[1], gstage[2])
        _dots(gbuf, buf, offs, parts[chunk], (nb - 1) * S + span, zero)


def _tile(n: int, nch: int, S: int) -> int:
    """Images per tile: ~_TILE elements per row, at most one chunk's worth."""
    return max(1, min(-(-n // nch), _TILE // S))


def _conv_geometry(hw, khw, stride, padding):
    """(stride, padding, output size) normalized, or None where the reference decides."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    if min(sh, sw) <= 0 or min(ph, pw) < 0 or min(hw) < 0 or min(khw) <= 0:
        return None
    OH = (hw[0] + 2 * ph - khw[0]) // sh + 1
    OW = (hw[1] + 2 * pw - khw[1]) // sw + 1
    return ((sh, sw), (ph, pw), (OH, OW)) if OH > 0 and OW > 0 else None


def conv2d(x, w, *, stride, padding):
    ok = _float_arrays(x, w) and x.ndim == 4 and w.ndim == 4 and x.shape[1] == w.shape[1]
    args = _conv_geometry(x.shape[2:], w.shape[2:], stride, padding) if ok else None
    if args is None:
        return _ref("conv2d")(x, w, stride=stride, padding=padding)
    (sh, sw), (ph, pw), (OH, OW) = args
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    out = _empty((N, O, OH, OW), x.dtype)
    if out.size == 0 or C == 0:
        out[...] = 0
        return out
    nch = _nchunks(N, out.size * C * KH * KW, _PAR_MIN_MACS)
    Wp = W + 2 * pw
    S = (H + 2 * ph) * Wp
    B = _tile(N, nch, S)
    span = (OH - 1) * sh * Wp + (OW - 1) * sw + 1
    place = ((KH, KW, Wp, 0), (Wp, 1, ph * Wp + pw), span, (sh * Wp, sw))
    wm = _c(w).reshape(O, -1)
    runtime.launch(_conv_taps_k, nch, N, _c(x), wm, out, B, S, B * S, *place)
    return out


def conv2d_input_grad(g, w, *, stride, padding, in_hw):
    # dx is the correlation of g, spread to its positions in the padded input, with the flipped
    # kernel: in a plane of the padded input's size, g[n, o, i, j] is staged at
    # (i*sh + KH-1, j*sw + KW-1), and input position (y, x) reads the plane at (y + kh, x + kw).
    # Reads past a row's end land in the next row's first KW-1 columns, reads past the last row
    # in the next image's first KH-1 rows, and both hold zeros, so the planes need no margins.
    H, W = _pair(in_hw)
    ok = _float_arrays(g, w) and g.ndim == 4 and w.ndim == 4 and g.shape[1] == w.shape[0]
    args = _conv_geometry((H, W), w.shape[2:], stride, padding) if ok else None
    if args is None or args[2] != g.shape[2:]:
        return _ref("conv2d_input_grad")(g, w, stride=stride, padding=padding, in_hw=in_hw)
    (sh, sw), (ph, pw), _ = args
    N, O = g.shape[:2]
    _, C, KH, KW = w.shape
    dx = _empty((N, C, H, W), g.dtype)
    if dx.size == 0 or O == 0:
        dx[...] = 0
        return dx
    nch = _nchunks(N, g.size * C * KH * KW, _PAR_MIN_MACS)
    Wp = W + 2 * pw
    S = (H + 2 * ph) * Wp
    B = _tile(N, nch, S)
    row = B * S + KH * Wp  # the last image reads KH-1 rows (and KW-1 columns) past its plane
    wm = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(C, -1)
    place = ((KH, KW, Wp, ph * Wp + pw), (sh * Wp, sw, (KH - 1) * Wp + KW - 1))
    span = (H - 1) * Wp + W
    runtime.launch(_conv_taps_k, nch, N, _c(g), wm, dx, B, S, row, *place, span, (Wp, 1))
    return dx


def conv2d_weight_grad(x, g, *, stride, padding, kernel_hw):
    KH, KW = _pair(kernel_hw)
    ok = _float_arrays(x, g) and x.ndim == 4 and g.ndim == 4 and g.shape[0] == x.shape[0]
    args = _conv_geometry(x.shape[2:], (KH, KW), stride, padding) if ok else None
    if args is None or args[2] != g.shape[2:]:
        return _ref("conv2d_weight_grad")(x, g, stride=stride, padding=padding, kernel_hw=kernel_hw)
    (sh, sw), (ph, pw), (OH, OW) = args
    N, C, H, W = x.shape
    O = g.shape[1]
    nch = _nchunks(N, g.size * C * KH * KW, _PAR_MIN_MACS)
    parts = np.zeros((nch, O, C * KH * KW), x.dtype)
    if N and O and C:
        Wp = W + 2 * pw
        S = (H + 2 * ph) * Wp
        B = _tile(N, nch, S)
        stage = ((Wp, 1, ph * Wp + pw), (sh * Wp, sw, 0))
        span = (OH - 1) * sh * Wp + (OW - 1) * sw + 1
        taps = (KH, KW, Wp, 0)
        runtime.launch(_conv_wgrad_k, nch, N, _c(x), _c(g), parts, B, S, taps, *stage, span)
    return (parts[0] if nch == 1 else parts.sum(axis=0)).reshape(O, C, KH, KW)


# =============================================================================================
# pooling
# =============================================================================================

# Each kernel runs over the planes (n, c) of images [lo, hi), reading windows through flat
# indices; the 2×2 stride-2 case (by far the most common) gets straight-line code.
#
# Max-pool gradients route to the first maximum of each window, where a NaN counts as the
# maximum (np.argmax's rule). Tracking that rule per element costs data-dependent branches
# (8x slower on random data), so the kernels first check their chunk for NaNs with one
# vectorized pass and use the plain `v > m` comparison when there are none.


@_jit_sum
def _all_finite(xf, lo, hi):
    """No NaN or infinity in xf[lo:hi]: x * 0 is 0 for every finite x and NaN otherwise."""
    if hi <= lo:
        return True
    s = xf[uint64(lo)] * 0
    for q in range(lo + 1, hi):
        s += xf[uint64(q)] * 0
    return s == s


@_jit
def _maxpool_k(x, out, KH, KW, sh, sw, lo, hi, chunk):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = out.shape[2], out.shape[3]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    quad = KH == 2 and KW == 2 and sh == 2 and sw == 2
    for p in range(lo * C, hi * C):
        for i in range(OH):
            r = p * H * W + i * sh * W
            d = (p * OH + i) * OW
            if quad:
                for j in range(OW):
                    m = xf[uint64(r + 2 * j)]
                    v = xf[uint64(r + 2 * j + 1)]
                    if v > m or v != v:  # NaN propagates, like np.max
                        m = v
                    v = xf[uint64(r + W + 2 * j)]
                    if v > m or v != v:
                        m = v
                    v = xf[uint64(r + W + 2 * j + 1)]
                    if v > m or v != v:
                        m = v
                    of[uint64(d + j)] = m
            else:
                for j in range(OW):
                    base = r + j * sw
                    m = xf[uint64(base)]
                    for a in range(KH):
                        for b in range(KW):
                            v = xf[uint64(base + a * W + b)]
                            if v > m or v != v:
                                m = v
                    of[uint64(d + j)] = m


@_jit
def _argmax_window(xf, base, W, KH, KW, exact):
    """Flat index of the first maximum of the window at base (NaN-aware when exact)."""
    best = base
    m = xf[uint64(base)]
    for a in range(KH):
        for b in range(KW):
            q = base + a * W + b
            v = xf[uint64(q)]
            if v > m or (exact and v != v and m == m):
                m = v
                best = q
    return best


@_jit
def _argmax_quad(xf, r, W):
    """Flat index of the first maximum of the NaN-free 2×2 window at r (branch-free code)."""
    best = r
    m = xf[uint64(r)]
    v = xf[uint64(r + 1)]
    if v > m:
        m = v
        best = r + 1
    v = xf[uint64(r + W)]
    if v > m:
        m = v
        best = r + W
    v = xf[uint64(r + W + 1)]
    if v > m:
        best = r + W + 1
    return best


@_jit
def _maxpool_grad_k(x, g, dx, KH, KW, sh, sw, lo, hi, chunk):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = g.shape[2], g.shape[3]
    xf = x.reshape(-1)
    gf = g.reshape(-1)
    df = dx.reshape(-1)
    exact = not _all_finite(xf, lo * C * H * W, hi * C * H * W)
    quad = KH == 2 and KW == 2 and sh == 2 and sw == 2 and not exact
    for p in range(lo * C, hi * C):
        for q in range(p * H * W, (p + 1) * H * W):
            df[uint64(q)] = 0
        for i in range(OH):
            r = p * H * W + i * sh * W
            d = (p * OH + i) * OW
            if quad:
                for j in range(OW):
                    df[uint64(_argmax_quad(xf, r + 2 * j, W))] = gf[uint64(d + j)]
            else:
                for j in range(OW):
                    q = _argmax_window(xf, r + j * sw, W, KH, KW, exact)
                    df[uint64(q)] += gf[uint64(d + j)]


@_jit
def _maxpool_select_k(x, h, out, KH, KW, sh, sw, lo, hi, chunk):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = out.shape[2], out.shape[3]
    xf = x.reshape(-1)
    hf = h.reshape(-1)
    of = out.reshape(-1)
    exact = not _all_finite(xf, lo * C * H * W, hi * C * H * W)
    quad = KH == 2 and KW == 2 and sh == 2 and sw == 2 and not exact
    for p in range(lo * C, hi * C):
        for i in range(OH):
            r = p * H * W + i * sh * W
            d = (p * OH + i) * OW
            if quad:
                for j in range(OW):
                    of[uint64(d + j)] = hf[uint64(_argmax_quad(xf, r + 2 * j, W))]
            else:
                for j in range(OW):
                    q = _argmax_window(xf, r + j * sw, W, KH, KW, exact)
                    of[uint64(d + j)] = hf[uint64(q)]


@_jit
def _avgpool_k(x, out, KH, KW, sh, sw, cnt, lo, hi, chunk):
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = out.shape[2], out.shape[3]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for p in range(lo * C, hi * C):
        for i in range(OH):
            r = p * H * W + i * sh * W
            d = (p * OH + i) * OW
            for j in range(OW):
                base = r + j * sw
                s = xf[uint64(base)]
                for b in range(1, KW):
                    s += xf[uint64(base + b)]
                for a in range(1, KH):
                    for b in range(KW):
                        s += xf[uint64(base + a * W + b)]
                of[uint64(d + j)] = s / cnt


@_jit
def _avgpool_grad_k(g, dx, KH, KW, sh, sw, cnt, lo, hi, chunk):
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    OH, OW = g.shape[2], g.shape[3]
    gf = g.reshape(-1)
    df = dx.reshape(-1)
    for q in range(lo * C * H * W, hi * C * H * W):
        df[uint64(q)] = 0
    for p in range(lo * C, hi * C):
        # same order as the reference: window offset (a, b) outermost
        for a in range(KH):
            for b in range(KW):
                for i in range(OH):
                    r = p * H * W + (i * sh + a) * W + b
                    d = (p * OH + i) * OW
                    for j in range(OW):
                        df[uint64(r + j * sw)] += gf[uint64(d + j)] / cnt


def _pool_geometry(hw, kernel, stride):
    """(KH, KW, sh, sw, OH, OW) for windows over an image of size hw, or None if they do not
    fit."""
    KH, KW = _pair(kernel)
    sh, sw = _pair(stride)
    if min(KH, KW, sh, sw) <= 0:
        return None
    OH = (hw[0] - KH) // sh + 1
    OW = (hw[1] - KW) // sw + 1
    if OH <= 0 or OW <= 0:
        return None
    return KH, KW, sh, sw, OH, OW


def _pool_launch(kernel, x, *args, weight: int = 1) -> None:
    nch = _nchunks(x.shape[0], x.size * weight, _PAR_MIN_ELEMS)
    runtime.launch(kernel, nch, x.shape[0], *args)


def _image(x) -> bool:
    return _float_arrays(x) and x.ndim == 4


def max_pool2d(x, *, kernel, stride):
    geo = _pool_geometry(x.shape[2:], kernel, stride) if _image(x) else None
    if geo is None:
        return _ref("max_pool2d")(x, kernel=kernel, stride=stride)
    KH, KW, sh, sw, OH, OW = geo
    out = _empty(x.shape[:2] + (OH, OW), x.dtype)
    _pool_launch(_maxpool_k, x, _c(x), out, KH, KW, sh, sw)
    return out


def max_pool2d_grad(x, g, *, kernel, stride):
    geo = _pool_geometry(x.shape[2:], kernel, stride) if _image(x) else None
    if geo is None or not _float_arrays(x, g) or g.shape != x.shape[:2] + geo[4:]:
        return _ref("max_pool2d_grad")(x, g, kernel=kernel, stride=stride)
    KH, KW, sh, sw = geo[:4]
    dx = _empty(x.shape, x.dtype)
    _pool_launch(_maxpool_grad_k, x, _c(x), _c(g), dx, KH, KW, sh, sw, weight=2)
    return dx


def max_pool2d_select(x, h, *, kernel, stride):
    geo = _pool_geometry(x.shape[2:], kernel, stride) if _image(x) else None
    if geo is None or not _float_arrays(x, h) or h.shape != x.shape:
        return _ref("max_pool2d_select")(x, h, kernel=kernel, stride=stride)
    KH, KW, sh, sw, OH, OW = geo
    out = _empty(x.shape[:2] + (OH, OW), x.dtype)
    _pool_launch(_maxpool_select_k, x, _c(x), _c(h), out, KH, KW, sh, sw)
    return out


def avg_pool2d(x, *, kernel, stride):
    geo = _pool_geometry(x.shape[2:], kernel, stride) if _image(x) else None
    if geo is None:
        return _ref("avg_pool2d")(x, kernel=kernel, stride=stride)
    KH, KW, sh, sw, OH, OW = geo
    out = _empty(x.shape[:2] + (OH, OW), x.dtype)
    _pool_launch(_avgpool_k, x, _c(x), out, KH, KW, sh, sw, x.dtype.type(KH * KW))
    return out


def avg_pool2d_grad(g, *, kernel, stride, in_hw):
    H, W = _pair(in_hw)
    geo = _pool_geometry((H, W), kernel, stride) if _image(g) else None
    if geo is None or g.shape[2:] != geo[4:]:
        return _ref("avg_pool2d_grad")(g, kernel=kernel, stride=stride, in_hw=in_hw)
    KH, KW, sh, sw = geo[:4]
    dx = _empty(g.shape[:2] + (H, W), g.dtype)
    _pool_launch(_avgpool_grad_k, dx, _c(g), dx, KH, KW, sh, sw, g.dtype.type(KH * KW), weight=2)
    return dx


# =============================================================================================
# gather / scatter_add
#
# x is viewed as (P, M, Q): the axes before `axis`, the k indexed axes merged, the axes after.
# The k index arrays, broadcast together into idx[k, B] (int64), give one linear index into M
# per position; negative indices wrap like NumPy's, and the kernel returns the position of the
# first out-of-range index (checked in one pass before any data moves) or -1. The Python side
# is kept lean: on the loss's 64-element gather the wrapper, not the kernel, is most of the time.
# =============================================================================================


@_jit
def _linear_index(idx, dims, lin):
    k, B = idx.shape
    if k == 1:
        d = dims[0]
        for b in range(B):
            v = idx[0, b]
            if v < 0:
                v += d
            if v < 0 or v >= d:
                return b
            lin[uint64(b)] = v
        return -1
    for b in range(B):
        s = 0
        for j in range(k):
            v = idx[j, b]
            d = dims[j]
            if v < 0:
                v += d
            if v < 0 or v >= d:
                return j * B + b
            s = s * d + v
        lin[uint64(b)] = s
    return -1


@_jit
def _gather_k(x3, idx, dims, out3):
    P, M, Q = x3.shape
    B = out3.shape[1]
    lin = np.empty(B, np.int64)
    bad = _linear_index(idx, dims, lin)
    if bad >= 0:
        return bad
    xf = x3.reshape(-1)
    of = out3.reshape(-1)
    for p in range(P):
        if Q == 1:
            for b in range(B):
                of[uint64(p * B + b)] = xf[uint64(p * M + lin[uint64(b)])]
            continue
        for b in range(B):
            src = (p * M + lin[uint64(b)]) * Q
            dst = (p * B + b) * Q
            for q in range(Q):
                of[uint64(dst + q)] = xf[uint64(src + q)]
    return -1


@_jit
def _scatter_k(u3, idx, dims, out3):
    P, B, Q = u3.shape
    M = out3.shape[1]
    lin = np.empty(B, np.int64)
    bad = _linear_index(idx, dims, lin)
    if bad >= 0:
        return bad
    uf = u3.reshape(-1)
    of = out3.reshape(-1)
    for p in range(P):
        if Q == 1:
            for b in range(B):
                of[uint64(p * M + lin[uint64(b)])] += uf[uint64(p * B + b)]
            continue
        for b in range(B):
            src = (p * B + b) * Q
            dst = (p * M + lin[uint64(b)]) * Q
            for q in range(Q):
                of[uint64(dst + q)] += uf[uint64(src + q)]
    return -1


_I64 = np.dtype(np.int64)
_I64_MAX = np.iinfo(np.int64).max


def _index_arrays(idx):
    """(idx[k, B] int64, broadcast shape), or None for indices the kernels do not take
    (non-integer, uint64 beyond int64, shapes that do not broadcast)."""
    arrs = [i if isinstance(i, np.ndarray) else np.asarray(i) for i in idx]
    shape = arrs[0].shape
    if len(arrs) == 1 and arrs[0].dtype == _I64 and arrs[0].flags.c_contiguous:
        return arrs[0].reshape(1, -1), shape  # the common case: no copy
    for a in arrs:
        if a.dtype.kind not in "iu" or (
            a.dtype.kind == "u" and a.itemsize == 8 and a.size and a.max() > _I64_MAX
        ):
            return None
    if any(a.shape != shape for a in arrs):
        try:
            shape = np.broadcast_shapes(*(a.shape for a in arrs))
        except ValueError:
            return None  # the reference raises NumPy's own error
    out = np.empty((len(arrs), math.prod(shape)), np.int64)
    for j, a in enumerate(arrs):
        out[j] = a.reshape(-1) if a.shape == shape else np.broadcast_to(a, shape).reshape(-1)
    return out, shape


def _raise_index(idx, bad, dims, axis):
    j, b = divmod(int(bad), idx.shape[1])
    raise IndexError(
        f"index {int(idx[j, b])} is out of bounds for axis {axis + j} with size {dims[j]}"
    )


def gather(x, *idx, axis):
    k = len(idx)
    if not (_float_arrays(x) and 0 < k <= x.ndim - axis and axis >= 0):
        return _ref("gather")(x, *idx, axis=axis)
    got = _index_arrays(idx)
    if got is None:
        return _ref("gather")(x, *idx, axis=axis)
    flat, bshape = got
    dims = x.shape[axis : axis + k]
    pre, post = x.shape[:axis], x.shape[axis + k :]
    out = _empty(pre + bshape + post, x.dtype)
    P, Q = math.prod(pre), math.prod(post)
    x3 = _c(x).reshape(P, math.prod(dims), Q)
    bad = _gather_k(x3, flat, np.array(dims, np.int64), out.reshape(P, flat.shape[1], Q))
    if bad >= 0:
        _raise_index(flat, bad, dims, axis)
    return out


def scatter_add(u, *idx, axis, shape):
    k = len(idx)
    shape = tuple(shape)
    if not (_float_arrays(u) and 0 < k <= len(shape) - axis and axis >= 0):
        return _ref("scatter_add")(u, *idx, axis=axis, shape=shape)
    got = _index_arrays(idx)
    pre, post = shape[:axis], shape[axis + k :]
    if got is None or u.shape != pre + got[1] + post:
        return _ref("scatter_add")(u, *idx, axis=axis, shape=shape)
    flat = got[0]
    dims = shape[axis : axis + k]
    P, Q = math.prod(pre), math.prod(post)
    out = _zeros(shape, u.dtype)
    bad = _scatter_k(
        _c(u).reshape(P, flat.shape[1], Q),
        flat,
        np.array(dims, np.int64),
        out.reshape(P, math.prod(dims), Q),
    )
    if bad >= 0:
        _raise_index(flat, bad, dims, axis)
    return out


# ---------------------------------------------------------------------------------------------
# running sums and products, sorting


@njit(cache=True, nogil=True)
def _cumsum_k(x3, out3):
    # rows of the scanned axis, each added to the previous one: the innermost loop runs over
    # the axes after it, contiguous, and the order of additions is NumPy's (bit-equal results)
    P, N, Q = x3.shape
    for p in range(P):
        for q in range(Q):
            out3[p, 0, q] = x3[p, 0, q]
        for j in range(1, N):
            for q in range(Q):
                out3[p, j, q] = out3[p, j - 1, q] + x3[p, j, q]


@njit(cache=True, nogil=True)
def _cumprod_k(x3, out3):
    P, N, Q = x3.shape
    for p in range(P):
        for q in range(Q):
            out3[p, 0, q] = x3[p, 0, q]
        for j in range(1, N):
            for q in range(Q):
                out3[p, j, q] = out3[p, j - 1, q] * x3[p, j, q]


@njit(cache=True, nogil=True)
def _argsort_k(x3, out3):
    # Numba's merge sort: stable, NaNs last, as np.argsort(kind="stable")
    P, N, Q = x3.shape
    row = np.empty(N, x3.dtype)
    for p in range(P):
        for q in range(Q):
            for j in range(N):
                row[j] = x3[p, j, q]
            order = np.argsort(row, kind="mergesort")
            for j in range(N):
                out3[p, j, q] = order[j]


def _scan(op: str, kernel: Callable, out_dtype=None) -> Callable:
    """The op over (before, axis, after) blocks of x, or its NumPy reference for other dtypes."""

    def run(x, *, axis):
        if not (_float_arrays(x) and 0 <= axis < x.ndim) or x.size == 0:
            return _ref(op)(x, axis=axis)
        P, N, Q = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1 :])
        out = _empty(x.shape, out_dtype or x.dtype)
        kernel(_c(x).reshape(P, N, Q), out.reshape(P, N, Q))
        return out

    run.__name__ = op
    return run


cumsum = _scan("cumsum", _cumsum_k)
cumprod = _scan("cumprod", _cumprod_k)
argsort = _scan("argsort", _argsort_k, np.int64)


KERNELS: dict[str, Callable] = {
    "conv2d": conv2d,
    "conv2d_input_grad": conv2d_input_grad,
    "conv2d_weight_grad": conv2d_weight_grad,
    "max_pool2d": max_pool2d,
    "max_pool2d_grad": max_pool2d_grad,
    "max_pool2d_select": max_pool2d_select,
    "avg_pool2d": avg_pool2d,
    "avg_pool2d_grad": avg_pool2d_grad,
    "gather": gather,
    "scatter_add": scatter_add,
    "cumsum": cumsum,
    "cumprod": cumprod,
    "argsort": argsort,
}
