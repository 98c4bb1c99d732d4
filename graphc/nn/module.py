"""The module machinery of `graphc.nn`: the `Module` base class and the `layer` decorator, their
pytree registration, and the call context (train/eval mode, random key, state updates) with
`apply`.

Every `Module` is a registered pytree: arrays, `None` and sub-modules (also inside lists, tuples
and dicts) are its children, so a model passes through `graphc.jit` and `graphc.grad` as an
argument and its gradient comes back as a model of the same structure. Every other attribute
(ints, Python floats, strings, functions such as the activation) is static configuration: it is
part of the pytree structure, never traced and never trained.

Calling conventions:

* `model(x)` runs in eval mode: Dropout is the identity and BatchNorm uses its running
  statistics.
* `model(x, train=True, key=k)` runs in train mode. `k` is a random key (`nn.key(0)`, a uint64
  array of shape ()); each Dropout layer derives its own key from `k` and its path in the model,
  so masks are deterministic given `k`. State updates (BatchNorm running statistics) are
  discarded.
* `y, model = nn.apply(model, x, train=True, key=k)` also returns the model with its state
  updated: layers never mutate themselves, they record new state in the call context and
  `apply` builds the updated model. This is functional, so it works inside a traced train step
  (`nn.train_step` uses it).

Every module call runs under `graphc.scope`, so traced nodes carry the module path: the root is
`model`, attribute `encoder` is `model.encoder`, layer i of a Chain is `model.layers.i` (or
`model.layers.<name>` for a named Chain).

Example:
    >>> from graphc import nn
    >>> model = nn.Chain(nn.Dense(4, 8, nn.relu), nn.Dropout(0.5), nn.Dense(8, 2))
    >>> y, model = nn.apply(model, np.ones((3, 4), np.float32), train=True, key=nn.key(0))
    >>> y.shape
    (3, 2)
"""

from __future__ import annotations

import contextlib
import functools
import operator
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import graphc
from graphc.ir import GraphcError
from graphc.nn.random import fold_in
from graphc.nn.summary import default_extra_repr, show
from graphc.nn.tree import (
    ModuleBase,
    _children,
    _is_array,
    _is_dynamic,
    _is_traceable,
    _join,
    _size,
    _walk,
    load_state,
    modules,
    parameters,
    state,
)
from graphc.tree_util import register_pytree

__all__ = ["Context", "Module", "apply", "current_context", "layer"]


# ---------------------------------------------------------------------------------------------
# the call context

_local = threading.local()


class Context:
    """What a model call runs under: `train` (bool), `key` (a random key or None), the module
    paths (`path(module)`), and the state updates layers record (`record`). Layers read it
    with `nn.current_context()`; custom layers may too.
    """

    def __init__(self, root: Any, train: bool = False, key: Any = None, name: str = "model"):
        self.root = root
        self.train = train
        self.key = key
        self.name = name
        self.updates: dict[int, dict[str, Any]] = {}
        self.stack: list[tuple[Module, str]] = []
        self._paths: dict[int, str] | None = None
        self._counts: dict[str, int] = {}

    def path(self, module: Module) -> str:
        """The module's path from the root, e.g. `model.layers.0`."""
        if self._paths is None:
            self._paths = {}
            self._index(self.root, self.name)
        p = self._paths.get(id(module))
        if p is None:  # not reachable from the root: name it after its class, under the caller
            parent = self.stack[-1][1] if self.stack else self.name
            p = _join(parent, type(module).__name__.lower())
        return p

    def _index(self, v: Any, path: str) -> None:
        if _is_array(v):
            return
        if isinstance(v, Module):
            if id(v) in self._paths:  # type: ignore[operator]
                return
            self._paths[id(v)] = path  # type: ignore[index]
        elif type(v) not in (list, tuple, dict) and not hasattr(v, "__dict__"):
            return
        for name, c in _children(v) or []:
            self._index(c, _join(path, name))

    def rng(self, module: Module) -> Any:
        """A key for this call of `module`: derived from the context key, the module's path and
        how often the module has been called, so masks are deterministic given the key."""
        if self.key is None:
            raise GraphcError(
                f"{type(module).__name__} at {self.path(module)} needs a random "
                "key in train mode: call model(x, train=True, key=nn.key(0)), "
                "nn.apply(model, x, train=True, key=...), or pass key= to the "
                "train step"
            )
        p = self.path(module)
        n = self._counts.get(p, 0)
        self._counts[p] = n + 1
        return fold_in(fold_in(self.key, zlib.crc32(p.encode())), n)

    def record(self, module: Module, **fields: Any) -> None:
        """Record new values for fields of `module` (e.g. BatchNorm's running statistics);
        `nn.apply` returns the model with them."""
        self.updates.setdefault(id(module), {}).update(fields)


