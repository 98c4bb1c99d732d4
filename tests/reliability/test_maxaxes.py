"""Axis arguments are checked as NumPy checks them, and derivatives of max/min-style functions
survive compilation.

1. Every axis-taking function raises when NumPy raises (out of range, repeated, not an integer)
   with a graphc error at the caller's line (an AxisError, also NumPy's, where NumPy raises
   one), and otherwise gives NumPy's values: no axis is reduced modulo ndim.
2. Rules that pick winners by comparing values (`x == max(x)`, `x > y`, `x == 0`) see the same
   values the forward computation saw, also when a compiled kernel recomputes a fused operand:
   gradients, tangents and Hessians of max/min/maximum/clip/abs/norm/ptp/sort over fused
   expressions match the interpreter and finite differences in float32 and float64.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import graphc
from graphc import numpy as gnp

HERE = os.path.basename(__file__)
X3 = np.arange(24.0).reshape(2, 3, 4) * 0.25 - 2.0  # distinct values: argmax has one answer


def _graphc_result(fn, *args):
    return graphc.jit(fn, backend="interpreter")(*args)


def _numpy_result(fn, *args):
    try:
        return fn(*args), None
    except Exception as e:  # NumPy's verdict: the same call must fail under graphc
        return None, e


def _check_like_numpy(fn, *args, axis=None):
    if isinstance(axis, (float, str)):
        # never an axis, also where NumPy truncates a float (np.linalg.norm(x, axis=1.5))
        with pytest.raises(graphc.GraphcError, match="must be an integer") as info:
            _graphc_result(fn, *args)
        assert HERE in info.value.location
        return
    want, np_err = _numpy_result(fn, *args)
    if np_err is None:
        got = _graphc_result(fn, *args)
        pairs = zip(got, want, strict=True) if isinstance(want, list) else [(got, want)]
        for g, w in pairs:
            assert np.shape(g) == np.shape(w)
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12)
        return
    with pytest.raises(graphc.GraphcError) as info:
        _graphc_result(fn, *args)
    e = info.value
    # the caller's line, not a frame inside graphc
    assert e.location is not None and HERE in e.location, (str(e), repr(np_err))
    if isinstance(np_err, np.exceptions.AxisError):
        assert isinstance(e, np.exceptions.AxisError), (str(e), repr(np_err))
        assert "out of bounds" in str(e)


# axis specifications: valid (positive, negative, tuples) and not (out of range either side,
# repeated, after normalisation too, not integers)
MULTI = [
    None,
    0,
    2,
    -1,
    -3,
    (0, 2),
    (-1, 0),
    (2, -2),
    3,
    -4,
    9,
    (0, 3),
    (0, 0),
    (1, -2),
    (-4, 0),
    1.0,
    "0",
]
SINGLE = [0, 1, -1, -3, 3, -4, 7, (0,), 1.5, np.int64(-2)]

REDUCTIONS = {
    "sum": lambda x, a: np.sum(x, axis=a),
    "mean": lambda x, a: np.mean(x, axis=a),
    "max": lambda x, a: np.max(x, axis=a),
    "amin": lambda x, a: np.amin(x, axis=a),
    "prod": lambda x, a: np.prod(x, axis=a),
    "any": lambda x, a: np.any(x > 0, axis=a),
    "all": lambda x, a: np.all(x > -1, axis=a),
    "std": lambda x, a: np.std(x, axis=a),
    "var": lambda x, a: np.var(x, axis=a, keepdims=True),
    "ptp": lambda x, a: np.ptp(x, axis=a),
    "flip": lambda x, a: np.flip(x, axis=a),
    "average": lambda x, a: np.average(x, axis=a),
    "method sum": lambda x, a: x.sum(axis=a),
    "method max": lambda x, a: x.max(axis=a, keepdims=True),
    "maximum.reduce": lambda x, a: np.maximum.reduce(x, axis=a),
    "add.reduce": lambda x, a: np.add.reduce(x, axis=a),
}

ONE_AXIS = {
    "argmax": lambda x, a: np.argmax(x, axis=a),
    "argmin": lambda x, a: np.argmin(x, axis=a),
    "method argmax": lambda x, a: x.argmax(axis=a),
    "cumsum": lambda x, a: np.cumsum(x, axis=a),
    "cumprod": lambda x, a: np.cumprod(x, axis=a),
    "sort": lambda x, a: np.sort(x, axis=a),
    "argsort": lambda x, a: np.argsort(x, axis=a),
    "take": lambda x, a: np.take(x, [1, 0], axis=a),
    "concatenate": lambda x, a: np.concatenate([x, x], axis=a),
    "stack": lambda x, a: np.stack([x, x], axis=a),
    "repeat": lambda x, a: np.repeat(x, 2, axis=a),
    "roll": lambda x, a: np.roll(x, 1, axis=a),
    "array_split": lambda x, a: np.array_split(x, 2, axis=a),
    "take_along_axis": lambda x, a: np.take_along_axis(x, np.zeros((1, 1, 1), np.int64), a),
    "swapaxes first": lambda x, a: np.swapaxes(x, a, 1),
    "swapaxes second": lambda x, a: np.swapaxes(x, 0, a),
    "method swapaxes": lambda x, a: x.swapaxes(a, -1),
    "moveaxis source": lambda x, a: np.moveaxis(x, a, 0),
    "moveaxis destination": lambda x, a: np.moveaxis(x, 0, a),
    "rollaxis": lambda x, a: np.rollaxis(x, a),
    "rollaxis start": lambda x, a: np.rollaxis(x, 0, a),
    "diagonal": lambda x, a: np.diagonal(x, 0, a, 1),
    "trace": lambda x, a: np.trace(x, 0, 2, a),
    "size": lambda x, a: np.size(x, a),
    "norm vector": lambda x, a: np.linalg.norm(x, ord=np.inf, axis=a),
    "cumsum method": lambda x, a: x.cumsum(axis=a),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_axes_like_numpy(name):
    fn = REDUCTIONS[name]
    for a in MULTI:
        _check_like_numpy(lambda x, fn=fn, a=a: fn(x, a), X3, axis=a)


@pytest.mark.parametrize("name", sorted(ONE_AXIS))
def test_single_axis_functions_like_numpy(name):
    fn = ONE_AXIS[name]
    for a in SINGLE + [None, (0, 1)]:
        if a is None and name in ("take_along_axis", "size", "rollaxis", "rollaxis start"):
            continue  # None means something else there (flatten, all axes), tested below
        _check_like_numpy(lambda x, fn=fn, a=a: fn(x, a), X3, axis=a)


def test_bool_axes_are_rejected():
    """NumPy's reductions reject axis=True ("an integer is required"); graphc rejects it in
    every function, also where NumPy would quietly read it as 1 (flip, average)."""
    # (rollaxis's start is a position, not an axis: NumPy and graphc read True as 1 there)
    for name, fn in [*REDUCTIONS.items(), *ONE_AXIS.items()]:
        if name == "rollaxis start":
            continue
        with pytest.raises(graphc.GraphcError, match="must be an integer") as info:
            graphc.trace(lambda x, fn=fn: fn(x, True), X3)
        assert HERE in info.value.location


def test_rollaxis_start_range_like_numpy():
    # start is a position between axes: -ndim <= start <= ndim
    for axis in (0, 2, -1):
        for start in range(-5, 6):
            _check_like_numpy(lambda x, axis=axis, start=start: np.rollaxis(x, axis, start), X3)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: np.transpose(x, (2, 0, 1)),
        lambda x: np.transpose(x, (-1, 0, -2)),
        lambda x: np.transpose(x, (0, 5, 1)),
        lambda x: np.transpose(x, (0, -4, 1)),
        lambda x: np.transpose(x, (0, 3, 1)),  # 3 % 3 == 0: a modulo would accept it
        lambda x: np.transpose(x, (0, 0, 1)),
        lambda x: np.transpose(x, (0, -3, 1)),  # repeated once normalised
        lambda x: np.transpose(x, (0, 1)),
        lambda x: np.transpose(x, (1.0, 0, 2)),
        lambda x: np.transpose(x, 0),
        lambda x: x.transpose(0),
        lambda x: x.transpose(2, 1, 0),
        lambda x: x.transpose(2, 1, 6),
        lambda x: x.transpose((1, 4, 0)),
        lambda x: np.moveaxis(x, (0, 1), (-1, -2)),
        lambda x: np.moveaxis(x, (0, 1), (2, 5)),
        lambda x: np.moveaxis(x, (0, 0), (1, 2)),
        lambda x: np.moveaxis(x, (0, 1), (1, -2)),
        lambda x: np.moveaxis(x, (0, 1), (1,)),
        lambda x: np.expand_dims(x, (0, -1)),
        lambda x: np.expand_dims(x, 4),
        lambda x: np.expand_dims(x, -5),
        lambda x: np.expand_dims(x, 5),
        lambda x: np.expand_dims(x, (0, 0)),
        lambda x: np.expand_dims(x, (1, -4)),  # repeated once normalised (ndim 5)
        lambda x: np.squeeze(x[:1, :, :1], axis=(0, 2)),
        lambda x: np.squeeze(x[:1, :, :1], axis=-1),
        lambda x: np.squeeze(x[:1, :, :1], axis=3),
        lambda x: np.squeeze(x[:1, :, :1], axis=(0, -3)),
        lambda x: np.squeeze(x[:1], axis=1),
        lambda x: np.tensordot(x, x, axes=([0, 1], [0, 1])),
        lambda x: np.tensordot(x, x, axes=([-1, 0], [2, -3])),
        lambda x: np.tensordot(x, x, axes=([0, 5], [0, 1])),
        lambda x: np.tensordot(x, x, axes=([0, 0], [0, 1])),
        lambda x: np.tensordot(x, x, axes=([0, 1], [0])),
        lambda x: np.tensordot(x, x, axes=(2, -1)),
        lambda x: np.tensordot(x, x, axes=(2, 3)),
        lambda x: np.tensordot(x[0], x[0], axes=1),
        lambda x: np.tensordot(x[0], x[0].T, axes=2),
        lambda x: np.tensordot(x[0], x[0], axes=3),
        lambda x: np.tensordot(x[0], x[0], axes=0),
        lambda x: np.linalg.norm(x, axis=(0, 2)),
        lambda x: np.linalg.norm(x, ord=1, axis=(-1, 0)),
        lambda x: np.linalg.norm(x, axis=(0, 3)),
        lambda x: np.linalg.norm(x, axis=(1, -2)),
        lambda x: np.linalg.norm(x, axis=-4),
        lambda x: np.size(x, (0, -1)),
        lambda x: np.size(x, (0, 3)),
        lambda x: np.flip(x, (0, -3)),
        lambda x: np.roll(x, (1, 2), axis=(0, 0)),  # NumPy adds the shifts: allowed
        lambda x: np.roll(x, (1, 2), axis=(0, 4)),
        lambda x: np.stack([x, x], axis=-4),
        lambda x: np.stack([x, x], axis=-5),
        lambda x: np.stack([x, x], axis=3),
        lambda x: np.stack([x, x], axis=4),
        lambda x: np.concatenate([x, x], axis=None),
        lambda x: np.diagonal(x, 0, 1, -2),
        lambda x: np.split(x, 2, axis=-3),
        lambda x: np.split(x, 2, axis=3),
        lambda x: np.average(x, axis=(2, 0), weights=np.ones((4, 2))),
        lambda x: np.average(x, axis=(0, 0), weights=np.ones((2, 2))),
        lambda x: np.sum(x, axis=np.array(1)),
    ],
)
def test_permutations_and_multi_axis_functions_like_numpy(fn):
    _check_like_numpy(fn, X3)


def test_list_axes_read_as_tuples():
    """NumPy's reductions take a tuple, not a list, of axes; graphc reads a list as the tuple
    (the result NumPy gives for it), and checks its entries the same way."""
    got = _graphc_result(lambda x: np.sum(x, axis=[0, -1]), X3)
    np.testing.assert_allclose(got, np.sum(X3, axis=(0, -1)))
    for bad in ([0, 3], [2, -1]):
        with pytest.raises(graphc.GraphcError) as info:
            _graphc_result(lambda x, bad=bad: np.max(x, axis=bad), X3)
        assert HERE in info.value.location


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: np.transpose(x, (0, 5)),
        lambda x: np.swapaxes(x, 0, 9),
        lambda x: np.moveaxis(x, 0, 9),
        lambda x: np.swapaxes(x, -3, 0),
        lambda x: x.T.swapaxes(2, 1),
    ],
)
def test_reported_permutations_raise_axis_error_compiled(fn):
    """The three calls from the report, on a 2-d array, through the compiled path and inside
    grad: NumPy's AxisError at the line of the call, never a result."""
    x = np.ones((2, 3))
    with pytest.raises(np.exceptions.AxisError):
        fn(x)
    for run in (graphc.jit(fn), graphc.jit(graphc.grad(lambda x: np.sum(fn(x))))):
        with pytest.raises(graphc.AxisError) as info:
            run(x)
        assert isinstance(info.value, graphc.ShapeError)
        assert HERE in info.value.location
        assert "out of bounds for a 2-d array" in str(info.value)


