"""Graphviz pictures of graphs: every stage, the joint forward/backward picture, huge graphs.

`to_dot(graph)` returns DOT text; `render(graph_or_function, "out.svg", *args, stage=...)`
writes a picture (.svg, .png, .pdf through Graphviz's `dot` program; .dot needs nothing).
`Graph.to_dot()` is `to_dot` as a method.

Conventions (the same in every picture):

==================  ==========================================================================
graph input         `invhouse`, light blue; label "name: path" and its type
parameter           `invhouse`, amber, bold: an input the gradient is taken with respect to
cotangent seed      `invhouse`, pink: the output cotangent a backward graph starts from
constant            array: `cylinder`, light grey; scalar literal: small grey `plaintext`,
                    drawn once per use
op                  `box`, rounded; label: the op and its key attributes (source location and
                    scope in the tooltip)
gradient op         like an op, pink with a red border (`meta.role == "grad"`, or computed from
                    a cotangent); forward-mode tangent ops are lavender
output              `house`, green; "out k", or "grad NAME" for a gradient
data edge           labeled with the value's type, e.g. `f32[64,784]`
saved residual      blue double border with "saved 32.0 KiB"; its edges into the backward
                    graph are bold blue and say "saved ..."
gradient link       dashed red edge, "∂", from a gradient to the value it differentiates
                    (`joint.info["grad_of"]`); it does not affect the layout
fused kernel        cluster `cluster_kernel_K` (cornsilk) with the body's ops inside; when
                    collapsed, one `box3d` with an op summary ("tanh ×512, mul ×1024 …")
module scope        dashed cluster `cluster_scope_K` per `meta.scope` prefix, nested as the
                    scopes nest ("model" > "model.layers" > "model.layers.0"); collapsed: `tab`
forward / backward  clusters `cluster_forward` / `cluster_backward` when drawing a Partition
loop                green cluster `cluster_scan_K` / `cluster_while_loop_K`, labelled with its
                    kind and trip count ("scan c · length 5 · reverse", "while b · max_trips
                    50"; "remat": a checkpointed scan); a while loop's condition and body are
                    sub-clusters `..._cond` and `..._body`; collapsed: `component` with an op
                    summary
carry               `invtrapezium`, green, "carry k": the initial value comes in; the new value
                    of each trip goes back to it by a dashed green edge (constraint=false);
                    a while loop's results leave from its carries
sequence / stacked  `parallelogram`: "a[t]", step t of a scan's sequence `a`; "stack j", a
                    scan's per-step outputs stacked on a new leading axis
invariant operand   a value a loop reads on every trip: its edges enter the cluster, bold brown
branch              cluster `cluster_cond_K` ("cond d · 2 branches", or "switch" for an
                    integer index) holding one cluster per branch ("branch 1 (true)",
                    "branch 2"); the index feeds a diamond, each branch's outputs a "result
                    k" trapezium
call                dashed slate cluster `cluster_checkpoint_K` (any op whose entry says it
                    calls a graph once, `inline`): the graph it computes drawn in place, its
                    other graphs (derivative rules) named in the label
==================  ==========================================================================

Loops and branches nest as the graphs nest; their ops are drawn like any others (roles, scopes
inside the loop's scope, kernels). An op with graphs that has no drawing of its own is a box
beside one cluster per graph, with its inputs and outputs as small `invhouse` / `house` items.

The joint picture: for a joint graph from `passes.autodiff.vjp` (or a `Partition`), forward and
backward nodes are styled apart, every gradient is linked to the value it differentiates, the
residuals that the min-cut partition saves are marked with their size, and the ops `fuse` would
group together are drawn as kernel clusters.

Large graphs stay readable: above `budget` drawn nodes (default 300) the picture collapses, in
this order, fused kernels into single boxes, then loops and branches (the innermost first), then
module scopes (the deepest level that fits), then runs of consecutive nodes into blocks; every
box lists what it holds, and edges between boxes are merged ("f32[8] ×12").

Example:
    >>> g = graphc.trace(lambda x, W: np.tanh(x @ W), graphc.spec("f32[4,3]"),
    ...                  graphc.spec("f32[3,2]"))
    >>> "f32[4,2]" in g.to_dot()
    True
    >>> render(seeds.mlp_loss, "joint.svg", *seeds.EXAMPLE_ARGS["mlp_loss"], stage="joint")
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import graphviz
import numpy as np

from graphc import stages
from graphc.ir import (
    Graph,
    GraphcError,
    Node,
    TupleAval,
    dtype_name,
    is_float,
    nested_graphs,
    toposort,
)
from graphc.ops import REGISTRY
from graphc.ops.control import scan_parts
from graphc.text import fmt_value, node_names
from passes.partition import Partition

__all__ = [
    "DEFAULT_BUDGET",
    "FORMATS",
    "STAGES",
    "STYLE",
    "GraphvizNotFoundError",
    "apply_stage",
    "grad_graph",
    "kernel_groups",
    "render",
    "to_dot",
]

DEFAULT_BUDGET = 300  # drawn nodes above which a picture collapses
KERNEL_GROUPING_LIMIT = 3_000  # joint pictures group ops into kernels up to this many nodes
STAGES = stages.STAGES
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_FWD_FILL = "#ffffff"
_GRAD_FILL = "#ffd6d6"
_TANGENT_FILL = "#e6dcff"
_RESIDUAL = "#1f5fbf"
_GRAD_LINE = "#c0392b"
_LOOP = "#2e7d57"  # loops and branches: their clusters, carries and carry edges
_INVARIANT = "#8a6d3b"
_CALL = "#4a5d8c"  # a region called once (a checkpoint, a function with its own derivatives)

STYLE: dict[str, dict[str, str]] = {
    "input": {"shape": "invhouse", "style": "filled", "fillcolor": "#cfe8ff"},
    "param": {"shape": "invhouse", "style": "filled,bold", "fillcolor": "#ffd98a"},
    "seed": {"shape": "invhouse", "style": "filled", "fillcolor": _GRAD_FILL, "color": _GRAD_LINE},
    "residual_in": {
        "shape": "invhouse",
        "style": "filled",
        "fillcolor": "#dbe7fb",
        "color": _RESIDUAL,
        "peripheries": "2",
    },
    "const": {"shape": "cylinder", "style": "filled", "fillcolor": "#e6e6e6", "fontsize": "9"},
    "literal": {
        "shape": "plaintext",
        "fontsize": "8",
        "fontcolor": "#666666",
        "height": "0.2",
        "width": "0.2",
        "margin": "0.02",
    },
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": _FWD_FILL},
    "output": {"shape": "house", "style": "filled", "fillcolor": "#b9efb9"},
    "kernel": {"shape": "box3d", "style": "filled", "fillcolor": "#fff5cc"},
    "scope": {"shape": "tab", "style": "filled", "fillcolor": "#e4ecf7"},
    "block": {"shape": "folder", "style": "filled", "fillcolor": "#efefef"},
    "control": {"shape": "component", "style": "filled", "fillcolor": "#e3f3e9", "color": _LOOP},
    "call": {"shape": "component", "style": "filled", "fillcolor": "#e6eaf4", "color": _CALL},
    "carry": {"shape": "invtrapezium", "style": "filled", "fillcolor": "#d4efdf", "color": _LOOP},
    "slice": {"shape": "parallelogram", "style": "filled", "fillcolor": "#dfeafb"},
    "stack": {"shape": "parallelogram", "style": "filled,bold", "fillcolor": "#dfeafb"},
    "test": {"shape": "diamond", "style": "filled", "fillcolor": "#f6efd9", "fontsize": "9"},
    "merge": {"shape": "trapezium", "style": "filled", "fillcolor": "#f6efd9"},
    "region_in": {"shape": "invhouse", "style": "filled", "fillcolor": "#eeeeee"},
    "region_out": {"shape": "house", "style": "filled", "fillcolor": "#eeeeee"},
    "note": {"shape": "plaintext", "fontsize": "8", "fontcolor": "#777777"},
}
_CLUSTER_STYLE: dict[str, dict[str, str]] = {
    "kernel": {"style": "rounded,filled", "fillcolor": "#fff8dc", "color": "#b8860b"},
    "scope": {"style": "dashed,rounded", "color": "#7a7a7a", "fontcolor": "#555555"},
    "part": {"style": "rounded", "color": "#444444", "penwidth": "1.5"},
    "control": {
        "style": "rounded,filled",
        "fillcolor": "#f3faf5",
        "color": _LOOP,
        "penwidth": "1.3",
    },
    "region": {"style": "dashed,rounded", "color": _LOOP, "fontcolor": _LOOP},
    "call": {"style": "rounded,dashed", "color": _CALL, "fontcolor": _CALL, "penwidth": "1.3"},
    "legend": {"style": "rounded", "color": "#bbbbbb", "fontcolor": "#777777"},
}


class GraphvizNotFoundError(GraphcError):
    """Graphviz's `dot` program, which renders pictures, is not installed."""


# ---------------------------------------------------------------------------------------------
# small helpers


def _fmt_bytes(n: int) -> str:
    """`512 B`, `32.0 KiB`, `1.5 MiB`."""
    if n < 1024:
        return f"{n} B"
    x = n / 1024
    for unit in ("KiB", "MiB"):
        if x < 1024:
            return f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} GiB"


def _esc(text: str) -> str:
    """User text for an escString label: backslashes literal (lines are joined with \\n)."""
    return text.replace("\\", "\\\\")


def _lines(*parts: str) -> str:
    return "\\n".join(_esc(p) for p in parts if p)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _short(text: str, n: int = 32) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _attrs_text(n: Node, limit: int = 3) -> list[str]:
    out = []
    for k, v in sorted(n.attrs.items()):
        if k == "value" or _holds_graphs(v):  # graphs are drawn, not written out
            continue
        try:
            out.append(_short(f"{k}={fmt_value(v)}"))
        except GraphcError:
            out.append(_short(f"{k}={v!r}"))
    if len(out) > limit:
        out = out[:limit] + ["…"]
    return out


def _holds_graphs(v: Any) -> bool:
    return isinstance(v, Graph) or (
        isinstance(v, tuple) and bool(v) and all(isinstance(g, Graph) for g in v)
    )


