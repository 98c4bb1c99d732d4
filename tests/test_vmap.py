"""graphc.vmap: `vmap(f)(xs)` is `stack([f(x) for x in xs])`, as one batched graph.

The op table's batching column (tests/test_ops_table.py) checks every op's rule on its rows;
here: random programs, every form of in_axes and out_axes, composition with the other
transformations and with loops and branches, the errors, the loop that stands in for a missing
rule, and the pass's promises (work shared by all examples is not repeated, linear walks).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability.programs import generate

import graphc
from graphc import numpy as gnp
from graphc.ops import REGISTRY, Facts, Kind, Tape, Template, bind, defop
from passes.batching import batch

HERE = os.path.basename(__file__)


def stacked(f, *per_example_args, axis=0):
    """The reference: f on each example, results stacked (leaf by leaf) along `axis`."""
    outs = [f(*a) for a in zip(*per_example_args, strict=True)]
    if isinstance(outs[0], tuple):
        return tuple(np.stack([o[k] for o in outs], axis=axis) for k in range(len(outs[0])))
    if isinstance(outs[0], dict):
        return {k: np.stack([o[k] for o in outs], axis=axis) for k in outs[0]}
    return np.stack(outs, axis=axis)


def close(got, want, tol=1e-12):
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            close(got[k], want[k], tol)
        return
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            close(g, w, tol)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert (got.shape, got.dtype) == (want.shape, want.dtype), (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# rules


def test_every_primitive_has_a_batching_rule():
    """Every op's entry has its rule; sources and proj are the pass's own business."""
    missing = sorted(
        n for n, d in REGISTRY.items() if d.batch is None and n not in ("input", "const", "proj")
    )
    assert not missing, f"ops without a batching rule: {missing}"


# ---------------------------------------------------------------------------------------------
# random programs


@settings(max_examples=80, deadline=None, derandomize=True)
@given(seed=st.integers(0, 400), axes=st.lists(st.sampled_from([0, -1, 1, None]), min_size=3))
def test_random_programs(seed, axes):
    """The conformance suite's programs (elementwise, broadcasting, reductions over every
    axis form, shape ops, indexing, matmul), batched along random axes of random inputs."""
    prog = generate(seed)
    rng = np.random.default_rng(seed)
    n = len(prog.shapes)
    # an axis each input has once batched (one more than its own), else 0
    in_axes = [
        a if a is None or -len(s) - 1 <= a <= len(s) else 0
        for a, s in zip(axes, prog.shapes, strict=False)
    ]
    in_axes = (in_axes + [0] * n)[:n]
    if all(a is None for a in in_axes):
        in_axes[0] = 0
    batch_size = 3
    examples = [[rng.standard_normal(s) for s in prog.shapes] for _ in range(batch_size)]
    args = [
        examples[0][k] if a is None else np.stack([e[k] for e in examples], axis=a)
        for k, a in enumerate(in_axes)
    ]
    want = [
        prog(*[e[k] if a is not None else examples[0][k] for k, a in enumerate(in_axes)])
        for e in examples
    ]
    got = graphc.vmap(prog, in_axes=tuple(in_axes), backend="interpreter")(*args)
    for k, g in enumerate(got):
        w = np.stack([np.asarray(r[k]) for r in want])
        close(g, w, 1e-10)


@pytest.mark.parametrize("seed", [3, 17])
def test_random_programs_compiled(seed):
    """Compiled, with the batch on axis 0 of every input, in float32."""
    prog = generate(seed)
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((4, *s)).astype(np.float32) for s in prog.shapes]
    got = graphc.jit(graphc.vmap(prog))(*xs)
    for k, g in enumerate(got):
        w = np.stack([np.asarray(prog(*[x[i] for x in xs])[k]) for i in range(4)])
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


# ---------------------------------------------------------------------------------------------
# in_axes, out_axes, axis_size


def f2(x, w):
    return np.tanh(x @ w) + x.sum()


def test_in_axes_forms():
    rng = np.random.default_rng(0)
    xs, w = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    want = stacked(lambda x: f2(x, w), xs)
    close(graphc.vmap(f2, in_axes=(0, None))(xs, w), want)
    close(graphc.vmap(f2, in_axes=[0, None])(xs, w), want)  # a list counts as a tuple
    close(graphc.vmap(f2, in_axes=(1, None))(xs.T, w), want)
    close(graphc.vmap(f2, in_axes=(-1, None))(xs.T, w), want)
    close(graphc.vmap(f2, in_axes=(-2, None))(xs, w), want)
    ws = rng.standard_normal((5, 3, 4))
    close(graphc.vmap(f2)(xs, ws), stacked(f2, xs, ws))
    close(
        graphc.vmap(f2, in_axes=(None, 2))(xs[0], ws.transpose(1, 2, 0)),
        stacked(lambda w: f2(xs[0], w), ws),
    )


def test_in_axes_prefix_of_pytrees_and_keywords():
    rng = np.random.default_rng(1)
    p = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    xs = rng.standard_normal((4, 3))

    def f(p, x, scale=1.0):
        return np.tanh(x @ p["W"] + p["b"]) * scale

    want = stacked(lambda x: f(p, x), xs)
    close(graphc.vmap(f, in_axes=(None, 0))(p, xs), want)
    close(graphc.vmap(f, in_axes=({"W": None, "b": None}, 0))(p, xs), want)
    bs = rng.standard_normal((4, 2))
    close(
        graphc.vmap(f, in_axes=({"b": 0, "W": None}, 0))({"W": p["W"], "b": bs}, xs),
        stacked(lambda b, x: f({"W": p["W"], "b": b}, x), bs, xs),
    )
    # keyword arguments are mapped along axis 0, as in JAX
    scales = np.arange(4.0)
    close(
        graphc.vmap(f, in_axes=(None, 0))(p, xs, scale=scales),
        stacked(lambda x, s: f(p, x, s), xs, scales),
    )
    # static arguments (Python ints) steer the trace and are never mapped
    close(graphc.vmap(lambda x, n: x**n)(xs, 3), xs**3)


def test_out_axes_forms():
    xs = np.arange(12.0).reshape(4, 3)

    def f(x):
        return x * 2, x.sum(), np.float64(7.0)

    a, b, c = graphc.vmap(f, out_axes=(1, 0, None))(xs)
    close(a, (xs * 2).T)
    close(b, xs.sum(1))
    close(c, np.float64(7.0))  # the same for every example: not repeated
    a, b, c = graphc.vmap(f, out_axes=-1)(xs)
    close(a, (xs * 2).T)
    close(c, np.full(4, 7.0))  # an out axis repeats what is the same for all
    d = graphc.vmap(lambda x: {"y": x, "z": x[0]}, out_axes={"y": 1, "z": 0})(xs)
    close(d["y"], xs.T)
    close(d["z"], xs[:, 0])


def test_axis_size_without_mapped_arguments():
    out = graphc.vmap(lambda x: x * 2, in_axes=None, axis_size=3)(np.arange(2.0))
    close(out, np.tile(np.arange(2.0) * 2, (3, 1)))
    out = graphc.vmap(lambda x, y: x + y, in_axes=(0, None), axis_size=2)(np.ones((2, 3)), 1.0)
    close(out, np.full((2, 3), 2.0))


# ---------------------------------------------------------------------------------------------
# errors name the user's line


def _raises(call, *words):
    with pytest.raises(graphc.BatchingError) as e:
        call()
    msg = str(e.value)
    assert HERE in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_errors():
    x, y = np.ones((3, 2)), np.ones((4, 2))
    _raises(lambda: graphc.vmap(np.add)(x, y), "different sizes", "has 3 along axis 0", "has 4")
    _raises(lambda: graphc.vmap(np.sum, in_axes=2)(x), "axis 2", "2 axes")
    _raises(lambda: graphc.vmap(np.sum)(np.float64(1.0)), "scalar")
    _raises(lambda: graphc.vmap(np.sum, in_axes=(0, 0))(x), "2 entries for 1")
    _raises(
        lambda: graphc.vmap(lambda p: p["a"], in_axes=({"b": 0},))({"a": x}),
        "does not fit",
        "['b']",
        "['a']",
    )
    _raises(lambda: graphc.vmap(np.sum, out_axes=None)(x), "out_axes is None")
    _raises(lambda: graphc.vmap(np.sum, in_axes=None)(x), "axis_size")
    _raises(lambda: graphc.vmap(np.sum, axis_size=5)(x), "axis_size=5", "3")
    _raises(lambda: graphc.vmap(lambda a: a, out_axes=3)(x), "out of range")
    _raises(lambda: graphc.vmap(lambda a: (a, a), out_axes=(0, 0, 0))(x), "does not fit")
    _raises(lambda: graphc.vmap(np.sum, in_axes="rows"), "in_axes")
    _raises(lambda: graphc.vmap(np.sum, axis_size=-1), "axis_size")
    # also inside an enclosing trace
    _raises(lambda: graphc.jit(lambda a, b: graphc.vmap(np.add)(a, b))(x, y), "different sizes")


# ---------------------------------------------------------------------------------------------
# composition


def test_nested_vmap_and_closures():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 5, 3))
    f = lambda x: np.sin(x) @ np.arange(3.0)  # noqa: E731
    close(graphc.vmap(graphc.vmap(f))(a), np.array([[f(v) for v in row] for row in a]))
    close(
        graphc.vmap(graphc.vmap(f), in_axes=1)(a),
        np.array([[f(v) for v in col] for col in a.transpose(1, 0, 2)]),
    )
    xs, ys = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    # the inner function closes over the outer example
    pair = graphc.vmap(lambda x: graphc.vmap(lambda y: np.dot(x, y))(ys))
    close(pair(xs), xs @ ys.T)
    close(graphc.jit(pair)(xs), xs @ ys.T)


def loss(w, x):
    return np.sum(np.tanh(w @ x) ** 2)


def test_vmap_of_grad_and_grad_of_vmap():
    rng = np.random.default_rng(3)
    w, xs = rng.standard_normal((3, 3)), rng.standard_normal((6, 3))
    per_example = graphc.vmap(graphc.grad(loss), in_axes=(None, 0))
    close(per_example(w, xs), stacked(lambda x: graphc.grad(loss)(w, x), xs))
    close(graphc.jit(per_example)(w, xs), per_example(w, xs))
    vg = graphc.vmap(graphc.value_and_grad(loss), in_axes=(None, 0))(w, xs)
    close(vg, stacked(lambda x: graphc.value_and_grad(loss)(w, x), xs))

    def total(w):
        return np.sum(graphc.vmap(loss, in_axes=(None, 0))(w, xs))

    close(graphc.grad(total)(w), sum(graphc.grad(loss)(w, x) for x in xs))
    graphc.check_grads(total, (w,), order=2)


def test_jvp_jacobian_hessian_under_vmap():
    rng = np.random.default_rng(4)
    xs, ts = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    f = lambda x: np.sin(x) * np.sum(x**2)  # noqa: E731
    got = graphc.vmap(lambda x, t: graphc.jvp(f, (x,), (t,)))(xs, ts)
    close(got, stacked(lambda x, t: graphc.jvp(f, (x,), (t,)), xs, ts))
    close(graphc.vmap(graphc.jacobian(f))(xs), stacked(graphc.jacobian(f), xs))
    h = lambda x: np.sum(np.sin(x) ** 3)  # noqa: E731
    close(graphc.vmap(graphc.hessian(h))(xs), stacked(graphc.hessian(h), xs))
    close(graphc.jit(graphc.vmap(graphc.hessian(h)))(xs), stacked(graphc.hessian(h), xs))


def test_jacobian_is_one_batched_pass():
    """Under jit, the Jacobian is one forward pass and one backward pass batched over the
    one-hot cotangents: as many matrix products as one gradient, whatever the output size."""
    rng = np.random.default_rng(5)
    w1, w2 = rng.standard_normal((16, 8)), rng.standard_normal((12, 16))
    x = rng.standard_normal(8)
    mlp = lambda x: np.tanh(w2 @ np.tanh(w1 @ x))  # noqa: E731
    for mode in ("reverse", "forward"):
        jac = graphc.jit(graphc.jacobian(mlp, mode=mode))
        eps, cols = 1e-6, []
        for k in range(8):
            e = np.zeros(8)
            e[k] = eps
            cols.append((mlp(x + e) - mlp(x - e)) / (2 * eps))
        np.testing.assert_allclose(jac(x), np.stack(cols, 1), rtol=1e-6, atol=1e-8)
        matmuls = jac.trace(x).op_counts().get("matmul", 0)
        assert matmuls <= 4, (mode, matmuls)


def test_hessian_and_jacobian_structures_still_hold():
    J = graphc.jacobian(lambda p: {"y": p["a"] * p["b"]})({"a": 2.0, "b": 3.0})
    assert J["y"]["a"] == 3.0 and J["y"]["b"] == 2.0
    H = graphc.hessian(lambda p: p["a"] ** 2 * np.sum(p["b"]))({"a": 2.0, "b": np.ones(2)})
    close(H["a"]["a"], np.array(4.0))
    close(H["a"]["b"], np.array([4.0, 4.0]))
    close(H["b"]["b"], np.zeros((2, 2)))


# ---------------------------------------------------------------------------------------------
# loops and branches


W = np.random.default_rng(6).standard_normal((3, 3)) * 0.5


def rnn(h0, xs):
    return graphc.scan(lambda h, x: (np.tanh(W @ h + x), h.sum()), h0, xs)


def test_scan():
    rng = np.random.default_rng(7)
    h0, xs = rng.standard_normal((4, 3)), rng.standard_normal((4, 6, 3))
    close(graphc.vmap(rnn)(h0, xs), stacked(rnn, h0, xs))
    # only the sequences batched: the carry becomes batched from the first step
    close(graphc.vmap(rnn, in_axes=(None, 0))(h0[0], xs), stacked(lambda x: rnn(h0[0], x), xs))
    # only the initial carry, and the sequences batched on their time axis
    close(
        graphc.jit(graphc.vmap(rnn, in_axes=(0, None)))(h0, xs[0]),
        stacked(lambda h: rnn(h, xs[0]), h0),
    )
    close(
        graphc.vmap(rnn, in_axes=(None, 1))(h0[0], xs.transpose(1, 0, 2)),
        stacked(lambda x: rnn(h0[0], x), xs),
    )

    # a loop-invariant operand (closed over) per example
    def scaled(s, xs):
        return graphc.scan(lambda c, x: (c * s + x, c), np.zeros(3), xs)

    ss = rng.standard_normal(4)
    close(graphc.vmap(scaled)(ss, xs), stacked(scaled, ss, xs))
    # reverse mode through the batched loop
    g = graphc.grad(lambda h: np.sum(graphc.vmap(rnn)(h, xs)[0] ** 2))(h0)
    want = np.stack(
        [graphc.grad(lambda h, x=x: np.sum(rnn(h, x)[0] ** 2))(h0[i]) for i, x in enumerate(xs)]
    )
    close(g, want, 1e-10)


def test_while_loop_with_a_condition_per_example():
    """The loop runs while any example's condition holds; each example stops at its own
    trip, as the unbatched loop would."""

    def grow(x):
        return graphc.while_loop(
            lambda c: c[0] < 10.0, lambda c: (c[0] * 1.7 + 0.3, c[1] + 1), (x, 0)
        )

    x0 = np.array([0.5, 3.0, 9.9, 20.0])
    want = stacked(grow, x0)
    close(graphc.vmap(grow)(x0), want)
    close(graphc.jit(graphc.vmap(grow))(x0), want)
    assert list(want[1]) == [5, 3, 1, 0]
    # the same condition for all examples: one plain loop over batched carries
    counted = lambda n, x: graphc.fori_loop(0, n, lambda i, v: v * 0.5 + i, x)  # noqa: E731
    xs = np.arange(8.0).reshape(4, 2)
    close(
        graphc.vmap(counted, in_axes=(None, 0))(np.int64(3), xs),
        stacked(lambda x: counted(np.int64(3), x), xs),
    )
    # a bound per example: a condition per example
    ns = np.array([0, 1, 4, 2])
    close(graphc.vmap(counted)(ns, xs), stacked(counted, ns, xs))


def test_reverse_mode_of_a_bounded_while_loop_per_example():
    """grad of a while_loop with max_trips is a scan of conds with a check: batched, the
    branch index and the check's condition are per example."""

    def f(x):
        c = graphc.while_loop(
            lambda c: np.sum(c) < 6.0, lambda c: c * 1.5 + np.sin(c), x, max_trips=20
        )
        return np.sum(c**2)

    xs = np.random.default_rng(13).uniform(0.2, 1.5, (5, 2))
    close(graphc.vmap(graphc.grad(f))(xs), stacked(graphc.grad(f), xs), 1e-10)
    close(graphc.jit(graphc.vmap(graphc.grad(f)))(xs), stacked(graphc.grad(f), xs), 1e-10)
    with pytest.raises(RuntimeError, match="max_trips"):
        short = lambda x: graphc.while_loop(lambda c: c < 100.0, lambda c: c * 2, x, max_trips=3)  # noqa: E731
        graphc.vmap(graphc.grad(short))(np.array([1.0, 50.0]))


