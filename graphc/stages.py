"""The stages of a program, built in one place: traced, grad, joint, partitioned, optimized, fused.

The `graphc` command and the pictures (`graphc.viz`) ask this module for a stage; neither runs
autodiff, partitioning or a pass pipeline itself, so a stage printed by `graphc dump` is the
graph `graphc viz` draws.

===========  ===================================================================================
traced       the graph as traced (`traced`)
grad         the joint gradient graph w.r.t. every floating-point input (`grad`): a function
             with one float scalar output gets its gradient, anything else a VJP with cotangent
             inputs
joint        the joint graph with cotangent inputs (`joint`), what the min-cut partition splits
forward      the forward half of `partitioned(joint(graph))`: outputs, then saved residuals
backward     its backward half: residuals and output cotangents in, gradients out
optimized    after passes.DEFAULT_PIPELINE (`optimized`)
fused        after passes.COMPILE_PIPELINE (`fused`)
===========  ===================================================================================

`kernels(graph)` says which of a graph's own nodes fusion puts into each kernel (read from the
`fuse` pass's `info["kernels"]`), which pictures draw as kernel clusters; `Stages` builds the
stages of one traced graph on demand, each once. `regions(node)` names the graphs a node holds
(a loop's body and condition, a branch, a kernel's body); `pass_steps` runs passes one at a
time, keeping each pass's graph, and `region_changes` says what changed inside those graphs
between two of them (what `graphc diff` prints under each pass).

Example:
    >>> g = traced(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"])
    >>> part = partitioned(joint(g))
    >>> str(build(g, "forward")) == str(part.forward)
    True
    >>> [[n.op for n in k] for k in kernels(g)][-1][-1]   # the loss's sum ends a kernel
    'reduce_sum'
"""

from __future__ import annotations

import inspect
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from graphc.api import Jitted, Lowered, lower
from graphc.ir import Graph, GraphcError, Node, is_float, node_signatures
from graphc.trace import trace
from passes import COMPILE_PIPELINE, DEFAULT_PIPELINE, PassRecord, check_order, run_pipeline
from passes.autodiff import vjp
from passes.fuse import fuse
from passes.partition import Partition, partition

__all__ = [
    "STAGES",
    "Stages",
    "after_passes",
    "build",
    "example_args",
    "fused",
    "grad",
    "joint",
    "kernel_source",
    "kernels",
    "optimized",
    "partitioned",
    "pass_steps",
    "region_changes",
    "regions",
    "traced",
]

STAGES = ("traced", "grad", "joint", "forward", "backward", "optimized", "fused")


