"""Counter-based random numbers for `graphc.nn`: a key is a uint64 array of shape (), and
every random number is a hash of a key and a position in uint64 arithmetic, so the numbers
trace into graphs and come out identically in NumPy and in compiled code. Dropout draws its
masks from here.

Example:
    >>> from graphc import nn
    >>> k1, k2 = nn.split(nn.key(0))
    >>> nn.uniform(k1, (2, 3)).shape
    (2, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc import numpy as gnp

__all__ = ["bernoulli", "fold_in", "key", "split", "uniform"]

_K = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93)


def _u64(x: Any) -> Any:
    return gnp.astype(x, np.uint64)


def _mix(x: Any) -> Any:
    """A bijective-enough scramble of uint64 values: three rounds of square + Weyl constant +
    rotate by 32 bits (the rotation is done with a float64 divide, since graphc has no shifts;
    it is exact up to rounding, which NumPy and Numba do identically)."""
    with np.errstate(over="ignore"):  # wrapping uint64 arithmetic is the point
        for c in _K[1:]:
            x = x * x + np.uint64(c)
            hi = np.floor(gnp.astype(x, np.float64) * 2.0**-32)
            x = x * np.uint64(1 << 32) + _u64(hi)
    return x


def key(seed: int) -> np.ndarray:
    """A random key: a uint64 array of shape (). Pass it to `model(x, train=True, key=k)`,
    `nn.apply` or a train step; derive new keys with `fold_in` or `split`.

    Example:
        >>> k = nn.key(0)
        >>> k.dtype, k.shape
        (dtype('uint64'), ())
    """
    return np.asarray(int(seed) % (1 << 64), dtype=np.uint64)


def fold_in(k: Any, data: Any) -> Any:
    """A new key derived from key `k` and integer `data` (a Python int or an integer array,
    traced or not): `fold_in(k, step)` gives one key per training step.

    Example:
        >>> nn.fold_in(nn.key(0), 1) != nn.fold_in(nn.key(0), 2)
        True
    """
    d = np.uint64(int(data) % (1 << 64)) if isinstance(data, int) else _u64(data)
    with np.errstate(over="ignore"):
        x = _u64(k) * np.uint64(_K[0]) + d * np.uint64(_K[3]) + np.uint64(_K[1])
    return _mix(x)


def split(k: Any, n: int = 2) -> Any:
    """`n` independent keys derived from `k`, as an array of shape (n,); index it for keys."""
    return fold_in(k, np.arange(n, dtype=np.uint64))


def _positions(shape: tuple[int, ...]) -> Any:
    """Row-major element index of every position of `shape`, as uint64 (sum of broadcast
    aranges, so the constants stay small)."""
    idx: Any = np.zeros((), np.uint64)
    stride = 1
    for a in range(len(shape) - 1, -1, -1):
        r = np.arange(shape[a], dtype=np.uint64) * np.uint64(stride)
        idx = idx + r.reshape((shape[a],) + (1,) * (len(shape) - 1 - a))
        stride *= shape[a]
    return idx


def uniform(k: Any, shape: tuple[int, ...] | int, dtype: Any = np.float32) -> Any:
    """Uniform random numbers in [0, 1) of `shape`, a pure function of key `k` (which may be
    traced: the numbers are then computed inside the graph, identically on every backend).

    Example:
        >>> u = nn.uniform(nn.key(0), (2, 3))
        >>> bool(((0 <= u) & (u < 1)).all())
        True
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    with np.errstate(over="ignore"):
        base = _mix(_u64(k) + np.uint64(_K[2]))
        bits = _mix(base + _positions(shape) * np.uint64(_K[0]))
    u = gnp.astype(bits, np.float64) * 2.0**-64
    u = gnp.astype(u, dtype)
    top = float(np.nextafter(np.asarray(1, dtype), np.asarray(0, dtype)))
    return np.minimum(u, top)


def bernoulli(k: Any, p: float, shape: tuple[int, ...] | int) -> Any:
    """Booleans of `shape` that are True with probability `p`."""
    return uniform(k, shape, np.float64) < p
