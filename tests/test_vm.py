"""The tape machine: generated source is current; results equal the interpreter's."""

import numpy as np
import pytest

import graphc
import graphc.codegen.driver as cg_driver
from graphc import numpy as gnp
from graphc.codegen import vm


def test_generated_machine_is_current():
    with open(vm.source_path()) as f:
        assert f.read() == vm.generate_source(), (
            "run graphc.codegen.vm.write_source() to regenerate _vm_generated.py"
        )


@pytest.fixture
def always_vm(monkeypatch):
    monkeypatch.setattr(cg_driver, "VM_MIN_OPS", 0)


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


def _programs(monkeypatch) -> list:
    progs: list = []
    translate = vm.translate

    def record(*args):
        progs.append(translate(*args))
        return progs[-1]

    monkeypatch.setattr(vm, "translate", record)
    return progs


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_sin_and_cos_of_one_value_run_as_one_instruction(always_vm, monkeypatch, dt):
    progs = _programs(monkeypatch)

    def f(x):
        y = x * 3.0
        # y: sin then cos; x: cos then sin; x * x: sin only
        return np.sin(y) + 1.0, np.cos(x), np.cos(y) * 2.0, np.sin(x), np.sin(x * x)

    x = np.linspace(-40, 40, 301).astype(dt)
    got = graphc.jit(f, backend="numba")(x)
    listing = "\n".join(line for p in progs for line in p.listing)
    assert listing.count("sincos") == 2 and listing.count(" = sin ") == 1, listing
    # the same math functions as the kernels outside the machine: equal bit for bit
    monkeypatch.setenv("GRAPHC_VM", "0")
    want = graphc.jit(f, backend="numba")(x)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == dt
        np.testing.assert_array_equal(a, b)
    _compare(f, x)


def test_sincos_in_a_gradient(always_vm, monkeypatch):
    progs = _programs(monkeypatch)

    def f(x):
        return np.sum(np.sin(np.tanh(x)) * x)

    x = np.linspace(-2, 2, 257, dtype=np.float32)
    got = graphc.jit(graphc.value_and_grad(f))(x)
    want = graphc.value_and_grad(f, backend="interpreter")(x)
    assert any("sincos" in line for p in progs for line in p.listing)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


def test_block_size():
    from graphc.codegen.runtime import N_THREADS

    for size, nregs, itemsize in [(1 << 20, 10, 4), (1 << 20, 2002, 4), (1 << 20, 9000, 8)]:
        b = vm.block_size(size, nregs, itemsize)
        assert b % 16 == 0 and vm.MIN_BLOCK <= b <= vm.MAX_BLOCK
        assert b == vm.MIN_BLOCK or nregs * b * itemsize <= vm.MAX_REG_BYTES
    assert vm.block_size(1 << 20, 10, 4) == vm.MAX_BLOCK
    # many registers: never below MIN_BLOCK, which keeps enough vectors in flight
    assert vm.block_size(1 << 20, 100_000, 8) == vm.MIN_BLOCK
    # every thread gets blocks
    assert vm.block_size(1024, 10, 4) <= max(16, 1024 // N_THREADS)
    assert vm.block_size(5, 3, 4) == 16


def test_a_float_made_boolean_is_not_a_copy(always_vm):
    """On the machine booleans are 0/1 in registers of the float type: a bool -> float cast is
    a copy, a float -> bool cast is not (0.5 is True, i.e. 1)."""
    x = np.array([-1.5, -0.0, 0.0, 0.25, 0.5, 2.0, np.nan], np.float32)

    def f(v):
        b = (v * 2).astype(bool)
        return np.where(b, v + 1, v - 1), b.astype(np.float32) * 3

    _compare(f, x)
