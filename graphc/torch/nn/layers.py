"""The layers of `torch.nn` on graphc: Linear, Conv2d, pools, activations, Flatten, Dropout,
BatchNorm1d/2d, LayerNorm, Embedding, and the loss modules.

Parameters are initialized as PyTorch's layers initialize them (Linear and Conv2d: uniform in
+-1/sqrt(fan_in) for weights and biases, Embedding: standard normal, norms: ones and zeros),
from graphc.torch's generator. The math is `graphc.torch.nn.functional`'s, which is
graphc.nn's.

Example:
    >>> nn.Linear(784, 10)
    Linear(in_features=784, out_features=10, bias=True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.torch import _dtypes
from graphc.torch._engine import no_grad
from graphc.torch._tensor import Tensor
from graphc.torch.nn import functional as F
from graphc.torch.nn import init
from graphc.torch.nn.module import Module, Parameter
from graphc.trace import user_location

__all__ = [
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Flatten",
    "GELU",
    "Identity",
    "L1Loss",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "NLLLoss",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]


def _param(shape: tuple[int, ...], dtype: Any) -> Parameter:
    dt = _dtypes.to_dtype(dtype) if dtype is not None else _dtypes.get_default_dtype()
    return Parameter(Tensor._from_array(np.zeros(shape, dt)))


def _fan_in_uniform(w: Tensor, b: Tensor | None) -> None:
    # PyTorch's Linear and Conv2d: kaiming_uniform_ with a = sqrt(5), which is
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias uniform in the same bound
    init.kaiming_uniform_(w, a=math.sqrt(5))
    if b is not None:
        fan_in = math.prod(w.shape[1:])
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(b, -bound, bound)


class Linear(Module):
    """`y = x @ weight.T + bias`, weight of shape (out_features, in_features).

    Example:
        >>> nn.Linear(3, 2)(torch.ones(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = _param((self.out_features, self.in_features), dtype)
        self.bias = _param((self.out_features,), dtype) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _fan_in_uniform(self.weight, self.bias)

    def forward(self, x: Any) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


class Conv2d(Module):
    """2-d convolution of NCHW images, weight of shape (out, in, kh, kw).

    Example:
        >>> nn.Conv2d(1, 8, 3, padding=1)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 8, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        if dilation not in (1, (1, 1)) or groups != 1 or padding_mode != "zeros":
            raise GraphcError(
                "Conv2d: dilation, groups and padding modes other than zeros are not supported",
                user_location(),
            )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.weight = _param((self.out_channels, self.in_channels, *self.kernel_size), dtype)
        self.bias = _param((self.out_channels,), dtype) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _fan_in_uniform(self.weight, self.bias)

    def forward(self, x: Any) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        return s + ("" if self.bias is not None else ", bias=False")


class MaxPool2d(Module):
    """Max over windows of NCHW images (stride defaults to the kernel size)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, **kwargs: Any):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Any) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        stride = self.stride if self.stride is not None else self.kernel_size
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class AvgPool2d(MaxPool2d):
    """Mean over windows of NCHW images (stride defaults to the kernel size)."""

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class _Activation(Module):
    fn: Any = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Tensor:
        return type(self).fn(x)


class ReLU(_Activation):
    """max(x, 0)."""

    fn = staticmethod(F.relu)


class Tanh(_Activation):
    fn = staticmethod(F.tanh)


class Sigmoid(_Activation):
    fn = staticmethod(F.sigmoid)


class SiLU(_Activation):
    fn = staticmethod(F.silu)


class Identity(_Activation):
    fn = staticmethod(lambda x: x)


class GELU(Module):
    """The Gaussian error linear unit (exact by default; approximate="tanh")."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """Softmax along `dim`."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x: Any) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Any) -> Tensor:
        return F.log_softmax(x, self.dim)


class Flatten(Module):
    """Merge dimensions start_dim..end_dim (by default all but the batch dimension)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """In training mode, zero elements with probability p and scale the rest by 1/(1-p); in
    evaluation mode (`model.eval()`), the identity."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p < 1:
            raise GraphcError(f"Dropout probability must be in [0, 1), got {p}", user_location())
        self.p = float(p)

    def forward(self, x: Any) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace=False"


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        c = self.num_features
        if affine:
            self.weight = Parameter(Tensor._from_array(np.ones(c, _dt(dtype))))
            self.bias = Parameter(Tensor._from_array(np.zeros(c, _dt(dtype))))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._from_array(np.zeros(c, _dt(dtype))))
            self.register_buffer("running_var", Tensor._from_array(np.ones(c, _dt(dtype))))
            self.register_buffer("num_batches_tracked", Tensor._from_array(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in self._dims:
            raise GraphcError(
                f"{type(self).__name__} expects {' or '.join(f'{d}-d' for d in self._dims)} "
                f"input, got shape {tuple(x.shape)}",
                user_location(),
            )
        training = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training,
            self.momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


def _dt(dtype: Any) -> np.dtype:
    return _dtypes.to_dtype(dtype) if dtype is not None else _dtypes.get_default_dtype()


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs."""

    _dims = (4,)


class LayerNorm(Module):
    """Normalize over the last dimensions (`normalized_shape`), then scale and shift."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        shape = (
            (int(normalized_shape),)
            if isinstance(normalized_shape, (int, np.integer))
            else tuple(normalized_shape)
        )
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            if not bias:
                raise GraphcError("LayerNorm(bias=False) is not supported", user_location())
            self.weight = Parameter(Tensor._from_array(np.ones(shape, _dt(dtype))))
            self.bias = Parameter(Tensor._from_array(np.zeros(shape, _dt(dtype))))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class Embedding(Module):
    """A table of `num_embeddings` vectors of size `embedding_dim`, read at integer indices."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ):
        super().__init__()
        if padding_idx is not None or kwargs:
            raise GraphcError(
                f"Embedding: {'padding_idx' if padding_idx is not None else sorted(kwargs)[0]} "
                "is not supported",
                user_location(),
            )
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.weight = _param((self.num_embeddings, self.embedding_dim), dtype)
        init.normal_(self.weight)

    def forward(self, idx: Any) -> Tensor:
        return F.embedding(idx, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


# ---------------------------------------------------------------------------------------------
# losses


class _Loss(Module):
    fn: Any = None

    def __init__(self, reduction: str = "mean", **kwargs: Any):
        super().__init__()
        self.reduction = reduction
        self.options = kwargs

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return type(self).fn(input, target, reduction=self.reduction, **self.options)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (N, C) against class indices (N,) (or probabilities).

    Example:
        >>> nn.CrossEntropyLoss()(torch.zeros(2, 3), torch.tensor([0, 2]))
        tensor(1.0986)
    """

    fn = staticmethod(F.cross_entropy)

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__(reduction, weight=weight, label_smoothing=label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) at class indices (N,)."""

    fn = staticmethod(F.nll_loss)


class MSELoss(_Loss):
    """Mean squared error."""

    fn = staticmethod(F.mse_loss)


class L1Loss(_Loss):
    """Mean absolute error."""

    fn = staticmethod(F.l1_loss)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits against targets in [0, 1]."""

    fn = staticmethod(F.binary_cross_entropy_with_logits)

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None):
        super().__init__(reduction, weight=weight, pos_weight=pos_weight)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities against targets in [0, 1]."""

    fn = staticmethod(F.binary_cross_entropy)
