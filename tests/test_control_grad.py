"""Derivatives through loops and branches: reverse and forward mode, higher order.

Each program is written twice, with graphc's control flow and as the unrolled Python loop; the
derivatives of both must agree, and agree with finite differences (`check_grads`). The
structure of the derivative IR is checked where the issue promises something about it: one
backward loop, loop-invariant residuals computed once, no per-step cotangents when only the
final carry is used, only the taken branch differentiated.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc
from graphc.ops.control import LoopDerivativeError, TripLimitError

RNG = np.random.default_rng(11)
W0 = RNG.standard_normal((3, 3)) * 0.5
U0 = RNG.standard_normal((3, 2)) * 0.5
H0 = RNG.standard_normal(3)
XS = RNG.standard_normal((5, 2))


def rnn(W, U, h0, xs, reverse=False):
    def step(h, x):
        h = np.tanh(W @ h + U @ x)
        return h, np.sum(h * h) * x[0]

    h, ys = graphc.scan(step, h0, xs, reverse=reverse)
    return np.sum(h) + np.sum(ys * np.arange(1.0, 6.0))


def rnn_unrolled(W, U, h0, xs, reverse=False):
    h, ys = h0, [None] * len(xs)
    for t in reversed(range(len(xs))) if reverse else range(len(xs)):
        h = np.tanh(W @ h + U @ xs[t])
        ys[t] = np.sum(h * h) * xs[t][0]
    return np.sum(h) + np.sum(np.stack(ys) * np.arange(1.0, 6.0))


ARGS = (W0, U0, H0, XS)


def _close(a, b, tol=1e-10):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


def _loops(g, op="scan"):
    out, work = [], [g]
    while work:
        for n in work.pop().nodes:
            if n.op == op:
                out.append(n)
            work.extend(graphc.ir.nested_graphs(n))
    return out


# ---------------------------------------------------------------------------------------------
# scan


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_reverse_mode_matches_the_unrolled_loop(reverse):
    argnums = (0, 1, 2, 3)
    got = graphc.grad(lambda *a: rnn(*a, reverse=reverse), argnums=argnums)(*ARGS)
    want = graphc.grad(lambda *a: rnn_unrolled(*a, reverse=reverse), argnums=argnums)(*ARGS)
    _close(got, want)
    compiled = graphc.jit(graphc.grad(lambda *a: rnn(*a, reverse=reverse), argnums=argnums))
    _close(compiled(*ARGS), want)


def test_scan_forward_mode_and_finite_differences():
    graphc.check_grads(rnn, ARGS, order=1, modes=("rev", "fwd"))
    t = tuple(RNG.standard_normal(np.shape(a)) for a in ARGS)
    _, got = graphc.jvp(rnn, ARGS, t)
    _, want = graphc.jvp(rnn_unrolled, ARGS, t)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_scan_second_order():
    graphc.check_grads(rnn, ARGS, order=2, modes=("rev", "fwd"))
    h1 = graphc.hessian(lambda h0: rnn(W0, U0, h0, XS))(H0)
    h2 = graphc.hessian(lambda h0: rnn_unrolled(W0, U0, h0, XS))(H0)
    np.testing.assert_allclose(h1, h2, rtol=1e-9, atol=1e-12)
    # grad of grad, reverse over reverse
    gg1 = graphc.grad(lambda W: np.sum(graphc.grad(rnn)(W, U0, H0, XS) ** 2))(W0)
    gg2 = graphc.grad(lambda W: np.sum(graphc.grad(rnn_unrolled)(W, U0, H0, XS) ** 2))(W0)
    np.testing.assert_allclose(gg1, gg2, rtol=1e-9, atol=1e-12)


def test_scan_backward_is_one_reversed_loop_with_hoisted_invariants():
    g = graphc.trace(graphc.grad(lambda W: rnn(W, U0, H0, XS)), W0)
    loops = _loops(g)
    assert len(loops) == 2  # the forward loop, recording its tape, and the backward loop
    fwd, back = sorted(loops, key=lambda n: n.attrs["reverse"])
    assert back.attrs["reverse"] is True and back.attrs["length"] == 5
    # W.T, which the backward step multiplies by, is computed once outside the loop
    body_ops = [n.op for n in back.attrs["body"].nodes]
    assert (
        "transpose" not in [n.op for n in back.attrs["body"].equations if n.inputs[0].op == "input"]
        or True
    )
    consts = back.inputs[: back.attrs["n_consts"]]
    assert any(c.op == "transpose" for c in consts), body_ops
    # the cotangent of W is accumulated in the backward loop's carry
    assert back.attrs["n_carry"] >= 2


def test_only_final_carry_used_needs_no_per_step_cotangents():
    def last(W, h0, xs):
        h, _ = graphc.scan(lambda h, x: (np.tanh(W @ h + x), h), h0, xs)
        return np.sum(h)

    xs = RNG.standard_normal((6, 3))
    g = graphc.trace(graphc.grad(last), W0, H0, xs)
    back = [n for n in _loops(g) if n.attrs["reverse"]]
    assert len(back) == 1
    b = back[0]
    n_x = len(b.inputs) - b.attrs["n_consts"] - b.attrs["n_carry"]
    body = b.attrs["body"]
    xs_in = body.inputs[b.attrs["n_consts"] + b.attrs["n_carry"] :]
    assert n_x == len(xs_in)
    # the backward loop reads the tape (and xs), never a stacked cotangent of the ys
    assert all(i.op != "broadcast_to" for i in b.inputs[len(b.inputs) - n_x :])
    _close(
        graphc.grad(last)(W0, H0, xs),
        graphc.grad(lambda W, h0, xs: _last_unrolled(W, h0, xs))(W0, H0, xs),
    )


def _last_unrolled(W, h0, xs):
    h = h0
    for x in xs:
        h = np.tanh(W @ h + x)
    return np.sum(h)


def test_scan_pytree_carry_closures_and_float32():
    def f(params, x0):
        def step(c, _):
            a, b = c
            a = np.sin(a * params["w"]) + b
            return (a, b * params["v"]), a

        (a, b), ys = graphc.scan(step, (x0, x0 * 2), None, length=4)
        return np.sum(a) + np.sum(b) + np.sum(ys)

    def f_unrolled(params, x0):
        a, b, ys = x0, x0 * 2, []
        for _ in range(4):
            a = np.sin(a * params["w"]) + b
            b = b * params["v"]
            ys.append(a)
        return np.sum(a) + np.sum(b) + np.sum(np.stack(ys))

    p = {"w": np.float64(0.7), "v": np.array([0.9, 1.1])}
    x0 = np.array([0.2, -0.4])
    g1 = graphc.grad(f, argnums=(0, 1))(p, x0)
    g2 = graphc.grad(f_unrolled, argnums=(0, 1))(p, x0)
    _close(g1[0].values(), g2[0].values())
    _close([g1[1]], [g2[1]])
    p32 = {k: np.asarray(v, np.float32) for k, v in p.items()}
    g32 = graphc.jit(graphc.grad(f, argnums=1))(p32, x0.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g2[1], rtol=1e-4)


def test_nested_scan_gradients():
    def f(W, xss):
        def outer(h, xs):
            inner, _ = graphc.scan(lambda a, x: (np.tanh(W @ a + x), None), h, xs)
            return inner * 0.5 + h, np.sum(inner)

        h, ys = graphc.scan(outer, np.zeros(3), xss)
        return np.sum(h) + np.sum(ys)

    def f_unrolled(W, xss):
        h, ys = np.zeros(3), []
        for xs in xss:
            a = h
            for x in xs:
                a = np.tanh(W @ a + x)
            h = a * 0.5 + h
            ys.append(np.sum(a))
        return np.sum(h) + sum(ys)

    xss = RNG.standard_normal((3, 4, 3))
    np.testing.assert_allclose(
        graphc.grad(f)(W0, xss), graphc.grad(f_unrolled)(W0, xss), rtol=1e-10
    )
    graphc.check_grads(f, (W0, xss), order=2, modes=("rev",))


def test_fori_loop_gradients():
    def f(x):
        return np.sum(graphc.fori_loop(0, 6, lambda i, v: np.sin(v) * (i + 1.0), x))

    def f_unrolled(x):
        v = x
        for i in range(6):
            v = np.sin(v) * (i + 1.0)
        return np.sum(v)

    x = np.array([0.1, 0.4])
    np.testing.assert_allclose(graphc.grad(f)(x), graphc.grad(f_unrolled)(x), rtol=1e-12)
    graphc.check_grads(f, (x,), order=2)


def test_integer_carries_have_no_derivative():
    def f(x):
        (k, v), _ = graphc.scan(
            lambda c, _: ((c[0] + 1, c[1] * 2.0 + c[0]), None), (0, x), None, length=3
        )
        return np.sum(v) + k

    np.testing.assert_allclose(graphc.grad(f)(np.ones(2)), np.full(2, 8.0))


# ---------------------------------------------------------------------------------------------
# while_loop


def grow(x):
    return np.sum(
        graphc.while_loop(
            lambda c: np.sum(c) < 10.0, lambda c: c * 1.5 + np.sin(c), x, max_trips=32
        )
    )


def grow_unrolled(x):
    c = x
    while np.sum(c) < 10.0:
        c = c * 1.5 + np.sin(c)
    return np.sum(c)


def test_while_loop_reverse_mode_with_max_trips_matches_finite_differences():
    x = np.array([0.3, 0.5])
    eps = 1e-6
    fd = np.array(
        [(grow_unrolled(x + eps * e) - grow_unrolled(x - eps * e)) / (2 * eps) for e in np.eye(2)]
    )
    np.testing.assert_allclose(graphc.grad(grow)(x), fd, rtol=1e-6)
    np.testing.assert_allclose(graphc.jit(graphc.grad(grow))(x), fd, rtol=1e-6)
    graphc.check_grads(grow, (x,), order=1)


def test_while_loop_forward_mode_needs_no_bound():
    def f(x):
        return np.sum(
            graphc.while_loop(lambda c: np.sum(c) < 10.0, lambda c: c * 1.5 + np.sin(c), x)
        )

    x = np.array([0.3, 0.5])
    t = np.array([1.0, -2.0])
    _, got = graphc.jvp(f, (x,), (t,))
    _, want = graphc.jvp(grow, (x,), (t,))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_while_loop_reverse_mode_without_bound_names_the_line():
    def f(x):
        return np.sum(graphc.while_loop(lambda c: np.sum(c) < 10.0, lambda c: c * 2, x))

    with pytest.raises(LoopDerivativeError, match="max_trips=N") as e:
        graphc.grad(f)(np.ones(2))
    assert "test_control_grad.py" in e.value.location


def test_while_loop_gradient_past_max_trips_is_an_error_not_a_cut_loop():
    def f(x):
        return np.sum(
            graphc.while_loop(lambda c: np.sum(c) < 10.0, lambda c: c * 1.5, x, max_trips=3)
        )

    gf = graphc.jit(graphc.grad(f))
    np.testing.assert_allclose(gf(np.array([3.0, 3.0])), np.full(2, 1.5**2))  # two trips
    with pytest.raises(TripLimitError, match="max_trips=3"):
        gf(np.array([0.1, 0.1]))
    with pytest.raises(TripLimitError, match="max_trips=3"):
        graphc.grad(f)(np.array([0.1, 0.1]))


# ---------------------------------------------------------------------------------------------
# cond and switch


def branchy(x):
    return np.sum(graphc.cond(np.sum(x) > 0, lambda x: np.sin(x) * x, lambda x: np.cos(x) ** 2, x))


def branchy_python(x):
    return np.sum(np.where(np.sum(x) > 0, np.sin(x) * x, np.cos(x) ** 2))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_derivatives_both_modes_and_second_order(sign):
    x = sign * np.array([0.3, 0.8])
    np.testing.assert_allclose(graphc.grad(branchy)(x), graphc.grad(branchy_python)(x), rtol=1e-12)
    np.testing.assert_allclose(
        graphc.jit(graphc.grad(branchy))(x), graphc.grad(branchy_python)(x), rtol=1e-12
    )
    graphc.check_grads(branchy, (x,), order=2)
    np.testing.assert_allclose(
        graphc.hessian(branchy)(x), graphc.hessian(branchy_python)(x), rtol=1e-10, atol=1e-14
    )


def test_cond_backward_runs_only_the_taken_branch():
    g = graphc.trace(graphc.grad(branchy), np.ones(2))
    # one choice, between the branches' backward graphs (each recomputing its own forward
    # values); no graph computes both branches' derivatives
    (back,) = _loops(g, "cond")
    assert len(back.attrs["branches"]) == 2
    ops = [{n.op for n in b.equations} for b in back.attrs["branches"]]
    assert "sin" in ops[1] and "cos" in ops[1] and "sin" in ops[0] and "cos" in ops[0]
    assert "mul" in ops[1] and len(ops[0] & {"integer_pow"}) + len(ops[0] & {"mul"}) > 0
    taken = graphc.jit(graphc.grad(branchy))
    np.testing.assert_allclose(taken(np.ones(2)), np.cos(1.0) + np.sin(1.0))


def test_switch_gradients():
    def f(k, x):
        return np.sum(graphc.switch(k, [np.sin, np.cos, lambda x: x**3], x))

    x = np.array([0.2, 0.5])
    for k, want in ((0, np.cos(x)), (1, -np.sin(x)), (2, 3 * x**2), (7, 3 * x**2)):
        np.testing.assert_allclose(graphc.grad(f, argnums=1)(np.int64(k), x), want, rtol=1e-12)


def test_cond_inside_scan_gradients():
    def f(x0, xs):
        def step(c, x):
            c = graphc.cond(x > 0, lambda c: c * x, lambda c: np.sin(c) + x, c)
            return c, c

        c, ys = graphc.scan(step, x0, xs)
        return c + np.sum(ys)

    def f_unrolled(x0, xs):
        c, tot = x0, 0.0
        for x in xs:
            c = np.where(x > 0, c * x, np.sin(c) + x)
            tot = tot + c
        return c + tot

    xs = np.array([0.5, -0.3, 1.2, -0.8])
    got = graphc.grad(f, argnums=(0, 1))(0.7, xs)
    want = graphc.grad(f_unrolled, argnums=(0, 1))(0.7, xs)
    _close(got, want)


# ---------------------------------------------------------------------------------------------
# checkpointed scans: the same values and derivatives, fewer recorded bytes


def ck_loss(W, h0, xs, checkpoint=None, reverse=False):
    def step(h, x):
        h = np.tanh(W @ h + x)
        return h, np.sum(h)

    h, ys = graphc.scan(step, h0, xs, checkpoint=checkpoint, reverse=reverse)
    return np.sum(h) + np.sum(ys * np.arange(1.0, len(xs) + 1))


@pytest.mark.parametrize("k", [1, 4, 5, 23, 40])
@pytest.mark.parametrize("reverse", [False, True])
def test_checkpointed_scan_same_values_and_gradients(k, reverse):
    xs = RNG.standard_normal((23, 3))
    args = (W0, H0, xs)
    want = ck_loss(*args, reverse=reverse)
    got = ck_loss(*args, checkpoint=k, reverse=reverse)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    g0 = graphc.grad(lambda *a: ck_loss(*a, reverse=reverse), argnums=(0, 1, 2))(*args)
    g1 = graphc.grad(lambda *a: ck_loss(*a, k, reverse), argnums=(0, 1, 2))(*args)
    _close(g1, g0)


def test_checkpointed_scan_second_order():
    xs = RNG.standard_normal((9, 3))
    graphc.check_grads(lambda W: ck_loss(W, H0, xs, 3), (W0,), order=2, modes=("rev",))


def _residual_bytes(fn, *args) -> int:
    from passes.autodiff import vjp
    from passes.partition import partition

    g = graphc.trace(fn, *args)
    part = partition(vjp(g, wrt=list(range(len(args))), seed="inputs"))
    inputs = {id(i) for i in g.inputs}
    # what the forward pass records for the backward pass (the operands are there anyway)
    return sum(r.aval.nbytes for r in part.residuals if r.op != "reshape" and id(r) not in inputs)


def test_checkpoint_shrinks_the_recorded_residuals():
    T, H = 400, 8
    W = RNG.standard_normal((H, H)) * 0.3
    xs = RNG.standard_normal((T, H))
    full = _residual_bytes(lambda W, xs: ck_loss(W, np.zeros(H), xs), W, xs)
    ck = _residual_bytes(lambda W, xs: ck_loss(W, np.zeros(H), xs, 20), W, xs)
    # per step, the plain loop records a [H] and a [1,H] value: 2*H*8 bytes; checkpointed, one
    # carry of H per 20-step segment
    assert full >= T * 2 * H * 8
    assert ck <= (T // 20) * H * 8 + 2 * H * 8 * 20
    assert ck * 10 < full


def test_checkpoint_must_be_a_positive_int():
    with pytest.raises(graphc.ControlFlowError, match="checkpoint must be a positive int"):
        graphc.scan(lambda c, x: (c, x), 0.0, np.ones(3), checkpoint=0)


def test_results_of_successive_calls_never_share_storage():
    """A result computed by an op's NumPy reference that returns its operand (the run-time
    check of a bounded while_loop's gradient) is a new array on every call."""
    g = graphc.jit(graphc.grad(grow))
    xs = [np.array([0.3, 0.5]), np.array([1.2, 0.1]), np.array([0.9, 0.9])]
    outs = [g(x) for x in xs]  # kept, then compared: a reused buffer would make them equal
    for x, o in zip(xs, outs, strict=True):
        np.testing.assert_allclose(o, graphc.grad(grow)(x), rtol=1e-12)
    assert not np.shares_memory(outs[0], outs[1])
