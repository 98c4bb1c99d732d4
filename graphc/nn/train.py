"""The training step: forward, loss, backward and optimizer update traced into ONE graph and
compiled as one executable.

    step = nn.train_step(model, nn.cross_entropy, nn.Adam(1e-3))
    opt_state = step.init(model)                    # = optimizer.init(trainable parameters)
    for x, y in batches:
        model, opt_state, loss = step(model, opt_state, x, y)          # key=... for Dropout

Inside, `step` is `graphc.jit` of a function that partitions the model into trainable
parameters and the rest (`nn.partition`), calls `graphc.value_and_grad` of
`loss_fn(model(x), y)` with respect to the parameters only (BatchNorm's running statistics and
other non-trainable arrays get no gradient), runs the model with `nn.apply(..., train=True)` so
that state updates come back as an auxiliary output, and applies `optimizer.update`. Because
graphc's transformations splice into an enclosing trace, all of it is one graph:
`step.lower(model, opt_state, x, y)` shows it (`.traced`, `.optimized`, `.source`).

Example:
    >>> model = nn.Chain(nn.Dense(4, 8, nn.relu), nn.Dense(8, 3))
    >>> step = nn.train_step(model, nn.cross_entropy, nn.SGD(0.1))
    >>> state = step.init(model)
    >>> x, y = np.random.rand(16, 4).astype(np.float32), np.zeros(16, np.int64)
    >>> model, state, loss = step(model, state, x, y)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import graphc
from graphc.api import Lowered
from graphc.nn.module import Context, _pushed, _with_updates, apply
from graphc.nn.optim import Optimizer
from graphc.nn.tree import _is_traceable, combine, partition
from graphc.tree_util import TreeDef, flatten, leaf_paths, register_pytree, unflatten

__all__ = ["TrainStep", "accuracy", "train_step"]


def _array_positions(model: Any) -> list[int]:
    return [i for i, x in enumerate(flatten(model)[0]) if _is_traceable(x)]


class _Flat:
    """A model the step has flattened already, passed to `jit` as its leaves and structure: the
    model is walked once per step instead of twice (once here, once again inside jit)."""

    __slots__ = ("leaves", "tree")

    def __init__(self, leaves: list, tree: TreeDef):
        self.leaves, self.tree = leaves, tree


register_pytree(
    _Flat,
    lambda f: (f.leaves, f.tree),
    lambda tree, leaves: _Flat(list(leaves), tree),
    lambda tree, n: leaf_paths(tree),  # graph inputs keep their paths, model.layers[0].weight
)


class TrainStep:
    """A compiled training step; see `train_step`.

    `step(model, opt_state, x, y, key=None) -> (model, opt_state, loss)`; `step.init(model)`
    makes the optimizer state; `step.lower(...)` shows the graph and generated code;
    `step.compiles` lists why each compile happened (one per input signature).
    """

    def __init__(
        self,
        loss_fn: Callable[..., Any],
        optimizer: Optimizer,
        *,
        train: bool = True,
        loss_takes_model: bool = False,
        backend: str | None = None,
        log_compiles: bool | None = None,
    ):
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.train = train
        self.loss_takes_model = loss_takes_model
        self.jitted = graphc.jit(self._step, backend=backend, log_compiles=log_compiles)

    def init(self, model: Any) -> Any:
        """The optimizer state for the trainable parameters of `model`."""
        return self.optimizer.init(partition(model)[0])

    def _objective(self, params: Any, rest: Any, x: Any, y: Any, key: Any) -> tuple[Any, list]:
        model = combine(params, rest)
        if self.loss_takes_model:
            ctx = Context(model, self.train, key)
            with _pushed(ctx):
                loss = self.loss_fn(model, x, y)
            new_model = _with_updates(model, ctx.updates)
        else:
            out, new_model = apply(model, x, train=self.train, key=key)
            loss = self.loss_fn(out, y)
        new_rest = partition(new_model)[1]
        # only arrays can leave a graph: return the (possibly updated) state arrays
        return loss, [v for v in flatten(new_rest)[0] if _is_traceable(v)]

    def _step(self, model: _Flat, opt_state: Any, x: Any, y: Any, key: Any) -> tuple:
        model = unflatten(model.tree, model.leaves)
        params, rest = partition(model)
        vg = graphc.value_and_grad(self._objective, argnums=0, has_aux=True)
        (loss, rest_arrays), grads = vg(params, rest, x, y, key)
        leaves, td = flatten(rest)
        it = iter(rest_arrays)
        new_rest = unflatten(td, [next(it) if _is_traceable(v) else v for v in leaves])
        new_params, new_state = self.optimizer.update(grads, opt_state, params)
        new_model = combine(new_params, new_rest)
        new_leaves = flatten(new_model)[0]
        return [new_leaves[i] for i in _array_positions(model)], new_state, loss

    def __call__(
        self, model: Any, opt_state: Any, x: Any, y: Any, key: Any = None
    ) -> tuple[Any, Any, Any]:
        leaves, td = flatten(model)
        arrays, opt_state, loss = self.jitted(_Flat(leaves, td), opt_state, x, y, key)
        it = iter(arrays)
        leaves = [
            (float(next(it)) if isinstance(v, float) else next(it)) if _is_traceable(v) else v
            for v in leaves
        ]
        return unflatten(td, leaves), opt_state, loss

    def lower(self, model: Any, opt_state: Any, x: Any, y: Any, key: Any = None) -> Lowered:
        """The traced graph, the optimized graph (`.optimized`, whose `fused` nodes are the
        compiled kernels) and the generated source for these arguments."""
        return self.jitted.lower(_Flat(*flatten(model)), opt_state, x, y, key)

    def trace(self, model: Any, opt_state: Any, x: Any, y: Any, key: Any = None) -> graphc.Graph:
        """The step's traced graph for these arguments (traced once, not compiled)."""
        return self.jitted.trace(_Flat(*flatten(model)), opt_state, x, y, key)

    @property
    def compiles(self) -> list[str]:
        """Why each compile happened, in order (one entry per new input signature)."""
        return self.jitted.compiles


def train_step(
    model: Any,
    loss_fn: Callable[..., Any],
    optimizer: Optimizer,
    *,
    train: bool = True,
    loss_takes_model: bool = False,
    backend: str | None = None,
    log_compiles: bool | None = None,
) -> TrainStep:
    """A compiled training step `step(model, opt_state, x, y, key=None) -> (model, opt_state,
    loss)`: forward (in train mode, with `key` for Dropout), `loss_fn(model(x), y)` (or
    `loss_fn(model, x, y)` with `loss_takes_model=True`), backward with respect to the
    trainable parameters, the optimizer update and the new running statistics, all in one
    graph compiled as one executable. `model` is only used to check that it has parameters;
    the step works for any model of that structure.

    Example:
        >>> step = nn.train_step(model, nn.cross_entropy, nn.Adam(1e-3))
        >>> opt_state = step.init(model)
        >>> model, opt_state, loss = step(model, opt_state, x, y, key=nn.fold_in(k, i))
    """
    if not flatten(partition(model)[0])[0]:
        raise graphc.GraphcError("train_step: the model has no trainable parameters")
    return TrainStep(
        loss_fn,
        optimizer,
        train=train,
        loss_takes_model=loss_takes_model,
        backend=backend,
        log_compiles=log_compiles,
    )


def accuracy(logits: Any, labels: Any) -> float:
    """Fraction of rows whose largest logit is at the label (on concrete arrays).

    Example:
        >>> nn.accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
        0.5
    """
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)))
