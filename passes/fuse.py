"""Fusion: group elementwise work into kernels that make one pass over memory.

A group shares one *iteration space* (a shape S): its members are elementwise ops with result
shape S, broadcasts into S (free: the kernel reads the smaller operand with broadcast indexing),
and reductions of S-shaped values, all over the same axes. Each group becomes one `fused` node
whose body is a nested graph; with several results (a value and its gradients, a loss and the
per-element gradients) it yields a tuple read with `proj`.

How groups form, in topological order:
- vertical: an op joins the group of each operand it can share a loop with;
- reductions join the group that produces their operand (`sum(y * w)` is one loop). An op
  reading a reduction's result needs the finished value: for a reduction over trailing axes
  (softmax, layer norm, cross-entropy) it joins the same kernel, which then makes one pass per
  row for each stage; otherwise it starts a new loop;
- sibling: groups over the same space that read a common input merge, so the input is read once;
- contractions (matmul, conv) stay outside: BLAS does them, and their elementwise epilogue
  (`relu(x @ W + b)`) becomes one kernel after them.

Legality: merging two groups must not create a cycle in the contracted graph (A -> X -> B with
X outside would need B both before and after X). This is checked exactly on the contracted
graph (each group one node), searching only the window of nodes that can lie between the two
groups.
Every place where two adjacent ops end up in different kernels records why ("Why not fused"),
and `info["kernels"]` says which nodes of the input graph each fused node computes, so a
picture of the input graph can draw the kernels without fusing again.

Example:
    >>> fg = fuse(graph)
    >>> fg.info["fusion"].kernels, fg.info["fusion"].boundaries[0].reason
    >>> [[n.op for n in k] for k in fg.info["kernels"]]   # one list per fused node
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from graphc.ir import Graph, Meta, Node, make_input, map_nodes, users
from graphc.ops import REGISTRY, Fusion, Kind, apply
from passes.manager import PassReport, register

MAX_GROUP = 256  # ops per kernel: bounds the compile time of any one kernel
# merge a node whose operands all lie in one group without a legality search (always legal);
# off, every merge is searched (tests compare the two)
CHAIN_FAST_PATH = True


@dataclass
class Boundary:
    """Two adjacent ops that run in different kernels, and why."""

    producer: Node
    consumer: Node
    reason: str

    def __str__(self) -> str:
        def where(n: Node) -> str:
            return f" ({n.meta.loc})" if n.meta.loc else ""

        return (
            f"why not fused: {self.producer.op}{where(self.producer)} -> "
            f"{self.consumer.op}{where(self.consumer)}: {self.reason}"
        )


@dataclass
class FusionReport:
    kernels: int = 0  # fused nodes created
    boundaries: list[Boundary] = field(default_factory=list)
    # nodes touched by legality searches and order repairs: the work fusion's cycle checks
    # did, which grows about linearly with the graph
    search_steps: int = 0

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.boundaries:
            key = b.reason.split(" (")[0]
            out[key] = out.get(key, 0) + 1
        return out


def _space(n: Node) -> tuple[int, ...] | None:
    """The iteration space an op can share, or None if it cannot be fused."""
    if n.op in ("input", "const"):
        return None
    d = REGISTRY[n.op]
    if d.fusion is Fusion.ELEMENTWISE or d.fusion is Fusion.VIEW:
        return n.shape
    if d.fusion is Fusion.REDUCTION:
        return n.inputs[0].shape
    return None


def _is_reduction(n: Node) -> bool:
    return REGISTRY[n.op].fusion is Fusion.REDUCTION


def _is_row_reduction(n: Node) -> bool:
    """A reduction over trailing axes: its result is one value per row, which later passes over
    the same row can use (softmax, log_softmax, layer norm, cross-entropy)."""
    if not _is_reduction(n):
        return False
    nd, axes = len(n.inputs[0].shape), tuple(n.attrs["axes"])
    return bool(axes) and axes == tuple(range(nd - len(axes), nd))


def row_shape(space: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else s for i, s in enumerate(space))


def _row_aligned(shape: tuple[int, ...], space: tuple[int, ...], axes: tuple[int, ...]) -> bool:
    """Does a value of `shape`, broadcast (aligned from the right) against `space`, hold one
    value per row, i.e. stay constant along the reduced `axes`?"""
    nd = len(space)
    if len(shape) > nd:
        return False
    full = (1,) * (nd - len(shape)) + shape
    return all(full[k] == 1 for k in axes) and all(
        d in (1, s) for d, s in zip(full, space, strict=True)
    )


def _why_unfusable(n: Node) -> str:
    d = REGISTRY[n.op]
    if d.kind is Kind.CONTRACTION:
        return f"{n.op} is a contraction (runs as BLAS or a dedicated kernel)"
    if d.kind is Kind.SHAPE:
        return f"{n.op} moves data (runs as a view or a copy)"
    if d.kind is Kind.REDUCTION:
        return f"{n.op} is not a fusable reduction"
    return f"{n.op} has no loop form"


class _Contracted:
    """The graph with each group contracted to one node: successor and predecessor sets, for
    each node the first position of its members in the original order (`lo`), and a
    topological rank kept valid under contraction.

    The rank is what keeps legality checks local: a path from u to v can only pass through
    nodes ranked between them, so a search for one never leaves that window. Contracting two
    nodes can break the order for the edges the merged node inherits; those are repaired by
    re-ranking only the nodes inside the broken edge's window (Pearce and Kelly's dynamic
    topological order), so merges stay local too. `visits` counts the nodes legality searches
    and repairs touch: the measure of the work they do.
    """

    def __init__(self) -> None:
        self.succ: dict[int, set[int]] = {}
        self.pred: dict[int, set[int]] = {}
        self.lo: dict[int, int] = {}
        self.rank: dict[int, int] = {}
        self.at: list[int | None] = []  # rank -> node (None where a contracted node was)
        self.visits = 0

    def add_node(self, v: int, lo: int) -> None:
        """Add node v; nodes are added in a topological order, `lo` being v's position."""
        self.succ[v], self.pred[v], self.lo[v], self.rank[v] = set(), set(), lo, len(self.at)
        self.at.append(v)

    def add_edge(self, u: int, v: int) -> None:
        self.succ[u].add(v)
        self.pred[v].add(u)

    def contract(self, a: int, b: int) -> None:
        """Merge node b into node a; edges between them disappear. The caller guarantees that
        no other path joins them, so the result is acyclic."""
        rank = self.rank
        broken: list[tuple[int, int]] = []
        for p in self.pred.pop(b):
            self.succ[p].discard(b)
            if p != a:
                self.add_edge(p, a)
                if rank[p] > rank[a]:
                    broken.append((p, a))
        for s in self.succ.pop(b):
            self.pred[s].discard(b)
            if s != a:
                self.add_edge(a, s)
                if rank[s] < rank[a]:
                    broken.append((a, s))
        self.lo[a] = min(self.lo[a], self.lo.pop(b))
        self.at[rank.pop(b)] = None
        for u, v in broken:
            if rank[u] > rank[v]:  # an earlier repair may have fixed this edge already
                self._reorder(u, v)

    def _reorder(self, u: int, v: int) -> None:
        """Restore the topological rank after edge u -> v with rank[u] > rank[v]: the nodes
        reachable from v and ranked below u move after the nodes reaching u and ranked above
        v, reusing the same ranks."""
        rank, lb, ub = self.rank, self.rank[v], self.rank[u]
        fwd = self._collect(v, self.succ, lambda r: r < ub)
        if u in fwd:
            raise AssertionError("internal: fusion produced a cyclic contracted graph")
        back = self._collect(u, self.pred, lambda r: r > lb)
        fwd.sort(key=rank.__getitem__)
        back.sort(key=rank.__getitem__)
        slots = sorted(rank[w] for w in fwd + back)
        for w, r in zip(back + fwd, slots, strict=True):
            rank[w] = r
            self.at[r] = w

    def _collect(self, start: int, edges: dict[int, set[int]], inside) -> list[int]:
        """`start` and every node reachable from it along `edges` whose rank is `inside`."""
        rank = self.rank
        seen = {start}
        stack = [start]
        while stack:
            w = stack.pop()
            self.visits += 1
            for x in edges[w]:
                if x not in seen and inside(rank[x]):
                    seen.add(x)
                    stack.append(x)
        return list(seen)

    def reaches(self, u: int, v: int, frontier: float) -> bool:
        """Is there a path from u to v through some other node? Only nodes ranked between u
        and v (and starting at or before `frontier`) can lie on one. Searched from both ends
        at once, always extending the smaller side, so the answer costs about what the
        cheaper of the two searches would: a fresh group with one producer, next to a group
        whose values feed the rest of the program, is decided at once."""
        rank, lo = self.rank, self.lo
        ru, rv = rank[u], rank[v]
        if ru > rv:
            return False

        def inside(w: int) -> bool:
            return ru < rank[w] < rv and lo[w] <= frontier

        # the side with fewer edges first: when it has no way into the window, the other
        # side's edges need not be looked at
        succ_u, pred_v = self.succ[u], self.pred[v]
        if len(pred_v) <= len(succ_u):
            back = [w for w in pred_v if inside(w)]
            fwd = [w for w in succ_u if inside(w)] if back else []
        else:
            fwd = [w for w in succ_u if inside(w)]
            back = [w for w in pred_v if inside(w)] if fwd else []
        seen_f, seen_b = set(fwd), set(back)
        if seen_f & seen_b:
            return True
        while fwd and back:
            if len(fwd) <= len(back):
                stack, edges, mine, other = fwd, self.succ, seen_f, seen_b
            else:
                stack, edges, mine, other = back, self.pred, seen_b, seen_f
            w = stack.pop()
            self.visits += 1
            for x in edges[w]:
                if x not in mine and inside(x):
                    if x in other:
                        return True
                    mine.add(x)
                    stack.append(x)
        return False

    def related(self, nodes: list[int]) -> dict[int, int]:
        """For each of `nodes`, the set (a bit mask, bit i for nodes[i]) of the others it
        reaches through some other node: all pairwise answers of `reaches` at once, from one
        sweep over the rank window the nodes span instead of one search per pair."""
        rank, succ, at = self.rank, self.succ, self.at
        bit = {v: 1 << i for i, v in enumerate(nodes)}
        lo, hi = min(rank[v] for v in nodes), max(rank[v] for v in nodes)
        desc: dict[int, int] = {}  # the nodes reachable from v, v included
        below: dict[int, int] = {}  # the nodes reachable from v, v excluded
        out: dict[int, int] = {}
        for r in range(hi, lo - 1, -1):
            v = at[r]
            if v is None:
                continue
            self.visits += 1
            d = 0
            for w in succ[v]:
                if rank[w] <= hi:
                    d |= desc[w]
            below[v], desc[v] = d, d | bit.get(v, 0)
            if v in bit:
                through = 0
                for w in succ[v]:
                    if rank[w] <= hi:
                        through |= below[w]
                out[v] = through
        return out

    def topological_order(self) -> list[int]:
        """Nodes in topological order, earliest `lo` first among the ready ones (so kernels
        keep the order of the program); raises if the graph has a cycle."""
        indeg = {v: len(p) for v, p in self.pred.items()}
        ready = [(self.lo[v], v) for v, d in indeg.items() if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, v = heapq.heappop(ready)
            order.append(v)
            for w in self.succ[v]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    heapq.heappush(ready, (self.lo[w], w))
        if len(order) != len(indeg):
            raise AssertionError("internal: fusion produced a cyclic contracted graph")
        return order


_NO_REDUCTIONS: frozenset[int] = frozenset()


class _Groups:
    """Groups of nodes, and the graph contracted from the original by them."""

    def __init__(self, nodes: list[Node]):
        self.pos = {id(n): k for k, n in enumerate(nodes)}
        self.of: dict[int, int] = {}  # id(node) -> group key (a member's id)
        self.members: dict[int, list[Node]] = {}
        self.axes: dict[int, tuple | None] = {}
        self.space: dict[int, tuple] = {}
        self.rows: dict[int, bool] = {}  # every reduction of the group is a row reduction
        self.reds: dict[int, frozenset[int]] = {}  # ids of the group's reductions
        self.C = _Contracted()
        self.merges = 0  # merges so far: dates what is known about the contracted graph
        self.last_merged = -1  # the group the latest merge made

    def key(self, n: Node) -> int:
        return self.of.get(id(n), id(n))

    def place(self, n: Node) -> None:
        """Add n to the contracted graph, with an edge from the group of each operand.

        Nodes are placed in topological order as fusion reaches them, so a node has no
        successors yet when it is placed: a merge with a fresh node moves only its incoming
        edges. Nodes without operands that fusion leaves alone (inputs, constants) are not
        placed at all: nothing leads into them, so no path between two groups runs through
        one. Searches during vertical fusion only look at nodes placed before the one being
        fused (the frontier), so building the graph as fusion goes answers them alike."""
        C = self.C
        v = id(n)
        C.add_node(v, self.pos[v])
        of, succ = self.of, C.succ
        for i in n.inputs:
            u = of.get(id(i), id(i))
            if u in succ:
                C.add_edge(u, v)

    def sole_group(self, n: Node) -> int | None:
        """The group every operand of n belongs to (inputs and constants aside), if there is
        exactly one. Merging fresh n into it can never close a cycle: a path from the group to
        n through another node would enter n through an operand outside the group, and
        nothing placed before n can be reached from n."""
        group = None
        of = self.of
        for i in n.inputs:
            if _is_source(i):
                continue
            g = of.get(id(i))
            if g is None or (group is not None and g != group):
                return None
            group = g
        return group

    def start(self, n: Node, space: tuple) -> None:
        k = id(n)
        self.of[k] = k
        self.members[k] = [n]
        self.space[k] = space
        red = _is_reduction(n)
        self.axes[k] = tuple(n.attrs["axes"]) if red else None
        self.rows[k] = _is_row_reduction(n) if red else True
        # immutable: a merge makes the union a new set, so groups may share the empty one
        self.reds[k] = frozenset((k,)) if red else _NO_REDUCTIONS

    def would_cycle(self, a: int, b: int, frontier: int | None = None) -> bool:
        """Would merging groups a and b close a cycle through some other node?

        Such a path runs from the lower-ranked group to the higher-ranked one through nodes
        ranked between them, so one bounded search decides it. `frontier`: during vertical
        fusion, the position of the node being placed; every group then holds only nodes at
        or before it and later nodes cannot feed them, so the search also skips contracted
        nodes that start after it.
        """
        if self.C.rank[a] > self.C.rank[b]:
            a, b = b, a
        return self.C.reaches(a, b, math.inf if frontier is None else frontier)

    def merge(self, a: int, b: int) -> int:
        """Merge groups a and b (in the contracted graph too); returns the merged group's key,
        the larger group's: relabelling the smaller one's members keeps long chains linear."""
        if len(self.members[a]) < len(self.members[b]):
            a, b = b, a
        self.C.contract(a, b)
        return self._join(a, b)

    def absorb(self, a: int, n: Node) -> int:
        """`merge(a, id(n))` for a fresh one-node group n that was never placed in the
        contracted graph (its operands all in group a): group a stands for it there."""
        return self._join(a, id(n))

    def _join(self, a: int, b: int) -> int:
        """Group b's members and properties join group a's."""
        self.merges, self.last_merged = self.merges + 1, a
        for n in self.members[b]:
            self.of[id(n)] = a
        self.members[a] += self.members.pop(b)
        if self.axes[a] is None:
            self.axes[a] = self.axes[b]
        sa, sb = self.space[a], self.space[b]
        if sb != sa and len(sb) == len(sa) and math.prod(sb) > math.prod(sa):
            self.space[a] = sb  # a row-shaped group joined a full-space one
        self.rows[a] = self.rows[a] and self.rows[b]
        rb = self.reds.pop(b)
        if rb:
            self.reds[a] = self.reds[a] | rb
        del self.axes[b], self.space[b], self.rows[b]
        return a

    def _row_of(self, g: int) -> tuple[int, ...] | None:
        """The row shape of group g, if its reductions are row reductions."""
        if self.axes[g] is None or not self.rows[g]:
            return None
        return row_shape(self.space[g], self.axes[g])

    def why_not(
        self, a: int, b: int, frontier: int | None = None, cycle: _CycleCheck | None = None
    ) -> str | None:
        sa, sb = self.space[a], self.space[b]
        if sa != sb and self._row_of(a) != sb and self._row_of(b) != sa:
            return f"different iteration space ({_fmt(sa)} vs {_fmt(sb)})"
        if sa != sb and len(self.members[a]) + len(self.members[b]) > MAX_GROUP:
            return f"size cap ({MAX_GROUP} ops per kernel)"
        if self.axes[a] is not None and self.axes[b] is not None and self.axes[a] != self.axes[b]:
            return f"different reduction axes ({self.axes[a]} vs {self.axes[b]})"
        if len(self.members[a]) + len(self.members[b]) > MAX_GROUP:
            return f"size cap ({MAX_GROUP} ops per kernel)"
        if self._reads_reduction(a, b) or self._reads_reduction(b, a):
            return "reads a reduction's result (complete only after its loop)"
        if self._misaligned_row_value(a, b):
            return "broadcasts a per-row value across the reduced axes"
        if (cycle or self.would_cycle)(a, b, frontier):
            return "would create a cycle"
        return None

    def _misaligned_row_value(self, a: int, b: int) -> bool:
        """Would a full-space member of the merged group read a value of the group that is
        not one value per row? A row kernel keeps values of other shapes as one scalar per
        row; NumPy broadcasting aligns shapes from the right, so `x + sum(x, axis=1)` on a
        square x reads the row sums along the columns, not the rows."""
        axes = self.axes[a] if self.axes[a] is not None else self.axes[b]
        if axes is None:
            return False
        sa, sb = self.space[a], self.space[b]
        space = sb if len(sa) == len(sb) and math.prod(sb) > math.prod(sa) else sa
        members = self.members[a] + self.members[b]
        ids = {id(m) for m in members}
        for m in members:
            if tuple(m.shape) != space:
                continue
            for i in m.inputs:
                if (
                    id(i) in ids
                    and tuple(i.shape) != space
                    and not _row_aligned(tuple(i.shape), space, axes)
                ):
                    return True
        return False

    def _reads_reduction(self, a: int, b: int) -> bool:
        """Does a member of group b read a reduction computed in group a, other than a row
        reduction (whose per-row result a later pass over the row can use)?"""
        reds = self.reds[a]
        if not reds or (self.rows[a] and self.rows[b]):
            return False
        return any(id(i) in reds for m in self.members[b] for i in m.inputs)


class _Pairs:
    """Cycle checks for the pairs of one sibling set. While no merge has changed the contracted
    graph, every pair among the set's groups is answered from one sweep: a set of k groups
    that cannot merge (one per step of an unrolled loop, all reading the same weight) costs
    one sweep of its window instead of k*k/2 searches. Pairs with the group a merge has just
    made are searched directly (the next ones usually join it too)."""

    def __init__(self, groups: _Groups, keys: list[int]):
        self.G, self.keys = groups, keys
        self.stamp = -1
        self.reach: dict[int, int] = {}
        self.bit: dict[int, int] = {}

    def would_cycle(self, a: int, b: int, frontier: int | None = None) -> bool:
        G = self.G
        if self.stamp != G.merges:
            if G.last_merged in (a, b):
                return G.would_cycle(a, b, frontier)
            live = [k for k in self.keys if k in G.members]
            if len(live) < 3:
                return G.would_cycle(a, b, frontier)
            self.reach, self.stamp = G.C.related(live), G.merges
            self.bit = {k: 1 << i for i, k in enumerate(live)}
        return bool(self.reach[a] & self.bit[b] or self.reach[b] & self.bit[a])


_CycleCheck = Callable[[int, int, "int | None"], bool]


def _fmt(shape: tuple) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def fuse(graph: Graph) -> Graph:
    """The fused graph alone (the pass's report is also in its `info["fusion"]`).

    Example:
        >>> fuse(graph).info["kernels"][0]   # the nodes of `graph` the first kernel computes
    """
    return fuse_pass(graph)[0]


@register("fuse", requires=("unfused",), produces=("fused",), invalidates=("unfused",))
def fuse_pass(graph: Graph) -> tuple[Graph, PassReport]:
    """Group elementwise ops and reductions into fused kernels (one loop each)."""
    nodes = graph.nodes
    G = _Groups(nodes)
    report = FusionReport()
    readers = users(nodes)

    # 1. vertical: producers and consumers in one loop
    for n in nodes:
        space = _space(n)
        if space is None:
            if n.inputs:
                G.place(n)
            continue
        G.start(n, space)
        # a chain (every operand in one group): the merge needs no cycle check, and n need
        # not enter the contracted graph unless it stays a group of its own
        sole = G.sole_group(n) if CHAIN_FAST_PATH else None
        if sole is None:
            G.place(n)
        for p in n.inputs:
            if _is_source(p):
                continue
            if id(p) not in G.of:
                report.boundaries.append(Boundary(p, n, _why_unfusable(p)))
                continue
            a, b = G.key(p), G.key(n)
            if a == b:
                continue
            if _is_reduction(p) and not _is_row_reduction(p):
                report.boundaries.append(
                    Boundary(p, n, "reads a reduction's result (complete only after its loop)")
                )
                continue
            if sole is None:
                reason = G.why_not(a, b, frontier=G.pos[id(n)])
            else:
                reason = G.why_not(a, b, cycle=_no_cycle)
            if reason:
                report.boundaries.append(Boundary(p, n, reason))
                continue
            if sole is None:
                G.merge(a, b)
            else:
                G.absorb(a, n)
        if sole is not None and G.key(n) == id(n):  # it stays apart: a node of its own
            G.place(n)

    # 2. siblings: groups over one space reading a common input share the loop
    by_input: dict[tuple, list[int]] = {}
    for k in list(G.members):
        for n in G.members[k]:
            for i in n.inputs:
                if G.key(i) != k and i.op != "const":
                    lst = by_input.setdefault((id(i), G.space[k]), [])
                    if not lst or lst[-1] != k:  # k is only ever appended while it is visited
                        lst.append(k)
    for lst in by_input.values():
        live = [k for k in lst if k in G.members]
        pairs = _Pairs(G, lst)
        while len(live) > 1:
            a, rest = live[0], live[1:]
            for b in rest:
                if b in G.members and G.why_not(a, b, cycle=pairs.would_cycle) is None:
                    a = G.merge(a, b)  # one of the two leaves G.members
            # the groups that could not join a try again around the next one
            live = [k for k in rest if k in G.members]

    # 3. build the fused graph in a topological order of the contracted graph, one walk in
    # which a group's first member stands for the group
    order = G.C.topological_order()
    pos = G.pos
    out_ids = {id(o) for o in graph.outputs}
    by_id = {id(n): n for n in nodes}
    held: dict[int, list[Node]] = {}  # id(fused node) -> the input nodes it computes
    walk: list[Node] = []
    group_of: dict[int, list[Node]] = {}  # id(first member) -> the members, in graph order
    for key in order:
        if key not in G.members:
            walk.append(by_id[key])
            continue
        members = sorted(G.members[key], key=lambda n: pos[id(n)])
        walk.append(members[0])
        group_of[id(members[0])] = members
    new: dict[int, Node] = {}

    def build(n: Node, orig: Node) -> Node | None:
        members = group_of.get(id(orig))
        if members is None:
            return None
        if all(REGISTRY[m.op].fusion is Fusion.VIEW for m in members):
            # a lone broadcast: the driver makes it as a view
            map_nodes(members, _keep, nested=False, mapping=new)
            return new[id(orig)]
        fused, results = _build_group(members, new, readers, out_ids)
        report.kernels += 1
        for m, value in results:
            new[id(m)] = value
        held[id(fused)] = members
        return new.get(id(orig))

    map_nodes(walk, build, nested=False, mapping=new)
    out = graph.derive(outputs=[new.get(id(o), o) for o in graph.outputs])
    report.search_steps = G.C.visits
    out.info["fusion"] = report
    # in the order the fused nodes appear in `out.nodes`, each in the input graph's order
    out.info["kernels"] = [held[id(n)] for n in out.nodes if n.op == "fused" and id(n) in held]
    return out, PassReport([str(b) for b in report.boundaries], details=report)


def _is_source(n: Node) -> bool:
    return n.op == "input" or n.op == "const"


def _no_cycle(a: int, b: int, frontier: int | None = None) -> bool:
    return False


def _keep(n: Node, orig: Node) -> None:
    return None


def _build_group(
    members: list[Node], new: dict[int, Node], readers: dict[int, list[Node]], out_ids: set[int]
) -> tuple[Node, list[tuple[Node, Node]]]:
    """Make the fused node for one group; returns it and (member, value) for its results."""
    inside = {id(m) for m in members}
    ext: list[Node] = []
    body_in: dict[int, Node] = {}
    for m in members:
        for i in m.inputs:
            # scalar constants live in the kernel's code
            if id(i) in inside or (i.op == "const" and i.aval.shape == ()) or id(i) in body_in:
                continue
            body_in[id(i)] = make_input(i.aval)
            ext.append(i)
    # the body: the members again, reading fresh inputs where they read other kernels
    body = map_nodes(ext + members, lambda n, orig: body_in.get(id(orig)), nested=False)
    results = [
        m
        for m in members
        if id(m) in out_ids or any(id(r) not in inside for r in readers.get(id(m), []))
    ]
    body_graph = Graph([body_in[id(e)] for e in ext], [body[id(r)] for r in results], name="kernel")
    last = results[-1] if results else members[-1]
    meta = Meta(last.meta.loc, last.meta.scope, None, last.meta.role)
    # inputs and constants are not in the walk: they stay as they are
    fused = apply("fused", [new.get(id(e), e) for e in ext], {"body": body_graph}, meta)
    if len(results) == 1:
        return fused, [(results[0], fused)]
    return fused, [(r, apply("proj", [fused], {"index": k}, r.meta)) for k, r in enumerate(results)]