def test_cond_and_switch():
    rng = np.random.default_rng(8)
    xs = rng.standard_normal((6, 3))
    c = lambda x: graphc.cond(x.sum() > 0, lambda v: np.sin(v), lambda v: v * 2, x)  # noqa: E731
    close(graphc.vmap(c)(xs), stacked(c, xs))
    close(graphc.jit(graphc.vmap(c))(xs), stacked(c, xs))
    # the predicate the same for all: one cond of batched branches
    p = lambda flag, x: graphc.cond(flag, lambda v: np.sin(v), lambda v: v * 2, x)  # noqa: E731
    close(graphc.vmap(p, in_axes=(None, 0))(np.True_, xs), np.sin(xs))
    g = graphc.jit(graphc.vmap(p, in_axes=(None, 0))).trace(np.True_, xs)
    assert "cond" in g.op_counts()
    s = lambda i, x: graphc.switch(i, [np.sin, np.cos, lambda v: v * 3], x)  # noqa: E731
    idx = np.array([0, 2, 1, 5, -1, 1])  # clamped into range, as the unbatched switch does
    close(graphc.vmap(s)(idx, xs), stacked(s, idx, xs))
    # derivatives through the select
    gs = graphc.grad(lambda x: np.sum(graphc.vmap(c)(x)))(xs)
    close(gs, stacked(graphc.grad(lambda x: np.sum(c(x))), xs))


