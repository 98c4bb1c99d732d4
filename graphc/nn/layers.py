"""Layers for `graphc.nn`: the `Module` base class, the built-in layers, parameter initializers,
activations, the counter-based random numbers Dropout uses, and the call context (train/eval
mode, random key, state updates).

Every `Module` is a registered pytree: arrays, `None` and sub-modules (also inside lists, tuples
and dicts) are its children, so a model passes through `graphc.jit` and `graphc.grad` as an
argument and its gradient comes back as a model of the same structure. Every other attribute
(ints, Python floats, strings, functions such as the activation) is static configuration: it is
part of the pytree structure, never traced and never trained.

Conventions (as in PyTorch): batch first; `Dense` weights are `(out, in)` and `y = x @ W.T + b`;
images are NCHW and convolution weights OIHW.

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
    >>> model = nn.Chain(nn.Dense(4, 8, nn.relu), nn.Dense(8, 2))
    >>> model(np.ones((3, 4), np.float32)).shape
    (3, 2)
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import threading
import types
import zlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

import graphc
from graphc import numpy as gnp
from graphc.ir import GraphcError
from graphc.trace import Spec, Tracer
from graphc.tree_util import TreeDef, flatten, register_pytree, unflatten

__all__ = [
    "AvgPool2d",
    "BatchNorm",
    "Chain",
    "Context",
    "Conv2d",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "LayerNorm",
    "Linear",
    "MaxPool2d",
    "Module",
    "StateError",
    "apply",
    "bernoulli",
    "combine",
    "current_context",
    "fold_in",
    "gelu",
    "glorot_normal",
    "glorot_uniform",
    "identity",
    "kaiming_normal",
    "kaiming_uniform",
    "key",
    "layer",
    "leaky_relu",
    "log_softmax",
    "modules",
    "normal",
    "ones",
    "parameters",
    "partition",
    "relu",
    "seed",
    "sigmoid",
    "softmax",
    "softplus",
    "split",
    "state",
    "tanh",
    "uniform",
    "zeros",
]


class StateError(GraphcError):
    """A state (or a saved file) that does not fit the model it is loaded into."""


# ---------------------------------------------------------------------------------------------
# activations


def relu(x: Any) -> Any:
    """max(x, 0)."""
    return gnp.relu(x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent."""
    return np.tanh(x)


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), without overflow."""
    return gnp.sigmoid(x)


def gelu(x: Any) -> Any:
    """Gaussian error linear unit (tanh approximation)."""
    return gnp.gelu(x)


def softplus(x: Any) -> Any:
    """log(1 + exp(x)), stable for large |x|."""
    return gnp.softplus(x)


def leaky_relu(x: Any, a: float = 0.01) -> Any:
    """x for x > 0, a * x otherwise."""
    return np.where(x > 0, x, a * x)


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along `axis` (max-shifted, so large logits are fine)."""
    return gnp.softmax(x, axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """x - logsumexp(x) along `axis`."""
    return gnp.log_softmax(x, axis=axis)


def identity(x: Any) -> Any:
    """x."""
    return x


# ---------------------------------------------------------------------------------------------
# random numbers: a counter-based hash in uint64 arithmetic, so they trace into graphs

_K = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93)


def _u64(x: Any) -> Any:
    return gnp.astype(x, np.uint64)


def _mix(x: Any) -> Any:
    """A bijective-enough scramble of uint64 values: three rounds of square + Weyl constant +
    rotate by 32 bits (the rotation is done with a float64 divide, since graphc has no shifts;
    it is exact up to rounding, which NumPy and Numba do identically)."""
    with np.errstate(over="ignore"):  # wrapping uint64 arithmetic is the point
        for c in _K[1:]:
            x = x * x + np.uint64(c)
            hi = np.floor(gnp.astype(x, np.float64) * 2.0**-32)
            x = x * np.uint64(1 << 32) + _u64(hi)
    return x


def key(seed: int) -> np.ndarray:
    """A random key: a uint64 array of shape (). Pass it to `model(x, train=True, key=k)`,
    `nn.apply` or a train step; derive new keys with `fold_in` or `split`.

    Example:
        >>> k = nn.key(0)
        >>> k.dtype, k.shape
        (dtype('uint64'), ())
    """
    return np.asarray(int(seed) % (1 << 64), dtype=np.uint64)


