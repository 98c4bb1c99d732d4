"""The lazy engine behind `graphc.torch`: tensors record graphc IR, and a realization compiles and
runs everything pending at once.

A tensor's value lives in a `Storage`: an array (`data`), or a recorded node still to be
computed. Every tensor operation is a small graphc.numpy function (a *template*) traced once per
operand signature; calling the operation splices the template's equations into the recording
with new nodes, so the recording is ordinary graphc IR, made without re-running graphc.numpy's
dispatch for every call. Arrays enter the recording as `input` nodes whose values the engine
keeps beside them (`feeds`); Python numbers in arithmetic enter as inputs too, so a changing
learning rate does not change the graph.

`backward()` records a request (the loss node, the leaves to differentiate and one placeholder
input per leaf, which `.grad` is built on) instead of differentiating. A realization
(`realize`) walks everything pending once, from the backward requests' histories and from the
live pending storages, into a structural key: op, attributes, type and operand positions per
node, and the shapes of the fed values. A key seen before runs the executable compiled for it;
a new one builds the graph (graphc's reverse-mode pass for each request, placeholders replaced
by the gradients, realized values turned into inputs), optimizes, fuses and compiles it, and
keeps it under the key and under the graph's structural hash.

Example:
    >>> import graphc.torch as torch
    >>> x = torch.ones(3, requires_grad=True)
    >>> y = (x * 2).sum()          # recorded, not computed
    >>> y.backward()               # a request, not computed
    >>> x.grad                     # realizes forward and backward as one executable
    tensor([2., 2., 2.])
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc import api
from graphc.env import debug_level
from graphc.ir import (
    Aval,
    Graph,
    GraphcError,
    Meta,
    Node,
    make_const,
    make_input,
    substitute,
)
from graphc.trace import (
    Spec,
    api_call,
    current_scope,
    frame_location,
    trace_flat,
    user_frame,
    user_location,
)

__all__ = [
    "Storage",
    "enable_grad",
    "engine",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]

# a node recorded while gradients were off: a constant for differentiation (PyTorch's "no
# grad_fn"), marked in its metadata so that the backward pass stops there
NO_GRAD = "no_grad"


# ---------------------------------------------------------------------------------------------
# gradient mode (per thread, as in PyTorch)


class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether operations record history for `backward()` (False inside `no_grad()`)."""
    return _mode.enabled


class set_grad_enabled:  # noqa: N801 (PyTorch's name)
    """Turn gradient recording on or off inside a `with` block (or for a decorated function).

    Example:
        >>> with torch.set_grad_enabled(False):
        ...     y = x * 2                  # y.requires_grad is False
    """

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)
        self.prev: list[bool] = []

    def __enter__(self) -> None:
        self.prev.append(_mode.enabled)
        _mode.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self.prev.pop()

    def __call__(self, fn: Callable) -> Callable:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with type(self)(self.mode) if type(self) is set_grad_enabled else type(self)():
                return fn(*args, **kwargs)

        wrapped.__name__ = getattr(fn, "__name__", "wrapped")
        wrapped.__doc__ = fn.__doc__
        return wrapped


class no_grad(set_grad_enabled):  # noqa: N801
    """Operations inside record no history: their results do not require grad, and in-place
    updates of parameters are allowed (`with torch.no_grad(): p -= lr * p.grad`).

    Example:
        >>> with torch.no_grad():
        ...     w -= 0.1 * w.grad
    """

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):  # noqa: N801
    """Record history again inside a `no_grad()` block."""

    def __init__(self) -> None:
        super().__init__(True)


# ---------------------------------------------------------------------------------------------
# storages


class Storage:
    """The value behind one or more tensors (a tensor and its `.data` share one).

    data:    the array, or None while the value is pending (recorded, not computed)
    node:    the node tensors use in new operations: the `input` node standing for `data`, or the
             recorded computation (pending, or kept as history for `backward()`)
    aval:    shape and dtype
    history: `node` is a computation that requires grad, kept after realization
    plain:   the node a tensor without grad reads when the storage's own node carries history
             (a stop_gradient of it, or a second input node for a parameter's `.data`)
    owner:   the leaf tensor that requires grad and owns this storage (a weak reference)
    born:    the engine's generation at creation (compiled functions tell old from new)
    """

    __slots__ = (
        "data",
        "node",
        "aval",
        "history",
        "plain",
        "owner",
        "ticket",
        "born",
        "random",
        "__weakref__",
    )

    def __init__(self, data: np.ndarray | None, node: Node | None, aval: Aval, history: bool):
        self.data = data
        self.node = node
        self.aval = aval
        self.history = history
        self.plain: Node | None = None
        self.owner: Any = None
        self.ticket: int | None = None
        self.born = engine.generation
        # how the value was drawn from the generator, for a compiled function to draw anew
        self.random: Callable[[], np.ndarray] | None = None

    def set_data(self, data: np.ndarray) -> None:
        """A new concrete value (realized, assigned or loaded): the old nodes stand for the old
        value and are dropped."""
        self.data = data
        self.node = None
        self.plain = None
        self.history = False
        self.ticket = None

    def set_node(self, node: Node, history: bool) -> None:
        """A new pending value: `node`, recorded and not yet computed."""
        self.data = None
        self.node = node
        self.history = history
        self.plain = None
        engine.pend(self)


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, tuple):
        return tuple(_hashable(x) for x in v)
    return v


