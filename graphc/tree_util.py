"""Nested containers ("pytrees"): flatten to a list of leaves and rebuild.

Containers: tuple, list, dict (insertion order kept), NamedTuple, dataclass instances, None, and
classes registered with `register_pytree` or the `@pytree` decorator (the analogue of Flux's
`@functor`). Everything else is a leaf. Which leaves are traced is decided by the caller.

Example:
    >>> leaves, tree = flatten({"a": 1.0, "b": (2.0, None)})
    >>> leaves
    [1.0, 2.0]
    >>> unflatten(tree, [10.0, 20.0])
    {'a': 10.0, 'b': (20.0, None)}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

# cls -> (flatten: obj -> (children, aux), unflatten: (aux, children) -> obj)
_REGISTRY: dict[type, tuple[Callable, Callable]] = {}
# cls -> child_names: (aux, number of children) -> path suffixes such as ".W" or "[0]"
_NAMES: dict[type, Callable[[Any, int], list[str]]] = {}


def register_pytree(
    cls: type,
    flatten_fn: Callable[[Any], tuple[list, Any]],
    unflatten_fn: Callable[[Any, list], Any],
    child_names: Callable[[Any, int], list[str]] | None = None,
) -> None:
    """Make instances of `cls` containers: `flatten_fn(obj) -> (children, aux)` and
    `unflatten_fn(aux, children) -> obj`. `aux` must be hashable (it is part of cache keys).
    `child_names(aux, n)`, if given, names the children in paths (graph input names such as
    `model.layers[0].W`), e.g. `[".W", ".b"]`; by default children are `[0]`, `[1]`, ..."""
    _REGISTRY[cls] = (flatten_fn, unflatten_fn)
    if child_names is not None:
        _NAMES[cls] = child_names


def pytree(cls: type[T]) -> type[T]:
    """Class decorator: every attribute of an instance is a child (like Flux's `@functor`).

    Example:
        >>> @pytree
        ... class Affine:
        ...     def __init__(self, W, b):
        ...         self.W, self.b = W, b
    """

    def flat(obj):
        names = tuple(vars(obj))
        return [getattr(obj, n) for n in names], names

    def unflat(names, children):
        obj = cls.__new__(cls)
        for n, c in zip(names, children, strict=True):
            object.__setattr__(obj, n, c)
        return obj

    register_pytree(cls, flat, unflat)
    return cls


class TreeDef:
    """The shape of a pytree without its leaves; hashable and comparable."""

    __slots__ = ("kind", "aux", "children", "num_leaves", "_key")

    def __init__(self, kind: Any, aux: Any, children: tuple[TreeDef, ...]):
        self.kind = kind  # None for a leaf, else the container type
        self.aux = aux
        self.children = children
        self.num_leaves = 1 if kind is None else sum([c.num_leaves for c in children])
        self._key = (kind, aux, tuple([c._key for c in children]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TreeDef) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        if self.kind is None:
            return "*"
        name = getattr(self.kind, "__name__", str(self.kind))
        inner = ", ".join(map(repr, self.children))
        return f"{name}({inner})" if self.aux is None else f"{name}[{self.aux}]({inner})"


LEAF = TreeDef(None, None, ())


def _node_of(x: Any) -> tuple[type, list, Any] | None:
    t = type(x)
    if x is None:
        return type(None), [], None
    if t in _REGISTRY:
        children, aux = _REGISTRY[t][0](x)
        return t, list(children), aux
    if t is tuple or t is list:
        return t, list(x), None
    if t is dict:
        return dict, list(x.values()), tuple(x.keys())
    if isinstance(x, tuple) and hasattr(t, "_fields"):  # NamedTuple
        return t, list(x), None
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        names = tuple(f.name for f in dataclasses.fields(x))
        return t, [getattr(x, n) for n in names], names
    return None


# The walks below are module-level functions taking their state as arguments: a nested
# recursive closure would form a reference cycle (function -> cell -> function) that keeps the
# leaves, and so the arrays returned to users, alive until the cyclic garbage collector runs.


def _flatten_into(x: Any, leaves: list) -> TreeDef:
    if type(x) is np.ndarray:  # the common leaf, decided before any registry lookup
        leaves.append(x)
        return LEAF
    node = _node_of(x)
    if node is None:
        leaves.append(x)
        return LEAF
    kind, children, aux = node
    return TreeDef(kind, aux, tuple([_flatten_into(c, leaves) for c in children]))


def flatten(tree: Any) -> tuple[list, TreeDef]:
    """Leaves in a fixed left-to-right order, and the structure to rebuild them."""
    leaves: list = []
    td = _flatten_into(tree, leaves)
    return leaves, td


def _build(t: TreeDef, it: Iterator) -> Any:
    if t.kind is None:
        return next(it)
    children = [_build(c, it) for c in t.children]
    k = t.kind
    if k is type(None):
        return None
    if k in _REGISTRY:
        return _REGISTRY[k][1](t.aux, children)
    if k is tuple or k is list:
        return k(children)
    if k is dict:
        return dict(zip(t.aux, children, strict=True))
    if issubclass(k, tuple):
        return k(*children)
    obj = object.__new__(k)
    for n, c in zip(t.aux, children, strict=True):
        object.__setattr__(obj, n, c)
    return obj


def _child_suffixes(t: TreeDef) -> list[str]:
    n = len(t.children)
    if t.kind in _NAMES:
        return _NAMES[t.kind](t.aux, n)
    if t.kind is dict:
        return [f"[{k!r}]" for k in t.aux]
    if isinstance(t.aux, tuple) and len(t.aux) == n:  # dataclasses, @pytree classes
        return [f".{k}" for k in t.aux]
    return [f"[{i}]" for i in range(n)]


def leaf_paths(tree: TreeDef, prefix: str = "") -> list[str]:
    """Readable paths of the leaves, in flatten order.

    Example:
        >>> leaf_paths(flatten({"W": 1.0, "b": (2.0, 3.0)})[1], "params")
        ["params['W']", "params['b'][0]", "params['b'][1]"]
    """
    out: list[str] = []
    stack = [(tree, prefix)]
    while stack:
        t, path = stack.pop()
        if t.kind is None:
            out.append(path)
            continue
        names = _child_suffixes(t)
        stack.extend(
            (c, path + s) for c, s in zip(reversed(t.children), reversed(names), strict=True)
        )
    return out


def unflatten(tree: TreeDef, leaves: list) -> Any:
    """Inverse of `flatten`."""
    return _build(tree, iter(leaves))


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply `fn` to corresponding leaves of trees with the same structure."""
    leaves, td = flatten(tree)
    others = [flatten(r)[0] for r in rest]
    return unflatten(td, [fn(x, *ys) for x, *ys in zip(leaves, *others, strict=True)])


def tree_leaves(tree: Any) -> list:
    return flatten(tree)[0]


def node_children(x: Any) -> tuple[Any, list, Any] | None:
    """(container type, children, aux) of a container, None for a leaf: how `flatten` sees
    one level of `x` (aux holds a dict's keys, a dataclass's field names).

    Example:
        >>> node_children({"a": 1, "b": 2})
        (<class 'dict'>, [1, 2], ('a', 'b'))
    """
    return _node_of(x)