def fold_in(k: Any, data: Any) -> Any:
    """A new key derived from key `k` and integer `data` (a Python int or an integer array,
    traced or not): `fold_in(k, step)` gives one key per training step.

    Example:
        >>> nn.fold_in(nn.key(0), 1) != nn.fold_in(nn.key(0), 2)
        True
    """
    d = np.uint64(int(data) % (1 << 64)) if isinstance(data, int) else _u64(data)
    with np.errstate(over="ignore"):
        x = _u64(k) * np.uint64(_K[0]) + d * np.uint64(_K[3]) + np.uint64(_K[1])
    return _mix(x)


def split(k: Any, n: int = 2) -> Any:
    """`n` independent keys derived from `k`, as an array of shape (n,); index it for keys."""
    return fold_in(k, np.arange(n, dtype=np.uint64))


def _positions(shape: tuple[int, ...]) -> Any:
    """Row-major element index of every position of `shape`, as uint64 (sum of broadcast
    aranges, so the constants stay small)."""
    idx: Any = np.zeros((), np.uint64)
    stride = 1
    for a in range(len(shape) - 1, -1, -1):
        r = np.arange(shape[a], dtype=np.uint64) * np.uint64(stride)
        idx = idx + r.reshape((shape[a],) + (1,) * (len(shape) - 1 - a))
        stride *= shape[a]
    return idx


def uniform(k: Any, shape: tuple[int, ...] | int, dtype: Any = np.float32) -> Any:
    """Uniform random numbers in [0, 1) of `shape`, a pure function of key `k` (which may be
    traced: the numbers are then computed inside the graph, identically on every backend).

    Example:
        >>> u = nn.uniform(nn.key(0), (2, 3))
        >>> bool(((0 <= u) & (u < 1)).all())
        True
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    with np.errstate(over="ignore"):
        base = _mix(_u64(k) + np.uint64(_K[2]))
        bits = _mix(base + _positions(shape) * np.uint64(_K[0]))
    u = gnp.astype(bits, np.float64) * 2.0**-64
    u = gnp.astype(u, dtype)
    top = float(np.nextafter(np.asarray(1, dtype), np.asarray(0, dtype)))
    return np.minimum(u, top)


def bernoulli(k: Any, p: float, shape: tuple[int, ...] | int) -> Any:
    """Booleans of `shape` that are True with probability `p`."""
    return uniform(k, shape, np.float64) < p


# ---------------------------------------------------------------------------------------------
# initializers: init(shape, rng=None, dtype=np.float32) -> array

_rng = np.random.default_rng(0)


def seed(s: int) -> None:
    """Reseed the generator layers use for initial weights when no `rng` is given."""
    global _rng
    _rng = np.random.default_rng(s)


def _gen(rng: np.random.Generator | int | None) -> np.random.Generator:
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) for (out, in, *kernel) weights."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * receptive, shape[0] * receptive


def glorot_uniform(
    shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32, gain: float = 1.0
) -> np.ndarray:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Xavier; the default)."""
    fi, fo = _fans(shape)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return _gen(rng).uniform(-a, a, shape).astype(dtype)