def _is_literal(n: Node) -> bool:
    return n.op == "const" and getattr(n.aval, "shape", None) == ()


def _summary(counts: Counter, limit: int = 4) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{op} ×{k}" for op, k in items[:limit])
    return text + (" …" if len(items) > limit else "")


def _common_prefix(seqs: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    it = iter(seqs)
    first = next(it, ())
    pre = list(first)
    for s in it:
        k = 0
        while k < len(pre) and k < len(s) and pre[k] == s[k]:
            k += 1
        del pre[k:]
        if not pre:
            break
    return tuple(pre)


def _scope_parts(n: Node) -> tuple[str, ...]:
    return tuple(n.meta.scope.split(".")) if n.meta.scope else ()


# ---------------------------------------------------------------------------------------------
# the picture model: items (drawn nodes) in clusters, and edges


@dataclass
class _Item:
    key: str
    kind: str  # input param seed residual_in const literal op output, or a region's carry
    # slice stack test merge region_in region_out note
    label: str
    cluster: str | None
    order: int
    op: str | None = None  # what the item counts as in summaries (None: nothing)
    role: str | None = None  # "grad", "tangent" or None
    tooltip: str = ""
    saved: int = 0  # bytes, when the value is a saved residual
    owner: str | None = None  # literals: the item that reads them
    recomputed: bool = False  # a forward value the backward pass computes again


@dataclass
class _Cluster:
    key: str
    kind: str  # scope kernel part control (a loop or branch) region (one graph of a control)
    label: str
    parent: str | None
    # scope depth (1 for "model", 2 for "model.layers", ...); for controls, how many controls
    # hold it (1 for an outermost loop)
    depth: int = 0
    name: str = ""  # the DOT subgraph name
    title: str = ""  # the label of the box it collapses into


@dataclass
class _Edge:
    src: str
    dst: str
    kind: str  # data residual grad_of, invariant (a loop-invariant operand into a region),
    # carry (from a carry's new value back to the carry) select (from a branch index)
    label: str = ""
    saved: int = 0
    res_key: str = ""


@dataclass
class _Model:
    items: dict[str, _Item] = field(default_factory=dict)
    clusters: dict[str, _Cluster] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)
    n_kernels: int = 0
    n_scopes: int = 0
    n_controls: int = 0
    n_nodes: int = 0  # IR nodes of the graphs drawn (fused bodies not counted, loop bodies are)

    def add(self, item: _Item) -> _Item:
        self.items[item.key] = item
        return item

    def cluster(
        self,
        key: str,
        kind: str,
        label: str,
        parent: str | None,
        depth: int = 0,
        title: str = "",
        name: str = "",
    ) -> str:
        if key not in self.clusters:
            if name:  # the caller's (loops and branches: by op, e.g. cluster_scan_0)
                pass
            elif kind == "kernel":
                name = f"cluster_kernel_{self.n_kernels}"
                self.n_kernels += 1
            elif kind == "scope":
                name = f"cluster_scope_{self.n_scopes}"
                self.n_scopes += 1
            else:
                name = f"cluster_{key}"
            self.clusters[key] = _Cluster(key, kind, label, parent, depth, name, title or label)
        return key


@dataclass
class _GraphOptions:
    """How one graph enters the model."""

    tag: str = ""
    part: str | None = None  # the enclosing part cluster, if any
    params: frozenset[int] = frozenset()  # input positions drawn as parameters
    seeds: frozenset[int] = frozenset()  # input positions drawn as cotangent seeds
    residual_inputs: frozenset[int] = frozenset()  # input positions that are saved residuals
    input_names: Sequence[str] | None = None
    output_labels: dict[int, str] = field(default_factory=dict)
    hidden_outputs: frozenset[int] = frozenset()  # outputs not drawn as sinks
    backward: frozenset[int] = frozenset()  # ids of backward nodes (besides meta.role)
    saved: dict[int, int] = field(default_factory=dict)  # id(residual node) -> bytes
    kernel_of: dict[int, int] = field(default_factory=dict)  # id(node) -> virtual kernel
    all_backward: bool = False  # the whole graph is a backward graph


@dataclass
class _Frame:
    """One graph being drawn: the graph given, or one graph of a node (a region). The builder
    keeps a stack of frames, so nested regions need no recursion."""

    names: dict[int, str]
    nodes: Iterator[Node]
    prefix: str  # item keys of its nodes start with this
    cluster: str | None  # where its nodes go (inside scope clusters, unless `fixed`)
    fixed: bool = False  # every node goes into `cluster` itself (a kernel's body)
    scope: tuple[str, ...] = ()  # scope levels already drawn around the frame
    depth: int = 0  # how many loops or branches hold it
    backward: bool = False  # everything in it runs in the backward pass
    virtual: dict[int, str] = field(default_factory=dict)  # id(node) -> virtual kernel cluster
    where: str = ""  # for tooltips: "in scan c"
    start: Callable[[], None] | None = None  # runs before its first node
    done: Callable[[], None] | None = None  # runs after its last node


@dataclass
class _Open:
    """A node whose regions are being drawn: what its finish needs."""

    node: Node
    layout: _Layout
    cluster: str
    prefix: str
    role: str | None
    carries: list[str] = field(default_factory=list)  # item key of each carry
    clusters: list[str] = field(default_factory=list)  # the cluster of each region
    outs: list[list[str | Node]] = field(default_factory=list)  # per region: its outputs' refs
    index: str | None = None  # the item reading a branch index
    marks: dict[int, int] = field(default_factory=dict)  # region -> items made before its ops


