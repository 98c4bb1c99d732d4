"""Small datasets for examples and tests: MNIST from its IDX files, scikit-learn's bundled
8x8 digits, a public-domain text shipped with graphc, and a minibatch iterator.

Example:
    >>> (x_train, y_train), (x_test, y_test) = graphc.data.digits()
    >>> x_train.shape, x_train.dtype, y_train.dtype
    ((1437, 1, 8, 8), dtype('float32'), dtype('int64'))
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from graphc.ir import GraphcError

__all__ = ["batches", "digits", "mnist", "read_idx", "text_corpus", "write_idx"]

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed: by a ".gz" suffix or its magic bytes)
    into a writable array of its stored dtype and shape.

    Example:
        >>> read_idx("mnist/train-labels-idx1-ubyte").shape
        (60000,)
    """
    p = os.fspath(path)
    with open(p, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise GraphcError(f"{p} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    start = 4 + 4 * ndim
    n = int(np.prod(shape, dtype=np.int64))
    if len(raw) - start != n * dtype.itemsize:
        raise GraphcError(
            f"{p}: header says shape {shape} ({n * dtype.itemsize} bytes of data) "
            f"but the file has {len(raw) - start} bytes of data"
        )
    # np.frombuffer views read-only bytes; copy into a writable, native-endian array
    return np.frombuffer(raw, dtype, n, start).astype(dtype.newbyteorder("=")).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` (uint8, int8, int16, int32, float32 or float64) as an IDX file, gzipped if
    `path` ends in ".gz" (used by the tests to make small MNIST-like files)."""
    a = np.asarray(array)
    codes = {
        np.dtype(np.uint8): 0x08,
        np.dtype(np.int8): 0x09,
        np.dtype(np.int16): 0x0B,
        np.dtype(np.int32): 0x0C,
        np.dtype(np.float32): 0x0D,
        np.dtype(np.float64): 0x0E,
    }
    if a.dtype not in codes:
        raise GraphcError(f"write_idx: unsupported dtype {a.dtype}")
    head = bytes([0, 0, codes[a.dtype], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    data = head + a.astype(a.dtype.newbyteorder(">")).tobytes()
    p = os.fspath(path)
    with open(p, "wb") as f:
        f.write(gzip.compress(data) if p.endswith(".gz") else data)


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory: str, name: str) -> str:
    alt = name.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for cand in (name, name + ".gz", alt, alt + ".gz"):
        p = os.path.join(directory, cand)
        if os.path.exists(p):
            return p
    raise GraphcError(f"mnist: {name}[.gz] not found in {directory}")


def _mnist_split(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_name, lab_name = _MNIST_FILES[split]
    images = read_idx(_find(directory, img_name))
    labels = read_idx(_find(directory, lab_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise GraphcError(
            f"mnist: {split} images {images.shape} and labels {labels.shape} do "
            "not fit together (expected (N, H, W) and (N,))"
        )
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    return x, labels.astype(np.int64)


def mnist(path: str | os.PathLike, split: str | None = None) -> Any:
    """MNIST from the directory `path` holding the four IDX files (`train-images-idx3-ubyte`,
    `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each
    optionally `.gz`). Images are float32 in [0, 1] of shape (N, 1, 28, 28), labels int64.

    Returns `((x_train, y_train), (x_test, y_test))`, or one `(x, y)` pair with
    `split="train"` or `split="test"`.

    Example:
        >>> (x, y), (xt, yt) = graphc.data.mnist("~/data/mnist")
    """
    d = os.path.expanduser(os.fspath(path))
    if split is None:
        return _mnist_split(d, "train"), _mnist_split(d, "test")
    if split not in _MNIST_FILES:
        raise GraphcError(f"mnist: split must be 'train', 'test' or None, got {split!r}")
    return _mnist_split(d, split)


def digits(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's bundled 8x8 digits (1797 images, no download) as float32 images in
    [0, 1] of shape (N, 1, 8, 8) and int64 labels, split into train and test sets by a
    permutation drawn from `seed` (deterministic).

    Example:
        >>> (x, y), (xt, yt) = graphc.data.digits(test_fraction=0.2, seed=0)
        >>> len(x), len(xt)
        (1437, 360)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover
        raise GraphcError("digits() needs scikit-learn: pip install scikit-learn") from None
    if not 0 < test_fraction < 1:
        raise GraphcError(f"test_fraction must be in (0, 1), got {test_fraction}")
    d = load_digits()
    x = (np.asarray(d.images, np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(d.target, np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(np.ceil(len(x) * test_fraction))  # as sklearn's train_test_split
    test, train = perm[:n_test], perm[n_test:]
    return (x[train], y[train]), (x[test], y[test])


_CORPUS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
_CORPORA = {"genesis": "genesis.txt"}


def text_corpus(name: str = "genesis") -> str:
    """A public-domain English text shipped with graphc (no download), for character-level
    language models. `"genesis"`: the Book of Genesis, chapters 1 to 15, King James Version
    (about 46 KB of ASCII, 70 distinct characters).

    Example:
        >>> text = graphc.data.text_corpus()
        >>> text.splitlines()[5]
        'In the beginning God created the heaven and the earth. And the earth was'
    """
    if name not in _CORPORA:
        raise GraphcError(f"text_corpus: unknown text {name!r} (known: {', '.join(_CORPORA)})")
    with open(os.path.join(_CORPUS_DIR, _CORPORA[name]), encoding="ascii") as f:
        return f.read()


def batches(
    *arrays: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: Any = None,
    drop_last: bool = True,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Minibatches of equal-length arrays, reshuffled per call when `shuffle` (from `seed`, an
    int or a np.random.Generator). `drop_last` (the default) skips a final short batch, so
    every batch has one shape and a compiled train step is reused.

    Example:
        >>> for xb, yb in batches(x, y, batch_size=64, seed=epoch):
        ...     model, opt_state, loss = step(model, opt_state, xb, yb)
    """
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise GraphcError("batches: the arrays have different lengths")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i : i + batch_size]
        yield tuple(a[idx] for a in arrays)
