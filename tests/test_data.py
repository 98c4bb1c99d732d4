"""graphc.data: the MNIST IDX reader (on small files the tests write), scikit-learn's digits,
minibatches."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import graphc
from graphc import data


def write_mnist(directory, n_train=5, n_test=3, gz=False, seed=0):
    r = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": r.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": r.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": r.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": r.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        data.write_idx(directory / (name + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path, gz):
    raw = write_mnist(tmp_path, gz=gz)
    (x, y), (xt, yt) = data.mnist(tmp_path)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert xt.shape == (3, 1, 28, 28) and y.dtype == np.int64 and yt.shape == (3,)
    np.testing.assert_allclose(x[:, 0], raw["train-images-idx3-ubyte"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, raw["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(yt, raw["t10k-labels-idx1-ubyte"])
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.flags.writeable and y.flags.writeable
    xs, ys = data.mnist(tmp_path, split="test")
    np.testing.assert_array_equal(xs, xt)


def test_idx_header_by_hand(tmp_path):
    # magic 0x00000801 (ubyte, 1 dim), 3 items, big-endian
    p = tmp_path / "labels"
    p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 9]))
    np.testing.assert_array_equal(data.read_idx(p), [7, 1, 9])
    # gzip detected by magic bytes, not only by the suffix
    q = tmp_path / "labels-compressed"
    q.write_bytes(gzip.compress(p.read_bytes()))
    np.testing.assert_array_equal(data.read_idx(q), [7, 1, 9])
    # other dtypes round-trip (big-endian on disk, native in memory)
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    data.write_idx(tmp_path / "f.idx", a)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "f.idx"), a)


def test_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(graphc.GraphcError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(graphc.GraphcError, match="header says shape"):
        data.read_idx(tmp_path / "short")
    with pytest.raises(graphc.GraphcError, match="not found"):
        data.mnist(tmp_path)
    write_mnist(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(graphc.GraphcError, match="do not fit together"):
        data.mnist(tmp_path, split="test")


def test_digits_split_is_deterministic():
    (x, y), (xt, yt) = data.digits(test_fraction=0.2, seed=0)
    assert x.shape == (1437, 1, 8, 8) and xt.shape == (360, 1, 8, 8)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 == min(x.min(), xt.min()) and max(x.max(), xt.max()) == 1.0
    assert set(np.unique(y)) == set(range(10))
    (x2, y2), (xt2, yt2) = data.digits(test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(yt, yt2)
    (_, y3), _ = data.digits(test_fraction=0.2, seed=1)
    assert not np.array_equal(y, y3)
    (xa, _), (xb, _) = data.digits(test_fraction=0.5)
    assert len(xa) + len(xb) == 1797


def test_batches():
    x, y = np.arange(10), np.arange(10) * 2
    bs = list(data.batches(x, y, batch_size=4, seed=0))
    assert [len(b[0]) for b in bs] == [4, 4]  # the short batch is dropped
    for bx, by in bs:
        np.testing.assert_array_equal(by, bx * 2)
    assert [len(b[0]) for b in data.batches(x, y, batch_size=4, drop_last=False)] == [4, 4, 2]
    np.testing.assert_array_equal(next(data.batches(x, batch_size=3, shuffle=False))[0], [0, 1, 2])
    with pytest.raises(graphc.GraphcError, match="different lengths"):
        next(data.batches(x, y[:3], batch_size=2))
