"""Fusion: kernel counts, legality, results unchanged, why-not-fused reasons."""

import numpy as np
import pytest
from conftest import check_golden, random_args, random_program

import graphc
from graphc import numpy as gnp
from graphc.api import value_and_grad
from graphc.verify import verify
from passes import COMPILE_PIPELINE, run_pipeline
from passes.fuse import fuse


def kernels(g):
    return [n for n in g.equations if n.op == "fused"]


def non_view_ops(g):
    views = {"fused", "proj", "reshape", "transpose", "broadcast_to"}
    return [n.op for n in g.equations if n.op not in views]


def compiled_graph(fn, *specs):
    return run_pipeline(graphc.trace(fn, *specs), COMPILE_PIPELINE, verify=True)


def same_values(g1, g2, args, rtol=1e-6):
    for a, b in zip(graphc.evaluate(g1, *args), graphc.evaluate(g2, *args), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


def gelu_loss(x, w):
    return np.sum(gnp.gelu(x) * w)


def test_gelu_value_and_grad_is_one_kernel():
    vg = value_and_grad(gelu_loss, argnums=(0, 1))
    g = compiled_graph(vg, graphc.spec("f32[4096]"), graphc.spec("f32[4096]"))
    ks = kernels(g)
    assert len(ks) == 1
    (k,) = ks
    # reads x and w once each, and nothing else of size
    assert [i.op for i in k.inputs] == ["input", "input"]
    assert {id(i) for i in k.inputs} == {id(i) for i in g.inputs}
    # writes the loss and both gradients
    body = k.attrs["body"]
    assert sorted(str(o.aval) for o in body.outputs) == ["f32[4096]", "f32[4096]", "f32[]"]
    assert non_view_ops(g) == []
    check_golden("gelu_value_and_grad.fused.ir", str(g))
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(4096).astype(np.float32) for _ in range(2)]
    same_values(graphc.trace(vg, *args), g, args, rtol=2e-5)


def test_vertical_fusion_with_broadcast_bias_and_epilogue_after_matmul():
    f = lambda x, W, b: gnp.relu(x @ W + b)
    g = compiled_graph(f, graphc.spec("f32[8,5]"), graphc.spec("f32[5,7]"), graphc.spec("f32[7]"))
    assert [n.op for n in g.equations] == ["matmul", "fused"]
    body = kernels(g)[0].attrs["body"]
    assert [n.op for n in body.equations] == ["add", "relu"]
    assert [str(i.aval) for i in body.inputs] == ["f32[8,7]", "f32[7]"]


def test_reduction_fuses_with_its_producers():
    g = compiled_graph(
        lambda y, w: np.sum(np.tanh(y) * w), graphc.spec("f32[64]"), graphc.spec("f32[64]")
    )
    (k,) = kernels(g)
    assert [n.op for n in k.attrs["body"].equations] == ["tanh", "mul", "reduce_sum"]


def test_sibling_fusion_reads_input_once():
    f = lambda x: (np.exp(x), np.sin(x) * 2)
    g = compiled_graph(f, graphc.spec("f32[16]"))
    (k,) = kernels(g)
    assert len(k.inputs) == 1 and len(k.attrs["body"].outputs) == 2


def test_row_reductions_and_their_consumers_are_one_kernel():
    # softmax, log_softmax, layer norm: reduce over the last axis, use the result per row
    for fn in (
        lambda x: gnp.softmax(x, axis=1),
        lambda x: gnp.log_softmax(x, axis=-1),
        lambda x: (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1),
    ):
        g = compiled_graph(fn, graphc.spec("f32[4,6]"))
        assert len(kernels(g)) == 1, g
        x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
        same_values(graphc.trace(fn, x), g, [x], rtol=1e-5)


def test_consumer_of_a_leading_axis_reduction_starts_a_new_kernel_with_reason():
    g = compiled_graph(lambda x: x - np.max(x, axis=0, keepdims=True), graphc.spec("f32[4,6]"))
    assert len(kernels(g)) == 2
    assert any("reduction" in r for r in g.info["fusion"].reasons())


def test_different_iteration_spaces_are_not_fused():
    f = lambda x, b: np.tanh(x) + np.exp(b)
    g = compiled_graph(f, graphc.spec("f32[4,6]"), graphc.spec("f32[6]"))
    assert len(kernels(g)) == 2
    assert any("different iteration space" in r for r in g.info["fusion"].reasons())


