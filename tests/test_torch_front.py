"""graphc.torch: PyTorch's API on graphc's lazy engine.

Values and gradients of every function and layer against NumPy references and central finite
differences (float64), PyTorch's semantics where they differ from NumPy's, the lazy engine
(realization points, one compile per structure, cache hits), in-place updates and gradient
accumulation, the optimizers against NumPy versions of PyTorch's update rules, compile's
capture and replay, saving, pictures and errors. PyTorch itself is not used.

Most tests run the graphs on graphc's reference interpreter (the engine is the same; compiling
every small graph with Numba would only cost time); the training-loop, caching and compile tests
run the compiled backend.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from conftest import marker_line

import graphc
import graphc.torch as torch
import graphc.torch.nn as nn
import graphc.torch.nn.functional as F
from graphc.torch import optim
from graphc.torch._engine import engine

HERE = os.path.abspath(__file__)


@pytest.fixture(autouse=True)
def interpreter(request, monkeypatch):
    if "compiled" not in request.fixturenames:
        monkeypatch.setenv("GRAPHC_BACKEND", "interpreter")
    torch.manual_seed(0)
    yield
    engine.realize("test teardown")


@pytest.fixture
def compiled():
    """Asked for by the tests that run graphc's compiled backend."""


def t64(a, requires_grad=True):
    return torch.tensor(np.asarray(a, np.float64), dtype=torch.float64, requires_grad=requires_grad)


def numeric_grad(f, arrays, k, eps=1e-6):
    """Central differences of scalar f(*arrays) with respect to arrays[k]."""
    a = arrays[k]
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        hi = [x.copy() for x in arrays]
        lo = [x.copy() for x in arrays]
        hi[k][i] += eps
        lo[k][i] -= eps
        g[i] = (f(*hi) - f(*lo)) / (2 * eps)
    return g


