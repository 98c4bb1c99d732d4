"""The pass manager: registration, order checks, running pipelines with their records, and
the local-rewrite driver. The passes themselves import it; `passes` (the package) imports them
and names the pipelines.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphc.env import debug_level
from graphc.ir import Graph, GraphcError, Node, nested_graphs, node_signatures
from graphc.ops import REGISTRY


@dataclass
class PassReport:
    """What a pass says about its run, besides the graph it returns.

    Example:
        >>> graph, report = PASSES["fuse"].fn(g)
        >>> report.notes[:1]
        ['why not fused: matmul (model.py:3) -> tanh (model.py:3): matmul is a contraction ...']
    """

    notes: list[str] = field(default_factory=list)  # e.g. why-not-fused reasons
    converged: bool = True  # False when a rewrite stopped at its round limit
    details: Any = None  # a pass's own record (fusion's FusionReport)


PassFn = Callable[[Graph], "tuple[Graph, PassReport]"]

PROPERTIES: dict[str, str] = {
    "unfused": "a graph without fused kernels",
    "fused": "a graph whose elementwise work is grouped into fused kernels",
}
"""The properties passes require and produce, with what each means."""


@dataclass
class Pass:
    name: str
    fn: PassFn
    doc: str
    requires: frozenset[str] = frozenset()  # properties the input graph must have
    produces: frozenset[str] = frozenset()  # properties the result has
    invalidates: frozenset[str] = frozenset()  # properties the result no longer has


PASSES: dict[str, Pass] = {}

# the optimization pipeline: algebra first, then sharing, then cleanup
DEFAULT_PIPELINE: list[str] = ["fold", "simplify", "loops", "cse", "dce"]
# what the compiler runs: the optimization pipeline, then the bodies of single calls spliced in
# (after cse, which would merge a checkpoint's recomputation back), then fusion into kernels
COMPILE_PIPELINE: list[str] = DEFAULT_PIPELINE + ["inline", "fuse", "dce"]


def register(
    name: str,
    *,
    requires: Iterable[str] = (),
    produces: Iterable[str] = (),
    invalidates: Iterable[str] = (),
) -> Callable[[PassFn], PassFn]:
    """Register a pass under `name`; its docstring's first line is its description.

    Example:
        >>> @register("fuse", requires=("unfused",), produces=("fused",),
        ...           invalidates=("unfused",))
        ... def fuse_pass(graph): ...
    """
    props = {"requires": frozenset(requires), "produces": frozenset(produces)}
    props["invalidates"] = frozenset(invalidates)
    for kind, names in props.items():
        unknown = sorted(names - set(PROPERTIES))
        if unknown:
            raise GraphcError(f"pass {name!r} {kind} an unknown property {unknown[0]!r}")

    def deco(fn: PassFn) -> PassFn:
        if name in PASSES:
            raise GraphcError(f"pass {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        if not doc:
            raise GraphcError(f"pass {name!r} needs a one-line docstring")
        PASSES[name] = Pass(name, fn, doc[0], **props)
        return fn

    return deco


def graph_properties(graph: Graph) -> set[str]:
    """The properties `graph` has now (what the order check starts from), its program
    regions (loop bodies, branches) included: fused kernels in any of them make it fused."""
    for g in program_graphs(graph):
        for n in g.equations:
            if n.op == "fused":
                return {"fused"}
    return {"unfused"}


# ---------------------------------------------------------------------------------------------
# program regions: the graphs loops and branches hold, optimized like graphs of their own


def program_regions(node: Node) -> list[Graph]:
    """The graphs `node` holds that are programs of their own (its op entry says so with
    `regions`): a loop's body and condition, a branch. A fused kernel's body is not one.

    Example:
        >>> [len(b.equations) for b in program_regions(scan_node)]
        [5]
    """
    d = REGISTRY.get(node.op)
    return nested_graphs(node) if d is not None and d.regions else []


def program_graphs(graph: Graph) -> list[Graph]:
    """`graph` and every program region inside it, however deeply nested (a worklist over the
    nesting, not a recursion), each once, outermost first."""
    out: list[Graph] = []
    seen: set[int] = set()
    work = [graph]
    while work:
        g = work.pop()
        if id(g) in seen:
            continue
        seen.add(id(g))
        out.append(g)
        for n in g.equations:
            work.extend(b for b in program_regions(n) if id(b) not in seen)
    return out


def _same_function(a: Graph, b: Graph) -> bool:
    """Whether pass result `b` is made of the very nodes of `a` (the pass changed nothing)."""
    if len(a.inputs) != len(b.inputs) or len(a.outputs) != len(b.outputs):
        return False
    return all(x is y for x, y in zip(a.inputs + a.outputs, b.inputs + b.outputs, strict=True))


def _where(n: Node) -> str:
    return f"in a {n.op} region" + (f" ({n.meta.loc})" if n.meta.loc else "")


def on_regions(graph: Graph, fn: PassFn) -> tuple[Graph, PassReport]:
    """Run pass function `fn` on `graph` and on every program region inside it (loop bodies,
    conditions, branches; regions inside those too), so a body is optimized like a graph of its
    own: folded, simplified, deduplicated, pruned and fused into kernels. Each graph is passed
    before the regions its result holds (dead-code elimination of a loop first drops the
    results nobody reads, then the body shrinks); nodes holding a changed region are then
    rebuilt around it, innermost first. The walk over the nesting is a worklist, and each
    graph is passed once, so the work is the pass's own on each graph. The report is the top
    graph's, with the regions' notes added (prefixed with where they are).

    Example:
        >>> g2, report = on_regions(g, PASSES["fuse"].fn)   # the scan's body holds kernels now
    """
    report: PassReport | None = None
    passed: dict[int, Graph] = {}  # id(graph) -> fn's result on it
    # graphs in the order they were passed, each before its regions (the list keeps them
    # alive, so their ids stay theirs)
    order: list[Graph] = []
    holders: set[int] = set()  # ids of the graphs whose result holds regions
    work: list[tuple[Graph, str]] = [(graph, "")]
    while work:
        g, where = work.pop()
        if id(g) in passed:
            continue
        new, rep = fn(g)
        if g is not graph and _same_function(g, new):
            new = g
        passed[id(g)] = new
        order.append(g)
        if report is None:
            report = rep
        else:
            report.notes += [f"{where}: {note}" for note in rep.notes]
            report.converged = report.converged and rep.converged
        for n in new.equations:
            for b in program_regions(n):
                holders.add(id(g))
                if id(b) not in passed:
                    work.append((b, _where(n)))
    assert report is not None
    final: dict[int, Graph] = {}  # id(graph) -> its pass result holding its regions' results

    def rebuilt(n: Node, orig: Node) -> Node | None:
        bodies = program_regions(orig)
        if not bodies or all(final.get(id(b), b) is b for b in bodies):
            return None
        attrs = dict(n.attrs)
        for k, v in attrs.items():
            if isinstance(v, Graph):
                attrs[k] = final.get(id(v), v)
            elif isinstance(v, tuple) and v and isinstance(v[0], Graph):
                attrs[k] = tuple(final.get(id(b), b) if isinstance(b, Graph) else b for b in v)
        return n.with_inputs(n.inputs, attrs)

    for g in reversed(order):
        new = passed[id(g)]
        if id(g) in holders:
            rebuilt_graph = new.map(rebuilt, nested=False)
            if not _same_function(new, rebuilt_graph):
                new = rebuilt_graph  # derived: the pass's annotations are kept
        final[id(g)] = new
    return final[id(graph)], report


def check_order(graph: Graph, names: Sequence[str]) -> None:
    """Raise GraphcError when a pass in `names` would run on a graph lacking a property it
    requires (e.g. `fuse` twice), naming the pass, the property and what took it away."""
    have = graph_properties(graph)
    lost: dict[str, str] = {}  # property -> the pass that invalidated it
    for step, name in enumerate(names, 1):
        if name not in PASSES:
            raise GraphcError(f"unknown pass {name!r} (registered: {', '.join(PASSES)})")
        p = PASSES[name]
        for prop in sorted(p.requires - have):
            why = (
                f"pass {lost[prop]!r} before it does not keep it"
                if prop in lost
                else "the input graph is not one"
            )
            raise GraphcError(
                f"pass {name!r} (step {step} of {list(names)}) needs {PROPERTIES[prop]} "
                f"({prop!r}), but {why}"
            )
        for prop in p.invalidates:
            lost[prop] = name
        have = (have - p.invalidates) | p.produces


@dataclass
class PassRecord:
    """What one pass did to a graph."""

    name: str
    nodes_before: int
    nodes_after: int
    seconds: float
    removed: Counter = field(default_factory=Counter)  # op -> count of nodes that disappeared
    added: Counter = field(default_factory=Counter)  # op -> count of new nodes
    rewritten: Counter = field(default_factory=Counter)  # op -> nodes replaced by an altered one
    notes: list[str] = field(default_factory=list)  # the pass report's notes
    details: Any = None  # the pass report's own record (fusion's FusionReport)
    converged: bool = True

    def summary(self) -> str:
        def fmt(c: Counter) -> str:
            return ", ".join(f"{op}×{k}" for op, k in sorted(c.items())) or "-"

        return (
            f"{self.name:<10} {self.nodes_before:>6} -> {self.nodes_after:<6} nodes "
            f"{self.seconds * 1e3:8.2f} ms   removed: {fmt(self.removed)}   "
            f"added: {fmt(self.added)}   rewritten: {fmt(self.rewritten)}"
        )


def diff(before: Graph, after: Graph) -> tuple[Counter, Counter, Counter]:
    """Nodes (by op) only before (removed), only after (added), and, of those, the ones where a
    node of an op was replaced by a different node of the same op (rewritten: new operands or
    attributes), compared structurally."""
    sb, sa = node_signatures(before), node_signatures(after)
    cb = Counter((n.op, sb[id(n)]) for n in before.equations)
    ca = Counter((n.op, sa[id(n)]) for n in after.equations)
    gone, new = Counter(), Counter()
    for (op, _), k in (cb - ca).items():
        gone[op] += k
    for (op, _), k in (ca - cb).items():
        new[op] += k
    rewritten = Counter({op: min(gone[op], new[op]) for op in gone if new.get(op)})
    return gone - rewritten, new - rewritten, rewritten


def _verify_default() -> bool:
    return os.environ.get("GRAPHC_VERIFY", "0") not in ("", "0") or debug_level() >= 1


def run_pipeline(
    graph: Graph,
    names: Sequence[str] | None = None,
    *,
    verify: bool | None = None,
    debug: int | None = None,
    diffs: bool = False,
) -> Graph:
    """Run the named passes (default: DEFAULT_PIPELINE) in order, after checking that each
    one's required properties hold. The result's `info["pipeline"]` holds one PassRecord per
    pass (with structural diffs when `diffs` or when debugging); the input graph is left as
    it was.

    Example:
        >>> run_pipeline(g, ["fuse", "fuse"])
        Traceback (most recent call last):
        graphc.ir.GraphcError: pass 'fuse' (step 2 of ['fuse', 'fuse']) needs a graph without
        fused kernels ('unfused'), but pass 'fuse' before it does not keep it
    """
    from graphc.verify import verify as verify_graph

    names = list(DEFAULT_PIPELINE if names is None else names)
    check_order(graph, names)
    debug = debug_level() if debug is None else debug
    verify = _verify_default() if verify is None else verify
    records: list[PassRecord] = []
    info = dict(graph.info)
    original = graph
    for name in names:
        before = graph
        t0 = time.perf_counter()
        graph, report = on_regions(graph, PASSES[name].fn)
        dt = time.perf_counter() - t0
        if verify:
            try:
                verify_graph(graph)
            except GraphcError as e:
                raise GraphcError(f"the graph is invalid after pass {name!r}: {e}") from e
        removed, added, rewritten = (
            diff(before, graph) if debug or diffs else (Counter(), Counter(), Counter())
        )
        rec = PassRecord(
            name,
            len(before.equations),
            len(graph.equations),
            dt,
            removed,
            added,
            rewritten,
            list(report.notes),
            report.details,
            report.converged,
        )
        records.append(rec)
        if debug:
            print(f"[graphc] {rec.summary()}", file=sys.stderr)
            for note in rec.notes:
                print(f"[graphc]     {note}", file=sys.stderr)
            if debug >= 2:
                print(graph.pretty(), file=sys.stderr)
    if graph is original:  # no pass ran: the record goes on a copy, not the input
        graph = graph.derive()
    # keep annotations (autodiff info, ...) that individual passes did not carry over
    for k, v in info.items():
        graph.info.setdefault(k, v)
    graph.info["pipeline"] = records
    return graph


# ---------------------------------------------------------------------------------------------
# rewriting


class RewriteNotConverged(RuntimeWarning):
    """A rewrite stopped at its round limit while its rule was still changing the graph."""


def rewrite(
    graph: Graph,
    rule: Callable[[Node], Node | None],
    *,
    max_rounds: int = 8,
    report: PassReport | None = None,
) -> Graph:
    """Apply a local rewrite rule bottom-up until nothing changes (or `max_rounds`).

    `rule(node)` sees a node whose inputs are already rewritten and returns a replacement node
    of the same type, or None to keep it. The rule must depend only on the node and what it
    reads (not on the node's readers or on earlier calls): a node it kept is not offered to it
    again while its inputs stay the same. Each round is one `Graph.map` (fused bodies
    included). When the last round still changed something, the rewrite did not converge:
    that goes into `report` (notes, `converged=False`), or is warned about without one.

    Example:
        >>> report = PassReport()
        >>> g2 = rewrite(g, lambda n: n.inputs[0] if n.op == "stop_gradient" else None,
        ...              report=report)
    """
    # nodes the rule kept, by id (the value holds the node, so its id is not reused): a later
    # round would ask about the same node again and get the same answer
    kept: dict[int, Node] = {}
    changed = False

    def step(cur: Node, orig: Node) -> Node | None:
        nonlocal changed
        if cur.op == "input" or kept.get(id(cur)) is cur:
            return None
        rep = rule(cur)
        if rep is not None and rep is not cur:
            if rep.aval != orig.aval:
                raise GraphcError(
                    f"internal: rewrite of {orig.op} changed its type from {orig.aval} "
                    f"to {rep.aval}"
                )
            changed = True
            return rep
        kept[id(cur)] = cur
        if cur is not orig:
            changed = True
        return None

    for _ in range(max_rounds):
        changed = False
        graph = graph.map(step)
        if not changed:
            return graph
    note = (
        f"rewrite did not converge: the rule still changed the graph in round {max_rounds} "
        f"(the round limit); the result is correct but may not be fully simplified"
    )
    if report is None:
        warnings.warn(note, RewriteNotConverged, stacklevel=2)
    else:
        report.converged = False
        report.notes.append(note)
    return graph