def test_nested_loops():
    def inner(x):
        return graphc.scan(
            lambda c, _: (graphc.cond(c.sum() > 1, lambda v: v * 0.5, lambda v: v + 1, c), c.sum()),
            x,
            None,
            length=5,
        )

    def outer(x):
        return graphc.scan(lambda c, _: inner(c), x, None, length=3)

    xs = np.random.default_rng(9).standard_normal((4, 2))
    close(graphc.vmap(outer)(xs), stacked(outer, xs))


# ---------------------------------------------------------------------------------------------
# custom derivative rules and checkpoints


@graphc.custom_jvp
def softplus(x):
    return np.log1p(np.exp(x))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), t / (1 + np.exp(-x))


@graphc.custom_vjp
def clipped_mul(a, b):
    return a * b


def _clipped_fwd(a, b):
    return a * b, (a, b)


def _clipped_bwd(res, g):
    a, b = res
    return np.clip(g * b, -1, 1), g * a


clipped_mul.defvjp(_clipped_fwd, _clipped_bwd)


def test_custom_rules_and_checkpoints_under_vmap():
    rng = np.random.default_rng(12)
    xs, w = rng.standard_normal((5, 3)) * 3, rng.standard_normal(3)
    # custom_jvp: values, per-example gradients, and forward mode through the batched rule
    f = lambda x: np.sum(softplus(x * w))  # noqa: E731
    close(graphc.vmap(f)(xs), stacked(f, xs))
    close(graphc.vmap(graphc.grad(f))(xs), stacked(graphc.grad(f), xs))
    close(graphc.grad(lambda x: np.sum(graphc.vmap(f)(x)))(xs), stacked(graphc.grad(f), xs))
    ts = rng.standard_normal((5, 3))
    close(
        graphc.jvp(graphc.vmap(f), (xs,), (ts,))[1],
        stacked(lambda x, t: graphc.jvp(f, (x,), (t,))[1], xs, ts),
    )
    # custom_vjp: a shared argument gets the sum of the examples' cotangents
    g = lambda a, b: np.sum(clipped_mul(a, b))  # noqa: E731
    ga, gb = graphc.grad(
        lambda a, bs: np.sum(graphc.vmap(g, in_axes=(None, 0))(a, bs)), argnums=(0, 1)
    )(w, xs)
    close(ga, sum(np.clip(b, -1, 1) for b in xs))
    close(gb, np.tile(w, (5, 1)))
    close(
        graphc.vmap(graphc.grad(g), in_axes=(None, 0))(w, xs),
        stacked(lambda b: graphc.grad(g)(w, b), xs),
    )
    # checkpoint: the same values and gradients, batched
    h = graphc.checkpoint(lambda x: np.tanh(np.sin(x) * w))
    loss = lambda x: np.sum(h(x) ** 2)  # noqa: E731
    close(graphc.vmap(graphc.grad(loss))(xs), stacked(graphc.grad(loss), xs))
    close(graphc.jit(graphc.vmap(graphc.grad(loss)))(xs), stacked(graphc.grad(loss), xs))
    sg = lambda x: np.sum(graphc.stop_gradient(x) * x)  # noqa: E731
    close(graphc.vmap(graphc.grad(sg))(xs), xs)


