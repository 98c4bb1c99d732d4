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
# the wrong axis; einsum's broadcasting of length-1 axes; a max over a broadcast operand
# whose kernel took minutes to compile)
SEEDS = [*range(32), 51, 138, 191, 198, 352]


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
    step = graphc.jit(prog)
    got = step(*xs)
    assert reductions_inside_invariant_loops(step.lower(*xs).source) == [], prog
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


def reductions_inside_invariant_loops(source: str) -> list[str]:
    """Loops of the generated kernels that hold a max/min reduction loop which does not use
    the outer loop's index (stores aside): `for i0` around a reduction over an operand
    broadcast along axis 0. LLVM takes time exponential in the unrolled select chain of such
    a nest."""
    import ast

    def is_chain(a: ast.AST) -> bool:
        return (
            isinstance(a, ast.Assign)
            and isinstance(a.value, ast.IfExp)
            and isinstance(a.targets[0], ast.Name)
            and a.targets[0].id.startswith("acc")
        )

    def reads(tree: ast.AST) -> set[str]:
        stored = {
            id(n)
            for s in ast.walk(tree)
            if isinstance(s, ast.Subscript) and isinstance(s.ctx, ast.Store)
            for n in ast.walk(s)
        }
        return {
            n.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in stored
        }

    found = []
    for fn in ast.parse(source).body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("kernel")):
            continue
        for outer in ast.walk(fn):
            if not isinstance(outer, ast.For) or not isinstance(outer.target, ast.Name):
                continue
            for inner in outer.body:
                if (
                    isinstance(inner, ast.For)
                    and any(is_chain(a) for a in ast.walk(inner))
                    and outer.target.id not in reads(inner)
                ):
                    found.append(f"{fn.name}: for {outer.target.id}")
    return found


def _bcast(v, shape):
    return np.broadcast_to(v, shape)


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


BROADCAST_REDUCTIONS = [
    # reductions whose operand is the same along kept axes (rows, columns, blocks)
    (lambda v: np.max(_bcast(v, (8, 32)), axis=1), (32,)),
    (lambda v: np.min(_bcast(v, (8, 32)), axis=1), (32,)),
    (lambda v: np.min(_bcast(v, (2, 4, 4)), axis=(1, 2)), (4, 4)),
    (lambda v: np.max(_bcast(v, (3, 100, 32)), axis=2), (3, 1, 32)),
    (lambda v: np.max(_bcast(v, (3, 100, 32)), axis=2, keepdims=True), (1, 1, 32)),
    (lambda v: v - np.max(_bcast(v, (3, 100, 32)), axis=2, keepdims=True), (3, 1, 32)),
    (lambda v: v - np.min(_bcast(v, (5, 16)), axis=1, keepdims=True), (16,)),
    (lambda v: _softmax(_bcast(v, (100, 24))), (24,)),
    (lambda v: _softmax(_bcast(v, (4, 20, 16)), axis=2), (4, 1, 16)),
    (lambda v: np.max(np.tanh(_bcast(v, (6, 5, 12))), axis=(0, 2)), (1, 1, 12)),
    (lambda v: np.max(_bcast(v, (6, 5, 12)) * 2.0, axis=(0, 2)), (6, 1, 12)),
    (lambda v: np.max(_bcast(v[:, None], (16, 8)), axis=0), (16,)),
    (lambda v: np.sum(_bcast(v, (8, 32)) ** 2, axis=1), (32,)),
    (lambda v: np.prod(1.0 + 0.1 * _bcast(v, (8, 16)), axis=1), (16,)),
    (lambda v: np.std(_bcast(v, (7, 16)), axis=1), (16,)),
    (lambda v: np.max(_bcast(v, (9, 16)), axis=1) + np.sum(_bcast(v, (9, 16)), axis=1), (16,)),
    # the reduction is the same in every row, what is computed from it is not
    (lambda v: v[:, :1] * np.min(_bcast(v[0], (16, 16)), axis=1, keepdims=True), (16, 16)),
    (lambda v: v[:, 0] * np.max(_bcast(v[0], (16, 16)), axis=1), (16, 16)),
    (lambda v: _softmax(_bcast(v[0], (8, 16)) + 0.0 * v[:, :1]), (8, 16)),
    (lambda v: v - np.max(_bcast(v[:, :1, :], (4, 6, 16)), axis=2, keepdims=True), (4, 6, 16)),
]


@pytest.mark.parametrize("k", range(len(BROADCAST_REDUCTIONS)))
def test_reductions_of_broadcast_operands(k):
    """A reduction whose operand does not vary along a kept axis is computed once and stored
    along it: no kernel keeps a max/min chain inside a loop its loads do not depend on (such
    kernels took minutes to compile, some never finished). Values (with NaN propagation) and
    gradients match NumPy and the interpreter."""
    f, shape = BROADCAST_REDUCTIONS[k]
    x = np.random.default_rng(k).standard_normal(shape)
    step = graphc.jit(f)
    assert reductions_inside_invariant_loops(step.lower(x).source) == []
    close(step(x), f(x), 1e-12, "value", "")
    x32 = x.astype(np.float32)
    close(graphc.jit(f)(x32), f(x), 2e-5, "float32 value", "")
    xn = x.copy()
    xn.flat[len(xn.flat) // 2] = np.nan
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(np.isnan(step(xn)), np.isnan(f(xn)))

    def loss(v):
        return np.sum(np.sin(f(v)))

    g = graphc.jit(graphc.grad(loss))(x)
    src = graphc.jit(graphc.grad(loss)).lower(x).source
    assert reductions_inside_invariant_loops(src) == []
    close(g, graphc.grad(loss, backend="interpreter")(x), 1e-11, "gradient", "")


def test_invariant_loop_check_finds_the_pattern():
    """The structural check above recognises the kernel shapes it guards against."""
    src = (
        "def kernel0(x0, r0, lo, hi, chunk):\n"
        "    for i0 in range(lo, hi):\n"
        "        acc0 = _c0\n"
        "        for i1 in range(0, 32):\n"
        "            a0 = x0[_ix(i1)]\n"
        "            acc0 = acc0 if (acc0 >= a0 or acc0 != acc0) else a0\n"
        "        r0[_ix(i0)] = acc0\n"
    )
    assert reductions_inside_invariant_loops(src) == ["kernel0: for i0"]
    varying = src.replace("x0[_ix(i1)]", "x0[_ix(i0 * 32 + i1)]")
    assert reductions_inside_invariant_loops(varying) == []
    # a load after the reduction loop does not make the loop itself vary
    after = src.replace("r0[_ix(i0)] = acc0\n", "r0[_ix(i0)] = acc0 * x0[_ix(i0)]\n")
    assert reductions_inside_invariant_loops(after) == ["kernel0: for i0"]