def current_context() -> Context | None:
    """The context of the model call in progress, or None outside model calls."""
    s = getattr(_local, "stack", None)
    return s[-1] if s else None


@contextlib.contextmanager
def _pushed(ctx: Context) -> Iterator[Context]:
    s = getattr(_local, "stack", None)
    if s is None:
        s = _local.stack = []
    s.append(ctx)
    try:
        yield ctx
    finally:
        s.pop()


def _call_in(ctx: Context, module: Module, call: Callable, args: tuple, kwargs: dict) -> Any:
    if ctx.stack and ctx.stack[-1][0] is module:  # super().__call__ or a helper: same scope
        return call(module, *args, **kwargs)
    path = ctx.path(module)
    parent = ctx.stack[-1][1] if ctx.stack else ""
    rel = path[len(parent) + 1 :] if parent and path.startswith(parent + ".") else path
    ctx.stack.append((module, path))
    try:
        with graphc.scope(rel):
            return call(module, *args, **kwargs)
    finally:
        ctx.stack.pop()


def _wrap_call(call: Callable) -> Callable:
    @functools.wraps(call)
    def __call__(self: Module, *args: Any, **kwargs: Any) -> Any:
        train = kwargs.pop("train", None)
        k = kwargs.pop("key", None)
        ctx = current_context()
        if ctx is None:
            with _pushed(Context(self, bool(train), k)) as c:
                return _call_in(c, self, call, args, kwargs)
        saved = (ctx.train, ctx.key)
        if train is not None:
            ctx.train = bool(train)
        if k is not None:
            ctx.key = k
        try:
            return _call_in(ctx, self, call, args, kwargs)
        finally:
            ctx.train, ctx.key = saved

    __call__._nn_wrapped = True  # type: ignore[attr-defined]
    return __call__


def apply(
    model: Any, *args: Any, train: bool = False, key: Any = None, name: str = "model", **kwargs: Any
) -> tuple[Any, Any]:
    """Call `model(*args, **kwargs)` and return `(output, updated_model)`, where the updated
    model carries the state layers recorded (BatchNorm's running statistics in train mode).

    Example:
        >>> bn = nn.BatchNorm(3)
        >>> y, bn = nn.apply(bn, np.random.rand(8, 3).astype(np.float32), train=True)
        >>> bn.running_mean.shape
        (3,)
    """
    ctx = Context(model, train, key, name)
    with _pushed(ctx):
        out = model(*args, **kwargs)
    return out, (_with_updates(model, ctx.updates) if ctx.updates else model)


def _with_updates(v: Any, updates: dict[int, dict[str, Any]]) -> Any:
    if isinstance(v, Module):
        fields = {k: _with_updates(c, updates) for k, c in vars(v).items() if _is_dynamic(c)}
        fields.update(updates.get(id(v), {}))
        if all(fields[k] is getattr(v, k) for k in fields):
            return v
        new = object.__new__(type(v))
        new.__dict__.update(vars(v))
        new.__dict__.update(fields)
        return new
    if type(v) in (list, tuple):
        items = [_with_updates(c, updates) for c in v]
        return v if all(a is b for a, b in zip(items, v, strict=True)) else type(v)(items)
    if type(v) is dict:
        d = {k: _with_updates(c, updates) for k, c in v.items()}
        return v if all(d[k] is v[k] for k in v) else d
    return v


# ---------------------------------------------------------------------------------------------
# Module


class _Aux:
    """A module's pytree metadata: attribute names in order, which are children, and the
    static values. Hashable and compared by value (it is part of jit cache keys)."""

    __slots__ = ("names", "dynamic", "static", "_hash")

    def __init__(self, names: tuple[str, ...], dynamic: tuple[bool, ...], static: tuple):
        self.names, self.dynamic, self.static = names, dynamic, static
        try:
            self._hash = hash((names, dynamic, static))
        except TypeError:
            self._hash = hash((names, dynamic))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, _Aux) or self._hash != other._hash:
            return False
        if self.names != other.names or self.dynamic != other.dynamic:
            return False
        s, o = self.static, other.static
        if len(s) != len(o):
            return False
        # a model rebuilt by a step carries the very same static objects: identity decides
        if all(map(operator.is_, s, o)):
            return True
        try:
            return all(
                a is b or (type(a) is type(b) and bool(a == b)) for a, b in zip(s, o, strict=True)
            )
        except Exception:
            return False

    def __repr__(self) -> str:
        return ",".join(n for n, d in zip(self.names, self.dynamic, strict=True) if d)


