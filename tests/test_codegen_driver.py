"""graphc.codegen.driver: the lowering table of driver ops, and what generated modules import."""

from __future__ import annotations

import ast
import glob
import os

import numpy as np
import pytest

import graphc
import graphc.numpy as gnp
from graphc.codegen import driver as cg_driver
from graphc.codegen import runtime
from graphc.codegen.driver import LOWERINGS, LoweringEntry, generate, lowering


def test_movement_ops_are_views_and_products_allocate():
    for op in ("reshape", "transpose", "broadcast_to", "slice", "flip"):
        assert LOWERINGS[op].view and not LOWERINGS[op].allocates, op
    assert LOWERINGS["matmul"].allocates and not LOWERINGS["matmul"].view
    assert not LOWERINGS["proj"].view  # a kernel's result owns its storage


def test_an_op_is_lowered_once():
    with pytest.raises(ValueError, match="'reshape' already has a driver lowering"):
        lowering("reshape")(lambda d, n, v, a: [])
    assert LOWERINGS["reshape"].lower is not None


def _argmax_rows(x):
    return np.argmax(x, axis=1)


def test_an_op_without_a_lowering_runs_its_numpy_reference_and_is_listed():
    x = np.random.default_rng(0).standard_normal((3, 4))
    source, d = generate(graphc.trace(_argmax_rows, x))
    assert "_impl('argmax', _K['A0'], in0)" in source
    assert d.fallbacks == ["argmax (runs its NumPy implementation)"]


def test_an_op_entry_naming_a_dedicated_kernel_calls_it():
    x = np.ones((1, 1, 5, 5), np.float32)
    w = np.ones((2, 1, 3, 3), np.float32)
    g = graphc.trace(lambda x, w: gnp.conv2d(x, w), x, w)
    source, d = generate(g)
    assert "_call('conv2d', _K['A0'], in0, in1)" in source
    assert d.fallbacks == []


def test_one_table_entry_gives_an_op_its_lowering(monkeypatch):
    def argmax(d, n, v, a):
        return [f"{v} = np.argmax({a[0]}, axis={n.attrs['axis']})"]

    monkeypatch.setitem(LOWERINGS, "argmax", LoweringEntry(argmax))
    x = np.random.default_rng(1).standard_normal((3, 4))
    lowered = graphc.jit(_argmax_rows).lower(x)
    assert "np.argmax(in0, axis=1)" in lowered.source
    assert lowered.fallbacks == []
    np.testing.assert_array_equal(graphc.jit(_argmax_rows)(x), np.argmax(x, axis=1))


def _graphc_imports(source: str) -> list[tuple[str, str]]:
    """(module, name) for every name a module imports from graphc."""
    out = []
    for st in ast.walk(ast.parse(source)):
        if isinstance(st, ast.ImportFrom) and (st.module or "").startswith("graphc"):
            out += [(st.module, a.name) for a in st.names]
        elif isinstance(st, ast.Import):
            out += [(a.name, "") for a in st.names if a.name.startswith("graphc")]
    return out


@pytest.mark.parametrize("tape", [False, True], ids=["kernels", "tape"])
def test_generated_modules_import_only_public_runtime_names(tmp_path, monkeypatch, tape):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    if tape:
        monkeypatch.setattr(cg_driver, "VM_MIN_OPS", 0)
    c = 1.0 + np.random.default_rng().random()  # kernels no other test compiled

    def fn(x, w):
        return np.tanh(x * c) @ w, np.argmax(x, axis=1)

    x = np.ones((3, 4))
    w = np.ones((4, 2))
    got = graphc.jit(fn)(x, w)
    np.testing.assert_allclose(got[0], fn(x, w)[0], rtol=1e-12)
    files = glob.glob(os.path.join(str(tmp_path), "graphc_*.py"))
    assert any(os.path.basename(f).startswith("graphc_kernel_") for f in files) != tape
    imported = set()
    for f in files:
        with open(f, encoding="utf-8") as fh:
            imported |= set(_graphc_imports(fh.read()))
    assert imported
    for module, name in imported:
        assert module in (
            "graphc.codegen.runtime",
            "graphc.codegen.accum",
            "graphc.codegen.mathlib",
        )
        assert not name.startswith("_"), (module, name)
        if module == "graphc.codegen.runtime":
            assert name in runtime.__all__, name
