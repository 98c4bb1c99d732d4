"""Loss functions `loss(prediction, target, reduction="mean")` built on graphc.numpy, so they
trace, differentiate and compile like any other NumPy code.

`reduction` is "mean" (the default), "sum" or "none" (per-element or per-sample losses).

Example:
    >>> logits = np.array([[2.0, 0.5, -1.0]]); labels = np.array([0])
    >>> float(nn.cross_entropy(logits, labels))  # doctest: +ELLIPSIS
    0.24...
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc import numpy as gnp
from graphc.ir import GraphcError

__all__ = ["binary_cross_entropy", "cross_entropy", "mse"]


def _reduce(x: Any, reduction: str) -> Any:
    if reduction == "mean":
        return np.mean(x)
    if reduction == "sum":
        return np.sum(x)
    if reduction == "none":
        return x
    raise GraphcError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse(prediction: Any, target: Any, reduction: str = "mean") -> Any:
    """Squared error `(prediction - target)^2`, averaged (or summed) over all elements.

    Example:
        >>> float(nn.mse(np.array([1.0, 2.0]), np.array([1.0, 4.0])))
        2.0
    """
    d = prediction - target
    return _reduce(d * d, reduction)


def cross_entropy(logits: Any, labels: Any, reduction: str = "mean", axis: int = -1) -> Any:
    """Softmax cross-entropy of unnormalized `logits` `(N, C)`: with integer `labels` `(N,)`,
    `-log_softmax(logits)[i, labels[i]]`; with float `labels` `(N, C)` (one-hot or
    probabilities), `-sum(labels * log_softmax(logits))`. Uses `log_softmax`, which subtracts
    the max first, so logits of magnitude 1e4 give exact, finite losses and gradients
    (Flux's `logitcrossentropy`, PyTorch's `cross_entropy`).

    Example:
        >>> float(nn.cross_entropy(np.array([[1e4, 0.0]], np.float32), np.array([1])))
        10000.0
    """
    logp = gnp.log_softmax(logits, axis=axis)
    if (
        np.dtype(labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype).kind
        in "iu"
    ):
        if np.ndim(logp) != 2 or np.ndim(labels) != 1 or axis not in (-1, 1):
            raise GraphcError(
                "cross_entropy with integer labels needs logits (N, C) and labels "
                f"(N,), got {tuple(np.shape(logp))} and {tuple(np.shape(labels))}"
            )
        n = np.shape(logp)[0]
        per = -logp[np.arange(n), labels]
    else:
        per = -np.sum(labels * logp, axis=axis)
    return _reduce(per, reduction)


def binary_cross_entropy(logits: Any, targets: Any, reduction: str = "mean") -> Any:
    """Binary cross-entropy of logits `z` against targets `t` in [0, 1]:
    `softplus(z) - z * t` (= `-t log sigmoid(z) - (1 - t) log(1 - sigmoid(z))`), stable for any
    |z| (Flux's `logitbinarycrossentropy`, PyTorch's `binary_cross_entropy_with_logits`).

    Example:
        >>> float(nn.binary_cross_entropy(np.array([0.0]), np.array([1.0])))  # log 2
        0.6931471805599453
    """
    return _reduce(gnp.softplus(logits) - logits * targets, reduction)
