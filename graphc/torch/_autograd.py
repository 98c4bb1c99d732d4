"""`backward()` and `torch.autograd.grad`: requests for graphc's reverse-mode pass.

Nothing is differentiated when they are called. The engine records a request (the output's
node, the seed, the leaves under it that require grad) and one placeholder input per leaf;
`.grad` is built on the placeholders (accumulating, as in PyTorch). The next realization runs
`passes.autodiff.vjp` over the recorded history (or takes the compiled result from the
cache) and computes forward, backward and whatever used the gradients as one executable.

Example:
    >>> w = torch.ones(3, requires_grad=True)
    >>> (w * w).sum().backward()
    >>> w.grad
    tensor([2., 2., 2.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.torch._engine import engine, no_grad
from graphc.torch._ops import node_of, wrap
from graphc.torch._tensor import Tensor, as_tensor_arg
from graphc.trace import user_location

__all__ = ["backward", "grad"]


def _seed(t: Tensor, gradient: Any, what: str) -> Any:
    if gradient is None:
        if t.numel() != 1:
            raise GraphcError(
                f"{what}: the gradient can be implied only for a tensor of one element; pass "
                f"gradient= (a tensor of shape {tuple(t.shape)})",
                user_location(),
            )
        return None
    g = as_tensor_arg(gradient)
    if not isinstance(g, Tensor):
        g = Tensor._from_array(np.full(tuple(t.shape), g, t.dtype))
    if tuple(g.shape) != tuple(t.shape):
        raise GraphcError(
            f"{what}: gradient of shape {tuple(g.shape)} for a tensor of shape {tuple(t.shape)}",
            user_location(),
        )
    with no_grad():
        return node_of(g.type(t.dtype), False)


def _root(t: Tensor, what: str) -> Any:
    if not t.requires_grad:
        raise GraphcError(
            f"{what}: the tensor does not require grad (no leaf it was computed from has "
            "requires_grad=True, or it was computed under no_grad)",
            user_location(),
        )
    return node_of(t, True)


def backward(t: Tensor, gradient: Any = None, create_graph: bool = False) -> None:
    """Record `t.backward(gradient)`: each leaf under `t` that requires grad gets the gradient
    added to its `.grad`."""
    if create_graph:
        raise GraphcError(
            "backward(create_graph=True) is not supported by graphc.torch; for higher "
            "derivatives use graphc.grad on a NumPy function",
            user_location(),
        )
    root = _root(t, ".backward()")
    seed = _seed(t, gradient, ".backward()")
    leaves = engine.history_leaves(root)
    phs = engine.request(root, seed, leaves)
    with no_grad():
        for (_, p), ph in zip(leaves, phs, strict=True):
            g = wrap(ph, False)
            if p.grad is None:
                p.grad = g
            else:  # accumulate in place: the same .grad tensor, as in PyTorch
                p.grad.add_(g)
            if engine.capture is not None:
                engine.capture.grad_leaf(p)


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: Any = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """The gradients of `outputs` with respect to `inputs` (leaves that require grad), without
    touching `.grad`.

    Example:
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> torch.autograd.grad((x ** 2).sum(), [x])
        (tensor([2., 4.]),)
    """
    if create_graph:
        raise GraphcError("autograd.grad(create_graph=True) is not supported", user_location())
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    gos: Sequence[Any] = (
        [None] * len(outs)
        if grad_outputs is None
        else ([grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs))
    )
    for x in ins:
        if not (x.requires_grad and x.is_leaf):
            raise GraphcError(
                "autograd.grad: graphc.torch takes gradients with respect to leaves that "
                "require grad",
                user_location(),
            )
    total: list[Tensor | None] = [None] * len(ins)
    for out, go in zip(outs, gos, strict=True):
        root = _root(out, "autograd.grad")
        seed = _seed(out, go, "autograd.grad")
        wanted = [(n, p) for n, p in engine.history_leaves(root) if any(p is x for x in ins)]
        phs = engine.request(root, seed, wanted)
        with no_grad():
            for (_, p), ph in zip(wanted, phs, strict=True):
                k = next(i for i, x in enumerate(ins) if x is p)
                g = wrap(ph, False)
                total[k] = g if total[k] is None else total[k] + g
    if not allow_unused and any(g is None for g in total):
        raise GraphcError(
            "autograd.grad: an input was not used to compute the outputs (pass "
            "allow_unused=True to get None for it)",
            user_location(),
        )
    return tuple(total)
