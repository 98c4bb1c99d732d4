"""Compiled loops and branches: each scan, while_loop and cond is one Numba function.

Values against the reference interpreter and unrolled NumPy (float32 and float64, reverse,
lengths 0 and 1, pytrees, integer carries, closures, nesting); the structure of the generated
code (one loop function whatever the trip count, no fallback for the common ops, BLAS from the
loop, the condition in locals); run-time errors from compiled code; and the pass pipeline
optimizing bodies as graphs of their own.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import graphc
from graphc.codegen import generate
from graphc.ir import Graph
from graphc.ops import REGISTRY
from graphc.ops.control import TripLimitError
from passes import COMPILE_PIPELINE, run_pipeline
from passes.manager import program_graphs, program_regions

RNG = np.random.default_rng(11)


def _module(fn, *args):
    """(the generated source, its driver) of `fn` traced on `args` and optimized."""
    g = run_pipeline(graphc.trace(fn, *args), COMPILE_PIPELINE)
    return generate(g)


def _close(got, want, rtol=1e-5, atol=1e-6):
    gl, wl = graphc.tree_util.tree_leaves(got), graphc.tree_util.tree_leaves(want)
    assert len(gl) == len(wl)
    for g, w in zip(gl, wl, strict=True):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def _check(fn, *args, rtol=1e-5, atol=1e-6):
    """Compiled `fn` equals the reference interpreter on `args`, with no NumPy fallback."""
    jf = graphc.jit(fn)
    got = jf(*args)
    g = graphc.trace(fn, *args)
    want = graphc.evaluate(g, *graphc.tree_util.tree_leaves(args))
    _close(graphc.tree_util.tree_leaves(got), want, rtol, atol)
    assert jf.lower(*args).fallbacks == []
    return got


def _loop_code(source: str) -> str:
    """The generated loop functions' code, comments dropped."""
    start = source.index("@_njit")
    body = source[start : source.index("\ndef run(")]
    return "\n".join(ln for ln in body.splitlines() if not ln.lstrip().startswith("#"))


def rnn(W, U, b, h0, xs):
    def step(h, x):
        h = np.tanh(W @ h + U @ x + b)
        return h, h * 2.0

    return graphc.scan(step, h0, xs)


def rnn_unrolled(W, U, b, h0, xs):
    h, ys = h0, []
    for x in xs:
        h = np.tanh(W @ h + U @ x + b)
        ys.append(h * 2.0)
    return h, np.stack(ys) if ys else np.zeros((0, *h0.shape), h0.dtype)


def rnn_data(T, dt=np.float32, H=5, D=3):
    return (
        (RNG.standard_normal((H, H)) * 0.4).astype(dt),
        (RNG.standard_normal((H, D)) * 0.4).astype(dt),
        (RNG.standard_normal(H) * 0.1).astype(dt),
        np.zeros(H, dt),
        RNG.standard_normal((T, D)).astype(dt),
    )


# ---------------------------------------------------------------------------------------------
# scan


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("T", [0, 1, 7])
def test_rnn_scan_matches_interpreter_and_unrolled_numpy(dt, T):
    data = rnn_data(T, dt)
    got = _check(rnn, *data)
    tol = 1e-5 if dt == np.float32 else 1e-12
    _close(got, rnn_unrolled(*data), rtol=tol, atol=tol)


def test_rnn_step_is_one_loop_function_with_blas_and_no_fallback():
    source, d = _module(rnn, *rnn_data(6))
    assert d.fallbacks == []
    assert len(d.loops.functions) == 1
    code = _loop_code(source)
    assert re.search(r"for t in range\(T\):", code)
    assert code.count("_dot_float32_") >= 2  # both products call BLAS from inside the loop
    assert "_impl(" not in source and "_call(" not in source
    # the carry is double-buffered and the step's kernel writes the next carry in place
    assert "cur0, nxt0 = nxt0, cur0" in code
    (kern,) = [k for k in d.kernels]
    assert re.search(rf"{kern.name}\([^)]*nxt0", code)


