"""The user-facing transformations: jit, grad, value_and_grad, vjp, jvp, jacobian, hessian (JAX
style), gradient and withgradient (Flux style), destructure, check_grads.

Every transformation traces the user's function into a graph, applies graph passes (autodiff,
optimization) and runs the result. Called with traced values (inside another transformation),
they splice their graph into the enclosing trace instead of running it, which is why
`grad(grad(f))`, `jacobian(grad(f))` and gradients through `destructure` simply work.

Example:
    >>> graphc.grad(lambda x: 3 * x**2 + 2 * x + 1)(2.0)
    14.0
    >>> f = lambda x, y: np.sum((x - y) ** 2)
    >>> graphc.gradient(f, np.array([2.0, 1.0]), np.array([2.0, 0.0]))
    (array([0., 2.]), array([-0., -2.]))
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc import numpy as gnp
from graphc import tree_util as pytree
from graphc.ir import Aval, Graph, GraphcError, is_float, nested_graphs, substitute
from graphc.ops.batching import BatchingError
from graphc.ops.interp import evaluate
from graphc.signature import InputCheck, SignatureError, coerce, describe
from graphc.trace import (
    Spec,
    StaticLeaf,
    Tracer,
    _leaf_names,
    fn_name,
    is_weak,
    leaf_aval,
    split_args,
    to_node,
    trace_flat,
    unflatten_outputs,
    user_location,
)


class GradCheckError(GraphcError):
    """Automatic and numerical derivatives disagree."""


# ---------------------------------------------------------------------------------------------
# running graphs


def default_backend() -> str:
    """`numba` (compiled) unless GRAPHC_BACKEND says otherwise (e.g. `interpreter`)."""
    return os.environ.get("GRAPHC_BACKEND", "numba")


def optimize(graph: Graph) -> Graph:
    """The default optimization pipeline followed by fusion (what the numba backend runs)."""
    from passes import COMPILE_PIPELINE, run_pipeline

    return run_pipeline(graph, COMPILE_PIPELINE)


def _compile_numba(graph: Graph) -> Callable[[list], list]:
    from graphc.codegen import compile_graph

    return compile_graph(optimize(graph))


_EXECUTORS: dict[str, Callable[[Graph], Callable[[list], list]]] = {
    "interpreter": lambda graph: lambda args: evaluate(graph, *args),
    "numba": _compile_numba,
}


def register_backend(name: str, compile_fn: Callable[[Graph], Callable[[list], list]]) -> None:
    """Make `backend=name` available: `compile_fn(graph)` returns a function of a list of input
    arrays returning the list of output arrays."""
    _EXECUTORS[name] = compile_fn


def executable(graph: Graph, backend: str | None = None) -> Callable[[list], list]:
    backend = backend or default_backend()
    if backend not in _EXECUTORS:
        raise GraphcError(f"unknown backend {backend!r} (available: {', '.join(_EXECUTORS)})")
    exe = _EXECUTORS[backend](graph)
    if getattr(exe, "checks_inputs", False):
        return exe
    check = InputCheck(graph)  # every backend gets arguments that fit the graph's signature
    return lambda args: exe(check(args))


def inline(graph: Graph, args: Sequence[Any]) -> list[Tracer]:
    """Splice `graph` into the current trace with `args` (tracers or arrays) as its inputs,
    checked and cast like the arguments of a compiled call."""
    if len(args) != len(graph.inputs):
        raise SignatureError(
            f"{graph.name or 'the function'} takes {len(graph.inputs)} array inputs, "
            f"got {len(args)}",
            user_location(),
        )
    mapping = {}
    for k, (node, a) in enumerate(zip(graph.inputs, args, strict=True)):
        what = f"input {k} ({node.meta.name})" if node.meta.name else f"input {k}"
        v = coerce(a, node.aval, what)
        mapping[id(node)] = v.node if isinstance(v, Tracer) else to_node(v)
    return [Tracer(o) for o in substitute(list(graph.outputs), mapping, graph.nodes)]


def log_compiles() -> bool:
    return os.environ.get("GRAPHC_LOG_COMPILES", "0") not in ("", "0")


class _Sig(tuple):
    """(shape, dtype, weak) of one traced leaf: the cheap per-call part of a cache key. Weak
    leaves (Python floats) promote like Python scalars when traced (NEP 50), so `x_f32 * 0.1`
    is float32 and `x_f32 * np.float64(0.1)` float64: the two need different graphs."""

    __slots__ = ()
    shape = property(lambda self: self[0])
    dtype = property(lambda self: self[1])
    weak = property(lambda self: self[2])


def _signature(x: Any) -> _Sig:
    if type(x) is np.ndarray:
        return _Sig((x.shape, x.dtype, False))
    a = leaf_aval(x)  # scalars, specs, tracers: rarer, and Aval checks the dtype
    return _Sig((a.shape, a.dtype, is_weak(x)))


def _describe_change(old: tuple | None, new: tuple) -> str:
    """Why a new signature needs a compile, e.g. "input 0 shape (64, 784) -> (32, 784)"."""
    if old is None:
        return "first call"
    (t_old, a_old), (t_new, a_new) = old, new
    if t_old != t_new:
        return "argument structure or static arguments changed"
    if len(a_old) != len(a_new):
        return f"number of array inputs {len(a_old)} -> {len(a_new)}"
    for k, (x, y) in enumerate(zip(a_old, a_new, strict=True)):
        if x.shape != y.shape:
            return f"input {k} shape {x.shape} -> {y.shape}"
        if x.dtype != y.dtype:
            return f"input {k} dtype {x.dtype} -> {y.dtype}"
        if x.weak != y.weak:
            kinds = {True: "Python scalar (weak)", False: "NumPy scalar or array (strong)"}
            return f"input {k} {kinds[x.weak]} -> {kinds[y.weak]}"
    return "new signature"


@contextlib.contextmanager
def _collector_paused():
    """Pause CPython's cyclic garbage collector while a graph is built or compiled.

    Tracing and compiling a large graph allocate millions of long-lived objects (nodes,
    their attribute dicts, per-pass maps) and almost no reference cycles; left running, the
    collector traverses that growing heap again and again, a third of the compile time of a
    100,000-op graph. Collection resumes, as it was, when the outermost build ends."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Staged:
    """Per-input-signature cache of (graph, executable) for one transformed function."""

    def __init__(
        self,
        build: Callable[[tuple, dict], Graph],
        backend: str | None,
        name: str = "function",
        log: bool | None = None,
    ):
        self.build = build
        self.backend = backend
        self.name = name
        self.log = log
        self.cache: dict[Any, tuple[Graph, Callable | None]] = {}
        self.lowered: dict[Any, Lowered] = {}  # per signature, once asked for
        self.compiles: list[str] = []  # one reason per compile, in order
        self._last_key: tuple | None = None
        self.lock = threading.Lock()

    def graph(self, args: tuple, kwargs: dict) -> Graph:
        """The graph for this signature, traced (and cached) but not compiled."""
        leaves, in_tree = split_args((args, kwargs))
        key = (in_tree, tuple(_signature(x) for x in leaves))
        with self.lock:
            graph, exe = self.cache.get(key, (None, None))
            if graph is None:
                with _collector_paused():
                    graph = self.build(args, kwargs)
                self.cache[key] = (graph, None)
        return graph

    def get(self, args: tuple, kwargs: dict) -> tuple[Graph, Callable | None, list, bool]:
        """The graph for this signature and, for concrete arguments, its executable."""
        leaves, in_tree = split_args((args, kwargs))
        traced = any(isinstance(x, Tracer) for x in leaves)
        key = (in_tree, tuple(_signature(x) for x in leaves))
        with self.lock:  # one trace and one compile per signature, even from several threads
            graph, exe = self.cache.get(key, (None, None))
            if graph is None:
                with _collector_paused():
                    graph = self.build(args, kwargs)
                    # its first walk of the new graph allocates as much as building it did
                    closes = closes_over_trace(graph)
                if closes:
                    # it reads values of the enclosing trace: spliced into that trace, never
                    # compiled on its own, and not kept for a later trace
                    return graph, None, leaves, True
            if exe is None and not traced:
                exe = self._compile(key, graph)
            self.cache[key] = (graph, exe)
        return graph, exe, leaves, traced

    def _compile(self, key: tuple, graph: Graph) -> Callable:
        reason = _describe_change(self._last_key, key)
        t0 = time.perf_counter()
        with _collector_paused():
            exe = executable(graph, self.backend)
        self.compiles.append(reason)
        if self.log or (self.log is None and log_compiles()):
            print(
                f"[graphc] compiled {self.name} in {time.perf_counter() - t0:.2f} s: {reason}",
                file=sys.stderr,
            )
        self._last_key = key
        return exe

    def lower(self, args: tuple, kwargs: dict) -> Lowered:
        """Every stage for this signature. With the compiled backend the executable a call
        uses is the one shown: lowering after a call reuses it, and a call after lowering runs
        what was lowered, so neither compiles twice."""
        from graphc.codegen import Executable

        leaves, in_tree = split_args((args, kwargs))
        key = (in_tree, tuple(_signature(x) for x in leaves))
        with self.lock:
            low = self.lowered.get(key)
            if low is not None:
                return low
            graph, exe = self.cache.get(key, (None, None))
            if graph is None:
                with _collector_paused():
                    graph = self.build(args, kwargs)
            if exe is None and (self.backend or default_backend()) == "numba":
                exe = self._compile(key, graph)
            self.cache[key] = (graph, exe)
            if isinstance(exe, Executable):
                low = Lowered(graph, exe.graph, exe.source, exe.fallbacks, exe.path)
            else:  # another backend runs the calls: lowering shows what numba would make
                with _collector_paused():
                    low = lower(graph)
            self.lowered[key] = low
        return low

    def run(self, args: tuple, kwargs: dict) -> tuple[Graph, list]:
        graph, exe, leaves, traced = self.get(args, kwargs)
        if traced:
            return graph, inline(graph, leaves)
        return graph, exe(leaves)


