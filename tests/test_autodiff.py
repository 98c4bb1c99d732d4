"""Reverse and forward mode: seed values, nested structures, higher order, stability."""

import sys

import numpy as np
import pytest
import seeds

import graphc
from graphc import numpy as gnp
from graphc.verify import verify
from passes.autodiff import AutodiffError, jvp, vjp
from passes.partition import partition


def rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(np.abs(b), 1e-300))


# -- seed values -------------------------------------------------------------------------------


def test_polynomial_derivatives():
    f = lambda x: 3 * x**2 + 2 * x + 1
    assert graphc.gradient(f, 2.0) == (14.0,)
    assert isinstance(graphc.gradient(f, 2.0)[0], float)
    df = graphc.grad(f)
    assert df(2.0) == 14.0
    assert graphc.grad(df)(2.0) == 6.0
    assert graphc.grad(graphc.grad(df))(2.0) == 0.0


def test_gradient_of_two_arrays():
    gx, gy = graphc.gradient(
        lambda x, y: np.sum((x - y) ** 2), np.array([2.0, 1.0]), np.array([2.0, 0.0])
    )
    np.testing.assert_array_equal(gx, [0, 2])
    np.testing.assert_array_equal(gy, [-0.0, -2])


def test_gradient_of_nested_structure():
    nt = dict(a=np.array([2.0, 1.0]), b=np.array([2.0, 0.0]), c=np.tanh)
    (g,) = graphc.gradient(lambda t: np.sum((t["a"] - t["b"]) ** 2), nt)
    assert set(g) == {"a", "b", "c"}
    np.testing.assert_array_equal(g["a"], [0, 2])
    np.testing.assert_array_equal(g["b"], [-0.0, -2])
    assert g["c"] is None


def test_withgradient():
    v, g = graphc.withgradient(lambda x: 3 * x**2 + 2 * x + 1, 2.0)
    assert v == 17.0 and g == (14.0,)


def test_article_function():
    f = lambda a, b: (a / b - a) * (b / a + a + b) * (a - b)
    ga, gb = graphc.gradient(f, 230.3, 33.2)
    assert rel(ga, -153284.83150602) < 1e-9
    assert rel(gb, 3815.03894415) < 1e-9


def test_article_function_variant():
    f = lambda a, b: ((a**2) / np.sin(b) - a) * (b / a + np.cos(a) + b) * (a - np.exp(b))
    ga, gb = graphc.gradient(f, 230.3, 33.2)
    assert rel(ga, -1.56674119e19) < 1e-8
    assert rel(gb, -5.79507777e20) < 1e-8


def _chain_model(p, x):
    """Chain(Dense(2=>1, tanh), Dense(1=>1)) of a flat parameter vector [W1(2), b1, W2, b2]."""
    W1, b1, W2, b2 = p[0:2].reshape(1, 2), p[2:3], p[3:4].reshape(1, 1), p[4:5]
    h = np.tanh(W1 @ x + b1[:, None])
    return W2 @ h + b2[:, None]


def test_hessian_of_chain_loss_over_flat_parameters():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 16))
    p = rng.standard_normal(5)
    loss = lambda p: np.sum(np.abs(_chain_model(p, x)) ** 2)
    H = graphc.hessian(loss)(p)
    assert H.shape == (5, 5)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)
    # central differences of the (exact) gradient
    g = graphc.grad(loss)
    eps = 1e-6
    num = np.stack([(g(p + eps * e) - g(p - eps * e)) / (2 * eps) for e in np.eye(5)], axis=1)
    np.testing.assert_allclose(H, num, rtol=1e-6, atol=1e-6)
    H2 = graphc.hessian(loss, mode="reverse-over-reverse")(p)
    np.testing.assert_allclose(H2, H, rtol=1e-12, atol=1e-12)


