"""`torch.optim` on graphc: SGD (momentum, Nesterov, weight decay), Adam and AdamW.

The update math is graphc.nn's optimizers' (PyTorch's formulations): `step()` records one
template that updates every parameter of a group (graphc.nn's `update` on the traced
parameters, gradients and state), writes the results into the parameters and the state tensors
in place, and realizes: forward, backward and update run as one executable, compiled once and
reused by every later step of the same shapes. The learning rate is an input of that graph, so
changing it (a schedule) does not recompile. State tensors (momentum buffers, moments, step
counts) start at zero, so the first step runs the same graph as the others.

Example:
    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from graphc import nn as gnn
from graphc.ir import GraphcError
from graphc.nn.optim import AdamState, SGDState
from graphc.torch._engine import enable_grad, engine, no_grad
from graphc.torch._ops import record
from graphc.torch._tensor import Tensor
from graphc.trace import user_location

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]


class Optimizer:
    """Base class: parameter groups (`param_groups`, each a dict with "params" and the
    hyperparameters), per-parameter state (`state[p]`), `zero_grad()` and `step()`."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Tensor]] = {}
        params = list(params)
        if not params:
            raise GraphcError(f"{type(self).__name__} got an empty parameter list", user_location())
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        g = dict(group)
        g["params"] = list(g["params"]) if not isinstance(g["params"], Tensor) else [g["params"]]
        for k, v in self.defaults.items():
            g.setdefault(k, v)
        for p in g["params"]:
            if not (isinstance(p, Tensor) and p.is_leaf and p.requires_grad):
                raise GraphcError(
                    f"{type(self).__name__} optimizes leaf tensors that require grad",
                    user_location(),
                )
        self.param_groups.append(g)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (set them to None, PyTorch's default)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update the parameters that have gradients, then realize (the end of a training
        step: everything pending runs as one executable)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for g in self.param_groups:
                ps = [p for p in g["params"] if p.grad is not None]
                if ps:
                    self._update(g, ps)
        engine.realize("optimizer.step()")
        return loss

    def _update(self, group: dict[str, Any], ps: list[Tensor]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _buffer(self, p: Tensor, name: str) -> Tensor:
        st = self.state.setdefault(p, {})
        if name not in st:
            dt = np.int64 if name == "step" else p.dtype
            st[name] = Tensor._from_array(np.zeros(() if name == "step" else tuple(p.shape), dt))
        return st[name]

    def state_dict(self) -> dict[str, Any]:
        """State by parameter index, and the groups' hyperparameters."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {
            index[id(p)]: {k: v.detach() for k, v in st.items()}
            for p, st in self.state.items()
            if id(p) in index
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        params = [p for g in self.param_groups for p in g["params"]]
        for g, saved in zip(self.param_groups, state_dict["param_groups"], strict=True):
            g.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for k, st in state_dict["state"].items():
            p = params[int(k)]
            self.state[p] = {
                name: Tensor._from_array(np.array(v.numpy() if isinstance(v, Tensor) else v))
                for name, v in st.items()
            }

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


def _assign(ps: list[Tensor], values: list[Tensor]) -> None:
    """Write recorded results into existing tensors (parameters, state), in place."""
    for p, v in zip(ps, values, strict=True):
        p._s.set_node(v._s.node, history=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# SGD


def _t_sgd(*args: Any) -> Any:
    *ops, n, momentum, nesterov, weight_decay = args
    ps, gs = list(ops[:n]), list(ops[n : 2 * n])
    bufs = list(ops[2 * n : 3 * n]) if momentum else None
    lr = ops[-1]
    opt = gnn.SGD(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    new_p, state = opt.update(gs, SGDState(0, bufs), ps)
    return (*new_p, *(state.momentum or []))


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay
    (PyTorch's formulation; momentum buffers start at zero, which gives PyTorch's first step).

    Example:
        >>> opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        **kwargs: Any,
    ):
        if dampening or maximize:
            raise GraphcError("SGD: dampening and maximize are not supported", user_location())
        if nesterov and momentum <= 0:
            raise GraphcError("SGD: nesterov needs momentum > 0", user_location())
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], ps: list[Tensor]) -> None:
        m = float(group["momentum"])
        bufs = [self._buffer(p, "momentum_buffer") for p in ps] if m else []
        operands = [*ps, *[p.grad for p in ps], *bufs, float(group["lr"])]
        static = (len(ps), m, bool(group["nesterov"]), float(group["weight_decay"]))
        out = record(_t_sgd, operands, static, name="SGD.step()")
        _assign(ps + bufs, out)


# ---------------------------------------------------------------------------------------------
# Adam and AdamW


def _t_adam(*args: Any) -> Any:
    *ops, n, cls, b1, b2, eps, weight_decay = args
    lr = ops[-1]
    opt = cls(lr=lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    new_p, steps, ms, vs = [], [], [], []
    for k in range(n):  # each parameter with its own step count, as in PyTorch
        p, g, step, m, v = ops[k], ops[n + k], ops[2 * n + k], ops[3 * n + k], ops[4 * n + k]
        (p2,), st = opt.update([g], AdamState(step, [m], [v]), [p])
        new_p.append(p2)
        steps.append(st.count)
        ms.append(st.mu[0])
        vs.append(st.nu[0])
    return (*new_p, *steps, *ms, *vs)


class Adam(Optimizer):
    """Adam (PyTorch's formulation); `weight_decay` adds L2 to the gradient.

    Example:
        >>> opt = optim.Adam(model.parameters(), lr=1e-3)
    """

    _impl: type = gnn.Adam

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        **kwargs: Any,
    ):
        if amsgrad or kwargs.get("maximize"):
            raise GraphcError(
                f"{type(self).__name__}: amsgrad and maximize are not supported", user_location()
            )
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], ps: list[Tensor]) -> None:
        steps = [self._buffer(p, "step") for p in ps]
        ms = [self._buffer(p, "exp_avg") for p in ps]
        vs = [self._buffer(p, "exp_avg_sq") for p in ps]
        operands = [*ps, *[p.grad for p in ps], *steps, *ms, *vs, float(group["lr"])]
        b1, b2 = group["betas"]
        static = (
            len(ps),
            self._impl,
            float(b1),
            float(b2),
            float(group["eps"]),
            float(group["weight_decay"]),
        )
        out = record(_t_adam, operands, static, name=f"{type(self).__name__}.step()")
        _assign(ps + steps + ms + vs, out)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01), PyTorch's formulation.

    Example:
        >>> opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    """

    _impl = gnn.AdamW

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
        **kwargs: Any,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **kwargs)


class _Scheduler:
    """Learning-rate schedules: `scheduler.step()` once per epoch changes the groups' "lr"
    (an input of the compiled step, so nothing recompiles)."""

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def _factor(self, epoch: int) -> float:  # pragma: no cover
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            g["lr"] = lr * self._factor(self.last_epoch)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]


class _StepLR(_Scheduler):
    """Multiply the learning rate by `gamma` every `step_size` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = int(step_size), float(gamma)

    def _factor(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.step_size)


class _ExponentialLR(_Scheduler):
    """Multiply the learning rate by `gamma` every epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float):
        super().__init__(optimizer)
        self.gamma = float(gamma)

    def _factor(self, epoch: int) -> float:
        return self.gamma**epoch


class lr_scheduler:  # noqa: N801 (PyTorch's module name: optim.lr_scheduler.StepLR)
    """`optim.lr_scheduler.StepLR` and `ExponentialLR`."""

    StepLR = _StepLR
    ExponentialLR = _ExponentialLR