def _module_flatten(m: Module) -> tuple[list, _Aux]:
    d = vars(m)
    children, static, dyn = [], [], []
    for v in d.values():
        if _is_dynamic(v):
            children.append(v)
            dyn.append(True)
        else:
            static.append(v)
            dyn.append(False)
    return children, _Aux(tuple(d), tuple(dyn), tuple(static))


def _module_child_names(aux: _Aux, n: int) -> list[str]:
    return [f".{name}" for name, d in zip(aux.names, aux.dynamic, strict=True) if d]


def _module_unflatten(cls: type, aux: _Aux, children: list) -> Module:
    obj = object.__new__(cls)
    kids, statics = iter(children), iter(aux.static)
    d = obj.__dict__
    for n, y in zip(aux.names, aux.dynamic, strict=True):
        d[n] = next(kids) if y else next(statics)
    return obj


class Module(ModuleBase):
    """Base class of layers and models: a registered pytree whose array attributes are its
    parameters. Subclass it and define `__call__` (or `forward`); calls run under
    `graphc.scope(<path>)`.

    Attributes named in the class variable `_nontrainable` hold state, not parameters: they get
    no gradient in `nn.train_step` and optimizers leave them alone (BatchNorm's running
    statistics).

    Example:
        >>> class Affine(nn.Module):
        ...     def __init__(self, W, b):
        ...         self.W, self.b = W, b
        ...     def __call__(self, x):
        ...         return x @ self.W.T + self.b
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        call = cls.__call__
        if not getattr(call, "_nn_wrapped", False):
            cls.__call__ = _wrap_call(call)  # type: ignore[method-assign]
        register_pytree(
            cls, _module_flatten, functools.partial(_module_unflatten, cls), _module_child_names
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        forward = getattr(self, "forward", None)
        if forward is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither __call__ nor forward")
        return forward(*args, **kwargs)

    # -- inspection ----------------------------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """Trainable arrays by path (e.g. `layers.0.weight`), in pytree order."""
        return parameters(self)

    def buffers(self) -> dict[str, Any]:
        """Non-trainable arrays by path (e.g. BatchNorm's `running_mean`)."""
        return {p: x for p, x, t in _walk(self) if not t and _is_traceable(x)}

    def modules(self) -> list[Module]:
        """This module and every sub-module, depth first (like Flux.modules)."""
        return modules(self)

    def state(self) -> dict[str, np.ndarray]:
        """Copies of all arrays (trainable and not) by path, like Flux.state."""
        return state(self)

    def load_state(self, new_state: dict[str, Any]) -> Module:
        """Copy the arrays of `new_state` (from `state()` or `nn.load`) into this model, in
        place, and return it. Raises StateError naming the first mismatching path."""
        new = load_state(self, new_state)
        self.__dict__.update(vars(new))
        return self

    def num_parameters(self, trainable: bool = True) -> int:
        """How many numbers the (non-)trainable arrays hold."""
        return sum(_size(x) for _, x, t in _walk(self) if t == trainable and _is_traceable(x))

    # -- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text between the parentheses of this layer's one-line form."""
        return default_extra_repr(self)

    def _display_children(self) -> list[tuple[str, Any]]:
        """(name, child) pairs shown on their own lines when printing."""
        out: list[tuple[str, Any]] = []
        for k, c in vars(self).items():
            if type(c) in (list, tuple, dict) and _is_dynamic(c):
                out += list(_children(c) or [])
            elif c is not None and _is_dynamic(c):
                out.append((k, c))
        return out

    def summary(self) -> None:
        """Print the model like Flux does: one line per layer with its parameter count, and the
        totals (arrays, parameters, non-trainable numbers, bytes)."""
        print(repr(self))

    def __repr__(self) -> str:
        lines = show(self, "", True)
        return "\n".join(lines)


Module.__call__ = _wrap_call(Module.__call__)  # type: ignore[method-assign]


def layer(cls: type) -> type:
    """Class decorator: make a plain class with array attributes a Module (trainable, callable
    under a scope, printable), the analogue of Flux's `@layer`.

    Example:
        >>> @nn.layer
        ... class Affine:
        ...     def __init__(self, W, b):
        ...         self.W, self.b = W, b
        ...     def __call__(self, x):
        ...         return x @ self.W.T + self.b
    """
    if issubclass(cls, Module):
        return cls
    ns = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return type(cls.__name__, (cls, Module), ns)
