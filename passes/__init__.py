"""Graph -> Graph transformations, registered by name, and the pass manager.

A pass is a function `Graph -> Graph` with a one-line docstring, registered with `@register`.
`run_pipeline(graph, names)` runs passes in order, verifies the graph after each one when asked
(always in tests: GRAPHC_VERIFY=1), and records for each pass its node counts, time and a diff
of what it removed and added. `GRAPHC_DEBUG=1` prints that record as the pipeline runs;
`GRAPHC_DEBUG=2` also prints the IR after each pass.

The default optimization pipeline is `DEFAULT_PIPELINE`, defined here and nowhere else.

Example:
    >>> from passes import run_pipeline
    >>> g2 = run_pipeline(g)           # the default pipeline
    >>> g2.info["pipeline"][0].name
    'fold'
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from graphc.env import debug_level
from graphc.ir import Graph, GraphcError, Node, node_signatures

PassFn = Callable[[Graph], Graph]


@dataclass
class Pass:
    name: str
    fn: PassFn
    doc: str


PASSES: dict[str, Pass] = {}


def register(name: str) -> Callable[[PassFn], PassFn]:
    """Register a pass under `name`; its docstring's first line is its description."""

    def deco(fn: PassFn) -> PassFn:
        if name in PASSES:
            raise GraphcError(f"pass {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        if not doc:
            raise GraphcError(f"pass {name!r} needs a one-line docstring")
        PASSES[name] = Pass(name, fn, doc[0])
        return fn

    return deco


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
    notes: list[str] = field(default_factory=list)  # e.g. why-not-fused reasons

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
    return os.environ.get("GRAPHC_VERIFY", "0") not in ("", "0")


def run_pipeline(
    graph: Graph,
    names: Sequence[str] | None = None,
    *,
    verify: bool | None = None,
    debug: int | None = None,
    diffs: bool = False,
) -> Graph:
    """Run the named passes (default: DEFAULT_PIPELINE) in order. The result's
    `info["pipeline"]` holds one PassRecord per pass (with structural diffs when `diffs` or
    when debugging)."""
    from graphc.verify import verify as verify_graph

    names = list(DEFAULT_PIPELINE if names is None else names)
    verify = _verify_default() if verify is None else verify
    debug = debug_level() if debug is None else debug
    records: list[PassRecord] = []
    info = dict(graph.info)
    for name in names:
        if name not in PASSES:
            raise GraphcError(f"unknown pass {name!r} (registered: {', '.join(PASSES)})")
        before = graph
        before.info.pop("notes", None)  # notes belong to the pass that wrote them
        t0 = time.perf_counter()
        graph = PASSES[name].fn(graph)
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
            list(graph.info.pop("notes", [])),
        )
        records.append(rec)
        if debug:
            print(f"[graphc] {rec.summary()}", file=sys.stderr)
            for note in rec.notes:
                print(f"[graphc]     {note}", file=sys.stderr)
            if debug >= 2:
                print(graph.pretty(), file=sys.stderr)
    # keep annotations (autodiff info, ...) that individual passes did not carry over
    for k, v in info.items():
        graph.info.setdefault(k, v)
    graph.info["pipeline"] = records
    return graph


# ---------------------------------------------------------------------------------------------
# rewriting


def rewrite(graph: Graph, rule: Callable[[Node], Node | None], *, max_rounds: int = 8) -> Graph:
    """Apply a local rewrite rule bottom-up until nothing changes (or `max_rounds`).

    `rule(node)` sees a node whose inputs are already rewritten and returns a replacement node
    of the same type, or None to keep it. The rule must depend only on the node and what it
    reads (not on the node's readers or on earlier calls): a node it kept is not offered to it
    again while its inputs stay the same. The walk is iterative (topological order).
    """
    # nodes the rule kept, by id (the value holds the node, so its id is not reused): a later
    # round would ask about the same node again and get the same answer
    kept: dict[int, Node] = {}
    for _ in range(max_rounds):
        changed = False
        new: dict[int, Node] = {}
        get = new.get
        for n in graph.nodes:
            cur = n
            if n.inputs:
                ins = tuple([get(id(i), i) for i in n.inputs])
                if ins != n.inputs:  # nodes compare by identity
                    cur = Node(n.op, ins, n.attrs, n.aval, n.meta)
            if cur is n and kept.get(id(n)) is n or cur.op == "input":
                rep = None
            else:
                rep = rule(cur)
            if rep is not None and rep is not cur:
                if rep.aval != n.aval:
                    raise GraphcError(
                        f"internal: rewrite of {n.op} changed its type from {n.aval} to {rep.aval}"
                    )
                changed = True
                cur = rep
            else:
                kept[id(cur)] = cur
                if cur is not n:
                    changed = True
            new[id(n)] = cur
        graph = graph.derive(outputs=[new[id(o)] for o in graph.outputs])
        if not changed:
            break
    return graph


# importing the pass modules registers them
from passes import cse, dce, fold, fuse, simplify  # noqa: E402, F401

# the optimization pipeline: algebra first, then sharing, then cleanup
DEFAULT_PIPELINE: list[str] = ["fold", "simplify", "cse", "dce"]
# what the compiler runs: the optimization pipeline, then fusion into kernels
COMPILE_PIPELINE: list[str] = DEFAULT_PIPELINE + ["fuse", "dce"]
