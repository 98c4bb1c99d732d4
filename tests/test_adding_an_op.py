"""An op defined in one place (its registry entry) works everywhere: tracing, both modes of
differentiation, fusion, compiled kernels and the tape machine. The op is registered for the
test and removed afterwards."""

from __future__ import annotations

import numpy as np
import pytest

import graphc
import graphc.codegen.driver as cg
from graphc.codegen import vm
from graphc.ir import GraphcError
from graphc.ops import REGISTRY, Facts, Kind, Tape, Template, bind, defop

NAME = "cube_plus_test"  # x**3 + x, derivative 3x**2 + 1


@pytest.fixture
def cube_plus():
    op = defop(
        NAME,
        Kind.ELEMENTWISE,
        lambda a: a,
        lambda x: x * x * x + x,
        arity=1,
        vjp=lambda g, out, x: (g * (3 * x * x + 1),),
        jvp=lambda ts, out, x: ts[0] * (3 * x * x + 1),
        lowering=Template("({0} * {0} * {0} + {0})"),
        tape=Tape.MATH,
        facts=Facts(finite_if_operands=True),
    )
    try:
        yield op
    finally:
        del REGISTRY[NAME]


def f(x):
    return np.sum(np.sin(bind(NAME, x)) * 2.0)


def reference(x):
    return np.sum(np.sin(x**3 + x) * 2.0)


def dreference(x):
    return np.cos(x**3 + x) * 2.0 * (3 * x**2 + 1)


def test_traced_compiled_and_fused(cube_plus):
    x = np.linspace(-1.0, 1.0, 12)
    assert NAME in graphc.trace(f, x).op_counts()
    step = graphc.jit(f)
    np.testing.assert_allclose(step(x), reference(x), rtol=1e-13)
    low = step.lower(x)
    fused = [n for n in low.optimized.equations if n.op == "fused"]
    assert len(fused) == 1  # the new op, sin, the scaling and the sum: one kernel
    assert NAME in fused[0].attrs["body"].op_counts()
    assert "* a0 * a0 + a0" in low.source or "(a0 * a0 * a0 + a0)" in low.source


def test_differentiated_in_both_modes(cube_plus):
    x = np.linspace(-1.0, 1.0, 12)
    g = graphc.jit(graphc.grad(f))(x)
    np.testing.assert_allclose(g, dreference(x), rtol=1e-12)
    d = np.random.default_rng(0).standard_normal(x.shape)
    _, tangent = graphc.jvp(f, (x,), (d,))
    np.testing.assert_allclose(tangent, np.sum(dreference(x) * d), rtol=1e-12)
    # second order through the op's own rules
    h = graphc.jit(graphc.grad(lambda v: np.sum(graphc.grad(f)(v))))(x)
    eps = 1e-6
    fd = (dreference(x + eps) - dreference(x - eps)) / (2 * eps)
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_run_by_the_tape_machine(cube_plus, monkeypatch):
    """The machine's opcode table comes from the registry: with the op registered, the machine
    is generated anew (into the kernel cache) with an instruction for it."""
    monkeypatch.setattr(cg, "VM_MIN_OPS", 0)
    assert NAME in vm.tape_ops()
    x = np.linspace(-1.0, 1.0, 40).astype(np.float32)
    programs = []
    translate = vm.translate

    def record(*args):
        programs.append(translate(*args))
        return programs[-1]

    monkeypatch.setattr(vm, "translate", record)
    got = graphc.jit(lambda v: np.sin(bind(NAME, v)) * 2.0)(x)
    np.testing.assert_allclose(got, np.sin(x**3 + x) * 2.0, rtol=2e-6, atol=1e-6)
    assert any(NAME in line for p in programs for line in p.listing)
    assert vm.machine().OPS == vm.tape_ops()


def test_removing_the_op_restores_the_shipped_machine(cube_plus):
    assert vm.tape_ops()[-1] == NAME
    del REGISTRY[NAME]
    try:
        from graphc.codegen import _vm_generated

        assert vm.machine() is _vm_generated
    finally:
        REGISTRY[NAME] = cube_plus


def test_a_differentiable_op_needs_both_rules():
    with pytest.raises(GraphcError, match="no jvp rule"):
        defop(
            "half_ruled_test",
            Kind.ELEMENTWISE,
            lambda a: a,
            np.negative,
            arity=1,
            vjp=lambda g, out, x: (-g,),
            lowering=Template("(-{0})"),
        )
    assert "half_ruled_test" not in REGISTRY
    with pytest.raises(GraphcError, match="no vjp rule"):
        defop(
            "half_ruled_test",
            Kind.ELEMENTWISE,
            lambda a: a,
            np.negative,
            arity=1,
            jvp=lambda ts, out, x: -ts[0],
            lowering=Template("(-{0})"),
        )
    # an op with zero derivative says so instead
    op = defop(
        "flat_test",
        Kind.ELEMENTWISE,
        lambda a: a,
        np.floor,
        arity=1,
        differentiable=False,
        lowering=Template("np.floor({0})"),
    )
    del REGISTRY[op.name]


def test_an_elementwise_op_needs_a_scalar_lowering():
    with pytest.raises(GraphcError, match="scalar lowering"):
        defop("unlowered_test", Kind.ELEMENTWISE, lambda a: a, np.floor, differentiable=False)
    assert "unlowered_test" not in REGISTRY


def test_a_fused_reduction_names_its_combine():
    with pytest.raises(GraphcError, match="reduction="):
        defop(
            "bad_reduce_test",
            Kind.REDUCTION,
            lambda a: a,
            np.sum,
            reduction="mean",
            differentiable=False,
        )