def test_generated_code_is_the_same_for_8_and_800_steps():
    mods = [_module(rnn, *rnn_data(T)) for T in (8, 800)]
    (s8, d8), (s800, d800) = mods
    assert [k.source for k in d8.kernels] == [k.source for k in d800.kernels]
    assert [f.source for f in d8.loops.functions] == [f.source for f in d800.loops.functions]
    assert len(d8.kernels) == len(d800.kernels) == 1
    assert _loop_code(s8) == _loop_code(s800)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("T", [0, 1, 5])
def test_reverse_scan(dt, T):
    xs = RNG.standard_normal((T, 3)).astype(dt)

    def f(xs):
        return graphc.scan(
            lambda c, x: (c * 0.5 + x, np.sum(c) + x[0]), np.zeros(3, dt), xs, reverse=True
        )

    got = _check(f, xs)
    c, ys = np.zeros(3, dt), np.zeros(T, dt)
    for t in reversed(range(T)):
        ys[t] = np.sum(c) + xs[t, 0]
        c = c * dt(0.5) + xs[t]
    _close(got, (c, ys), rtol=1e-6)


def test_pytree_carries_integer_carries_and_closures():
    params = {"a": np.float32(0.5), "b": np.ones(2, np.float32)}

    def f(params, init):
        def step(c, _):
            s, (u, v) = c["s"], c["uv"]
            s = s * params["a"] + np.sum(u)
            return {"s": s, "uv": (u + params["b"], v - 1)}, (s, u, v * 2)

        return graphc.scan(step, init, None, length=4)

    init = {"s": np.float32(1), "uv": (np.zeros(2, np.float32), np.int64(10))}
    got = _check(f, params, init)
    s, u, v = np.float32(1), np.zeros(2, np.float32), np.int64(10)
    ss, us, vs = [], [], []
    for _ in range(4):
        s = s * params["a"] + np.sum(u)
        ss.append(s)
        us.append(u)
        vs.append(v * 2)
        u, v = u + params["b"], v - 1
    _close(got, ({"s": s, "uv": (u, v)}, (np.stack(ss), np.stack(us), np.stack(vs))))


def test_integer_and_boolean_carries_and_integer_matmul():
    M = np.arange(9, dtype=np.int64).reshape(3, 3) % 3
    xs = np.arange(12, dtype=np.int64).reshape(4, 3)
    _check(
        lambda M, xs: graphc.scan(lambda c, x: (M @ c + x, np.sum(c)), np.ones(3, np.int64), xs),
        M,
        xs,
    )
    flips = RNG.standard_normal(6)
    _check(
        lambda xs: graphc.scan(lambda c, x: (np.logical_xor(c, x > 0), c), np.bool_(False), xs),
        flips,
    )


def test_nested_scan_is_a_loop_function_calling_another():
    def f(xss):
        def outer(c, xs):
            inner_c, _ = graphc.scan(lambda a, x: (a * 0.5 + x + c, None), 0.0, xs)
            return c + inner_c, inner_c

        return graphc.scan(outer, 0.0, xss)

    xss = RNG.standard_normal((3, 4))
    got = _check(f, xss)
    c, want = 0.0, []
    for xs in xss:
        a = 0.0
        for x in xs:
            a = a * 0.5 + x + c
        c, _ = c + a, want.append(a)
    _close(got, (np.float64(c), np.array(want)), rtol=1e-12)
    source, d = _module(f, xss)
    inner, outer = d.loops.functions
    assert re.search(rf"\b{inner.name}\(", _loop_code(source).split(f"def {outer.name}")[1])


def test_body_ops_compile_inside_the_loop():
    W = RNG.standard_normal((4, 4)).astype(np.float32)
    idx = np.array([2, 0, 3, -1])

    def f(W, xs):
        def step(h, x):
            a = np.concatenate([h[:2], x[::-1][:2]])  # slices, flip, concatenate
            b = h[idx] + np.where(x > 0, x, 0.0)  # gather, where
            c = (h[None, :] @ W.T)[0] + np.max(x)  # a transposed operand, a reduction
            d = np.pad(h[:3], (1, 0))
            h = np.tanh(a + b + c * 0.1 + d + np.broadcast_to(np.sum(x), (4,)))
            return h, (h.T, np.outer(h, x) @ W, np.argmax(h), np.argmin(W * x, axis=1))

        return graphc.scan(step, np.zeros(4, np.float32), xs)

    _check(f, W, RNG.standard_normal((5, 4)).astype(np.float32))