class _Builder:
    """Turns graphs into a `_Model`."""

    def __init__(self) -> None:
        self.m = _Model()
        self.order = 0
        self.o = _GraphOptions()  # the options of the graph being added
        self.src: dict[int, str] = {}  # id(value node) -> item key (for the current graph)
        self.alias: dict[int, Node] = {}  # id(node) -> the node drawn in its place
        # id(multi-result node drawn as regions) -> what each of its results is drawn as
        self.results: dict[int, list[str | Node]] = {}
        self.tuple_src: dict[int, str] = {}  # such a node's stand-in, if read other than by proj
        self.invariant: set[int] = set()  # ids of region inputs that are loop-invariant operands
        self.kernels: set[int] = set()  # ids of the fused nodes drawn
        self.backward_controls: set[str] = set()  # clusters of loops and branches run backward
        self.backward: set[int] = set()  # ids of nodes that run in the backward pass
        self.srcs: dict[str, dict[int, str]] = {}  # tag -> src of that graph
        self.nodes: dict[str, dict[int, Node]] = {}  # tag -> id -> node of that graph
        self.keep: list[Any] = []  # keeps nodes whose ids we hold alive

    # -- clusters --------------------------------------------------------------------------------
    def scope_cluster(
        self, base: str | None, parts: tuple[str, ...], tag: str, skip: int = 0
    ) -> str | None:
        """The cluster of scope `parts` inside `base`; the first `skip` levels are drawn
        around `base` already (a loop body inside the loop's own scope)."""
        c = base
        for d in range(skip + 1, len(parts) + 1):
            path = ".".join(parts[:d])
            c = self.m.cluster(f"{tag}scope:{path}@{base}", "scope", path, c, d)
        return c

    def cluster_for(self, fr: _Frame, n: Node) -> str | None:
        if fr.fixed:
            return fr.cluster
        if id(n) in fr.virtual:
            return fr.virtual[id(n)]
        parts = _scope_parts(n)
        return self.scope_cluster(fr.cluster, parts, self.o.tag, _shared(parts, fr.scope))

    # -- items and edges -------------------------------------------------------------------------
    def new_item(self, key: str, kind: str, label: str, cluster: str | None, **kw: Any) -> _Item:
        self.order += 1
        return self.m.add(_Item(key, kind, label, cluster, self.order, **kw))

    def resolve(self, n: Node) -> Node:
        while id(n) in self.alias:
            n = self.alias[id(n)]
        return n

    def ref(self, n: Node) -> str | Node:
        """What draws value `n`: an item key, or the scalar literal node (drawn per use)."""
        v = self.resolve(n)
        if _is_literal(v):
            return v
        src = self.src.get(id(v)) or self.tuple_src.get(id(v))
        if src is None:  # pragma: no cover - values are drawn before their readers
            raise GraphcError(f"internal: no picture node for a {v.op} value")
        return src

    def bind(self, n: Node, ref: str | Node) -> None:
        """Draw node `n` as `ref` (an item key or a literal)."""
        if isinstance(ref, str):
            self.src[id(n)] = ref
            saved = self.o.saved.get(id(n), 0)
            if saved:
                self._mark_saved(ref, saved)
        else:
            self.alias[id(n)] = ref

    def connect(self, value: Node, dst: _Item, pos: int) -> None:
        kind = "invariant" if id(value) in self.invariant else "data"
        self.connect_ref(self.ref(value), dst, pos, str(value.aval), kind)

    def connect_ref(
        self, ref: str | Node, dst: _Item, pos: int, label: str, kind: str = "data"
    ) -> None:
        if isinstance(ref, Node):  # a literal: a small item beside its reader
            text = _literal_text(ref)
            lit = self.m.add(
                _Item(
                    f"{dst.key}#{pos}",
                    "literal",
                    _lines(text.split(":")[0]),
                    dst.cluster,
                    dst.order,
                    tooltip=text,
                    owner=dst.key,
                )
            )
            self.m.edges.append(_Edge(lit.key, dst.key, "data"))
            return
        self.m.edges.append(_Edge(ref, dst.key, kind, label))

    def _mark_saved(self, key: str, nbytes: int) -> None:
        it = self.m.items[key]
        if not it.saved and it.kind not in ("literal", "input", "param", "seed"):
            it.saved = nbytes
            it.label += "\\n" + _esc(f"saved {_fmt_bytes(nbytes)}")

    # -- graphs ----------------------------------------------------------------------------------
    def add_graph(self, graph: Graph, o: _GraphOptions) -> None:
        self.o = o
        self.src, self.alias, self.results, self.tuple_src = {}, {}, {}, {}
        self.keep.append(graph)
        self.m.n_nodes += len(graph.nodes)
        names = node_names(graph)
        self.backward = backward = set(o.backward)
        for k, n in enumerate(graph.inputs):
            irname = names[id(n)]
            shown = o.input_names[k] if o.input_names and k < len(o.input_names) else n.meta.name
            kind = (
                "param"
                if k in o.params
                else "seed"
                if k in o.seeds
                else "residual_in"
                if k in o.residual_inputs
                else "input"
            )
            title = f"{irname}: {shown}" if shown and shown != irname else irname
            saved = o.saved.get(id(n), 0)
            label = _lines(title, str(n.aval), f"saved {_fmt_bytes(saved)}" if saved else "")
            it = self.new_item(
                f"{o.tag}{irname}",
                kind,
                label,
                o.part,
                op="input",
                tooltip=f"{title}: {n.aval}",
                saved=saved,
                role="grad" if kind == "seed" else None,
            )
            self.src[id(n)] = it.key
            if kind == "seed":
                backward.add(id(n))
        top = _Frame(
            names,
            iter(graph.nodes),
            o.tag,
            o.part,
            backward=o.all_backward,
            virtual=self._virtual_kernels(graph, o),
        )
        self._draw(top)
        for k, out in enumerate(graph.outputs):
            if k in o.hidden_outputs:
                continue
            label = o.output_labels.get(k, f"out {k}")
            sink = self.new_item(
                f"{o.tag}out{k}",
                "output",
                _lines(label),
                o.part,
                tooltip=f"{label}: {out.aval}",
                role="grad" if label.startswith("grad") else None,
            )
            self.connect(out, sink, 0)
        self.srcs[o.tag] = self.src
        self.nodes[o.tag] = {id(n): n for n in graph.nodes}

    def _virtual_kernels(self, graph: Graph, o: _GraphOptions) -> dict[int, str]:
        """Kernel clusters for the ops fusion puts together (`stages.kernels`; joint pictures)."""
        members: dict[int, list[Node]] = {}
        for n in graph.nodes:
            k = o.kernel_of.get(id(n))
            if k is not None:
                members.setdefault(k, []).append(n)
        out: dict[int, str] = {}
        for k, ms in sorted(members.items()):
            base = self.scope_cluster(o.part, _common_prefix(_scope_parts(m) for m in ms), o.tag)
            c = self.m.cluster(
                f"{o.tag}vkernel{k}",
                "kernel",
                f"kernel {k} · {_plural(len(ms), 'op')}",
                base,
                title=f"kernel {k}",
            )
            for m in ms:
                out[id(m)] = c
        return out

    def _draw(self, top: _Frame) -> None:
        """Items for the equations and array constants of a graph and, frame by frame, of the
        graphs its nodes hold (a worklist: a region's frame goes on the stack above the frame
        that reached its node, which resumes once the region is drawn)."""
        stack = [top]
        backward = self.backward
        while stack:
            fr = stack[-1]
            if fr.start is not None:
                fr.start()
                fr.start = None
            n = next(fr.nodes, None)
            if n is None:
                stack.pop()
                if fr.done is not None:
                    fr.done()
                continue
            if n.op == "input" or _is_literal(n):
                continue
            if n.op == "proj" and id(n.inputs[0]) in self.results:
                # a backward loop's results are backward (a kernel's role is that of its last
                # op, so its results go by the ops that compute them)
                if id(n.inputs[0]) in backward and id(n.inputs[0]) not in self.kernels:
                    backward.add(id(n))
                self.bind(n, self.results[id(n.inputs[0])][n.attrs["index"]])
                continue
            role = n.meta.role
            if role is None and (fr.backward or any(id(i) in backward for i in n.inputs)):
                role = "grad"
            if role == "grad":
                backward.add(id(n))
            layout = _layout_of(n, fr.names[id(n)]) if nested_graphs(n) else None
            if layout is not None:
                stack.extend(self._open(n, fr, layout, role))
                continue
            self._add_op(n, fr, role)

    def _add_op(self, n: Node, fr: _Frame, role: str | None, cluster: str | None = None) -> _Item:
        """The item of one equation or array constant (in `cluster`, or where `fr` puts it)."""
        irname = fr.names[id(n)]
        cluster = cluster or self.cluster_for(fr, n)
        where = " ".join(p for p in (n.meta.loc, f"[{n.meta.scope}]" if n.meta.scope else "") if p)
        attrs = "".join(f" {a}" for a in _attrs_text(n, limit=8))
        tip = f"{irname}: {n.aval} = {n.op}{attrs}" + (f"  # {where}" if where else "")
        if fr.where:
            tip += f"  ({fr.where})"
        saved = self.o.saved.get(id(n), 0)
        if n.op == "const":
            label = _lines("const", str(n.aval), f"saved {_fmt_bytes(saved)}" if saved else "")
            it = self.new_item(
                f"{fr.prefix}{irname}",
                "const",
                label,
                cluster,
                op="const",
                tooltip=tip,
                saved=saved,
            )
        else:
            label = _lines(n.op, *_attrs_text(n), f"saved {_fmt_bytes(saved)}" if saved else "")
            it = self.new_item(
                f"{fr.prefix}{irname}",
                "op",
                label,
                cluster,
                op=n.op,
                role=role,
                tooltip=tip,
                saved=saved,
            )
            for pos, i in enumerate(n.inputs):
                self.connect(i, it, pos)
        self.src[id(n)] = it.key
        return it

    # -- regions ---------------------------------------------------------------------------------
    def _open(self, n: Node, fr: _Frame, layout: _Layout, role: str | None) -> list[_Frame]:
        """The frames that draw the regions of `n` (the first region on top, to be drawn
        first), above one that finishes `n` once they are all drawn."""
        irname = fr.names[id(n)]
        prefix = f"{fr.prefix}{irname}."
        self.keep.append(n)
        kernel = layout.kind == "kernel"
        if kernel:
            self.kernels.add(id(n))
            # a kernel sits in the scope its ops share
            if fr.fixed:
                parent = fr.cluster
            else:
                parts = _common_prefix(_scope_parts(b) for b in layout.regions[0].graph.equations)
                parent = self.scope_cluster(fr.cluster, parts, self.o.tag, _shared(parts, fr.scope))
            depth = fr.depth
            c = self.m.cluster(
                f"{fr.prefix}{irname}@kernel", "kernel", layout.label, parent, 0, layout.title
            )
        else:
            parent = self.cluster_for(fr, n)
            depth = fr.depth + 1
            c = self.m.cluster(
                f"{fr.prefix}{irname}@control",
                "call" if layout.kind == "call" else "control",
                layout.label,
                parent,
                depth,
                layout.title,
                name=f"cluster_{_ID_UNSAFE.sub('_', n.op)}_{self.m.n_controls}",
            )
            self.m.n_controls += 1
            if role == "grad":
                self.backward_controls.add(c)
            self.m.n_nodes += sum(len(r.graph.nodes) for r in layout.regions)
        st = _Open(n, layout, c, prefix, role, outs=[[] for _ in layout.regions])
        grad = "grad" if role == "grad" else None
        if layout.kind == "other":  # the node as an op box, its graphs beside it
            self._add_op(n, fr, role, cluster=c)
        for k, j in enumerate(layout.carries):
            v = n.inputs[j]
            it = self.new_item(
                f"{prefix}carry{k}",
                "carry",
                _lines(f"carry {k}", str(v.aval)),
                c,
                role=grad,
                tooltip=f"carry {k} of {layout.title}: {v.aval}; its initial value comes in, "
                "each trip's new value goes back (dashed)",
            )
            self.connect(v, it, 0)
            st.carries.append(it.key)
        if layout.index is not None:
            v = n.inputs[layout.index]
            it = self.new_item(
                f"{prefix}index",
                "test",
                _lines(layout.test),
                c,
                role=grad,
                tooltip=f"{layout.title} runs the branch its index ({v.aval}) picks",
            )
            self.connect(v, it, 0)
            st.index = it.key
        slices: dict[int, str] = {}
        frames = []
        for r, reg in enumerate(layout.regions):
            rc = c
            if reg.label is not None:
                rc = self.m.cluster(
                    f"{prefix}{reg.name}@region",
                    "region",
                    reg.label,
                    c,
                    name=f"{self.m.clusters[c].name}_{_ID_UNSAFE.sub('_', reg.name)}",
                )
            st.clusters.append(rc)
            for p, (how, j) in enumerate(reg.feeds):
                if how == "slice" and j not in slices:
                    v, step = n.inputs[j], reg.graph.inputs[p].aval
                    seq = fr.names.get(id(v), "xs")
                    it = self.new_item(
                        f"{prefix}xs{j}",
                        "slice",
                        _lines(f"{seq}[t]", str(step)),
                        c,
                        role=grad,
                        tooltip=f"step t of {seq}: {v.aval} → {step} ({layout.title})",
                    )
                    self.connect(v, it, 0)
                    slices[j] = it.key
            frames.append(
                _Frame(
                    node_names(reg.graph),
                    iter(reg.graph.nodes),
                    f"{prefix}{reg.name}." if reg.name else prefix,
                    rc,
                    fixed=kernel,
                    scope=fr.scope if kernel else _scope_parts(n),
                    depth=depth,
                    # a kernel's ops keep their own roles (one kernel may hold forward and
                    # backward ops); everything a backward loop or branch runs is backward
                    backward=fr.backward if kernel else role == "grad",
                    where=""
                    if kernel
                    else f"in {layout.title}" + (f", {reg.label}" if reg.label else ""),
                    start=partial(self._feed, st, r, slices),
                    done=partial(self._region_done, st, r),
                )
            )
        finish = _Frame({}, iter(()), prefix, c, done=partial(self._finish, st))
        return [finish, *reversed(frames)]

    def _feed(self, st: _Open, r: int, slices: dict[int, str]) -> None:
        """Bind region `r`'s inputs to what feeds them: the node's operands themselves (drawn
        outside, their edges entering the cluster), its carries or its sequences' slices."""
        reg = st.layout.regions[r]
        operands = st.node.inputs
        for p, (how, j) in enumerate(reg.feeds):
            bi = reg.graph.inputs[p]
            # bound afresh: a graph held twice (two branches alike) is drawn twice
            self.invariant.discard(id(bi))
            self.alias.pop(id(bi), None)
            if how in ("operand", "invariant"):
                self.alias[id(bi)] = operands[j]
                if how == "invariant":
                    self.invariant.add(id(bi))
                # computed from a cotangent inside a loop or branch is backward too (a kernel's
                # ops go by their own roles, as they did before fusion)
                if st.layout.kind != "kernel" and id(operands[j]) in self.backward:
                    self.backward.add(id(bi))
            elif how == "carry":
                self.src[id(bi)] = st.carries[j]
            elif how == "slice":
                self.src[id(bi)] = slices[j]
            else:  # an input of a graph the picture knows nothing about
                it = self.new_item(
                    f"{st.prefix}{reg.name}.in{p}",
                    "region_in",
                    _lines(f"in {p}", str(bi.aval)),
                    st.clusters[r],
                    tooltip=f"input {p} of {reg.label or reg.name} ({st.layout.title})",
                )
                self.src[id(bi)] = it.key
        st.marks[r] = self.order

    def _region_done(self, st: _Open, r: int) -> None:
        reg = st.layout.regions[r]
        # taken now: a later region (or node) holding the same graph draws it again
        st.outs[r] = [self.ref(o) for o in reg.graph.outputs]
        if reg.label is not None and self.order == st.marks.get(r):
            # nothing to draw (a branch returning its operands): say so, or the cluster would
            # not be drawn at all
            self.new_item(
                f"{st.prefix}{reg.name}.none",
                "note",
                _lines("no ops"),
                st.clusters[r],
                tooltip=f"{reg.label} of {st.layout.title} returns what it is given",
            )

    def _finish(self, st: _Open) -> None:
        """After its regions: the items and edges leaving them (carries going back, stacked
        outputs, the results a branch picks), and what each result of the node is drawn as."""
        n, lay = st.node, st.layout
        grad = "grad" if st.role == "grad" else None
        made: dict[tuple[str, int, int], str] = {}  # (kind, j, region of a region_out) -> key
        result_aval = (
            list(n.aval.avals) if isinstance(n.aval, TupleAval) else [n.aval]  # type: ignore[union-attr]
        )
        position = {res[:2]: k for k, res in enumerate(lay.results)}
        for r, reg in enumerate(lay.regions):
            for pos, (how, j) in enumerate(reg.outs):
                ref = st.outs[r][pos]
                aval = str(reg.graph.outputs[pos].aval)
                if how == "carry":
                    self._back_edge(ref, st.carries[j], j)
                elif how in ("stack", "merge", "test", "region_out"):
                    # every branch's output j flows into one result j; other sinks are one each
                    at = (how, j, r if how == "region_out" else 0)
                    key = made.get(at)
                    if key is None:
                        key = self._sink(st, how, j, r, grad, result_aval, position).key
                        made[at] = key
                    self.connect_ref(ref, self.m.items[key], pos, aval)
        if st.index is not None:
            for (how, _j, _r), key in made.items():
                if how == "merge":
                    self.m.edges.append(_Edge(st.index, key, "select"))
        refs: list[str | Node] = []
        for how, r, j in lay.results:
            if how == "out":
                refs.append(st.outs[r][j])
            elif how == "carry":
                refs.append(st.carries[r])
            else:
                refs.append(made[(how, r, 0)])
        if lay.kind == "other":
            return  # the node's op box stands for its results
        if isinstance(n.aval, TupleAval):
            self.results[id(n)] = refs
            first = next((x for x in refs if isinstance(x, str)), None)
            if first is not None:
                self.tuple_src[id(n)] = first  # only if something reads the tuple itself
        elif refs:
            self.bind(n, refs[0])

    def _sink(
        self,
        st: _Open,
        how: str,
        j: int,
        r: int,
        grad: str | None,
        result_aval: list[Any],
        position: dict[tuple[str, int], int],
    ) -> _Item:
        """The item a region output flows into: a stacked sequence, a branch result, the
        loop's test, or (for a region the picture does not know) an output."""
        title = st.layout.title
        cluster = st.clusters[r]
        if how == "stack":
            aval = result_aval[position[("stack", j)]]
            return self.new_item(
                f"{st.prefix}ys{j}",
                "stack",
                _lines(f"stack {j}", str(aval)),
                st.cluster,
                role=grad,
                tooltip=f"the values of every step, stacked: {aval} ({title})",
            )
        if how == "merge":
            aval = result_aval[position[("merge", j)]]
            return self.new_item(
                f"{st.prefix}result{j}",
                "merge",
                _lines(f"result {j}", str(aval)),
                st.cluster,
                role=grad,
                tooltip=f"result {j} of {title}: from the branch the index picks",
            )
        if how == "test":
            return self.new_item(
                f"{st.prefix}test",
                "test",
                _lines(st.layout.test),
                cluster,
                role=grad,
                tooltip=f"{title} runs its body again while this is true",
            )
        return self.new_item(
            f"{st.prefix}{st.layout.regions[r].name}.out{j}",
            "region_out",
            _lines(f"out {j}"),
            cluster,
            role=grad,
            tooltip=f"output {j} of a graph held by {title}",
        )

    def _back_edge(self, ref: str | Node, carry: str, k: int) -> None:
        """The dashed edge from carry k's new value back to the carry."""
        if isinstance(ref, Node):  # a literal new value: drawn beside the carry
            text = _literal_text(ref)
            dst = self.m.items[carry]
            lit = self.m.add(
                _Item(
                    f"{carry}#back",
                    "literal",
                    _lines(text.split(":")[0]),
                    dst.cluster,
                    dst.order,
                    tooltip=text,
                    owner=carry,
                )
            )
            ref = lit.key
        # a carry passed on unchanged gets a loop on itself
        label = f"carry {k}" if ref != carry else f"carry {k} (unchanged)"
        self.m.edges.append(_Edge(ref, carry, "carry", label))

    # -- joint-picture extras --------------------------------------------------------------------
    def grad_links(self, tag: str, grad_of: list[tuple[Node, Node]], seeds: set[int]) -> int:
        """Dashed edges from each cotangent to the value it differentiates; returns how many.

        `grad_of` holds (cotangent, forward value) pairs; a pair counts when both nodes are in
        this graph and the cotangent really is one (made by autodiff or a seed)."""
        src, nodes = self.srcs[tag], self.nodes[tag]
        seen: set[tuple[str, str]] = set()
        for ct, fwd in grad_of:
            ct_id = id(ct)
            if nodes.get(ct_id) is not ct or nodes.get(id(fwd)) is not fwd or ct.aval != fwd.aval:
                continue
            if ct.meta.role != "grad" and ct_id not in seeds:
                continue
            a, b = src.get(ct_id), src.get(id(fwd))
            if a and b and a != b and (a, b) not in seen:
                seen.add((a, b))
                self.m.edges.append(_Edge(a, b, "grad_of", "∂"))
        return len(seen)

    def mark_residual_edges(self, tag: str, backward: set[int]) -> None:
        """Edges from a saved residual into the backward pass (`backward`: ids of the nodes
        that run there) become residual edges; the first per residual says how many bytes."""
        items = self.m.items
        into = {self.srcs[tag][i] for i in backward if i in self.srcs[tag]}
        if self.backward_controls:  # and what a backward loop or branch holds
            into |= {
                k
                for k, it in items.items()
                if it.cluster is not None
                and not self.backward_controls.isdisjoint(_chains_of(self.m, it.cluster))
            }
        labeled: set[str] = set()
        for e in self.m.edges:
            s = items[e.src]
            if e.kind == "data" and s.saved and e.dst in into and e.src not in into:
                e.kind, e.res_key = "residual", e.src
                if e.src not in labeled:
                    labeled.add(e.src)
                    e.saved = s.saved
                    e.label = f"{e.label}\nsaved {_fmt_bytes(s.saved)}"

    def mark_recomputed(self, tag: str, recomputed: set[int]) -> None:
        for i in recomputed:
            key = self.srcs[tag].get(i)
            if key is not None and self.m.items[key].kind == "op":
                it = self.m.items[key]
                it.recomputed = True
                it.tooltip += "  (recomputed in the backward pass)"