def _attr_key(attrs: Any) -> tuple:
    return tuple(sorted((k, _hashable(v)) for k, v in attrs.items()))


def type_key(aval: Any) -> Any:
    """A type as a key: (shape, dtype) hashes in C, where Aval's dataclass hash runs Python."""
    return (aval.shape, aval.dtype) if isinstance(aval, Aval) else aval


def node_key(n: Node) -> tuple:
    """A node's structural key without its operands."""
    return (n.op, _attr_key(n.attrs), type_key(n.aval))


# ---------------------------------------------------------------------------------------------
# templates: one traced graph per (operation, operand signature), spliced in by each call


class Template:
    """A traced operation: its graph, and the steps that splice it into the recording.

    Each step is `(None, const_node, ...)` (constants are shared: nodes are immutable) or
    `(op, operand refs, attrs, aval, key)`, refs indexing the values made so far (the
    operands first). `key` is the node's structural key without its operands, computed once
    here instead of at every realization.
    """

    __slots__ = ("graph", "steps", "outs")

    def __init__(self, graph: Graph):
        self.graph = graph
        pos: dict[int, int] = {id(n): k for k, n in enumerate(graph.inputs)}
        steps: list[tuple] = []
        for n in graph.nodes:
            if id(n) in pos:
                continue
            pos[id(n)] = len(graph.inputs) + len(steps)
            if n.op == "const":
                steps.append((None, n, None, None, None))
            else:
                refs = tuple(pos[id(i)] for i in n.inputs)
                steps.append((n.op, refs, n.attrs, n.aval, node_key(n)))
        self.steps = steps
        self.outs = tuple(pos[id(o)] for o in graph.outputs)


def _operand_spec(x: Any) -> Any:
    if isinstance(x, Storage):
        return Spec(x.aval)
    return x  # a Python float: a weak scalar input


# ---------------------------------------------------------------------------------------------
# backward requests


class Request:
    """One `backward()` (or `autograd.grad`) call, waiting for the next realization."""

    __slots__ = ("root", "seed", "wrt", "placeholders")

    def __init__(self, root: Node, seed: Node | None, wrt: list[Node], placeholders: list[Node]):
        self.root = root
        self.seed = seed
        self.wrt = wrt
        self.placeholders = placeholders


class Plan:
    """What a realization key runs: the executable, the graph it was compiled from, and how
    many times it ran."""

    __slots__ = ("graph", "exe", "runs", "hash")

    def __init__(self, graph: Graph, exe: Callable[[list], list], digest: str):
        self.graph = graph
        self.exe = exe
        self.runs = 0
        self.hash = digest


class Stats:
    """Counters of the engine (see `graphc.torch.cache_info`)."""

    __slots__ = ("realizations", "hits", "misses", "compiles", "compile_seconds")

    def __init__(self) -> None:
        self.realizations = self.hits = self.misses = self.compiles = 0
        self.compile_seconds = 0.0


# ---------------------------------------------------------------------------------------------
# the engine


