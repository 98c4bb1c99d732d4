"""The Numba backend: every op compiled vs its reference, random fused programs, gradients,
the on-disk cache, recompilation, corrupt cache entries, threads, buffer ownership."""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import seeds
from conftest import random_args, random_program
from test_fusion import _mlp_step
from test_ops_table import CASES, OpCase, assert_matches

import graphc
from graphc import numpy as gnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _backend_rows(per_op: int = 2) -> list[OpCase]:
    seen: dict[str, int] = {}
    rows = []
    for c in CASES:
        if seen.get(c.op, 0) < per_op:
            rows.append(c)
            seen[c.op] = seen.get(c.op, 0) + 1
    return rows


ROWS = _backend_rows()


@pytest.mark.parametrize("case", ROWS, ids=[c.id for c in ROWS])
def test_op_compiled_matches_reference(case):
    arrays = case.make_args()
    with np.errstate(all="ignore"):
        want = case.reference(
            *[np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in arrays]
        )
        got = graphc.jit(case.fn, backend="numba")(*arrays)
    assert_matches(got, want, case, "compiled value")


def test_every_op_has_a_backend_row():
    ops = {c.op for c in CASES}
    assert ops == {c.op for c in ROWS}


def test_compiled_gradients_match_interpreter():
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s.shape).astype(np.float32) for s in seeds.EXAMPLE_ARGS["mlp_loss"]]
    nums = (2, 3, 4, 5)
    v1, g1 = graphc.value_and_grad(seeds.mlp_loss, argnums=nums, backend="numba")(*args)
    v2, g2 = graphc.value_and_grad(seeds.mlp_loss, argnums=nums, backend="interpreter")(*args)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_compiled_convnet_gradients_match_interpreter():
    rng = np.random.default_rng(1)
    shapes = [(2, 1, 12, 12), (4, 1, 3, 3), (4,), (6, 4, 3, 3), (6,), (6, 10), (10,)]
    args = [rng.standard_normal(s).astype(np.float32) * 0.5 for s in shapes]

    def loss(*a):
        return -np.sum(seeds.convnet(*a)[:, 3])

    nums = tuple(range(1, 7))
    g1 = graphc.grad(loss, argnums=nums, backend="numba")(*args)
    g2 = graphc.grad(loss, argnums=nums, backend="interpreter")(*args)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_random_fused_programs_compiled_equal_interpreted(seed):
    prog = random_program(seed, steps=10)
    args = random_args(seed, [(5, 4), (3, 1, 4), (6,), (2, 3, 4)][seed % 4])
    got = graphc.jit(prog, backend="numba")(*args)
    want = graphc.jit(prog, backend="interpreter")(*args)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_large_parallel_reductions():
    # big enough to be split across threads, with reductions over leading and trailing axes
    rng = np.random.default_rng(2)
    x = rng.standard_normal((512, 300)).astype(np.float32)
    f = graphc.jit(lambda x: (np.sum(x * 2, axis=0), np.max(x, axis=1), np.sum(np.exp(-x * x))))
    a, b, c = f(x)
    np.testing.assert_allclose(a, np.sum(x * 2, axis=0), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(b, np.max(x, axis=1))
    np.testing.assert_allclose(c, np.sum(np.exp(-x * x)), rtol=1e-5)


def test_nan_propagates_through_compiled_max():
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    got = graphc.jit(lambda x: np.max(x, axis=1))(x)
    np.testing.assert_array_equal(got, [np.nan, 6.0])


def test_returned_arrays_are_never_overwritten():
    f = graphc.jit(lambda x: (np.tanh(x) * 2, np.sum(x), x.reshape(-1), x))
    x1, x2 = np.ones((3, 4), np.float32), np.zeros((3, 4), np.float32)
    r1 = f(x1)
    saved = [np.array(r, copy=True) for r in r1]
    f(x2)
    for r, s in zip(r1, saved, strict=True):
        np.testing.assert_array_equal(r, s)
    assert not np.shares_memory(r1[3], x1) and not np.shares_memory(r1[2], x1)


def test_recompiles_on_new_shape_and_says_why(capsys):
    f = graphc.jit(lambda x: np.tanh(x) + 1, log_compiles=True)
    f(np.ones((4, 3), np.float32))
    f(np.ones((2, 3), np.float32))
    f(np.ones((4, 3), np.float32))
    f(np.ones((2, 3), np.float64))
    assert f.compiles == [
        "first call",
        "input 0 shape (4, 3) -> (2, 3)",
        "input 0 dtype float32 -> float64",
    ]
    err = capsys.readouterr().err
    assert "input 0 shape (4, 3) -> (2, 3)" in err


def test_two_threads_compile_once():
    f = graphc.jit(lambda x: np.sin(x) * np.cos(x))
    x = np.linspace(0, 1, 1000).astype(np.float32)
    out = [None, None]
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()
        out[i] = f(x)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(f.compiles) == 1
    for o in out:
        np.testing.assert_allclose(o, np.sin(x) * np.cos(x), rtol=1e-6, atol=1e-7)


def test_fallbacks_are_visible():
    lo = graphc.jit(lambda x, i: np.take(x, i) * 2).lower(np.ones(5), np.array([0, 3]))
    assert any("gather" in f for f in lo.fallbacks) or "gather" in lo.source
    assert "# " in lo.source and "mul" in lo.source  # kernels carry their IR as comments


def test_generated_source_is_written_to_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    lo = graphc.jit(lambda x: np.exp(x) - 1).lower(np.ones(7))
    assert lo.path.startswith(str(tmp_path)) and os.path.exists(lo.path)
    with open(lo.path) as f:
        assert f.read() == lo.source


_SCRIPT = textwrap.dedent("""
    import sys, time
    t0 = time.perf_counter()
    import numpy as np, graphc
    from graphc.api import _EXECUTORS
    exes = []
    orig = _EXECUTORS["numba"]
    _EXECUTORS["numba"] = lambda g: exes.append(orig(g)) or exes[-1]
    f = graphc.jit(lambda x, w: np.sum(np.tanh(x @ w) ** 2))
    v = f(np.ones((8, 5), np.float32), np.full((5, 3), 0.1, np.float32))
    print(repr(float(v)), *exes[0].cache_stats())
""")


def _run_fresh(cache: str) -> tuple[float, int, int]:
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    v, hits, misses = out.stdout.split()
    return float(v), int(hits), int(misses)


@pytest.mark.slow
def test_disk_cache_hit_in_a_new_process_and_corrupt_entries(tmp_path):
    cache = str(tmp_path / "cache")
    want = float(np.sum(np.tanh(np.ones((8, 5)) @ np.full((5, 3), 0.1)) ** 2))
    v, hits, misses = _run_fresh(cache)
    assert misses >= 1 and hits == 0 and abs(v - want) < 1e-4
    v, hits, misses = _run_fresh(cache)
    assert hits >= 1 and misses == 0 and abs(v - want) < 1e-4
    # corrupt the generated module and Numba's cache files: detected and rebuilt
    for root, _, files in os.walk(cache):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"\x00garbage\x00")
    v, hits, misses = _run_fresh(cache)
    assert abs(v - want) < 1e-4
    v, hits, misses = _run_fresh(cache)
    assert hits >= 1 and abs(v - want) < 1e-4