# ---------------------------------------------------------------------------------------------
# jit


class Lowered:
    """Every stage of a compiled function for one input signature, for reading.

    traced:    the graph as traced
    optimized: after the optimization pipeline and fusion (what is compiled)
    source:    the generated Python/Numba module (kernels and driver)
    fallbacks: ops that run their NumPy implementation instead of compiled code
    notes:     what else is worth knowing about the code, e.g. ops that vmap runs as a
               loop over the batch because their entry has no batching rule
    """

    def __init__(
        self,
        traced: Graph,
        optimized: Graph,
        source: str,
        fallbacks: list[str],
        path: str | None = None,
    ):
        self.traced = traced
        self.optimized = optimized
        self.source = source
        self.fallbacks = fallbacks
        self.path = path
        self.notes = batch_loop_notes(traced)

    def __repr__(self) -> str:
        k = sum(1 for n in self.optimized.equations if n.op == "fused")
        return (
            f"<Lowered: {len(self.traced.equations)} traced equations -> {k} kernels, "
            f"{len(self.fallbacks)} NumPy fallbacks>"
        )


def batch_loop_notes(graph: Graph) -> list[str]:
    """The loops over a batch that vmap put in `graph` (also inside its regions) for ops
    without a batching rule, one line each. They are found by their metadata, so they are
    reported also when the vmap was spliced into an enclosing trace.

    Example:
        >>> batch_loop_notes(graphc.jit(graphc.vmap(f)).trace(xs))
        ['vmap: my_op: no batching rule (model.py:3): runs as a loop over the batch of 8']
    """
    from passes.batching import LOOP_ROLE, loop_note

    notes: list[str] = []
    stack, seen = [graph], {id(graph)}
    while stack:
        g = stack.pop()
        for n in g.nodes:
            if n.op == "scan" and n.meta.role == LOOP_ROLE:
                notes.append(loop_note(n))
            for b in nested_graphs(n):
                if id(b) not in seen:
                    seen.add(id(b))
                    stack.append(b)
    return notes


def lower(graph: Graph) -> Lowered:
    """Optimize and generate code for `graph` without running it."""
    from graphc.codegen import compile_graph

    opt = optimize(graph)
    exe = compile_graph(opt)
    return Lowered(graph, opt, exe.source, exe.fallbacks, exe.path)


