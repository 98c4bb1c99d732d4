"""`torch.autograd`: `grad`, `backward`, and `Variable` (old tutorials' wrapper, now the
tensor itself).

Example:
    >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> torch.autograd.grad((x * x).sum(), [x])
    (tensor([2., 4.]),)
"""

from __future__ import annotations

from typing import Any

from graphc.torch._autograd import grad
from graphc.torch._engine import enable_grad, no_grad, set_grad_enabled
from graphc.torch._tensor import Tensor

__all__ = ["Variable", "backward", "enable_grad", "grad", "no_grad", "set_grad_enabled"]


def backward(tensors: Any, grad_tensors: Any = None) -> None:
    """`t.backward(g)` for each tensor (and gradient) given."""
    ts = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    gs = (
        [grad_tensors]
        if grad_tensors is None or isinstance(grad_tensors, Tensor)
        else list(grad_tensors)
    )
    if len(gs) == 1 and len(ts) > 1:
        gs = gs * len(ts)
    for t, g in zip(ts, gs, strict=True):
        t.backward(g)


def Variable(data: Tensor, requires_grad: bool = False) -> Tensor:  # noqa: N802 (old API)
    """The tensor itself (Variable and Tensor merged in PyTorch 0.4)."""
    if requires_grad and not data.requires_grad:
        data.requires_grad_(True)
    return data