def test_mlp_step_compiled_matches_interpreter():
    rng = np.random.default_rng(3)
    shapes = {"W1": (20, 16), "b1": (16,), "W2": (16, 12), "b2": (12,), "W3": (12, 10), "b3": (10,)}
    p = {k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}
    x = rng.standard_normal((8, 20)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    p1, l1 = graphc.jit(_mlp_step)(p, x, y)
    p2, l2 = graphc.jit(_mlp_step, backend="interpreter")(p, x, y)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for k in p:
        np.testing.assert_allclose(p1[k], p2[k], rtol=1e-5, atol=1e-6)
    # the six SGD updates p - 0.1 * g differ only in size: one kernel serves all six
    lo = graphc.jit(_mlp_step).lower(p, x, y)
    fused = sum(1 for n in lo.optimized.equations if n.op == "fused")
    defined = lo.source.count("\ndef kernel")
    assert defined == fused - 5, (fused, defined)
    assert "(6 call sites in run(), each with its own sizes)" in lo.source


def test_a_new_batch_size_reuses_the_compiled_kernels():
    from graphc.codegen.cache import _KERNELS

    rng = np.random.default_rng(5)
    shapes = {"W1": (20, 16), "b1": (16,), "W2": (16, 12), "b2": (12,), "W3": (12, 10), "b3": (10,)}
    p = {k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}
    x = rng.standard_normal((9, 20)).astype(np.float32)
    y = rng.integers(0, 10, 9)
    f = graphc.jit(_mlp_step)
    f(p, x, y)
    before = len(_KERNELS)
    got = f(p, x[:7], y[:7])  # a second compile: the loops take the batch as a bound
    # only a kernel holding the batch size as a constant (the mean's 1/7) is new
    assert len(_KERNELS) - before <= 1, len(_KERNELS) - before
    want = graphc.jit(_mlp_step, backend="interpreter")(p, x[:7], y[:7])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    for k in p:
        np.testing.assert_allclose(got[0][k], want[0][k], rtol=1e-5, atol=1e-6)


_SHARE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, graphc
    from graphc.api import _EXECUTORS
    exes = []
    orig = _EXECUTORS["numba"]
    _EXECUTORS["numba"] = lambda g: exes.append(orig(g)) or exes[-1]
    n = int(sys.argv[1])
    x = np.linspace(-1, 1, n * 6, dtype=np.float32).reshape(n, 6)
    f = graphc.jit(lambda x: np.sum(np.exp(x) * 2, axis=1) - np.tanh(x)[:, 0])
    print(float(f(x)[0]), *exes[0].cache_stats())
""")


@pytest.mark.slow
def test_a_new_graph_in_a_new_process_loads_kernels_other_graphs_compiled(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT)

    def run(n):
        out = subprocess.run(
            [sys.executable, "-c", _SHARE_SCRIPT, str(n)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        v, hits, misses = out.stdout.split()
        return float(v), int(hits), int(misses)

    v1, hits1, misses1 = run(5)
    assert hits1 == 0 and misses1 > 0
    v2, hits2, misses2 = run(3)  # another graph (another batch), the same kernel code
    assert (hits2, misses2) == (misses1, 0), (hits2, misses2, misses1)
    x = np.linspace(-1, 1, 18, dtype=np.float32).reshape(3, 6)
    assert abs(v2 - float(np.sum(np.exp(x[0]) * 2) - np.tanh(x[0, 0]))) < 1e-5


def test_jit_of_a_transformed_function():
    vg = graphc.value_and_grad(lambda x, w: np.sum(x * w * w), argnums=(0, 1))
    v, (gx, gw) = graphc.jit(vg)(np.ones(3), np.full(3, 2.0))
    assert v == 12.0
    np.testing.assert_array_equal(gx, [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(gw, [4.0, 4.0, 4.0])


@pytest.mark.parametrize(
    "shape,axis", [((7, 10), 1), ((3, 4, 5), (1, 2)), ((2, 3, 6), 2), ((4096, 64), 1)]
)
def test_row_kernels_compiled(shape, axis):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.flat[3] = np.nan  # a row with a NaN stays a row of NaNs

    def f(x):
        sm = gnp.softmax(x, axis=axis)
        ls = gnp.log_softmax(x, axis=axis)
        mu = x.mean(axis=axis, keepdims=True)
        ln = (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=axis, keepdims=True) + 1e-5)
        return sm, ls, ln, np.max(sm, axis=axis, keepdims=True)

    got = graphc.jit(f)(x)
    want = graphc.jit(f, backend="interpreter")(x)
    assert sum(n.op == "fused" for n in graphc.jit(f).lower(x).optimized.equations) == 1
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_cross_entropy_step_compiled():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((64, 10)).astype(np.float32) * 4
    labels = rng.integers(0, 10, 64)

    def ce(z):
        return -np.mean(gnp.log_softmax(z, axis=1)[np.arange(64), labels])

    v1, g1 = graphc.value_and_grad(ce)(logits)
    v2, g2 = graphc.value_and_grad(ce, backend="interpreter")(logits)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-7)


def test_long_float32_sums_are_accurate():
    x = np.random.default_rng(7).random(1 << 21).astype(np.float32)
    got = graphc.jit(lambda x: np.sum(x * 3))(x)
    exact = np.sum(x.astype(np.float64) * 3)
    assert abs(float(got) - exact) / exact < 1e-6  # a plain running float32 sum is off by ~1e-4


def test_results_are_freed_without_the_cycle_collector():
    import gc
    import weakref

    f = graphc.jit(lambda x: (np.tanh(x) * 2, {"s": np.sum(x)}))
    x = np.ones(1000, np.float32)
    r = f(x)
    gc.disable()
    try:
        r = f(x)
        ref = weakref.ref(r[0].base if r[0].base is not None else r[0])
        del r
        obj = ref()
        refs = 0 if obj is None else sys.getrefcount(obj)  # the pool, `obj`, the argument
        del obj
        assert refs <= 3  # nothing else holds the result once the caller drops it
    finally:
        gc.enable()


def test_recycled_result_storage_never_overwrites_kept_results():
    f = graphc.jit(lambda x: np.tanh(x) * 2)
    kept = [f(np.full(8, float(k), np.float32)) for k in range(4)]
    view = f(np.full(8, 9.0, np.float32))[2:4]  # a view keeps its base alive too
    f(np.zeros(8, np.float32))
    for k, r in enumerate(kept):
        np.testing.assert_allclose(r, np.tanh(np.full(8, float(k))) * 2, rtol=1e-6)
    np.testing.assert_allclose(view, np.tanh(np.full(2, 9.0)) * 2, rtol=1e-6)


def test_recycled_large_results_are_never_overwritten_while_kept():
    # large results live in mappings of their own: views must still keep them alive
    f = graphc.jit(lambda x: np.tanh(x) * 2)
    n = 2 << 20
    kept = [f(np.full(n, float(k), np.float32)) for k in range(3)]
    for k, r in enumerate(kept):
        assert r[0] == np.float32(np.tanh(np.float32(k)) * 2), k
    assert not np.shares_memory(kept[0], kept[1])


def _kernel_llvm(lo) -> dict[str, str]:
    mod = sys.modules[os.path.splitext(os.path.basename(lo.path))[0]]
    out = {}
    for name in dir(mod):
        if name.startswith("kernel"):
            k = getattr(mod, name)
            out[name] = "\n".join(k.inspect_llvm().values())
    return out


def test_elementwise_and_reduction_kernels_vectorise(tmp_path, monkeypatch):
    # a chunked outer loop indexes from `lo`, whose sign LLVM cannot know: unless the indices
    # are unsigned, Numba's negative-index wraparound test keeps the loop scalar (7-13x slower)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))  # compiled now: LLVM IR to read

    def f(a, b):
        h = np.maximum(a + b, 0)
        return h, np.sum(h * a, axis=0)

    a = np.ones((61, 131), np.float32)  # shapes no other test compiles
    b = np.ones(131, np.float32)
    lo = graphc.jit(f).lower(a, b)
    graphc.jit(f)(a, b)
    ir = _kernel_llvm(lo)
    assert ir, lo.source
    for name, text in ir.items():
        assert "x float>" in text, f"{name} was not vectorised"


_LINALG_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, graphc
    from numba import njit
    f = graphc.jit(lambda x: np.exp(x) * 2)
    print(float(f(np.ones(3, np.float32))[0]))
    print("scipy.linalg" in sys.modules)

    @njit
    def dot(a, b):
        return np.dot(a, b)

    a = np.arange(6.0).reshape(2, 3)
    print(float(np.abs(dot(a, a.T) - a @ a.T).max()))
""")


def test_kernel_loading_skips_scipy_but_numba_linear_algebra_still_works(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _LINALG_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    v, scipy_loaded, err = out.stdout.split()
    assert abs(float(v) - 2 * np.e) < 1e-5
    assert scipy_loaded == "False"  # the 0.2 s import numba's arraymath would do is skipped
    assert float(err) == 0.0


def test_source_is_written_when_the_cache_dir_changes_within_a_process(tmp_path, monkeypatch):
    def f(x):
        return np.expm1(x) * 3  # a module no other test makes

    x = np.ones(13, np.float32)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "one"))
    first = graphc.jit(f).lower(x).path
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "two"))
    lo = graphc.jit(f).lower(x)
    assert lo.path != first and lo.path.startswith(str(tmp_path / "two"))
    with open(lo.path) as fh:
        assert fh.read() == lo.source
    np.testing.assert_allclose(graphc.jit(f)(x), np.expm1(x) * 3, rtol=1e-6)


def test_generated_modules_keep_their_bytecode_in_the_cache(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # as under PYTHONDONTWRITEBYTECODE=1
    lo = graphc.jit(lambda x: np.log1p(x) * 5).lower(np.ones(17, np.float32))
    assert os.path.exists(importlib.util.cache_from_source(lo.path))