class Jitted:
    """A function compiled per input signature. Call it like the original function.

    `.lower(*args)` shows every stage for those arguments; `.compiles` lists why each compile
    happened ("first call", "input 0 shape (64, 784) -> (32, 784)", ...).
    """

    def __init__(self, fn: Callable, backend: str | None = None, log_compiles: bool | None = None):
        # first: update_wrapper copies fn.__dict__, which must not replace our own state
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.backend = backend
        self._staged = _Staged(
            lambda a, k: trace_flat(fn, a, k, name=fn_name(fn)),
            backend,
            name=fn_name(fn),
            log=log_compiles,
        )

    @property
    def compiles(self) -> list[str]:
        return list(self._staged.compiles)

    def lower(self, *args: Any, **kwargs: Any) -> Lowered:
        """The traced graph, the optimized graph and the generated source for these args
        (compiled once per signature, shared with calls).

        Example:
            >>> f = graphc.jit(lambda x: np.tanh(x) * 2)
            >>> print(f.lower(np.zeros(3)).source)
        """
        return self._staged.lower(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph, outs = self._staged.run(args, kwargs)
        return unflatten_outputs(graph, outs)

    def trace(self, *args: Any, **kwargs: Any) -> Graph:
        """The traced graph for these arguments (traced once, not compiled)."""
        return self._staged.graph(args, kwargs)


def jit(
    fn: Callable | None = None, *, backend: str | None = None, log_compiles: bool | None = None
) -> Any:
    """Compile `fn` for each new input signature (shapes, dtypes, structure) and run it.

    Example:
        >>> f = graphc.jit(lambda x: np.tanh(x) * 2)
        >>> f(np.zeros(3))
        array([0., 0., 0.])
    """
    if fn is None:
        return lambda f: Jitted(f, backend, log_compiles)
    return Jitted(fn, backend, log_compiles)


# ---------------------------------------------------------------------------------------------
# reverse mode


def _argnums(argnums: int | Sequence[int], n: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not -n <= a < n:
            raise GraphcError(f"argnums {argnums} out of range for {n} positional arguments")
    return tuple(a % n for a in nums)


def _leaf_owners(args: tuple, kwargs: dict) -> list[int]:
    """For each traced leaf of (args, kwargs): the positional index it belongs to (-1: kwargs)."""
    owners = []
    for i, a in enumerate(args):
        owners += [i] * len(split_args(((a,), {}))[0])
    owners += [-1] * len(split_args(((), kwargs))[0])
    return owners


def _wrt_inputs(graph: Graph, owners: list[int], nums: tuple[int, ...]) -> list[int]:
    return [k for k, o in enumerate(owners) if o in nums and is_float(graph.inputs[k].dtype)]


def _structure_like(arg: Any, values: dict[int, Any], first: int) -> Any:
    """Rebuild `arg`'s structure: traced float leaves take values[k] (k counted from `first`),
    every other leaf becomes None. Python float leaves come back as Python floats."""
    leaves, td = pytree.flatten(arg)
    out, k = [], first
    for leaf in leaves:
        if (
            isinstance(leaf, (np.ndarray, np.generic, float, Tracer))
            or type(leaf).__name__ == "Spec"
        ):
            v = values.get(k)
            if type(leaf) is float and isinstance(v, np.ndarray) and v.shape == ():
                v = float(v)
            out.append(v)
            k += 1
        else:
            out.append(None)
    return pytree.unflatten(td, out)


def _as_real(args: tuple, nums: Sequence[int]) -> tuple:
    """Python ints passed where a derivative is asked for are numbers to differentiate at, as
    Flux takes them (`gradient(f, 2)`): they become Python floats, weak like any Python scalar.
    Ints inside containers and at other positions stay static (they steer the trace); bools
    are never differentiated."""
    return tuple(float(a) if type(a) is int and i in nums else a for i, a in enumerate(args))


def _scalar_output(graph: Graph, what: str) -> None:
    _, mask = graph.out_tree
    if not mask or mask[0] is not True:
        got = describe(mask[0].value) if mask and isinstance(mask[0], StaticLeaf) else "nothing"
        raise GraphcError(
            f"{what} needs a function returning a floating-point scalar computed from its "
            f"arguments; {graph.name or 'it'} returned {got}",
            user_location(),
        )
    o = graph.outputs[0]
    if o.aval.shape != () or not is_float(o.dtype):
        raise GraphcError(
            f"{what} needs a function returning a floating-point scalar; "
            f"{graph.name or 'it'} returned {o.aval}",
            user_location(),
        )


def value_and_grad(
    fn: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    *,
    backend: str | None = None,
) -> Callable[..., Any]:
    """Return a function computing `(fn(*args), gradient)` (with `has_aux`: `((value, aux),
    gradient)`). The gradient mirrors `args[argnums]` (a tuple for several argnums), with None
    for leaves that have no gradient (integers, functions).

    Example:
        >>> graphc.value_and_grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
        (array(5.), array([2., 4.]))
    """
    from passes.autodiff import vjp as vjp_pass

    def wrapped_fn(*args, **kwargs):
        r = fn(*args, **kwargs)
        if has_aux:
            if not (isinstance(r, tuple) and len(r) == 2):
                raise GraphcError("with has_aux=True the function must return (value, aux)")
            return r
        return r, None

    def build(args: tuple, kwargs: dict) -> Graph:
        nums = _argnums(argnums, len(args))
        g = trace_flat(wrapped_fn, args, kwargs, name=fn_name(fn))
        _scalar_output(g, "grad")
        wrt = _wrt_inputs(g, _leaf_owners(args, kwargs), nums)
        joint = vjp_pass(g, wrt, seed="ones", outputs=[0])
        joint.out_tree = g.out_tree
        joint.info["wrt"] = tuple(wrt)
        # the gradient reads only what g reads: asked of g, whose walk autodiff already made
        joint.info["closes_over_trace"] = closes_over_trace(g)
        return joint

    staged = _Staged(build, backend)

    def vg(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args))
        args = _as_real(args, nums)
        joint, outs = staged.run(args, kwargs)
        wrt = joint.info["wrt"]
        n_out = len(joint.outputs) - len(wrt)
        value_aux = unflatten_outputs(joint, list(outs[:n_out]))
        grads = dict(zip(wrt, outs[n_out:], strict=True))
        owners = _leaf_owners(args, kwargs)
        per_arg = tuple(
            _structure_like(args[i], grads, owners.index(i) if i in owners else 0) for i in nums
        )
        g = per_arg[0] if isinstance(argnums, int) else per_arg
        value, aux = value_aux
        return ((value, aux) if has_aux else value), g

    vg.__name__ = f"value_and_grad({fn_name(fn)})"
    return vg


def grad(
    fn: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    *,
    backend: str | None = None,
) -> Callable[..., Any]:
    """Return a function computing the gradient of scalar-valued `fn` with respect to
    `args[argnums]` (JAX's `grad`).

    Example:
        >>> df = graphc.grad(lambda x: 3 * x**2 + 2 * x + 1)
        >>> df(2.0), graphc.grad(df)(2.0)
        (14.0, 6.0)
    """
    vg = value_and_grad(fn, argnums, has_aux, backend=backend)

    def g(*args: Any, **kwargs: Any) -> Any:
        (value_aux, grads) = vg(*args, **kwargs)
        return (grads, value_aux[1]) if has_aux else grads

    g.__name__ = f"grad({fn_name(fn)})"
    return g


def withgradient(f: Callable, *args: Any) -> tuple[Any, tuple]:
    """Flux-style: `(f(args...), gradients)` with one gradient per argument, mirroring nested
    structures, None where a leaf has no gradient.

    Example:
        >>> graphc.withgradient(lambda x: 3 * x**2 + 2 * x + 1, 2.0)
        (17.0, (14.0,))
    """
    value, grads = value_and_grad(f, argnums=tuple(range(len(args))))(*args)
    if isinstance(value, np.ndarray) and value.shape == ():
        value = float(value) if not isinstance(value, Tracer) else value
    return value, grads


def gradient(f: Callable, *args: Any) -> tuple:
    """Flux-style: a tuple with one gradient per argument, mirroring nested structures, None
    where a leaf has no gradient (functions, integers).

    Example:
        >>> nt = dict(a=np.array([2.0, 1.0]), b=np.array([2.0, 0.0]), c=np.tanh)
        >>> graphc.gradient(lambda t: np.sum((t["a"] - t["b"]) ** 2), nt)
        ({'a': array([0., 2.]), 'b': array([-0., -2.]), 'c': None},)
    """
    return withgradient(f, *args)[1]


# ---------------------------------------------------------------------------------------------
# vjp / jvp


def _flat_call_graph(fn: Callable, primals: tuple) -> tuple[Graph, list, Any]:
    leaves, in_tree = split_args((primals, {}))
    g = trace_flat(fn, primals, {}, name=fn_name(fn))
    return g, leaves, in_tree


def closes_over_trace(graph: Graph) -> bool:
    """Whether `graph` reads inputs that are not its own: values of an enclosing trace that the
    traced function closed over (`jit(lambda y: grad(lambda x: x * y)(2.0))`). Such a graph
    only means something spliced into that trace."""
    free = graph.info.get("closes_over_trace")
    if free is None:
        own = {id(n) for n in graph.inputs}
        free = graph.info["closes_over_trace"] = any(
            n.op == "input" and id(n) not in own for n in graph.nodes
        )
    return free


def _run(graph: Graph, args: list, backend: str | None = None) -> list:
    if closes_over_trace(graph) or any(isinstance(a, Tracer) for a in args):
        return inline(graph, args)
    return executable(graph, backend)(args)


def _runner(graph: Graph, args: Sequence[Any], backend: str | None) -> Callable[[list], list]:
    """Runs `graph` many times: compiled once for concrete `args`, inlined for traced ones."""
    if closes_over_trace(graph) or any(isinstance(a, Tracer) for a in args):
        return lambda a: inline(graph, a)
    return executable(graph, backend)


def _main_outputs(g: Graph, n_main: int) -> list[tuple[int, int]]:
    """(leaf position in the output, graph output index) for each traced leaf among the first
    n_main output leaves (static leaves, e.g. a returned int or string, have no graph output)."""
    _, mask = g.out_tree
    pairs, j = [], 0
    for p, m in enumerate(mask):
        if m is True:
            if p < n_main:
                pairs.append((p, j))
            j += 1
    return pairs


def _leaves_like(value: Any, tree: pytree.TreeDef, what: str, prefix: str) -> list:
    """The leaves of `value` in the order of `tree`'s leaves, matched by path, so a dict with
    its keys in another order (or a list for a tuple) lines up; SignatureError when the paths
    differ."""
    leaves, td = pytree.flatten(value)
    if td == tree:
        return leaves
    want, got = pytree.leaf_paths(tree, prefix), pytree.leaf_paths(td, prefix)
    by_path = dict(zip(got, leaves, strict=True))
    if len(by_path) != len(got) or set(want) != set(got):
        shown = "leaves " + ", ".join(got) if td.kind is not None and got else describe(value)
        raise SignatureError(
            f"{what} must have the structure of {prefix} (leaves {', '.join(want)}); got {shown}",
            user_location(),
        )
    return [by_path[p] for p in want]


def _leaf_labels(tree: pytree.TreeDef, what: str) -> list[str]:
    if tree.kind is None:
        return [what]
    return [f"{what} at {path}" for path in pytree.leaf_paths(tree, "out")]


def vjp(fn: Callable, *primals: Any, has_aux: bool = False, backend: str | None = None) -> tuple:
    """Evaluate `fn(*primals)` and return `(out, vjp_fn)` (plus aux with `has_aux`), where
    `vjp_fn(cotangent)` returns one gradient per primal. The forward graph runs now and saves
    the residuals that the backward graph (run by `vjp_fn`) needs.

    Cotangents must have the output's structure and shapes; their dtypes are cast like
    `np.copyto` would (float64 to a float32 output, a Python float to a scalar output).
    Python ints among the primals are differentiated as floats.

    Example:
        >>> out, back = graphc.vjp(np.sin, np.array([0.0, 1.0]))
        >>> back(np.ones(2))
        (array([1.        , 0.54030231]),)
    """
    from passes.autodiff import vjp as vjp_pass
    from passes.partition import partition

    def f2(*a):
        r = fn(*a)
        return r if has_aux else (r, None)

    primals = _as_real(primals, range(len(primals)))
    g, leaves, _ = _flat_call_graph(f2, primals)
    main_tree = g.out_tree[0].children[0]
    n_main = main_tree.num_leaves  # leaves of the output (not of aux)
    wrt = [k for k, x in enumerate(g.inputs) if is_float(x.dtype)]
    diff = [(p, j) for p, j in _main_outputs(g, n_main) if is_float(g.outputs[j].dtype)]
    joint = vjp_pass(g, wrt, seed="inputs", outputs=[j for _, j in diff])
    part = partition(joint)
    fwd_out = _run(part.forward, leaves, backend)
    outs, residuals = fwd_out[: len(g.outputs)], fwd_out[len(g.outputs) :]
    result = unflatten_outputs(g, list(outs))
    out_value, aux = result
    labels = _leaf_labels(main_tree, "vjp: the cotangent")
    owners = _leaf_owners(primals, {})

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves = _leaves_like(cotangent, main_tree, "vjp: the cotangent", "out")
        cts = [coerce(ct_leaves[p], g.outputs[j].aval, labels[p]) for p, j in diff]
        grads = _run(part.backward, list(residuals) + cts, backend)
        values = dict(zip(wrt, grads, strict=True))
        return tuple(
            _structure_like(p, values, owners.index(i) if i in owners else 0)
            for i, p in enumerate(primals)
        )

    return (out_value, vjp_fn, aux) if has_aux else (out_value, vjp_fn)


def _zero_tangent(value: Any) -> Any:
    """The tangent of an output that does not depend on the inputs and is no array (a Python
    number: zero of its type; anything else: None)."""
    if type(value) in (int, float, complex):
        return type(value)(0)
    return None


def jvp(
    fn: Callable, primals: Sequence[Any], tangents: Sequence[Any], backend: str | None = None
) -> tuple[Any, Any]:
    """Forward mode: `(fn(*primals), directional derivative along tangents)`.

    `tangents` has the structure of `primals`; tangents of floating-point leaves must have
    their shapes and are cast like `np.copyto` would, those of static leaves (functions,
    ints inside containers) are ignored. Python ints among the primals are differentiated as
    floats.

    Example:
        >>> graphc.jvp(np.sin, (0.0,), (1.0,))
        (0.0, 1.0)
    """
    from passes.autodiff import jvp as jvp_pass

    primals = _as_real(tuple(primals), range(len(primals)))
    tangents = tuple(tangents)
    g, leaves, in_tree = _flat_call_graph(fn, primals)
    p_tree = pytree.flatten(primals)[1]
    t_all = _leaves_like(tangents, p_tree, "jvp: the tangents", "primals")
    traced_pos = [p for p, t in enumerate(in_tree.traced) if t]
    paths = pytree.leaf_paths(p_tree, "primals")
    wrt = [k for k, x in enumerate(g.inputs) if is_float(x.dtype)]
    ts = [
        coerce(
            t_all[traced_pos[k]], g.inputs[k].aval, f"jvp: the tangent for {paths[traced_pos[k]]}"
        )
        for k in wrt
    ]
    tg = jvp_pass(g, wrt)
    outs = _run(tg, list(leaves) + ts, backend)
    n = len(g.outputs)
    primal_out = unflatten_outputs(g, list(outs[:n]))
    tree, mask = g.out_tree
    it = iter(outs[n:])
    tangent_out = pytree.unflatten(
        tree, [next(it) if m is True else _zero_tangent(m.value) for m in mask]
    )
    if primals and all(type(p) is float for p in primals):
        primal_out = _pyfloat(primal_out)
        tangent_out = _pyfloat(tangent_out)
    return primal_out, tangent_out


def _pyfloat(x: Any) -> Any:
    return float(x) if isinstance(x, np.ndarray) and x.shape == () else x


# ---------------------------------------------------------------------------------------------
# vmap


def _is_axis(a: Any) -> bool:
    return isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))


