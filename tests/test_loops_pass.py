"""The `loops` pass: loop-invariant work hoisted out of scans, per-step product sums folded
into one product after the loop; and dead-code elimination of loops whose operands are other
loops' results."""

from __future__ import annotations

import numpy as np
import pytest

import graphc
from passes import run_pipeline
from passes.dce import dce
from passes.loops import fold_accumulations, hoist_invariants

RNG = np.random.default_rng(5)


def batched_rnn(W, U, h0, xs):
    def step(h, x):
        h = np.tanh(h @ W + x @ U)
        return h, np.sum(h**2, axis=1)

    h, ys = graphc.scan(step, h0, xs)
    return np.sum(h) + np.sum(ys)


def _args(B=4, H=5, D=3, T=7):
    return (
        RNG.standard_normal((H, H)) * 0.4,
        RNG.standard_normal((D, H)) * 0.4,
        RNG.standard_normal((B, H)),
        RNG.standard_normal((T, B, D)),
    )


def _scans(g):
    return [n for n in g.nodes if n.op == "scan"]


def test_weight_gradients_are_one_product_after_the_loop():
    args = _args()
    g = graphc.trace(graphc.grad(batched_rnn, argnums=(0, 1)), *args)
    opt = run_pipeline(g)
    back = [n for n in _scans(opt) if n.attrs["reverse"]]
    assert len(back) == 1
    # the backward loop's carry is the cotangent of h alone: no weight gradient accumulates
    b = back[0]
    assert b.attrs["n_carry"] == 1
    body_ops = b.attrs["body"].op_counts()
    assert body_ops.get("matmul", 0) == 1  # dh = dz @ W.T only
    # outside the loops: the two weight gradients, one matmul each
    assert opt.op_counts()["matmul"] == 2
    want = graphc.grad(batched_rnn, argnums=(0, 1))(*args)
    got = graphc.evaluate(opt, *args)
    for a, b_ in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b_, rtol=1e-10)
    compiled = graphc.jit(graphc.grad(batched_rnn, argnums=(0, 1)))(*args)
    for a, b_ in zip(compiled, want, strict=True):
        np.testing.assert_allclose(a, b_, rtol=1e-10)


def test_invariant_work_leaves_the_loop():
    def f(W, h0, xs):
        def step(h, x):
            Wt = W.T * 2.0  # the same every step
            return np.tanh(Wt @ h + x), None

        return graphc.scan(step, h0, xs)[0]

    W, h0, xs = RNG.standard_normal((3, 3)), np.zeros(3), RNG.standard_normal((6, 3))
    g = graphc.trace(f, W, h0, xs)
    (loop,) = _scans(g)
    res = hoist_invariants(loop)
    assert res is not None
    new = res[0].inputs[0]
    assert new.attrs["n_consts"] == loop.attrs["n_consts"] + 1
    assert "transpose" not in new.attrs["body"].op_counts()
    assert "mul" not in new.attrs["body"].op_counts()
    np.testing.assert_allclose(
        graphc.evaluate(run_pipeline(g), W, h0, xs)[0], graphc.evaluate(g, W, h0, xs)[0]
    )


def test_accumulation_with_other_readers_is_left_alone():
    def f(W, xs):
        def step(acc, x):
            acc = acc + np.outer(x, x) @ W
            return acc, np.sum(acc)  # the running value is read: not a pure sum

        return graphc.scan(step, np.zeros((3, 3)), xs)

    W, xs = RNG.standard_normal((3, 3)), RNG.standard_normal((5, 3))
    (loop,) = _scans(graphc.trace(f, W, xs))
    assert fold_accumulations(loop) is None


@pytest.mark.parametrize("reverse", [False, True])
def test_folded_sum_matches_the_loop(reverse):
    def f(A, xs):
        def step(acc, x):
            return acc + x.reshape(3, 1) @ np.tanh(x @ A).reshape(1, 3), None

        return graphc.scan(step, np.ones((3, 3)), xs, reverse=reverse)[0]

    A, xs = RNG.standard_normal((3, 3)), RNG.standard_normal((9, 3))
    g = graphc.trace(f, A, xs)
    (loop,) = _scans(g)
    assert fold_accumulations(loop) is not None
    want = np.ones((3, 3)) + sum(np.outer(x, np.tanh(x @ A)) for x in xs)
    # the same sum in another order: equal to rounding
    np.testing.assert_allclose(
        graphc.evaluate(run_pipeline(g), A, xs)[0], want, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(graphc.jit(f)(A, xs), want, rtol=1e-12, atol=1e-14)


def test_dce_of_a_loop_reading_a_pruned_loop_keeps_one_copy():
    args = _args(T=4)
    g = graphc.trace(graphc.grad(batched_rnn), *args)
    g2, _ = dce(run_pipeline(g, ["fold", "simplify", "loops", "cse"]))
    # the forward loop (pruned of the per-step sums nothing reads) exists once
    assert len(_scans(g2)) == 2
    np.testing.assert_allclose(
        graphc.evaluate(g2, *args)[0], graphc.evaluate(g, *args)[0], rtol=1e-10
    )