def _backward_split(
    graph: Graph, part: Any, seeds: Iterable[int], n_out: int
) -> tuple[set[int], set[int]]:
    """Ids of the joint graph's nodes that run in the backward pass: those computed from a
    cotangent, and the forward values the backward graph recomputes from the residuals."""
    after = {id(graph.inputs[k]) for k in seeds}
    for n in graph.nodes:
        if any(id(i) in after for i in n.inputs):
            after.add(id(n))
    saved = {id(r) for r in part.residuals}
    recomputed: set[int] = set()
    stack = [g for g in graph.outputs[n_out:] if id(g) not in after]
    stack += [i for n in graph.nodes if id(n) in after for i in n.inputs if id(i) not in after]
    while stack:
        n = stack.pop()
        if id(n) in saved or id(n) in recomputed or n.op in ("input", "const"):
            continue
        recomputed.add(id(n))
        stack.extend(n.inputs)
    return after, recomputed


def _literal_text(n: Node) -> str:
    """A scalar constant as in the IR text: `2.0:f32`."""
    return f"{fmt_value(n.attrs['value'])}:{dtype_name(n.dtype)}"


# ---------------------------------------------------------------------------------------------
# regions: how a node holding graphs is drawn
#
# A fused kernel is a cluster of its body's ops, read through as if inlined. A loop is a
# cluster labelled with its kind and trip count: its carries are items that the initial values
# enter and each trip's new values go back to (dashed edges), its sequences enter as slices
# `xs[t]` and its per-step outputs leave as stacked items; loop-invariant operands enter the
# cluster directly. A branch is a cluster holding one cluster per branch, the index deciding
# which branch's outputs become the results. The op entries say how to compute these ops, not
# how their operands map onto their graphs' inputs, so each gets a layout function here; an
# op the picture does not know is drawn as a box beside its graphs.