# ---------------------------------------------------------------------------------------------
# the per-example gradients of a network


def test_per_example_gradients_of_an_mlp():
    rng = np.random.default_rng(10)
    p = {
        "W1": rng.standard_normal((6, 5)) * 0.3,
        "b1": rng.standard_normal(5) * 0.1,
        "W2": rng.standard_normal((5, 3)) * 0.3,
        "b2": np.zeros(3),
    }
    xs, ys = rng.standard_normal((7, 6)), rng.integers(0, 3, 7)

    def example_loss(p, x, y):
        h = gnp.relu(x @ p["W1"] + p["b1"])
        return -gnp.log_softmax(h @ p["W2"] + p["b2"])[y]

    per_example = graphc.vmap(graphc.grad(example_loss), in_axes=(None, 0, 0))
    want = stacked(lambda x, y: graphc.grad(example_loss)(p, x, y), xs, ys)
    close(per_example(p, xs, ys), want)
    # the mean of the per-example gradients is the batch gradient
    batch_loss = lambda p: np.mean(graphc.vmap(example_loss, in_axes=(None, 0, 0))(p, xs, ys))  # noqa: E731
    g = graphc.grad(batch_loss)(p)
    close(g, {k: v.mean(0) for k, v in want.items()})


def test_convolutions_with_filters_per_example():
    """Images and filters both per example (a batch of models): windows times filters, the
    transposes alike; against the per-example ops, to second order through the rules."""
    rng = np.random.default_rng(14)
    xs, ws = rng.standard_normal((3, 2, 2, 7, 6)), rng.standard_normal((3, 4, 2, 3, 2))

    def f(x, w):
        return gnp.conv2d(x, w, stride=(2, 1), padding=(1, 0))

    close(graphc.vmap(f)(xs, ws), stacked(f, xs, ws), 1e-10)
    loss = lambda x, w: np.sum(np.tanh(f(x, w)) ** 2)  # noqa: E731
    both = graphc.grad(loss, argnums=(0, 1))
    close(graphc.vmap(both)(xs, ws), stacked(both, xs, ws), 1e-10)
    assert "scan" not in graphc.trace(graphc.vmap(both), xs, ws).op_counts()