def _describe_tree(t: pytree.TreeDef) -> str:
    if t.kind is None:
        return "a single value"
    if t.kind is dict:
        return f"a dict with keys {list(t.aux)}"
    if t.kind in (tuple, list):
        return f"a {t.kind.__name__} of {len(t.children)}"
    return f"a {getattr(t.kind, '__name__', t.kind)}"


def _prefix_axes(spec: Any, tree: pytree.TreeDef, path: str, what: str, noun: str) -> list:
    """One axis (an int or None) per leaf of `tree`: `spec` is a prefix of the tree whose
    leaves (ints, None) apply to every leaf below them, as in JAX."""
    out: list = []
    stack = [(spec, tree, path)]
    while stack:
        sp, t, p = stack.pop()
        if sp is None or _is_axis(sp):
            out.extend([None if sp is None else int(sp)] * t.num_leaves)
            continue
        node = pytree.node_children(sp)
        if node is None:
            raise BatchingError(
                f"vmap: {what} holds {sp!r} at {p}; its entries are ints (an axis) or None",
                user_location(),
            )
        kind, kids, aux = node
        seqs = (tuple, list)
        fits = t.kind is not None and (
            (kind in seqs and t.kind in seqs and len(kids) == len(t.children))
            or (kind is dict and t.kind is dict and set(aux) == set(t.aux))
            or (kind is t.kind and aux == t.aux and len(kids) == len(t.children))
        )
        if not fits:
            raise BatchingError(
                f"vmap: {what} does not fit the {noun}s: {p} is "
                f"{_describe_tree(pytree.flatten(sp)[1])}, but the {noun} there is "
                f"{_describe_tree(t)}",
                user_location(),
            )
        if kind is dict:
            by_key = dict(zip(aux, kids, strict=True))
            kids = [by_key[k] for k in t.aux]
            names = [f"[{k!r}]" for k in t.aux]
        else:
            names = [f"[{i}]" for i in range(len(kids))]
        for sub, c, nm in reversed(list(zip(kids, t.children, names, strict=True))):
            stack.append((sub, c, p + nm))
    return out


