"""NumPy functions users reach for beyond the core set (differences, padding modes, nan-aware
reductions, quantiles, statistics, convolution, interpolation, products, grids, einsum with
'...' and repeated indices, and np.linalg's SVD family): values against NumPy (interpreted and
compiled), gradients against finite differences in reverse and forward mode, and clear errors
naming the user's line for bad input and for functions whose result shape depends on values."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from conftest import assert_same_leaves, marker_line

import graphc

HERE = os.path.basename(__file__)
R = np.random.default_rng(11)


def randn(*shape, dtype=np.float64):
    return R.standard_normal(shape).astype(dtype)


def line_of(marker: str) -> int:
    return marker_line(__file__, marker)


assert_same = assert_same_leaves


def _tol(args):
    dts = {np.asarray(a).dtype for a in args}
    return 3e-6 if np.dtype(np.float32) in dts else 1e-10


A34 = randn(3, 4)
A43 = randn(4, 3)
B234 = randn(2, 3, 4)
S3 = randn(3, 3)
S233 = randn(2, 3, 3)
V5 = randn(5)
W3 = randn(3)
NANS = np.array([[1.0, np.nan, 3.0, -2.0], [np.nan, np.nan, np.nan, np.nan], [0.5, 2.0, -1.0, 4.0]])
I34 = np.arange(12, dtype=np.int32).reshape(3, 4)

VALUE_CASES = [
    # einsum: repeated indices (diagonals, traces) and '...'
    ("einsum-trace", lambda a: np.einsum("ii->", a), [S3]),
    ("einsum-trace-implicit", lambda a: np.einsum("ii", a), [S3]),
    ("einsum-diag", lambda a: np.einsum("ii->i", a), [S3]),
    ("einsum-batch-diag", lambda a: np.einsum("bii->bi", a), [S233]),
    ("einsum-batch-trace", lambda a: np.einsum("bii->b", a), [S233]),
    ("einsum-diag-mid", lambda a: np.einsum("ibi->bi", a), [randn(3, 2, 3)]),
    ("einsum-triple", lambda a: np.einsum("iii->i", a), [randn(3, 3, 3)]),
    ("einsum-diag-times", lambda a, b: np.einsum("ii,i->i", a, b), [S3, W3]),
    ("einsum-diag-matmul", lambda a, b: np.einsum("ii,ij->j", a, b), [S3, A34]),
    ("einsum-ellipsis-T", lambda a: np.einsum("...ij->...ji", a), [B234]),
    (
        "einsum-ellipsis-matmul",
        lambda a, b: np.einsum("...ij,...jk->...ik", a, b),
        [B234, randn(4, 2)],
    ),
    (
        "einsum-ellipsis-bcast",
        lambda a, b: np.einsum("...ij,...j->...i", a, b),
        [randn(2, 1, 3, 4), randn(5, 4)],
    ),
    ("einsum-ellipsis-implicit", lambda a: np.einsum("...ii", a), [S233]),
    ("einsum-ellipsis-sum", lambda a: np.einsum("i...->...", a), [B234]),
    ("einsum-int", lambda a: np.einsum("ii->i", a), [np.arange(9).reshape(3, 3)]),
    # differences
    ("diff", np.diff, [A34]),
    ("diff-n2-axis0", lambda a: np.diff(a, 2, axis=0), [randn(4, 3)]),
    ("diff-n0", lambda a: np.diff(a, 0), [V5]),
    ("diff-n-past-length", lambda a: np.diff(a, 7), [V5]),
    ("diff-prepend-append", lambda a: np.diff(a, prepend=0.0, append=np.ones((3, 2))), [A34]),
    ("diff-int", np.diff, [I34]),
    ("diff-bool", np.diff, [np.array([True, True, False, True])]),
    ("diff-f32", lambda a: np.diff(a, axis=-2), [randn(3, 4, dtype=np.float32)]),
    ("ediff1d", np.ediff1d, [A34]),
    ("ediff1d-ends", lambda a: np.ediff1d(a, to_end=[9.0, 8.0], to_begin=-1.0), [V5]),
    # sinc, ptp
    ("sinc", np.sinc, [np.array([0.0, 1e-9, -0.3, 0.5, 1.0, 2.5, -7.0])]),
    ("sinc-f32", np.sinc, [np.array([0.0, 1e-4, 0.25, -3.5], dtype=np.float32)]),
    ("sinc-int", np.sinc, [np.arange(-2, 3)]),
    ("ptp", np.ptp, [A34]),
    ("ptp-axis", lambda a: np.ptp(a, axis=1, keepdims=True), [B234]),
    ("ptp-int", lambda a: np.ptp(a, 0), [I34]),
    # pad modes
    *[
        (f"pad-{mode}-{pw}", lambda a, m=mode, p=pw: np.pad(a, p, mode=m), [A34])
        for mode in (
            "edge",
            "reflect",
            "symmetric",
            "wrap",
            "maximum",
            "minimum",
            "mean",
            "median",
            "linear_ramp",
        )
        for pw in (1, ((2, 0), (1, 3)))
    ],
    ("pad-reflect-wide", lambda a: np.pad(a, 9, mode="reflect"), [W3]),
    ("pad-symmetric-wide", lambda a: np.pad(a, (7, 5), mode="symmetric"), [W3]),
    ("pad-wrap-wide", lambda a: np.pad(a, (8, 4), mode="wrap"), [W3]),
    ("pad-reflect-odd", lambda a: np.pad(a, 2, mode="reflect", reflect_type="odd"), [A34]),
    ("pad-symmetric-odd", lambda a: np.pad(a, (3, 1), mode="symmetric", reflect_type="odd"), [V5]),
    ("pad-edge-int", lambda a: np.pad(a, 2, mode="edge"), [I34]),
    ("pad-mean-int", lambda a: np.pad(a, 1, mode="mean"), [I34]),
    ("pad-stat-length", lambda a: np.pad(a, 2, mode="maximum", stat_length=2), [A34]),
    (
        "pad-stat-length-pairs",
        lambda a: np.pad(a, (1, 2), mode="mean", stat_length=((1, 2), (3, 1))),
        [A34],
    ),
    (
        "pad-ramp-ends",
        lambda a: np.pad(a, (3, 2), mode="linear_ramp", end_values=(5.0, -1.0)),
        [V5],
    ),
    ("pad-constant-pairs", lambda a: np.pad(a, 1, constant_values=((1.0, 2.0), (3.0, 4.0))), [A34]),
    ("pad-constant-scalar", lambda a: np.pad(a, (1, 2), constant_values=7.0), [A34]),
    ("pad-empty-shape", lambda a: np.pad(a, 1, mode="empty").shape, [A34]),
    # nan-aware reductions
    ("nansum", np.nansum, [NANS]),
    ("nansum-axis", lambda a: np.nansum(a, axis=1), [NANS]),
    ("nanprod-axis", lambda a: np.nanprod(a, axis=0, keepdims=True), [NANS]),
    ("nanmax-axis", lambda a: np.nanmax(a, axis=1), [NANS]),
    ("nanmin-axis0", lambda a: np.nanmin(a, axis=0), [NANS]),
    ("nanmax-int", np.nanmax, [I34]),
    ("nanmean-axis", lambda a: np.nanmean(a, axis=1), [NANS]),
    ("nanmean-all", np.nanmean, [NANS]),
    ("nanvar", lambda a: np.nanvar(a, axis=1), [NANS]),
    ("nanstd-ddof", lambda a: np.nanstd(a, axis=0, ddof=1), [NANS]),
    ("nanargmax", lambda a: np.nanargmax(a, axis=1), [NANS[[0, 2]]]),
    ("nanargmin-flat", np.nanargmin, [NANS]),
    ("nancumsum", lambda a: np.nancumsum(a, axis=1), [NANS]),
    ("nancumprod", np.nancumprod, [NANS]),
    ("nanmedian", lambda a: np.nanmedian(a, axis=1), [NANS]),
    ("nanquantile", lambda a: np.nanquantile(a, [0.1, 0.75], axis=1), [NANS]),
    ("nanpercentile", lambda a: np.nanpercentile(a, 40, axis=0), [NANS[[0, 2]]]),
    # quantiles
    ("median", np.median, [A34]),
    ("median-axis", lambda a: np.median(a, axis=0), [A34]),
    ("median-even", lambda a: np.median(a, axis=1, keepdims=True), [A34]),
    ("median-axes", lambda a: np.median(a, axis=(0, 2)), [B234]),
    ("median-int", np.median, [I34]),
    ("median-nan", lambda a: np.median(a, axis=1), [NANS]),
    ("quantile-vec", lambda a: np.quantile(a, [0.0, 0.3, 0.5, 1.0], axis=1), [A34]),
    ("quantile-2d-q", lambda a: np.quantile(a, [[0.2, 0.9]], axis=0, keepdims=True), [A34]),
    *[
        (f"quantile-{m}", lambda a, m=m: np.quantile(a, [0.1, 0.45, 0.5, 0.8], method=m), [V5])
        for m in ("linear", "lower", "higher", "midpoint", "nearest")
    ],
    ("percentile", lambda a: np.percentile(a, [10, 50, 99], axis=-1), [B234]),
    ("percentile-f32", lambda a: np.percentile(a, 25), [randn(7, dtype=np.float32)]),
    # statistics
    ("var-ddof", lambda a: np.var(a, ddof=1, axis=0), [A34]),
    ("std-ddof", lambda a: np.std(a, ddof=2), [A34]),
    ("cov", np.cov, [A34]),
    ("cov-cols-bias", lambda a: np.cov(a, rowvar=False, bias=True), [A34]),
    ("cov-xy", lambda a, b: np.cov(a, b), [V5, randn(5)]),
    ("cov-ddof", lambda a: np.cov(a, ddof=0), [A34]),
    ("cov-1d", np.cov, [V5]),
    ("corrcoef", np.corrcoef, [A34]),
    ("corrcoef-xy", lambda a, b: np.corrcoef(a, b), [V5, randn(5)]),
    # convolution, interpolation, search
    *[
        (
            f"{fn.__name__}-{mode}-{n}-{m}",
            lambda a, v, fn=fn, mode=mode: fn(a, v, mode),
            [randn(n), randn(m)],
        )
        for fn in (np.convolve, np.correlate)
        for mode in ("full", "same", "valid")
        for n, m in ((6, 3), (3, 5), (4, 4), (5, 2))
    ],
    ("convolve-int", np.convolve, [np.arange(4), np.array([1, -1])]),
    ("searchsorted", lambda a, v: np.searchsorted(a, v), [np.sort(V5), randn(3, 2)]),
    (
        "searchsorted-right",
        lambda a, v: np.searchsorted(a, v, side="right"),
        [np.array([0.0, 1.0, 1.0, 2.0]), np.array([1.0, -3.0, 2.0, 5.0])],
    ),
    ("searchsorted-sorter", lambda a, v: np.searchsorted(a, v, sorter=np.argsort(a)), [V5, W3]),
    (
        "interp",
        lambda x, xp, fp: np.interp(x, xp, fp),
        [
            np.array([-1.0, 0.0, 0.3, 1.0, 1.5, 2.7, 3.0, 4.0]),
            np.array([0.0, 1.0, 2.5, 3.0]),
            randn(4),
        ],
    ),
    (
        "interp-left-right",
        lambda x, xp, fp: np.interp(x, xp, fp, left=-9.0, right=9.0),
        [np.array([-1.0, 0.0, 3.0, 4.0, 2.0]), np.array([0.0, 1.0, 2.5, 3.0]), randn(4)],
    ),
    ("interp-2d-x", lambda x: np.interp(x, [0.0, 1.0, 2.0], [1.0, -1.0, 4.0]), [randn(3, 2)]),
    ("trapezoid", np.trapezoid, [A34]),
    ("trapezoid-x", lambda y, x: np.trapezoid(y, x, axis=0), [A43, np.array([0.0, 0.5, 2.0, 2.5])]),
    ("trapezoid-dx", lambda y: np.trapezoid(y, dx=0.3), [V5]),
    # elementwise extras
    ("nan_to_num", np.nan_to_num, [np.array([np.nan, np.inf, -np.inf, 1.5])]),
    (
        "nan_to_num-args",
        lambda a: np.nan_to_num(a, nan=-1.0, posinf=9.0, neginf=-9.0),
        [np.array([np.nan, np.inf, -np.inf, 1.5], dtype=np.float32)],
    ),
    (
        "isclose",
        lambda a, b: np.isclose(a, b),
        [
            np.array([1.0, np.inf, np.nan, 2.0, -np.inf]),
            np.array([1.0 + 1e-9, np.inf, np.nan, 2.1, np.inf]),
        ],
    ),
    (
        "isclose-equal-nan",
        lambda a, b: np.isclose(a, b, atol=0.2, equal_nan=True),
        [np.array([1.0, np.nan, 2.0]), np.array([1.1, np.nan, 2.5])],
    ),
    ("polyval", lambda p, x: np.polyval(p, x), [W3, A34]),
    ("count_nonzero", np.count_nonzero, [np.array([[0.0, 1.0], [2.0, 0.0]])]),
    ("count_nonzero-axis", lambda a: np.count_nonzero(a > 0, axis=0), [A34]),
    ("cumulative_sum", lambda a: np.cumulative_sum(a, axis=1, include_initial=True), [A34]),
    ("cumulative_prod", lambda a: np.cumulative_prod(a), [V5]),
    ("real-imag-conj", lambda a: (np.real(a), np.imag(a), np.conj(a), a.conj(), a.real), [V5]),
    ("signbit", np.signbit, [np.array([-0.0, 0.0, -1.5, 2.0, -np.inf])]),
    ("fix", np.fix, [np.array([-1.5, -0.5, 0.5, 2.7])]),
    ("float_power", lambda a: np.float_power(a, 3), [randn(4, dtype=np.float32)]),
    (
        "isposinf-isneginf",
        lambda a: (np.isposinf(a), np.isneginf(a)),
        [np.array([np.inf, -np.inf, 0.0])],
    ),
    ("select", lambda a: np.select([a > 0.5, a < -0.5], [a, -2 * a], 0.25), [V5]),
    (
        "clip-kw",
        lambda a: (a.clip(min=0.1), a.clip(max=0.2), np.clip(a, -0.3, W3.reshape(3, 1))),
        [A34],
    ),
    # shapes and stacking
    ("flipud-fliplr", lambda a: (np.flipud(a), np.fliplr(a)), [A34]),
    *[(f"rot90-{k}", lambda a, k=k: np.rot90(a, k), [A34]) for k in (-1, 0, 1, 2, 3, 5)],
    ("rot90-axes", lambda a: np.rot90(a, 1, axes=(2, 0)), [B234]),
    (
        "atleast",
        lambda a, b, c: (
            np.atleast_1d(a),
            np.atleast_2d(b),
            np.atleast_3d(b),
            np.atleast_3d(c),
            np.atleast_2d(c),
        ),
        [np.float64(2.0), V5, A34],
    ),
    ("broadcast_arrays", lambda a, b: np.broadcast_arrays(a, b), [A34, randn(1, 4)]),
    (
        "dstack-column_stack",
        lambda a, b: (np.dstack([a, a]), np.column_stack([b, b]), np.column_stack([a, a])),
        [A34, V5],
    ),
    ("append", lambda a, b: (np.append(a, b), np.append(a, a, axis=0)), [A34, V5]),
    (
        "hsplit-vsplit-dsplit",
        lambda a: (*np.hsplit(a, [1]), *np.vsplit(a, 2), *np.dsplit(a, 2), *np.hsplit(a[0, 0], 2)),
        [B234],
    ),
    ("unstack", lambda a: np.unstack(a, axis=1), [B234]),
    ("matrix_transpose", lambda a: (np.matrix_transpose(a), np.permute_dims(a, (2, 0, 1))), [B234]),
    ("diagflat", lambda a: (np.diagflat(a), np.diagflat(a, -1)), [randn(2, 2)]),
    ("vander", lambda a: (np.vander(a), np.vander(a, 2, increasing=True)), [W3]),
    # products
    ("cross-3", np.cross, [randn(4, 3), randn(3)]),
    ("cross-axis", lambda a, b: np.cross(a, b, axis=0), [randn(3, 2), randn(3, 2)]),
    ("cross-2-3", np.cross, [randn(3, 2), randn(3, 3)]),
    ("kron", np.kron, [randn(2, 3), randn(3, 2)]),
    ("kron-1d-2d", np.kron, [W3, randn(2, 2)]),
    ("vecdot", lambda a, b: np.vecdot(a, b), [A34, randn(4)]),
    ("matvec-vecmat", lambda a, b, c: (np.matvec(a, b), np.vecmat(c, a)), [B234, randn(4), W3]),
    ("outer-inner-vdot", lambda a, b: (np.outer(a, b), np.inner(a, a), np.vdot(b, b)), [V5, W3]),
    ("multi_dot", lambda a, b, c: np.linalg.multi_dot([a, b, c]), [A34, A43, W3]),
    *[
        (f"matrix_power-{n}", lambda a, n=n: np.linalg.matrix_power(a, n), [S3 + 3 * np.eye(3)])
        for n in (-2, 0, 1, 2, 5)
    ],
    ("matrix_power-batch", lambda a: np.linalg.matrix_power(a, 3), [S233]),
    # grids
    ("meshgrid-xy", lambda a, b: np.meshgrid(a, b), [V5, W3]),
    ("meshgrid-ij-3", lambda a, b, c: np.meshgrid(a, b, c, indexing="ij"), [V5, W3, randn(2)]),
    ("meshgrid-xy-3-sparse", lambda a, b, c: np.meshgrid(a, b, c, sparse=True), [V5, W3, randn(2)]),
    ("linspace", lambda a: np.linspace(a[0], a[1], 7), [V5]),
    ("linspace-noend", lambda a: np.linspace(a[0], a[1], 4, endpoint=False, retstep=True), [V5]),
    ("linspace-arrays-axis", lambda a, b: np.linspace(a, b, 5, axis=-1), [W3, randn(2, 3)]),
    ("linspace-f32", lambda a: np.linspace(a[0], 2.0, 6), [randn(2, dtype=np.float32)]),
    ("linspace-1", lambda a: np.linspace(a[0], a[1], 1), [V5]),
    ("logspace", lambda a: np.logspace(a[0], a[1], 4), [V5]),
    # linear algebra
    ("svd-thin-tall", lambda a: np.linalg.svd(a, full_matrices=False), [A43]),
    ("svd-thin-wide", lambda a: np.linalg.svd(a, full_matrices=False), [A34]),
    ("svd-full-tall", lambda a: np.linalg.svd(a), [A43]),
    ("svd-full-wide", lambda a: np.linalg.svd(a), [A34]),
    ("svd-batch", lambda a: np.linalg.svd(a), [B234]),
    ("svd-f32", lambda a: np.linalg.svd(a, full_matrices=False), [randn(3, 2, dtype=np.float32)]),
    ("svd-values", lambda a: np.linalg.svd(a, compute_uv=False), [B234]),
    ("svd-fields", lambda a: np.linalg.svd(a, full_matrices=False).S, [A43]),
    ("svdvals", np.linalg.svdvals, [A34]),
    *[
        (f"norm-{o}", lambda a, o=o: np.linalg.norm(a, o), [A34])
        for o in (2, -2, "nuc", "fro", 1, np.inf)
    ],
    ("norm-2-axes", lambda a: np.linalg.norm(a, 2, axis=(2, 0), keepdims=True), [B234]),
    ("norm-nuc-batch", lambda a: np.linalg.norm(a, "nuc", axis=(-2, -1)), [B234]),
    ("norm-vector-2", lambda a: np.linalg.norm(a, 2), [V5]),
    ("norm-int", lambda a: np.linalg.norm(a, 2), [I34]),
    (
        "matrix_norm",
        lambda a: (
            np.linalg.matrix_norm(a),
            np.linalg.matrix_norm(a, ord=2),
            np.linalg.matrix_norm(a, ord="nuc", keepdims=True),
        ),
        [B234],
    ),
    (
        "vector_norm",
        lambda a: (
            np.linalg.vector_norm(a),
            np.linalg.vector_norm(a, axis=(0, 2), ord=1),
            np.linalg.vector_norm(a, axis=1, keepdims=True, ord=np.inf),
        ),
        [B234],
    ),
    ("pinv", np.linalg.pinv, [A34]),
    ("pinv-batch-tall", np.linalg.pinv, [randn(2, 4, 3)]),
    ("pinv-rank-deficient", np.linalg.pinv, [np.outer(V5, W3)]),
    ("pinv-rcond", lambda a: np.linalg.pinv(a, rcond=0.5), [A34]),
    (
        "matrix_rank",
        lambda a, b: (np.linalg.matrix_rank(a), np.linalg.matrix_rank(b)),
        [A34, np.outer(V5, W3)],
    ),
    ("matrix_rank-batch-tol", lambda a: np.linalg.matrix_rank(a, tol=0.5), [B234]),
    ("matrix_rank-1d", lambda a: np.linalg.matrix_rank(a), [V5]),
    (
        "cond",
        lambda a: (
            np.linalg.cond(a),
            np.linalg.cond(a, -2),
            np.linalg.cond(a, "fro"),
            np.linalg.cond(a, 1),
        ),
        [S3 + 3 * np.eye(3)],
    ),
    (
        "linalg-array-api",
        lambda a, v: (
            np.linalg.outer(v, v),
            np.linalg.cross(a[..., :3], a[..., 1:]),
            np.linalg.trace(a[..., :3]),
            np.linalg.diagonal(a),
            np.linalg.matmul(a, a.mT),
            np.linalg.tensordot(a, a[0].T, axes=1),
            np.linalg.vecdot(a, a),
            np.linalg.matrix_transpose(a),
        ),
        [B234, V5],
    ),
]


SPD3 = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
VALUE_CASES += [
    ("allclose", lambda a, b: (np.allclose(a, a + 1e-9), np.allclose(a, b)), [A34, randn(3, 4)]),
    (
        "array_equal",
        lambda a: (np.array_equal(a, a), np.array_equal(a, a[:2]), np.array_equiv(a, a[0])),
        [A34],
    ),
    ("array_equal-nan", lambda a: np.array_equal(a, a, equal_nan=True), [NANS]),
    (
        "delete",
        lambda a: (np.delete(a, 1), np.delete(a, [0, 2], axis=1), np.delete(a, -1, 0)),
        [A34],
    ),
    (
        "delete-slice-mask",
        lambda a: (np.delete(a, slice(1, 3), 1), np.delete(a, [True, False, True], 0)),
        [A34],
    ),
    (
        "insert",
        lambda a: (np.insert(a, 1, 9.0), np.insert(a, [0, 2, 2, 4], [5.0, 6.0, 7.0, 8.0], axis=1)),
        [A34],
    ),
    (
        "insert-row",
        lambda a, r: (np.insert(a, 2, r, axis=0), np.insert(a, -1, [r, r], axis=0)),
        [A34, randn(4)],
    ),
    ("insert-col-scalar", lambda a: np.insert(a, 3, 0.5, axis=1), [A34]),
    (
        "rollaxis",
        lambda a: (np.rollaxis(a, 2), np.rollaxis(a, 0, 3), np.rollaxis(a, -1, 1)),
        [B234],
    ),
    (
        "geomspace",
        lambda a: (
            np.geomspace(a[0] ** 2 + 1, 100.0, 5),
            np.geomspace(-1.0, -(a[1] ** 2) - 2, 4, endpoint=False),
        ),
        [V5],
    ),
    ("gradient", np.gradient, [V5]),
    ("gradient-2d", lambda a: np.gradient(a, 0.5, axis=1), [A34]),
    (
        "gradient-coords",
        lambda a, x: np.gradient(a, x, edge_order=2),
        [V5, np.array([0.0, 0.3, 1.0, 1.2, 2.0])],
    ),
    ("gradient-all-axes", lambda a: np.gradient(a, 2.0, 0.5, edge_order=2), [A34]),
    ("gradient-int", np.gradient, [np.array([1, 4, 9, 16, 25])]),
    (
        "digitize",
        lambda x: (np.digitize(x, [-1.0, 0.0, 1.0]), np.digitize(x, [1.0, 0.0, -1.0], right=True)),
        [V5],
    ),
    ("isin", lambda a: (np.isin(a, [1, 4, 7]), np.isin(a, [2, 3], invert=True)), [I34]),
    ("choose", lambda a, b: np.choose(np.array([0, 1, 2, 1, 0]), [a, b, a * b]), [V5, randn(5)]),
    (
        "choose-clip",
        lambda a, b: np.choose(np.array([-1, 3, 1, 0, 5]), [a, b], mode="clip"),
        [V5, randn(5)],
    ),
    (
        "piecewise",
        lambda x: np.piecewise(x, [x < 0, x > 1], [lambda v: -v, lambda v: v * v, 0.5]),
        [V5],
    ),
    ("piecewise-no-otherwise", lambda x: np.piecewise(x, [x < 0], [np.sin]), [V5]),
    ("angle", lambda a: (np.angle(a), np.angle(a, deg=True)), [np.array([-1.0, 0.0, 2.0, -0.0])]),
    (
        "indices-from",
        lambda a: (
            a[np.triu_indices_from(a)],
            a[np.tril_indices_from(a, -1)],
            a[np.diag_indices_from(a)],
        ),
        [S3],
    ),
    ("resize", lambda a: (np.resize(a, (2, 7)), np.resize(a, 3)), [A34]),
    (
        "partition",
        lambda a: (np.partition(a, 2)[..., 2], np.sort(np.partition(a, 1, axis=0), axis=0)),
        [A34],
    ),
    ("argpartition", lambda a: np.take_along_axis(a, np.argpartition(a, 1), -1)[..., 1], [A34]),
    (
        "modf-divmod-ldexp",
        lambda a: (*np.modf(a), *np.divmod(a, 0.7), np.ldexp(a, np.array([1, -2, 3, 0, 4]))),
        [V5],
    ),
    (
        "polyder-polyint",
        lambda p: (np.polyder(p), np.polyder(p, 2), np.polyint(p), np.polyint(p, 2, k=[1.0, 2.0])),
        [randn(4)],
    ),
    (
        "polyadd-sub-mul",
        lambda p, q: (np.polyadd(p, q), np.polysub(p, q), np.polymul(p, q)),
        [randn(4), randn(2)],
    ),
    (
        "polyfit",
        lambda x, y: (np.polyfit(x, y, 2), np.polyfit(x, np.stack([y, 2 * y], 1), 1)),
        [np.linspace(-1, 2, 7), randn(7)],
    ),
    ("eigh", np.linalg.eigh, [randn(2, 4, 4)]),
    ("eigh-upper", lambda a: np.linalg.eigh(a, UPLO="U"), [randn(3, 3)]),
    ("eigh-fields", lambda a: np.linalg.eigh(a).eigenvalues, [randn(3, 3)]),
    ("eigvalsh", lambda a: np.linalg.eigvalsh(a.astype(np.float32)), [randn(4, 4)]),
    ("cholesky", np.linalg.cholesky, [SPD3 + np.triu(randn(3, 3), 1)]),
    (
        "cholesky-upper-batch",
        lambda a: np.linalg.cholesky(a, upper=True),
        [np.stack([SPD3, 2 * SPD3]) + np.tril(randn(3, 3), -1)],
    ),
]


VALUE_CASES += [
    ("block", lambda a, b: np.block([[a, a], [b[None, :4], b[None, 1:]]]), [A34, V5]),
    ("block-flat", lambda a: np.block([a, 2 * a]), [V5]),
    (
        "lexsort",
        lambda a, b: np.lexsort((a, b)),
        [np.array([1.0, 2, 1, 2, 1]), np.array([0.0, 0, 1, 1, 0])],
    ),
    ("lexsort-array-axis0", lambda k: np.lexsort(k, axis=0), [np.round(randn(2, 4, 3))]),
    ("unwrap", np.unwrap, [np.cumsum(randn(9) * 2)]),
    (
        "unwrap-period-axis",
        lambda p: np.unwrap(p, period=4.0, axis=0),
        [np.cumsum(randn(6, 2) * 2, 0)],
    ),
    ("tensorinv", lambda a: np.linalg.tensorinv(a, 1), [randn(6, 2, 3)]),
    ("tensorsolve", np.linalg.tensorsolve, [randn(2, 3, 6), randn(2, 3)]),
    (
        "ufunc-outer",
        lambda a, b: (
            np.add.outer(a, b),
            np.multiply.outer(a, b),
            np.maximum.outer(a, b),
            np.subtract.outer(A34, b),
            np.less.outer(a, b),
        ),
        [V5, W3],
    ),
    (
        "ufunc-accumulate-logaddexp",
        lambda a: (
            np.add.accumulate(a),
            np.multiply.accumulate(a, axis=1),
            np.logaddexp.reduce(a),
            np.logaddexp.reduce(a, axis=1),
        ),
        [A34],
    ),
]


VALUE_CASES += [
    *[
        (
            f"qr-{mode}-{'x'.join(map(str, shape))}",
            lambda a, mode=mode: np.linalg.qr(a, mode=mode),
            [randn(*shape)],
        )
        for mode in ("reduced", "complete", "r")
        for shape in ((4, 3), (3, 3), (3, 5), (2, 4, 2))
    ],
    ("qr-f32-fields", lambda a: np.linalg.qr(a).R, [randn(4, 3, dtype=np.float32)]),
]


VALUE_CASES += [
    ("tracer-attributes", lambda a: (a * a.itemsize, a * a.nbytes, a.view()), [A34]),
]


VALUE_CASES += [
    (
        "insert-one-element-list",
        lambda a: (
            np.insert(a, [1], a, axis=1),
            np.insert(a, [1], [[7.0], [8.0], [9.0]], axis=1),
            np.insert(a[0], [2], [7.0, 8.0]),
        ),
        [A34],
    ),
]


VALUE_CASES += [
    (
        "round-decimals",
        lambda a: (np.round(a, 2), np.around(a, -1), a.round(1), np.round(a * 1e3, -2)),
        [randn(3, 4) * 50],
    ),
    (
        "round-decimals-f32-int",
        lambda a, i: (np.round(a, 3), np.round(i, -1), np.round(i, 2)),
        [randn(5, dtype=np.float32), I34],
    ),
]


@pytest.mark.parametrize("fn,args", [c[1:] for c in VALUE_CASES], ids=[c[0] for c in VALUE_CASES])
def test_values_match_numpy(fn, args):
    want = fn(*args)
    got = graphc.jit(fn, backend="interpreter")(*args)
    if isinstance(want, tuple) and all(isinstance(w, (int, np.integer)) for w in want):
        assert tuple(got) == want  # a shape
        return
    assert_same(got, want, _tol(args))


def _compiled_group(x, y, m, s):
    """Many of the functions on one set of inputs, compiled together."""
    return (
        np.einsum("ii->i", m),
        np.einsum("bii->b", s),
        np.diff(x, axis=0),
        np.sinc(y),
        np.ptp(x, axis=1),
        np.pad(x, ((1, 2), (2, 1)), mode="reflect"),
        np.pad(x, 1, mode="wrap"),
        np.pad(x, 2, mode="mean"),
        np.nanmax(x, axis=0),
        np.nanmean(x),
        np.median(x, axis=1),
        np.quantile(y, [0.2, 0.7]),
        np.cov(x),
        np.corrcoef(x),
        np.convolve(y, y[:3], "same"),
        np.interp(y, np.array([-1.0, 0.0, 1.0]), np.array([2.0, -1.0, 0.5])),
        np.cross(x[:, :3], x[:, 1:]),
        np.kron(m, m[:2, :2]),
        np.linalg.svd(x, full_matrices=False),
        np.linalg.norm(x, 2),
        np.linalg.pinv(x),
        np.linalg.matrix_rank(x),
        np.linalg.matrix_power(m, 3),
        np.meshgrid(y, y[:2]),
        np.linspace(y[0], y[1], 4),
    )


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_compiled_matches_numpy(dt):
    x, y, m, s = (
        randn(3, 4, dtype=dt),
        randn(5, dtype=dt),
        randn(3, 3, dtype=dt),
        randn(2, 3, 3, dtype=dt),
    )
    want = _compiled_group(x, y, m, s)
    got = graphc.jit(_compiled_group, backend="numba")(x, y, m, s)
    flat = lambda t: [v for w in t for v in (w if isinstance(w, tuple) else (w,))]  # noqa: E731
    assert_same(flat(got), flat(want), 1e-10 if dt == np.float64 else 2e-5)


def test_linear_algebra_falls_back_visibly():
    lo = graphc.jit(lambda a, v: (np.linalg.svd(a), np.searchsorted(v, a))).lower(A34, np.sort(V5))
    ran = " ".join(lo.fallbacks)
    assert "svd" in ran and "searchsorted" in ran, lo.fallbacks


# -- gradients ---------------------------------------------------------------------------------

W4 = np.array([1.0, 2.0, 3.5, 5.0])


def _svd_losses(a):
    """Functions of U, s and Vh that do not depend on the singular vectors' signs."""
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    k = s.shape[-1]
    w = W4[:k]
    return u * w @ vh, (u * w) @ np.swapaxes(u, -1, -2), (np.swapaxes(vh, -1, -2) * w) @ vh, s


