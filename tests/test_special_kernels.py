"""graphc.codegen.special: every compiled kernel against its op's NumPy reference.

Shapes are free (kernels compile once per dtype), so the cases cover strides 1 and 2, paddings
0 and 1, odd and non-square sizes, kernels larger than 2, windows that overlap or leave gaps,
ties and NaNs in max-pool windows, repeated and negative indices. Each case runs in float32 and
float64; other dtypes must fall through to the reference unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphc.codegen import runtime, special
from graphc.codegen.special import KERNELS
from graphc.ops import REGISTRY

FLOATS = [np.float32, np.float64]


def ref(op, *args, **attrs):
    return REGISTRY[op].impl(*args, **attrs)


def check(op, *args, exact=False, **attrs):
    """KERNELS[op] agrees with the reference and returns a fresh C-contiguous array."""
    want = ref(op, *args, **attrs)
    got = KERNELS[op](*args, **attrs)
    assert isinstance(got, np.ndarray) and got.flags.c_contiguous
    assert got.shape == want.shape and got.dtype == want.dtype
    assert not any(np.shares_memory(got, a) for a in args if isinstance(a, np.ndarray))
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        rtol = 1e-5 if got.dtype == np.float32 else 1e-12
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)
    return got


@pytest.fixture(params=["serial", "threads"])
def threads(request, monkeypatch):
    """Run each test once on one thread and once split into chunks on three threads (chunk
    boundaries inside the batch, partial weight gradients summed)."""
    if request.param == "threads":
        monkeypatch.setattr(runtime, "N_THREADS", 3)
        monkeypatch.setattr(special, "_PAR_MIN_MACS", 0)
        monkeypatch.setattr(special, "_PAR_MIN_ELEMS", 0)
    else:
        monkeypatch.setattr(runtime, "N_THREADS", 1)
    return request.param


# -- convolution --------------------------------------------------------------------------------

# (N, C, H, W), (O, KH, KW), stride, padding
CONV_CASES = [
    ((2, 3, 8, 8), (4, 3, 3), (1, 1), (0, 0)),
    ((3, 2, 9, 7), (5, 3, 2), (2, 1), (1, 0)),
    ((2, 3, 8, 9), (5, 2, 3), (1, 2), (0, 1)),
    ((5, 4, 11, 11), (3, 3, 3), (2, 2), (1, 1)),
    ((4, 1, 12, 10), (8, 5, 5), (1, 1), (2, 2)),  # C=1: the single-row paths
    ((2, 17, 6, 5), (1, 1, 1), (1, 1), (0, 0)),  # 1×1 kernel, one output channel
    ((1, 2, 4, 4), (3, 4, 4), (1, 1), (0, 0)),  # kernel covers the image: 1×1 output
    ((3, 2, 6, 7), (2, 2, 2), (3, 2), (1, 1)),  # stride larger than the kernel
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xs, ws, stride, padding", CONV_CASES)
def test_conv_ops(xs, ws, stride, padding, dtype, threads):
    rng = np.random.default_rng(hash((xs, ws, stride, padding)) % 2**32)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((ws[0], xs[1]) + ws[1:]).astype(dtype)
    y = check("conv2d", x, w, stride=stride, padding=padding)
    g = rng.standard_normal(y.shape).astype(dtype)
    check("conv2d_input_grad", g, w, stride=stride, padding=padding, in_hw=xs[2:])
    check("conv2d_weight_grad", x, g, stride=stride, padding=padding, kernel_hw=ws[1:])


@pytest.mark.parametrize("dtype", FLOATS)
def test_conv_convnet_shapes(dtype, threads):
    """The seed ConvNet's two layers, batch 64, forward and both gradients."""
    rng = np.random.default_rng(1)
    s = {"stride": (1, 1), "padding": (0, 0)}
    for xs, ws in [((64, 1, 28, 28), (8, 1, 3, 3)), ((64, 8, 13, 13), (16, 8, 3, 3))]:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        y = check("conv2d", x, w, **s)
        g = rng.standard_normal(y.shape).astype(dtype)
        check("conv2d_input_grad", g, w, in_hw=xs[2:], **s)
        check("conv2d_weight_grad", x, g, kernel_hw=ws[2:], **s)