def test_hessian_through_destructure():
    rng = np.random.default_rng(2)
    params = {
        "W1": rng.standard_normal((1, 2)),
        "b1": rng.standard_normal(1),
        "W2": rng.standard_normal((1, 1)),
        "b2": rng.standard_normal(1),
        "act": np.tanh,
    }
    x = rng.standard_normal((2, 16))
    flat, rebuild = graphc.destructure(params)
    assert flat.shape == (5,)

    def loss(v):
        m = rebuild(v)
        h = m["act"](m["W1"] @ x + m["b1"][:, None])
        return np.sum((m["W2"] @ h + m["b2"][:, None]) ** 2)

    H = graphc.hessian(loss)(flat)
    assert H.shape == (5, 5)
    np.testing.assert_allclose(H, H.T, atol=1e-10)
    graphc.check_grads(loss, (flat,), order=2)
    # destructure is differentiable in the other direction too
    (gp,) = graphc.gradient(lambda t: np.sum(graphc.destructure(t)[0] ** 2), params)
    np.testing.assert_allclose(gp["W1"], 2 * params["W1"])
    assert gp["act"] is None


# -- API behaviour ----------------------------------------------------------------------------


def test_grad_argnums_and_aux():
    f = lambda x, y: (np.sum(x * y), {"y2": y * 2})
    (gx, gy), aux = graphc.grad(f, argnums=(0, 1), has_aux=True)(np.ones(3), np.arange(3.0))
    np.testing.assert_array_equal(gx, np.arange(3.0))
    np.testing.assert_array_equal(gy, np.ones(3))
    np.testing.assert_array_equal(aux["y2"], np.arange(3.0) * 2)


def test_integer_inputs_get_no_gradient():
    f = lambda x, idx: np.sum(x[idx] ** 2)
    gx, gi = graphc.gradient(f, np.array([1.0, 2.0, 3.0]), np.array([0, 2, 2]))
    np.testing.assert_array_equal(gx, [2.0, 0.0, 12.0])
    assert gi is None


def test_grad_needs_scalar_output():
    with pytest.raises(graphc.GraphcError, match="scalar"):
        graphc.grad(lambda x: x * 2)(np.ones(3))


def test_vjp_pass_rejects_integer_wrt():
    g = graphc.trace(lambda x: x * 2, np.arange(3))
    with pytest.raises(AutodiffError, match="floating-point"):
        vjp(g, [0])


def test_vjp_and_jvp_api():
    x = np.array([0.3, -0.7, 1.1])
    out, back = graphc.vjp(lambda x: np.tanh(x) * x, x)
    np.testing.assert_allclose(out, np.tanh(x) * x)
    (gx,) = back(np.ones(3))
    want = (1 - np.tanh(x) ** 2) * x + np.tanh(x)
    np.testing.assert_allclose(gx, want, rtol=1e-12)
    y, t = graphc.jvp(lambda x: np.tanh(x) * x, (x,), (np.ones(3),))
    np.testing.assert_allclose(t, want, rtol=1e-12)


def test_jacobian_modes_agree():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 3))
    f = lambda x: np.tanh(A @ x)
    x = rng.standard_normal(3)
    Jr = graphc.jacobian(f, mode="reverse")(x)
    Jf = graphc.jacobian(f, mode="forward")(x)
    want = (1 - np.tanh(A @ x) ** 2)[:, None] * A
    np.testing.assert_allclose(Jr, want, rtol=1e-12)
    np.testing.assert_allclose(Jf, want, rtol=1e-12)


def test_check_grads_reports_wrong_gradient():
    def wrong(x):
        # a "custom" function whose reverse-mode gradient is wrong on purpose
        return np.sum(x * gnp.stop_gradient(x))

    with pytest.raises(graphc.GradCheckError, match="central differences"):
        graphc.check_grads(wrong, (np.array([0.5, 1.5]),))