def _in_axes_per_leaf(in_axes: Any, args: tuple, kwargs: dict) -> list:
    """The axis of every leaf of (args, kwargs), in flatten order; keyword arguments are
    mapped along their first axis (as JAX maps them)."""
    if in_axes is None or _is_axis(in_axes):
        per_arg = [in_axes] * len(args)
    else:
        if len(in_axes) != len(args):
            raise BatchingError(
                f"vmap: in_axes has {len(in_axes)} entries for {len(args)} positional "
                f"argument{'' if len(args) == 1 else 's'}; give one per argument (or one int "
                "or None for all)",
                user_location(),
            )
        per_arg = list(in_axes)
    out: list = []
    for i, (sp, a) in enumerate(zip(per_arg, args, strict=True)):
        out += _prefix_axes(sp, pytree.flatten(a)[1], f"in_axes[{i}]", "in_axes", "argument")
    out += [0] * pytree.flatten(kwargs)[1].num_leaves
    return out


def _batch_size(
    leaves: list, axes: list, names: list[str], axis_size: int | None
) -> tuple[int, list]:
    """The batch size and each traced leaf's batch axis (non-negative, or None)."""
    dims: list = []
    sizes: list[tuple[str, int, int]] = []
    for x, a, name in zip(leaves, axes, names, strict=True):
        if a is None:
            dims.append(None)
            continue
        aval = leaf_aval(x)
        if not -aval.ndim <= a < aval.ndim:
            why = "a scalar" if aval.ndim == 0 else f"an array of {aval.ndim} axes ({aval})"
            raise BatchingError(
                f"vmap: in_axes asks to map {name} along axis {a}, but it is {why}; "
                "use None for arguments that are the same for every example",
                user_location(),
            )
        d = a % aval.ndim
        dims.append(d)
        sizes.append((name, d, aval.shape[d]))
    found = sorted({s for _, _, s in sizes})
    if axis_size is not None:
        if found and found != [axis_size]:
            raise BatchingError(
                f"vmap: axis_size={axis_size}, but the mapped axes have sizes "
                + ", ".join(f"{n}: {s} (axis {d})" for n, d, s in sizes),
                user_location(),
            )
        return axis_size, dims
    if not sizes:
        raise BatchingError(
            "vmap: no argument is mapped (in_axes are all None), so the batch size is "
            "unknown: pass axis_size",
            user_location(),
        )
    if len(found) > 1:
        raise BatchingError(
            "vmap: the mapped axes have different sizes: "
            + ", ".join(f"{n} has {s} along axis {d}" for n, d, s in sizes),
            user_location(),
        )
    return found[0], dims


def _without_axis(aval: Aval, d: int) -> Aval:
    return Aval(aval.shape[:d] + aval.shape[d + 1 :], aval.dtype)


