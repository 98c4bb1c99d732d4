"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam and AdamW, written with NumPy
operations on pytrees so that an update traces into the same graph as the gradient.

    state = opt.init(params)
    params, state = opt.update(grads, state, params)

`params` is any pytree (a Module, a plain `@graphc.pytree` object, a dict of arrays, ...);
`grads` has the same structure (None where there is no gradient). Only trainable leaves with a
gradient are updated: floating-point arrays outside modules' non-trainable fields (BatchNorm's
running statistics are left alone even when a gradient is given for them); everything else
(functions, integers, None) passes through.
Optimizer state is a NamedTuple of pytrees (so it can be jitted, saved and inspected): a step
`count` and per-parameter buffers shaped like the parameters.

`lr` is a number or a schedule: a function of the step count (0 for the first update) that may
use NumPy operations, e.g. `lr=lambda t: 1e-3 * 0.95 ** t`. Hyperparameters are compiled into
the train step as constants; change them by building a new optimizer (and train step).

Example:
    >>> opt = nn.Adam(lr=1e-3)
    >>> params = {"w": np.ones(3)}
    >>> state = opt.init(params)
    >>> params, state = opt.update({"w": np.ones(3)}, state, params)
    >>> params["w"]
    array([0.999, 0.999, 0.999])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from graphc import numpy as gnp
from graphc.ir import GraphcError
from graphc.nn.tree import _walk
from graphc.trace import Tracer
from graphc.tree_util import TreeDef, flatten, unflatten

__all__ = ["SGD", "Adam", "AdamState", "AdamW", "Optimizer", "SGDState"]


# ---------------------------------------------------------------------------------------------
# pytree helpers


def _trainable(params: Any) -> list[bool]:
    """Per leaf of `params`: a floating-point array (or Python float) that is not in a
    module's non-trainable fields (BatchNorm's running statistics)."""
    return [t for _, _, t in _walk(params)]


def _flatten_up_to(td: TreeDef, tree: Any) -> list:
    """The subtrees of `tree` at the leaf positions of treedef `td` (None where `tree` has None
    and `td` a leaf), e.g. gradients (None for non-differentiable leaves) against parameters."""
    leaves, td2 = flatten(tree)
    out: list = []
    it = iter(leaves)

    def go(a: TreeDef, b: TreeDef) -> None:
        if a.kind is None:
            out.append(unflatten(b, [next(it) for _ in range(b.num_leaves)]))
            return
        if b.kind is type(None):
            out.extend([None] * a.num_leaves)
            return
        if a.kind is not b.kind or len(a.children) != len(b.children):
            raise GraphcError(
                f"optimizer: the gradient/state structure {b} does not match the parameters {a}"
            )
        for x, y in zip(a.children, b.children, strict=True):
            go(x, y)

    go(td, td2)
    return out


def _cast(v: Any, like: Any) -> Any:
    """A scalar (Python number or 0-d array, possibly traced) in the dtype of `like`."""
    if type(v) in (int, float) or isinstance(like, float):  # weak Python scalars stay as they are
        return v
    return gnp.astype(v, like.dtype)


def _zeros_like(p: Any) -> Any:
    if isinstance(p, float):
        return 0.0
    return np.zeros(np.shape(p), p.dtype) if not isinstance(p, Tracer) else gnp.zeros_like(p)


def _count0() -> np.ndarray:
    return np.zeros((), np.int64)


class Optimizer:
    """Base class: subclasses define `init(params)` and `_update_leaf(...)`.

    Example:
        >>> sgd = nn.SGD(lr=0.1)
        >>> p, s = sgd.update({"w": np.array([1.0])}, sgd.init({"w": np.array([1.0])}),
        ...                   {"w": np.array([2.0])})
        >>> p["w"]
        array([1.9])
    """

    lr: float | Callable[[Any], Any]

    def _lr(self, count: Any) -> Any:
        return self.lr(count) if callable(self.lr) else self.lr

    def init(self, params: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, grads: Any, state: Any, params: Any) -> tuple[Any, Any]:  # noqa: D401
        raise NotImplementedError  # pragma: no cover

    def _buffers(self, params: Any, n: int) -> list[Any]:
        leaves, td = flatten(params)
        mask = _trainable(params)
        return [
            unflatten(
                td, [_zeros_like(p) if t else None for p, t in zip(leaves, mask, strict=True)]
            )
            for _ in range(n)
        ]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(v, '__name__', v)!s}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _leafwise(params: Any, grads: Any, bufs: list[Any]) -> tuple[TreeDef, list, list, list]:
    """Leaves of params, and per leaf the gradient (None where there is none or the leaf is
    not trainable) and the buffers."""
    leaves, td = flatten(params)
    g = [
        x if t else None for x, t in zip(_flatten_up_to(td, grads), _trainable(params), strict=True)
    ]
    b = [_flatten_up_to(td, t) for t in bufs]
    return td, leaves, g, b