def test_batched_products_and_transposes_inside_the_loop():
    A = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    B = RNG.standard_normal((4, 5)).astype(np.float32)

    def f(A, B, xs):
        def step(c, x):
            t = np.transpose(A, (1, 0, 2)) * x[0]
            p = A @ B  # a stack of products by one matrix
            q = np.swapaxes(A, 1, 2) @ A  # two stacks
            r = A @ np.broadcast_to(B * x[1], (2, 4, 5))
            return c + t.sum() + 0.01 * (p.sum() + q.sum()) + r.mean(), (t[0], p[1, 0])

        return graphc.scan(step, np.float32(0), xs)

    _check(f, A, B, RNG.standard_normal((3, 4)).astype(np.float32), rtol=1e-5, atol=1e-5)


def test_loops_of_one_body_and_different_lengths_share_a_function():
    def f(xs):
        step = lambda c, x: (c * 0.5 + x, c)  # noqa: E731
        c, ys = graphc.scan(step, np.zeros(3), xs[:4])
        c, zs = graphc.scan(step, c, xs[4:])
        return c, ys, zs

    xs = RNG.standard_normal((7, 3))
    got = _check(f, xs)
    c, ys = np.zeros(3), []
    for x in xs:
        ys.append(c)
        c = c * 0.5 + x
    _close(got, (c, np.stack(ys[:4]), np.stack(ys[4:])), rtol=1e-12)
    _, d = _module(f, xs)
    assert len(d.loops.functions) == 1


def test_a_long_scan_runs():
    xs = np.full(10_000, 0.5, np.float32)
    c, ys = graphc.jit(lambda xs: graphc.scan(lambda c, x: (c * 0.9 + x, c), np.float32(0), xs))(xs)
    assert ys.shape == (10_000,) and abs(float(c) - 5.0) < 1e-3


def test_a_body_op_without_a_compiled_form_keeps_the_loop_in_python():
    def f(xs):
        return graphc.scan(lambda c, x: (np.linalg.inv(c + np.eye(2) * x), None), np.eye(2), xs)[0]

    xs = np.arange(1.0, 4.0)
    jf = graphc.jit(f)
    got = jf(xs)
    np.testing.assert_allclose(got, graphc.evaluate(graphc.trace(f, xs), xs)[0], rtol=1e-12)
    (note,) = jf.lower(xs).fallbacks
    assert note.startswith("scan (") and "inv" in note and "runs in Python" in note


# ---------------------------------------------------------------------------------------------
# fori_loop and while_loop


def test_fori_loop_static_and_traced_bounds():
    def body(i, v):
        return v * 0.9 + i.astype(np.float32)

    x = np.ones(3, np.float32)
    want = x.copy()
    for i in range(7):
        want = want * np.float32(0.9) + np.float32(i)
    _close(_check(lambda x: graphc.fori_loop(0, 7, body, x), x), want)
    _close(_check(lambda n, x: graphc.fori_loop(0, n, body, x), np.int64(7), x), want)


def test_while_loop_condition_is_computed_in_locals():
    def f(n, x):
        return graphc.fori_loop(0, n, lambda i, v: v * 0.5 + 1.0, x)

    source, d = _module(f, np.int64(5), np.ones(2))
    code = _loop_code(source)
    # the condition is a comparison of two scalar carries held in locals, then the test
    m = re.search(r"\n(\s+)(\w+) = \(carry\d+ < carry\d+\)\n\s+if not \2:\n\s+break", code)
    assert m, code
    _check(f, np.int64(5), np.ones(2))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_while_loop_data_dependent_trips(dt):
    def f(x):
        return graphc.while_loop(lambda v: np.sum(v) < 100.0, lambda v: v * 2.0, x)

    for x in (np.ones(3, dt), np.full(3, 50.0, dt), np.full(3, 3.0, dt)):
        got = _check(f, x)
        want = x.copy()
        while np.sum(want) < 100.0:
            want = want * dt(2.0)
        _close(got, want)