GRAD_CASES = [
    ("einsum-trace", lambda a: np.einsum("ii->", a) * np.einsum("ii->i", a), [S3]),
    ("einsum-batch-diag", lambda a, b: np.einsum("bii,bi->bi", a, b), [S233, randn(2, 3)]),
    ("einsum-ellipsis", lambda a, b: np.einsum("...ij,...j->...i", a, b), [B234, randn(4)]),
    ("diff", lambda a: np.diff(a, 2, axis=0, prepend=0.5) ** 2, [randn(4, 3)]),
    ("ediff1d", lambda a: np.ediff1d(a, to_begin=1.0) ** 2, [V5]),
    ("sinc", np.sinc, [np.array([-0.7, -1e-5, 1e-4, 0.31, 1.2, 3.7])]),
    ("ptp", lambda a: np.ptp(a, axis=1), [A34]),
    *[
        (f"pad-{m}", lambda a, m=m: np.pad(a, ((2, 1), (3, 5)), mode=m) ** 2, [A34])
        for m in (
            "edge",
            "reflect",
            "symmetric",
            "wrap",
            "maximum",
            "mean",
            "median",
            "linear_ramp",
        )
    ],
    ("pad-reflect-odd", lambda a: np.pad(a, 3, mode="reflect", reflect_type="odd") ** 2, [V5]),
    ("pad-constant-pairs", lambda a: np.pad(a, (2, 1), constant_values=((1.0, 2.0),)) ** 2, [V5]),
    ("nansum-nanmean", lambda a: (np.nansum(a * a, axis=1), np.nanmean(a, axis=0)), [NANS[[0, 2]]]),
    ("nanmax-nanmin", lambda a: (np.nanmax(a, axis=1), np.nanmin(a)), [NANS[[0, 2]]]),
    (
        "nanvar-nanstd",
        lambda a: (np.nanvar(a, axis=1), np.nanstd(a, axis=1, ddof=1)),
        [NANS[[0, 2]]],
    ),
    (
        "nanprod-nancumsum",
        lambda a: (np.nanprod(a, axis=1), np.nancumsum(a, axis=1)),
        [NANS[[0, 2]]],
    ),
    (
        "nanmedian-nanquantile",
        lambda a: (np.nanmedian(a, axis=1), np.nanquantile(a, [0.3, 0.8], axis=1)),
        [NANS[[0, 2]]],
    ),
    ("median", lambda a: np.median(a, axis=1), [A34]),
    ("quantile", lambda a: np.quantile(a, [0.15, 0.5, 0.9], axis=0), [A43]),
    ("percentile-midpoint", lambda a: np.percentile(a, [20, 60], method="midpoint"), [V5]),
    ("var-std-ddof", lambda a: (np.var(a, ddof=1, axis=0), np.std(a, ddof=1)), [A34]),
    ("cov-corrcoef", lambda a: (np.cov(a), np.corrcoef(a)), [A34]),
    ("cov-xy", lambda a, b: np.cov(a, b, rowvar=False), [A43, randn(4)]),
    *[
        (
            f"{fn.__name__}-{mode}",
            lambda a, v, fn=fn, mode=mode: fn(a, v, mode),
            [randn(6), randn(3)],
        )
        for fn in (np.convolve, np.correlate)
        for mode in ("full", "same", "valid")
    ],
    (
        "interp",
        lambda x, xp, fp: np.interp(x, xp, fp),
        [np.array([-1.0, 0.3, 1.2, 2.7, 4.0]), np.array([0.0, 1.0, 2.5, 3.0]), randn(4)],
    ),
    ("trapezoid", lambda y, x: np.trapezoid(y, x, axis=0), [A43, np.array([0.0, 0.5, 2.0, 2.5])]),
    ("polyval", lambda p, x: np.polyval(p, x), [W3, V5]),
    ("cumulative_sum", lambda a: np.cumulative_sum(a, axis=0, include_initial=True), [A34]),
    ("select-nan_to_num", lambda a: np.nan_to_num(np.select([a > 0.5], [a * a], a)), [V5]),
    ("float_power", lambda a: np.float_power(a * a + 1, 1.5), [V5]),
    ("rot90-flips", lambda a: np.rot90(a, 3) @ np.fliplr(a) + np.flipud(a).T @ a.T, [S3]),
    (
        "stacking",
        lambda a, b: (np.dstack([a, a * 2]), np.column_stack([b, b * b]), np.append(a, b)),
        [A34, V5],
    ),
    ("cross", lambda a, b: np.cross(a, b), [randn(4, 3), randn(4, 3)]),
    ("cross-2-3", lambda a, b: np.cross(a, b), [randn(2), randn(3)]),
    ("kron", np.kron, [randn(2, 3), randn(3, 2)]),
    ("vecdot-matvec", lambda a, b: (np.vecdot(a, a), np.matvec(a, b)), [A34, randn(4)]),
    ("meshgrid", lambda a, b: np.meshgrid(a * a, b), [V5, W3]),
    ("linspace", lambda a: np.linspace(a[0], a[1], 5) ** 2, [V5]),
    (
        "matrix_power",
        lambda a: (np.linalg.matrix_power(a, 3), np.linalg.matrix_power(a, -2)),
        [S3 + 3 * np.eye(3)],
    ),
    ("svd-square", _svd_losses, [S3]),
    ("svd-tall", _svd_losses, [A43]),
    ("svd-wide", _svd_losses, [A34]),
    ("svd-batch", _svd_losses, [randn(2, 4, 2)]),
    ("svd-values", lambda a: np.linalg.svd(a, compute_uv=False), [randn(2, 3, 5)]),
    ("svd-full-square", lambda a: np.linalg.svd(a)[0] @ np.linalg.svd(a)[2], [S3]),
    (
        "norm-2-nuc",
        lambda a: (np.linalg.norm(a, 2), np.linalg.norm(a, -2), np.linalg.norm(a, "nuc")),
        [A34],
    ),
    ("pinv", np.linalg.pinv, [A43]),
    ("pinv-wide", np.linalg.pinv, [A34]),
    ("cond", np.linalg.cond, [S3 + 3 * np.eye(3)]),
]


