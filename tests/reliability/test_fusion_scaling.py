"""Fusion on large graphs: legality checks that scale, decisions equal to exhaustive checks,
and `.lower()` sharing the compile of a call."""

import numpy as np
import pytest
from conftest import random_program

import graphc
import passes.fuse as fuse_mod
from graphc import numpy as gnp
from passes import DEFAULT_PIPELINE, run_pipeline
from passes.fuse import fuse, fuse_pass


def optimized(fn, *specs):
    """`fn` traced and run through the pipeline up to (not including) fusion."""
    return run_pipeline(graphc.trace(fn, *specs), DEFAULT_PIPELINE)


def unrolled_rnn(steps: int, hidden: int = 4):
    """value_and_grad of an RNN written as a Python loop: every step reads the same weights."""

    def loss(W, U, b, xs):
        h = np.zeros(hidden, dtype=np.float32)
        total = 0.0
        for t in range(steps):
            h = np.tanh(W @ h + U @ xs[t] + b)
            total = total + np.sum(h * h)
        return total

    specs = [f"f32[{hidden},{hidden}]", f"f32[{hidden},3]", f"f32[{hidden}]", f"f32[{steps},3]"]
    return loss, [graphc.spec(s) for s in specs]


def elementwise_loop(steps: int):
    """An unrolled loop with no contractions: each step mixes the carried value with a shared
    parameter, a row reduction and a broadcast, so groups of different steps could merge
    sideways if legality allowed."""

    def loss(x, p, q):
        total = 0.0
        for t in range(steps):
            y = np.sin(x * p) + q
            x = y - np.max(y, axis=-1, keepdims=True) if t % 3 == 0 else np.tanh(y) * 0.5
            total = total + np.sum(x * q)
        return total

    return loss, [graphc.spec("f32[3,5]"), graphc.spec("f32[3,5]"), graphc.spec("f32[5]")]


def deep_chain(steps: int):
    def loss(x):
        for i in range(steps):
            x = np.sin(x) if i % 2 else np.tanh(x)
        return np.sum(x)

    return loss, [graphc.spec("f32[8]")]


def fan_out(steps: int):
    """Many branches reading one input, combined pairwise: wide sibling sets."""

    def loss(x, w):
        parts = [np.exp(x * (k + 1) * 0.01) * w for k in range(steps)]
        while len(parts) > 1:
            parts = [a + b for a, b in zip(parts[::2], parts[1::2], strict=False)] + (
                [parts[-1]] if len(parts) % 2 else []
            )
        return np.sum(parts[0])

    return loss, [graphc.spec("f32[6]"), graphc.spec("f32[6]")]


# -- legality work grows about linearly ------------------------------------------------------


@pytest.mark.parametrize(
    "family, n",
    [(unrolled_rnn, 25), (elementwise_loop, 20), (deep_chain, 400), (fan_out, 40)],
)
def test_legality_search_work_grows_linearly(family, n):
    steps = {}
    sizes = {}
    for m in (n, 4 * n):
        fn, specs = family(m)
        g = optimized(graphc.value_and_grad(fn, argnums=tuple(range(len(specs)))), *specs)
        report = fuse(g).info["fusion"]
        steps[m], sizes[m] = report.search_steps, len(g.nodes)
    assert steps[n] > 0
    growth = steps[4 * n] / steps[n]
    size_growth = sizes[4 * n] / sizes[n]
    # the graph grows ~4x: quadratic work would grow ~16x; n log n (order repairs) a bit
    # over 4x
    assert growth <= 2 * size_growth, (steps, sizes)


# -- the fast checks decide exactly what exhaustive searches decide ---------------------------


def _exhaustive_path(C, u: int, v: int) -> bool:
    """Is there a path u -> ... -> v through another node? (no rank or position bounds)"""
    stack = [w for w in C.succ[u] if w != v]
    seen = set(stack)
    while stack:
        w = stack.pop()
        for x in C.succ[w]:
            if x == v:
                return True
            if x not in seen:
                seen.add(x)
                stack.append(x)
    return False


def _exhaustive_would_cycle(self, a, b, frontier=None):
    return _exhaustive_path(self.C, a, b) or _exhaustive_path(self.C, b, a)


def _checked_contract(original):
    """contract, then verify that the rank is still a topological order of the whole graph."""

    def contract(self, a, b):
        original(self, a, b)
        for u, succ in self.succ.items():
            for w in succ:
                assert self.rank[u] < self.rank[w], "rank no longer topological after a merge"
        for r, v in enumerate(self.at):
            assert v is None or self.rank[v] == r

    return contract


def _fused_text(g) -> str:
    out, report = fuse_pass(g)
    return str(out) + "\n" + "\n".join(report.notes)