def glorot_normal(
    shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32, gain: float = 1.0
) -> np.ndarray:
    """N(0, s^2) with s = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = _fans(shape)
    return (_gen(rng).standard_normal(shape) * gain * math.sqrt(2.0 / (fi + fo))).astype(dtype)


def kaiming_uniform(
    shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32, gain: float = math.sqrt(2.0)
) -> np.ndarray:
    """U(-a, a) with a = gain * sqrt(3 / fan_in) (He; gain sqrt(2) suits relu)."""
    fi, _ = _fans(shape)
    a = gain * math.sqrt(3.0 / fi)
    return _gen(rng).uniform(-a, a, shape).astype(dtype)


def kaiming_normal(
    shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32, gain: float = math.sqrt(2.0)
) -> np.ndarray:
    """N(0, s^2) with s = gain / sqrt(fan_in) (He)."""
    fi, _ = _fans(shape)
    return (_gen(rng).standard_normal(shape) * gain / math.sqrt(fi)).astype(dtype)


def normal(
    shape: tuple[int, ...],
    rng: Any = None,
    dtype: Any = np.float32,
    std: float = 0.01,
    mean: float = 0.0,
) -> np.ndarray:
    """N(mean, std^2); use `functools.partial(nn.normal, std=0.1)` for another std."""
    return (mean + std * _gen(rng).standard_normal(shape)).astype(dtype)


def zeros(shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32) -> np.ndarray:
    """All zeros."""
    return np.zeros(shape, dtype)


def ones(shape: tuple[int, ...], rng: Any = None, dtype: Any = np.float32) -> np.ndarray:
    """All ones."""
    return np.ones(shape, dtype)


_INITS: dict[str, Callable[..., np.ndarray]] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier": glorot_uniform,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "kaiming": kaiming_normal,
    "he": kaiming_normal,
    "normal": normal,
    "zeros": zeros,
    "ones": ones,
    "randn": functools.partial(normal, std=1.0),
}


def _init_fn(init: Callable[..., np.ndarray] | str) -> Callable[..., np.ndarray]:
    if isinstance(init, str):
        if init not in _INITS:
            raise GraphcError(f"unknown init {init!r} (known: {', '.join(_INITS)})")
        return _INITS[init]
    return init


# ---------------------------------------------------------------------------------------------
# tree helpers


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
    if isinstance(v, Module) or _is_array(v):
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
    if isinstance(v, Module):
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
    frozen = set(v._nontrainable) if isinstance(v, Module) else set()
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


def modules(model: Any) -> list[Module]:
    """Every Module in `model`, the model itself first, depth first (like Flux.modules)."""
    out: list[Module] = []
    seen: set[int] = set()

    def go(v: Any) -> None:
        if isinstance(v, Module):
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


class Module:
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

    _nontrainable: ClassVar[tuple[str, ...]] = ()

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
        parts = []
        for k, v in vars(self).items():
            if k.startswith("_"):
                continue
            if _is_array(v):
                parts.append(f"{k}={_describe(v)}")
            elif not _is_dynamic(v):
                parts.append(f"{k}={_short(v)}")
        return ", ".join(parts)

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
        lines = _show(self, "", True)
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


# -- printing -----------------------------------------------------------------------------------


def _size(x: Any) -> int:
    return 1 if isinstance(x, float) else int(np.prod(np.shape(x), dtype=np.int64))


def _nbytes(x: Any) -> int:
    return 8 if isinstance(x, float) else _size(x) * np.dtype(x.dtype).itemsize


def _short(v: Any) -> str:
    if callable(v) and hasattr(v, "__name__"):
        return v.__name__
    return repr(v)


def _fmt_int(n: int) -> str:
    return f"{n:_}"


def _fmt_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3f} {unit}"
    return f"{n} bytes"


def _counts(v: Any) -> tuple[int, int, int, int, int]:
    """(trainable arrays, trainable numbers, non-trainable arrays, their numbers, bytes)."""
    ta = tn = na = nn_ = b = 0
    for _, x, t in _walk(v):
        if not _is_traceable(x):
            continue
        b += _nbytes(x)
        if t:
            ta, tn = ta + 1, tn + _size(x)
        else:
            na, nn_ = na + 1, nn_ + _size(x)
    return ta, tn, na, nn_, b


def _one_line(v: Any) -> str:
    if isinstance(v, Module):
        try:
            inner = v.extra_repr()
        except Exception:  # e.g. a partitioned module holding None where arrays were
            inner = Module.extra_repr(v)
        return f"{type(v).__name__}({inner})"
    if _is_array(v):
        return _describe(v)
    kids = _children(v)
    if kids is None:
        return _short(v)
    inner = ", ".join(f"{k}={_describe(c) if _is_array(c) else _short(c)}" for k, c in kids)
    return f"{type(v).__name__}({inner})"


def _is_container(v: Any) -> bool:
    if not isinstance(v, Module) or getattr(v, "_leaf_display", False):
        return False
    return any(isinstance(m, Module) for m in modules(v)[1:])


def _comment(v: Any) -> str:
    ta, tn, na, nn_, _ = _counts(v)
    if ta == 0 and na == 0:
        return ""
    s = f"# {_fmt_int(tn)} parameter{'' if tn == 1 else 's'}"
    if na:
        s += f", plus {_fmt_int(nn_)} non-trainable"
    return s


def _show(v: Any, indent: str, top: bool, label: str = "") -> list[str]:
    if not _is_container(v):
        line = indent + label + _one_line(v) + ("" if top else ",")
        c = _comment(v)
        return [f"{line:<38}  {c}" if c else line]
    lines = [indent + label + type(v).__name__ + "("]
    for k, c in v._display_children():
        lines += _show(c, indent + "  ", False, f"{k}=" if _is_array(c) else "")
    close = indent + ")" + ("" if top else ",")
    if top:
        ta, tn, na, nn_, b = _counts(v)
        tot = f"# Total: {ta} trainable arrays, {_fmt_int(tn)} parameters"
        if na:
            tot += f", plus {na} non-trainable, {_fmt_int(nn_)} numbers"
        tot += f", {_fmt_bytes(b)}."
        lines.append(f"{close:<20}{tot}")
    else:
        lines.append(close)
    return lines


# ---------------------------------------------------------------------------------------------
# layers


def _act_name(act: Callable | None) -> str:
    return "" if act is None else f", {_short(act)}"


class Dense(Module):
    """Fully connected layer `y = act(x @ weight.T + bias)` on `(..., in)` inputs, with
    weight `(out, in)` and bias `(out,)` (Flux's `Dense(in => out, act)`; also `nn.Linear`).

    Example:
        >>> d = nn.Dense(784, 512, nn.relu)          # or nn.Dense((784, 512), nn.relu)
        >>> d = nn.Dense(2, 1, bias=False, init=nn.kaiming_normal, rng=0)
    """

    def __init__(
        self,
        in_features: int | tuple[int, int],
        out_features: int | None = None,
        act: Callable | None = None,
        *,
        bias: bool = True,
        init: Callable[..., np.ndarray] | str = glorot_uniform,
        bias_init: Callable[..., np.ndarray] | str = zeros,
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        if isinstance(in_features, tuple):
            if out_features is not None and act is None and callable(out_features):
                act, out_features = out_features, None
            in_features, out_features = in_features
        if out_features is None:
            raise GraphcError("Dense needs in and out sizes: Dense(in, out) or Dense((in, out))")
        g = _gen(rng)
        self.weight = _init_fn(init)((out_features, in_features), g, dtype)
        self.bias = _init_fn(bias_init)((out_features,), g, dtype) if bias else None
        self.act = act

    def __call__(self, x: Any) -> Any:
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return y if self.act is None else self.act(y)

    def extra_repr(self) -> str:
        o, i = np.shape(self.weight)
        b = "" if self.bias is not None else ", bias=False"
        return f"{i} => {o}{_act_name(self.act)}{b}"


Linear = Dense


class Chain(Module):
    """Layers applied in sequence (Flux's Chain, PyTorch's Sequential). Indexable (`m[0]`),
    slicable (`m[1:]` is a Chain), iterable, has `len`, and nests. Layers may be Modules, plain
    pytrees with `__call__`, or functions. Named layers: `Chain(enc=..., dec=...)`.

    Layer i runs under scope `layers.i` (`layers.<name>` for named layers).

    Example:
        >>> m = nn.Chain(nn.Dense(2, 3, nn.tanh), nn.Dense(3, 1))
        >>> len(m), type(m[1:]).__name__
        (2, 'Chain')
    """

    def __init__(self, *layers: Any, **named: Any):
        if layers and named:
            raise GraphcError("Chain takes positional or named layers, not both")
        if len(layers) == 1 and type(layers[0]) in (list, tuple):
            layers = tuple(layers[0])
        self.layers: tuple | dict = dict(named) if named else tuple(layers)

    def _items(self) -> list[tuple[str, Any]]:
        if isinstance(self.layers, dict):
            return [(str(k), v) for k, v in self.layers.items()]
        return [(str(i), v) for i, v in enumerate(self.layers)]

    def __call__(self, x: Any) -> Any:
        for name, f in self._items():
            if isinstance(f, Module):
                x = f(x)
            else:
                with graphc.scope(f"layers.{name}"):
                    x = f(x)
        return x

    def __getitem__(self, i: int | slice | str) -> Any:
        if isinstance(self.layers, dict):
            if isinstance(i, str):
                return self.layers[i]
            items = list(self.layers.items())
            if isinstance(i, slice):
                return Chain(**dict(items[i]))
            return items[i][1]
        if isinstance(i, slice):
            return Chain(*self.layers[i])
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Any]:
        return iter(v for _, v in self._items())

    def _display_children(self) -> list[tuple[str, Any]]:
        return self._items()

    def extra_repr(self) -> str:
        return ", ".join(_one_line(v) for _, v in self._items())


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


class Conv2d(Module):
    """2-d convolution (cross-correlation) of NCHW images with OIHW weights, zero padding:
    `act(conv2d(x, weight, stride, padding) + bias)`.

    Example:
        >>> c = nn.Conv2d(1, 8, 3, padding=1, act=nn.relu)
        >>> c(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 8, 8, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        act: Callable | None = None,
        *,
        bias: bool = True,
        init: Callable[..., np.ndarray] | str = glorot_uniform,
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        g = _gen(rng)
        kh, kw = _pair(kernel)
        self.weight = _init_fn(init)((out_channels, in_channels, kh, kw), g, dtype)
        self.bias = np.zeros(out_channels, dtype) if bias else None
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.act = act

    def __call__(self, x: Any) -> Any:
        y = gnp.conv2d(x, self.weight, self.stride, self.padding)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return y if self.act is None else self.act(y)

    def extra_repr(self) -> str:
        o, i, kh, kw = np.shape(self.weight)
        s = f"{i} => {o}, kernel={(kh, kw) if kh != kw else kh}"
        if self.stride != (1, 1):
            s += f", stride={self.stride[0] if len(set(self.stride)) == 1 else self.stride}"
        if self.padding != (0, 0):
            p = self.padding
            s += f", padding={p[0] if p[0] == p[1] else p}"
        return s + _act_name(self.act) + ("" if self.bias is not None else ", bias=False")


class MaxPool2d(Module):
    """Max over `kernel` windows of NCHW images (stride defaults to the kernel)."""

    def __init__(
        self, kernel: int | tuple[int, int] = 2, stride: int | tuple[int, int] | None = None
    ):
        self.kernel = _pair(kernel)
        self.stride = _pair(stride) if stride is not None else self.kernel

    def __call__(self, x: Any) -> Any:
        return gnp.max_pool2d(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        k = self.kernel[0] if self.kernel[0] == self.kernel[1] else self.kernel
        return f"{k}" + ("" if self.stride == self.kernel else f", stride={self.stride}")


class AvgPool2d(MaxPool2d):
    """Mean over `kernel` windows of NCHW images (stride defaults to the kernel)."""

    def __call__(self, x: Any) -> Any:
        return gnp.avg_pool2d(x, self.kernel, self.stride)


class Flatten(Module):
    """Flatten all axes but the first: `(N, ...) -> (N, prod(...))`."""

    def __call__(self, x: Any) -> Any:
        return x.reshape(x.shape[0], -1)


class Dropout(Module):
    """Zero each element with probability `p` and scale the rest by 1/(1-p), in train mode; the
    identity in eval mode. The mask is a pure function of the call's random key, the layer's
    path and its call count: `model(x, train=True, key=nn.key(0))` twice gives the same mask.

    Example:
        >>> d = nn.Dropout(0.5)
        >>> x = np.ones((2, 4), np.float32)
        >>> np.array_equal(d(x), x)                               # eval mode: identity
        True
        >>> y = d(x, train=True, key=nn.key(1))                   # train mode: needs a key
    """

    def __init__(self, p: float = 0.5):
        if not 0 <= p < 1:
            raise GraphcError(f"Dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def __call__(self, x: Any) -> Any:
        ctx = current_context()
        if ctx is None or not ctx.train or self.p == 0:
            return x
        keep = uniform(ctx.rng(self), np.shape(x), np.float64) >= self.p
        return np.where(keep, x * (1.0 / (1.0 - self.p)), 0)

    def extra_repr(self) -> str:
        return f"{self.p}"


class LayerNorm(Module):
    """Normalize over the last `len(shape)` axes to zero mean and unit variance, then scale by
    `weight` and shift by `bias` (if `affine`).

    Example:
        >>> nn.LayerNorm(8)(np.random.rand(2, 8).astype(np.float32)).shape
        (2, 8)
    """

    def __init__(
        self,
        shape: int | tuple[int, ...],
        eps: float = 1e-5,
        affine: bool = True,
        dtype: Any = np.float32,
    ):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.weight = np.ones(shape, dtype) if affine else None
        self.bias = np.zeros(shape, dtype) if affine else None
        self.shape = shape
        self.eps = float(eps)

    def __call__(self, x: Any) -> Any:
        axes = tuple(range(np.ndim(x) - len(self.shape), np.ndim(x)))
        mean = np.mean(x, axis=axes, keepdims=True)
        d = x - mean
        var = np.mean(d * d, axis=axes, keepdims=True)
        y = d * gnp.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y

    def extra_repr(self) -> str:
        s = self.shape[0] if len(self.shape) == 1 else self.shape
        return f"{s}" + ("" if self.weight is not None else ", affine=False")


class BatchNorm(Module):
    """Batch normalization over axis 1 of `(N, C)` or `(N, C, H, W)` inputs.

    Train mode normalizes with the batch's mean and (biased) variance and records
    `running = (1 - momentum) * running + momentum * batch` (unbiased variance) in the call
    context, so `y, model = nn.apply(model, x, train=True)` returns the model with new running
    statistics (`nn.train_step` threads them). Eval mode normalizes with the running statistics.
    `running_mean` and `running_var` are non-trainable: no gradient, no optimizer update.

    Example:
        >>> bn = nn.BatchNorm(3)
        >>> y, bn = nn.apply(bn, np.random.rand(16, 3).astype(np.float32), train=True)
    """

    _nontrainable = ("running_mean", "running_var")

    def __init__(
        self,
        channels: int,
        act: Callable | None = None,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        dtype: Any = np.float32,
    ):
        self.weight = np.ones(channels, dtype) if affine else None
        self.bias = np.zeros(channels, dtype) if affine else None
        self.running_mean = np.zeros(channels, dtype)
        self.running_var = np.ones(channels, dtype)
        self.act = act
        self.eps = float(eps)
        self.momentum = float(momentum)

    def __call__(self, x: Any) -> Any:
        nd = np.ndim(x)
        c = np.shape(self.running_mean)[0]
        if nd < 2 or np.shape(x)[1] != c:
            raise GraphcError(
                f"BatchNorm({c}) needs inputs of shape (N, {c}, ...), got {tuple(np.shape(x))}"
            )
        axes = (0,) + tuple(range(2, nd))
        bshape = (1, c) + (1,) * (nd - 2)
        ctx = current_context()
        dt = self.running_mean.dtype
        if ctx is not None and ctx.train:
            mean = np.mean(x, axis=axes)
            var = np.mean((x - mean.reshape(bshape)) ** 2, axis=axes)
            n = int(np.prod([np.shape(x)[a] for a in axes]))
            m = self.momentum
            bm, bv = gnp.stop_gradient(mean), gnp.stop_gradient(var)
            ctx.record(
                self,
                running_mean=gnp.astype((1 - m) * self.running_mean + m * bm, dt),
                running_var=gnp.astype(
                    (1 - m) * self.running_var + m * bv * (n / max(n - 1, 1)), dt
                ),
            )
        else:
            mean = gnp.stop_gradient(self.running_mean)
            var = gnp.stop_gradient(self.running_var)
        y = (x - mean.reshape(bshape)) * gnp.rsqrt(var.reshape(bshape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.reshape(bshape) + self.bias.reshape(bshape)
        return y if self.act is None else self.act(y)

    def extra_repr(self) -> str:
        s = f"{np.shape(self.running_mean)[0]}{_act_name(self.act)}"
        return s + ("" if self.weight is not None else ", affine=False")


class Embedding(Module):
    """A lookup table: integer indices of any shape -> rows of `weight` `(num, dim)`.

    Example:
        >>> e = nn.Embedding(10, 4)
        >>> e(np.array([[1, 2], [3, 9]])).shape
        (2, 2, 4)
    """

    def __init__(
        self,
        num: int,
        dim: int,
        *,
        init: Callable[..., np.ndarray] | str = "randn",
        dtype: Any = np.float32,
        rng: Any = None,
    ):
        self.weight = _init_fn(init)((num, dim), _gen(rng), dtype)

    def __call__(self, idx: Any) -> Any:
        return gnp.take(self.weight, idx, axis=0)

    def extra_repr(self) -> str:
        n, d = np.shape(self.weight)
        return f"{n} => {d}"
