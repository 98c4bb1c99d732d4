"""NumPy functions graphc traces as compositions of its ops (diagonals, triangles, tile, repeat,
roll, split, average, linalg.norm, ufunc reductions) or with a few dedicated ops (cumsum,
cumprod, sort via argsort, linalg inv/det/slogdet/solve): values against NumPy for several
shapes, axes and dtypes, gradients by finite differences, compiled against NumPy, and errors
that name the user's line."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import assert_same_leaves, marker_line

import graphc

HERE = os.path.basename(__file__)
R = np.random.default_rng(7)


def randn(*shape, dtype=np.float64):
    return R.standard_normal(shape).astype(dtype)


def spd(n, batch=()):
    """Well-conditioned matrices (diagonally dominant)."""
    return randn(*batch, n, n) + 3 * np.eye(n)


def line_of(marker: str) -> int:
    return marker_line(__file__, marker)


assert_same = assert_same_leaves


def _tol(x):
    return {np.float32: 2e-6, np.float16: 2e-3}.get(np.asarray(x).dtype.type, 1e-12)


# -- values: (id, fn, args) -------------------------------------------------------------------
A34 = randn(3, 4)
B234 = randn(2, 3, 4)
V5 = randn(5)

VALUE_CASES = [
    ("trace-2d", np.trace, [A34]),
    ("trace-offset", lambda x: np.trace(x, 1), [A34]),
    ("trace-neg-offset-axes", lambda x: np.trace(x, -1, 2, 1), [B234]),
    ("trace-i32", np.trace, [np.arange(12, dtype=np.int32).reshape(3, 4)]),
    ("trace-method", lambda x: x.trace(offset=2), [A34]),
    ("diagonal-3d", lambda x: np.diagonal(x, 0, 0, 2), [B234]),
    ("diagonal-offset-past-end", lambda x: np.diagonal(x, 9), [A34]),
    ("diagonal-method-f32", lambda x: x.diagonal(-1), [randn(4, 3, dtype=np.float32)]),
    ("diag-of-2d", lambda x: np.diag(x, -1), [A34]),
    ("diag-build", np.diag, [V5]),
    ("diag-build-k2", lambda x: np.diag(x, 2), [V5]),
    ("diag-build-k-3-i64", lambda x: np.diag(x, -3), [np.arange(4)]),
    ("diag-build-bool", np.diag, [np.array([True, False, True])]),
    ("triu", np.triu, [B234]),
    ("triu-k1", lambda x: np.triu(x, 1), [A34]),
    ("tril-k-1", lambda x: np.tril(x, -1), [B234]),
    ("tril-1d", np.tril, [V5]),
    ("tril-i8", lambda x: np.tril(x, 2), [np.arange(12, dtype=np.int8).reshape(3, 4)]),
    ("tile-int", lambda x: np.tile(x, 2), [A34]),
    ("tile-more-reps", lambda x: np.tile(x, (2, 1, 3)), [A34]),
    ("tile-fewer-reps", lambda x: np.tile(x, (2, 1)), [B234]),
    ("tile-zero", lambda x: np.tile(x, (0, 2)), [A34]),
    ("repeat-flat", lambda x: np.repeat(x, 2), [A34]),
    ("repeat-axis", lambda x: np.repeat(x, 3, axis=1), [B234]),
    ("repeat-neg-axis-f32", lambda x: np.repeat(x, 2, -1), [randn(2, 3, dtype=np.float32)]),
    ("repeat-counts", lambda x: np.repeat(x, [2, 0, 1], axis=0), [A34]),
    ("repeat-method", lambda x: x.repeat(2, axis=0), [A34]),
    ("roll-flat", lambda x: np.roll(x, 5), [A34]),
    ("roll-axis", lambda x: np.roll(x, -1, axis=1), [B234]),
    ("roll-tuple", lambda x: np.roll(x, (1, -2), axis=(0, 2)), [B234]),
    ("roll-same-axis-twice", lambda x: np.roll(x, (1, 2), axis=(1, 1)), [A34]),
    ("roll-by-length", lambda x: np.roll(x, 4, axis=1), [A34]),
    ("roll-i64", lambda x: np.roll(x, 2), [np.arange(6)]),
    ("split-sections", lambda x: np.split(x, 2, axis=1), [A34]),
    ("split-indices", lambda x: np.split(x, [1, -1], axis=2), [B234]),
    ("split-indices-past-end", lambda x: np.split(x, [2, 9]), [A34]),
    ("array-split-unequal", lambda x: np.array_split(x, 3, axis=-1), [B234]),
    ("array-split-more-than-length", lambda x: np.array_split(x, 4), [randn(3)]),
    ("average", np.average, [A34]),
    ("average-axis-keepdims", lambda x: np.average(x, axis=1, keepdims=True), [B234]),
    ("average-i32", lambda x: np.average(x, axis=0), [np.arange(12, dtype=np.int32).reshape(3, 4)]),
    ("average-weights-full", lambda x, w: np.average(x, weights=w), [A34, randn(3, 4) ** 2 + 0.1]),
    (
        "average-weights-1d",
        lambda x: np.average(x, axis=1, weights=np.arange(1.0, 5.0)),
        [A34],
    ),
    (
        "average-weights-axes-returned",
        lambda x: np.average(
            x, axis=(2, 0), weights=np.arange(1.0, 9.0).reshape(4, 2), returned=True
        ),
        [B234],
    ),
    ("average-returned-no-weights", lambda x: np.average(x, axis=0, returned=True), [A34]),
    (
        "average-f32-traced-weights",
        lambda x, w: np.average(x, axis=0, weights=w),
        [randn(3, 2, dtype=np.float32), np.array([1.0, 2.0, 3.0], np.float32)],
    ),
    ("norm", np.linalg.norm, [B234]),
    ("norm-keepdims", lambda x: np.linalg.norm(x, keepdims=True), [A34]),
    ("norm-vec-2", lambda x: np.linalg.norm(x, 2), [V5]),
    ("norm-vec-1-axis", lambda x: np.linalg.norm(x, 1, axis=1), [A34]),
    ("norm-vec-inf", lambda x: np.linalg.norm(x, np.inf, axis=0), [A34]),
    ("norm-vec-minus-inf", lambda x: np.linalg.norm(x, -np.inf, axis=-1, keepdims=True), [B234]),
    (
        "norm-vec-0",
        lambda x: np.linalg.norm(x, 0, axis=1),
        [np.array([[0.0, 1.0, 2.0], [0, 0, 3]])],
    ),
    ("norm-vec-p3", lambda x: np.linalg.norm(x, 3, axis=2), [B234]),
    ("norm-vec-p-half-f32", lambda x: np.linalg.norm(x, 0.5), [randn(4, dtype=np.float32)]),
    ("norm-vec-i64", np.linalg.norm, [np.arange(5)]),
    ("norm-mat-fro", lambda x: np.linalg.norm(x, "fro", axis=(0, 2)), [B234]),
    ("norm-mat-1", lambda x: np.linalg.norm(x, 1), [A34]),
    ("norm-mat-minus-1-axes", lambda x: np.linalg.norm(x, -1, axis=(2, 1)), [B234]),
    ("norm-mat-inf", lambda x: np.linalg.norm(x, np.inf, axis=(1, 2), keepdims=True), [B234]),
    ("norm-mat-minus-inf", lambda x: np.linalg.norm(x, -np.inf, axis=(2, 0)), [B234]),
    ("add-reduce", np.add.reduce, [B234]),
    (
        "add-reduce-i8",
        lambda x: np.add.reduce(x, axis=1),
        [np.arange(12, dtype=np.int8).reshape(3, 4)],
    ),
    ("multiply-reduce", lambda x: np.multiply.reduce(x, axis=(0, 2), keepdims=True), [B234]),
    ("maximum-reduce", lambda x: np.maximum.reduce(x, axis=None), [A34]),
    ("minimum-reduce", lambda x: np.minimum.reduce(x, -1), [B234]),
    ("minimum-reduce-bool", lambda x: np.minimum.reduce(x, 1), [A34 > 0]),
    ("add-reduce-dtype", lambda x: np.add.reduce(x, 0, np.float32), [A34]),
    ("cumsum-flat", np.cumsum, [A34]),
    ("cumsum-axis", lambda x: np.cumsum(x, axis=1), [B234]),
    ("cumsum-i32", lambda x: np.cumsum(x, axis=0), [np.arange(12, dtype=np.int32).reshape(3, 4)]),
    ("cumsum-bool", np.cumsum, [A34 > 0]),
    ("cumsum-method-f32", lambda x: x.cumsum(-1), [randn(2, 3, dtype=np.float32)]),
    ("cumprod", lambda x: np.cumprod(x, axis=0), [A34]),
    ("cumprod-flat-i64", np.cumprod, [np.arange(1, 7)]),
    ("sort", np.sort, [B234]),
    ("sort-axis0", lambda x: np.sort(x, axis=0), [A34]),
    ("sort-none", lambda x: np.sort(x, axis=None), [A34]),
    ("sort-ties-nan", np.sort, [np.array([3.0, np.nan, 1.0, 3.0, -np.inf, 1.0])]),
    ("sort-i16", lambda x: np.sort(x, 1), [R.integers(-5, 5, (3, 4)).astype(np.int16)]),
    ("argsort-stable", np.argsort, [np.array([2.0, 1.0, 2.0, 1.0, 0.0])]),
    ("argsort-axis", lambda x: x.argsort(axis=1), [B234]),
    ("take-along-axis", lambda x: np.take_along_axis(x, np.argsort(x, 1), 1), [B234]),
    ("inv", np.linalg.inv, [spd(3)]),
    ("inv-batched-f32", np.linalg.inv, [spd(3, (2,)).astype(np.float32)]),
    ("inv-int", np.linalg.inv, [np.array([[2, 1], [1, 3]])]),
    ("det", np.linalg.det, [spd(3)]),
    ("det-batched", np.linalg.det, [randn(2, 3, 3)]),
    ("slogdet", np.linalg.slogdet, [randn(2, 4, 4)]),
    ("solve-vector", np.linalg.solve, [spd(3), randn(3)]),
    ("solve-matrix-batched", np.linalg.solve, [spd(3, (2,)), randn(2, 3, 2)]),
]


@pytest.mark.parametrize("fn, args", [c[1:] for c in VALUE_CASES], ids=[c[0] for c in VALUE_CASES])
def test_values_match_numpy(fn, args):
    want = fn(*args)
    got = graphc.jit(fn, backend="interpreter")(*args)
    assert_same(got, want, max(_tol(a) for a in args))


def test_slogdet_has_named_fields():
    x = randn(3, 3)
    got = graphc.jit(lambda a: np.linalg.slogdet(a).logabsdet, backend="interpreter")(x)
    assert_same(got, np.linalg.slogdet(x).logabsdet)


# -- compiled against NumPy: one program per group, so few compilations ------------------------


def _group(x, y, s):
    """Many of the functions on one set of inputs, returned together."""
    return (
        np.trace(x, 1),
        np.diag(y, -1),
        np.diagonal(x, 0, 1, 0),
        np.triu(x, 1) + np.tril(x, -1),
        np.tile(y, (2, 1)),
        np.repeat(x, 2, axis=0),
        np.repeat(x, [1, 2, 0], axis=0),
        np.roll(x, (1, -1), axis=(0, 1)),
        *np.array_split(x, 3, axis=1),
        np.average(x, axis=1, weights=np.arange(1.0, 5.0)),
        np.linalg.norm(x, axis=1),
        np.linalg.norm(x, 3, axis=0),
        np.linalg.norm(x, 1),
        np.linalg.norm(x, -np.inf),
        np.add.reduce(x, 1),
        np.maximum.reduce(x, 0, keepdims=True),
        np.cumsum(x, axis=1),
        np.cumprod(y),
        np.sort(x, axis=0),
        np.argsort(y),
        np.linalg.inv(s),
        np.linalg.det(s),
        *np.linalg.slogdet(s),
        np.linalg.solve(s, y[:3]),
    )


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_compiled_matches_numpy(dt):
    x, y, s = randn(3, 4, dtype=dt), randn(4, dtype=dt), spd(3).astype(dt)
    want = _group(x, y, s)
    got = graphc.jit(_group, backend="numba")(x, y, s)
    assert_same(got, want, 1e-10 if dt == np.float64 else 3e-5)


def test_scans_and_sorting_compile_and_linear_algebra_falls_back_visibly():
    lo = graphc.jit(_group).lower(randn(3, 4), randn(4), spd(3))
    ran = " ".join(lo.fallbacks)
    for op in ("inv", "det", "logabsdet", "detsign"):
        assert op in ran, (op, lo.fallbacks)
    for op in ("cumsum", "cumprod", "argsort"):  # compiled kernels
        assert op not in ran and f"_call('{op}'" in lo.source, (op, lo.fallbacks)
    # the compositions add no op of their own
    for op in ("trace", "diag", "tile", "roll", "norm", "average"):
        assert op not in ran, (op, lo.fallbacks)


def test_compositions_fuse():
    """tril(x) * 2 + 1 is one elementwise kernel: where, mul and add fuse."""
    lo = graphc.jit(lambda x: np.tril(x) * 2 + 1).lower(randn(4, 4))
    assert lo.optimized.op_counts().get("fused", 0) == 1, lo.optimized


# -- gradients ---------------------------------------------------------------------------------

GRAD_CASES = [
    ("trace", lambda x: np.trace(x, -1), [A34]),
    ("diagonal", lambda x: np.diagonal(x, 1, 2, 1), [B234]),
    ("diag-build", lambda x: np.diag(x, 1) @ np.diag(x, 1).T, [V5]),
    ("triu-tril", lambda x: np.triu(x, 1) * np.tril(x), [A34]),
    ("tile", lambda x: np.tile(x, (2, 1, 2)) ** 2, [A34]),
    ("repeat", lambda x: np.repeat(x, 2, axis=1) ** 2, [A34]),
    ("repeat-counts", lambda x: np.repeat(x, [2, 0, 3], axis=0) ** 2, [A34]),
    ("roll", lambda x: np.roll(x, (1, 3), axis=(0, 1)) * x, [A34]),
    ("split", lambda x: np.prod(np.split(x, [1, 3], axis=1)[1], axis=1), [A34]),
    ("average", lambda x, w: np.average(x, axis=0, weights=w), [A34, randn(3) ** 2 + 0.5]),
    ("norm-2", lambda x: np.linalg.norm(x, axis=1), [A34]),
    ("norm-p3", lambda x: np.linalg.norm(x, 3, axis=0), [A34]),
    ("norm-fro-keepdims", lambda x: np.linalg.norm(x, "fro", axis=(0, 2), keepdims=True), [B234]),
    ("norm-mat-inf", lambda x: np.linalg.norm(x, np.inf), [A34]),
    ("add-multiply-reduce", lambda x: np.add.reduce(x) * np.multiply.reduce(x, 1).sum(), [A34]),
    ("cumsum", lambda x: np.cumsum(x, axis=1) ** 2, [B234]),
    ("cumsum-flat", lambda x: np.sin(np.cumsum(x)), [A34]),
    ("cumprod", lambda x: np.cumprod(x, axis=0), [np.abs(A34) + 0.5]),
    ("sort", lambda x: np.sort(x, axis=1) * np.arange(4.0), [A34]),
    ("sort-3d-axis0", lambda x: np.sort(x, axis=0) ** 2, [B234]),
    ("inv", np.linalg.inv, [spd(3)]),
    ("inv-batched", lambda x: np.linalg.inv(x) ** 2, [spd(2, (2,))]),
    ("det", lambda x: np.linalg.det(x), [spd(3, (2,))]),
    ("slogdet", lambda x: np.linalg.slogdet(x)[1], [randn(3, 3)]),
    ("solve", np.linalg.solve, [spd(3), randn(3, 2)]),
]


@pytest.mark.parametrize("fn, args", [c[1:] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_gradients_to_second_order(fn, args):
    graphc.check_grads(fn, tuple(args), order=2, modes=("rev", "fwd"), backend="interpreter")


def test_sort_gradient_follows_the_permutation():
    x = np.array([3.0, 1.0, 2.0])
    g = graphc.grad(lambda a: np.sum(np.sort(a) * np.array([1.0, 10.0, 100.0])))(x)
    np.testing.assert_array_equal(g, [100.0, 1.0, 10.0])


def test_cumsum_gradient_is_reversed_cumsum():
    g = graphc.grad(lambda a: np.sum(np.cumsum(a) * np.array([1.0, 2.0, 4.0])))(np.zeros(3))
    np.testing.assert_array_equal(g, [7.0, 6.0, 4.0])


# -- errors name the user's line ---------------------------------------------------------------


def _error(exc, fn, *args):
    with pytest.raises(exc) as info:
        graphc.trace(fn, *args)
    return info.value


ERROR_CASES = [
    (
        "err-diag-3d",
        graphc.ShapeError,
        "1-d or 2-d",
        lambda x: np.diag(x[None]),  # err-diag-3d
    ),
    (
        "err-trace-axis",
        graphc.ShapeError,
        "axis 5",
        lambda x: np.trace(x, 0, 0, 5),  # err-trace-axis
    ),
    (
        "err-diagonal-same",
        graphc.ShapeError,
        "cannot be the same",
        lambda x: np.diagonal(x, 0, 1, 1),  # err-diagonal-same
    ),
    (
        "err-tile-neg",
        graphc.ShapeError,
        "negative",
        lambda x: np.tile(x, (-1, 2)),  # err-tile-neg
    ),
    (
        "err-repeat-axis",
        graphc.ShapeError,
        "axis 3",
        lambda x: np.repeat(x, 2, axis=3),  # err-repeat-axis
    ),
    (
        "err-repeat-count",
        graphc.ShapeError,
        "repeat counts",
        lambda x: np.repeat(x, [1, 2], axis=1),  # err-repeat-count
    ),
    (
        "err-repeat-traced",
        graphc.UnsupportedError,
        "Python ints",
        lambda x: np.repeat(x, x.astype(int)),  # err-repeat-traced
    ),
    (
        "err-roll-axis",
        graphc.ShapeError,
        "axis -4",
        lambda x: np.roll(x, 1, axis=-4),  # err-roll-axis
    ),
    (
        "err-roll-len",
        graphc.ShapeError,
        "different lengths",
        lambda x: np.roll(x, (1, 2, 3), axis=(0, 1)),  # err-roll-len
    ),
    (
        "err-split-unequal",
        graphc.ShapeError,
        "equal",
        lambda x: np.split(x, 3, axis=1),  # err-split-unequal
    ),
    (
        "err-split-axis",
        graphc.ShapeError,
        "axis 2",
        lambda x: np.array_split(x, 2, axis=2),  # err-split-axis
    ),
    (
        "err-average-weights",
        graphc.ShapeError,
        "give the axis",
        lambda x: np.average(x, weights=np.ones(4)),  # err-average-weights
    ),
    (
        "err-average-wshape",
        graphc.ShapeError,
        "do not match",
        lambda x: np.average(x, 1, np.ones(3)),  # err-average-wshape
    ),
    (
        "err-average-zero",
        graphc.GraphcError,
        "sum to zero",
        lambda x: np.average(x, 0, np.zeros(3)),  # err-average-zero
    ),
    (
        "err-norm-nuc",
        graphc.GraphcError,
        "invalid norm order 'nuc' for vectors",
        lambda x: np.linalg.norm(x, "nuc", axis=0),  # err-norm-nuc
    ),
    (
        "err-norm-vec-ord",
        graphc.GraphcError,
        "invalid norm order",
        lambda x: np.linalg.norm(x, "fro", axis=0),  # err-norm-vec-ord
    ),
    (
        "err-norm-3-axes",
        graphc.ShapeError,
        "1 or 2 axes",
        lambda x: np.linalg.norm(x[None], axis=(0, 1, 2)),  # err-norm-3-axes
    ),
    (
        "err-reduce-where",
        graphc.UnsupportedError,
        "add.reduce",
        lambda x: np.add.reduce(x, initial=1.0),  # err-reduce-where
    ),
    (
        "err-reduce-axis",
        graphc.ShapeError,
        "axis 2",
        lambda x: np.maximum.reduce(x, 2),  # err-reduce-axis
    ),
    (
        "err-cumsum-axis",
        graphc.ShapeError,
        "axis 2",
        lambda x: np.cumsum(x, axis=2),  # err-cumsum-axis
    ),
    (
        "err-sort-order",
        graphc.UnsupportedError,
        "order=",
        lambda x: np.sort(x, order="a"),  # err-sort-order
    ),
    (
        "err-inv-square",
        graphc.ShapeError,
        "square",
        lambda x: np.linalg.inv(x),  # err-inv-square
    ),
    (
        "err-det-f16",
        graphc.DTypeError,
        "float16",
        lambda x: np.linalg.det(x[:, :3].astype(np.float16)),  # err-det-f16
    ),
    (
        "err-solve-shape",
        graphc.ShapeError,
        "does not fit",
        lambda x: np.linalg.solve(x[:, :3], x[0]),  # err-solve-shape
    ),
]


@pytest.mark.parametrize("marker, exc, words, fn", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_name_the_user_line(marker, exc, words, fn):
    e = _error(exc, fn, A34)
    assert words in str(e), str(e)
    assert e.location is not None and e.location.endswith(f"{HERE}:{line_of(marker)}"), str(e)
