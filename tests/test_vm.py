"""The tape machine: generated source is current; results equal the interpreter's."""

import numpy as np
import pytest

import graphc
import graphc.codegen as cg
from graphc import numpy as gnp
from graphc.codegen import vm


def test_generated_machine_is_current():
    with open(vm.source_path()) as f:
        assert f.read() == vm.generate_source(), (
            "run graphc.codegen.vm.write_source() to regenerate _vm_generated.py"
        )


@pytest.fixture
def always_vm(monkeypatch):
    monkeypatch.setattr(cg, "VM_MIN_OPS", 0)


def _compare(fn, *args, rtol=2e-6, atol=1e-6):
    got = graphc.jit(fn, backend="numba")(*args)
    want = graphc.jit(fn, backend="interpreter")(*args)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for a, b in zip(got, want, strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_every_machine_op(always_vm, dt):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 2.0, (3, 5)).astype(dt)
    y = rng.uniform(-2.0, 2.0, (3, 5)).astype(dt)

    def f(x, y):
        outs = [
            -x,
            np.abs(y),
            np.sign(y),
            np.exp(y),
            np.log(x),
            np.log1p(x),
            np.expm1(y),
            np.sqrt(x),
            gnp.rsqrt(x),
            np.square(y),
            np.sin(y),
            np.cos(y),
            np.tan(y),
            np.tanh(y),
            gnp.sigmoid(y),
            gnp.relu(y),
            gnp.softplus(y),
            gnp.erf(y),
            np.floor(y),
            np.ceil(y),
            np.round(y),
            x + y,
            x - y,
            x * y,
            x / y,
            x**y,
            np.maximum(x, y),
            np.minimum(x, y),
            np.where(x > y, x, y),
            y**3,
            (x < y) * 1.0,
            (x <= y) * 1.0,
            (x >= y) * 1.0,
            (x == y) * 1.0,
            (x != y) * 1.0,
            ((x > 1) & (y > 0)) * 1.0,
            ((x > 1) | (y > 0)) * 1.0,
            ((x > 1) ^ (y > 0)) * 1.0,
            (~(y > 0)) * 1.0,
            np.isfinite(x / y) * 1.0,
            gnp.stop_gradient(x),
        ]
        return tuple(outs) + (np.sum(x * y), np.max(y), np.min(y), x > y)

    _compare(f, x, y)


def test_scalar_operands_and_nan(always_vm):
    x = np.array([1.0, np.nan, -np.inf, 0.0, 3.0], np.float32)
    s = np.float32(2.5)
    _compare(lambda x, s: (x * s + 1, np.max(x), np.sum(np.where(x > 0, x, 0))), x, s)


def test_deep_chain_runs_on_the_machine():
    def chain(x):
        for i in range(600):
            x = np.sin(x) if i % 2 else np.tanh(x) * 1.5
        return np.sum(x)

    x = np.linspace(-1, 1, 1000, dtype=np.float32)
    f = graphc.jit(graphc.value_and_grad(chain))
    src = f.lower(x).source
    assert "_vm_run" in src and "@njit" not in src.split("def run")[0] or "_vm_run" in src
    v1, g1 = f(x)
    v2, g2 = graphc.value_and_grad(chain, backend="interpreter")(x)
    np.testing.assert_allclose(v1, v2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g1, g2, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_random_programs_on_the_machine(always_vm, seed):
    from test_codegen import test_random_fused_programs_compiled_equal_interpreted as check

    check(seed)