def _programs():
    for seed in range(12):
        prog = random_program(seed, steps=14)
        yield (
            f"random{seed}",
            lambda x, y, prog=prog: sum(np.sum(v * v) for v in prog(x, y)),
            [graphc.spec("f32[3,4]")] * 2,
        )
    for family, n in [(unrolled_rnn, 6), (elementwise_loop, 7), (deep_chain, 40), (fan_out, 9)]:
        fn, specs = family(n)
        yield family.__name__, fn, specs

    def shared_siblings(x, a, b):
        # sibling groups over one input, some of which must stay apart (one feeds the other)
        u = np.exp(x) * a
        v = np.sin(x) + np.sum(u, axis=-1, keepdims=True)
        w = np.cos(x) * b
        return np.sum(u * v) + np.max(w * x) + np.sum(gnp.sigmoid(x + v))

    yield "siblings", shared_siblings, [graphc.spec("f32[4,5]")] * 2 + [graphc.spec("f32[5]")]


@pytest.mark.parametrize("name, fn, specs", list(_programs()), ids=lambda v: str(v)[:20])
def test_fusion_decisions_equal_exhaustive_checks(monkeypatch, name, fn, specs):
    for g in (
        optimized(fn, *specs),
        optimized(graphc.value_and_grad(fn, argnums=tuple(range(len(specs)))), *specs),
    ):
        fast = _fused_text(g)
        with monkeypatch.context() as m:
            m.setattr(fuse_mod._Groups, "would_cycle", _exhaustive_would_cycle)
            m.setattr(
                fuse_mod._Pairs,
                "would_cycle",
                lambda self, a, b, f=None: _exhaustive_would_cycle(self.G, a, b),
            )
            m.setattr(
                fuse_mod._Contracted,
                "contract",
                _checked_contract(fuse_mod._Contracted.contract),
            )
            slow = _fused_text(g)
        assert fast == slow, name


def test_unrolled_rnn_compiles_and_matches_numpy():
    steps, hidden = 30, 4
    fn, _ = unrolled_rnn(steps, hidden)
    rng = np.random.default_rng(1)
    W = (rng.standard_normal((hidden, hidden)) * 0.4).astype(np.float32)
    U = (rng.standard_normal((hidden, 3)) * 0.4).astype(np.float32)
    b = (rng.standard_normal(hidden) * 0.1).astype(np.float32)
    xs = rng.standard_normal((steps, 3)).astype(np.float32)
    value, (dW, dU, db) = graphc.jit(graphc.value_and_grad(fn, argnums=(0, 1, 2)))(W, U, b, xs)
    np.testing.assert_allclose(value, fn(W, U, b, xs), rtol=1e-5)
    # central differences in float64 on the NumPy function
    W64, U64, b64, xs64 = (a.astype(np.float64) for a in (W, U, b, xs))
    eps = 1e-6
    for got, arg in ((dW, 0), (dU, 1), (db, 2)):
        base = [W64, U64, b64]
        num = np.zeros_like(base[arg])
        for idx in np.ndindex(num.shape):
            plus = [a.copy() for a in base]
            minus = [a.copy() for a in base]
            plus[arg][idx] += eps
            minus[arg][idx] -= eps
            num[idx] = (fn(*plus, xs64) - fn(*minus, xs64)) / (2 * eps)
        np.testing.assert_allclose(got, num, rtol=2e-3, atol=2e-4)


# -- .lower() shares the compile of a call ---------------------------------------------------


def _count_compiles(monkeypatch) -> dict[str, int]:
    import graphc.codegen as codegen
    import passes

    counts = {"compile_graph": 0, "run_pipeline": 0}
    real_compile, real_pipeline = codegen.compile_graph, passes.run_pipeline

    def compile_graph(graph):
        counts["compile_graph"] += 1
        return real_compile(graph)

    def run_pipeline(*a, **k):
        counts["run_pipeline"] += 1
        return real_pipeline(*a, **k)

    monkeypatch.setattr(codegen, "compile_graph", compile_graph)
    monkeypatch.setattr(passes, "run_pipeline", run_pipeline)
    return counts