# -- stability ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: gnp.logsumexp(x),
        lambda x: np.sum(gnp.softmax(x) * np.arange(3.0)),
        lambda x: np.sum(gnp.log_softmax(x)),
        lambda x: np.sum(gnp.softplus(x)),
        lambda x: np.sum(gnp.sigmoid(x)),
        lambda x: np.sum(np.log1p(np.abs(x))),
    ],
    ids=["logsumexp", "softmax", "log_softmax", "softplus", "sigmoid", "log1p"],
)
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_stable_values_and_gradients(fn, scale):
    x = np.array([1.0, -0.5, 0.25]) * scale
    for dt in (np.float32, np.float64):
        v, g = graphc.value_and_grad(fn)(x.astype(dt))
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g)), (v, g)


def test_cross_entropy_from_logits_is_stable():
    def ce(logits, labels):
        lp = gnp.log_softmax(logits, axis=1)
        return -np.mean(lp[np.arange(logits.shape[0]), labels])

    logits = np.array([[1e4, -1e4, 0.0], [0.0, 1e4, 1e4]], np.float32)
    labels = np.array([0, 2])
    v, g = graphc.value_and_grad(ce)(logits, labels)
    assert np.isfinite(v) and np.all(np.isfinite(g))
    np.testing.assert_allclose(v, np.log(2) / 2, rtol=1e-6)
    np.testing.assert_allclose(g[1], [0, 0.25, -0.25], atol=1e-7)


def _pos(x):
    return np.where(x > 0, x, 1)


@pytest.mark.parametrize(
    "fn,want",
    [
        (
            lambda x: np.sum(np.where(x > 0, np.sqrt(x), 0.0)),
            lambda x: np.where(x > 0, 0.5 / np.sqrt(_pos(x)), 0),
        ),
        (
            lambda x: np.sum(np.where(x > 0, np.log(x), 0.0)),
            lambda x: np.where(x > 0, 1 / _pos(x), 0),
        ),
        (lambda x: np.sum(np.where(x > 0, np.exp(np.sqrt(x)) * 3 + 1, x)), None),
    ],
    ids=["sqrt", "log", "chain"],
)
def test_where_untaken_branch_gives_zero_not_nan(fn, want):
    x = np.array([-2.0, -0.0, 0.0, 0.5, 4.0])
    g = graphc.grad(fn)(x)
    assert np.all(np.isfinite(g)), g
    if want is not None:
        np.testing.assert_allclose(g, want(x))
    else:
        np.testing.assert_allclose(g[:3], 1.0)
    # second order stays finite too
    h = graphc.grad(lambda x: np.sum(graphc.grad(fn)(x)))(x)
    assert np.all(np.isfinite(h)), h


def test_documented_edge_derivatives():
    assert graphc.grad(np.sqrt)(0.0) == np.inf
    assert graphc.grad(np.log)(0.0) == np.inf
    assert graphc.grad(lambda x: x**0.5)(0.0) == np.inf
    assert graphc.grad(np.abs)(0.0) == 0.0
    assert graphc.grad(gnp.relu)(0.0) == 0.0
    # ties: max gives each tied element an equal share; maximum splits in half
    np.testing.assert_array_equal(graphc.grad(np.max)(np.array([1.0, 3.0, 3.0])), [0, 0.5, 0.5])
    assert graphc.grad(lambda x: np.maximum(x, 1.0))(1.0) == 0.5
    assert graphc.grad(lambda x: x**0)(0.0) == 0.0


# -- structure ------------------------------------------------------------------------------


def test_broadcast_gradients_are_summed_to_operand_shape():
    b = np.array([1.0, 2.0, 3.0])
    x = np.ones((4, 3))
    gb = graphc.grad(lambda b: np.sum((x + b) ** 2))(b)
    np.testing.assert_allclose(gb, 2 * 4 * (1 + b))


def test_multiple_uses_accumulate():
    assert graphc.grad(lambda x: x * x + x)(3.0) == 7.0


def test_zero_derivative_ops_contribute_nothing():
    f = lambda x: (
        np.sum(np.floor(x) + np.round(x) + np.sign(x) + (x > 0) * 1.0)
        + np.argmax(x) * 1.0
        + np.sum(x)
    )
    np.testing.assert_array_equal(graphc.grad(f)(np.array([0.3, 1.7])), [1.0, 1.0])