def test_traced_axis_is_a_clear_error():
    def f(x, k):
        return np.sum(x, axis=k)

    with pytest.raises(graphc.GraphcError) as info:
        graphc.trace(lambda x: np.sum(x, axis=np.sum(x).astype(np.int64)), X3)
    assert "traced value" in str(info.value) and HERE in info.value.location
    # a Python int steering the trace is fine
    np.testing.assert_allclose(graphc.jit(f, backend="interpreter")(X3, 1), X3.sum(axis=1))


def test_axis_error_is_numpy_axis_error():
    with pytest.raises(np.exceptions.AxisError) as info:
        graphc.trace(lambda x: np.sum(x, axis=3), X3)
    e = info.value
    assert isinstance(e, graphc.AxisError) and isinstance(e, ValueError)
    assert e.axis == 3 and e.ndim == 3
    assert str(e).startswith("np.sum: axis 3 is out of bounds for a 3-d array (at ")


# ---------------------------------------------------------------------------------------------
# 2. derivatives of rules that compare values


def _interp(fn):
    return graphc.jit(fn, backend="interpreter")


def _close(got, want, dtype):
    rtol, atol = (2e-3, 2e-4) if dtype == np.float32 else (1e-9, 1e-11)
    got, want = np.asarray(got), np.asarray(want)
    assert np.all(np.isfinite(got)), got
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def _tangent(fn):
    def jvp(x, t):
        return graphc.jvp(fn, (x,), (t,))[1]

    return jvp


