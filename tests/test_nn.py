"""graphc.nn: layers against NumPy references, gradients, state, save/load, optimizers against
hand-computed steps, the compiled train step (one executable, kernel counts), Dropout and
BatchNorm semantics, custom layers.

Most tests run on the reference interpreter (fast to start); the train-step tests compile with
Numba and share one MLP and one CNN signature each.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

import graphc
import graphc.numpy as gnp
from graphc import nn

F64 = np.float64
INTERP = "interpreter"


@pytest.fixture
def r():
    return np.random.default_rng(0)


def jit_i(fn):
    return graphc.jit(fn, backend=INTERP)


def check_grads(fn, args):
    graphc.check_grads(fn, args, backend=INTERP)


# -- NumPy references ------------------------------------------------------------------------


def conv_ref(x, w, stride, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out


def pool_ref(x, k, reduce):
    n, c, h, w = x.shape
    return reduce(
        x[:, :, : h - h % k, : w - w % k].reshape(n, c, h // k, k, w // k, k), axis=(3, 5)
    )


# -- layers: forward ---------------------------------------------------------------------------


def test_dense_forward(r):
    d = nn.Dense(3, 2, nn.tanh, rng=0)
    assert d.weight.shape == (2, 3) and d.bias.shape == (2,) and d.weight.dtype == np.float32
    x = r.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(d(x), np.tanh(x @ d.weight.T + d.bias), rtol=1e-6)
    np.testing.assert_allclose(jit_i(lambda m, x: m(x))(d, x), d(x), rtol=1e-6)
    # 1-d input, no bias, pair syntax, init by name
    d2 = nn.Dense((3, 2), bias=False, init="zeros")
    assert d2.bias is None and not d2.weight.any()
    np.testing.assert_array_equal(d2(x[0]), np.zeros(2))
    assert nn.Linear is nn.Dense
    assert repr(nn.Dense(784, 512, nn.relu)).startswith("Dense(784 => 512, relu)")


@pytest.mark.parametrize(
    "init", [nn.glorot_uniform, nn.glorot_normal, nn.kaiming_uniform, nn.kaiming_normal, nn.normal]
)
def test_inits_are_seeded_and_scaled(init):
    a, b = init((64, 32), 0), init((64, 32), 0)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and 0 < a.std() < 0.5
    assert nn.Dense(32, 64, init=init, rng=1).weight.shape == (64, 32)


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 0)])
def test_conv2d_forward(r, stride, pad):
    c = nn.Conv2d(2, 3, 3, stride=stride, padding=pad, act=nn.relu, dtype=F64, rng=0)
    c.bias = r.standard_normal(3)
    assert c.weight.shape == (3, 2, 3, 3)
    x = r.standard_normal((2, 2, 6, 6))
    ref = np.maximum(conv_ref(x, c.weight, stride, pad) + c.bias[None, :, None, None], 0)
    np.testing.assert_allclose(c(x), ref, rtol=1e-12, atol=1e-12)


def test_pooling_and_flatten(r):
    x = r.standard_normal((2, 3, 4, 6))
    np.testing.assert_allclose(nn.MaxPool2d(2)(x), pool_ref(x, 2, np.max))
    np.testing.assert_allclose(nn.AvgPool2d(2)(x), pool_ref(x, 2, np.mean), rtol=1e-12)
    assert nn.Flatten()(x).shape == (2, 72)
    np.testing.assert_array_equal(nn.Flatten()(x), x.reshape(2, -1))


def test_layernorm_forward(r):
    ln = nn.LayerNorm(5, dtype=F64)
    ln.weight, ln.bias = r.standard_normal(5), r.standard_normal(5)
    x = r.standard_normal((3, 5)) * 4 + 2
    m, v = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(ln(x), (x - m) / np.sqrt(v + 1e-5) * ln.weight + ln.bias, rtol=1e-10)


def test_batchnorm_forward_train_and_eval(r):
    bn = nn.BatchNorm(3, dtype=F64, momentum=0.2)
    bn.weight, bn.bias = r.standard_normal(3), r.standard_normal(3)
    x = r.standard_normal((4, 3, 2, 2)) * 3 + 1
    # eval mode: running statistics (initially 0 and 1)
    np.testing.assert_allclose(
        bn(x), x / np.sqrt(1 + 1e-5) * bn.weight[:, None, None] + bn.bias[:, None, None], rtol=1e-12
    )
    # train mode: batch statistics, and the updated running statistics come back from apply
    y, bn2 = nn.apply(bn, x, train=True)
    m, v = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    ref = (x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-5)
    np.testing.assert_allclose(
        y, ref * bn.weight[:, None, None] + bn.bias[:, None, None], rtol=1e-10
    )
    n = 4 * 2 * 2
    np.testing.assert_allclose(bn2.running_mean, 0.2 * m, rtol=1e-12)
    np.testing.assert_allclose(bn2.running_var, 0.8 + 0.2 * v * n / (n - 1), rtol=1e-12)
    assert bn.running_mean.any() == 0  # the original is untouched (functional update)
    # the same inside a traced function
    f = jit_i(lambda m, x: nn.apply(m, x, train=True))
    y3, bn3 = f(bn, x)
    np.testing.assert_allclose(y3, y, rtol=1e-12)
    np.testing.assert_allclose(bn3.running_var, bn2.running_var, rtol=1e-12)
    # (N, C) input; a wrong channel count is a clear error
    assert nn.BatchNorm(3)(np.ones((2, 3), np.float32)).shape == (2, 3)
    with pytest.raises(graphc.GraphcError, match=r"BatchNorm\(3\) needs inputs"):
        bn(np.ones((2, 4)))


def test_embedding_forward():
    e = nn.Embedding(10, 4, rng=0)
    idx = np.array([[1, 2], [9, 1]])
    np.testing.assert_array_equal(e(idx), e.weight[idx])
    np.testing.assert_array_equal(jit_i(lambda m, i: m(i))(e, idx), e.weight[idx])


def test_activations():
    x = np.array([-2.0, -0.5, 0.0, 1.5])
    np.testing.assert_allclose(nn.relu(x), np.maximum(x, 0))
    np.testing.assert_allclose(nn.tanh(x), np.tanh(x))
    np.testing.assert_allclose(nn.sigmoid(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(nn.softplus(x), np.log1p(np.exp(x)))
    np.testing.assert_allclose(nn.softmax(x), np.exp(x) / np.exp(x).sum())
    np.testing.assert_allclose(nn.log_softmax(x), x - np.log(np.exp(x).sum()))
    np.testing.assert_allclose(nn.gelu(x), gnp.gelu(x))
    np.testing.assert_allclose(nn.leaky_relu(x), np.where(x > 0, x, 0.01 * x))


def test_chain_indexing_slicing_and_composition(r):
    a, b, c = nn.Dense(3, 4, nn.relu, rng=0), nn.Dense(4, 4, rng=1), nn.Dense(4, 2, rng=2)
    m = nn.Chain(a, b, c)
    x = r.standard_normal((5, 3)).astype(np.float32)
    assert len(m) == 3 and m[0] is a and m[-1] is c and list(m) == [a, b, c]
    assert isinstance(m[1:], nn.Chain) and len(m[1:]) == 2
    np.testing.assert_allclose(m[1:](m[0](x)), m(x), rtol=1e-6)
    nested = nn.Chain(m[:2], nn.Chain(c, np.tanh))  # functions are layers too
    np.testing.assert_allclose(nested(x), np.tanh(m(x)), rtol=1e-6)
    named = nn.Chain(enc=a, dec=nn.Dense(4, 3, rng=3))
    assert named["enc"] is a and named(x).shape == (5, 3)
    assert list(named.parameters()) == [
        "layers.enc.weight",
        "layers.enc.bias",
        "layers.dec.weight",
        "layers.dec.bias",
    ]


# -- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["dense", "conv", "conv_stride", "maxpool", "avgpool", "layernorm", "embedding", "chain"],
)
def test_layer_gradients(name):
    r = np.random.default_rng(1)
    layer, x = {
        "dense": lambda: (nn.Dense(3, 2, nn.tanh, dtype=F64, rng=0), r.standard_normal((4, 3))),
        "conv": lambda: (
            nn.Conv2d(2, 3, 3, padding=1, act=nn.gelu, dtype=F64, rng=0),
            r.standard_normal((2, 2, 4, 4)),
        ),
        "conv_stride": lambda: (
            nn.Conv2d(1, 2, 2, stride=2, dtype=F64, rng=0),
            r.standard_normal((1, 1, 4, 4)),
        ),
        "maxpool": lambda: (nn.MaxPool2d(2), r.standard_normal((1, 2, 4, 4))),
        "avgpool": lambda: (nn.AvgPool2d(2), r.standard_normal((1, 2, 4, 4))),
        "layernorm": lambda: (nn.LayerNorm((2, 3), dtype=F64), r.standard_normal((4, 2, 3))),
        "embedding": lambda: (nn.Embedding(5, 3, dtype=F64, rng=0), np.array([[0, 4], [2, 2]])),
        "chain": lambda: (
            nn.Chain(
                nn.Dense(3, 4, nn.sigmoid, dtype=F64, rng=0),
                nn.Dense(4, 2, nn.softplus, dtype=F64, rng=1),
            ),
            r.standard_normal((5, 3)),
        ),
    }[name]()
    check_grads(lambda m, x: m(x), (layer, x))


def test_batchnorm_gradients_in_train_mode(r):
    bn = nn.BatchNorm(3, dtype=F64)
    bn.weight, bn.bias = r.standard_normal(3), r.standard_normal(3)
    check_grads(lambda m, x: m(x, train=True), (bn, r.standard_normal((6, 3))))
    check_grads(
        lambda m, x: m(x, train=True), (nn.BatchNorm(2, dtype=F64), r.standard_normal((3, 2, 2, 2)))
    )


def test_gradient_has_model_structure(r):
    m = nn.Chain(nn.Dense(3, 2, nn.relu, rng=0), nn.Dense(2, 1, rng=1))
    x = r.standard_normal((4, 3)).astype(np.float32)
    (g,) = graphc.gradient(lambda m: np.sum(m(x) ** 2), m)
    assert type(g) is nn.Chain and type(g[0]) is nn.Dense
    assert g[0].weight.shape == (2, 3) and g[0].act is nn.relu


# -- losses ----------------------------------------------------------------------------------


def test_cross_entropy(r):
    logits = r.standard_normal((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(nn.cross_entropy(logits, y), -lp[np.arange(5), y].mean())
    np.testing.assert_allclose(
        nn.cross_entropy(logits, y, reduction="sum"), -lp[np.arange(5), y].sum()
    )
    np.testing.assert_allclose(nn.cross_entropy(logits, y, reduction="none"), -lp[np.arange(5), y])
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(nn.cross_entropy(logits, onehot), -lp[np.arange(5), y].mean())
    check_grads(lambda z: nn.cross_entropy(z, y), (logits,))
    # stable for logits of magnitude 1e4, in float32, with finite gradients
    big = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], np.float32)
    yb = np.array([1, 2])
    val, g = graphc.value_and_grad(lambda z: nn.cross_entropy(z, yb), backend=INTERP)(big)
    np.testing.assert_allclose(val, (1e4 + np.log(2)) / 2, rtol=1e-6)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[0.5, -0.5, 0], [0, 0.25, -0.25]], atol=1e-7)


def test_binary_cross_entropy_and_mse(r):
    z, t = r.standard_normal(6), r.uniform(size=6)
    s = 1 / (1 + np.exp(-z))
    ref = -(t * np.log(s) + (1 - t) * np.log(1 - s))
    np.testing.assert_allclose(nn.binary_cross_entropy(z, t), ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(nn.binary_cross_entropy(z, t, "sum"), ref.sum(), rtol=1e-12)
    big = np.array([1e4, -1e4, 1e4], np.float32)
    val = nn.binary_cross_entropy(big, np.array([0.0, 1.0, 1.0], np.float32), "none")
    np.testing.assert_allclose(val, [1e4, 1e4, 0])
    check_grads(lambda z: nn.binary_cross_entropy(z, t), (z,))
    a, b = r.standard_normal((2, 3)), r.standard_normal((2, 3))
    np.testing.assert_allclose(nn.mse(a, b), ((a - b) ** 2).mean())
    np.testing.assert_allclose(nn.mse(a, b, "sum"), ((a - b) ** 2).sum())
    with pytest.raises(graphc.GraphcError, match="reduction"):
        nn.mse(a, b, "avg")


# -- module API: parameters, modules, summary, state ------------------------------------------


def small_cnn(rng=0):
    return nn.Chain(
        nn.Conv2d(1, 4, 3, padding=1, rng=rng),
        nn.BatchNorm(4, nn.relu),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Dense(4 * 4 * 4, 3, rng=rng + 1),
    )


def test_parameters_modules_and_summary():
    m = small_cnn()
    assert list(m.parameters()) == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "layers.5.weight",
        "layers.5.bias",
    ]
    assert list(m.buffers()) == ["layers.1.running_mean", "layers.1.running_var"]
    assert [type(x).__name__ for x in m.modules()] == [
        "Chain",
        "Conv2d",
        "BatchNorm",
        "MaxPool2d",
        "Flatten",
        "Dropout",
        "Dense",
    ]
    assert m.num_parameters() == 40 + 8 + 195 and m.num_parameters(trainable=False) == 8
    text = repr(m)
    assert text.splitlines()[0] == "Chain("
    assert re.search(r"Conv2d\(1 => 4, kernel=3, padding=1\), +# 40 parameters", text)
    assert re.search(r"BatchNorm\(4, relu\), +# 8 parameters, plus 8 non-trainable", text)
    assert re.search(r"Dense\(64 => 3\), +# 195 parameters", text)
    assert re.search(
        r"\) +# Total: 6 trainable arrays, 243 parameters, plus 2 non-trainable, "
        r"8 numbers, 1004 bytes\.",
        text,
    )


def test_summary_prints(capsys):
    nn.Chain(nn.Dense(784, 512, nn.relu), nn.Dense(512, 10)).summary()
    out = capsys.readouterr().out
    assert "Dense(784 => 512, relu)" in out and "# 401_920 parameters" in out
    assert "Total: 4 trainable arrays, 407_050 parameters, 1.553 MiB." in out


def test_state_round_trip_and_mismatch():
    a, b = small_cnn(0), small_cnn(5)
    st = a.state()
    assert set(st) == set(a.parameters()) | set(a.buffers())
    assert not np.array_equal(b[0].weight, a[0].weight)
    assert b.load_state(st) is b  # in place, returned
    for k, v in b.state().items():
        np.testing.assert_array_equal(v, st[k])
    st["layers.0.weight"][...] = 7  # a copy: the model does not share memory with the state
    assert not np.any(a[0].weight == 7)
    wrong_shape = dict(st, **{"layers.5.weight": np.zeros((3, 10), np.float32)})
    with pytest.raises(nn.StateError, match=r"layers\.5\.weight.*\(3, 64\).*\(3, 10\)"):
        b.load_state(wrong_shape)
    missing = {k: v for k, v in st.items() if k != "layers.1.running_var"}
    with pytest.raises(nn.StateError, match=r"'layers\.1\.running_var'.*no such entry"):
        b.load_state(missing)
    with pytest.raises(nn.StateError, match=r"'extra\.w'.*does not have"):
        b.load_state(dict(st, **{"extra.w": np.zeros(1)}))
    other = nn.Chain(nn.Dense(3, 4), nn.Dense(4, 2))
    with pytest.raises(nn.StateError, match=r"layers\.0\.weight"):
        other.load_state(st)


def test_save_load_round_trip_and_mismatch(tmp_path):
    a, b = small_cnn(0), small_cnn(7)
    path = nn.save(a, tmp_path / "cnn")
    assert path.endswith("cnn.npz")
    loaded = nn.load(b, path)
    assert loaded is b
    for k, v in a.state().items():
        np.testing.assert_array_equal(b.state()[k], v)
    c = nn.load(str(tmp_path / "cnn"), into=small_cnn(3))  # suffix optional, keyword form
    np.testing.assert_array_equal(c[5].weight, a[5].weight)
    # plain pytrees work too (returned, not updated in place)
    d = nn.load({"w": np.zeros(2)}, nn.save({"w": np.ones(2)}, tmp_path / "d.npz"))
    np.testing.assert_array_equal(d["w"], [1, 1])
    wrong = nn.Chain(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm(4),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Dense(4 * 4 * 4, 5),
    )
    with pytest.raises(nn.StateError, match=r"layers\.5\.weight.*\(5, 64\).*\(3, 64\).*cnn"):
        nn.load(wrong, path)


def test_scopes_name_layers():
    m = nn.Chain(nn.Dense(3, 4, nn.relu), nn.Chain(nn.Dense(4, 2), np.tanh))
    g = graphc.trace(lambda m, x: m(x), m, graphc.spec("f32[2,3]"))
    scopes = {n.meta.scope for n in g.equations}
    assert {"model.layers.0", "model.layers.1.layers.0", "model.layers.1.layers.1"} <= scopes

    class Block(nn.Module):
        def __init__(self):
            self.encoder = nn.Dense(3, 3)

        def __call__(self, x):
            return self.encoder(x) + x

    g = graphc.trace(lambda m, x: m(x), Block(), graphc.spec("f32[2,3]"))
    ops = {(n.op, n.meta.scope) for n in g.equations}
    assert ("matmul", "model.encoder") in ops and ("add", "model") in ops


# -- random numbers and Dropout ------------------------------------------------------------------


def test_uniform_is_deterministic_and_uniform():
    u = nn.uniform(nn.key(0), (200, 50))
    assert u.dtype == np.float32 and u.shape == (200, 50)
    np.testing.assert_array_equal(u, nn.uniform(nn.key(0), (200, 50)))
    assert not np.array_equal(u, nn.uniform(nn.key(1), (200, 50)))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(np.corrcoef(u.ravel()[:-1], u.ravel()[1:])[0, 1]) < 0.02
    # traced keys give the same numbers (interpreter here; numba in the CNN train step test)
    np.testing.assert_array_equal(jit_i(lambda k: nn.uniform(k, (200, 50)))(nn.key(0)), u)
    k1, k2 = nn.split(nn.key(3))
    assert k1 != k2 and nn.fold_in(nn.key(3), 0) == k1


def test_dropout_determinism_and_eval_mode():
    x = np.ones((64, 32), np.float32)
    d = nn.Dropout(0.25)
    m = nn.Chain(nn.Dense(32, 32, rng=0), d)
    np.testing.assert_array_equal(d(x), x)  # eval mode (the default): identity
    np.testing.assert_array_equal(nn.apply(m, x)[0], m(x))
    y1 = d(x, train=True, key=nn.key(1))
    y2 = d(x, train=True, key=nn.key(1))
    y3 = d(x, train=True, key=nn.key(2))
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    assert set(np.unique(y1)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y1 == 0).mean() - 0.25) < 0.03
    # traced with a traced key: the same mask
    np.testing.assert_array_equal(
        jit_i(lambda m, x, k: m(x, train=True, key=k))(d, x, nn.key(1)), y1
    )
    # two Dropout layers in one model get different masks from one key
    two = nn.Chain(nn.Dropout(0.5), nn.Dropout(0.5))
    a = two[0](x, train=True, key=nn.key(0))
    b = nn.apply(two, x, train=True, key=nn.key(0))[0]
    assert not np.array_equal(a * 2, b)
    with pytest.raises(graphc.GraphcError, match=r"Dropout at model needs a random key"):
        d(x, train=True)


# -- optimizers ----------------------------------------------------------------------------


def run_opt(opt, p0, steps, jit=False):
    """Minimize sum(p^2) (gradient 2p) from p0; returns the parameter after each step."""
    params = {"p": np.array(p0, F64)}
    state = opt.init(params)
    upd = jit_i(opt.update) if jit else opt.update
    out = []
    for _ in range(steps):
        params, state = upd({"p": 2 * params["p"]}, state, params)
        out.append(params["p"].copy())
    return np.array(out), state


def test_sgd_momentum_nesterov_weight_decay_by_hand():
    np.testing.assert_allclose(run_opt(nn.SGD(0.1), [1.0], 2)[0][:, 0], [0.8, 0.64])
    # momentum 0.9: buf = 2, 3.4, 3.98 -> p = 0.8, 0.46, 0.062
    traj, state = run_opt(nn.SGD(0.1, momentum=0.9), [1.0], 3)
    np.testing.assert_allclose(traj[:, 0], [0.8, 0.46, 0.062], rtol=1e-12)
    np.testing.assert_allclose(state.momentum["p"], [3.98])
    assert int(state.count) == 3
    # nesterov: step 1 g = 2 + 0.9 * 2 -> 0.62; step 2 g = 1.24 + 0.9 * 3.04 -> 0.2224
    np.testing.assert_allclose(
        run_opt(nn.SGD(0.1, momentum=0.9, nesterov=True), [1.0], 2)[0][:, 0],
        [0.62, 0.2224],
        rtol=1e-12,
    )
    # weight decay 0.1: g = 2.1 p -> p *= 0.79
    np.testing.assert_allclose(
        run_opt(nn.SGD(0.1, weight_decay=0.1), [1.0], 2)[0][:, 0], [0.79, 0.6241], rtol=1e-12
    )
    # traced: the same numbers
    np.testing.assert_allclose(
        run_opt(
            nn.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.1), [1.0, -2.0], 3, jit=True
        )[0],
        run_opt(nn.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.1), [1.0, -2.0], 3)[0],
    )


def adam_ref(p, steps, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
    m = v = 0.0
    out = []
    for t in range(1, steps + 1):
        g = 2 * p
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        out.append(p)
    return out


def test_adam_and_adamw_by_hand():
    traj, state = run_opt(nn.Adam(0.1), [1.0, -3.0], 3)
    # the first Adam step moves each coordinate by lr (up to eps)
    np.testing.assert_allclose(traj[0], [0.9, -2.9], rtol=1e-8)
    np.testing.assert_allclose(traj[:, 0], adam_ref(1.0, 3, 0.1), rtol=1e-12)
    np.testing.assert_allclose(traj[:, 1], adam_ref(-3.0, 3, 0.1), rtol=1e-12)
    assert int(state.count) == 3 and state.mu["p"].shape == (2,)
    traj = run_opt(nn.Adam(0.1, weight_decay=0.5), [1.0], 3)[0]
    np.testing.assert_allclose(traj[:, 0], adam_ref(1.0, 3, 0.1, wd=0.5), rtol=1e-12)
    # AdamW: step 1 is p = 1 - 0.1 * 0.1 * 1 = 0.99, then the Adam step of -0.1
    traj = run_opt(nn.AdamW(0.1, weight_decay=0.1), [1.0], 3)[0]
    np.testing.assert_allclose(traj[0, 0], 0.89, rtol=1e-8)
    np.testing.assert_allclose(
        traj[:, 0], adam_ref(1.0, 3, 0.1, wd=0.1, decoupled=True), rtol=1e-12
    )
    np.testing.assert_allclose(
        run_opt(nn.AdamW(0.1), [1.0, 2.0], 3, jit=True)[0],
        run_opt(nn.AdamW(0.1), [1.0, 2.0], 3)[0],
        rtol=1e-12,
    )


def test_optimizers_on_modules_keep_structure_and_dtype():
    m = nn.Chain(nn.Dense(3, 2, nn.relu, rng=0), np.tanh, nn.BatchNorm(2))
    x = np.ones((4, 3), np.float32)
    grads = graphc.grad(lambda m: np.sum(m(x) ** 2), backend=INTERP)(m)
    assert grads[1] is None and grads[2].running_mean is not None  # zeros (stop_gradient)
    for opt in (nn.SGD(0.1, momentum=0.9, weight_decay=0.1), nn.Adam(), nn.AdamW()):
        state = opt.init(m)
        new, state = opt.update(grads, state, m)
        assert type(new) is nn.Chain and new[1] is np.tanh
        assert new[0].weight.dtype == np.float32 and new[2].weight.dtype == np.float32
        assert not np.array_equal(new[0].weight, m[0].weight)
        # buffers: no optimizer state and left alone, even with a gradient and weight decay
        assert new[2].running_var is m[2].running_var
        assert all(t[2].running_var is None for t in state[1:] if t is not None)
    # schedules: lr as a function of the step count
    traj = run_opt(nn.SGD(lambda t: 0.1 * 0.5**t), [1.0], 2)[0]
    np.testing.assert_allclose(traj[:, 0], [0.8, 0.8 * (1 - 2 * 0.05)])


# -- the compiled train step ----------------------------------------------------------------


def blobs(n=64, d=8, k=3, seed=0):
    r = np.random.default_rng(seed)
    centers = r.standard_normal((k, d)) * 2
    y = r.integers(0, k, n)
    x = (centers[y] + r.standard_normal((n, d))).astype(np.float32)
    return x, y.astype(np.int64)


@functools.cache
def mlp_step():
    model = nn.Chain(nn.Dense(8, 16, nn.relu, rng=0), nn.Dense(16, 3, rng=1))
    step = nn.train_step(model, nn.cross_entropy, nn.Adam(1e-2))  # numba (the default)
    return model, step


def test_train_step_is_one_executable_with_counted_kernels():
    model, step = mlp_step()
    x, y = blobs()
    opt_state = step.init(model)
    low = step.lower(model, opt_state, x, y)
    ops = low.optimized.op_counts()
    n_kernels = sum(n.op == "fused" for n in low.optimized.equations)
    # forward (2 matmuls) and backward (dW2, dh, dW1) products are in the same graph
    assert ops["matmul"] == 5
    assert 8 <= n_kernels <= 20, ops
    assert set(ops) <= {
        "fused",
        "matmul",
        "transpose",
        "proj",
        "gather",
        "scatter_add",
        "reshape",
        "broadcast_to",
    }, ops
    # outputs: 4 parameters, Adam's count and 2 x 4 moments, the loss
    assert len(low.optimized.outputs) == 4 + 1 + 8 + 1
    scopes = {n.meta.scope for n in low.traced.equations}
    assert {"model.layers.0", "model.layers.1"} <= scopes


def test_train_step_reaches_loss_threshold():
    model, step = mlp_step()
    x, y = blobs()
    opt_state = step.init(model)
    first = None
    for _ in range(60):
        model, opt_state, loss = step(model, opt_state, x, y)
        first = float(loss) if first is None else first
    assert step.compiles == ["first call"]  # one compile for all steps
    assert first > 0.5 and float(loss) < 0.05
    assert nn.accuracy(model(x), y) == 1.0
    assert type(model) is nn.Chain and model[0].weight.dtype == np.float32


def test_cnn_train_step_batchnorm_dropout():
    model = small_cnn()
    r = np.random.default_rng(0)
    x = r.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = r.integers(0, 3, 16)
    opt = nn.SGD(0.05, momentum=0.9, weight_decay=1e-3)
    step = nn.train_step(model, nn.cross_entropy, opt)
    opt_state = step.init(model)
    assert opt_state.momentum[1].running_mean is None  # no optimizer state for buffers
    low = step.lower(model, opt_state, x, y, nn.key(0))
    ops = low.optimized.op_counts()
    assert ops["conv2d"] == 1 and ops["conv2d_weight_grad"] == 1 and ops["max_pool2d_grad"] == 1
    assert sum(n.op == "fused" for n in low.optimized.equations) <= 40
    k = nn.key(0)
    for i in range(3):
        key = nn.fold_in(k, i)
        # the eager (NumPy) forward in train mode with the same key: same loss, same stats
        out, ref_model = nn.apply(model, x, train=True, key=key)
        ref_loss = nn.cross_entropy(out, y)
        model, opt_state, loss = step(model, opt_state, x, y, key)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
        np.testing.assert_allclose(
            model[1].running_mean, ref_model[1].running_mean, rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(model[1].running_var, ref_model[1].running_var, rtol=1e-5)
    assert step.compiles == ["first call"]
    assert model[1].running_mean.dtype == np.float32


def test_running_stats_get_no_gradient(r):
    m = nn.Chain(nn.Dense(3, 2, dtype=F64, rng=0), nn.BatchNorm(2, dtype=F64))
    x = r.standard_normal((5, 3))
    params, rest = nn.partition(m)
    assert params[1].running_mean is None and rest[1].running_mean is not None
    g = graphc.grad(lambda p, s: np.sum(nn.combine(p, s)(x, train=True) ** 3), backend=INTERP)(
        params, rest
    )
    assert g[1].running_mean is None and g[1].running_var is None
    assert g[1].weight.shape == (2,) and g[0].weight.shape == (2, 3)


# -- custom layers ------------------------------------------------------------------------------


class AffineModule(nn.Module):
    def __init__(self, W, b):
        self.W, self.b = W, b

    def __call__(self, x):
        return x @ self.W.T + self.b


@nn.layer
class AffineLayer:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def __call__(self, x):
        return x @ self.W.T + self.b


@graphc.pytree
class AffinePytree:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def __call__(self, x):
        return x @ self.W.T + self.b


@pytest.mark.parametrize("cls", [AffineModule, AffineLayer, AffinePytree])
def test_custom_affine_trains_in_chain(cls):
    r = np.random.default_rng(0)
    x, y = blobs(32, 4, 2)
    aff = cls(r.standard_normal((6, 4)).astype(np.float32) * 0.5, np.zeros(6, np.float32))
    model = nn.Chain(aff, nn.relu, nn.Dense(6, 2, rng=0))
    assert list(nn.parameters(model)) == [
        "layers.0.W",
        "layers.0.b",
        "layers.2.weight",
        "layers.2.bias",
    ]
    g = graphc.trace(lambda m, x: m(x), model, x)
    assert "model.layers.0" in {n.meta.scope for n in g.equations}
    step = nn.train_step(model, nn.cross_entropy, nn.SGD(0.1, momentum=0.9), backend=INTERP)
    opt_state = step.init(model)
    losses = []
    for _ in range(30):
        model, opt_state, loss = step(model, opt_state, x, y)
        losses.append(float(loss))
    assert type(model[0]) is cls and losses[-1] < 0.5 * losses[0]
    if cls is not AffinePytree:
        assert isinstance(model[0], nn.Module)
        assert re.search(r"AffineModule|AffineLayer", repr(model))


def test_loss_takes_model_and_explicit_key():
    x, y = blobs(16, 4, 2)
    model = nn.Chain(nn.Dense(4, 8, nn.relu, rng=0), nn.Dropout(0.5), nn.Dense(8, 2, rng=1))

    def loss(m, x, y):  # Flux style, with an L2 penalty on the first layer
        return nn.cross_entropy(m(x), y) + 1e-3 * np.sum(m[0].weight ** 2)

    step = nn.train_step(model, loss, nn.Adam(1e-2), loss_takes_model=True, backend=INTERP)
    s = step.init(model)
    m1, _, l1 = step(model, s, x, y, nn.key(0))
    m2, _, l2 = step(model, s, x, y, nn.key(0))
    _, _, l3 = step(model, s, x, y, nn.key(1))
    assert float(l1) == float(l2) != float(l3)
    np.testing.assert_array_equal(m1[0].weight, m2[0].weight)
    with pytest.raises(graphc.GraphcError, match="needs a random key"):
        step(model, s, x, y)


def test_train_step_graph_inputs_are_named_by_module_paths():
    model = nn.Chain(nn.Dense(4, 8, act=nn.relu), nn.Dense(8, 3))
    step = nn.train_step(model, nn.cross_entropy, nn.SGD(lr=0.1))
    state = step.init(model)
    x, y = np.ones((5, 4), np.float32), np.zeros(5, np.int64)
    names = [n.meta.name for n in step.trace(model, state, x, y).inputs]
    assert names[:4] == [
        "model.layers[0].weight",
        "model.layers[0].bias",
        "model.layers[1].weight",
        "model.layers[1].bias",
    ]
    assert names[-2:] == ["x", "y"]