@dataclass
class _Region:
    """One graph of a node as the picture draws it."""

    graph: Graph
    name: str  # in item keys and DOT names ("" for a kernel's body)
    label: str | None  # the label of its own cluster (None: drawn in the node's cluster)
    # per graph input, what feeds it: ("operand", j) the node's operand j, drawn outside;
    # ("invariant", j) the same, for a loop-invariant operand; ("carry", k) carry k;
    # ("slice", j) step t of sequence operand j; ("input", p) an input item of its own
    feeds: list[tuple[str, int]]
    # per graph output, where it goes: ("value", p) nowhere (a result read through);
    # ("carry", k) back to carry k; ("stack", j) stacked output j; ("merge", j) branch result
    # j; ("test", 0) the test of a while loop; ("region_out", p) an output item of its own
    outs: list[tuple[str, int]]


@dataclass
class _Layout:
    """How a node holding graphs is drawn."""

    # kernel; control (loops and branches); call (a graph computed once in place: checkpoints,
    # functions with derivative rules of their own); other (a box beside its graphs)
    kind: str
    label: str  # the cluster's label
    title: str  # the label of the box it collapses into
    regions: list[_Region]
    carries: list[int] = field(default_factory=list)  # operand position of each initial carry
    index: int | None = None  # operand position of a branch index
    test: str = ""  # the label of the item holding a loop's test or a branch index
    # per result of the node, what draws it: ("out", r, p) output p of region r; ("carry", k,
    # 0) carry k; ("stack", j, 0) or ("merge", j, 0) the item of that name
    results: list[tuple[str, int, int]] = field(default_factory=list)


def _kernel_layout(n: Node, irname: str) -> _Layout:
    body: Graph = n.attrs["body"]
    k = len(body.outputs)
    return _Layout(
        "kernel",
        f"kernel {irname} = fused · {_plural(len(body.equations), 'op')}",
        f"kernel {irname} = fused",
        [
            _Region(
                body,
                "",
                None,
                [("operand", j) for j in range(len(n.inputs))],
                [("value", p) for p in range(k)],
            )
        ],
        results=[("out", 0, p) for p in range(k)],
    )


def _scan_layout(n: Node, irname: str) -> _Layout:
    a = n.attrs
    body: Graph = a["body"]
    consts, carry, xs = scan_parts(a["n_consts"], a["n_carry"], list(range(len(n.inputs))))
    n_y = len(body.outputs) - len(carry)
    label = f"scan {irname} · length {a['length']}" + (" · reverse" if a["reverse"] else "")
    if a.get("remat"):  # records only its carries; the backward pass recomputes the steps
        label += " · remat"
    return _Layout(
        "control",
        label,
        label,
        [
            _Region(
                body,
                "body",
                None,
                [("invariant", j) for j in consts]
                + [("carry", k) for k in range(len(carry))]
                + [("slice", j) for j in xs],
                [("carry", k) for k in range(len(carry))] + [("stack", j) for j in range(n_y)],
            )
        ],
        carries=carry,
        # the final carry is the last trip's new value
        results=[("out", 0, k) for k in range(len(carry))] + [("stack", j, 0) for j in range(n_y)],
    )


def _while_layout(n: Node, irname: str) -> _Layout:
    a = n.attrs
    nc, nb = a["n_cond_consts"], a["n_body_consts"]
    n_carry = len(n.inputs) - nc - nb
    carry = [("carry", k) for k in range(n_carry)]
    label = f"while {irname}" + (
        f" · max_trips {a['max_trips']}" if a.get("max_trips") is not None else ""
    )
    return _Layout(
        "control",
        label,
        label,
        [
            _Region(
                a["cond"],
                "cond",
                "cond",
                [("invariant", j) for j in range(nc)] + carry,
                [("test", 0)],
            ),
            _Region(
                a["body"],
                "body",
                "body",
                [("invariant", nc + j) for j in range(nb)] + carry,
                [("carry", k) for k in range(n_carry)],
            ),
        ],
        carries=list(range(nc + nb, len(n.inputs))),
        test="while true",
        # the loop stops at its test: the result is the carry as it is then
        results=[("carry", k, 0) for k in range(n_carry)],
    )


def _cond_layout(n: Node, irname: str) -> _Layout:
    branches: tuple[Graph, ...] = n.attrs["branches"]
    boolean = n.inputs[0].dtype == np.bool_
    names = ("false", "true") if boolean and len(branches) == 2 else None
    k = len(branches[0].outputs)
    kind = "cond" if boolean else "switch"
    label = f"{kind} {irname} · {len(branches)} branch" + ("es" if len(branches) != 1 else "")
    return _Layout(
        "control",
        label,
        label,
        [
            _Region(
                b,
                f"branch{i}",
                f"branch {i}" + (f" ({names[i]})" if names else ""),
                [("operand", 1 + j) for j in range(len(n.inputs) - 1)],
                [("merge", p) for p in range(k)],
            )
            for i, b in enumerate(branches)
        ],
        index=0,
        test="if" if boolean else "switch",
        results=[("merge", p, 0) for p in range(k)],
    )


def _other_layout(n: Node, irname: str) -> _Layout:
    """An op whose graphs the picture cannot place: a box, and each graph beside it."""
    regions = [
        _Region(
            g,
            _ID_UNSAFE.sub("_", name),
            name,
            [("input", p) for p in range(len(g.inputs))],
            [("region_out", p) for p in range(len(g.outputs))],
        )
        for name, g in stages.regions(n)
    ]
    return _Layout("other", f"{n.op} {irname}", f"{n.op} {irname}", regions)


_LAYOUTS: dict[str, Callable[[Node, str], _Layout]] = {
    "fused": _kernel_layout,
    "scan": _scan_layout,
    "while_loop": _while_layout,
    "cond": _cond_layout,
}


def _call_layout(n: Node, irname: str) -> _Layout | None:
    """An op whose entry says it calls a graph once (`inline`: a checkpoint, a function with
    derivative rules of its own): that graph, the one taking the node's operands and giving
    its results, drawn in place and read through; the others (the rules) named in the label."""
    ins = [i.aval for i in n.inputs]
    outs = list(n.aval.avals) if isinstance(n.aval, TupleAval) else [n.aval]
    held = stages.regions(n)
    called = [
        (name, g)
        for name, g in held
        if [i.aval for i in g.inputs] == ins and [o.aval for o in g.outputs] == outs
    ]
    if not called:
        return None
    name, g = called[0]
    rules = [other for other, h in held if h is not g]
    label = f"{n.op} {irname}" + (f" · rules: {', '.join(rules)}" if rules else "")
    return _Layout(
        "call",
        label,
        label,
        [
            _Region(
                g,
                _ID_UNSAFE.sub("_", name),
                None,
                [("operand", j) for j in range(len(ins))],
                [("value", p) for p in range(len(outs))],
            )
        ],
        results=[("out", 0, p) for p in range(len(outs))],
    )


def _layout_of(n: Node, irname: str) -> _Layout:
    known = _LAYOUTS.get(n.op)
    if known is not None:
        return known(n, irname)
    entry = REGISTRY.get(n.op)
    call = _call_layout(n, irname) if entry is not None and entry.inline is not None else None
    return call or _other_layout(n, irname)


def _shared(parts: tuple[str, ...], outer: tuple[str, ...]) -> int:
    """How many leading scope levels `parts` shares with `outer`."""
    k = 0
    while k < len(parts) and k < len(outer) and parts[k] == outer[k]:
        k += 1
    return k


# ---------------------------------------------------------------------------------------------
# building the model for a graph or a partition


def _joint_model(
    graph: Graph,
    b: _Builder,
    *,
    params: Iterable[int] | None,
    input_names: Sequence[str] | None,
    kernels: bool | None,
) -> list[str]:
    """A joint graph (from `vjp`): forward and backward styled apart, residuals, grad links."""
    info = graph.info
    n_in = int(info.get("n_primal_inputs", len(graph.inputs)))
    n_out = int(info.get("n_primal_outputs", len(graph.outputs)))
    wrt = tuple(info.get("wrt", ()))
    seeds = frozenset(range(n_in, len(graph.inputs)))
    saved: dict[int, int] = {}
    notes = []
    part = None
    if seeds:
        try:
            part = stages.partitioned(graph)
            saved = {id(r): r.aval.nbytes for r in part.residuals}
            notes.append(
                f"{_plural(len(part.residuals), 'residual')} saved for the backward pass "
                f"({_fmt_bytes(part.residual_bytes)})"
            )
        except GraphcError:
            part = None
    kernel_of: dict[int, int] = {}
    if kernels or (kernels is None and len(graph.nodes) <= KERNEL_GROUPING_LIMIT):
        for k, group in enumerate(stages.kernels(graph)):
            for n in group:
                kernel_of[id(n)] = k
    elif kernels is None:
        notes.append("no kernel clusters: the graph is large (pass kernels=True for them)")
    names = _input_titles(graph, input_names)
    labels = {
        n_out + j: f"grad {names[w]}" for j, w in enumerate(wrt) if n_out + j < len(graph.outputs)
    }
    differentiated = tuple(info.get("differentiated", range(n_out)))
    for j, k in enumerate(seeds):
        if j < len(differentiated):
            names[k] = _ct_title(differentiated[j], n_out, info.get("primal_name"))
    o = _GraphOptions(
        params=frozenset(wrt if params is None else params),
        seeds=seeds,
        input_names=names,
        output_labels=labels,
        saved=saved,
        kernel_of=kernel_of,
    )
    b.add_graph(graph, o)
    seed_ids = {id(graph.inputs[k]) for k in seeds}
    links = b.grad_links("", info.get("grad_of", []), seed_ids)
    if part is not None:
        after, recomputed = _backward_split(graph, part, seeds, n_out)
        b.mark_residual_edges("", after | recomputed)
        b.mark_recomputed("", recomputed)
    n_bwd = sum(1 for it in b.m.items.values() if it.kind == "op" and it.role == "grad")
    n_fwd = sum(1 for it in b.m.items.values() if it.kind == "op" and it.role != "grad")
    return [
        f"joint graph: forward {n_fwd} ops, backward {n_bwd} ops, {links} gradient links"
    ] + notes


def _input_titles(graph: Graph, input_names: Sequence[str] | None) -> list[str]:
    names = node_names(graph)
    out = []
    for k, n in enumerate(graph.inputs):
        if input_names and k < len(input_names):
            out.append(input_names[k])
        else:
            out.append(n.meta.name or names[id(n)])
    return out