def _random_inputs(shape, dtype, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


def test_reported_max_gradient_is_not_zero():
    """max(tanh(x)**2 + 1) at the reported point: gradient [0, -0.367], finite tangents and
    Hessian, compiled as in the interpreter."""

    def f(x):
        return np.max(np.tanh(x) ** 2 + 1)

    x = np.array([0.0756, -1.4268])
    want = _interp(graphc.grad(f))(x)
    assert want[0] == 0 and want[1] == pytest.approx(-0.36727934, rel=1e-6)
    _close(graphc.jit(graphc.grad(f))(x), want, np.float64)
    t = np.array([0.3, -0.7])
    _close(graphc.jit(_tangent(f))(x, t), want @ t, np.float64)
    _close(graphc.jit(graphc.hessian(f))(x), _interp(graphc.hessian(f))(x), np.float64)
    graphc.check_grads(f, (x,), order=2)


# operands are fused expressions: a kernel recomputes them in each pass over a row, and
# tanh(x)**2 + 1, x*y + z contract to an FMA under fast-math in some passes and not others
FUSED = {
    "max tanh2": (lambda x: np.max(np.tanh(x) ** 2 + 1), (7,)),
    "min fma": (lambda x: np.min(x * x[::-1] + x), (9,)),
    "amax rows": (lambda x: np.sum(np.amax(np.tanh(x) ** 2 + x * 0.5, axis=-1) ** 2), (16, 5)),
    "amin cols keepdims": (
        lambda x: np.sum(np.sin(np.amin(x * x * 0.7 + np.tanh(x), axis=0, keepdims=True))),
        (6, 8),
    ),
    "max two axes": (lambda x: np.sum(np.max(np.exp(x * 0.3) * x + 1, axis=(0, 2))), (3, 4, 5)),
    "maximum": (lambda x: np.sum(np.maximum(np.tanh(x) ** 2 + 1, 1.5 - x * x) ** 2), (12,)),
    "fmin": (lambda x: np.sum(np.fmin(x * x + x, np.tanh(x) * 2) * x), (12,)),
    "clip": (lambda x: np.sum(np.clip(x * 1.3 + x * x, -0.5, 0.8) ** 2), (15,)),
    "abs": (lambda x: np.sum(np.abs(x * x - 0.5 * x + np.tanh(x)) * x), (10,)),
    "norm inf": (lambda x: np.linalg.norm(np.tanh(x) ** 2 - x * 0.3, ord=np.inf), (11,)),
    "norm -inf rows": (
        lambda x: np.sum(np.linalg.norm(x * x + np.sin(x), ord=-np.inf, axis=1)),
        (6, 5),
    ),
    "ptp": (lambda x: np.ptp(np.tanh(x) ** 2 + x * 0.25), (9,)),
    "sort top": (lambda x: np.sort(x * x + np.tanh(x))[-1] * 2, (8,)),
    "logsumexp": (lambda x: gnp.logsumexp(x * x * 0.5 + np.tanh(x), axis=-1).sum(), (4, 6)),
    "softmax max": (lambda x: np.sum(np.max(gnp.softmax(x * x + x, axis=-1), axis=-1)), (5, 4)),
}


# the quick set; the rest run as slow tests
CORE = ("max tanh2", "norm inf", "amax rows", "clip")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "name", [n if n in CORE else pytest.param(n, marks=pytest.mark.slow) for n in sorted(FUSED)]
)
def test_extremum_gradients_compiled_match_interpreter(name, dtype):
    fn, shape = FUSED[name]
    grad_c, grad_i = graphc.jit(graphc.grad(fn)), _interp(graphc.grad(fn))
    tan_c, tan_i = graphc.jit(_tangent(fn)), _interp(_tangent(fn))
    for k, x in enumerate(_random_inputs(shape, dtype, 12, seed=len(name))):
        g = grad_c(x)
        _close(g, grad_i(x), dtype)
        assert np.any(g != 0), f"gradient vanished at input {k}"
        t = np.random.default_rng(k).standard_normal(shape).astype(dtype)
        _close(tan_c(x, t), tan_i(x, t), dtype)
        # forward and reverse mode agree on the same derivative
        _close(tan_c(x, t), np.sum(g.astype(np.float64) * t), dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["max tanh2", "amax rows", "clip", "norm inf", "ptp"])