def test_while_loop_past_max_trips_raises_from_compiled_code():
    def f(x):
        return graphc.while_loop(lambda v: np.sum(v) < 100.0, lambda v: v * 2.0, x, max_trips=3)

    jf = graphc.jit(f)
    np.testing.assert_array_equal(jf(np.full(3, 10.0)), np.full(3, 40.0))  # 2 trips
    with pytest.raises(TripLimitError, match="max_trips=3"):
        jf(np.ones(3))
    assert jf.lower(np.ones(3)).fallbacks == []
    assert "_TripLimitError" in _loop_code(jf.lower(np.ones(3)).source)


def test_loops_and_branches_inside_a_scan():
    def f(xs):
        def step(c, x):
            n = graphc.while_loop(
                lambda v: v[0] < x, lambda v: (v[0] * 2.0, v[1] + 1), (np.float64(1.0), np.int64(0))
            )
            y = graphc.cond(x > 0.5, lambda a: a * 2.0, lambda a: a - 1.0, c)
            return y + n[1], n[0]

        return graphc.scan(step, np.float64(0.0), xs)

    _check(f, np.array([0.3, 5.0, 40.0, 0.7]))


# ---------------------------------------------------------------------------------------------
# cond and switch


@pytest.mark.parametrize("pred", [True, False])
def test_cond_values(pred):
    def f(p, x, w):
        return graphc.cond(p, lambda x: (x * w, np.sum(x)), lambda x: (-x, x[0]), x)

    _check(f, np.bool_(pred), np.arange(3, dtype=np.float32), np.float32(3))


@pytest.mark.parametrize("k", [-3, 0, 1, 2, 9])
def test_switch_clamps_the_index(k):
    def f(k, x):
        return graphc.switch(k, [np.sin, np.cos, lambda x: x.sum() + x], x)

    got = _check(f, np.int64(k), np.linspace(0, 1, 4))
    want = [np.sin, np.cos, lambda x: x.sum() + x][min(max(k, 0), 2)](np.linspace(0, 1, 4))
    _close(got, want, rtol=1e-12)


def test_only_the_taken_branch_runs():
    def f(p, x):
        def bad(x):  # would raise: the loop needs more trips than it may take
            return graphc.while_loop(lambda v: v[0] < 100.0, lambda v: v + 1.0, x, max_trips=2)

        return graphc.cond(p, bad, lambda x: x * 3.0, x)

    jf = graphc.jit(f)
    np.testing.assert_array_equal(jf(np.bool_(False), np.ones(2)), np.full(2, 3.0))
    with pytest.raises(TripLimitError):
        jf(np.bool_(True), np.ones(2))


# ---------------------------------------------------------------------------------------------
# bodies are optimized like graphs of their own


def test_pipeline_fuses_bodies_and_never_refuses_kernel_bodies():
    g = run_pipeline(graphc.trace(rnn, *rnn_data(4)), COMPILE_PIPELINE)
    (loop,) = [n for n in g.equations if n.op == "scan"]
    body = loop.attrs["body"]
    assert [n.op for n in body.equations if n.op == "fused"] == ["fused"]
    assert not any(n.op in ("tanh", "add") for n in body.equations)  # all inside the kernel
    (fused,) = [n for n in body.equations if n.op == "fused"]
    assert not any(n.op == "fused" for n in fused.attrs["body"].equations)
    # the op entries say which nested graphs are programs: loops' and branches', not kernels'
    assert REGISTRY["scan"].regions and not REGISTRY["fused"].regions
    assert program_regions(loop) == [body] and program_regions(fused) == []
    assert [gr for gr in program_graphs(g)] == [g, body]


def test_pipeline_optimizes_nested_bodies():
    def f(xss):
        def outer(c, xs):
            inner, _ = graphc.scan(lambda a, x: (a * 1.0 + x * 2.0 + x * 2.0, None), 0.0, xs)
            return c + inner, None

        return graphc.scan(outer, 0.0, xss)[0]

    g = run_pipeline(graphc.trace(f, np.ones((2, 3))), COMPILE_PIPELINE)
    graphs = program_graphs(g)
    assert len(graphs) == 3
    inner = graphs[-1]
    # simplified (a * 1.0 is a), deduplicated (x * 2.0 once) and fused into one kernel
    assert [n.op for n in inner.equations] == ["fused"]
    ops = [n.op for n in inner.equations[0].attrs["body"].equations]
    assert ops.count("mul") == 1
    assert isinstance(inner, Graph)