GRAD_CASES += [
    (
        "delete-insert",
        lambda a, b: (np.delete(a, [0, 2], axis=1), np.insert(a, [1, 1], b, axis=0)),
        [A34, randn(2, 4)],
    ),
    ("geomspace", lambda a: np.geomspace(a[0] ** 2 + 1, a[1] ** 2 + 3, 5), [V5]),
    (
        "gradient",
        lambda a, x: np.gradient(a, x, edge_order=2),
        [V5, np.array([0.0, 0.3, 1.0, 1.2, 2.0])],
    ),
    ("gradient-2d", lambda a: np.gradient(a, 0.5, 2.0), [A34]),
    (
        "choose-piecewise",
        lambda a, b: (
            np.choose(np.array([0, 1, 1, 0, 1]), [a, b]),
            np.piecewise(a, [a > 0], [np.exp, np.sin]),
        ),
        [V5, randn(5)],
    ),
    ("resize-partition", lambda a: (np.resize(a, (2, 7)), np.partition(a, 1)), [A34]),
    ("modf-ldexp", lambda a: (np.modf(a * 3)[0], np.ldexp(a, np.array([1, -2, 3, 0, 4]))), [V5]),
    (
        "polyint-polymul",
        lambda p, q: (np.polyint(p, 2), np.polymul(p, q), np.polyder(p)),
        [randn(4), randn(2)],
    ),
    ("polyfit", lambda x, y: np.polyfit(x, y, 2), [np.linspace(-1, 2, 7), randn(7)]),
    (
        "eigh",
        lambda a: (lambda w, v: ((v * np.array([1.0, 2.0, 3.5, 5.0])) @ v.T, w))(
            *np.linalg.eigh(a)
        ),
        [randn(4, 4)],
    ),
    ("eigh-upper-batch", lambda a: np.linalg.eigvalsh(a, UPLO="U"), [randn(2, 3, 3)]),
    ("cholesky", np.linalg.cholesky, [SPD3 + 0.3 * np.triu(randn(3, 3), 1)]),
    (
        "cholesky-upper",
        lambda a: np.linalg.cholesky(a, upper=True),
        [SPD3 + 0.3 * np.tril(randn(3, 3), -1)],
    ),
]