def check(torch_fn, np_fn, *arrays, grad=True, rtol=1e-7, atol=1e-9, seed=0):
    """torch_fn on float64 tensors equals np_fn on the arrays, and the gradients of
    sum(out * w) (random w) equal central differences of the NumPy reference."""
    arrays = [
        np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
        for a in arrays
    ]
    ts = [t64(a, grad) if a.dtype.kind == "f" else torch.tensor(a) for a in arrays]
    out = torch_fn(*ts)
    want = np_fn(*arrays)
    np.testing.assert_allclose(out.numpy(), want, rtol=rtol, atol=atol)
    if not grad:
        return
    w = np.random.default_rng(seed).standard_normal(np.shape(want))
    (out * torch.tensor(w)).sum().backward()
    for k, (a, t) in enumerate(zip(arrays, ts, strict=True)):
        if a.dtype.kind != "f":
            continue
        fd = numeric_grad(lambda *xs: float(np.sum(np_fn(*xs) * w)), arrays, k)
        np.testing.assert_allclose(t.grad.numpy(), fd, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# the article's programs


def test_article_scalar_example_prints_its_values():
    a = torch.tensor(230.3, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(33.2, dtype=torch.float64, requires_grad=True)
    f = (a / b - a) * (b / a + a + b) * (a - b)
    f.backward()
    assert f"{a.grad.item():.8f}" == "-153284.83150602"
    assert f"{b.grad.item():.8f}" == "3815.03894415"


def test_article_scalar_variant_with_functions():
    a = torch.tensor(230.3, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(33.2, dtype=torch.float64, requires_grad=True)
    f = ((a**2) / torch.sin(b) - a) * (b / a + torch.cos(a) + b) * (a - torch.exp(b))
    f.backward()
    assert abs(a.grad.item() / -1.56674119e19 - 1) < 1e-8
    assert abs(b.grad.item() / -5.79507777e20 - 1) < 1e-8


# ---------------------------------------------------------------------------------------------
# tensors: creation, metadata, semantics


def test_default_dtypes_follow_pytorch():
    assert torch.tensor([1.0, 2.0]).dtype == torch.float32
    assert torch.tensor([1, 2]).dtype == torch.int64
    assert torch.tensor([True]).dtype == torch.bool
    assert torch.from_numpy(np.zeros(2)).dtype == torch.float64  # arrays keep their dtype
    assert torch.zeros(2, 3).dtype == torch.float32
    assert torch.randn(2).dtype == torch.float32
    assert torch.arange(5).dtype == torch.int64
    assert torch.arange(0.0, 1.0, 0.5).dtype == torch.float32


def test_shape_size_dim_numel():
    x = torch.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.size() == torch.Size([2, 3, 4])
    assert x.size(1) == 3 and x.size(-1) == 4 and x.dim() == 3 and x.numel() == 24
    assert repr(x.shape) == "torch.Size([2, 3, 4])"
    assert len(x) == 2


def test_promotion_follows_pytorch_categories():
    i = torch.tensor([1, 2, 3])
    f = torch.tensor([1.0, 2.0])
    assert (i + 1.5).dtype == torch.float32  # NumPy: float64
    assert (i / 2).dtype == torch.float32  # true division of integers: the default dtype
    assert (i / i).numpy().tolist() == [1.0, 1.0, 1.0]
    assert (f + torch.tensor(1.0, dtype=torch.float64)).dtype == torch.float32  # 0-d: weaker
    assert (i + torch.tensor(1.5, dtype=torch.float64)).dtype == torch.float64  # higher category
    assert (i + 2).dtype == torch.int64
    assert (i * True).dtype == torch.int64
    assert (i > 1).dtype == torch.bool


def test_integer_floor_division_and_remainder():
    a = torch.tensor([7, -7, 5])
    b = torch.tensor([2, 2, -3])
    assert (a // b).numpy().tolist() == [3, -4, -2]
    assert (a % b).numpy().tolist() == [1, 1, -1]
    assert (a // b).dtype == torch.int64
    assert torch.div(a, b, rounding_mode="trunc").numpy().tolist() == [3, -3, -1]


def test_max_with_dim_returns_values_and_indices():
    x = torch.tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])
    values, indices = x.max(dim=1)
    assert values.numpy().tolist() == [5.0, 6.0] and indices.numpy().tolist() == [1, 2]
    r = torch.max(x, 0, keepdim=True)
    assert r.values.shape == (1, 3) and r.indices.dtype == torch.int64
    assert x.max().item() == 6.0
    assert x.argmax().item() == 5  # of the flattened tensor
    assert x.argmax(dim=0).numpy().tolist() == [1, 0, 1]
    assert torch.max(x, torch.full((2, 3), 4.0)).numpy().tolist() == [[4, 5, 4], [4, 4, 6]]


def test_var_and_std_are_unbiased_by_default():
    a = np.array([1.0, 2.0, 4.0, 7.0])
    x = torch.tensor(a)
    assert np.isclose(x.var().item(), np.var(a, ddof=1))
    assert np.isclose(x.std(unbiased=False).item(), np.std(a))
    assert np.isclose(x.var(correction=0).item(), np.var(a))


def test_squeeze_of_a_dimension_of_another_size_is_a_no_op():
    x = torch.zeros(2, 1, 3)
    assert x.squeeze(1).shape == (2, 3)
    assert x.squeeze(0).shape == (2, 1, 3)  # NumPy raises here
    assert x.squeeze().shape == (2, 3)
    assert x.unsqueeze(0).shape == (1, 2, 1, 3) and x.unsqueeze(-1).shape == (2, 1, 3, 1)


def test_sum_of_integers_and_bools_is_int64_and_mean_of_integers_refused():
    assert torch.tensor([1, 2], dtype=torch.int32).sum().dtype == torch.int64
    assert torch.tensor([True, False, True]).sum().item() == 2
    with pytest.raises(graphc.GraphcError, match="floating-point"):
        torch.tensor([1, 2]).mean()


def test_printing_realizes_and_looks_like_pytorch():
    assert repr(torch.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(torch.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(torch.tensor([1, 2])) == "tensor([1, 2])"
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<mul>)"
    assert repr(torch.tensor(1.5, dtype=torch.float64)) == "tensor(1.5000, dtype=torch.float64)"
    assert f"{torch.tensor(0.123456):.3f}" == "0.123"


def test_item_numpy_tolist_and_python_conversions():
    x = torch.tensor([[1.0, 2.0]]) * 3
    assert x.tolist() == [[3.0, 6.0]]
    assert isinstance(x.numpy(), np.ndarray)
    s = x.sum()
    assert s.item() == 9.0 and float(s) == 9.0 and int(s) == 9
    assert np.asarray(x).shape == (1, 2)
    with pytest.raises(graphc.GraphcError, match="one element"):
        x.item()


@pytest.mark.parametrize(
    "name, fn, ref",
    [
        ("add", lambda a, b: a + b, np.add),
        ("sub", lambda a, b: a - b, np.subtract),
        ("mul", lambda a, b: a * b, np.multiply),
        ("div", lambda a, b: a / b, np.divide),
        ("rsub", lambda a, b: 2.0 - a * b, lambda a, b: 2.0 - a * b),
        ("rdiv", lambda a, b: 1.0 / (a * a + 1) + b, lambda a, b: 1.0 / (a * a + 1) + b),
        ("pow_scalar", lambda a, b: a**2 + b**3, lambda a, b: a**2 + b**3),
        ("pow_tensor", lambda a, b: (a * a + 1) ** b, lambda a, b: (a * a + 1) ** b),
        ("maximum", torch.maximum, np.maximum),
        ("minimum", torch.minimum, np.minimum),
        (
            "where",
            lambda a, b: torch.where(a > b, a, b * 2),
            lambda a, b: np.where(a > b, a, b * 2),
        ),
        (
            "clamp",
            lambda a, b: torch.clamp(a, -0.3, 0.4) + b,
            lambda a, b: np.clip(a, -0.3, 0.4) + b,
        ),
        ("broadcast", lambda a, b: a * b[0], lambda a, b: a * b[0]),
    ],
)
def test_binary_operations(name, fn, ref, rng):
    check(fn, ref, rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))


@pytest.mark.parametrize(
    "fn, ref, positive",
    [
        (torch.exp, np.exp, False),
        (torch.log, np.log, True),
        (torch.sqrt, np.sqrt, True),
        (torch.sin, np.sin, False),
        (torch.cos, np.cos, False),
        (torch.tanh, np.tanh, False),
        (torch.sigmoid, lambda x: 1 / (1 + np.exp(-x)), False),
        (torch.relu, lambda x: np.maximum(x, 0), False),
        (torch.abs, np.abs, False),
        (lambda x: -x, np.negative, False),
        (lambda x: x.square(), np.square, False),
        (lambda x: x.rsqrt(), lambda x: 1 / np.sqrt(x), True),
        (lambda x: x.log1p(), np.log1p, True),
    ],
)
def test_unary_functions(fn, ref, positive, rng):
    x = rng.standard_normal((3, 4)) + 0.05  # away from relu's and abs's kinks
    check(fn, ref, np.abs(x) + 0.5 if positive else x)


def test_matmul_and_friends(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    check(lambda x, y: x @ y, np.matmul, a, b)
    check(torch.matmul, np.matmul, a, b)
    check(lambda x, y: x.mm(y), np.matmul, a, b)
    check(torch.bmm, np.matmul, rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 2)))
    check(lambda x, y: x @ y, np.matmul, rng.standard_normal(4), rng.standard_normal(4))


@pytest.mark.parametrize(
    "fn, ref",
    [
        (lambda x: x.sum(), np.sum),
        (lambda x: x.sum(dim=1), lambda x: x.sum(axis=1)),
        (lambda x: x.sum(dim=(0, 2), keepdim=True), lambda x: x.sum(axis=(0, 2), keepdims=True)),
        (lambda x: x.mean(dim=-1), lambda x: x.mean(axis=-1)),
        (lambda x: torch.mean(x, 0, keepdim=True), lambda x: x.mean(axis=0, keepdims=True)),
        (lambda x: x.max(), np.max),
        (lambda x: x.max(dim=1).values, lambda x: x.max(axis=1)),
        (lambda x: x.min(dim=2, keepdim=True)[0], lambda x: x.min(axis=2, keepdims=True)),
        (lambda x: x.amax(dim=(1, 2)), lambda x: x.max(axis=(1, 2))),
        (lambda x: x.prod(dim=1), lambda x: x.prod(axis=1)),
        (lambda x: x.var(dim=1), lambda x: x.var(axis=1, ddof=1)),
        (lambda x: x.std(dim=0, keepdim=True), lambda x: x.std(axis=0, ddof=1, keepdims=True)),
        (lambda x: x.norm(), np.linalg.norm),
        (lambda x: x.softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
        (
            lambda x: torch.log_softmax(x, dim=-1),
            lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)),
        ),
    ],
)
def test_reductions(fn, ref, rng):
    check(fn, ref, rng.standard_normal((2, 3, 4)))


def test_argmax_argmin(rng):
    a = rng.standard_normal((3, 5))
    x = torch.tensor(a)
    assert x.argmax(dim=1).numpy().tolist() == a.argmax(1).tolist()
    assert x.argmin(dim=0, keepdim=True).numpy().tolist() == [a.argmin(0).tolist()]
    assert torch.argmax(x).item() == a.argmax()


@pytest.mark.parametrize(
    "fn, ref",
    [
        (lambda x: x.view(6, 4), lambda x: x.reshape(6, 4)),
        (lambda x: x.view(-1), lambda x: x.reshape(-1)),
        (lambda x: x.reshape((4, -1)), lambda x: x.reshape(4, -1)),
        (lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1)),
        (lambda x: x.transpose(0, 2), lambda x: x.swapaxes(0, 2)),
        (lambda x: x.flatten(), lambda x: x.reshape(-1)),
        (lambda x: x.flatten(1), lambda x: x.reshape(2, -1)),
        (lambda x: torch.flatten(x, 0, 1), lambda x: x.reshape(6, 4)),
        (lambda x: x[0].t(), lambda x: x[0].T),
        (lambda x: x.T, lambda x: x.transpose(2, 1, 0)),
        (
            lambda x: x.unsqueeze(1).expand(2, 5, 3, 4),
            lambda x: np.broadcast_to(x[:, None], (2, 5, 3, 4)),
        ),
        (lambda x: x[:, :1].expand(-1, 3, -1), lambda x: np.broadcast_to(x[:, :1], (2, 3, 4))),
        (lambda x: x.repeat(2, 1, 1), lambda x: np.tile(x, (2, 1, 1))),
        (lambda x: x.view_as(torch.zeros(4, 6)), lambda x: x.reshape(4, 6)),
    ],
)
def test_shape_operations(fn, ref, rng):
    check(fn, ref, rng.standard_normal((2, 3, 4)))