def test_lower_after_a_call_reuses_the_executable(monkeypatch):
    counts = _count_compiles(monkeypatch)
    f = graphc.jit(graphc.value_and_grad(lambda x, w: np.sum(np.tanh(x) * w), argnums=(0, 1)))
    x = np.linspace(-1, 2, 12).astype(np.float32)
    w = np.cos(x)
    value, (dx, dw) = f(x, w)
    assert counts == {"compile_graph": 1, "run_pipeline": 1}
    low = f.lower(x, w)
    assert counts == {"compile_graph": 1, "run_pipeline": 1}
    assert f.lower(x, w) is low
    assert f.compiles == ["first call"]
    assert any(n.op == "fused" for n in low.optimized.equations)
    assert "def run(" in low.source
    np.testing.assert_allclose(value, np.sum(np.tanh(x) * w), rtol=1e-5)
    np.testing.assert_allclose(dx, (1 - np.tanh(x) ** 2) * w, rtol=1e-5)
    np.testing.assert_allclose(dw, np.tanh(x), rtol=1e-6)


def test_call_after_lower_runs_what_was_lowered(monkeypatch):
    counts = _count_compiles(monkeypatch)
    f = graphc.jit(lambda x: np.exp(x) * 2 - 1)
    x = np.arange(5, dtype=np.float32)
    low = f.lower(x)
    assert counts == {"compile_graph": 1, "run_pipeline": 1}
    np.testing.assert_allclose(f(x), np.exp(x) * 2 - 1, rtol=1e-6)
    assert counts == {"compile_graph": 1, "run_pipeline": 1}
    assert f.compiles == ["first call"]
    assert f.lower(x) is low
    # a new signature compiles anew, and its lowering is its own
    x2 = np.arange(7, dtype=np.float32)
    np.testing.assert_allclose(f(x2), np.exp(x2) * 2 - 1, rtol=1e-6)
    assert f.lower(x2) is not low
    assert counts == {"compile_graph": 2, "run_pipeline": 2}
    assert f.compiles == ["first call", "input 0 shape (5,) -> (7,)"]


def test_lower_with_the_interpreter_backend_still_shows_compiled_code(monkeypatch):
    counts = _count_compiles(monkeypatch)
    f = graphc.jit(lambda x: np.sin(x) + 1, backend="interpreter")
    x = np.ones(3, np.float32)
    np.testing.assert_allclose(f(x), np.sin(x) + 1, rtol=1e-6)
    assert counts["compile_graph"] == 0
    low = f.lower(x)
    assert "def run(" in low.source and f.lower(x) is low
    assert counts["compile_graph"] == 1


# -- the collector pause during compiles is undone ---------------------------------------------


def test_garbage_collector_state_is_restored_after_compiles_and_errors():
    import gc

    x = np.ones(4, np.float32)
    assert gc.isenabled()
    graphc.jit(lambda x: np.cos(x) * 3)(x)
    assert gc.isenabled()
    with pytest.raises(graphc.GraphcError, match="scalar"):
        graphc.grad(lambda x: np.cos(x))(x)  # not a scalar: fails while building
    assert gc.isenabled()
    gc.disable()
    try:
        graphc.jit(lambda x: np.sin(x) * 3)(x)
        assert not gc.isenabled()  # a caller's choice is left alone
    finally:
        gc.enable()


@pytest.mark.parametrize("name, fn, specs", list(_programs()), ids=lambda v: str(v)[:20])
def test_chain_fast_path_decides_what_the_searched_path_decides(monkeypatch, name, fn, specs):
    """A node whose operands all lie in one group joins it without a legality search (and
    without entering the contracted graph): the kernels and the reasons recorded are the
    ones every merge being searched gives."""
    for g in (
        optimized(fn, *specs),
        optimized(graphc.value_and_grad(fn, argnums=tuple(range(len(specs)))), *specs),
    ):
        fast = _fused_text(g)
        kernels = [[id(n) for n in k] for k in fuse(g).info["kernels"]]
        with monkeypatch.context() as m:
            m.setattr(fuse_mod, "CHAIN_FAST_PATH", False)
            searched = _fused_text(g)
            searched_kernels = [[id(n) for n in k] for k in fuse(g).info["kernels"]]
        assert fast == searched, name
        assert kernels == searched_kernels, name


def test_chain_fast_path_takes_chains_without_searches():
    """A long chain with its gradient: the chain's own merges cost no legality search."""
    fn, specs = deep_chain(200)
    g = optimized(graphc.value_and_grad(fn), *specs)
    calls = []
    original = fuse_mod._Groups.would_cycle

    def counted(self, a, b, frontier=None):
        calls.append((a, b))
        return original(self, a, b, frontier)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(fuse_mod._Groups, "would_cycle", counted)
        fast = _fused_text(g)
        n_fast = len(calls)
        m.setattr(fuse_mod, "CHAIN_FAST_PATH", False)
        calls.clear()
        searched = _fused_text(g)
    assert fast == searched
    # the forward chain and each step's own derivative ops are chains; only the merges that
    # join the gradient to the forward values need a search
    assert n_fast < len(calls) * 0.75, (n_fast, len(calls))
