"""Random-program conformance: compiled results and derivatives against NumPy, graphc's
interpreter and finite differences, in float32 and float64, to first and second order.

The programs (tests/reliability/programs.py) draw from elementwise functions, broadcasting
binary operations, reductions over every axis form, shape operations, indexing, concatenation
and matrix products. Each check compares a whole array against a tolerance relative to the
array's scale, so that a single wrong element (a kernel reading the wrong index, a dropped
broadcast, a vanished derivative) fails it.
"""

from __future__ import annotations

import numpy as np
import pytest
from reliability.programs import REDUCTIONS, axis_forms, generate, loss_weights, make_loss

import graphc

# the first 32, and seeds of programs that found faults (a row kernel reading row sums along
# the wrong axis; einsum's broadcasting of length-1 axes)
SEEDS = [*range(32), 51, 138, 191, 198]


def close(got, want, rtol: float, what: str, prog) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}\n{prog}"
    scale = float(np.max(np.abs(want), initial=0.0))
    err = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
    assert err <= rtol * (1.0 + scale), f"{what}: max error {err:.3g} (scale {scale:.3g})\n{prog}"


def inputs(prog, dtype, salt: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(prog.seed + 7919 * salt)
    return [rng.standard_normal(s).astype(dtype) for s in prog.shapes]


def _fd_directional(loss, xs, ds, h: float) -> float:
    plus = loss(*[x + h * d for x, d in zip(xs, ds, strict=True)])
    minus = loss(*[x - h * d for x, d in zip(xs, ds, strict=True)])
    return float((plus - minus) / (2 * h))


@pytest.mark.parametrize("seed", SEEDS)
def test_values_float64(seed):
    prog = generate(seed)
    xs = inputs(prog, np.float64)
    want = prog(*xs)
    got = graphc.jit(prog)(*xs)
    interp = graphc.jit(prog, backend="interpreter")(*xs)
    for k, (g, i, w) in enumerate(zip(got, interp, want, strict=True)):
        assert np.asarray(g).dtype == np.asarray(w).dtype, f"output {k} dtype\n{prog}"
        close(g, w, 1e-12, f"compiled output {k}", prog)
        close(i, w, 1e-12, f"interpreted output {k}", prog)


@pytest.mark.parametrize("seed", SEEDS)
def test_values_and_gradients_float32(seed):
    """float32 results have NumPy's dtypes and match float64 NumPy to float32 accuracy; the
    compiled float32 gradient matches the float64 one."""
    prog = generate(seed)
    xs = inputs(prog, np.float32)
    want32 = prog(*xs)
    want64 = prog(*[x.astype(np.float64) for x in xs])
    got = graphc.jit(prog)(*xs)
    for k, (g, w32, w64) in enumerate(zip(got, want32, want64, strict=True)):
        assert np.asarray(g).dtype == np.asarray(w32).dtype, f"output {k} dtype\n{prog}"
        close(g, w64, 2e-4, f"float32 output {k}", prog)
    loss32 = make_loss(prog, loss_weights(prog, np.float32))
    loss64 = make_loss(prog, loss_weights(prog, np.float64))
    argnums = tuple(range(len(xs)))
    g32 = graphc.jit(graphc.grad(loss32, argnums))(*xs)
    g64 = graphc.grad(loss64, argnums, backend="interpreter")(*[x.astype(np.float64) for x in xs])
    for k, (a, b) in enumerate(zip(g32, g64, strict=True)):
        assert a.dtype == np.float32, f"gradient {k} dtype {a.dtype}\n{prog}"
        close(a, b, 2e-3, f"float32 gradient {k}", prog)


@pytest.mark.parametrize("seed", SEEDS)
def test_derivatives_float64(seed):
    """Reverse mode (compiled and interpreted), forward mode and a Hessian-vector product
    (forward over reverse) agree with each other and with central differences."""
    prog = generate(seed)
    xs = inputs(prog, np.float64)
    ds = inputs(prog, np.float64, salt=1)
    loss = make_loss(prog, loss_weights(prog, np.float64))
    argnums = tuple(range(len(xs)))
    grad_c = graphc.jit(graphc.grad(loss, argnums))
    g = grad_c(*xs)
    g_i = graphc.grad(loss, argnums, backend="interpreter")(*xs)
    for k, (a, b) in enumerate(zip(g, g_i, strict=True)):
        close(a, b, 1e-11, f"gradient {k} compiled vs interpreted", prog)
    gd = sum(float(np.sum(a * d)) for a, d in zip(g, ds, strict=True))
    scale = 1.0 + sum(float(np.sum(np.abs(a * d))) for a, d in zip(g, ds, strict=True))
    fd = _fd_directional(loss, xs, ds, 1e-6)
    tol = 1e-6 * scale + 1e-9 * (1.0 + abs(float(loss(*xs))))
    assert abs(fd - gd) <= tol, (fd, gd, str(prog))

    _, tangent = graphc.jvp(loss, tuple(xs), tuple(ds))
    assert abs(float(tangent) - gd) <= 1e-10 * scale, (tangent, gd, str(prog))

    def hvp(*a):
        return graphc.jvp(graphc.grad(loss, argnums), tuple(a[: len(xs)]), tuple(a[len(xs) :]))[1]

    hv = graphc.jit(hvp)(*xs, *ds)
    hv_i = graphc.jit(hvp, backend="interpreter")(*xs, *ds)
    h = 1e-5
    gp = grad_c(*[x + h * d for x, d in zip(xs, ds, strict=True)])
    gm = grad_c(*[x - h * d for x, d in zip(xs, ds, strict=True)])
    for k in range(len(xs)):
        close(hv[k], hv_i[k], 1e-10, f"Hessian-vector product {k} compiled vs interpreted", prog)
        fd2 = (gp[k] - gm[k]) / (2 * h)
        close(hv[k], fd2, 1e-5 * (1 + float(np.max(np.abs(g[k])))), f"Hv {k} vs differences", prog)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_every_axis_form(dtype):
    """Every reduction over every axis form (None, each axis positive and negative, pairs in
    both orders, all axes) with and without keepdims: values and gradients, in one program."""
    x = np.random.default_rng(5).standard_normal((2, 3, 4)).astype(dtype)
    cases = [(name, ax, kd) for name in REDUCTIONS for ax in axis_forms(3) for kd in (False, True)]

    def prog(v):
        return tuple(REDUCTIONS[n](v, axis=ax, keepdims=kd) for n, ax, kd in cases)

    want = prog(x.astype(np.float64))
    got = graphc.jit(prog)(x)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for (n, ax, kd), g, w in zip(cases, got, want, strict=True):
        assert np.asarray(g).dtype == dtype, (n, ax, kd)
        close(g, w, rtol, f"{n}(axis={ax}, keepdims={kd})", "")

    weights = [np.random.default_rng(k).standard_normal(np.shape(w)) for k, w in enumerate(want)]
    weights = [w.astype(dtype) for w in weights]

    def loss(v):
        return sum(np.sum(w * o) for w, o in zip(weights, prog(v), strict=True))

    g = graphc.jit(graphc.grad(loss))(x)
    g_ref = graphc.grad(loss, backend="interpreter")(x.astype(np.float64))
    close(g, g_ref, 1e-11 if dtype == np.float64 else 2e-4, "gradient of all reductions", "")
    if dtype == np.float64:
        d = np.random.default_rng(6).standard_normal(x.shape)
        fd = _fd_directional(loss, [x], [d], 1e-6)
        assert abs(fd - float(np.sum(g * d))) <= 1e-6 * (1 + float(np.sum(np.abs(g * d))))


@pytest.mark.parametrize("n", [16, 32, 48])
def test_full_max_reduction_kernels_compile(n):
    """A fused kernel that reduces a whole array and reads the result (one row) has no loop
    around its body: LLVM's loop vectorizer took time exponential in the length of the unrolled
    max/min select chains inside such a loop (minutes for 16-32 elements, a program of this
    suite hung). Values and gradients are checked too."""
    x = np.random.default_rng(n).standard_normal(n)

    def f(v):
        m = np.max(np.tanh(v) ** 2 + 1)
        return np.sqrt(m * m + 1.0) + np.min(np.sin(v)) * m

    step = graphc.jit(graphc.value_and_grad(f))
    src = step.lower(x).source
    assert "for _row in range(lo, hi)" not in src
    value, g = step(x)
    assert abs(value - f(x)) <= 1e-12 * abs(f(x))
    g_ref = graphc.grad(f, backend="interpreter")(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-15)
    assert np.count_nonzero(g) >= 1


SQUARE_BROADCASTS = [
    # (function, shape, fused kernels when the per-row value lines up with the rows)
    (lambda x: x + np.sum(x, axis=1), (4, 4), None),
    (lambda x: x * np.max(x, axis=-1), (3, 3), None),
    (lambda x: x - np.mean(x, axis=1), (5, 5), None),
    (lambda x: x / (1.0 + np.std(x, axis=1)), (4, 4), None),
    (lambda x: np.exp(x - np.max(x, axis=1)) * np.min(x, axis=1), (4, 4), None),
    (lambda x: x + np.sum(x, axis=2), (3, 3, 3), None),
    (lambda x: x + np.sum(x, axis=(1, 2)), (2, 3, 2), None),
    (lambda x: np.sum(x, axis=1) + np.sum(x, axis=1, keepdims=True), (3, 3), None),
    (lambda x: x + np.sum(x, axis=1, keepdims=True), (4, 4), 1),
    (lambda x: np.exp(x - np.max(x, axis=-1, keepdims=True)), (4, 4), 1),
    (lambda x: x * np.sum(x), (4, 4), 1),
]


@pytest.mark.parametrize("k", range(len(SQUARE_BROADCASTS)))
def test_reduction_results_broadcast_like_numpy(k):
    """A reduction's result broadcast back against its operand lines up from the right, as
    NumPy's broadcasting does: on a square operand the row results of axis=1 run along the
    columns. Fusion keeps a per-row value in the operand's kernel only where it lines up with
    the rows (keepdims=True, a full reduction)."""
    f, shape, kernels = SQUARE_BROADCASTS[k]
    x = np.random.default_rng(k).standard_normal(shape)
    step = graphc.jit(f)
    close(step(x), f(x), 1e-12, "value", "")
    if kernels is not None:
        fused = [n for n in step.lower(x).optimized.equations if n.op == "fused"]
        assert len(fused) == kernels
    g = graphc.jit(graphc.grad(lambda v: np.sum(np.sin(f(v)))))(x)
    g_ref = graphc.grad(lambda v: np.sum(np.sin(f(v))), backend="interpreter")(x)
    close(g, g_ref, 1e-11, "gradient", "")


@pytest.mark.parametrize(
    "spec, shapes",
    [
        ("ij,jk->ik", [(2, 1), (3, 4)]),
        ("ij,ij->j", [(2, 1), (2, 4)]),
        ("i,i->", [(1,), (4,)]),
        ("bij,bjk->bik", [(1, 2, 3), (4, 3, 2)]),
        ("ij,kj->ik", [(3, 1), (2, 5)]),
    ],
)
def test_einsum_broadcasts_axes_of_length_one(spec, shapes):
    """An index of length 1 in one operand broadcasts against the others, as NumPy's einsum
    does; values and gradients (against central differences)."""
    rng = np.random.default_rng(len(spec))
    a, b = (rng.standard_normal(s) for s in shapes)

    def f(a, b):
        return np.sum(np.sin(np.einsum(spec, a, b)))

    close(
        graphc.jit(lambda a, b: np.einsum(spec, a, b))(a, b), np.einsum(spec, a, b), 1e-12, spec, ""
    )
    ga, gb = graphc.jit(graphc.grad(f, (0, 1)))(a, b)
    da, db = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    fd = _fd_directional(f, [a, b], [da, db], 1e-6)
    assert abs(fd - float(np.sum(ga * da) + np.sum(gb * db))) <= 1e-6 * (1 + abs(fd))
