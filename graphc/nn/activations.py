"""Activation functions for `graphc.nn`, built on graphc.numpy so they trace, differentiate and
compile like any other NumPy code (and run eagerly on plain arrays).

Example:
    >>> from graphc import nn
    >>> nn.relu(np.array([-1.0, 2.0]))
    array([0., 2.])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc import numpy as gnp

__all__ = [
    "gelu",
    "identity",
    "leaky_relu",
    "log_softmax",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
]


def relu(x: Any) -> Any:
    """max(x, 0)."""
    return gnp.relu(x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent."""
    return np.tanh(x)


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), without overflow."""
    return gnp.sigmoid(x)


def gelu(x: Any) -> Any:
    """Gaussian error linear unit (tanh approximation)."""
    return gnp.gelu(x)


def softplus(x: Any) -> Any:
    """log(1 + exp(x)), stable for large |x|."""
    return gnp.softplus(x)


def leaky_relu(x: Any, a: float = 0.01) -> Any:
    """x for x > 0, a * x otherwise."""
    return np.where(x > 0, x, a * x)


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along `axis` (max-shifted, so large logits are fine)."""
    return gnp.softmax(x, axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """x - logsumexp(x) along `axis`."""
    return gnp.log_softmax(x, axis=axis)


def identity(x: Any) -> Any:
    """x."""
    return x
