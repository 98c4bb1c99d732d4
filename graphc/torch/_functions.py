"""The `torch.*` functions that mirror tensor methods (`torch.sum(x, dim=1)` is
`x.sum(dim=1)`), and those with no method: `cat`, `stack`, `maximum`, `allclose`, ...

Example:
    >>> torch.cat([torch.ones(2), torch.zeros(1)])
    tensor([1., 1., 0.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.torch._dtypes import promote_types, result_type
from graphc.torch._ops import as_dtype_of, record
from graphc.torch._tensor import (
    Tensor,
    _dims,
    _sig,
    as_tensor_arg,
    clamp,
    div,
    elementwise,
    matmul,
    pow,
    where,
)

__all__ = [
    "abs",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "argmax",
    "argmin",
    "bmm",
    "cat",
    "clamp",
    "clip",
    "concat",
    "cos",
    "div",
    "dot",
    "eq",
    "equal",
    "exp",
    "flatten",
    "gt",
    "is_tensor",
    "isclose",
    "log",
    "log_softmax",
    "lt",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mul",
    "numel",
    "permute",
    "pow",
    "prod",
    "relu",
    "reshape",
    "sigmoid",
    "sin",
    "softmax",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sum",
    "tanh",
    "transpose",
    "unsqueeze",
    "var",
    "where",
]


def _t(x: Any) -> Tensor:
    x = as_tensor_arg(x)
    if not isinstance(x, Tensor):
        from graphc.torch._creation import tensor

        x = tensor(x)
    return x


def _method(name: str) -> Any:
    def fn(x: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(_t(x), name)(*args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = f"`torch.{name}(x, ...)` is `x.{name}(...)`."
    return fn


abs = _method("abs")  # noqa: A001
exp = _method("exp")
log = _method("log")
sqrt = _method("sqrt")
sin = _method("sin")
cos = _method("cos")
tanh = _method("tanh")
sigmoid = _method("sigmoid")
relu = _method("relu")
square = _method("square")
sum = _method("sum")  # noqa: A001
mean = _method("mean")
prod = _method("prod")
var = _method("var")
std = _method("std")
amax = _method("amax")
amin = _method("amin")
argmax = _method("argmax")
argmin = _method("argmin")
all = _method("all")  # noqa: A001
any = _method("any")  # noqa: A001
reshape = _method("reshape")
flatten = _method("flatten")
permute = _method("permute")
transpose = _method("transpose")
squeeze = _method("squeeze")
unsqueeze = _method("unsqueeze")
softmax = _method("softmax")
log_softmax = _method("log_softmax")
eq = _method("eq")
gt = _method("gt")
lt = _method("lt")
mul = _method("mul")
clip = clamp
mm = bmm = matmul


def max(x: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """The largest value, (values, indices) along `dim`, or with a tensor as second argument
    the elementwise maximum."""
    return _t(x).max(dim, keepdim)


def min(x: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    """The smallest value, (values, indices) along `dim`, or the elementwise minimum."""
    return _t(x).min(dim, keepdim)


def maximum(a: Any, b: Any) -> Tensor:
    a, b = as_tensor_arg(a), as_tensor_arg(b)
    return elementwise("torch.maximum", np.maximum, (a, b), result_type(_sig(a), _sig(b)))


def minimum(a: Any, b: Any) -> Tensor:
    a, b = as_tensor_arg(a), as_tensor_arg(b)
    return elementwise("torch.minimum", np.minimum, (a, b), result_type(_sig(a), _sig(b)))


def dot(a: Any, b: Any) -> Tensor:
    return (_t(a) * _t(b)).sum()


def _t_join(*args: Any) -> Any:
    *xs, fn, axis, dt = args
    return fn([as_dtype_of(x, dt) for x in xs], axis=axis)


def _join(fn: Any, tensors: Sequence[Any], dim: int, name: str, extra: int) -> Tensor:
    ts = [_t(x) for x in tensors]
    if not ts:
        raise GraphcError(f"{name} needs at least one tensor")
    dt = ts[0].dtype
    for x in ts[1:]:
        dt = promote_types(dt, x.dtype)
    axis = _dims(dim, ts[0].dim() + extra)[0]  # type: ignore[index]
    return record(_t_join, ts, (fn, axis, dt), name=name)[0]


def cat(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension."""
    return _join(np.concatenate, tensors, dim, "torch.cat", 0)


concat = cat


def stack(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors along a new dimension."""
    return _join(np.stack, tensors, dim, "torch.stack", 1)


def numel(x: Tensor) -> int:
    return x.numel()


def is_tensor(x: Any) -> bool:
    return isinstance(x, Tensor)


def isclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> Tensor:
    a, b = _t(a), _t(b)
    return (a - b).abs() <= atol + rtol * b.abs()


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """Whether all elements are close (realizes both)."""
    return bool(np.allclose(_t(a).numpy(), _t(b).numpy(), rtol=rtol, atol=atol))


def equal(a: Any, b: Any) -> bool:
    """Whether the tensors have the same shape and elements (realizes both)."""
    x, y = _t(a).numpy(), _t(b).numpy()
    return x.shape == y.shape and bool(np.array_equal(x, y))