class Vmapped:
    """A function mapped over a batch axis of its arguments (see `vmap`). Called with arrays
    it compiles once per input signature; called with traced values (inside jit, grad or
    another vmap) it splices its batched graph into the enclosing trace.
    """

    def __init__(
        self,
        fn: Callable,
        in_axes: Any,
        out_axes: Any,
        axis_size: int | None,
        backend: str | None,
    ):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.in_axes = tuple(in_axes) if isinstance(in_axes, list) else in_axes
        self.out_axes = out_axes
        self.axis_size = axis_size
        self.__name__ = f"vmap({fn_name(fn)})"
        self._staged = _Staged(self._build, backend, name=self.__name__)

    def _build(self, args: tuple, kwargs: dict) -> Graph:
        from passes.batching import batch

        leaves, in_tree = split_args((args, kwargs))
        every = _in_axes_per_leaf(self.in_axes, args, kwargs)
        axes = [a for a, t in zip(every, in_tree.traced, strict=True) if t]
        all_names = _leaf_names((args, kwargs), self.fn)
        names = [n for n, t in zip(all_names, in_tree.traced, strict=True) if t]
        size, dims = _batch_size(leaves, axes, names, self.axis_size)
        # one example: the batched leaves without their batch axis
        example = [
            x if d is None else Spec(_without_axis(leaf_aval(x), d))
            for x, d in zip(leaves, dims, strict=True)
        ]
        ex_args, ex_kwargs = in_tree.rebuild(example)
        g = trace_flat(self.fn, ex_args, ex_kwargs, name=fn_name(self.fn))
        tree, mask = g.out_tree
        out_every = _prefix_axes(self.out_axes, tree, "out_axes", "out_axes", "result")
        out_dims = []
        for a, m, label in zip(out_every, mask, _leaf_labels(tree, "the result"), strict=True):
            if m is not True:
                continue
            o = g.outputs[len(out_dims)]
            rank = o.aval.ndim + 1  # type: ignore[union-attr]
            if a is not None and not -rank <= a < rank:
                raise BatchingError(
                    f"vmap: out_axes {a} is out of range for {label}, which has {rank} axes "
                    f"with the batch axis ({o.aval} per example)",
                    user_location(),
                )
            out_dims.append(None if a is None else a % rank)
        try:
            bg = batch(g, dims, size, out_dims)
        except BatchingError as e:
            k = getattr(e, "output", None)
            if k is None:
                raise type(e)(e.message, e.location or user_location()) from None
            labels = [
                lb
                for lb, m in zip(_leaf_labels(tree, "the result"), mask, strict=True)
                if m is True
            ]
            raise BatchingError(
                f"vmap: {labels[k]} differs between examples, but out_axes is None for it; "
                "give it an axis",
                user_location(),
            ) from None
        bg.in_tree = g.in_tree
        bg.name = self.__name__
        return bg

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph, outs = self._staged.run(args, kwargs)
        return unflatten_outputs(graph, outs)

    def trace(self, *args: Any, **kwargs: Any) -> Graph:
        """The batched graph for these arguments (traced once, not compiled)."""
        return self._staged.graph(args, kwargs)

    def lower(self, *args: Any, **kwargs: Any) -> Lowered:
        """Every stage of the batched function for these arguments (see `Jitted.lower`); its
        `notes` list the ops that run as a loop over the batch."""
        return self._staged.lower(args, kwargs)


def _check_axes_spec(spec: Any, what: str) -> None:
    """in_axes and out_axes hold ints and None in containers: anything else is refused when
    vmap is called, not when the mapped function is."""
    stack = [spec]
    while stack:
        sp = stack.pop()
        if sp is None or _is_axis(sp):
            continue
        node = pytree.node_children(sp)
        if node is None:
            raise BatchingError(
                f"vmap: {what} must be an int, None or a container of them, got {sp!r}",
                user_location(),
            )
        stack.extend(node[1])


def vmap(
    fn: Callable,
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_size: int | None = None,
    *,
    backend: str | None = None,
) -> Vmapped:
    """Map `fn` over an axis of its arguments: `vmap(f)(xs)` computes `stack([f(x) for x in
    xs])` as one batched computation (JAX's `vmap`). The transformation is a graph pass: each
    op's batching rule says how it computes many examples at once (a matrix product of the
    stacked rows, one convolution over the joined image batches, a loop whose carries hold
    the batch), so nothing loops over the examples in Python.

    `in_axes`: per positional argument (a tuple, or one entry for all), the axis to map over,
    None for arguments shared by all examples, or a container mirroring the argument's
    structure (a prefix of it); negative axes count from the end. Keyword arguments are mapped
    along axis 0. Python ints and other static arguments are never mapped. `out_axes`: where
    the batch axis goes in each result, likewise (None: the result must be the same for every
    example). `axis_size`: the batch size, needed when no argument is mapped.

    Composes with jit, grad, jvp, jacobian, hessian, the loops and branches, and itself.

    Example:
        >>> per_example = graphc.vmap(graphc.grad(loss), in_axes=(None, 0, 0))
        >>> grads = per_example(params, xs, ys)      # one gradient per example
        >>> graphc.vmap(np.dot, in_axes=(0, None))(np.eye(3), np.arange(3.0))
        array([0., 1., 2.])
    """
    _check_axes_spec(in_axes, "in_axes")
    _check_axes_spec(out_axes, "out_axes")
    if not (in_axes is None or _is_axis(in_axes) or isinstance(in_axes, (tuple, list))):
        raise BatchingError(
            "vmap: in_axes must be an int, None, or a tuple with one entry per positional "
            f"argument, got {type(in_axes).__name__}",
            user_location(),
        )
    if axis_size is not None and (not _is_axis(axis_size) or axis_size < 0):
        raise BatchingError(
            f"vmap: axis_size must be a non-negative int, got {axis_size!r}", user_location()
        )
    return Vmapped(fn, in_axes, out_axes, None if axis_size is None else int(axis_size), backend)


# ---------------------------------------------------------------------------------------------
# jacobian / hessian


def _basis(n: int, offset: int, aval: Any) -> Any:
    """Rows offset..offset+size of the n x n identity, each shaped like `aval`: the one-hot
    seeds of one input (or output) among all of them, built in the graph (an iota compared
    with an iota, not an n x n constant)."""
    rows = Tracer(to_node(np.arange(n, dtype=np.int64).reshape(n, 1)))
    cols = Tracer(to_node(np.arange(offset, offset + aval.size, dtype=np.int64)))
    return np.reshape((rows == cols).astype(aval.dtype), (n, *aval.shape))


