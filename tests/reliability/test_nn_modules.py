"""graphc.nn in modules of one job each (activations, random, init, tree, summary, module, layers):
every name is still importable where it was, each is defined once, pickled models and saved
files still load, the shared initializer generator is one generator, modules are recognised as
before, and the counter-based keys behave the same traced and untraced."""

from __future__ import annotations

import importlib
import pickle

import numpy as np
import pytest

import graphc
import graphc.nn.layers as layers_mod
from graphc import nn
from graphc.nn.summary import show

# What `graphc.nn.layers` exported before its parts got modules of their own: code written
# against it keeps working.
OLD_LAYERS_EXPORTS = [
    "AvgPool2d",
    "BatchNorm",
    "Chain",
    "Context",
    "Conv2d",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "LayerNorm",
    "Linear",
    "MaxPool2d",
    "Module",
    "StateError",
    "apply",
    "bernoulli",
    "combine",
    "current_context",
    "fold_in",
    "gelu",
    "glorot_normal",
    "glorot_uniform",
    "identity",
    "kaiming_normal",
    "kaiming_uniform",
    "key",
    "layer",
    "leaky_relu",
    "log_softmax",
    "modules",
    "normal",
    "ones",
    "parameters",
    "partition",
    "relu",
    "seed",
    "sigmoid",
    "softmax",
    "softplus",
    "split",
    "state",
    "tanh",
    "uniform",
    "zeros",
]

HOMES = {
    "graphc.nn.activations": ["relu", "tanh", "sigmoid", "gelu", "softplus", "leaky_relu"],
    "graphc.nn.random": ["key", "fold_in", "split", "uniform", "bernoulli"],
    "graphc.nn.init": ["seed", "glorot_uniform", "kaiming_normal", "normal", "zeros", "ones"],
    "graphc.nn.tree": ["parameters", "state", "load_state", "partition", "combine", "StateError"],
    "graphc.nn.module": ["Module", "Context", "apply", "current_context", "layer"],
    "graphc.nn.layers": ["Dense", "Chain", "Conv2d", "BatchNorm", "Dropout", "Embedding"],
}


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OLD_LAYERS_EXPORTS)
def test_old_layers_names_are_the_package_names(name):
    assert getattr(layers_mod, name) is getattr(nn, name)


def test_star_import_from_layers_gives_the_old_names():
    ns: dict = {}
    exec("from graphc.nn.layers import *", ns)
    assert set(OLD_LAYERS_EXPORTS) <= set(ns)


@pytest.mark.parametrize("module", sorted(HOMES))
def test_each_name_has_one_definition(module):
    mod = importlib.import_module(module)
    assert set(HOMES[module]) <= set(mod.__all__)
    for name in mod.__all__:
        obj = getattr(mod, name)
        if hasattr(nn, name):
            assert getattr(nn, name) is obj, name
        # defined here, not merely passed through (Linear is another name for Dense)
        if callable(obj) and name in HOMES[module] and name != "Linear":
            assert obj.__module__ == module, (name, obj.__module__)


def test_every_package_export_resolves():
    missing = [n for n in nn.__all__ if not hasattr(nn, n)]
    assert not missing


# -- pickles and saved files ---------------------------------------------------------------------


@nn.layer
class Scaled:
    """A plain class made a Module by the decorator; module level so pickle can find it."""

    def __init__(self, n: int):
        self.scale = np.linspace(0.5, 1.5, n).astype(np.float32)
        self.label = "scaled"

    def __call__(self, x):
        return x * self.scale


def _model():
    nn.seed(11)
    return nn.Chain(
        nn.Conv2d(1, 2, 3, padding=1, act=nn.relu),
        nn.BatchNorm(2),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(8, 4, nn.tanh),
        Scaled(4),
        nn.LayerNorm(4),
    )


def _x():
    return np.random.default_rng(1).standard_normal((3, 1, 4, 4)).astype(np.float32)


def test_pickled_models_round_trip():
    m = _model()
    m2 = pickle.loads(pickle.dumps(m))
    assert type(m2[0]) is nn.Conv2d and type(m2[5]) is Scaled
    assert repr(m2) == repr(m)
    np.testing.assert_array_equal(m2(_x()), m(_x()))
    y, upd = nn.apply(m2, _x(), train=True)
    y0, upd0 = nn.apply(m, _x(), train=True)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(upd[1].running_var, upd0[1].running_var)