def test_convolutions_fold_the_batch_into_images():
    rng = np.random.default_rng(11)
    xs = rng.standard_normal((3, 2, 1, 6, 6))  # a batch of image batches
    w = rng.standard_normal((4, 1, 3, 3))

    def net(x, w):
        return gnp.max_pool2d(gnp.relu(gnp.conv2d(x, w, padding=1)), 2)

    f = graphc.vmap(net, in_axes=(0, None))
    close(f(xs, w), stacked(lambda x: net(x, w), xs))
    g = graphc.trace(f, xs, w)
    assert "scan" not in g.op_counts()  # no loop: one convolution of 6 images
    # per-example filter gradients: images and cotangents per example, each example's
    # windows against its cotangents in one batched product, no loop
    per_example = graphc.vmap(graphc.grad(lambda w, x: np.sum(net(x, w) ** 2)), in_axes=(None, 0))
    assert "scan" not in graphc.trace(per_example, w, xs).op_counts()
    close(
        per_example(w, xs),
        stacked(lambda x: graphc.grad(lambda w: np.sum(net(x, w) ** 2))(w), xs),
        1e-10,
    )


# ---------------------------------------------------------------------------------------------
# an op without a rule runs as a loop over the batch, and says so

NAME = "cube_plus_vmap_test"