GRAD_CASES += [
    ("block", lambda a, b: np.block([[a, a * a], [b[None, :4], b[None, 1:]]]), [A34, V5]),
    ("unwrap", np.unwrap, [np.array([0.0, 2.5, 5.9, 0.3, -2.8, 3.1])]),
    (
        "tensorinv-tensorsolve",
        lambda a, b: (np.linalg.tensorinv(a, 1), np.linalg.tensorsolve(a.reshape(2, 3, 6), b)),
        [randn(6, 2, 3) + np.eye(6).reshape(6, 2, 3) * 3, randn(2, 3)],
    ),
    (
        "ufunc-outer-logaddexp",
        lambda a, b: (np.multiply.outer(a, b), np.logaddexp.reduce(np.add.outer(a, b), axis=0)),
        [V5, W3],
    ),
]


GRAD_CASES += [
    ("qr-tall", lambda a: tuple(np.linalg.qr(a)), [A43]),
    ("qr-square-batch", lambda a: tuple(np.linalg.qr(a)), [randn(2, 3, 3)]),
    ("qr-r", lambda a: np.linalg.qr(a, mode="r"), [randn(5, 2)]),
]


@pytest.mark.parametrize("fn,args", [c[1:] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_gradients_match_finite_differences(fn, args):
    graphc.check_grads(fn, tuple(args), order=1, modes=("rev", "fwd"), backend="interpreter")


@pytest.mark.parametrize(
    "fn,args",
    [
        (np.sinc, [np.array([0.0, -0.2, 0.9])]),
        (lambda a: np.linalg.svd(a, compute_uv=False), [A34]),
        (lambda a: _svd_losses(a)[0], [A43]),
        (lambda a: np.pad(a, 2, mode="reflect") ** 2, [W3]),
        (lambda a: np.einsum("ii->i", a) ** 3, [S3]),
        (lambda a: np.linalg.eigh(a)[1] @ np.diag([1.0, 2.0, 4.0]) @ np.linalg.eigh(a)[1].T, [S3]),
        (np.linalg.cholesky, [SPD3 + 0.2 * np.triu(S3, 1)]),
    ],
    ids=["sinc", "svd-values", "svd-vectors", "pad-reflect", "einsum-diag", "eigh", "cholesky"],
)
def test_second_order_gradients(fn, args):
    graphc.check_grads(fn, tuple(args), order=2, modes=("rev", "fwd"), backend="interpreter")


def test_sinc_derivatives_at_zero_are_exact():
    """sinc'(0) = 0 and sinc''(0) = -pi^2 / 3 (the plain quotient cancels to garbage there)."""
    d1 = graphc.grad(lambda x: np.sinc(x))(0.0)
    d2 = graphc.grad(graphc.grad(lambda x: np.sinc(x)))(0.0)
    assert d1 == 0.0
    np.testing.assert_allclose(d2, -(np.pi**2) / 3, rtol=1e-12)


def test_svd_gradient_of_singular_values_is_outer_product_of_vectors():
    a = randn(4, 3)
    u, _, vh = np.linalg.svd(a, full_matrices=False)
    g = graphc.grad(lambda x: np.linalg.svd(x, compute_uv=False)[0])(a)
    np.testing.assert_allclose(g, np.outer(u[:, 0], vh[0]), atol=1e-12)


def test_nan_reductions_give_nan_or_minus_one_for_all_nan_slices():
    row = np.full((1, 3), np.nan)
    f = graphc.jit(
        lambda a: (np.nanmax(a, 1), np.nanmean(a, 1), np.nanmedian(a, 1), np.nanargmax(a, 1))
    )
    mx, mu, med, am = f(row)
    assert np.isnan(mx).all() and np.isnan(mu).all() and np.isnan(med).all()
    assert am.tolist() == [-1]


def test_nan_reduction_gradients_are_zero_at_nans():
    g = graphc.grad(lambda a: np.nansum(a * a) + np.nanmean(a) + np.nanmax(a))(NANS[0])
    assert np.isfinite(g).all() and g[1] == 0.0, g


def test_svd_reconstructs_and_matches_numpy_compiled():
    a = randn(2, 5, 3)
    u, s, vh = graphc.jit(lambda x: np.linalg.svd(x, full_matrices=False))(a)
    np.testing.assert_allclose((u * s[..., None, :]) @ vh, a, atol=1e-12)


# -- errors name the user's line ---------------------------------------------------------------


def _error(exc, fn, *args):
    with pytest.raises(exc) as info:
        graphc.trace(fn, *args)
    return info.value


ERROR_CASES = [
    (
        "einsum-rep-sizes",
        "repeated index 'i'",
        lambda a: np.einsum("ii->i", a),  # einsum-rep-sizes
    ),
    (
        "einsum-ellipsis-bcast",
        "do not broadcast",
        lambda a: np.einsum("...i,...i->...", a, np.ones((2, 4))),  # einsum-ellipsis-bcast
    ),
    (
        "einsum-axes",
        "name 3",
        lambda a: np.einsum("ijk->i", a),  # einsum-axes
    ),
    (
        "diff-neg",
        "non-negative",
        lambda a: np.diff(a, -1),  # diff-neg
    ),
    (
        "diff-axis",
        "axis 5",
        lambda a: np.diff(a, axis=5),  # diff-axis
    ),
    (
        "pad-mode",
        "mode 'bogus'",
        lambda a: np.pad(a, 1, mode="bogus"),  # pad-mode
    ),
    (
        "pad-negative",
        "negative",
        lambda a: np.pad(a, -1, mode="edge"),  # pad-negative
    ),
    (
        "pad-width-shape",
        "does not fit",
        lambda a: np.pad(a, ((1, 2, 3),), mode="wrap"),  # pad-width-shape
    ),
    (
        "pad-kw",
        "stat_length",
        lambda a: np.pad(a, 1, mode="edge", stat_length=2),  # pad-kw
    ),
    (
        "pad-empty-axis",
        "empty axis",
        lambda a: np.pad(a[:, :0], 1, mode="reflect"),  # pad-empty-axis
    ),
    (
        "quantile-range",
        "range [0, 1]",
        lambda a: np.quantile(a, 1.5),  # quantile-range
    ),
    (
        "percentile-range",
        "range [0, 100]",
        lambda a: np.percentile(a, -5),  # percentile-range
    ),
    (
        "quantile-method",
        "method='weibull'",
        lambda a: np.quantile(a, 0.5, method="weibull"),  # quantile-method
    ),
    (
        "quantile-empty",
        "empty axis",
        lambda a: np.quantile(a[:0], 0.5, axis=0),  # quantile-empty
    ),
    (
        "convolve-2d",
        "1-d",
        lambda a: np.convolve(a, a),  # convolve-2d
    ),
    (
        "convolve-mode",
        "mode must be",
        lambda a: np.convolve(a[0], a[1], "middle"),  # convolve-mode
    ),
    (
        "interp-shapes",
        "one length",
        lambda a: np.interp(a, [0.0, 1.0], [1.0, 2.0, 3.0]),  # interp-shapes
    ),
    (
        "interp-period",
        "period",
        lambda a: np.interp(a, [0.0, 1.0], [1.0, 2.0], period=2),  # interp-period
    ),
    (
        "cross-dim",
        "must be 2 or 3",
        lambda a: np.cross(a, a),  # cross-dim
    ),
    (
        "rot90-axes",
        "must differ",
        lambda a: np.rot90(a, axes=(1, 1)),  # rot90-axes
    ),
    (
        "svd-1d",
        "needs matrices",
        lambda a: np.linalg.svd(a[0]),  # svd-1d
    ),
    (
        "matrix_power-nonsquare",
        "square",
        lambda a: np.linalg.matrix_power(a, 2),  # matrix_power-nonsquare
    ),
    (
        "cov-weights",
        "fweights",
        lambda a: np.cov(a, fweights=[1, 2, 1, 1]),  # cov-weights
    ),
    (
        "select-len",
        "same length",
        lambda a: np.select([a > 0], [a, a]),  # select-len
    ),
    (
        "linspace-neg",
        "non-negative",
        lambda a: np.linspace(a[0, 0], 1.0, -2),  # linspace-neg
    ),
    (
        "unique",
        "depends on the values",
        lambda a: np.unique(a),  # unique
    ),
    (
        "nonzero",
        "np.where",
        lambda a: np.nonzero(a > 0),  # nonzero
    ),
    (
        "nonzero-method",
        "depends on the values",
        lambda a: (a > 0).nonzero(),  # nonzero-method
    ),
    (
        "argwhere",
        "depends on the values",
        lambda a: np.argwhere(a),  # argwhere
    ),
    (
        "compress",
        "depends on the values",
        lambda a: np.compress(a[0] > 0, a, axis=1),  # compress
    ),
    (
        "lstsq",
        "pinv",
        lambda a: np.linalg.lstsq(a, a[:, 0]),  # lstsq
    ),
    (
        "sort-in-place",
        "in place",
        lambda a: a.sort(),  # sort-in-place
    ),
    (
        "fill-in-place",
        "full_like",
        lambda a: a.fill(0.0),  # fill-in-place
    ),
    (
        "svd-int8-ok-but-f16",
        "float16",
        lambda a: np.linalg.svd(a.astype(np.float16)),  # svd-int8-ok-but-f16
    ),
    (
        "norm-nuc-3-axes",
        "axis",
        lambda a: np.linalg.norm(a, "nuc", axis=(0, 1, 1)),  # norm-nuc-3-axes
    ),
    (
        "pad-reflect-type",
        "reflect_type",
        lambda a: np.pad(a, 1, mode="reflect", reflect_type="weird"),  # pad-reflect-type
    ),
    (
        "delete-oob",
        "out of bounds",
        lambda a: np.delete(a, 7, axis=1),  # delete-oob
    ),
    (
        "delete-traced",
        "constants",
        lambda a: np.delete(a, a[0, 0] > 0),  # delete-traced
    ),
    (
        "insert-shape",
        "do not fit",
        lambda a: np.insert(a, [1, 2], np.ones((3, 3)), axis=1),  # insert-shape
    ),
    (
        "gradient-short",
        "too short",
        lambda a: np.gradient(a[:, :2], axis=1, edge_order=2),  # gradient-short
    ),
    (
        "gradient-spacing",
        "does not match",
        lambda a: np.gradient(a, np.ones(3), axis=1),  # gradient-spacing
    ),
    (
        "digitize-bins",
        "monotonically",
        lambda a: np.digitize(a, [0.0, 2.0, 1.0]),  # digitize-bins
    ),
    (
        "choose-range",
        "invalid entry",
        lambda a: np.choose(np.array([0, 2, 1, 0]), [a[0], a[1]]),  # choose-range
    ),
    (
        "piecewise-funcs",
        "functions",
        lambda a: np.piecewise(a, [a > 0], [np.sin, np.cos, np.tan]),  # piecewise-funcs
    ),
    (
        "polyfit-deg",
        "deg >= 0",
        lambda a: np.polyfit(a[0], a[1], -1),  # polyfit-deg
    ),
    (
        "eigh-uplo",
        "UPLO",
        lambda a: np.linalg.eigh(a[:, :3], UPLO="X"),  # eigh-uplo
    ),
    (
        "cholesky-shape",
        "square",
        lambda a: np.linalg.cholesky(a),  # cholesky-shape
    ),
    (
        "fill-diagonal",
        "in place",
        lambda a: np.fill_diagonal(a, 0.0),  # fill-diagonal
    ),
    (
        "put-along-axis",
        "in place",
        lambda a: np.put_along_axis(a, np.zeros((3, 1), int), 0.0, 1),  # put-along-axis
    ),
    (
        "bincount",
        "depends on the values",
        lambda a: np.bincount(np.array([0, 1]), weights=a[0, :2]),  # bincount
    ),
    (
        "union1d",
        "depends on the values",
        lambda a: np.union1d(a[0], a[1]),  # union1d
    ),
    (
        "view-dtype",
        "reinterprets the bytes",
        lambda a: a.view(np.int64),  # view-dtype
    ),
    (
        "einsum-out-letter",
        "appears in no input",
        lambda a: np.einsum("ij->k", a),  # einsum-out-letter
    ),
    (
        "einsum-out-twice",
        "more than once",
        lambda a: np.einsum("ij->ii", a),  # einsum-out-twice
    ),
    (
        "block-depths",
        "depths are mismatched",
        lambda a: np.block([[a], a]),  # block-depths
    ),
    (
        "block-empty",
        "cannot be empty",
        lambda a: np.block([[], [a]]),  # block-empty
    ),
    (
        "geomspace-zero",
        "cannot include zero",
        lambda a: np.geomspace(0.0, a[0, 0], 3),  # geomspace-zero
    ),
    (
        "pad-ragged",
        "not a regular array",
        lambda a: np.pad(a, [[1, 2], [3]]),  # pad-ragged
    ),
    (
        "quantile-q-text",
        "q must be numbers",
        lambda a: np.quantile(a, [0.5, "x"]),  # quantile-q-text
    ),
]


@pytest.mark.parametrize("marker,words,fn", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_name_the_user_line(marker, words, fn):
    e = _error(graphc.GraphcError, fn, A34)
    assert words in str(e), str(e)
    assert e.location is not None and e.location.endswith(f"{HERE}:{line_of(marker)}"), str(e)


def test_wide_qr_gradient_error_names_the_line():
    def f(a):
        return np.sum(np.linalg.qr(a).Q)  # qr-wide-grad

    with pytest.raises(graphc.GraphcError) as info:
        graphc.grad(f)(A34)
    assert "at least as many rows as columns" in str(info.value)
    assert info.value.location.endswith(f"{HERE}:{line_of('qr-wide-grad')}"), str(info.value)


def test_full_matrices_gradient_error_names_the_line():
    def f(a):
        return np.sum(np.linalg.svd(a)[0])  # svd-full-grad

    with pytest.raises(graphc.GraphcError) as info:
        graphc.grad(f)(A34)
    assert "full_matrices=False" in str(info.value)
    assert info.value.location.endswith(f"{HERE}:{line_of('svd-full-grad')}"), str(info.value)


# -- dtypes, empty and 0-d inputs: NumPy's result types, or a graphc error where NumPy fails ----

DTYPE_FUNCS = {
    "diff": np.diff,
    "ediff1d": np.ediff1d,
    "sinc": np.sinc,
    "ptp": np.ptp,
    "pad-edge": lambda a: np.pad(a, 1, mode="edge"),
    "pad-reflect-odd": lambda a: np.pad(a, 3, mode="reflect", reflect_type="odd"),
    "pad-symmetric-odd": lambda a: np.pad(a, 4, mode="symmetric", reflect_type="odd"),
    "pad-wrap": lambda a: np.pad(a, 3, mode="wrap"),
    "pad-mean": lambda a: np.pad(a, 1, mode="mean"),
    "pad-ramp": lambda a: np.pad(a, 2, mode="linear_ramp", end_values=3),
    "nansum": np.nansum,
    "nanmax": np.nanmax,
    "nanmean": np.nanmean,
    "nanvar": np.nanvar,
    "nanargmin": np.nanargmin,
    "median": np.median,
    "nanmedian": np.nanmedian,
    "quantile-list": lambda a: np.quantile(a, [0.25, 0.5]),
    "quantile-weak": lambda a: np.quantile(a, 0.3),
    "quantile-lower": lambda a: np.quantile(a, 0.3, method="lower"),
    "percentile": lambda a: np.percentile(a, 30),
    "cov": np.cov,
    "convolve": lambda a: np.convolve(a.ravel(), a.ravel()[:2]),
    "select": lambda a: np.select([a > 0], [a], 0),
    "vecdot": lambda a: np.vecdot(a, a),
    "einsum-diag": lambda a: np.einsum("...i->...", a),
    "linspace": lambda a: np.linspace(a.ravel()[0], a.ravel()[-1], 4),
    "isclose": lambda a: np.isclose(a, a),
    "count_nonzero": np.count_nonzero,
    "matrix_rank": np.linalg.matrix_rank,
    "pinv": lambda a: np.linalg.pinv(a) if a.ndim >= 2 else a,
    "zeros_like-times": lambda a: np.zeros_like(a) * a,
}
# NumPy computes these with its boolean casting rules midway; graphc says it does not
REFUSED_DTYPES = {
    ("pad-reflect-odd", np.bool_),
    ("pad-symmetric-odd", np.bool_),
    ("pad-ramp", np.bool_),
}
DTYPE_SHAPES = [(3, 4), (5,), (0,), (2, 0), ()]
DTYPES = [np.float64, np.float32, np.int32, np.bool_]


def _sample(shape, dt):
    x = np.random.default_rng(3).standard_normal(shape) * 3
    return x > 0 if dt == np.bool_ else x.astype(dt)


@pytest.mark.parametrize("name", list(DTYPE_FUNCS))
def test_result_types_and_edge_shapes_follow_numpy(name):
    """Per function, every dtype and shape: graphc gives NumPy's value, dtype and shape, or a
    graphc error (never a raw exception) where NumPy fails."""
    fn = DTYPE_FUNCS[name]
    for shape in DTYPE_SHAPES:
        for dt in DTYPES:
            a = _sample(shape, dt)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    want = fn(a)
                except Exception:
                    want = None
                if want is None or (name, dt) in REFUSED_DTYPES:
                    words = "" if want is None else "boolean array is not supported"
                    with pytest.raises(graphc.GraphcError, match=words):
                        graphc.jit(fn, backend="interpreter")(a)
                    continue
                got = graphc.jit(fn, backend="interpreter")(a)
            assert_same(got, want, 2e-6 if np.dtype(dt) == np.float32 else 1e-10)
