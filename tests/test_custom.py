"""Custom derivative rules, stop_gradient/detach and checkpoint (rematerialisation).

Rules are checked against the derivatives they stand for (finite differences, the analytic
formula), their results against plain autodiff, and the errors users meet (rules of the wrong
shape, forward mode of a custom_vjp function, differentiating a custom_vjp twice) name the
user's rule and line.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc
from graphc.ops.custom import CustomDerivativeError


@graphc.custom_jvp
def log1pexp(x):
    return np.log1p(np.exp(x))


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t / (1 + np.exp(-x))  # stable where exp(x) overflows


def test_custom_jvp_stable_log1pexp():
    x = np.array([-3.0, 0.5, 100.0, 800.0])
    g = graphc.grad(lambda x: np.sum(log1pexp(x)))(x)
    np.testing.assert_allclose(g, 1 / (1 + np.exp(-x)))
    assert np.all(np.isfinite(g))
    # the plain function's own derivative is NaN where exp overflows: the rule is what is used
    plain = graphc.grad(lambda x: np.sum(np.log1p(np.exp(x))))(x)
    assert np.isnan(plain[-1])
    compiled = graphc.jit(graphc.grad(lambda x: np.sum(log1pexp(x))))(x)
    np.testing.assert_allclose(compiled, g)
    _, t = graphc.jvp(log1pexp, (x,), (np.ones(4),))
    np.testing.assert_allclose(t, g)


def test_custom_jvp_any_order():
    x = np.array([-1.0, 0.3, 2.0])
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(
        graphc.hessian(lambda x: np.sum(log1pexp(x)))(x), np.diag(s * (1 - s)), rtol=1e-12
    )
    graphc.check_grads(lambda x: np.sum(log1pexp(x) ** 2), (x,), order=2)


def test_custom_jvp_pytrees_and_several_outputs():
    @graphc.custom_jvp
    def polar(p):
        return {"r": np.hypot(p[0], p[1]), "a": np.arctan2(p[1], p[0])}

    @polar.defjvp
    def _(primals, tangents):
        ((x, y),), ((dx, dy),) = primals, tangents
        r = np.hypot(x, y)
        return polar((x, y)), {"r": (x * dx + y * dy) / r, "a": (x * dy - y * dx) / r**2}

    def plain(p):
        return {"r": np.hypot(p[0], p[1]), "a": np.arctan2(p[1], p[0])}

    p = (np.array(0.6), np.array(-1.3))
    f = lambda p: polar(p)["r"] * 2 + polar(p)["a"]  # noqa: E731
    g = lambda p: plain(p)["r"] * 2 + plain(p)["a"]  # noqa: E731
    got, want = graphc.grad(f)(p), graphc.grad(g)(p)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


@graphc.custom_vjp
def straight_through_round(x):
    return np.round(x)


straight_through_round.defvjp(lambda x: (np.round(x), None), lambda res, g: (g,))


def test_custom_vjp_straight_through_estimator():
    x = np.array([0.3, 1.7, -2.2])
    loss = lambda x: np.sum(straight_through_round(x) * x)  # noqa: E731
    np.testing.assert_allclose(graphc.grad(loss)(x), np.round(x) + x)
    np.testing.assert_allclose(graphc.jit(graphc.grad(loss))(x), np.round(x) + x)
    assert graphc.jit(loss)(x) == np.sum(np.round(x) * x)


def test_custom_vjp_residuals_and_several_args():
    @graphc.custom_vjp
    def mul_clip(a, b):
        return a * b

    def fwd(a, b):
        return a * b, (a, b)

    def bwd(res, g):
        a, b = res
        return np.clip(g * b, -1, 1), g * a

    mul_clip.defvjp(fwd, bwd)
    a, b = np.array([3.0, 0.2]), np.array([2.0, -4.0])
    ga, gb = graphc.grad(lambda a, b: np.sum(mul_clip(a, b)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, np.clip(b, -1, 1))
    np.testing.assert_allclose(gb, a)


def test_custom_vjp_once_and_reverse_only():
    x = np.array([0.3, 1.7])
    g = graphc.grad(lambda x: np.sum(straight_through_round(x) * x))
    with pytest.raises(CustomDerivativeError, match="differentiable once"):
        graphc.grad(lambda x: np.sum(g(x)))(x)
    with pytest.raises(CustomDerivativeError, match="no forward-mode") as e:
        graphc.jvp(straight_through_round, (x,), (x,))
    assert "test_custom.py" in e.value.location


def test_custom_vjp_wrong_cotangent_shape_names_the_rule():
    @graphc.custom_vjp
    def f(x):
        return x * 2

    def bad_bwd(res, g):
        return (np.sum(g),)

    f.defvjp(lambda x: (x * 2, None), bad_bwd)
    with pytest.raises(
        CustomDerivativeError, match=r"bad_bwd .*test_custom.py:\d+.*shape \(\)"
    ) as e:
        graphc.grad(lambda x: np.sum(f(x)))(np.ones(3))
    assert "test_custom.py" in e.value.location


def test_custom_vjp_wrong_number_of_cotangents():
    @graphc.custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (x * y, None), lambda res, g: (g,))
    with pytest.raises(CustomDerivativeError, match="1 cotangents for 2 arguments"):
        f(np.ones(2), np.ones(2))


def test_custom_jvp_rule_of_wrong_type():
    @graphc.custom_jvp
    def f(x):
        return x * 2

    @f.defjvp
    def wrong(primals, tangents):
        return f(primals[0]), np.sum(tangents[0])

    with pytest.raises(CustomDerivativeError, match="wrong .*tangent_out of types \\(f64\\[\\]\\)"):
        f(np.ones(3))


def test_custom_rule_closing_over_a_differentiated_value_is_an_error():
    def loss(w, x):
        @graphc.custom_jvp
        def f(x):
            return x * w

        f.defjvp(lambda p, t: (f(p[0]), t[0] * w))
        return np.sum(f(x))

    with pytest.raises(CustomDerivativeError, match="closes over a value"):
        graphc.grad(loss)(np.float64(2.0), np.ones(2))
    np.testing.assert_allclose(graphc.grad(loss, argnums=1)(np.float64(2.0), np.ones(2)), [2, 2])


# -- stop_gradient / detach ----------------------------------------------------------------


def test_stop_gradient_and_detach():
    assert graphc.grad(lambda x: x * graphc.stop_gradient(x))(3.0) == 3.0
    assert graphc.grad(lambda x: x * graphc.detach(x))(3.0) == 3.0
    assert graphc.grad(lambda x: x * x.detach())(3.0) == 3.0
    tree = graphc.stop_gradient({"a": np.ones(2), "b": 2.0})
    np.testing.assert_array_equal(tree["a"], np.ones(2))


def test_softmax_cross_entropy_splice_with_detach():
    """`(p - y).detach() * logits` has the analytic gradient of softmax cross-entropy."""
    rng = np.random.default_rng(0)
    logits0 = rng.standard_normal((4, 5))
    y = np.eye(5)[[1, 0, 4, 2]]

    def analytic(z):
        z = z - np.max(z, axis=1, keepdims=True)
        logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
        return -np.sum(y * logp)

    def spliced(z):
        e = np.exp(z - np.max(z, axis=1, keepdims=True))
        p = e / np.sum(e, axis=1, keepdims=True)
        return np.sum((p - y).detach() * z)

    np.testing.assert_allclose(
        graphc.grad(spliced)(logits0), graphc.grad(analytic)(logits0), rtol=1e-12
    )
    np.testing.assert_allclose(
        graphc.jit(graphc.grad(spliced))(logits0), graphc.grad(analytic)(logits0), rtol=1e-12
    )


# -- checkpoint -------------------------------------------------------------------------------


def _layer(W1, b, W2, x):
    h = np.tanh(x @ W1 + b)  # a 4x wider hidden activation, kept for the backward pass
    return x + h @ W2


def _mlp(params, x, ck):
    layer = graphc.checkpoint(_layer) if ck else _layer
    for W1, b, W2 in params:
        x = layer(W1, b, W2, x)
    return np.sum(x**2)


def _params(rng):
    return [
        (
            rng.standard_normal((16, 64)) * 0.2,
            rng.standard_normal(64) * 0.1,
            rng.standard_normal((64, 16)) * 0.1,
        )
        for _ in range(8)
    ]


def test_checkpointed_mlp_same_gradients_fewer_residual_bytes():
    from passes.autodiff import vjp
    from passes.partition import partition

    rng = np.random.default_rng(3)
    params, x = _params(rng), rng.standard_normal((32, 16))
    g_plain = graphc.grad(lambda p: _mlp(p, x, False))(params)
    g_ck = graphc.grad(lambda p: _mlp(p, x, True))(params)
    g_jit = graphc.jit(graphc.grad(lambda p: _mlp(p, x, True)))(params)
    for want, got, got_jit in zip(g_plain, g_ck, g_jit, strict=True):
        for a, b, c in zip(want, got, got_jit, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-12)
            np.testing.assert_allclose(c, a, rtol=1e-12)

    def saved(ck: bool) -> int:
        g = graphc.trace(lambda p: _mlp(p, x, ck), params)
        return partition(vjp(g, wrt=list(range(len(g.inputs))), seed="inputs")).residual_bytes

    plain, ck = saved(False), saved(True)
    act, hidden = 32 * 16 * 8, 32 * 64 * 8  # one layer's input, one hidden activation
    weights = sum(a.nbytes for p in params for a in p)
    # checkpointed: each layer keeps its input and its parameters, nothing inside
    assert ck <= 8 * act + weights
    # without: also (most of) the hidden activation of every layer, 4x the layer's input
    assert plain - weights > 4 * (ck - weights)
    assert plain - ck > 7 * hidden


def test_checkpoint_is_spliced_in_before_fusion():
    rng = np.random.default_rng(4)
    params, x = _params(rng)[:2], rng.standard_normal((4, 16))
    low = graphc.jit(graphc.grad(lambda p: _mlp(p, x, True))).lower(params)
    assert "checkpoint" in low.traced.op_counts()
    assert "checkpoint" not in low.optimized.op_counts()
    assert not [f for f in low.fallbacks if "checkpoint" in f]


def test_checkpoint_forward_mode_and_second_order():
    f = graphc.checkpoint(lambda x: np.sin(x) * np.exp(x))
    x = np.array([0.2, -0.7])
    graphc.check_grads(lambda x: np.sum(f(x)), (x,), order=2)


def test_custom_vjp_forward_rule_may_call_the_function():
    @graphc.custom_vjp
    def f(x):
        return np.sin(x)

    def f_fwd(x):
        return f(x), np.cos(x)  # as JAX's docs write it

    f.defvjp(f_fwd, lambda c, g: (g * c,))
    x = np.array([0.1, 0.9])
    np.testing.assert_allclose(graphc.grad(lambda x: np.sum(f(x)))(x), np.cos(x))
