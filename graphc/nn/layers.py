"""The built-in layers of `graphc.nn`: Dense (Linear), Chain, Conv2d, MaxPool2d, AvgPool2d,
Flatten, Dropout, LayerNorm, BatchNorm and Embedding, each a `Module` (see `graphc.nn.module`
for the calling conventions: train/eval mode, random keys, `nn.apply` and state updates).

Conventions (as in PyTorch): batch first; `Dense` weights are `(out, in)` and `y = x @ W.T + b`;
images are NCHW and convolution weights OIHW.

The activations, random keys, initializers and module machinery that this module exported
before they got modules of their own are still importable from here.

Example:
    >>> from graphc import nn
    >>> model = nn.Chain(nn.Dense(4, 8, nn.relu), nn.Dense(8, 2))
    >>> model(np.ones((3, 4), np.float32)).shape
    (3, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import graphc
from graphc import numpy as gnp
from graphc.ir import GraphcError
from graphc.nn.activations import (
    gelu,
    identity,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from graphc.nn.init import (
    _gen,
    _init_fn,
    glorot_normal,
    glorot_uniform,
    kaiming_normal,
    kaiming_uniform,
    normal,
    ones,
    seed,
    zeros,
)
from graphc.nn.module import Context, Module, apply, current_context, layer
from graphc.nn.random import bernoulli, fold_in, key, split, uniform
from graphc.nn.summary import _one_line, _short
from graphc.nn.tree import (
    StateError,
    combine,
    modules,
    parameters,
    partition,
    state,
)

# the names this module exported when it also held the activations, keys, initializers and
# module machinery: `from graphc.nn.layers import relu` and star-imports keep working
__all__ = [
    "AvgPool2d",
    "BatchNorm",
    "Chain",
    "Context",
    "Conv2d",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "LayerNorm",
    "Linear",
    "MaxPool2d",
    "Module",
    "StateError",
    "apply",
    "bernoulli",
    "combine",
    "current_context",
    "fold_in",
    "gelu",
    "glorot_normal",
    "glorot_uniform",
    "identity",
    "kaiming_normal",
    "kaiming_uniform",
    "key",
    "layer",
    "leaky_relu",
    "log_softmax",
    "modules",
    "normal",
    "ones",
    "parameters",
    "partition",
    "relu",
    "seed",
    "sigmoid",
    "softmax",
    "softplus",
    "split",
    "state",
    "tanh",
    "uniform",
    "zeros",
]


def _act_name(act: Callable | None) -> str:
    return "" if act is None else f", {_short(act)}"


class Dense(Module):
    """Fully connected layer `y = act(x @ weight.T + bias)` on `(..., in)` inputs, with
    weight `(out, in)` and bias `(out,)` (Flux's `Dense(in => out, act)`; also `nn.Linear`).

    Example:
        >>> d = nn.Dense(784, 512, nn.relu)          # or nn.Dense((784, 512), nn.relu)
        >>> d = nn.Dense(2, 1, bias=False, init=nn.kaiming_normal, rng=0)
    """

    def __init__(
        self,
        in_features: int | tuple[int, int],
        out_features: int | None = None,
        act: Callable | None = None,
        *,
        bias: bool = True,
        init: Callable[..., np.ndarray] | str = glorot_uniform,
        bias_init: Callable[..., np.ndarray] | str = zeros,
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        if isinstance(in_features, tuple):
            if out_features is not None and act is None and callable(out_features):
                act, out_features = out_features, None
            in_features, out_features = in_features
        if out_features is None:
            raise GraphcError("Dense needs in and out sizes: Dense(in, out) or Dense((in, out))")
        g = _gen(rng)
        self.weight = _init_fn(init)((out_features, in_features), g, dtype)
        self.bias = _init_fn(bias_init)((out_features,), g, dtype) if bias else None
        self.act = act

    def __call__(self, x: Any) -> Any:
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return y if self.act is None else self.act(y)

    def extra_repr(self) -> str:
        o, i = np.shape(self.weight)
        b = "" if self.bias is not None else ", bias=False"
        return f"{i} => {o}{_act_name(self.act)}{b}"


Linear = Dense


class Chain(Module):
    """Layers applied in sequence (Flux's Chain, PyTorch's Sequential). Indexable (`m[0]`),
    slicable (`m[1:]` is a Chain), iterable, has `len`, and nests. Layers may be Modules, plain
    pytrees with `__call__`, or functions. Named layers: `Chain(enc=..., dec=...)`.

    Layer i runs under scope `layers.i` (`layers.<name>` for named layers).

    Example:
        >>> m = nn.Chain(nn.Dense(2, 3, nn.tanh), nn.Dense(3, 1))
        >>> len(m), type(m[1:]).__name__
        (2, 'Chain')
    """

    def __init__(self, *layers: Any, **named: Any):
        if layers and named:
            raise GraphcError("Chain takes positional or named layers, not both")
        if len(layers) == 1 and type(layers[0]) in (list, tuple):
            layers = tuple(layers[0])
        self.layers: tuple | dict = dict(named) if named else tuple(layers)

    def _items(self) -> list[tuple[str, Any]]:
        if isinstance(self.layers, dict):
            return [(str(k), v) for k, v in self.layers.items()]
        return [(str(i), v) for i, v in enumerate(self.layers)]

    def __call__(self, x: Any) -> Any:
        for name, f in self._items():
            if isinstance(f, Module):
                x = f(x)
            else:
                with graphc.scope(f"layers.{name}"):
                    x = f(x)
        return x

    def __getitem__(self, i: int | slice | str) -> Any:
        if isinstance(self.layers, dict):
            if isinstance(i, str):
                return self.layers[i]
            items = list(self.layers.items())
            if isinstance(i, slice):
                return Chain(**dict(items[i]))
            return items[i][1]
        if isinstance(i, slice):
            return Chain(*self.layers[i])
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Any]:
        return iter(v for _, v in self._items())

    def _display_children(self) -> list[tuple[str, Any]]:
        return self._items()

    def extra_repr(self) -> str:
        return ", ".join(_one_line(v) for _, v in self._items())


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


class Conv2d(Module):
    """2-d convolution (cross-correlation) of NCHW images with OIHW weights, zero padding:
    `act(conv2d(x, weight, stride, padding) + bias)`.

    Example:
        >>> c = nn.Conv2d(1, 8, 3, padding=1, act=nn.relu)
        >>> c(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 8, 8, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        act: Callable | None = None,
        *,
        bias: bool = True,
        init: Callable[..., np.ndarray] | str = glorot_uniform,
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        g = _gen(rng)
        kh, kw = _pair(kernel)
        self.weight = _init_fn(init)((out_channels, in_channels, kh, kw), g, dtype)
        self.bias = np.zeros(out_channels, dtype) if bias else None
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.act = act

    def __call__(self, x: Any) -> Any:
        y = gnp.conv2d(x, self.weight, self.stride, self.padding)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return y if self.act is None else self.act(y)

    def extra_repr(self) -> str:
        o, i, kh, kw = np.shape(self.weight)
        s = f"{i} => {o}, kernel={(kh, kw) if kh != kw else kh}"
        if self.stride != (1, 1):
            s += f", stride={self.stride[0] if len(set(self.stride)) == 1 else self.stride}"
        if self.padding != (0, 0):
            p = self.padding
            s += f", padding={p[0] if p[0] == p[1] else p}"
        return s + _act_name(self.act) + ("" if self.bias is not None else ", bias=False")


class MaxPool2d(Module):
    """Max over `kernel` windows of NCHW images (stride defaults to the kernel)."""

    def __init__(
        self, kernel: int | tuple[int, int] = 2, stride: int | tuple[int, int] | None = None
    ):
        self.kernel = _pair(kernel)
        self.stride = _pair(stride) if stride is not None else self.kernel

    def __call__(self, x: Any) -> Any:
        return gnp.max_pool2d(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        k = self.kernel[0] if self.kernel[0] == self.kernel[1] else self.kernel
        return f"{k}" + ("" if self.stride == self.kernel else f", stride={self.stride}")


class AvgPool2d(MaxPool2d):
    """Mean over `kernel` windows of NCHW images (stride defaults to the kernel)."""

    def __call__(self, x: Any) -> Any:
        return gnp.avg_pool2d(x, self.kernel, self.stride)


class Flatten(Module):
    """Flatten all axes but the first: `(N, ...) -> (N, prod(...))`."""

    def __call__(self, x: Any) -> Any:
        return x.reshape(x.shape[0], -1)


class Dropout(Module):
    """Zero each element with probability `p` and scale the rest by 1/(1-p), in train mode; the
    identity in eval mode. The mask is a pure function of the call's random key, the layer's
    path and its call count: `model(x, train=True, key=nn.key(0))` twice gives the same mask.

    Example:
        >>> d = nn.Dropout(0.5)
        >>> x = np.ones((2, 4), np.float32)
        >>> np.array_equal(d(x), x)                               # eval mode: identity
        True
        >>> y = d(x, train=True, key=nn.key(1))                   # train mode: needs a key
    """

    def __init__(self, p: float = 0.5):
        if not 0 <= p < 1:
            raise GraphcError(f"Dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def __call__(self, x: Any) -> Any:
        ctx = current_context()
        if ctx is None or not ctx.train or self.p == 0:
            return x
        keep = uniform(ctx.rng(self), np.shape(x), np.float64) >= self.p
        return np.where(keep, x * (1.0 / (1.0 - self.p)), 0)

    def extra_repr(self) -> str:
        return f"{self.p}"


class LayerNorm(Module):
    """Normalize over the last `len(shape)` axes to zero mean and unit variance, then scale by
    `weight` and shift by `bias` (if `affine`).

    Example:
        >>> nn.LayerNorm(8)(np.random.rand(2, 8).astype(np.float32)).shape
        (2, 8)
    """

    def __init__(
        self,
        shape: int | tuple[int, ...],
        eps: float = 1e-5,
        affine: bool = True,
        dtype: Any = np.float32,
    ):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.weight = np.ones(shape, dtype) if affine else None
        self.bias = np.zeros(shape, dtype) if affine else None
        self.shape = shape
        self.eps = float(eps)

    def __call__(self, x: Any) -> Any:
        axes = tuple(range(np.ndim(x) - len(self.shape), np.ndim(x)))
        mean = np.mean(x, axis=axes, keepdims=True)
        d = x - mean
        var = np.mean(d * d, axis=axes, keepdims=True)
        y = d * gnp.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y

    def extra_repr(self) -> str:
        s = self.shape[0] if len(self.shape) == 1 else self.shape
        return f"{s}" + ("" if self.weight is not None else ", affine=False")


class BatchNorm(Module):
    """Batch normalization over axis 1 of `(N, C)` or `(N, C, H, W)` inputs.

    Train mode normalizes with the batch's mean and (biased) variance and records
    `running = (1 - momentum) * running + momentum * batch` (unbiased variance) in the call
    context, so `y, model = nn.apply(model, x, train=True)` returns the model with new running
    statistics (`nn.train_step` threads them). Eval mode normalizes with the running statistics.
    `running_mean` and `running_var` are non-trainable: no gradient, no optimizer update.

    Example:
        >>> bn = nn.BatchNorm(3)
        >>> y, bn = nn.apply(bn, np.random.rand(16, 3).astype(np.float32), train=True)
    """

    _nontrainable = ("running_mean", "running_var")

    def __init__(
        self,
        channels: int,
        act: Callable | None = None,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        dtype: Any = np.float32,
    ):
        self.weight = np.ones(channels, dtype) if affine else None
        self.bias = np.zeros(channels, dtype) if affine else None
        self.running_mean = np.zeros(channels, dtype)
        self.running_var = np.ones(channels, dtype)
        self.act = act
        self.eps = float(eps)
        self.momentum = float(momentum)

    def __call__(self, x: Any) -> Any:
        nd = np.ndim(x)
        c = np.shape(self.running_mean)[0]
        if nd < 2 or np.shape(x)[1] != c:
            raise GraphcError(
                f"BatchNorm({c}) needs inputs of shape (N, {c}, ...), got {tuple(np.shape(x))}"
            )
        axes = (0,) + tuple(range(2, nd))
        bshape = (1, c) + (1,) * (nd - 2)
        ctx = current_context()
        dt = self.running_mean.dtype
        if ctx is not None and ctx.train:
            mean = np.mean(x, axis=axes)
            var = np.mean((x - mean.reshape(bshape)) ** 2, axis=axes)
            n = int(np.prod([np.shape(x)[a] for a in axes]))
            m = self.momentum
            bm, bv = gnp.stop_gradient(mean), gnp.stop_gradient(var)
            ctx.record(
                self,
                running_mean=gnp.astype((1 - m) * self.running_mean + m * bm, dt),
                running_var=gnp.astype(
                    (1 - m) * self.running_var + m * bv * (n / max(n - 1, 1)), dt
                ),
            )
        else:
            mean = gnp.stop_gradient(self.running_mean)
            var = gnp.stop_gradient(self.running_var)
        y = (x - mean.reshape(bshape)) * gnp.rsqrt(var.reshape(bshape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.reshape(bshape) + self.bias.reshape(bshape)
        return y if self.act is None else self.act(y)

    def extra_repr(self) -> str:
        s = f"{np.shape(self.running_mean)[0]}{_act_name(self.act)}"
        return s + ("" if self.weight is not None else ", affine=False")


class Embedding(Module):
    """A lookup table: integer indices of any shape -> rows of `weight` `(num, dim)`.

    Example:
        >>> e = nn.Embedding(10, 4)
        >>> e(np.array([[1, 2], [3, 9]])).shape
        (2, 2, 4)
    """

    def __init__(
        self,
        num: int,
        dim: int,
        *,
        init: Callable[..., np.ndarray] | str = "randn",
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        self.weight = _init_fn(init)((num, dim), _gen(rng), dtype)

    def __call__(self, idx: Any) -> Any:
        return gnp.take(self.weight, idx, axis=0)

    def extra_repr(self) -> str:
        n, d = np.shape(self.weight)
        return f"{n} => {d}"