@pytest.mark.parametrize(
    "key",
    [
        0,
        -1,
        (1, 2),
        slice(1, None),
        (slice(None), 0),
        (Ellipsis, 1),
        (None, 0),
        (slice(None, None, 2), slice(1, 3)),
        ([0, 2, 2],),
    ],
)
def test_indexing(key, rng):
    a = rng.standard_normal((3, 4))
    check(lambda x: x[key], lambda x: x[key], a)


def test_indexing_with_tensors(rng):
    a = rng.standard_normal((4, 3))
    idx = np.array([3, 0, 0])
    check(lambda x, i: x[i], lambda x, i: x[i], a, idx)
    check(lambda x, i: x[torch.arange(3), i], lambda x, i: x[np.arange(3), i], a[:3], idx % 3)
    x = torch.tensor(a)
    mask = x > 0  # a data-dependent shape: the mask is realized
    np.testing.assert_allclose(x[mask].numpy(), a[a > 0])


def test_cat_stack(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((1, 3))
    check(lambda x, y: torch.cat([x, y, x]), lambda x, y: np.concatenate([x, y, x]), a, b)
    check(lambda x, y: torch.stack([x, x * y], dim=1), lambda x, y: np.stack([x, x * y], 1), a, b)


def test_comparisons_and_logic():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert (x > 1.5).numpy().tolist() == [False, True, True]
    assert (x == 2).numpy().tolist() == [False, True, False]
    assert ((x > 1) & (x < 3)).numpy().tolist() == [False, True, False]
    assert ((x < 1.5) | (x > 2.5)).numpy().tolist() == [True, False, True]
    assert (~(x > 2)).numpy().tolist() == [True, True, False]
    assert bool((x > 0).all()) and not bool((x > 2).all())
    assert torch.allclose(x, x + 1e-9) and torch.equal(x, x.clone())


def test_masked_fill_and_setitem():
    x = torch.arange(6.0).view(2, 3)
    assert x.masked_fill(x > 3, -1.0).numpy().tolist() == [[0, 1, 2], [3, -1, -1]]
    y = torch.zeros(2, 3)
    y[0] = torch.tensor([1.0, 2.0, 3.0])
    y[1, 1:] = 7
    y[:, 0] += 0.5
    assert y.numpy().tolist() == [[1.5, 2, 3], [0.5, 7, 7]]


def test_setitem_keeps_gradients_to_the_written_value():
    v = t64([1.0, 2.0])
    x = torch.zeros(3, dtype=torch.float64)
    x[1:] = v * 3
    (x * torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)).sum().backward()
    assert v.grad.numpy().tolist() == [30.0, 300.0]


# ---------------------------------------------------------------------------------------------
# autograd: backward, accumulation, in place, no_grad, detach


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = t64([1.0, 2.0])
    y = x * x
    with pytest.raises(graphc.GraphcError, match="gradient") as e:
        y.backward()  # nonscalar
    assert e.value.location.endswith(f"test_torch_front.py:{marker_line(HERE, 'nonscalar')}")
    y.backward(torch.tensor([1.0, 0.5], dtype=torch.float64))
    assert x.grad.numpy().tolist() == [2.0, 2.0]


def test_gradients_accumulate_until_zeroed():
    w = t64([1.0, -2.0])
    (w * w).sum().backward()
    (w * 3).sum().backward()  # accumulates, as in PyTorch
    assert w.grad.numpy().tolist() == [5.0, -1.0]
    g = w.grad
    (w * w).sum().backward()
    assert w.grad is g  # accumulated into the same tensor
    assert w.grad.numpy().tolist() == [7.0, -5.0]
    w.grad.zero_()
    assert w.grad.numpy().tolist() == [0.0, 0.0]
    w.grad = None
    w.sum().backward()
    assert w.grad.numpy().tolist() == [1.0, 1.0]