def _ct_title(out: int, n_out: int, primal: str | None) -> str:
    """What a cotangent input is: `ct(loss)` for a function's only output, else `ct(out k)`."""
    return f"ct({primal})" if n_out == 1 and primal else f"ct(out {out})"


def _backward_titles(bwd: Graph, input_names: Sequence[str] | None) -> list[str]:
    """What each input of a partition's backward graph is in forward terms: a residual names
    the forward value it is and how that was computed (`residual h = sign(b)`, `residual W1`
    for a saved input), a cotangent the output it belongs to (`ct(loss)`). `input_names` are
    the forward function's parameter names."""
    info = bwd.info
    n_res = int(info.get("n_residuals", 0))
    fwd: Graph | None = info.get("forward")
    residual_of = info.get("residual_of", ())
    cotangent_of = info.get("cotangent_of", ())
    if fwd is None:  # a backward graph from elsewhere: its own input names
        return _input_titles(bwd, None)
    fnames = node_names(fwd)
    params = _input_titles(fwd, input_names)
    position = {id(x): k for k, x in enumerate(fwd.inputs)}
    n_out = int(fwd.info.get("n_primal_outputs", len(fwd.outputs) - n_res))

    def ref(n: Node) -> str:
        if id(n) in position:
            return params[position[id(n)]]
        if _is_literal(n):
            return _literal_text(n).split(":")[0]
        return fnames.get(id(n), "…")

    titles = []
    for k in range(len(bwd.inputs)):
        if k < n_res and k < len(residual_of):
            r = residual_of[k]
            if id(r) in position or r.op == "const":
                titles.append(f"residual {ref(r)}")
            else:
                args = ", ".join(ref(i) for i in r.inputs)
                titles.append(f"residual {fnames.get(id(r), '…')} = {_short(f'{r.op}({args})')}")
        elif k >= n_res and k - n_res < len(cotangent_of):
            titles.append(_ct_title(cotangent_of[k - n_res], n_out, info.get("primal_name")))
        else:
            titles.append(_input_titles(bwd, None)[k])
    return titles


def _grad_labels(wrt: Sequence[int], names: Sequence[str], n: int) -> dict[int, str]:
    """Output k of a backward graph is the gradient of forward input wrt[k]."""
    return {k: f"grad {names[w]}" for k, w in enumerate(wrt) if k < n and w < len(names)}


def _only_grads_of(bwd: Graph, params: Iterable[int], names: Sequence[str]) -> Graph:
    """The part of backward graph `bwd` computing the gradients of forward inputs `params`
    (positions), keeping its info; inputs nothing there reads are left out."""
    wrt = tuple(bwd.info.get("grad_wrt", ()))
    chosen = sorted(set(params))
    missing = [p for p in chosen if p not in wrt]
    if missing:
        have = ", ".join(f"{w} ({names[w]})" if w < len(names) else str(w) for w in wrt)
        raise GraphcError(
            f"params={chosen}: the backward graph has no gradient for input "
            f"{missing[0]}; it has gradients for inputs {have or 'none'}"
        )
    keep = [k for k, w in enumerate(wrt) if w in chosen]
    outs = [bwd.outputs[k] for k in keep]
    reached = {id(n) for n in toposort(outs)}
    sub = Graph([x for x in bwd.inputs if id(x) in reached], outs, name=bwd.name)
    sub.info.update(bwd.info)
    sub.info["grad_wrt"] = tuple(wrt[k] for k in keep)
    return sub


def _partition_wrt(part: Any) -> tuple[int, ...] | None:
    """Which forward inputs the backward outputs are gradients of, when that is clear."""
    floats = [k for k, x in enumerate(part.forward.inputs) if is_float(x.dtype)]
    outs = part.backward.outputs
    if len(floats) == len(outs) and all(
        part.forward.inputs[k].aval == g.aval for k, g in zip(floats, outs, strict=True)
    ):
        return tuple(floats)
    return None


def _partition_model(
    part: Any,
    b: _Builder,
    *,
    params: Iterable[int] | None,
    input_names: Sequence[str] | None,
    kernels: bool | None,
    wrt: Sequence[int] | None = None,
) -> list[str]:
    """A Partition: forward and backward clusters, residual edges between them."""
    fwd, bwd = part.forward, part.backward
    res = list(part.residuals)
    n_res = len(res)
    n_out = len(fwd.outputs) - n_res
    wrt = tuple(wrt) if wrt is not None else _partition_wrt(part)
    names = _input_titles(fwd, input_names)

    def groups(g: Graph) -> dict[int, int]:
        if not (kernels or (kernels is None and len(g.nodes) <= KERNEL_GROUPING_LIMIT)):
            return {}
        return {id(n): k for k, grp in enumerate(stages.kernels(g)) for n in grp}

    b.m.cluster("forward", "part", "forward", None)
    b.m.cluster("backward", "part", "backward", None)
    saved = {id(r): r.aval.nbytes for r in res}
    b.add_graph(
        fwd,
        _GraphOptions(
            tag="f.",
            part="forward",
            input_names=input_names,
            params=frozenset(params if params is not None else (wrt or ())),
            hidden_outputs=frozenset(range(n_out, len(fwd.outputs))),
            saved=saved,
            kernel_of=groups(fwd),
        ),
    )
    labels = {k: f"grad {names[w]}" for k, w in enumerate(wrt or ()) if k < len(bwd.outputs)}
    b.add_graph(
        bwd,
        _GraphOptions(
            tag="b.",
            part="backward",
            input_names=_backward_titles(bwd, input_names),
            residual_inputs=frozenset(range(n_res)),
            seeds=frozenset(range(n_res, len(bwd.inputs))),
            all_backward=True,
            output_labels=labels,
            kernel_of=groups(bwd),
        ),
    )
    fsrc, bsrc = b.srcs["f."], b.srcs["b."]
    for k, r in enumerate(res):
        a, d = fsrc.get(id(r)), bsrc.get(id(bwd.inputs[k]))
        if a and d:
            b.m.edges.append(
                _Edge(
                    a,
                    d,
                    "residual",
                    f"{r.aval}\nsaved {_fmt_bytes(r.aval.nbytes)}",
                    saved=r.aval.nbytes,
                    res_key=a,
                )
            )
    if wrt:
        for k, w in enumerate(wrt):
            if k < len(bwd.outputs):
                a, d = bsrc.get(id(b.resolve(bwd.outputs[k]))), fsrc.get(id(fwd.inputs[w]))
                if a and d:
                    b.m.edges.append(_Edge(a, d, "grad_of", "∂"))
    return [
        f"forward {len(fwd.equations)} ops, backward {len(bwd.equations)} ops, "
        f"{_plural(n_res, 'residual')} saved ({_fmt_bytes(part.residual_bytes)})"
    ]


def _plain_model(
    graph: Graph, b: _Builder, *, params: Iterable[int] | None, input_names: Sequence[str] | None
) -> list[str]:
    """Any other graph (traced, optimized, fused; a partition's forward or backward half)."""
    info = graph.info
    o = _GraphOptions(
        input_names=input_names,
        params=frozenset(params if params is not None else info.get("wrt", ())),
    )
    notes = []
    if "n_residuals" in info:  # the backward half of a partition
        # its inputs are residuals and cotangents, not the forward function's parameters
        # (input_names): each is titled as what it is; `params` chooses forward inputs whose
        # gradients are drawn
        n_res = int(info["n_residuals"])
        fwd = info.get("forward")
        names = _input_titles(fwd, input_names) if fwd is not None else []
        titles = _backward_titles(graph, input_names)
        title_of = {id(x): t for x, t in zip(graph.inputs, titles, strict=True)}
        residual = {id(x) for x in graph.inputs[:n_res]}
        if params is not None:
            graph = _only_grads_of(graph, params, names)
            picked = ", ".join(_grad_labels(graph.info["grad_wrt"], names, 99).values())
            notes.append(f"only {picked or 'the chosen gradients'}")
        o.input_names = [title_of[id(x)] for x in graph.inputs]
        o.params = frozenset()
        o.residual_inputs = frozenset(k for k, x in enumerate(graph.inputs) if id(x) in residual)
        o.seeds = frozenset(range(len(graph.inputs))) - o.residual_inputs
        o.saved = {id(x): x.aval.nbytes for x in graph.inputs if id(x) in residual}
        o.output_labels = _grad_labels(graph.info.get("grad_wrt", ()), names, len(graph.outputs))
        o.all_backward = True
        notes.insert(0, f"backward graph: {_plural(len(o.residual_inputs), 'residual input')}")
    elif graph.name == "forward" and "n_primal_outputs" in info:  # the forward half
        n_out = int(info["n_primal_outputs"])
        res = graph.outputs[n_out:]
        o.saved = {id(r): r.aval.nbytes for r in res}
        # each named as the backward picture names it: the saved input, or the value's name
        ir, params = node_names(graph), _input_titles(graph, input_names)
        position = {id(x): k for k, x in enumerate(graph.inputs)}
        o.output_labels = {
            n_out + k: f"residual {params[position[id(r)]] if id(r) in position else ir[id(r)]}"
            for k, r in enumerate(res)
        }
        notes.append(
            f"forward graph: {_plural(len(res), 'residual')} saved "
            f"({_fmt_bytes(sum(r.aval.nbytes for r in res))})"
        )
    b.add_graph(graph, o)
    kernels = sum(1 for c in b.m.clusters.values() if c.kind == "kernel")
    if kernels:
        notes.append(f"{kernels} fused kernels")
    return notes


# ---------------------------------------------------------------------------------------------
# collapsing large pictures


@dataclass
class _Box:
    key: str
    kind: str  # kernel scope block
    title: str
    cluster: str | None  # where the box is drawn
    items: list[_Item] = field(default_factory=list)


def _chains(m: _Model) -> dict[str | None, list[str]]:
    """Cluster -> its chain of clusters, innermost first."""
    out: dict[str | None, list[str]] = {None: []}
    for key in m.clusters:
        chain, c = [], key
        while c is not None:
            chain.append(c)
            c = m.clusters[c].parent
        out[key] = chain
    return out