def test_conv_views_and_special_values():
    """Non-contiguous operands, integer attributes; NaN and inf propagate as in NumPy."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 10, 9)).astype(np.float32)[:, ::2, ::-1]  # a strided view
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32).transpose(0, 1, 3, 2)
    s = {"stride": (1, 1), "padding": (1, 1)}
    y = check("conv2d", x, w, **s)
    np.testing.assert_array_equal(KERNELS["conv2d"](x, w, stride=1, padding=1), y)
    g = np.asfortranarray(rng.standard_normal(y.shape).astype(np.float32))
    check("conv2d_input_grad", g, w, in_hw=(10, 9), **s)
    check("conv2d_weight_grad", x, g, kernel_hw=(3, 3), **s)
    x = np.ascontiguousarray(x)
    x[0, 0, 4, 4] = np.nan
    x[1, 1, 0, 0] = np.inf
    got = KERNELS["conv2d"](x, w, **s)
    want = ref("conv2d", x, w, **s)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


def test_conv_empty_and_fallbacks():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((0, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    y = check("conv2d", x, w, stride=(1, 1), padding=(0, 0))
    check("conv2d_input_grad", y, w, stride=(1, 1), padding=(0, 0), in_hw=(5, 5))
    check("conv2d_weight_grad", x, y, stride=(1, 1), padding=(0, 0), kernel_hw=(3, 3), exact=True)
    # float16 and mixed dtypes run the reference
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float16)
    check("conv2d", x, w.astype(np.float16), stride=(1, 1), padding=(0, 0), exact=True)
    check("conv2d", x.astype(np.float64), w, stride=(1, 1), padding=(0, 0))


# -- pooling ------------------------------------------------------------------------------------

# (N, C, H, W), kernel, stride
POOL_CASES = [
    ((2, 3, 8, 8), (2, 2), (2, 2)),
    ((3, 2, 11, 11), (2, 2), (2, 2)),  # odd: last row and column unused
    ((2, 3, 9, 7), (3, 2), (2, 1)),  # overlapping windows
    ((2, 2, 7, 8), (3, 3), (1, 1)),
    ((2, 2, 9, 9), (2, 2), (3, 3)),  # gaps between windows
    ((1, 1, 1, 5), (1, 2), (1, 2)),
]


def _tied(rng, shape, dtype):
    """Values from a small set: most windows hold ties, some of them between 0.0 and -0.0."""
    x = rng.integers(-2, 3, shape).astype(dtype)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, 0.0, -0.0)
    return x


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, kernel, stride", POOL_CASES)
def test_pool_ops(shape, kernel, stride, dtype, threads):
    rng = np.random.default_rng(hash((shape, kernel, stride)) % 2**32)
    a = {"kernel": kernel, "stride": stride}
    for x in (rng.standard_normal(shape).astype(dtype), _tied(rng, shape, dtype)):
        y = check("max_pool2d", x, exact=True, **a)
        g = rng.standard_normal(y.shape).astype(dtype)
        check("max_pool2d_grad", x, g, exact=True, **a)
        check("max_pool2d_select", x, rng.standard_normal(shape).astype(dtype), exact=True, **a)
        check("avg_pool2d", x, **a)
        check("avg_pool2d_grad", g, in_hw=shape[2:], exact=True, **a)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kernel, stride", [((2, 2), (2, 2)), ((3, 2), (1, 2))])
def test_max_pool_nan_and_inf(kernel, stride, dtype, threads):
    """A NaN is every window's maximum and the first NaN receives the gradient (np.argmax);
    infinities are ordinary values."""
    rng = np.random.default_rng(4)
    x = _tied(rng, (2, 3, 9, 8), dtype)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, 12, replace=False)] = np.nan
    flat[rng.choice(flat.size, 6, replace=False)] = np.inf
    flat[rng.choice(flat.size, 6, replace=False)] = -np.inf
    a = {"kernel": kernel, "stride": stride}
    y = check("max_pool2d", x, exact=True, **a)
    g = rng.standard_normal(y.shape).astype(dtype)
    check("max_pool2d_grad", x, g, exact=True, **a)
    check("max_pool2d_select", x, rng.standard_normal(x.shape).astype(dtype), exact=True, **a)


@pytest.mark.parametrize("dtype", FLOATS)
def test_pool_convnet_shapes(dtype, threads):
    rng = np.random.default_rng(5)
    a = {"kernel": (2, 2), "stride": (2, 2)}
    for shape in [(64, 8, 26, 26), (64, 16, 11, 11)]:
        x = rng.standard_normal(shape).astype(dtype)
        y = check("max_pool2d", x, exact=True, **a)
        check("max_pool2d_grad", x, rng.standard_normal(y.shape).astype(dtype), exact=True, **a)


def test_pool_views_and_fallbacks():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 10, 12)).astype(np.float32)[:, :, ::-1, ::2]
    a = {"kernel": (2, 2), "stride": (2, 2)}
    y = check("max_pool2d", x, exact=True, **a)
    np.testing.assert_array_equal(KERNELS["max_pool2d"](x, kernel=2, stride=2), y)
    check(
        "max_pool2d_grad", x, y.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2), exact=True, **a
    )
    check("avg_pool2d", x, **a)
    x16 = x.astype(np.float16)
    y16 = check("max_pool2d", x16, exact=True, **a)
    check("max_pool2d_grad", x16, y16, exact=True, **a)
    check("avg_pool2d_grad", y16, in_hw=(10, 6), exact=True, **a)
    check("max_pool2d", np.zeros((0, 2, 4, 4), np.float32), exact=True, **a)
    # (the reference's argmax cannot reshape an empty batch; the answer is an empty batch)
    got = KERNELS["max_pool2d_grad"](np.zeros((0, 2, 4, 4)), np.zeros((0, 2, 2, 2)), **a)
    assert got.shape == (0, 2, 4, 4) and got.dtype == np.float64


# -- gather / scatter_add -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_gather(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 5, 6)).astype(dtype)
    check("gather", x, np.array([0, -1, 3, 3, -5]), axis=1, exact=True)
    check("gather", x, np.array([[0], [3]], np.int32), np.array([1, -2, 5]), axis=1, exact=True)
    check("gather", x, np.arange(4), np.array([1, 2, 0, 4], np.uint8), axis=0, exact=True)
    check("gather", x, np.array(2), axis=2, exact=True)  # 0-d index
    check("gather", x, np.array([], np.int64), axis=0, exact=True)
    check("gather", x, np.array([1, 0]), np.array([4, 4]), np.array([-6, 5]), axis=0, exact=True)
    check("gather", x[:, ::2].transpose(2, 1, 0), np.array([[2, 1], [0, -1]]), axis=1, exact=True)
    # the loss pattern: log-probabilities at the labels
    logp = rng.standard_normal((64, 10)).astype(dtype)
    check("gather", logp, np.arange(64), rng.integers(0, 10, 64), axis=0, exact=True)


@pytest.mark.parametrize("dtype", FLOATS)
def test_scatter_add(dtype):
    rng = np.random.default_rng(8)
    u = rng.standard_normal((4, 7, 6)).astype(dtype)
    idx = np.array([0, -1, 3, 3, 0, -4, 3])  # repeated and negative: contributions add up
    check("scatter_add", u, idx, axis=1, shape=(4, 4, 6), exact=True)
    u = rng.standard_normal((5,)).astype(dtype)
    check(
        "scatter_add",
        u,
        np.array([1, 1, 3, 1, 0]),
        np.array([-1, 2, 2, 4, -1], np.int32),
        axis=0,
        shape=(4, 5),
        exact=True,
    )
    u = rng.standard_normal((3, 2, 2)).astype(dtype)
    check(
        "scatter_add",
        u,
        np.array([[1], [1]]),
        np.array([0, 0]),
        axis=1,
        shape=(3, 2, 1),
        exact=True,
    )
    g = rng.standard_normal(64).astype(dtype)
    check(
        "scatter_add", g, np.arange(64), rng.integers(0, 10, 64), axis=0, shape=(64, 10), exact=True
    )
    check(
        "scatter_add",
        np.zeros((2, 0), dtype),
        np.array([], np.int64),
        axis=1,
        shape=(2, 3),
        exact=True,
    )


@pytest.mark.parametrize("op", ["gather", "scatter_add"])
@pytest.mark.parametrize("bad", [5, -6, 100])
def test_index_out_of_range_raises(op, bad):
    x = np.zeros((3, 5), np.float32)
    idx = np.array([0, bad, 1])
    if op == "gather":
        args, attrs = (x, idx), {"axis": 1}
    else:
        args, attrs = (np.ones((3, 3), np.float32), idx), {"axis": 1, "shape": (3, 5)}
    with pytest.raises(IndexError):
        ref(op, *args, **attrs)
    with pytest.raises(IndexError, match=f"index {bad} is out of bounds for axis 1 with size 5"):
        KERNELS[op](*args, **attrs)


def test_gather_scatter_fallbacks():
    """Integer data, boolean masks and index arrays that do not broadcast go to the reference
    (which raises NumPy's own error)."""
    x = np.arange(20).reshape(4, 5)
    check("gather", x, np.array([3, -1]), axis=0, exact=True)
    xf = x.astype(np.float32)
    check("gather", xf, np.array([True, False, True, False]), axis=0, exact=True)
    with pytest.raises(IndexError):
        KERNELS["gather"](xf, np.array([0, 1]), np.array([0, 1, 2]), axis=0)
    check(
        "scatter_add", np.ones(3, np.float16), np.array([1, 1, 2]), axis=0, shape=(4,), exact=True
    )


def test_kernel_table_covers_the_ops():
    assert set(KERNELS) == {
        "conv2d",
        "conv2d_input_grad",
        "conv2d_weight_grad",
        "max_pool2d",
        "max_pool2d_grad",
        "max_pool2d_select",
        "avg_pool2d",
        "avg_pool2d_grad",
        "gather",
        "scatter_add",
        "cumsum",
        "cumprod",
        "argsort",
    }
    assert all(op in REGISTRY for op in KERNELS)


# -- result memory ------------------------------------------------------------------------------


def test_results_recycle_only_unreferenced_memory(monkeypatch):
    """Large results reuse the memory of earlier results once nothing refers to them, and never
    while the array or any view of it is alive."""
    monkeypatch.setattr(special, "_recycled", [])
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 8, 32, 32)).astype(np.float32)  # 128 KB results
    g = rng.standard_normal((4, 8, 16, 16)).astype(np.float32)
    a = {"kernel": (2, 2), "stride": (2, 2)}
    want = ref("max_pool2d_grad", x, g, **a)
    first = KERNELS["max_pool2d_grad"](x, g, **a)
    second = KERNELS["max_pool2d_grad"](x, g, **a)
    assert not np.shares_memory(first, second)
    view = first[1:, ::2]
    address = first.__array_interface__["data"][0]
    del first
    third = KERNELS["max_pool2d_grad"](x, 2 * g, **a)
    assert not np.shares_memory(third, view) and not np.shares_memory(third, second)
    np.testing.assert_array_equal(view, want[1:, ::2])  # untouched by the later calls
    del view
    fourth = KERNELS["max_pool2d_grad"](x, 3 * g, **a)
    assert fourth.__array_interface__["data"][0] == address  # reused once unreferenced
    np.testing.assert_array_equal(fourth, ref("max_pool2d_grad", x, 3 * g, **a))
    np.testing.assert_array_equal(second, want)
    np.testing.assert_array_equal(third, ref("max_pool2d_grad", x, 2 * g, **a))
    # scatter_add's recycled result starts from zeros
    u = rng.standard_normal((5, 3, 2048)).astype(np.float32)
    del fourth, second, third
    for _ in range(3):
        check("scatter_add", u, np.array([1, 1, 0]), axis=1, shape=(5, 4, 2048), exact=True)


