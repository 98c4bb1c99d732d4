"""Models as trees for `graphc.nn`: which attributes of a module are children (arrays,
sub-modules, containers holding them) and which are static configuration, the path of every
leaf (`layers.0.weight`), and the functions built on that walk: `parameters`, `state`,
`load_state`, `modules`, `partition` and `combine`. They take any pytree, Module or not.

Example:
    >>> from graphc import nn
    >>> sorted(nn.parameters(nn.Dense(2, 3)))
    ['bias', 'weight']
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from graphc.ir import GraphcError
from graphc.trace import Spec, Tracer
from graphc.tree_util import TreeDef, flatten, unflatten

__all__ = [
    "ModuleBase",
    "StateError",
    "combine",
    "load_state",
    "modules",
    "parameters",
    "partition",
    "state",
]


class StateError(GraphcError):
    """A state (or a saved file) that does not fit the model it is loaded into."""


class ModuleBase:
    """What the tree walk knows of a module: its attributes are its children and
    `_nontrainable` names those that hold state rather than parameters. `nn.Module` is its one
    subclass; it lives here so that walking and printing a model need not import the module
    machinery that calls them.
    """

    _nontrainable: ClassVar[tuple[str, ...]] = ()


def _is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, Tracer, Spec))


def _is_traceable(x: Any) -> bool:
    """Leaves that graphc traces: arrays, NumPy scalars, specs, Python floats (not ints)."""
    return _is_array(x) or (isinstance(x, float) and not isinstance(x, bool))


def _is_float_leaf(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, float):
        return True
    return _is_array(x) and np.dtype(x.dtype).kind == "f"


_STATIC_TYPES = frozenset(
    {
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        type,
        types.FunctionType,
        types.BuiltinFunctionType,
        np.ufunc,
        functools.partial,
        np.dtype,
    }
)


def _is_dynamic(v: Any) -> bool:
    """Whether a module attribute is a pytree child (True) or static configuration."""
    t = type(v)
    if t is np.ndarray or v is None:
        return True
    if t in _STATIC_TYPES:  # fast path: most attributes are numbers and functions
        return False
    if isinstance(v, ModuleBase) or _is_array(v):
        return True
    if isinstance(v, (bool, int, float, complex, str, bytes, type)):
        return False
    if type(v) in (list, tuple) or (isinstance(v, tuple) and hasattr(v, "_fields")):
        return any(_is_dynamic(c) for c in v)
    if type(v) is dict:
        return any(_is_dynamic(c) for c in v.values())
    leaves, td = flatten(v)
    return td.kind is not None and any(_is_array(x) for x in leaves)


def _children(v: Any) -> list[tuple[str, Any]] | None:
    """One level of a pytree as (name, child) pairs; None for a leaf."""
    if isinstance(v, ModuleBase):
        return [(k, c) for k, c in vars(v).items() if _is_dynamic(c)]
    if v is None:
        return []
    if type(v) in (list, tuple):
        return [(str(i), c) for i, c in enumerate(v)]
    if type(v) is dict:
        return [(str(k), c) for k, c in v.items()]
    leaves, td = flatten(v)
    if td.kind is None:
        return None
    aux = td.aux
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        names = [str(n) for n in v._fields]
    elif (
        isinstance(aux, tuple)
        and len(aux) == len(td.children)
        and all(isinstance(a, str) for a in aux)
    ):
        names = list(aux)
    else:
        names = [str(i) for i in range(len(td.children))]
    out, off = [], 0
    for name, ctd in zip(names, td.children, strict=True):
        out.append((name, unflatten(ctd, leaves[off : off + ctd.num_leaves])))
        off += ctd.num_leaves
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(v: Any, path: str = "", trainable: bool = True) -> Iterator[tuple[str, Any, bool]]:
    """(path, leaf, trainable) for every leaf of `v`, in `pytree.flatten` order. A leaf is
    trainable when it is a floating-point array (or Python float) not inside a module's
    non-trainable fields (`Module._nontrainable`)."""
    kids = _children(v)
    if kids is None:
        yield path, v, trainable and _is_float_leaf(v)
        return
    frozen = set(v._nontrainable) if isinstance(v, ModuleBase) else set()
    for name, c in kids:
        yield from _walk(c, _join(path, name), trainable and name not in frozen)


def parameters(model: Any) -> dict[str, Any]:
    """The trainable arrays of any model (Module or plain pytree) by path."""
    return {p: x for p, x, t in _walk(model) if t}


def state(model: Any) -> dict[str, np.ndarray]:
    """Copies of every array of `model` (trainable and not) by path, like Flux.state."""
    return {p: np.array(x) for p, x, _ in _walk(model) if _is_traceable(x)}


def load_state(model: Any, new_state: dict[str, Any]) -> Any:
    """A model like `model` holding the arrays of `new_state` (cast to the model's dtypes).
    Raises StateError naming the first path whose entry is missing, extra or misshapen."""
    leaves, td = flatten(model)
    walked = list(_walk(model))
    if len(walked) != len(leaves):  # pragma: no cover - guards the walker against flatten
        raise GraphcError("internal error: module walk and pytree.flatten disagree")
    out, seen = [], set()
    for (p, x, _), leaf in zip(walked, leaves, strict=True):
        if not _is_traceable(x):
            out.append(leaf)
            continue
        if p not in new_state:
            raise StateError(
                f"state mismatch at {p!r}: the model has an array "
                f"{_describe(x)} there but the state has no such entry"
            )
        v = np.asarray(new_state[p])
        if v.shape != np.shape(x):
            raise StateError(
                f"state mismatch at {p!r}: the model expects shape "
                f"{tuple(np.shape(x))}, the state has shape {v.shape}"
            )
        seen.add(p)
        out.append(float(v) if isinstance(x, float) else np.array(v, dtype=x.dtype))
    extra = [k for k in new_state if k not in seen]
    if extra:
        raise StateError(
            f"state mismatch at {extra[0]!r}: the state has an entry the model does not have"
        )
    return unflatten(td, out)


def _describe(x: Any) -> str:
    if isinstance(x, float):
        return "f64[]"
    return f"{np.dtype(x.dtype).name}{list(np.shape(x))}"


def modules(model: Any) -> list[ModuleBase]:
    """Every Module in `model`, the model itself first, depth first (like Flux.modules)."""
    out: list[ModuleBase] = []
    seen: set[int] = set()

    def go(v: Any) -> None:
        if isinstance(v, ModuleBase):
            if id(v) in seen:
                return
            seen.add(id(v))
            out.append(v)
        kids = _children(v) if not _is_array(v) else None
        for _, c in kids or []:
            go(c)

    go(model)
    return out


def partition(model: Any) -> tuple[Any, Any]:
    """Split a model into `(params, rest)`, two trees of its structure: `params` holds the
    trainable arrays (None elsewhere), `rest` everything else (None where params are).
    Differentiate with respect to `params` and rebuild the model with `combine(params, rest)`.

    Example:
        >>> params, rest = nn.partition(nn.BatchNorm(3))
        >>> params.running_mean is None, rest.weight is None
        (True, True)
    """
    leaves, td = flatten(model)
    mask = [t for _, _, t in _walk(model)]
    params = unflatten(td, [x if m else None for x, m in zip(leaves, mask, strict=True)])
    rest = unflatten(td, [None if m else x for x, m in zip(leaves, mask, strict=True)])
    return params, rest


_NONE = type(None)


def _merge(p: TreeDef, r: TreeDef, pl: Iterator, rl: Iterator, out: list) -> TreeDef:
    if p.kind is _NONE:
        for _ in range(r.num_leaves):
            out.append(next(rl))
        return r
    if r.kind is _NONE:
        for _ in range(p.num_leaves):
            out.append(next(pl))
        return p
    if (
        p.kind is None
        or r.kind is None
        or p.kind is not r.kind
        or len(p.children) != len(r.children)
    ):
        raise GraphcError(f"combine: the trees do not fit together ({p} vs {r})")
    kids = tuple(_merge(a, b, pl, rl, out) for a, b in zip(p.children, r.children, strict=True))
    return TreeDef(p.kind, p.aux, kids)


def combine(params: Any, rest: Any) -> Any:
    """Inverse of `partition`: the model with the leaves of both trees."""
    pl, ptd = flatten(params)
    rl, rtd = flatten(rest)
    out: list = []
    td = _merge(ptd, rtd, iter(pl), iter(rl), out)
    return unflatten(td, out)


def _size(x: Any) -> int:
    return 1 if isinstance(x, float) else int(np.prod(np.shape(x), dtype=np.int64))
