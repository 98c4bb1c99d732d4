"""`torch.nn.init`: fill a tensor in place with initial values drawn from graphc.torch's
generator (`torch.manual_seed`). Fan sizes are graphc.nn's (`(out, in, *kernel)` weights).

Example:
    >>> w = torch.empty(3, 5)
    >>> nn.init.xavier_uniform_(w).shape
    torch.Size([3, 5])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.nn.init import _fans
from graphc.torch._creation import generator
from graphc.torch._engine import no_grad
from graphc.torch._tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]


def _set(t: Tensor, values: np.ndarray) -> Tensor:
    with no_grad():
        t._s.set_data(np.asarray(values, dtype=t.dtype).reshape(tuple(t.shape)))
    return t


def calculate_gain(nonlinearity: str, param: Any = None) -> float:
    """The recommended gain for an activation (PyTorch's table)."""
    if nonlinearity in ("linear", "conv2d", "sigmoid", "conv1d", "conv3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise GraphcError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    return _set(t, generator().uniform(a, b, tuple(t.shape)))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    return _set(t, mean + std * generator().standard_normal(tuple(t.shape)))


def constant_(t: Tensor, val: float) -> Tensor:
    return _set(t, np.full(tuple(t.shape), val))


def zeros_(t: Tensor) -> Tensor:
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    return constant_(t, 1.0)


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fi, fo = _fans(tuple(t.shape))
    a = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(t, -a, a)


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    fi, fo = _fans(tuple(t.shape))
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fi + fo)))


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    fi, fo = _fans(tuple(t.shape))
    fan = fi if mode == "fan_in" else fo
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """U(-b, b), b = gain * sqrt(3 / fan); PyTorch's layers use a = sqrt(5)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound)


def kaiming_normal_(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity))
