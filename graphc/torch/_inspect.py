"""Looking at what graphc.torch recorded and compiled: `graph(t)` (the recorded IR as a graphc
Graph, for graphc's printers, stages and pictures), `viz(loss)` (the forward and backward
picture, the role torchviz's `make_dot` plays), `lowered()` (the last realization's graph,
optimized graph and generated source) and `cache_info()`.

Example:
    >>> loss = loss_fn(model(x), y)
    >>> print(torch.graph(loss))                   # the IR text
    >>> torch.viz(loss, "loss.svg")                # forward + backward, kernels as clusters
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from graphc.api import Lowered
from graphc.ir import Graph, GraphcError
from graphc.torch._engine import engine, inputs_under
from graphc.torch._ops import node_of
from graphc.torch._tensor import Tensor
from graphc.trace import user_location

__all__ = ["CacheInfo", "cache_info", "graph", "lowered", "viz"]


def graph(*tensors: Tensor, backward: bool = False) -> Graph:
    """The recorded computation of `tensors` (through values already realized, back to the
    leaves) as a graphc Graph: print it, draw it with `graphc.viz`, run graphc's passes and
    stages on it. Parameters are named by their paths. With `backward`, the joint graph of
    graphc's reverse-mode pass: the first tensor's value and its gradients with respect to the
    leaves that require grad (`info["wrt"]` names their input positions).

    Example:
        >>> print(torch.graph(loss))
    """
    if not tensors:
        raise GraphcError("graph() needs at least one tensor", user_location())
    roots = [t._s.node if t._s.node is not None else node_of(t, False) for t in tensors]
    g = Graph(inputs_under(roots), roots, name="graphc.torch")
    if not backward:
        return g
    from passes.autodiff import vjp

    leaves = {id(n) for n, _ in engine.history_leaves(roots[0])}
    wrt = [k for k, n in enumerate(g.inputs) if id(n) in leaves]
    if not wrt:
        raise GraphcError(
            "graph(backward=True): the tensor does not depend on any leaf that requires grad",
            user_location(),
        )
    head = Graph(g.inputs, roots[:1], name="graphc.torch")
    seed = "ones" if roots[0].aval.shape == () else "inputs"
    joint = vjp(head, wrt, seed=seed)
    joint.info["wrt"] = tuple(wrt)
    return joint


def viz(
    t: Tensor, path: str | os.PathLike | None = None, *, backward: bool = True, **options: Any
) -> Any:
    """Draw the recorded forward graph of `t` and (when it requires grad) the backward graph
    graphc derives for it, as graphc's joint picture: parameters named by their paths, each
    gradient linked to the value it differentiates, the ops each kernel fuses as clusters.
    Writes `path` (.svg, .png, .pdf or .dot) when given; returns a `graphviz.Source`, which
    notebooks display. `options` go to `graphc.viz.to_dot` (budget, kernels, legend, ...).

    Example:
        >>> torch.viz(loss, "loss.svg")
    """
    import graphviz

    from graphc import viz as gviz

    g = graph(t, backward=backward and t.requires_grad)
    options.setdefault("params", g.info.get("wrt"))
    dot = gviz.to_dot(g, **options)
    if path is not None:
        p = os.fspath(path)
        ext = os.path.splitext(p)[1].lower()
        if ext == ".dot":
            with open(p, "w") as f:
                f.write(dot)
        else:
            fmt = gviz.FORMATS.get(ext)
            if fmt is None:
                raise GraphcError(
                    f"cannot tell the picture format from {p!r}: use .svg, .png, .pdf or .dot",
                    user_location(),
                )
            with open(p, "wb") as f:
                f.write(gviz.pipe(dot, fmt))
    return graphviz.Source(dot)


def lowered() -> Lowered:
    """The most recent realization: `.traced` (the graph built from the recording), `.optimized`
    (after graphc's passes and fusion) and `.source` (the generated kernels and driver).

    Example:
        >>> loss.item(); print(torch.lowered().source)
    """
    plan = engine.last
    if plan is None:
        raise GraphcError("nothing has been realized yet", user_location())
    exe = plan.exe
    from graphc.codegen import Executable

    if isinstance(exe, Executable):
        return Lowered(plan.graph, exe.graph, exe.source, exe.fallbacks, exe.path)
    from graphc.api import lower

    return lower(plan.graph)


class CacheInfo(NamedTuple):
    """Counters since the process started: realizations, those that found a compiled
    executable for their structure (hits) and those that built one (misses), distinct graphs
    compiled and the seconds spent compiling, and the templates and plans held."""

    realizations: int
    hits: int
    misses: int
    compiles: int
    compile_seconds: float
    templates: int
    plans: int


def cache_info() -> CacheInfo:
    """The engine's counters (see `CacheInfo`).

    Example:
        >>> torch.cache_info().compiles
        1
    """
    s = engine.stats
    return CacheInfo(
        s.realizations,
        s.hits,
        s.misses,
        s.compiles,
        s.compile_seconds,
        len(engine.templates),
        len(engine.plans),
    )