def test_extremum_hessians_compiled_match_interpreter(name, dtype):
    fn, shape = FUSED[name]
    if len(shape) > 1:
        shape = (3,) + shape[1:]
    h_c, h_i = graphc.jit(graphc.hessian(fn)), _interp(graphc.hessian(fn))
    for x in _random_inputs(shape, dtype, 3, seed=7):
        _close(h_c(x), h_i(x), dtype)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["max tanh2", "min fma", "amax rows", "maximum", "abs", "ptp"])
def test_extremum_derivatives_match_finite_differences(name):
    fn, shape = FUSED[name]
    for x in _random_inputs(shape, np.float64, 2, seed=3):
        graphc.check_grads(fn, (x,), order=2, backend="numba")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extremum_gradient_through_saved_residuals(dtype):
    """graphc.vjp runs a forward graph and a backward graph that recomputes the fused operand
    from the input and compares it with the saved maximum."""

    def f(x):
        return np.max(np.tanh(x) ** 2 + x * x * 0.5 + 1, axis=-1)

    for x in _random_inputs((8, 5), dtype, 6, seed=11):
        ct = np.ones(8, dtype)
        out, back = graphc.vjp(f, x)
        out_i, back_i = graphc.vjp(f, x, backend="interpreter")
        _close(out, out_i, dtype)
        (g,) = back(ct)
        _close(g, back_i(ct)[0], dtype)
        assert np.all(np.sum(g != 0, axis=-1) >= 1), g