def test_grad_of_a_leaf_not_used_stays_none():
    a, b = t64([1.0]), t64([2.0])
    (a * 2).sum().backward()
    assert b.grad is None and a.grad.item() == 2.0


def test_no_grad_results_do_not_require_grad():
    w = t64([1.0])
    with torch.no_grad():
        y = w * 2
    assert not y.requires_grad and y.is_leaf
    assert (w * 2).requires_grad and not (w * 2).is_leaf
    assert torch.is_grad_enabled()

    @torch.no_grad()
    def f(x):
        return x * 3

    assert not f(w).requires_grad


def test_hand_written_sgd_step_updates_in_place():
    w = t64([1.0, 2.0])
    (w * w).sum().backward()
    before = id(w)
    with torch.no_grad():
        w -= 0.1 * w.grad
    assert id(w) == before and w.is_leaf and w.requires_grad
    assert np.allclose(w.numpy(), [0.8, 1.6])
    w.grad.zero_()
    (w * w).sum().backward()  # the gradient at the new value, not through the update
    assert np.allclose(w.grad.numpy(), [1.6, 3.2])


def test_in_place_update_of_a_leaf_with_grad_on_is_refused():
    w = t64([1.0])
    with pytest.raises(graphc.GraphcError, match="in place") as e:
        w.add_(1.0)  # inplace
    assert e.value.location.endswith(f"test_torch_front.py:{marker_line(HERE, 'inplace')}")


def test_in_place_methods():
    x = torch.tensor([1.0, 2.0])
    x.add_(1).mul_(3).sub_(torch.tensor([1.0, 1.0]), alpha=2).div_(2)
    assert x.numpy().tolist() == [2.0, 3.5]
    x.zero_()
    assert x.numpy().tolist() == [0.0, 0.0]
    x.fill_(4)
    x.clamp_(max=3.0)
    assert x.numpy().tolist() == [3.0, 3.0]
    x.copy_(torch.tensor([5.0, 6.0]))
    assert x.numpy().tolist() == [5.0, 6.0]
    i = torch.tensor([1, 2])
    with pytest.raises(graphc.GraphcError, match="cannot be cast"):
        i += 1.5


def test_data_shares_storage_and_carries_no_gradient():
    w = t64([1.0, 2.0])
    w.data.mul_(2)  # the old way to update parameters
    assert w.numpy().tolist() == [2.0, 4.0] and w.requires_grad
    (w * w.data).sum().backward()  # no gradient through .data
    assert w.grad.numpy().tolist() == [2.0, 4.0]


def test_detach_cuts_the_gradient():
    x = t64([3.0])
    y = x * x
    z = y.detach() * x + y
    z.backward()
    assert x.grad.item() == 9.0 + 6.0
    assert not y.detach().requires_grad


def test_realized_values_keep_their_history_for_backward():
    x = t64([1.0, 2.0])
    y = (x * x).sum()
    assert y.item() == 5.0  # realized before backward
    y.backward()
    assert x.grad.numpy().tolist() == [2.0, 4.0]


def test_autograd_grad_leaves_dot_grad_alone():
    x = t64([1.0, 2.0])
    (g,) = torch.autograd.grad((x**3).sum(), [x])
    assert g.numpy().tolist() == [3.0, 12.0] and x.grad is None


def test_requires_grad_on_a_computed_tensor_makes_a_leaf():
    w = torch.randn(3, 2, dtype=torch.float64) / math.sqrt(3)
    w.requires_grad_()
    assert w.is_leaf and w.requires_grad
    (w * 2).sum().backward()
    assert w.grad.numpy().tolist() == [[2.0, 2.0]] * 3
    with pytest.raises(graphc.GraphcError, match="leaf"):
        (w * 2).requires_grad_(False)
    with pytest.raises(graphc.GraphcError, match="floating-point"):
        torch.tensor([1, 2]).requires_grad_()


def test_python_control_flow_on_values_splits_the_graph():
    x = torch.tensor([1.0, -2.0, 3.0])
    before = torch.cache_info().realizations
    total = 0.0
    for k in range(3):
        if x[k] > 0:  # a value Python needs: a realization
            total += float(x[k] * 2)
    assert total == 8.0
    assert torch.cache_info().realizations - before >= 3


# ---------------------------------------------------------------------------------------------
# nn.functional and layers against NumPy references


def np_conv2d(x, w, b=None, stride=1, padding=0):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out if b is None else out + b[None, :, None, None]


