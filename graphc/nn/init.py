"""Parameter initializers for `graphc.nn`: `init(shape, rng=None, dtype=np.float32) -> array`,
drawn from a NumPy generator (`rng`: a Generator, a seed, or None for the shared generator that
`seed` resets). Layers also accept an initializer by name (`init="kaiming"`).

Example:
    >>> from graphc import nn
    >>> nn.glorot_uniform((3, 2), rng=0).shape
    (3, 2)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import GraphcError

__all__ = [
    "glorot_normal",
    "glorot_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "ones",
    "seed",
    "zeros",
]

_rng = np.random.default_rng(0)


def seed(s: int) -> None:
    """Reseed the generator layers use for initial weights when no `rng` is given."""
    global _rng
    _rng = np.random.default_rng(s)


def _gen(rng: np.random.Generator | int | None) -> np.random.Generator:
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) for (out, in, *kernel) weights."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * receptive, shape[0] * receptive


def glorot_uniform(
    shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32, gain: float = 1.0
) -> np.ndarray:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Xavier; the default)."""
    fi, fo = _fans(shape)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return _gen(rng).uniform(-a, a, shape).astype(dtype)


def glorot_normal(
    shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32, gain: float = 1.0
) -> np.ndarray:
    """N(0, s^2) with s = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = _fans(shape)
    return (_gen(rng).standard_normal(shape) * gain * math.sqrt(2.0 / (fi + fo))).astype(dtype)


def kaiming_uniform(
    shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32, gain: float = math.sqrt(2.0)
) -> np.ndarray:
    """U(-a, a) with a = gain * sqrt(3 / fan_in) (He; gain sqrt(2) suits relu)."""
    fi, _ = _fans(shape)
    a = gain * math.sqrt(3.0 / fi)
    return _gen(rng).uniform(-a, a, shape).astype(dtype)


def kaiming_normal(
    shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32, gain: float = math.sqrt(2.0)
) -> np.ndarray:
    """N(0, s^2) with s = gain / sqrt(fan_in) (He)."""
    fi, _ = _fans(shape)
    return (_gen(rng).standard_normal(shape) * gain / math.sqrt(fi)).astype(dtype)


def normal(
    shape: tuple[int, ...],
    rng: Any = None,
    dtype: Any = np.float32,
    std: float = 0.01,
    mean: float = 0.0,
) -> np.ndarray:
    """N(mean, std^2); use `functools.partial(nn.normal, std=0.1)` for another std."""
    return (mean + std * _gen(rng).standard_normal(shape)).astype(dtype)


def zeros(shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32) -> np.ndarray:
    """All zeros."""
    return np.zeros(shape, dtype)


def ones(shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32) -> np.ndarray:
    """All ones."""
    return np.ones(shape, dtype)


_INITS: dict[str, Callable[..., np.ndarray]] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier": glorot_uniform,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "kaiming": kaiming_normal,
    "he": kaiming_normal,
    "normal": normal,
    "zeros": zeros,
    "ones": ones,
    "randn": functools.partial(normal, std=1.0),
}


def _init_fn(init: Callable[..., np.ndarray] | str) -> Callable[..., np.ndarray]:
    if isinstance(init, str):
        if init not in _INITS:
            raise GraphcError(f"unknown init {init!r} (known: {', '.join(_INITS)})")
        return _INITS[init]
    return init