def _rebuild(td: TreeDef, cols: Iterator[list]) -> list:
    return [unflatten(td, c) for c in cols]


# ---------------------------------------------------------------------------------------------
# SGD


class SGDState(NamedTuple):
    count: Any
    momentum: Any  # a tree like params, or None without momentum


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's formulation:

        g = grad + weight_decay * p
        buf = momentum * buf + g                   (if momentum)
        g = g + momentum * buf if nesterov else buf
        p = p - lr * g

    Example:
        >>> opt = nn.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    """

    def __init__(
        self,
        lr: float | Callable[[Any], Any] = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        if nesterov and momentum <= 0:
            raise GraphcError("SGD: nesterov needs momentum > 0")
        self.lr, self.momentum, self.nesterov = lr, float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)

    def init(self, params: Any) -> SGDState:
        """Zero momentum buffers shaped like the parameters (none without momentum)."""
        return SGDState(_count0(), self._buffers(params, 1)[0] if self.momentum else None)

    def update(self, grads: Any, state: SGDState, params: Any) -> tuple[Any, SGDState]:
        """One step: `(new_params, new_state)`."""
        bufs = [state.momentum] if self.momentum else []
        td, ps, gs, bs = _leafwise(params, grads, bufs)
        lr = self._lr(state.count)
        new_p, new_b = [], []
        for k, (p, g) in enumerate(zip(ps, gs, strict=True)):
            if g is None:
                new_p.append(p)
                new_b.append(None)
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                buf = self.momentum * bs[0][k] + g
                new_b.append(buf)
                g = g + self.momentum * buf if self.nesterov else buf
            new_p.append(p - _cast(lr, p) * g)
        mom = unflatten(td, new_b) if self.momentum else None
        return unflatten(td, new_p), SGDState(state.count + 1, mom)


# ---------------------------------------------------------------------------------------------
# Adam / AdamW


class AdamState(NamedTuple):
    count: Any
    mu: Any  # first moments, a tree like params
    nu: Any  # second moments


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's formulation; `weight_decay` adds `weight_decay * p` to
    the gradient (L2), `decoupled=True` (AdamW) decays the weights directly:

        t = count + 1
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    Example:
        >>> opt = nn.Adam(lr=1e-3, b1=0.9, b2=0.999)
    """

    decoupled = False

    def __init__(
        self,
        lr: float | Callable[[Any], Any] = 1e-3,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.lr, self.b1, self.b2, self.eps = lr, float(b1), float(b2), float(eps)
        self.weight_decay = float(weight_decay)

    def init(self, params: Any) -> AdamState:
        """Zero moment estimates shaped like the parameters."""
        mu, nu = self._buffers(params, 2)
        return AdamState(_count0(), mu, nu)

    def update(self, grads: Any, state: AdamState, params: Any) -> tuple[Any, AdamState]:
        """One step: `(new_params, new_state)`."""
        td, ps, gs, (ms, vs) = _leafwise(params, grads, [state.mu, state.nu])
        lr = self._lr(state.count)
        t = state.count + 1
        bc1 = 1 - self.b1 ** gnp.astype(t, np.float64)
        bc2 = 1 - self.b2 ** gnp.astype(t, np.float64)
        new_p, new_m, new_v = [], [], []
        for p, g, m, v in zip(ps, gs, ms, vs, strict=True):
            if g is None:
                new_p.append(p)
                new_m.append(None)
                new_v.append(None)
                continue
            if self.weight_decay and self.decoupled:
                p = p - (_cast(lr, p) * self.weight_decay) * p
            elif self.weight_decay:
                g = g + self.weight_decay * p
            m = self.b1 * m + (1 - self.b1) * g
            v = self.b2 * v + (1 - self.b2) * (g * g)
            mhat = m / _cast(bc1, p)
            vhat = v / _cast(bc2, p)
            new_p.append(p - _cast(lr, p) * mhat / (np.sqrt(vhat) + self.eps))
            new_m.append(m)
            new_v.append(v)
        mu, nu = _rebuild(td, iter([new_m, new_v]))
        return unflatten(td, new_p), AdamState(t, mu, nu)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's formulation: first
    `p = p - lr * weight_decay * p`, then the Adam step.

    Example:
        >>> opt = nn.AdamW(lr=1e-3, weight_decay=0.01)
    """

    decoupled = True

    def __init__(
        self,
        lr: float | Callable[[Any], Any] = 1e-3,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        super().__init__(lr, b1, b2, eps, weight_decay)