def np_pool(x, k, fn):
    n, c, h, w = x.shape
    return fn(x[:, :, : h // k * k, : w // k * k].reshape(n, c, h // k, k, w // k, k), axis=(3, 5))


def np_log_softmax(x, axis=-1):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def test_linear(rng):
    check(
        F.linear,
        lambda x, w, b: x @ w.T + b,
        rng.standard_normal((5, 3)),
        rng.standard_normal((2, 3)),
        rng.standard_normal(2),
    )
    check(F.linear, lambda x, w: x @ w.T, rng.standard_normal((5, 3)), rng.standard_normal((2, 3)))


def test_conv2d(rng):
    x, w, b = (
        rng.standard_normal((2, 2, 5, 5)),
        rng.standard_normal((3, 2, 3, 3)),
        rng.standard_normal(3),
    )
    check(F.conv2d, np_conv2d, x, w, b)
    check(
        lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        lambda x, w: np_conv2d(x, w, stride=2, padding=1),
        x,
        w,
    )
    check(
        lambda x, w: F.conv2d(x, w, padding="same"), lambda x, w: np_conv2d(x, w, padding=1), x, w
    )


def test_pools(rng):
    x = rng.standard_normal((2, 3, 4, 6))
    check(lambda x: F.max_pool2d(x, 2), lambda x: np_pool(x, 2, np.max), x)
    check(lambda x: F.avg_pool2d(x, 2), lambda x: np_pool(x, 2, np.mean), x)
    check(lambda x: nn.MaxPool2d(2)(x), lambda x: np_pool(x, 2, np.max), x)
    check(lambda x: nn.AvgPool2d(2)(x), lambda x: np_pool(x, 2, np.mean), x)


@pytest.mark.parametrize(
    "fn, ref",
    [
        (F.relu, lambda x: np.maximum(x, 0)),
        (F.tanh, np.tanh),
        (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
        (F.softplus, lambda x: np.log1p(np.exp(x))),
        (F.silu, lambda x: x / (1 + np.exp(-x))),
        (lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
        (F.gelu, lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
        (
            lambda x: F.gelu(x, approximate="tanh"),
            lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        ),
        (lambda x: F.softmax(x, dim=0), lambda x: np.exp(x) / np.exp(x).sum(0)),
        (lambda x: F.log_softmax(x, dim=1), lambda x: np_log_softmax(x, 1)),
        (nn.ReLU(), lambda x: np.maximum(x, 0)),
        (nn.Tanh(), np.tanh),
        (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
        (nn.GELU(), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
        (nn.Softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
        (nn.LogSoftmax(dim=1), lambda x: np_log_softmax(x, 1)),
        (nn.Flatten(), lambda x: x.reshape(len(x), -1)),
        (nn.Identity(), lambda x: x),
    ],
)
def test_activations(fn, ref, rng):
    check(fn, ref, rng.standard_normal((3, 4)) + 0.01)


def test_layer_norm(rng):
    def ref(x, w, b):
        m = x.mean(-1, keepdims=True)
        v = x.var(-1, keepdims=True)
        return (x - m) / np.sqrt(v + 1e-5) * w + b

    check(
        lambda x, w, b: F.layer_norm(x, (4,), w, b),
        ref,
        rng.standard_normal((3, 4)),
        rng.standard_normal(4),
        rng.standard_normal(4),
    )
    ln = nn.LayerNorm(4)
    assert ln.weight.numpy().tolist() == [1.0] * 4 and ln.bias.numpy().tolist() == [0.0] * 4


def test_batch_norm_training_and_running_statistics(rng):
    a = rng.standard_normal((6, 3)) * 2 + 1
    bn = nn.BatchNorm1d(3).double()
    x = t64(a)
    y = bn(x)
    m, v = a.mean(0), a.var(0)
    np.testing.assert_allclose(y.numpy(), (a - m) / np.sqrt(v + 1e-5), rtol=1e-9)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * m, rtol=1e-9)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * a.var(0, ddof=1), rtol=1e-9)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    y = bn(x)
    np.testing.assert_allclose(
        y.numpy(), (a - 0.1 * m) / np.sqrt(0.9 + 0.1 * a.var(0, ddof=1) + 1e-5), rtol=1e-9
    )
    assert bn.num_batches_tracked.item() == 1

    def ref(x, w, b):
        mm = x.mean((0, 2, 3), keepdims=True)
        vv = x.var((0, 2, 3), keepdims=True)
        return (x - mm) / np.sqrt(vv + 1e-5) * w[None, :, None, None] + b[None, :, None, None]

    check(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        ref,
        rng.standard_normal((2, 3, 2, 2)),
        rng.standard_normal(3),
        rng.standard_normal(3),
    )


def test_norm_modules_match_functional_with_gradients(rng):
    def ref_bn(x):
        m, v = x.mean((0, 2, 3), keepdims=True), x.var((0, 2, 3), keepdims=True)
        return (x - m) / np.sqrt(v + 1e-5)

    check(lambda x: nn.BatchNorm2d(3).double()(x), ref_bn, rng.standard_normal((2, 3, 2, 2)))

    def ref_ln(x):
        m, v = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
        return (x - m) / np.sqrt(v + 1e-5)

    check(lambda x: nn.LayerNorm((2, 3)).double()(x), ref_ln, rng.standard_normal((2, 2, 3)))
    ln = nn.LayerNorm(3).double()
    x = t64(rng.standard_normal((4, 3)))
    ln(x).pow(3).sum().backward()  # the parameters get gradients too
    assert ln.weight.grad.shape == (3,) and ln.bias.grad.shape == (3,)


def test_embedding(rng):
    w = rng.standard_normal((5, 3))
    idx = np.array([[0, 4], [2, 2]])
    check(lambda i, w: F.embedding(i, w), lambda i, w: w[i], idx, w)
    e = nn.Embedding(5, 3)
    assert e(torch.tensor([1, 1, 4])).shape == (3, 3)


def test_dropout_scales_kept_elements_and_is_the_identity_in_eval():
    x = torch.ones(200, 50)
    d = nn.Dropout(0.25)
    y = d(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.2 < (y == 0).mean() < 0.3
    y2 = d(x).numpy()
    assert not np.array_equal(y, y2)  # a new mask per call
    d.eval()
    assert np.array_equal(d(x).numpy(), x.numpy())
    assert np.array_equal(F.dropout(x, 0.5, training=False).numpy(), x.numpy())


def test_dropout_gradient_uses_the_same_mask():
    x = t64(np.ones((10, 10)))
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.numpy())


def test_losses(rng):
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    ce = lambda z, t: -np_log_softmax(z)[np.arange(4), t].mean()  # noqa: E731
    check(F.cross_entropy, ce, logits, labels)
    check(
        lambda z, t: nn.CrossEntropyLoss(reduction="sum")(z, t),
        lambda z, t: -np_log_softmax(z)[np.arange(4), t].sum(),
        logits,
        labels,
    )
    probs = np.abs(rng.standard_normal((4, 3)))
    probs /= probs.sum(1, keepdims=True)
    check(F.cross_entropy, lambda z, p: -(p * np_log_softmax(z)).sum(1).mean(), logits, probs)
    check(F.nll_loss, lambda z, t: -z[np.arange(4), t].mean(), logits, labels)
    check(
        lambda z: nn.NLLLoss()(F.log_softmax(z, dim=1), torch.tensor(labels)),
        lambda z: ce(z, labels),
        logits,
    )
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    check(nn.MSELoss(), lambda a, b: ((a - b) ** 2).mean(), a, b)
    check(F.mse_loss, lambda a, b: ((a - b) ** 2).mean(), a, b)
    check(nn.L1Loss(reduction="none"), lambda a, b: np.abs(a - b), a, b + 0.01)
    t = rng.random((3, 2))
    bce = lambda z, t: (np.log1p(np.exp(z)) - z * t).mean()  # noqa: E731
    check(nn.BCEWithLogitsLoss(), bce, a, t)
    check(F.binary_cross_entropy_with_logits, bce, a, t)
    p = 1 / (1 + np.exp(-a))
    check(nn.BCELoss(), lambda p, t: -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(), p, t)


def test_cross_entropy_takes_logits_and_class_indices_like_pytorch():
    loss = nn.CrossEntropyLoss()(torch.zeros(2, 3), torch.tensor([0, 2]))
    assert abs(loss.item() - math.log(3)) < 1e-6
    big = nn.CrossEntropyLoss()(torch.tensor([[1e4, 0.0]]), torch.tensor([1]))
    assert big.item() == 1e4  # no overflow: logits, not probabilities


def test_layers_initialize_as_pytorch(rng):
    lin = nn.Linear(400, 50)
    bound = 1 / math.sqrt(400)
    w = lin.weight.numpy()
    assert w.shape == (50, 400) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound  # uniform in +-bound
    assert np.abs(lin.bias.numpy()).max() <= bound
    conv = nn.Conv2d(3, 8, 5)
    b = 1 / math.sqrt(3 * 25)
    assert conv.weight.shape == (8, 3, 5, 5) and np.abs(conv.weight.numpy()).max() <= b
    emb = nn.Embedding(1000, 20).weight.numpy()
    assert abs(emb.std() - 1) < 0.05
    assert nn.BatchNorm2d(4).running_var.numpy().tolist() == [1.0] * 4


def test_layer_modules_match_functional(rng):
    x = torch.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    conv = nn.Conv2d(3, 4, 3, padding=1)
    np.testing.assert_allclose(
        conv(x).numpy(),
        np_conv2d(x.numpy(), conv.weight.numpy(), conv.bias.numpy(), padding=1),
        rtol=1e-4,
        atol=1e-5,
    )
    lin = nn.Linear(6, 2, bias=False)
    assert lin.bias is None
    np.testing.assert_allclose(lin(x).numpy(), x.numpy() @ lin.weight.numpy().T, rtol=1e-5)


def test_nn_init(rng):
    w = torch.empty(200, 300)
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6 / 500)
    assert np.abs(w.numpy()).max() <= a
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 300)) < 0.01
    nn.init.zeros_(w)
    assert not w.numpy().any()
    nn.init.constant_(w, 0.5)
    assert (w.numpy() == 0.5).all()


# ---------------------------------------------------------------------------------------------
# modules


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 3)
        self.register_buffer("scale", torch.ones(3))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_module_registration_and_walks():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    assert len(list(m.parameters())) == 4 and len(list(m.children())) == 3
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "act", "fc2"]
    # PyTorch's order: a module's own parameters and buffers, then its children's
    assert list(m.state_dict()) == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert "(fc1): Linear(in_features=4, out_features=8, bias=True)" in repr(m)
    assert m.training and not m.eval().training and not m.fc1.training and m.train().fc2.training


def test_module_without_super_init_is_an_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)  # nosuper

    with pytest.raises(graphc.GraphcError, match="super\\(\\).__init__") as e:
        Bad()
    assert e.value.location.endswith(f"test_torch_front.py:{marker_line(HERE, 'nosuper')}")