def _assign(m: _Model, chains: dict[str | None, list[str]], collapsed: set[str]) -> dict[str, str]:
    """Item key -> element key (itself, or the box of its outermost collapsed cluster)."""
    out = {}
    memo: dict[str | None, str | None] = {}
    for it in m.items.values():
        c = it.cluster
        if c not in memo:
            top = None
            for k in chains[c]:
                if k in collapsed:
                    top = k
            memo[c] = top
        top = memo[c]
        out[it.key] = it.key if top is None else f"box:{top}"
    return out


def _count(m: _Model, assign: dict[str, str]) -> int:
    return len({assign[k] for k, it in m.items.items() if it.kind != "literal"})


def _plan(m: _Model, budget: int | None) -> tuple[dict[str, str], dict[str, _Box], str]:
    """Choose how much to collapse: item -> element, the boxes, and a note saying what."""
    chains = _chains(m)
    n_items = sum(1 for it in m.items.values() if it.kind != "literal")
    plain = {k: k for k in m.items}
    if budget is None or n_items <= budget:
        return plain, {}, ""
    kernels = {k for k, c in m.clusters.items() if c.kind == "kernel"}
    levels: list[tuple[str, set[str]]] = []
    if kernels:
        levels.append(("fused kernels collapsed", kernels))
    # then loops and branches, the innermost first: each becomes one box saying what it holds
    controls = {k: c.depth for k, c in m.clusters.items() if c.kind in ("control", "call")}
    nesting = sorted(set(controls.values()), reverse=True)
    for d in nesting:
        deep = {k for k, depth in controls.items() if depth >= d}
        what = "loops and branches" if d == 1 else f"loops and branches nested {d} deep"
        levels.append((f"{what} collapsed", kernels | deep))
    depths = sorted({c.depth for c in m.clusters.values() if c.kind == "scope"}, reverse=True)
    for d in depths:
        scopes = {k for k, c in m.clusters.items() if c.kind == "scope" and c.depth == d}
        levels.append((f"collapsed by scope (depth {d})", kernels | set(controls) | scopes))
    assign, note, collapsed = plain, "", set()
    for level in levels:
        note, collapsed = level
        assign = _assign(m, chains, collapsed)
        if _count(m, assign) <= budget:
            break
    boxes = _make_boxes(m, assign, collapsed)
    if _count(m, assign) > budget:
        assign, boxes = _blocks(m, chains, assign, boxes, budget)
        note = (note + ", then " if note else "") + "collapsed into blocks of consecutive nodes"
    n_el = _count(m, assign)
    return assign, boxes, f"{m.n_nodes:,} nodes shown as {n_el} ({note})"


def _make_boxes(m: _Model, assign: dict[str, str], collapsed: set[str]) -> dict[str, _Box]:
    boxes: dict[str, _Box] = {}
    for it in m.items.values():
        el = assign[it.key]
        if el == it.key:
            continue
        box = boxes.get(el)
        if box is None:
            c = m.clusters[el[4:]]
            box = boxes[el] = _Box(el, c.kind, c.title, c.parent)
        box.items.append(it)
    return boxes


def _blocks(
    m: _Model,
    chains: dict[str | None, list[str]],
    assign: dict[str, str],
    boxes: dict[str, _Box],
    budget: int,
) -> tuple[dict[str, str], dict[str, _Box]]:
    """Group the remaining elements, in topological order, into blocks (per part cluster)."""
    first: dict[str, int] = {}
    part_of: dict[str, str | None] = {}
    kind_of: dict[str, str] = {}
    for it in m.items.values():
        if it.kind == "literal":
            continue
        el = assign[it.key]
        if el not in first or it.order < first[el]:
            first[el] = it.order
        chain = chains[it.cluster]
        part_of[el] = next((c for c in chain if m.clusters[c].kind == "part"), None)
        kind_of[el] = it.kind if el == it.key else "box"
    ends = [
        el for el, k in kind_of.items() if k in ("input", "param", "seed", "output", "residual_in")
    ]
    keep = set(ends) if len(ends) <= budget // 4 else set()
    movable = sorted((el for el in first if el not in keep), key=lambda e: first[e])
    target = max(budget - len(keep), 1) // 2 or 1
    size = max(1, math.ceil(len(movable) / target))
    block_of: dict[str, str] = {}
    new_boxes: dict[str, _Box] = {}
    by_part: dict[str | None, list[str]] = {}
    for el in movable:
        by_part.setdefault(part_of[el], []).append(el)
    n = 0
    for part, els in by_part.items():
        for start in range(0, len(els), size):
            chunk = els[start : start + size]
            key = f"box:block{n}"
            n += 1
            new_boxes[key] = _Box(key, "block", f"block {n}", part)
            for el in chunk:
                block_of[el] = key
    new_assign = {}
    for k, it in m.items.items():
        el = assign[k]
        if it.kind == "literal" and it.owner is not None:
            el = assign[it.owner]
        new_assign[k] = block_of.get(el, el)
    for it in m.items.values():
        el = new_assign[it.key]
        if el in new_boxes:
            new_boxes[el].items.append(it)
    kept = {k: v for k, v in boxes.items() if k not in block_of}
    kept.update(new_boxes)
    return new_assign, kept


# ---------------------------------------------------------------------------------------------
# emitting DOT


def _item_attrs(it: _Item) -> dict[str, str]:
    a = dict(STYLE[it.kind])
    if it.role == "grad" and it.kind in ("op", "const"):
        a.update(fillcolor=_GRAD_FILL, color=_GRAD_LINE)
    elif it.role == "tangent" and it.kind == "op":
        a.update(fillcolor=_TANGENT_FILL, color="#6a4fb3")
    if it.kind == "output" and it.role == "grad":
        a.update(color=_GRAD_LINE, penwidth="1.5")
    if it.recomputed:
        a.update(style=a["style"] + ",dashed", color=_GRAD_LINE)
    if it.saved:
        a.update(color=_RESIDUAL, peripheries="2", penwidth="1.5", fontcolor=_RESIDUAL)
    if it.tooltip:
        a["tooltip"] = _esc(it.tooltip)
    return a


def _box_attrs(box: _Box) -> tuple[str, dict[str, str]]:
    counts: Counter = Counter(it.op for it in box.items if it.op)
    n = sum(counts.values())
    grads = sum(1 for it in box.items if it.kind == "op" and it.role == "grad")
    ops = sum(1 for it in box.items if it.kind == "op")
    saved = sum(it.saved for it in box.items)
    lines = [box.title, f"{n} nodes: {_summary(counts)}"]
    a = dict(STYLE[box.kind])
    if ops and grads == ops:
        a.update(fillcolor=_GRAD_FILL, color=_GRAD_LINE)
    elif grads:
        a.update(fillcolor=f"{a['fillcolor']}:{_GRAD_FILL}", gradientangle="90")
        lines.append(f"forward {ops - grads} · backward {grads}")
    if saved:
        lines.append(f"saves {_fmt_bytes(saved)}")
        a.update(color=_RESIDUAL, peripheries="2")
    a["tooltip"] = _esc(
        f"{box.title}: {n} nodes: " + ", ".join(f"{op} ×{k}" for op, k in counts.most_common())
    )
    return _lines(*lines), a


def _edge_list(m: _Model, assign: dict[str, str]) -> list[tuple[str, str, str, dict[str, str]]]:
    """Edges between drawn elements, merged (self-loops of collapsed boxes dropped)."""
    merged: dict[tuple[str, str, str], list[_Edge]] = {}
    for e in m.edges:
        a, b = assign[e.src], assign[e.dst]
        if a == b and (e.src != e.dst or a != e.src):  # kept: an unchanged carry's own loop
            continue
        merged.setdefault((a, b, e.kind), []).append(e)
    out = []
    for (a, b, kind), es in merged.items():
        attrs: dict[str, str] = {}
        if kind == "grad_of":
            # drawn from the value to its gradient with the arrow at the value: the edge then
            # agrees with the data flow, so it barely moves the layout (constraint=false or
            # weight=0 would, with clusters, crash dot 2.43: "trouble in init_rank")
            a, b = b, a
            attrs.update(
                style="dashed",
                color=_GRAD_LINE,
                fontcolor=_GRAD_LINE,
                dir="back",
                arrowtail="onormal",
            )
            label = "∂" if len(es) == 1 else f"∂ ×{len(es)}"
        elif kind == "carry":
            # a back edge: kept out of the ranking, so the loop body still reads top-down (dot
            # versions that fail to rank it inside clusters are retried with newrank, see pipe)
            attrs.update(
                style="dashed", color=_LOOP, fontcolor=_LOOP, constraint="false", penwidth="1.3"
            )
            label = es[0].label if len(es) == 1 else f"carry ×{len(es)}"
        elif kind == "select":
            attrs.update(style="dotted", color=_LOOP, arrowhead="odot")
            label = ""
        elif kind == "residual":
            attrs.update(color=_RESIDUAL, fontcolor=_RESIDUAL, penwidth="2")
            if len(es) == 1:
                label = es[0].label
            else:
                by_res: dict[str, int] = {}
                for e in es:
                    by_res[e.res_key] = max(by_res.get(e.res_key, 0), e.saved)
                total = sum(by_res.values())
                label = f"×{len(es)}" + (f"\nsaved {_fmt_bytes(total)}" if total else "")
        else:
            labels = {e.label for e in es}
            if not es[0].label and len(es) == 1:
                label = ""
                attrs.update(color="#aaaaaa", arrowsize="0.4")
            elif len(es) == 1:
                label = es[0].label
            elif len(labels) == 1:
                label = f"{es[0].label} ×{len(es)}"
            else:
                label = f"{len(es)} values"
            if kind == "invariant":  # loop-invariant operands entering a loop
                attrs.update(color=_INVARIANT, fontcolor=_INVARIANT, style="bold")
        if label:
            attrs["label"] = "\\n".join(_esc(x) for x in label.split("\n"))
        out.append((a, b, kind, attrs))
    return out