def _jacobian_graph(g: Graph, wrt: list[int], forward: bool) -> Graph:
    """A graph from g's inputs to the Jacobian blocks of its outputs in its inputs `wrt`
    (`info["blocks"]` lists the (output, input) pair of each result): forward mode batches
    g's JVP over one-hot tangents, reverse mode its VJP over one-hot cotangents (the forward
    pass, the same for every seed, is computed once). Each block is out.shape + in.shape."""
    from passes.autodiff import jvp as jvp_pass
    from passes.autodiff import vjp as vjp_pass
    from passes.batching import batch

    outs = [o.aval for o in g.outputs]
    ins = [g.inputs[k].aval for k in wrt]
    seeds, reads = (ins, outs) if forward else (outs, ins)
    n = sum(a.size for a in seeds)
    offsets = np.cumsum([0] + [a.size for a in seeds]).tolist()
    pairs = [(i, j) for i in range(len(outs)) for j in range(len(ins))]
    if forward:
        t = jvp_pass(g, wrt)
        d = Graph(t.inputs, t.outputs[len(outs) :])
        # the batch last: tangent i is out_i.shape + (n,), a column per input element
        out_dims = [o.ndim for o in outs]
    else:
        joint = vjp_pass(g, wrt, seed="inputs")
        d = Graph(joint.inputs, joint.outputs[len(outs) :])
        out_dims = [0] * len(ins)  # gradient j is (n,) + in_j.shape, a row per output element

    def blocks(*xs: Any) -> list:
        if n == 0:
            return [
                np.zeros(outs[i].shape + ins[j].shape, np.result_type(outs[i].dtype, ins[j].dtype))
                for i, j in pairs
            ]
        b = batch(d, [None] * len(g.inputs) + [0] * len(seeds), n, out_dims)
        basis = [_basis(n, offsets[k], a) for k, a in enumerate(seeds)]
        res = inline(b, list(xs) + basis)
        out = []
        for i, j in pairs:
            o, a = outs[i], ins[j]
            if forward:
                v = res[i][..., offsets[j] : offsets[j] + a.size]
            else:
                v = res[j][offsets[i] : offsets[i] + o.size]
            v = np.reshape(v, o.shape + a.shape)
            dt = np.result_type(o.dtype, a.dtype)
            out.append(v if v.dtype == dt else v.astype(dt))
        return out

    avals = [Spec(x.aval) for x in g.inputs]  # type: ignore[arg-type]
    jg = trace_flat(blocks, tuple(avals), {}, name=f"jacobian({g.name})")
    jg.info["blocks"] = pairs
    return jg


def jacobian(
    fn: Callable, argnums: int | Sequence[int] = 0, mode: str = "auto", backend: str | None = None
) -> Callable[..., Any]:
    """The Jacobian of `fn` with respect to `args[argnums]`, structured as JAX structures it:
    the output's structure, holding at each output leaf the structure of the differentiated
    argument (a tuple of them for several argnums), whose leaves are blocks shaped
    `out_leaf.shape + in_leaf.shape`; None for leaves without a derivative (integers,
    functions). mode="reverse" computes all rows at once: the forward pass once, then the
    backward pass batched over one-hot cotangents, one per output element (vmap);
    "forward" all columns at once, the JVP batched over one-hot tangents, one per input
    element; "auto" picks the smaller batch. Python ints at `argnums` are differentiated as
    floats.

    Example:
        >>> graphc.jacobian(lambda x: x ** 2)(np.array([1.0, 2.0]))
        array([[2., 0.],
               [0., 4.]])
        >>> J = graphc.jacobian(lambda p: {"y": p["a"] * p["b"]})({"a": 2.0, "b": 3.0})
        >>> J["y"]["a"], J["y"]["b"]
        (array(3.), array(2.))
    """
    if mode not in ("auto", "forward", "reverse"):
        raise GraphcError(f"jacobian mode must be 'auto', 'forward' or 'reverse', got {mode!r}")

    def jac(*args: Any) -> Any:
        nums = _argnums(argnums, len(args))
        args = _as_real(args, nums)
        sel = args[nums[0]] if isinstance(argnums, int) else tuple(args[i] for i in nums)

        def f_of_sel(s):
            full = list(args)
            for i, v in zip(nums, (s,) if isinstance(argnums, int) else s, strict=True):
                full[i] = v
            return fn(*full)

        g = trace_flat(f_of_sel, (sel,), {}, name=fn_name(fn))
        in_tree = g.in_tree
        tree, mask = g.out_tree
        for m, path in zip(mask, _leaf_labels(tree, "its output"), strict=True):
            if m is not True:
                raise GraphcError(
                    f"jacobian needs floating-point array outputs; {path} is "
                    f"{describe(m.value)}, not computed from the arguments",
                    user_location(),
                )
        outs = [o.aval for o in g.outputs]
        for o, path in zip(outs, _leaf_labels(tree, "its output"), strict=True):
            if not is_float(o.dtype):
                raise GraphcError(
                    f"jacobian needs floating-point outputs; {path} is {o}", user_location()
                )
        leaves = split_args(((sel,), {}))[0]
        wrt = [k for k, x in enumerate(g.inputs) if is_float(x.dtype)]
        if not wrt:
            raise GraphcError(
                f"jacobian: argument {', '.join(map(str, nums))} has no floating-point array "
                "to differentiate (ints inside containers and bools are static)",
                user_location(),
            )
        ins = [g.inputs[k].aval for k in wrt]
        n_out, n_in = sum(o.size for o in outs), sum(a.size for a in ins)
        use_fwd = mode == "forward" or (mode == "auto" and n_in < n_out)
        jg = _jacobian_graph(g, wrt, use_fwd)
        blocks = dict(zip(jg.info["blocks"], _run(jg, leaves, backend), strict=True))
        col_of = {k: j for j, k in enumerate(wrt)}
        per_out = []
        for i in range(len(outs)):
            k = iter(range(len(leaves)))
            filled = [
                blocks.get((i, col_of.get(next(k), -1))) if t else None for t in in_tree.traced
            ]
            per_out.append(pytree.unflatten(in_tree.treedef, filled)[0][0])
        return pytree.unflatten(tree, per_out)

    jac.__name__ = f"jacobian({fn_name(fn)})"
    return jac


def hessian(
    fn: Callable,
    argnums: int | Sequence[int] = 0,
    mode: str = "forward-over-reverse",
    backend: str | None = None,
) -> Callable[..., Any]:
    """The Hessian of scalar-valued `fn` with respect to `args[argnums]`, shaped
    `arg.shape + arg.shape`; for a structured argument, that structure nested in itself (as
    JAX returns it: `H["a"]["b"]` is the block of second derivatives in a and b). The
    default, forward-over-reverse, pushes one tangent per input element through the gradient
    graph; "reverse-over-reverse" pulls one cotangent per element back through it.

    Example:
        >>> graphc.hessian(lambda x: np.sum(x ** 3))(np.array([1.0, 2.0]))
        array([[ 6.,  0.],
               [ 0., 12.]])
    """
    inner = "forward" if mode == "forward-over-reverse" else "reverse"
    if mode not in ("forward-over-reverse", "reverse-over-reverse"):
        raise GraphcError(
            f"hessian mode must be 'forward-over-reverse' or 'reverse-over-reverse', got {mode!r}"
        )
    return jacobian(grad(fn, argnums, backend=backend), argnums, mode=inner, backend=backend)