@pytest.mark.parametrize(
    "name", [n for n in OLD_LAYERS_EXPORTS if isinstance(getattr(nn, n), type)]
)
def test_old_class_paths_in_pickles_still_load(name):
    # a pickle records the class by module and name; files written when everything lived in
    # graphc.nn.layers name that module
    old = f"cgraphc.nn.layers\n{name}\np0\n.".encode()
    assert pickle.loads(old) is getattr(nn, name)


def test_pickle_of_a_dense_written_against_the_old_layout_loads():
    d = nn.Dense(3, 2, rng=0)
    data = pickle.dumps(d, protocol=0)
    assert b"graphc.nn.layers" in data  # the layer classes still live there
    d2 = pickle.loads(data)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(d2(x), x @ d.weight.T + d.bias, rtol=1e-6)


def test_saved_files_load_by_path(tmp_path):
    m = _model()
    _, m = nn.apply(m, _x(), train=True)
    # a file as `nn.save` has always written it: one array per attribute path
    f = tmp_path / "old.npz"
    np.savez(f, **{k: np.array(v) for k, v in m.state().items()})
    assert "layers.1.running_mean" in m.state() and "layers.5.scale" in m.state()
    fresh = _model()
    fresh.layers[0].weight[...] = 0
    loaded = nn.load(fresh, f)
    assert loaded is fresh
    np.testing.assert_array_equal(loaded(_x()), m(_x()))
    np.testing.assert_array_equal(loaded[1].running_mean, m[1].running_mean)


def test_load_mismatch_is_a_state_error_under_every_name(tmp_path):
    m = _model()
    st = m.state()
    st["layers.4.weight"] = np.zeros((5, 8), np.float32)
    f = tmp_path / "bad.npz"
    np.savez(f, **st)
    for exc in (nn.StateError, layers_mod.StateError, graphc.GraphcError):
        with pytest.raises(exc, match=r"'layers\.4\.weight'.*\(4, 8\).*\(5, 8\).*bad\.npz"):
            nn.load(_model(), f)
    del st["layers.4.weight"]
    with pytest.raises(nn.StateError, match=r"'layers\.4\.weight'.*no such entry"):
        nn.load_state(_model(), st)


# -- the shared initializer generator -------------------------------------------------------------


@pytest.mark.parametrize(
    "reseed", [nn.seed, layers_mod.seed, importlib.import_module("graphc.nn.init").seed]
)
def test_seed_reseeds_the_generator_layers_draw_from(reseed):
    reseed(3)
    w = nn.Dense(4, 5).weight
    e = nn.Embedding(6, 2).weight
    a = np.sqrt(6.0 / (4 + 5))
    g = np.random.default_rng(3)
    np.testing.assert_array_equal(w, g.uniform(-a, a, (5, 4)).astype(np.float32))
    np.testing.assert_array_equal(e, g.standard_normal((6, 2)).astype(np.float32))


def test_initializer_names_and_errors():
    nn.seed(0)
    w = nn.Conv2d(2, 3, 3, init="he").weight
    assert w.shape == (3, 2, 3, 3) and w.dtype == np.float32
    np.testing.assert_allclose(np.std(nn.kaiming_normal((400, 50), rng=0)), np.sqrt(2 / 50), 0.05)
    with pytest.raises(graphc.GraphcError, match=r"unknown init 'nope' \(known: glorot_uniform"):
        nn.Dense(2, 2, init="nope")


# -- modules recognised as before ----------------------------------------------------------------


class Affine(nn.Module):
    _nontrainable = ("count",)

    def __init__(self):
        self.W = np.array([[1.0, -2.0], [0.5, 3.0]])
        self.b = np.array([0.1, -0.2])
        self.count = np.zeros(())

    def forward(self, x):
        return np.tanh(x @ self.W.T + self.b)


class NotAModule:
    """Has the attribute modules use for state, but is no Module: static configuration."""

    _nontrainable = ("W",)

    def __init__(self):
        self.W = np.ones(2)


def test_modules_paths_and_trainability():
    m = nn.Chain(Affine(), nn.Dense(2, 1, rng=0), NotAModule())
    assert [type(x).__name__ for x in nn.modules(m)] == ["Chain", "Affine", "Dense"]
    assert list(nn.parameters(m)) == [
        "layers.0.W",
        "layers.0.b",
        "layers.1.weight",
        "layers.1.bias",
    ]
    assert list(m.buffers()) == ["layers.0.count"]
    params, rest = nn.partition(m)
    assert params.layers[0].count is None and rest.layers[0].W is None
    back = nn.combine(params, rest)
    np.testing.assert_array_equal(back.layers[0].W, m.layers[0].W)