def test_sequential_module_list_and_dict():
    seq = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.Tanh) and len(seq[:2]) == 2
    assert seq(torch.ones(4, 2)).shape == (4, 1)
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    ml.append(nn.Linear(2, 2))

    class Deep(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = ml
            self.heads = nn.ModuleDict({"a": nn.Linear(2, 1)})

        def forward(self, x):
            for layer in self.layers:
                x = torch.tanh(layer(x))
            return self.heads["a"](x)

    d = Deep()
    assert len(list(d.parameters())) == 10
    assert "layers.3.weight" in dict(d.named_parameters())
    assert d(torch.ones(5, 2)).shape == (5, 1)


def test_state_dict_save_load_roundtrip(tmp_path):
    m = TwoLayer()
    path = tmp_path / "model.pt"
    torch.save(m.state_dict(), path)
    m2 = TwoLayer()
    assert not np.array_equal(m2.fc1.weight.numpy(), m.fc1.weight.numpy())
    result = m2.load_state_dict(torch.load(path))
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = torch.randn(3, 4)
    np.testing.assert_array_equal(m2(x).numpy(), m(x).numpy())
    with pytest.raises(graphc.GraphcError, match="missing keys"):
        m2.load_state_dict({"fc1.weight": torch.zeros(8, 4)})
    with pytest.raises(graphc.GraphcError, match="shape"):
        m2.load_state_dict({**m.state_dict(), "fc1.bias": torch.zeros(3)})


def test_save_load_nested_structures(tmp_path):
    obj = {"epoch": 3, "names": ["a", "b"], "t": torch.tensor([1.0, 2.0]), 1: (torch.ones(2), 0.5)}
    torch.save(obj, tmp_path / "x.pt")
    back = torch.load(tmp_path / "x.pt")
    assert back["epoch"] == 3 and back["names"] == ["a", "b"]
    assert back["t"].numpy().tolist() == [1.0, 2.0] and back[1][1] == 0.5


def test_module_dtype_conversion_and_zero_grad():
    m = TwoLayer().double()
    assert m.fc1.weight.dtype == torch.float64
    m(torch.ones(2, 4, dtype=torch.float64)).sum().backward()
    assert m.fc1.weight.grad is not None
    m.zero_grad()
    assert m.fc1.weight.grad is None
    m(torch.ones(2, 4, dtype=torch.float64)).sum().backward()
    m.zero_grad(set_to_none=False)
    assert m.fc1.weight.grad.numpy().sum() == 0


# ---------------------------------------------------------------------------------------------
# optimizers against NumPy versions of PyTorch's update rules


def _quadratic_run(opt_cls, steps=3, **kw):
    a0 = np.array([1.0, -2.0, 3.0])
    b0 = np.array([[0.5, -1.0]])
    a, b = t64(a0), t64(b0)
    opt = opt_cls([a, b], **kw)
    for _ in range(steps):
        opt.zero_grad()
        loss = (a**2).sum() * 0.5 + (b**3).sum()
        loss.backward()
        opt.step()
    return a.numpy(), b.numpy(), a0, b0


def _grads(a, b):
    return a.copy(), 3 * b**2


def ref_sgd(a, b, steps, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    ps, bufs = [a.copy(), b.copy()], [None, None]
    for _ in range(steps):
        gs = _grads(*ps)
        for k in range(2):
            g = gs[k] + weight_decay * ps[k]
            if momentum:
                bufs[k] = g.copy() if bufs[k] is None else momentum * bufs[k] + g
                g = g + momentum * bufs[k] if nesterov else bufs[k]
            ps[k] = ps[k] - lr * g
    return ps


def ref_adam(a, b, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    ps = [a.copy(), b.copy()]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    for t in range(1, steps + 1):
        gs = _grads(*ps)
        for k in range(2):
            g = gs[k]
            if decoupled:
                ps[k] = ps[k] * (1 - lr * weight_decay)
            elif weight_decay:
                g = g + weight_decay * ps[k]
            m[k] = betas[0] * m[k] + (1 - betas[0]) * g
            v[k] = betas[1] * v[k] + (1 - betas[1]) * g * g
            mh = m[k] / (1 - betas[0] ** t)
            vh = v[k] / (1 - betas[1] ** t)
            ps[k] = ps[k] - lr * mh / (np.sqrt(vh) + eps)
    return ps


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.05, momentum=0.5, weight_decay=0.1),
    ],
)
def test_sgd_matches_pytorch_rule(kw):
    a, b, a0, b0 = _quadratic_run(optim.SGD, **kw)
    ra, rb = ref_sgd(a0, b0, 3, **kw)
    np.testing.assert_allclose(a, ra, rtol=1e-12)
    np.testing.assert_allclose(b, rb, rtol=1e-12)