class Engine:
    """Recording, backward requests and realization; one per process (`engine`)."""

    def __init__(self) -> None:
        # input node -> (value, the storage it was made for (weak) or None, kind ("t" a
        # tensor's value, "s" a Python number), that storage's generation and random draw)
        self.feeds: weakref.WeakKeyDictionary[Node, tuple] = weakref.WeakKeyDictionary()
        # input node of a leaf that requires grad -> that tensor (weak)
        self.owners: weakref.WeakKeyDictionary[Node, Any] = weakref.WeakKeyDictionary()
        self.pending: dict[int, weakref.ref] = {}
        self._tickets = itertools.count()
        self.requests: list[Request] = []
        self.placeholders: dict[int, tuple[int, int]] = {}  # id(node) -> (request, index)
        # structural key of each node spliced in since the last realization (see Template)
        self.entries: dict[int, tuple] = {}
        self.templates: dict[tuple, Template] = {}
        self.plans: dict[tuple, Plan] = {}
        self.executables: dict[tuple[str, str], Callable[[list], list]] = {}
        self.stats = Stats()
        self.generation = 0
        self.capture: Any = None  # a compiled function capturing its call (graphc.torch.compile)
        self.last: Plan | None = None
        # ids of recorded nodes whose values were realized (a superset: ids of nodes gone
        # since stay until the set is pruned; `feeds` decides)
        self.known: set[int] = set()
        self._metas: dict[tuple, Meta] = {}
        self._names: dict[str | None, Meta] = {}

    # -- recording -----------------------------------------------------------------------------
    def meta(self, grad: bool) -> Meta:
        """The metadata of the nodes one call records: the user's line, the module scope, and
        whether gradients were off."""
        f = user_frame()
        scope = current_scope()
        key = (f.f_code.co_filename, f.f_lineno, scope, grad) if f is not None else (scope, grad)
        m = self._metas.get(key)
        if m is None:
            if len(self._metas) > 65536:
                self._metas.clear()
            m = self._metas[key] = Meta(frame_location(f), scope, None, None if grad else NO_GRAD)
        return m

    def template(
        self, fn: Callable, operands: Sequence[Any], sig: tuple, static: tuple, name: str
    ) -> Template:
        """The template of `fn(*operands, *static)` for operand signature `sig` (one
        `type_key` per storage, `float` per Python number), traced on the first call."""
        key = (fn, static, sig)
        tpl = self.templates.get(key)
        if tpl is None:
            specs = tuple(_operand_spec(x) for x in operands)

            def traced(*a: Any) -> Any:
                return fn(*a, *static)

            g = api_call(name, trace_flat, (traced, specs, {}), {"name": name})
            if any(m is not True for m in g.out_tree[1]):
                raise GraphcError(f"internal: {name} returned something that is not an array")
            tpl = self.templates[key] = Template(g)
        return tpl

    def splice(self, tpl: Template, operands: list[Node], meta: Meta) -> list[Node]:
        """New nodes computing `tpl` from `operands` (the template's graph, instantiated)."""
        vals = list(operands)
        append = vals.append
        entries = self.entries
        for op, refs, attrs, aval, key in tpl.steps:
            if op is None:
                append(refs)  # a constant node, shared
                continue
            n = Node(op, [vals[r] for r in refs], attrs, aval, meta)
            entries[id(n)] = key
            append(n)
        return [vals[k] for k in tpl.outs]

    def feed(self, value: Any, aval: Aval, storage: Storage | None, kind: str, name: str | None):
        """An input node standing for `value` in the recording."""
        n = self.input(aval, name)
        if storage is None:
            self.feeds[n] = (value, None, kind, self.generation, None)
        else:
            self.feeds[n] = (value, weakref.ref(storage), kind, storage.born, storage.random)
        return n

    def input(self, aval: Aval, name: str | None) -> Node:
        """A new input node (graphc.ir's make_input, with its metadata made once per name:
        the engine makes several per training step)."""
        meta = self._names.get(name)
        if meta is None:
            meta = self._names[name] = Meta(name=name)
        return Node("input", (), None, aval, meta)

    def pend(self, s: Storage) -> None:
        if s.ticket is None or self.pending.get(s.ticket) is None:
            t = s.ticket = next(self._tickets)
            self.pending[t] = weakref.ref(s)

    # -- backward ------------------------------------------------------------------------------
    def history_leaves(self, root: Node) -> list[tuple[Node, Any]]:
        """The input nodes of leaves that require grad under `root`, with their tensors, in the
        order a depth-first walk meets them; the walk does not enter nodes recorded without
        grad (they are constants for differentiation)."""
        seen: set[int] = set()
        out: list[tuple[Node, Any]] = []
        stack = [root]
        owners = self.owners
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            if n.op == "input":
                ref = owners.get(n)
                t = ref() if ref is not None else None
                if t is not None and t.requires_grad:
                    out.append((n, t))
            elif n.meta.role != NO_GRAD:
                stack.extend(reversed(n.inputs))
        return out

    def request(self, root: Node, seed: Node | None, leaves: list[tuple[Node, Any]]) -> list[Node]:
        """Record a backward request; returns one placeholder per leaf, standing for the
        gradient until the next realization computes it."""
        k = len(self.requests)
        phs = []
        for j, (n, t) in enumerate(leaves):
            ph = self.input(n.aval, f"grad {t._name}" if getattr(t, "_name", None) else "grad")
            self.placeholders[id(ph)] = (k, j)
            phs.append(ph)
        self.requests.append(Request(root, seed, [n for n, _ in leaves], phs))
        return phs

    # -- realization -----------------------------------------------------------------------------
    def realize(self, why: str = "a value was needed") -> None:
        """Compute every pending value and backward request: one executable, from the cache
        when this structure ran before."""
        outs: list[Storage] = []
        for ref in self.pending.values():
            s = ref()
            if s is not None and s.data is None and s.ticket is not None:
                outs.append(s)
        self.pending.clear()
        requests = self.requests
        if not outs and not requests:
            return
        self.requests = []
        placeholders = self.placeholders
        self.placeholders = {}
        try:
            self._realize(outs, requests, placeholders, why)
        except BaseException:
            # nothing was computed: the storages and requests stay pending, to be realized again
            for s in outs:
                if s.data is None:
                    s.ticket = None
                    self.pend(s)
            self.requests[:0] = requests
            placeholders.update(self.placeholders)
            self.placeholders = placeholders
            raise
        finally:
            self.entries.clear()

    def _realize(
        self,
        outs: list[Storage],
        requests: list[Request],
        placeholders: dict[int, tuple[int, int]],
        why: str,
    ) -> None:
        idx: dict[int, int] = {}
        entries: list[tuple] = []
        slots: list[Node] = []
        values: list[Any] = []
        feeds = self.feeds
        ekeys = self.entries
        known = self.known

        def walk(roots: list[Node], through_known: bool) -> None:
            # an iterative post-order walk (a node is entered once its operands are): inputs
            # and realized values (unless walking a backward request's history) end it
            for root in roots:
                if id(root) in idx:
                    continue
                stack = [root]
                while stack:
                    n = stack[-1]
                    nid = id(n)
                    if nid in idx:
                        stack.pop()
                        continue
                    op = n.op
                    if op == "input":
                        f = feeds.get(n)
                        if f is not None:
                            entry: tuple = ("in", type_key(n.aval))
                            slots.append(n)
                            values.append(f[0])
                        else:
                            ph = placeholders.get(nid)
                            if ph is None:
                                raise GraphcError(
                                    "internal: a recorded input has no value (a tensor's value "
                                    "was lost)"
                                )
                            entry = ("grad", ph)
                    elif op == "const":
                        entry = ("const", n.attrs["value"])
                    else:
                        # a realized value of a history (feeds are weakly keyed: asking costs
                        # a weak reference, so only nodes that may be realized are asked for)
                        f = feeds.get(n) if nid in known else None
                        if f is not None and not through_known:
                            entry = ("known", type_key(n.aval))
                            slots.append(n)
                            values.append(f[0])
                        else:
                            waiting = [i for i in n.inputs if id(i) not in idx]
                            if waiting:
                                stack.extend(reversed(waiting))
                                continue
                            key = ekeys.get(nid)
                            if key is None:
                                key = ekeys[nid] = node_key(n)
                            entry = (
                                key,
                                tuple([idx[id(i)] for i in n.inputs]),
                                n.meta.role,
                                f is not None,
                            )
                            if f is not None:
                                slots.append(n)
                                values.append(f[0])
                    stack.pop()
                    idx[nid] = len(entries)
                    entries.append(entry)

        for r in requests:
            walk([r.root] if r.seed is None else [r.root, r.seed], True)
        out_nodes = [s.node for s in outs]
        walk(out_nodes, False)  # type: ignore[arg-type]
        req_keys = tuple(
            (
                idx[id(r.root)],
                -1 if r.seed is None else idx[id(r.seed)],
                tuple(idx[id(w)] for w in r.wrt),
                tuple(idx.get(id(p), -1) for p in r.placeholders),
            )
            for r in requests
        )
        key = (tuple(entries), tuple(idx[id(n)] for n in out_nodes), req_keys)  # type: ignore[arg-type]
        backend = api.default_backend()
        plan = self.plans.get((backend, key))
        self.stats.realizations += 1
        hit = plan is not None
        if plan is None:
            self.stats.misses += 1
            graph = build_graph(out_nodes, slots, requests)  # type: ignore[arg-type]
            plan = self._plan(graph, backend)
            self.plans[(backend, key)] = plan
        else:
            self.stats.hits += 1
        self.last = plan
        if self.capture is not None:
            self.capture.before_run(plan, slots, outs, why)
        results = plan.exe(values)
        plan.runs += 1
        for s, v in zip(outs, results, strict=True):
            s.data = v
            s.ticket = None
            s.plain = None
            if s.history:
                feeds[s.node] = (v, weakref.ref(s), "t", s.born, None)  # type: ignore[index]
                self.known.add(id(s.node))
            else:
                s.node = None
        if len(self.known) > 4096:  # ids of nodes gone since: keep those still realized
            self.known = {id(n) for n in list(feeds.keys()) if n.op != "input"}
        if self.capture is not None:
            self.capture.after_run(plan, slots, outs, results)
        if debug_level() >= 1:
            loc = user_location()
            print(
                f"[graphc.torch] realize ({why}) at {loc}: {len(entries)} recorded nodes, "
                f"{len(requests)} backward, {len(outs)} outputs -> "
                f"{'cache hit' if hit else 'compiled'} {plan.hash[:12]} "
                f"({len(plan.graph.equations)} equations)",
                file=sys.stderr,
            )

    def _plan(self, graph: Graph, backend: str) -> Plan:
        digest = graph.structural_hash()
        exe = self.executables.get((backend, digest))
        if exe is None:
            t0 = time.perf_counter()
            exe = api.executable(graph, backend)
            dt = time.perf_counter() - t0
            self.executables[(backend, digest)] = exe
            self.stats.compiles += 1
            self.stats.compile_seconds += dt
            if debug_level() >= 1 or api.log_compiles():
                print(
                    f"[graphc.torch] compiled {len(graph.equations)} equations in {dt:.2f} s "
                    f"({digest[:12]})",
                    file=sys.stderr,
                )
        return Plan(graph, exe, digest)