def test_gradient_through_a_custom_module_matches_finite_differences():
    m = Affine()
    x = np.array([[0.3, -0.7], [1.1, 0.2], [-0.4, 0.9]])

    def loss(model, x):
        return np.sum(model(x) ** 2)

    g = graphc.grad(loss)(m, x)
    assert type(g) is Affine
    eps = 1e-6
    fd = np.zeros_like(m.W)
    for i in np.ndindex(m.W.shape):
        hi, lo = Affine(), Affine()
        hi.W[i] += eps
        lo.W[i] -= eps
        fd[i] = (loss(hi, x) - loss(lo, x)) / (2 * eps)
    np.testing.assert_allclose(g.W, fd, rtol=1e-6, atol=1e-8)


def test_printing_partitioned_and_plain_trees(capsys):
    m = nn.Chain(nn.Dense(2, 3, nn.relu), nn.BatchNorm(3))
    params, rest = nn.partition(m)
    # a Dense without its arrays cannot say its sizes: it prints its attributes instead
    assert "Dense(act=relu)" in repr(rest)
    assert "BatchNorm(weight=float32[3], bias=float32[3], eps=1e-05, momentum=0.1)" in repr(params)
    m.summary()
    assert capsys.readouterr().out == repr(m) + "\n"
    assert "# Total: 4 trainable arrays, 15 parameters, plus 2 non-trainable, 6 numbers" in repr(m)
    # any tree prints, not only Modules: containers by their fields, arrays by dtype and shape
    lines = show({"w": np.ones(3), "m": nn.Dense(1, 1, rng=0)}, "", True)
    assert lines[0].startswith("dict(w=float64[3], m=Dense(1 => 1)") and "5 parameters" in lines[0]
    nested = nn.Chain(a=nn.Chain(nn.BatchNorm(2)), b=nn.Flatten())
    assert show(nested, "", True) == repr(nested).splitlines()
    assert [ln.split("#")[0].rstrip() for ln in repr(nested).splitlines()[1:4]] == [
        "  Chain(",
        "    BatchNorm(2),",
        "  ),",
    ]
    assert "4 parameters, plus 4 non-trainable" in repr(nested).splitlines()[2]


# -- random keys and the call context --------------------------------------------------------------


def test_dropout_masks_traced_and_untraced_agree():
    m = nn.Chain(nn.Dense(3, 16, rng=0), nn.Dropout(0.4), nn.Dropout(0.4))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    y1 = m(x, train=True, key=nn.key(9))
    y2 = m(x, train=True, key=nn.key(9))
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, m(x, train=True, key=nn.key(10)))
    compiled = graphc.jit(lambda m, x, k: m(x, train=True, key=k))
    np.testing.assert_allclose(compiled(m, x, nn.key(9)), y1, rtol=1e-6)
    h = m[0](x)
    keep = y1 != 0
    np.testing.assert_allclose(y1[keep], (h / 0.6 / 0.6)[keep], rtol=1e-6)
    assert 0.05 < 1 - keep.mean() < 0.9


def test_random_keys_traced_and_untraced_agree():
    k = nn.key(123)

    def draw(k):
        a, b = nn.split(k)[0], nn.fold_in(k, 7)
        return nn.uniform(a, (4, 3)), nn.bernoulli(b, 0.5, 6)

    u, bits = draw(k)
    tu, tbits = graphc.jit(draw)(k)
    np.testing.assert_array_equal(tu, u)
    np.testing.assert_array_equal(tbits, bits)
    assert u.dtype == np.float32 and ((u >= 0) & (u < 1)).all()
    assert len({float(v) for v in u.ravel()}) == 12


def test_train_mode_without_a_key_names_the_layer():
    m = nn.Chain(nn.Dense(2, 2, rng=0), nn.Dropout(0.5))
    with pytest.raises(graphc.GraphcError, match=r"Dropout at model\.layers\.1 needs a random key"):
        m(np.ones((1, 2), np.float32), train=True)
    assert nn.current_context() is None  # the failed call left no context behind