@pytest.mark.parametrize(
    "cls, kw, decoupled",
    [
        (optim.Adam, dict(lr=0.01), False),
        (optim.Adam, dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1), False),
        (optim.AdamW, dict(lr=0.01), True),
        (optim.AdamW, dict(lr=0.01, weight_decay=0.2), True),
    ],
)
def test_adam_matches_pytorch_rule(cls, kw, decoupled):
    a, b, a0, b0 = _quadratic_run(cls, **kw)
    if cls is optim.AdamW:
        kw = {**kw, "weight_decay": kw.get("weight_decay", 0.01)}
    ra, rb = ref_adam(a0, b0, 3, decoupled=decoupled, **kw)
    np.testing.assert_allclose(a, ra, rtol=1e-10)
    np.testing.assert_allclose(b, rb, rtol=1e-10)


def test_optimizer_skips_parameters_without_gradients_and_saves_state():
    a, b = t64([1.0]), t64([2.0])
    opt = optim.Adam([a, b], lr=0.1)
    (a * 3).sum().backward()
    opt.step()
    assert b.numpy().tolist() == [2.0] and a.numpy()[0] < 1.0
    sd = opt.state_dict()
    assert sd["state"][0]["step"].item() == 1 and 1 not in sd["state"]
    opt2 = optim.Adam([a, b], lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.1 and opt2.state[a]["step"].item() == 1


def test_learning_rate_changes_do_not_recompile():
    w = t64([1.0, 2.0])
    opt = optim.SGD([w], lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        sched.step()
    before = torch.cache_info()
    opt.zero_grad()
    (w * w).sum().backward()
    opt.step()
    after = torch.cache_info()
    assert after.misses == before.misses and opt.param_groups[0]["lr"] == 0.025


# ---------------------------------------------------------------------------------------------
# the lazy engine: one compile per structure


def _digits_batches(batch=32):
    (x, y), (xt, yt) = graphc.data.digits()
    return x, y, xt, yt


def test_training_loop_compiles_once_then_hits_the_cache(compiled):
    rng = np.random.default_rng(1)
    xs = rng.random((6, 16, 64), dtype=np.float32)
    ys = rng.integers(0, 10, (6, 16))
    model = nn.Sequential(nn.Linear(64, 37), nn.ReLU(), nn.Linear(37, 10))  # sizes of its own
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = torch.cache_info()
    losses = []
    for x, y in zip(xs, ys, strict=True):
        opt.zero_grad()
        loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = torch.cache_info()
    assert after.realizations - before.realizations == 6  # one per step: at optimizer.step()
    assert after.misses - before.misses == 1
    assert after.compiles - before.compiles == 1
    assert after.hits - before.hits == 5
    assert engine.last.runs >= 5


def test_plain_loop_matches_numpy_training(compiled, rng):
    x = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = nn.Linear(5, 3)
    W, b = model.weight.numpy().astype(np.float64), model.bias.numpy().astype(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.5)
    for _ in range(4):
        opt.zero_grad()
        F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
        z = x @ W.T + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(8), y] -= 1
        p /= 8
        W, b = W - 0.5 * p.T @ x, b - 0.5 * p.sum(0)
    np.testing.assert_allclose(model.weight.numpy(), W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.bias.numpy(), b, rtol=1e-4, atol=1e-5)


def test_the_cache_keeps_no_value_of_the_run_that_compiled_it():
    import gc
    import weakref

    a = np.ones((3, 5), np.float32)
    ref = weakref.ref(a)
    t = torch.from_numpy(a)
    assert (t * 2 + 1).sum().item() == 45.0
    del a, t
    gc.collect()
    assert ref() is None


def test_debug_reports_each_realization(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_DEBUG", "1")
    x = torch.tensor([1.0, 2.0]) * 3
    x.sum().item()  # debugline
    err = capsys.readouterr().err
    assert "[graphc.torch] realize (.item())" in err
    assert f"test_torch_front.py:{marker_line(HERE, 'debugline')}" in err


def test_realization_is_one_graph_with_forward_backward_and_update():
    w = t64([1.0, 2.0])
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    ops = {n.op for n in engine.last.graph.equations}
    assert "integer_pow" in ops or "mul" in ops
    assert len(engine.last.graph.outputs) >= 2  # the new w and its gradient


# ---------------------------------------------------------------------------------------------
# compile: capture and replay


def _compiled_setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, step


def test_compile_replays_the_step_exactly_as_the_plain_loop(compiled):
    rng = np.random.default_rng(3)
    data = [
        (
            torch.from_numpy(rng.random((5, 6), dtype=np.float32)),
            torch.from_numpy(rng.integers(0, 3, 5)),
        )
        for _ in range(5)
    ]
    plain_model, plain = _compiled_setup()
    torch.manual_seed(7)
    plain_losses = [plain(x, y).item() for x, y in data]
    comp_model, step = _compiled_setup()
    cstep = torch.compile(step)
    torch.manual_seed(7)
    comp_losses = [cstep(x, y).item() for x, y in data]
    np.testing.assert_allclose(comp_losses, plain_losses, rtol=1e-6)
    for p, q in zip(plain_model.parameters(), comp_model.parameters(), strict=True):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6)
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert cstep.captures[-1].startswith("captured")
    before = torch.cache_info().realizations
    cstep(*data[0])
    assert torch.cache_info().realizations == before  # a replay runs no Python of the step


def test_compile_recaptures_when_shapes_change(compiled):
    _, step = _compiled_setup()
    cstep = torch.compile(step)
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    for _ in range(3):
        cstep(x, y)
    cstep(torch.randn(2, 6), torch.randint(0, 3, (2,)))
    assert any("argument 0 shape (4, 6) -> (2, 6)" in c for c in cstep.captures)


def test_compile_warns_about_python_reading_values(compiled):
    w = torch.tensor([1.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)

    @torch.compile
    def step():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        opt.step()
        return loss.item()

    step()
    with pytest.warns(UserWarning, match="reads tensor values in Python"):
        step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step()


def test_compile_of_a_module_returns_it():
    m = nn.Linear(2, 2)
    assert torch.compile(m) is m


# ---------------------------------------------------------------------------------------------
# looking at what was recorded


def test_graph_is_the_recorded_ir_with_parameter_names():
    m = TwoLayer()
    dict(m.named_parameters())
    loss = m(torch.ones(2, 4)).sum()
    g = torch.graph(loss)
    assert isinstance(g, graphc.Graph)
    names = {n.meta.name for n in g.inputs}
    assert {"fc1.weight", "fc2.bias"} <= names
    assert any(n.meta.scope == "fc1" for n in g.equations)
    joint = torch.graph(loss, backward=True)
    assert "grad_of" in joint.info and len(joint.info["wrt"]) == 4
    graphc.verify(joint)


def test_viz_draws_forward_and_backward(tmp_path):
    m = TwoLayer()
    dict(m.named_parameters())
    loss = m(torch.ones(2, 4)).sum()
    out = tmp_path / "loss.dot"
    src = torch.viz(loss, out)
    dot = out.read_text()
    assert "fc1.weight" in dot and "grad" in dot and dot == src.source


def test_lowered_shows_the_last_realization(compiled):
    x = torch.ones(3) * 2
    x.sum().item()
    low = torch.lowered()
    assert "def run(" in low.source and low.traced is engine.last.graph


# ---------------------------------------------------------------------------------------------
# errors name the user's line


def test_shape_errors_name_the_users_line():
    a, b = torch.ones(2, 3), torch.ones(4, 5)
    with pytest.raises(graphc.GraphcError) as e:
        a @ b  # matmul shapes
    assert e.value.location.endswith(f"test_torch_front.py:{marker_line(HERE, 'matmul shapes')}")
    with pytest.raises(graphc.GraphcError) as e:
        torch.ones(3).view(2, 2)  # view shapes
    assert e.value.location.endswith(f"test_torch_front.py:{marker_line(HERE, 'view shapes')}")


def test_cuda_is_not_available_and_cpu_is_a_no_op():
    assert not torch.cuda.is_available()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.ones(2).to(dev)
    assert x.device == "cpu"
    with pytest.raises(graphc.GraphcError, match="CPU"):
        x.to("cuda")


def test_data_loader_batches_and_shuffles():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    ds = torch.utils.data.TensorDataset(x, y)
    batches = list(torch.utils.data.DataLoader(ds, batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert batches[0][1].numpy().tolist() == [0, 1, 2, 3]
    shuffled = list(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, drop_last=True))
    assert len(shuffled) == 2
    seen = np.concatenate([b[1].numpy() for b in shuffled])
    assert len(set(seen.tolist())) == 8 and seen.tolist() != list(range(8))


def test_values_computed_under_no_grad_are_constants_for_backward():
    w = t64([1.0, 2.0])
    with torch.no_grad():
        c = w * 2  # pending, recorded without grad
    (w * c).sum().backward()
    assert w.grad.numpy().tolist() == [2.0, 4.0]  # d/dw (w * c) with c constant


# ---------------------------------------------------------------------------------------------
# the examples (the article's programs, with only their imports changed)


def test_example_scalars(compiled, capsys):
    import runpy

    runpy.run_path(os.path.join(os.path.dirname(HERE), "..", "examples", "torch_style_scalars.py"))
    out = capsys.readouterr().out
    assert "df/da = -153284.83150602" in out and "df/db = 3815.03894415" in out


def test_example_simplenet_learns(compiled):
    import torch_style_simplenet

    assert torch_style_simplenet.main(epochs=3) > 0.6


def test_example_convnet_learns_plain_and_compiled(compiled):
    import torch_style_convnet

    assert torch_style_convnet.main(["--epochs", "3"]) > 0.9
    assert torch_style_convnet.main(["--epochs", "1", "--compile"]) > 0.7


def test_example_simplenn_trains_saves_and_loads(compiled, tmp_path, capsys):
    import torch_style_simplenn

    assert torch_style_simplenn.main(str(tmp_path / "m.pth"), num_epochs=2) > 50
    assert "gives the same outputs: True" in capsys.readouterr().out


def test_hand_written_training_loop_learns_and_reuses_its_executables(compiled):
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((32, 3)), dtype=torch.float32)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.25
    W = torch.zeros(3, 1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    before = torch.cache_info()
    for t in range(60):
        loss = ((x @ W + b - y) ** 2).mean()
        if t % 20 == 19:
            assert loss.item() < 1.0  # a split: the forward realized before backward
        loss.backward()
        with torch.no_grad():
            W -= 0.1 * W.grad
            b -= 0.1 * b.grad
            W.grad.zero_()
            b.grad.zero_()
    after = torch.cache_info()
    np.testing.assert_allclose(W.numpy().ravel(), [1.0, -2.0, 0.5], atol=1e-2)
    assert abs(b.item() - 0.25) < 1e-2
    # each realization is one of a few structures (the first step, the steps with a print,
    # the others), compiled once each
    assert after.misses - before.misses <= 4
    assert after.hits - before.hits >= 55