def test_merge_that_would_create_a_cycle_is_refused():
    # y -> matmul -> z and y -> w; fusing w (which reads z) with y would need z before and
    # after the kernel
    def f(x, W):
        y = np.exp(x)
        z = y @ W
        return y * 2 + z

    g = verify(fuse(graphc.trace(f, graphc.spec("f32[4,4]"), graphc.spec("f32[4,4]"))))
    ops = [n.op for n in g.equations if n.op != "proj"]
    assert ops.count("fused") == 2 and "matmul" in ops
    rng = np.random.default_rng(1)
    args = [rng.standard_normal((4, 4)).astype(np.float32) for _ in range(2)]
    same_values(graphc.trace(f, *args), g, args)


def test_size_cap_bounds_kernels():
    from passes import fuse as fuse_mod

    def chain(x):
        for i in range(600):
            x = np.sin(x) if i % 2 else np.tanh(x)
        return x

    g = verify(fuse(graphc.trace(chain, graphc.spec("f32[8]"))))
    ks = kernels(g)
    assert all(len(k.attrs["body"].equations) <= fuse_mod.MAX_GROUP for k in ks)
    assert len(ks) == -(-600 // fuse_mod.MAX_GROUP)
    assert any("size cap" in r for r in g.info["fusion"].reasons())


def test_deep_chain_and_gradient_fuse_into_few_kernels():
    def chain(x):
        for i in range(2000):
            x = np.sin(x) if i % 2 else np.tanh(x)
        return np.sum(x)

    vg = value_and_grad(chain)
    g = compiled_graph(vg, graphc.spec("f32[1024]"))
    # ~7,000 ops: 8 forward kernels at the size cap, 16 backward ones, and small kernels where
    # cotangent sums straddle a cap boundary (measured: 48)
    assert len(kernels(g)) <= 50
    assert set(g.info["fusion"].reasons()) == {"size cap"}


def _mlp_step(p, x, y):
    def loss(p):
        h = gnp.relu(x @ p["W1"] + p["b1"])
        h = gnp.relu(h @ p["W2"] + p["b2"])
        logits = h @ p["W3"] + p["b3"]
        return -np.mean(gnp.log_softmax(logits, axis=1)[np.arange(x.shape[0]), y])

    value, grads = value_and_grad(loss)(p)
    return {k: p[k] - 0.1 * grads[k] for k in p}, value


MLP = {"W1": (784, 512), "b1": (512,), "W2": (512, 256), "b2": (256,), "W3": (256, 10), "b3": (10,)}


def test_mlp_training_step_kernels_between_gemms():
    specs = {k: graphc.spec(s, np.float32) for k, s in MLP.items()}
    g = compiled_graph(_mlp_step, specs, graphc.spec("f32[256,784]"), graphc.spec("i64[256]"))
    seq = [
        n.op for n in g.equations if n.op not in ("proj", "reshape", "transpose", "broadcast_to")
    ]
    assert seq.count("matmul") == 8  # 3 forward, 5 backward (no gradient for the input)
    gaps, cur = [], 0
    for op in seq:
        if op == "matmul":
            gaps.append(cur)
            cur = 0
        else:
            cur += 1
    gaps.append(cur)
    # kernels between consecutive GEMMs, measured:
    #   relu1 | relu2 + the labels' one-hot (scatter_add) | softmax cross-entropy forward and
    #   backward, one row kernel | relu2' + db2 | relu1' + db1 | W1 and b1 updates | W2 and b2
    #   updates; after the last GEMM: the W3 and b3 updates, db3 and the loss
    assert gaps[1:-1] == [1, 2, 1, 1, 1, 2, 2]
    assert len(kernels(g)) == 14
    check_golden("mlp_step.fused.ir", str(g))


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_fused_equal_unfused(seed):
    prog = random_program(seed, steps=16)
    args = random_args(seed, [(5, 4), (3, 1, 4), (6,)][seed % 3])
    g = graphc.trace(prog, *args)
    f = run_pipeline(graphc.trace(prog, *args), COMPILE_PIPELINE, verify=True)
    same_values(g, f, args, rtol=1e-5)
