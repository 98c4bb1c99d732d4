"""`torch.nn.functional` on graphc: activations, layers as functions, losses.

The layer math is graphc.nn's: each function builds (once per configuration) the matching
graphc.nn layer as a pytree structure, and the recorded template rebuilds it with the traced
weights and calls it, so `F.linear`, `F.conv2d`, `F.layer_norm`, `F.batch_norm`, `F.dropout`,
`F.embedding` and the losses compute exactly what graphc.nn's layers and losses compute.

Example:
    >>> import graphc.torch.nn.functional as F
    >>> F.relu(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc import nn as gnn
from graphc import numpy as gnp
from graphc.ir import GraphcError
from graphc.nn.random import key as random_key
from graphc.torch._creation import generator, random_tensor
from graphc.torch._ops import float_dtype, record
from graphc.torch._tensor import Tensor, _dims, as_tensor_arg
from graphc.trace import ArgumentError, user_location
from graphc.tree_util import TreeDef, flatten, unflatten

__all__ = [
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
]


# ---------------------------------------------------------------------------------------------
# graphc.nn layers inside templates

_CONFIGS: dict[tuple, TreeDef] = {}


def layer_structure(cls: type, *args: Any, **kwargs: Any) -> TreeDef:
    """The pytree structure of `cls(*args, **kwargs)`, a graphc.nn layer (made once per
    configuration): a template rebuilds the layer from it with traced weights."""
    key = (cls, args, tuple(kwargs.items()))  # a call site passes its keywords in one order
    td = _CONFIGS.get(key)
    if td is None:
        td = _CONFIGS[key] = flatten(cls(*args, **kwargs))[1]
    return td


def _t_layer(*args: Any) -> Any:
    *tensors, structure, n_params, train, has_key, state = args
    params, x = list(tensors[:n_params]), tensors[n_params]
    key = tensors[n_params + 1] if has_key else None
    layer = unflatten(structure, params)
    out, updated = gnn.apply(layer, x, train=train, key=key)
    if not state:
        return out
    return (out, *[getattr(updated, name) for name in state])


def call_layer(
    structure: TreeDef,
    params: Sequence[Tensor],
    x: Any,
    *,
    name: str,
    train: bool = False,
    key: Tensor | None = None,
    state: tuple[str, ...] = (),
) -> Any:
    """Record graphc.nn's layer of `structure` with weights `params` applied to `x`; with
    `state`, also the layer's updated values of those attributes (BatchNorm's statistics)."""
    operands = [*params, as_tensor_arg(x)] + ([key] if key is not None else [])
    out = record(
        _t_layer, operands, (structure, len(params), train, key is not None, state), name=name
    )
    return out if state else out[0]


def _fn1(fn: Any, x: Any, name: str, *static: Any) -> Tensor:
    x = as_tensor_arg(x)
    return record(_t_fn, [x], (fn, float_dtype(x.dtype), static), name=name)[0]


def _t_fn(x: Any, fn: Any, dt: Any, static: tuple) -> Any:
    if x.dtype != dt:
        x = gnp.astype(x, dt)
    return fn(x, *static)


# ---------------------------------------------------------------------------------------------
# activations


def relu(x: Any, inplace: bool = False) -> Tensor:
    """max(x, 0)."""
    x = as_tensor_arg(x)
    return record(_t_fn, [x], (gnn.relu, x.dtype, ()), name="F.relu")[0]


def tanh(x: Any) -> Tensor:
    return _fn1(gnn.tanh, x, "F.tanh")


def sigmoid(x: Any) -> Tensor:
    return _fn1(gnn.sigmoid, x, "F.sigmoid")


def softplus(x: Any) -> Tensor:
    return _fn1(gnn.softplus, x, "F.softplus")


def silu(x: Any) -> Tensor:
    """x * sigmoid(x)."""
    x = as_tensor_arg(x)
    return x * sigmoid(x)


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """The Gaussian error linear unit: exact (erf) by default, as in PyTorch; "tanh" for the
    tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _fn1(gnp.gelu, x, "F.gelu", approximate == "tanh")