def example_args(fn: Callable) -> tuple:
    """The example arguments of `fn` when none are given: none for a function that needs none,
    else `EXAMPLE_ARGS[fn.__name__]` of its module.

    Example:
        >>> len(example_args(seeds.mlp)) == len(seeds.EXAMPLE_ARGS["mlp"])
        True
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return ()
    required = [
        p
        for p in sig.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not required:
        return ()
    mod = sys.modules.get(getattr(fn, "__module__", "") or "")
    examples = getattr(mod, "EXAMPLE_ARGS", None) or {}
    name = getattr(fn, "__name__", "")
    if name in examples:
        return tuple(examples[name])
    raise GraphcError(
        f"give example arguments for {name or 'the function'} (or define "
        "EXAMPLE_ARGS in its module)"
    )


def traced(obj: Any, *args: Any, **kwargs: Any) -> Graph:
    """The traced graph of `obj`: a function (traced on `args` and `kwargs`, or on its
    module's EXAMPLE_ARGS), a jit-compiled function, a `Lowered` (its traced graph) or a Graph
    (itself).

    Example:
        >>> [n.op for n in traced(seeds.poly, 2.0).equations][0]
        'integer_pow'
    """
    if isinstance(obj, Graph):
        if args or kwargs:
            raise GraphcError("example arguments are for functions; this is already a graph")
        return obj
    if isinstance(obj, Lowered):
        return obj.traced
    if isinstance(obj, Jitted):
        obj = obj.fn
    if not callable(obj):
        raise GraphcError(f"cannot draw a {type(obj).__name__}: give a function or a Graph")
    if not args and not kwargs:
        args = example_args(obj)
    return trace(obj, *args, **kwargs)


def grad(graph: Graph, seed: str | None = None) -> Graph:
    """The joint gradient graph of `graph` with respect to all its floating-point inputs.

    A function with one floating-point scalar output gets seed="ones" (the gradient of a
    loss); anything else (or seed="inputs") gets one cotangent input per float output.

    Example:
        >>> g = grad(traced(seeds.sqdiff, *seeds.EXAMPLE_ARGS["sqdiff"]))
        >>> len(g.outputs)   # the value and two gradients
        3
    """
    wrt = [k for k, x in enumerate(graph.inputs) if is_float(x.dtype)]
    if not wrt:
        raise GraphcError(
            f"{graph.name or 'the function'} has no floating-point inputs to differentiate"
        )
    outs = [k for k, o in enumerate(graph.outputs) if is_float(o.dtype)]
    if not outs:
        raise GraphcError(
            f"{graph.name or 'the function'} has no floating-point outputs to differentiate"
        )
    if seed is None:
        scalar = len(graph.outputs) == 1 and graph.outputs[0].aval.shape == ()
        seed = "ones" if scalar and outs == [0] else "inputs"
    out = vjp(graph, wrt, seed=seed, outputs=outs)
    out.info.setdefault("wrt", tuple(wrt))
    return out


def joint(graph: Graph) -> Graph:
    """The joint forward + backward graph of `graph` with one cotangent input per float output:
    the graph the joint picture draws and the min-cut partition splits.

    Example:
        >>> j = joint(traced(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"]))
        >>> j.info["n_primal_inputs"] < len(j.inputs)   # the cotangent of the loss
        True
    """
    return grad(graph, seed="inputs")


def partitioned(joint_graph: Graph) -> Partition:
    """The min-cut partition of a joint graph (from `joint`) into forward and backward graphs.

    Example:
        >>> part = partitioned(joint(traced(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"])))
        >>> part.forward.name, part.backward.name
        ('forward', 'backward')
    """
    return partition(joint_graph)


def optimized(graph: Graph) -> Graph:
    """`graph` after passes.DEFAULT_PIPELINE (fold, simplify, cse, dce).

    Example:
        >>> optimized(traced(seeds.poly, 2.0)).info["pipeline"][0].name
        'fold'
    """
    return run_pipeline(graph, DEFAULT_PIPELINE)


def fused(graph: Graph) -> Graph:
    """`graph` after passes.COMPILE_PIPELINE: optimized, then fused into kernels.

    Example:
        >>> any(n.op == "fused" for n in fused(traced(seeds.mlp, *seeds.EXAMPLE_ARGS["mlp"])).nodes)
        True
    """
    return run_pipeline(graph, COMPILE_PIPELINE)


def after_passes(graph: Graph, names: Sequence[str], *, diffs: bool = False) -> Graph:
    """`graph` after the passes `names`, in order; `info["pipeline"]` records each pass (with
    what it removed, added and rewrote when `diffs`).

    Example:
        >>> [r.name for r in after_passes(traced(seeds.poly, 2.0), ["fold"]).info["pipeline"]]
        ['fold']
    """
    return run_pipeline(graph, names, diffs=diffs)


def kernels(graph: Graph) -> list[list[Node]]:
    """The ops of `graph` that the `fuse` pass puts into one kernel, as lists of the graph's
    own nodes (one list per kernel, in the order of the fused graph). The graph itself is not
    changed, so the lists can annotate it (the joint picture draws them as kernel clusters).
    A graph that is already fused has none.

    Example:
        >>> g = graphc.trace(lambda x: np.sum(np.tanh(x) * 2), graphc.spec("f32[8]"))
        >>> [[n.op for n in k] for k in kernels(g)]
        [['tanh', 'mul', 'reduce_sum']]
    """
    if any(n.op == "fused" for n in graph.nodes):
        return []
    return [list(members) for members in fuse(graph).info["kernels"]]


def kernel_source(graph: Graph) -> str:
    """The generated Numba source of `graph` (see `graphc.lower`), with the ops that run as
    NumPy fallbacks listed at the end.

    Example:
        >>> "def " in kernel_source(traced(seeds.poly, 2.0))
        True
    """
    low = lower(graph)
    src = low.source
    if low.fallbacks:
        src += "\n# NumPy fallbacks: " + ", ".join(low.fallbacks) + "\n"
    return src


def build(obj: Any, stage: str | None, *args: Any) -> Graph | Partition:
    """The graph (or Partition) at `stage` (one of STAGES; None is traced) of `obj`: a function
    (traced on `args`, or on its module's EXAMPLE_ARGS), a jit-compiled function, a `Lowered`,
    a Graph or a Partition (which is its own traced and joint stage).

    Example:
        >>> build(seeds.poly, "grad", 2.0).info["wrt"]
        (0,)
    """
    if isinstance(obj, Partition):
        if stage not in (None, "traced", "joint"):
            raise GraphcError(f"a Partition is drawn as it is; stage {stage!r} does not apply")
        return obj
    if stage is not None and stage not in STAGES:
        raise GraphcError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
    return Stages(traced(obj, *args)).get(stage or "traced")


class Stages:
    """The stages of one traced graph, each built on first use and kept: `forward` and
    `backward` are the halves of one partition of one joint graph.

    Example:
        >>> st = Stages(traced(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"]))
        >>> st.get("backward").info["forward"] is st.get("forward")
        True
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._built: dict[str, Any] = {"traced": graph}

    def get(self, stage: str) -> Any:
        """The graph at `stage` (one of STAGES), or the generated source for "kernels"."""
        if stage not in self._built:
            self._built[stage] = self._make(stage)
        return self._built[stage]

    def partition(self) -> Partition:
        """The partition of the joint stage."""
        if "partition" not in self._built:
            self._built["partition"] = partitioned(self.get("joint"))
        return self._built["partition"]

    def _make(self, stage: str) -> Any:
        g = self.graph
        if stage == "grad":
            return grad(g)
        if stage == "joint":
            return joint(g)
        if stage == "forward":
            return self.partition().forward
        if stage == "backward":
            return self.partition().backward
        if stage == "optimized":
            return optimized(g)
        if stage == "fused":
            return fused(g)
        if stage == "kernels":
            return kernel_source(g)
        raise GraphcError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)}, kernels)")


def regions(node: Node) -> list[tuple[str, Graph]]:
    """The graphs `node` holds, each named by its attribute (`body`, `cond`) and, in a tuple
    of graphs, its position (`branches[1]`).

    Example:
        >>> g = graphc.trace(lambda p, x: graphc.cond(p, np.sin, np.cos, x),
        ...                  graphc.spec("bool[]"), graphc.spec("f32[3]"))
        >>> [name for name, _ in regions(g.equations[0])]
        ['branches[0]', 'branches[1]']
    """
    out: list[tuple[str, Graph]] = []
    for name, v in (node.attrs or {}).items():
        if isinstance(v, Graph):
            out.append((name, v))
        elif isinstance(v, tuple) and v and all(isinstance(g, Graph) for g in v):
            out.extend((f"{name}[{k}]", g) for k, g in enumerate(v))
    return out


def pass_steps(graph: Graph, names: Sequence[str]) -> list[tuple[PassRecord, Graph]]:
    """Run the passes `names` on `graph` in order, as `after_passes(graph, names, diffs=True)`
    does, keeping each pass's record and the graph it made (the order is checked first).

    Example:
        >>> steps = pass_steps(traced(seeds.poly, 2.0), ["fold", "dce"])
        >>> [(r.name, len(g.equations)) for r, g in steps]
        [('fold', 5), ('dce', 5)]
    """
    check_order(graph, names)
    steps: list[tuple[PassRecord, Graph]] = []
    for name in names:
        graph = run_pipeline(graph, [name], diffs=True)
        steps.append((graph.info["pipeline"][0], graph))
    return steps


def _region_contents(graph: Graph) -> dict[str, Counter]:
    """Every graph held by a node of `graph`, at any depth, by its path ("scan body
    (m.py:3) › cond branches[1] (m.py:5)"): its equations, counted by op and structure."""
    out: dict[str, Counter] = {}
    work = [("", graph)]  # a worklist over the nesting
    while work:
        prefix, g = work.pop()
        for n in g.nodes:
            held = regions(n)
            where = f" ({n.meta.loc})" if n.meta.loc else ""
            for name, body in held:
                path = f"{prefix}{n.op} {name}{where}"
                sig = node_signatures(body)
                out.setdefault(path, Counter()).update((m.op, sig[id(m)]) for m in body.equations)
                work.append((path + " › ", body))
    return out


def region_changes(before: Graph, after: Graph) -> list[tuple[str, Counter, Counter, Counter]]:
    """What changed inside the graphs that nodes hold (loop bodies, branches, kernels) from
    `before` to `after`: (path, removed, added, rewritten), ops counted as `passes.diff` counts
    them, for each path present in both (a new or removed loop shows in the graph's own diff).

    Example:
        >>> def f(xs):
        ...     return graphc.scan(lambda c, x: (c + x * 1.0, c), 0.0, xs)[0]
        >>> g = traced(f, graphc.spec("f32[4]"))
        >>> [(path.split(" (")[0], removed) for path, removed, _, _ in
        ...  region_changes(g, after_passes(g, ["simplify"]))]
        [('scan body', Counter({'mul': 1}))]
    """
    was, now = _region_contents(before), _region_contents(after)
    out = []
    for path, old in was.items():
        new = now.get(path)
        if new is None:
            continue
        gone, made = Counter(), Counter()
        for (op, _), k in (old - new).items():
            gone[op] += k
        for (op, _), k in (new - old).items():
            made[op] += k
        rewritten = Counter({op: min(gone[op], made[op]) for op in gone if made.get(op)})
        if gone or made:
            out.append((path, gone - rewritten, made - rewritten, rewritten))
    return out