def _emit(
    m: _Model,
    assign: dict[str, str],
    boxes: dict[str, _Box],
    *,
    title: str,
    rankdir: str,
    legend: bool,
) -> str:
    g = graphviz.Digraph(
        name="graphc",
        graph_attr={
            "rankdir": rankdir,
            "fontname": "Helvetica",
            "fontsize": "12",
            "labelloc": "t",
            "label": graphviz.nohtml(title),
            "nodesep": "0.25",
            "ranksep": "0.35",
            "compound": "true",
        },
        node_attr={
            "fontname": "Helvetica",
            "fontsize": "10",
            "height": "0.3",
            "margin": "0.08,0.03",
        },
        edge_attr={
            "fontname": "Helvetica",
            "fontsize": "8",
            "fontcolor": "#555555",
            "color": "#555555",
            "arrowsize": "0.6",
        },
    )
    # what goes where: elements per cluster, clusters per parent (collapsed ones are gone)
    box_clusters = {k[4:] for k in boxes if k[4:] in m.clusters}
    hidden: set[str] = set()
    for key in m.clusters:
        c: str | None = key
        while c is not None:
            if c in box_clusters:
                hidden.add(key)
                break
            c = m.clusters[c].parent
    blocks = any(b.kind == "block" for b in boxes.values())
    shown = {
        k for k in m.clusters if k not in hidden and (not blocks or m.clusters[k].kind == "part")
    }

    def place(c: str | None) -> str | None:
        while c is not None and c not in shown:
            c = m.clusters[c].parent
        return c

    # DOT ids: graphviz reads "a:b" in an edge as node a, port b, so keep to [A-Za-z0-9_]
    ids: dict[str, str] = {}
    used: set[str] = set()

    def dot_id(el: str) -> str:
        if el not in ids:
            base = _ID_UNSAFE.sub("_", el)
            i, k = base, 1
            while i in used:
                i, k = f"{base}_{k}", k + 1
            used.add(i)
            ids[el] = i
        return ids[el]

    content: dict[str | None, list[tuple[str, str, dict[str, str]]]] = {}
    for it in m.items.values():
        el = assign[it.key]
        if el in ids:
            continue
        if el == it.key:
            content.setdefault(place(it.cluster), []).append(
                (dot_id(el), it.label, _item_attrs(it))
            )
        else:
            box = boxes[el]
            label, attrs = _box_attrs(box)
            content.setdefault(place(box.cluster), []).append((dot_id(el), label, attrs))
    children: dict[str | None, list[str]] = {}
    for k in m.clusters:
        if k in shown:
            children.setdefault(place(m.clusters[k].parent), []).append(k)
    nonempty: set[str] = set()
    for k in sorted(shown, key=lambda k: -len(_chains_of(m, k))):
        if content.get(k) or any(ch in nonempty for ch in children.get(k, [])):
            nonempty.add(k)

    def fill(sg: graphviz.Digraph, c: str | None) -> None:
        for key, label, attrs in content.get(c, []):
            sg.node(key, graphviz.nohtml(label), **attrs)
        for ch in children.get(c, []):
            if ch not in nonempty:
                continue
            cl = m.clusters[ch]
            with sg.subgraph(name=cl.name) as sub:
                sub.attr(
                    label=graphviz.nohtml(_esc(cl.label)), fontsize="10", **_CLUSTER_STYLE[cl.kind]
                )
                fill(sub, ch)

    fill(g, None)
    for a, b, _kind, attrs in _edge_list(m, assign):
        g.edge(ids[a], ids[b], **attrs)
    if legend:
        _legend(g)
    return g.source


def _chains_of(m: _Model, key: str) -> list[str]:
    chain, c = [], key
    while c is not None:
        chain.append(c)
        c = m.clusters[c].parent
    return chain


def _legend(g: graphviz.Digraph) -> None:
    """One node holding a table of the styles (an HTML-like label)."""
    cells = [
        ("input", STYLE["input"]["fillcolor"], "#000000"),
        ("parameter", STYLE["param"]["fillcolor"], "#000000"),
        ("cotangent seed", _GRAD_FILL, _GRAD_LINE),
        ("constant", STYLE["const"]["fillcolor"], "#000000"),
        ("op", _FWD_FILL, "#000000"),
        ("gradient op", _GRAD_FILL, _GRAD_LINE),
        ("recomputed (dashed)", _FWD_FILL, _GRAD_LINE),
        ("saved residual", "#ffffff", _RESIDUAL),
        ("fused kernel", _CLUSTER_STYLE["kernel"]["fillcolor"], "#b8860b"),
        ("loop / branch", _CLUSTER_STYLE["control"]["fillcolor"], _LOOP),
        ("carry (dashed: back)", STYLE["carry"]["fillcolor"], _LOOP),
        ("output", STYLE["output"]["fillcolor"], "#000000"),
    ]
    row = "".join(
        f'<td bgcolor="{bg}" color="{fg}"><font color="{fg}">{text}</font></td>'
        for text, bg, fg in cells
    )
    g.node(
        "legend",
        f'<<table border="0" cellborder="1" cellspacing="3" cellpadding="3">'
        f'<tr><td border="0"><font color="#777777">legend</font></td>{row}</tr>'
        f"</table>>",
        shape="plaintext",
        fontsize="8",
    )


# ---------------------------------------------------------------------------------------------
# public API


def to_dot(
    obj: Any,
    *,
    budget: int | None = DEFAULT_BUDGET,
    params: Iterable[int] | None = None,
    input_names: Sequence[str] | None = None,
    title: str | None = None,
    kernels: bool | None = None,
    joint: bool | None = None,
    legend: bool = False,
    rankdir: str = "TB",
) -> str:
    """DOT text for a Graph or a `passes.partition.Partition`.

    budget:      drawn nodes above which the picture collapses (None: never)
    params:      input positions drawn as parameters (default: `graph.info["wrt"]`, if any)
    input_names: names for the inputs (e.g. the function's parameter names)
    kernels:     joint pictures group the ops `fuse` would fuse into kernel clusters (default:
                 up to KERNEL_GROUPING_LIMIT nodes; True: always; False: never)
    joint:       draw as a joint picture (default: when the graph comes from `vjp`)
    legend:      add a small legend of the node styles

    Example:
        >>> g = graphc.trace(seeds.mlp, *seeds.EXAMPLE_ARGS["mlp"])
        >>> dot = to_dot(g)
        >>> "matmul" in dot and "f32[8,16]" in dot
        True
    """
    b = _Builder()
    if isinstance(obj, Partition):
        notes = _partition_model(obj, b, params=params, input_names=input_names, kernels=kernels)
        name = "partition"
        what = "forward + backward"
    elif isinstance(obj, Graph):
        is_joint = ("grad_of" in obj.info) if joint is None else joint
        if is_joint:
            notes = _joint_model(obj, b, params=params, input_names=input_names, kernels=kernels)
            what = "joint (forward + backward)"
        else:
            notes = _plain_model(obj, b, params=params, input_names=input_names)
            what = ""
        name = obj.name or "graph"
    else:
        raise GraphcError(f"to_dot draws a Graph or a Partition, not {type(obj).__name__}")
    assign, boxes, note = _plan(b.m, budget)
    head = title if title is not None else " · ".join(p for p in (name, what) if p)
    text = _lines(head, *notes, note)
    return _emit(b.m, assign, boxes, title=text, rankdir=rankdir, legend=legend)


# the stages pictures draw are built by graphc.stages; these are its functions under the names
# viz has always offered
grad_graph = stages.grad
kernel_groups = stages.kernels
apply_stage = stages.build


_NO_DOT = (
    "rendering a .{fmt} picture needs Graphviz's `dot` program, which is not on PATH: "
    "install Graphviz (apt-get install graphviz, or brew install graphviz on macOS), or "
    "write a .dot file instead"
)


def pipe(dot: str, fmt: str) -> bytes:
    """Run Graphviz's `dot` on DOT text; the picture's bytes in format `fmt` (svg, png, pdf).

    Raises GraphvizNotFoundError (a GraphcError) when `dot` is not installed.

    Example:
        >>> svg = pipe(graphc.trace(np.tanh, graphc.spec("f32[3]")).to_dot(), "svg")
    """
    try:
        return _run_dot(dot, fmt)
    except graphviz.CalledProcessError as e:
        err = (e.stderr or b"").decode(errors="replace")
        if "trouble in init_rank" in err:
            # a ranking bug of some dot versions with clusters; the newer ranker avoids it
            try:
                return _run_dot(dot.replace("graph [", "graph [newrank=true ", 1), fmt)
            except graphviz.CalledProcessError as e2:
                err = (e2.stderr or b"").decode(errors="replace")
        lines = (
            [ln for ln in err.strip().splitlines() if ln.startswith("Error")]
            or err.strip().splitlines()
            or [str(e)]
        )
        raise GraphcError("Graphviz's dot failed: " + lines[0]) from None


def _run_dot(dot: str, fmt: str) -> bytes:
    try:
        return graphviz.Source(dot).pipe(format=fmt, engine="dot", quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFoundError(_NO_DOT.format(fmt=fmt)) from None


def render(
    obj: Any,
    path: str | os.PathLike,
    *args: Any,
    stage: str | None = "traced",
    budget: int | None = DEFAULT_BUDGET,
    params: Iterable[int] | None = None,
    input_names: Sequence[str] | None = None,
    title: str | None = None,
    kernels: bool | None = None,
    legend: bool = False,
    rankdir: str = "TB",
) -> str:
    """Draw `obj` (a function traced on `args`, a Graph, a Partition, ...) at `stage` (see
    `graphc.stages.build`) into `path`; the format comes from the extension (.svg .png .pdf .dot).
    Returns the path. Writing .dot needs no Graphviz; the others need its `dot` program.

    Example:
        >>> render(seeds.mlp_loss, "grad.svg", *seeds.EXAMPLE_ARGS["mlp_loss"], stage="grad")
        'grad.svg'
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise GraphcError(
            f"cannot tell the picture format from {path!r}: use a .svg, .png, "
            ".pdf or .dot file name"
        )
    target = stages.build(obj, stage, *args)
    dot = to_dot(
        target,
        budget=budget,
        params=params,
        input_names=input_names,
        title=title,
        kernels=kernels,
        legend=legend,
        rankdir=rankdir,
    )
    if fmt == "dot":
        with open(path, "w") as f:
            f.write(dot)
        return path
    data = pipe(dot, fmt)
    with open(path, "wb") as f:
        f.write(data)
    return path