def leaky_relu(x: Any, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return _fn1(gnn.leaky_relu, x, "F.leaky_relu", float(negative_slope))


def _softmax_dim(x: Tensor, dim: Any, name: str) -> int:
    if dim is None:
        raise ArgumentError(f"{name} needs dim= (the dimension that sums to one)", user_location())
    return _dims(dim, x.dim())[0]  # type: ignore[index]


def softmax(x: Any, dim: Any = None, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along `dim`."""
    x = as_tensor_arg(x)
    return _fn1(gnn.softmax, x, "F.softmax", _softmax_dim(x, dim, "softmax"))


def log_softmax(x: Any, dim: Any = None, dtype: Any = None) -> Tensor:
    """x - logsumexp(x) along `dim`."""
    x = as_tensor_arg(x)
    return _fn1(gnn.log_softmax, x, "F.log_softmax", _softmax_dim(x, dim, "log_softmax"))


# ---------------------------------------------------------------------------------------------
# layers


def linear(x: Any, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias (weight of shape (out, in))."""
    o, i = weight.shape
    td = layer_structure(gnn.Dense, i, o, bias=bias is not None, rng=0, dtype=weight.dtype)
    params = [weight] if bias is None else [weight, bias]
    return call_layer(td, params, x, name="F.linear")


def conv2d(
    x: Any,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-d convolution of NCHW images with OIHW weights (zero padding)."""
    if dilation not in (1, (1, 1)) or groups != 1:
        raise GraphcError("conv2d: dilation and groups are not supported", user_location())
    o, i, kh, kw = weight.shape
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if kh % 2 == 0 or kw % 2 == 0 or stride not in (1, (1, 1)):
            raise GraphcError(
                "conv2d: padding='same' needs odd kernel sizes and stride 1", user_location()
            )
        padding = (kh // 2, kw // 2)
    td = layer_structure(
        gnn.Conv2d,
        i,
        o,
        (kh, kw),
        _pair(stride),
        _pair(padding),
        bias=bias is not None,
        rng=0,
        dtype=weight.dtype,
    )
    params = [weight] if bias is None else [weight, bias]
    return call_layer(td, params, x, name="F.conv2d")


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def _pool(cls: type, name: str, x: Any, kernel_size: Any, stride: Any, padding: Any) -> Tensor:
    if padding not in (0, (0, 0)):
        raise GraphcError(f"{name}: padding is not supported", user_location())
    k = _pair(kernel_size)
    td = layer_structure(cls, k, _pair(stride) if stride is not None else k)
    return call_layer(td, [], x, name=name)


def max_pool2d(
    x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, **kwargs: Any
) -> Tensor:
    """Max over windows of NCHW images (stride defaults to the kernel size)."""
    return _pool(gnn.MaxPool2d, "F.max_pool2d", x, kernel_size, stride, padding)


def avg_pool2d(
    x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, **kwargs: Any
) -> Tensor:
    """Mean over windows of NCHW images (stride defaults to the kernel size)."""
    return _pool(gnn.AvgPool2d, "F.avg_pool2d", x, kernel_size, stride, padding)


def dropout_key() -> Tensor:
    """A random key for one dropout call, drawn from the generator (`manual_seed`)."""
    return random_tensor(lambda: random_key(int(generator().integers(0, 2**63))))


def dropout(x: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) when training; the
    identity otherwise. The mask is computed in the graph from a key drawn per call."""
    x = as_tensor_arg(x)
    if not training or p == 0:
        return x
    td = layer_structure(gnn.Dropout, float(p))
    return call_layer(td, [], x, name="F.dropout", train=True, key=dropout_key())


def layer_norm(
    x: Any,
    normalized_shape: Sequence[int] | int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize over the last dimensions to zero mean and unit variance, then scale and
    shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    affine = weight is not None
    if affine != (bias is not None):
        raise GraphcError("layer_norm: give both weight and bias, or neither", user_location())
    td = layer_structure(gnn.LayerNorm, shape, float(eps), affine)
    return call_layer(td, [weight, bias] if affine else [], x, name="F.layer_norm")


def batch_norm(
    x: Any,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization over dimension 1; in training, with the batch's statistics, and
    the running statistics updated in place."""
    from graphc.torch._engine import no_grad

    x = as_tensor_arg(x)
    c = x.shape[1]
    affine = weight is not None
    td = layer_structure(gnn.BatchNorm, c, eps=float(eps), momentum=float(momentum), affine=affine)
    track = running_mean is not None and running_var is not None
    if not track:
        from graphc.torch._creation import ones, zeros

        running_mean, running_var = zeros(c, dtype=x.dtype), ones(c, dtype=x.dtype)
    params = ([weight, bias] if affine else []) + [running_mean, running_var]
    if not training:
        return call_layer(td, params, x, name="F.batch_norm")
    out, mean, var = call_layer(
        td, params, x, name="F.batch_norm", train=True, state=("running_mean", "running_var")
    )
    if track:
        with no_grad():
            running_mean.copy_(mean)  # type: ignore[union-attr]
            running_var.copy_(var)  # type: ignore[union-attr]
    return out


def embedding(idx: Any, weight: Tensor) -> Tensor:
    """Rows of `weight` at the integer indices `idx` (any shape)."""
    n, d = weight.shape
    td = layer_structure(gnn.Embedding, n, d, rng=0, dtype=weight.dtype)
    return call_layer(td, [weight], idx, name="F.embedding")


def one_hot(t: Tensor, num_classes: int = -1) -> Tensor:
    """Integer classes to one-hot rows (int64)."""
    if num_classes < 0:
        num_classes = int(t.max().item()) + 1
    return record(_t_one_hot, [t], (int(num_classes),), name="F.one_hot")[0]


def _t_one_hot(t: Any, n: int) -> Any:
    return gnp.astype(t[..., None] == np.arange(n), np.int64)


# ---------------------------------------------------------------------------------------------
# losses


def _t_loss(*args: Any) -> Any:
    *operands, fn, reduction, static = args
    return fn(*operands, *static, reduction=reduction)


def _loss(fn: Any, name: str, operands: Sequence[Any], reduction: str, *static: Any) -> Tensor:
    if reduction not in ("mean", "sum", "none"):
        raise ArgumentError(
            f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}",
            user_location(),
        )
    ops = [as_tensor_arg(x) for x in operands]
    return record(_t_loss, ops, (fn, reduction, static), name=name)[0]


def cross_entropy(
    input: Any,  # noqa: A002 (PyTorch's name)
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of logits (N, C) against class indices (N,) or class
    probabilities (N, C)."""
    if weight is not None or label_smoothing:
        raise GraphcError(
            "cross_entropy: weight and label_smoothing are not supported", user_location()
        )
    return _loss(gnn.cross_entropy, "F.cross_entropy", (input, target), reduction)


def _reduced(per: Any, reduction: str) -> Any:
    if reduction == "none":
        return per
    return np.mean(per) if reduction == "mean" else np.sum(per)


def _nll(logp: Any, target: Any, reduction: str) -> Any:
    n = np.shape(logp)[0]
    return _reduced(-logp[np.arange(n), target], reduction)


def nll_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """The negative log-likelihood of log-probabilities (N, C) at class indices (N,)."""
    return _loss(_nll, "F.nll_loss", (input, target), reduction)


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error."""
    return _loss(gnn.mse, "F.mse_loss", (input, target), reduction)


def _l1(x: Any, y: Any, reduction: str) -> Any:
    return _reduced(np.abs(x - y), reduction)


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean absolute error."""
    return _loss(_l1, "F.l1_loss", (input, target), reduction)


def binary_cross_entropy_with_logits(
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross-entropy of logits against targets in [0, 1], stable for any logit."""
    if weight is not None or pos_weight is not None:
        raise GraphcError(
            "binary_cross_entropy_with_logits: weight and pos_weight are not supported",
            user_location(),
        )
    return _loss(
        gnn.binary_cross_entropy, "F.binary_cross_entropy_with_logits", (input, target), reduction
    )


def _bce(p: Any, t: Any, reduction: str) -> Any:
    # PyTorch clamps the logarithms at -100 so that p = 0 or 1 gives a finite loss
    lp = np.maximum(np.log(p), -100.0)
    lq = np.maximum(np.log(1 - p), -100.0)
    return _reduced(-(t * lp + (1 - t) * lq), reduction)


def binary_cross_entropy(input: Any, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Binary cross-entropy of probabilities against targets in [0, 1]."""
    return _loss(_bce, "F.binary_cross_entropy", (input, target), reduction)