@pytest.fixture
def ruleless_op():
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


def test_an_op_without_a_rule_runs_as_a_loop(ruleless_op, monkeypatch, capsys):
    xs = np.linspace(-1, 1, 12).reshape(4, 3)
    f = lambda x, s: np.sin(bind(NAME, x)) * s  # noqa: E731
    monkeypatch.setenv("GRAPHC_DEBUG", "1")
    jitted = graphc.jit(graphc.vmap(f, in_axes=(0, None)))
    close(jitted(xs, 2.0), np.sin(xs**3 + xs) * 2.0)
    assert f"vmap: {NAME}: no batching rule" in capsys.readouterr().err
    monkeypatch.delenv("GRAPHC_DEBUG")
    (note,) = jitted.lower(xs, 2.0).notes
    assert graphc.vmap(f, in_axes=(0, None)).lower(xs, 2.0).notes == [note]
    assert NAME in note and HERE in note and "loop over the batch of 4" in note
    scans = [n for n in jitted.trace(xs, 2.0).equations if n.op == "scan"]
    assert len(scans) == 1 and scans[0].attrs["length"] == 4
    # derivatives through the loop
    g = graphc.grad(lambda x: np.sum(graphc.vmap(f, in_axes=(0, None))(x, 2.0)))(xs)
    close(g, 2.0 * np.cos(xs**3 + xs) * (3 * xs**2 + 1))