def build_graph(out_nodes: list[Node], slots: list[Node], requests: list[Request]) -> Graph:
    """The graph a new realization key compiles: the recorded outputs with each backward
    request's gradients in place of its placeholders, and every realized value an input.

    The inputs stand for `slots`, in the walk's order; the values fed at run time line up
    with them.
    """
    grads = differentiate(requests)
    outs = substitute(out_nodes, grads) if grads else list(out_nodes)
    # new input nodes for all of them: the graph, kept with its executable, holds no recorded
    # node, so the values fed to this first run are not kept alive by the cache
    fresh = {id(n): make_input(n.aval, n.meta.name) for n in slots}
    outs = substitute(outs, fresh)
    return Graph([fresh[id(n)] for n in slots], outs, name="graphc.torch")


def differentiate(requests: list[Request]) -> dict[int, Node]:
    """Placeholder id -> gradient node for each request, by graphc's reverse-mode pass over the
    request's recorded history. Nodes recorded without grad and the placeholders of earlier
    requests enter the pass as inputs (constants for it); the cotangent input becomes the seed
    (ones, or the gradient given to `backward`)."""
    from passes.autodiff import vjp

    out: dict[int, Node] = {}
    for r in requests:
        if not r.wrt:
            continue
        roots = [r.root]
        frozen = _frozen_nodes(roots)
        cut = {id(n): make_input(n.aval) for n in frozen}
        root = substitute(roots, cut)[0] if cut else r.root
        ins = inputs_under([root])
        pos = {id(n): k for k, n in enumerate(ins)}
        joint = vjp(Graph(ins, [root]), [pos[id(w)] for w in r.wrt], seed="inputs")
        ct = joint.inputs[-1]
        seed = r.seed if r.seed is not None else make_const(np.ones(r.root.shape, r.root.dtype))
        back = {id(v): n for n, v in zip(frozen, cut.values(), strict=True)}
        back[id(ct)] = seed
        back.update(out)  # earlier requests' gradients, read by this one's history
        grads = substitute(list(joint.outputs[1:]), back)
        for ph, g in zip(r.placeholders, grads, strict=True):
            out[id(ph)] = g
    return out


def inputs_under(roots: list[Node]) -> list[Node]:
    """The input nodes `roots` are computed from, in the order a depth-first walk that visits
    operands left to right meets them."""
    seen: set[int] = set()
    ins = []
    stack = list(reversed(roots))
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.op == "input":
            ins.append(n)
        else:
            stack.extend(reversed(n.inputs))
    return ins


def _frozen_nodes(roots: list[Node]) -> list[Node]:
    """The outermost nodes under `roots` recorded without grad: differentiation treats them as
    constants, as PyTorch treats results without a grad_fn."""
    seen: set[int] = set()
    out: list[Node] = []
    stack = list(roots)
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.op in ("input", "const"):
            continue
        if n.meta.role == NO_GRAD:
            out.append(n)
            continue
        stack.extend(n.inputs)
    return out


engine = Engine()