def test_concurrent_calls():
    """Callers on several threads get correct, distinct results."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(10)
    s = {"stride": (1, 1), "padding": (0, 0)}
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    xs = [rng.standard_normal((8, 3, 20, 20)).astype(np.float32) for _ in range(12)]
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda x: KERNELS["conv2d"](x, w, **s), xs))
    for x, y in zip(xs, outs, strict=True):
        np.testing.assert_allclose(y, ref("conv2d", x, w, **s), rtol=1e-5, atol=1e-4)
    assert not any(np.shares_memory(a, b) for i, a in enumerate(outs) for b in outs[i + 1 :])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((7,), 0), ((3, 5), 0), ((3, 5), 1), ((2, 3, 4), 1)])
def test_cumsum_kernel_is_bit_equal_to_numpy(shape, axis, dtype):
    rng = np.random.default_rng(len(shape) + axis)
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    got = KERNELS["cumsum"](x, axis=axis)
    np.testing.assert_array_equal(got, np.cumsum(x, axis=axis))
    view = np.swapaxes(x, 0, -1)  # a non-contiguous operand
    np.testing.assert_array_equal(KERNELS["cumsum"](view, axis=0), np.cumsum(view, axis=0))
    x[(0,) * x.ndim] = np.nan  # NaN and inf run on, as in NumPy
    np.testing.assert_array_equal(KERNELS["cumsum"](x, axis=axis), np.cumsum(x, axis=axis))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((9,), 0), ((4, 6), 0), ((4, 6), 1), ((2, 5, 3), 1)])
def test_cumprod_and_argsort_kernels_equal_numpy(shape, axis, dtype):
    rng = np.random.default_rng(3 * len(shape) + axis)
    x = rng.uniform(0.5, 1.5, shape).astype(dtype)
    np.testing.assert_array_equal(KERNELS["cumprod"](x, axis=axis), np.cumprod(x, axis=axis))
    t = rng.integers(0, 4, shape).astype(dtype)  # ties, NaN and -inf: stable order, NaN last
    t.flat[:: max(1, t.size // 3)] = np.nan
    t.flat[1] = -np.inf
    got = KERNELS["argsort"](t, axis=axis)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.argsort(t, axis=axis, kind="stable"))


def test_cumsum_kernel_leaves_other_dtypes_to_numpy():
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    np.testing.assert_array_equal(KERNELS["cumsum"](x, axis=1), np.cumsum(x, axis=1))
    e = np.zeros((0, 3), np.float32)
    assert KERNELS["cumsum"](e, axis=0).shape == (0, 3)