def test_deep_chain_differentiates_without_recursion():
    def f(x):
        for i in range(10_000):
            x = np.sin(x) if i % 2 else x * 1.0001
        return np.sum(x)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        g = graphc.trace(f, graphc.spec("f64[2]"))
        j = verify(vjp(g, [0], seed="ones"))
        t = verify(jvp(g, [0]))
    finally:
        sys.setrecursionlimit(limit)
    x = np.array([0.1, 0.2])
    grad = graphc.evaluate(j, x)[1]
    tan = graphc.evaluate(t, x, np.array([1.0, 0.0]))[1]
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(tan, grad[0], rtol=1e-10)


def test_gradient_graph_is_differentiable_ir():
    loss = lambda *a: np.sum(seeds.mlp(*a) ** 2)
    g = graphc.trace(loss, *seeds.EXAMPLE_ARGS["mlp"])
    joint = verify(vjp(g, [1, 2, 3, 4], seed="ones"))
    assert graphc.parse(str(joint)) == joint
    # differentiate the gradient graph again: d/dW1 of sum(dloss/db1)
    gb1 = joint.with_outputs([joint.outputs[2]])
    second = verify(vjp(_sum_output(gb1), [1], seed="ones"))
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s.shape) for s in seeds.EXAMPLE_ARGS["mlp"]]
    f64 = lambda *a: np.sum(graphc.grad(loss, argnums=2)(*a))
    want = graphc.grad(f64, argnums=1)(*args)
    got = graphc.evaluate(second, *[a.astype(np.float32) for a in args])[1]
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


def _sum_output(graph):
    """The graph with its single output summed to a scalar."""
    from graphc.api import inline

    return graphc.trace(
        lambda *a: np.sum(inline(graph, a)[0]),
        *[graphc.spec(i.shape, i.dtype) for i in graph.inputs],
    )


def test_partition_of_mlp():
    loss = lambda *a: np.sum(seeds.mlp(*a) ** 2)
    g = graphc.trace(loss, *seeds.EXAMPLE_ARGS["mlp"])
    joint = verify(vjp(g, [1, 2, 3, 4]))
    p = partition(joint)
    verify(p.forward)
    verify(p.backward)
    # the backward graph needs the sigmoid output, the input batch, W2 and the output
    # difference; nothing is saved twice
    assert p.residual_bytes == sum(r.aval.nbytes for r in p.residuals)
    assert p.residual_bytes <= (8 * 16 + 4 * 16 + 3 * 8 + 3 * 16) * 4
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s.shape).astype(np.float32) for s in seeds.EXAMPLE_ARGS["mlp"]]
    fwd = graphc.evaluate(p.forward, *args)
    bwd = graphc.evaluate(p.backward, *fwd[1:], np.float32(1.0))
    want = graphc.evaluate(joint, *args, np.float32(1.0))
    for a, b in zip(bwd, want[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_golden_mlp_gradient_graph_and_partition():
    from conftest import check_golden

    g = graphc.trace(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"])
    joint = verify(vjp(g, [2, 3, 4, 5], seed="inputs"))
    check_golden("mlp_loss_joint.ir", str(joint))
    p = partition(joint)
    check_golden("mlp_loss_forward.ir", str(verify(p.forward)))
    check_golden("mlp_loss_backward.ir", str(verify(p.backward)))
    assert graphc.parse(str(p.backward)) == p.backward
    # residuals: x, W2, the sigmoid output and the output error; nothing recomputable twice
    assert sorted(str(r.aval) for r in p.residuals) == sorted(
        ["f32[4,16]", "f32[3,8]", "f32[8,16]", "f32[3,16]"]
    )
    assert p.residual_bytes == (4 * 16 + 3 * 8 + 8 * 16 + 3 * 16) * 4