def test_ties_split_the_same_way_compiled_and_interpreted():
    """Exact ties share the gradient (documented), in both modes and on both backends, also
    when one side of the tie is an expression an FMA would round differently (x*y + w against
    NumPy's rounded x*y + w)."""
    rng = np.random.default_rng(2)
    x, y, w = (rng.standard_normal(64) for _ in range(3))
    c = x * y + w

    def pair_tie(x):
        return np.sum(np.maximum(x * y + w, c))

    def row_tie(x):
        return np.max(x * 0.0 + 0.5 * x[0] + x[0] * 0.25)

    for backend in ("numba", "interpreter"):
        g = graphc.jit(graphc.grad(pair_tie), backend=backend)(x)
        np.testing.assert_array_equal(g, 0.5 * y)
        t = graphc.jit(_tangent(pair_tie), backend=backend)(x, np.ones(64))
        assert t == pytest.approx(0.5 * np.sum(y), rel=1e-12)
        g = graphc.jit(graphc.grad(row_tie), backend=backend)(x[:5])
        # every element ties: x[0] gets the whole derivative of the shared value, the others
        # their share of the zero x * 0.0
        np.testing.assert_allclose(g, [0.75, 0, 0, 0, 0], atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_arithmetic_rounds_like_numpy(dtype):
    """No contraction into FMAs: x*y - z and x*y + z are NumPy's bits, so a product that NumPy
    rounds to exactly z gives 0 (an FMA would give the rounding error), and prod's rule sees the
    zero that the value has."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 2.0, 64).astype(dtype)
    y = rng.uniform(0.5, 2.0, 64).astype(dtype)
    z = x * y  # rounded products
    w = rng.standard_normal(64).astype(dtype)
    # one expression per kernel: an FMA forms where the product has a single use
    for f, want in (
        (lambda x, y, z, w: x * y - z, x * y - z),
        (lambda x, y, z, w: x * y + w, x * y + w),
        (lambda x, y, z, w: (x * y - z) * w + x, (x * y - z) * w + x),
        (lambda x, y, z, w: np.sum(x * y - z), np.float64(0)),
    ):
        got = graphc.jit(f)(x, y, z, w)
        assert got.dtype == dtype and np.array_equal(got, want), np.count_nonzero(got != want)

    def f(x):
        return np.prod(x * y[:4] - z[:4] + 1.0) + np.sum(np.where(x * y[:4] - z[:4] == 0, x, 0))

    xs = x[:4]
    _close(graphc.jit(graphc.grad(f))(xs), _interp(graphc.grad(f))(xs), dtype)