# ---------------------------------------------------------------------------------------------
# the pass


def test_work_the_same_for_all_examples_is_done_once():
    g = graphc.trace(
        lambda x, w: np.tanh(x @ np.exp(w)), graphc.spec("f64[3]"), graphc.spec("f64[3,4]")
    )
    bg = batch(g, [0, None], 8)
    exp_before = [n for n in g.equations if n.op == "exp"]
    exp_after = [n for n in bg.equations if n.op == "exp"]
    assert exp_after == exp_before and exp_after[0] is exp_before[0]  # the very node
    assert bg.inputs[0].aval == graphc.Aval((8, 3), np.float64)
    assert bg.inputs[1] is g.inputs[1]
    assert bg.outputs[0].aval == graphc.Aval((8, 4), np.float64)
    assert bg.info["out_dims"] == [0]


def test_a_long_chain_batches_with_a_small_stack():
    """The walk is iterative and linear: a 5,000-op chain, recursion limit 300."""
    n = 5000

    def chain(x):
        for k in range(n):
            x = np.sin(x) if k % 2 else np.tanh(x)
        return x

    g = graphc.trace(chain, graphc.spec("f64[3]"))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        bg = batch(g, [0], 4)
    finally:
        sys.setrecursionlimit(old)
    assert len(bg.equations) == len(g.equations)
    x = np.linspace(0, 1, 12).reshape(4, 3)
    close(graphc.evaluate(bg, x)[0], stacked(lambda v: graphc.evaluate(g, v)[0], x))