# ---------------------------------------------------------------------------------------------
# destructure


def destructure(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """All floating-point array leaves of `tree` in one flat vector, and the function that
    rebuilds a tree of the same structure from such a vector. Both directions are
    differentiable, so losses can be written as functions of a flat parameter vector.

    Example:
        >>> flat, rebuild = graphc.destructure({"W": np.ones((2, 2)), "b": np.zeros(2)})
        >>> flat.shape
        (6,)
        >>> rebuild(flat * 2)["W"]
        array([[2., 2.],
               [2., 2.]])
    """
    leaves, td = pytree.flatten(tree)
    is_param = [_is_float_array(x) for x in leaves]
    params = [x for x, p in zip(leaves, is_param, strict=True) if p]
    shapes = [tuple(np.shape(x)) for x in params]
    dtypes = [_dtype_of(x) for x in params]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    if params:
        flat = gnp.concatenate([gnp.reshape(x, (-1,)) for x in params])
    else:
        flat = np.zeros(0)

    def rebuild(vec: Any) -> Any:
        if int(np.prod(np.shape(vec))) != sum(sizes):
            raise GraphcError(
                f"rebuild: expected a vector of {sum(sizes)} numbers, got shape {np.shape(vec)}"
            )
        out, off, it = [], 0, iter(range(len(params)))
        for leaf, p in zip(leaves, is_param, strict=True):
            if not p:
                out.append(leaf)
                continue
            j = next(it)
            piece = gnp.reshape(vec[off : off + sizes[j]], shapes[j])
            out.append(gnp.astype(piece, dtypes[j]))
            off += sizes[j]
        return pytree.unflatten(td, out)

    return flat, rebuild


def _is_float_array(x: Any) -> bool:
    if isinstance(x, Tracer):
        return x.dtype.kind == "f"
    if isinstance(x, float):
        return True
    return isinstance(x, (np.ndarray, np.generic)) and np.asarray(x).dtype.kind == "f"


def _dtype_of(x: Any) -> np.dtype:
    return x.dtype if isinstance(x, Tracer) else np.asarray(x).dtype


# ---------------------------------------------------------------------------------------------
# check_grads


def _to_f64(x: Any) -> Any:
    if isinstance(x, float) or (
        isinstance(x, (np.ndarray, np.generic)) and np.asarray(x).dtype.kind == "f"
    ):
        return np.asarray(x, dtype=np.float64)
    return x


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def check_grads(
    fn: Callable,
    args: Sequence[Any],
    order: int = 1,
    modes: Sequence[str] = ("rev", "fwd"),
    *,
    eps: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    seed: int = 0,
    backend: str | None = None,
) -> None:
    """Compare graphc's derivatives of `fn` at `args` with central finite differences in
    float64, along random directions (first order, or also second order with `order=2`):
    `|autodiff - numeric| <= atol + rtol * max(|autodiff|, |numeric|)`. Raises
    GradCheckError with a report when they disagree.

    Example:
        >>> graphc.check_grads(np.tanh, (np.array([0.3, -1.2]),), order=2)
    """
    args = tuple(pytree.tree_map(_to_f64, _as_real(tuple(args), range(len(args)))))
    rng = np.random.default_rng(seed)
    leaves, td = pytree.flatten(args)
    is_p = [_is_float_array(x) for x in leaves]
    if not any(is_p):
        raise GraphcError(
            "check_grads: no floating-point argument to differentiate (bools and ints inside "
            "containers are static)",
            user_location(),
        )
    direction = [
        rng.standard_normal(np.shape(x)) if p else None for x, p in zip(leaves, is_p, strict=True)
    ]

    def along(t: Any) -> tuple:
        moved = [x + t * d if p else x for x, d, p in zip(leaves, direction, is_p, strict=True)]
        return pytree.unflatten(td, moved)

    out0 = fn(*args)
    out_leaves = pytree.flatten(out0)[0]
    cot = [rng.standard_normal(np.shape(o)) if _is_float_array(o) else None for o in out_leaves]

    def scalarized(*a: Any) -> Any:
        outs = pytree.flatten(fn(*a))[0]
        total = 0.0
        for o, u in zip(outs, cot, strict=True):
            if u is not None:
                total = total + gnp.sum(o * u)
        return total

    def numeric() -> float:
        hi = float(np.asarray(scalarized(*along(eps))))
        lo = float(np.asarray(scalarized(*along(-eps))))
        return (hi - lo) / (2 * eps)

    def dot_tangent(grads: Any) -> Any:
        # grads mirror args with None where there is no gradient, and None leaves vanish when
        # flattened: what is left lines up with the float leaves' directions
        g_leaves = pytree.flatten(grads)[0]
        total = 0.0
        for gl, d in zip(g_leaves, [d for d in direction if d is not None], strict=True):
            total = total + gnp.sum(gl * d)
        return total

    def rev_directional(*a: Any) -> Any:
        grads = grad(scalarized, argnums=tuple(range(len(a))), backend=backend)(*a)
        return dot_tangent(grads)

    def fwd_directional(*a: Any) -> Any:
        t_tree = _tangent_tree(a, direction, is_p)
        _, t_out = jvp(scalarized, a, t_tree, backend=backend)
        return t_out

    num = numeric()
    fns = {"rev": rev_directional, "fwd": fwd_directional}
    for mode in modes:
        got = float(np.asarray(fns[mode](*args)))
        if not _close(got, num, rtol, atol):
            raise GradCheckError(
                f"check_grads: {'reverse' if mode == 'rev' else 'forward'}-mode directional "
                f"derivative of {fn_name(fn)} is {got!r} but central differences give {num!r} "
                f"(relative error {abs(got - num) / max(abs(num), 1e-300):.3g})"
            )
    if order >= 2:
        for mode in modes:
            check_grads(
                fns[mode],
                args,
                order=order - 1,
                modes=modes,
                eps=eps * 10,
                rtol=rtol,
                atol=atol,
                seed=seed + 1,
                backend=backend,
            )


def _tangent_tree(args: tuple, direction: list, is_p: list[bool]) -> tuple:
    """Tangents structured like args (zeros for non-float leaves that are traced)."""
    leaves, td = pytree.flatten(args)
    out = []
    for x, d, p in zip(leaves, direction, is_p, strict=True):
        if p:
            out.append(d)
        elif isinstance(x, (np.ndarray, np.generic)):
            out.append(np.zeros(np.shape(x), np.asarray(x).dtype))
        else:
            out.append(x)
    return tuple(pytree.unflatten(td, out))
