"""Loop optimisations on `scan`: work that does not change from step to step leaves the loop.

- **Loop-invariant code motion.** A body equation that reads only the loop's consts (no
  carry, no sequence) computes the same value every step: it is computed once before the loop
  and enters the body as one more const (`W.T` in an RNN step, the transposed weights the
  backward step multiplies by).
- **Accumulated products become one product.** A carry that only accumulates matrix products
  of per-step values, `acc = acc + a_t @ b_t` (how reverse mode sums a weight's gradient over
  the steps), is dropped from the loop: the loop stacks `a_t` and `b_t` instead, and one matrix
  product over the stacked steps after the loop gives the sum, `A' @ B'` with the steps folded
  into the contracted axis. One large product runs at BLAS speed where T small ones do not;
  the sum is the same up to the order of additions.

Both rewrite a loop into one computing the same results; the `proj`s reading the old loop read
the new results. Loops nested in bodies are rewritten too (innermost first).

Example:
    >>> g2 = run_pipeline(g, ["loops"])   # W.T hoisted, sum_t dz_t.T @ h_t one matmul
"""

from __future__ import annotations

from graphc.ir import Graph, Node, TupleAval, make_input, map_nodes
from graphc.ops import apply
from graphc.ops.control import inline, scan_parts
from passes.manager import PassReport, register


def _projs(n: Node) -> list[Node]:
    return [apply("proj", [n], {"index": k}, n.meta) for k in range(len(n.aval.avals))]  # type: ignore[union-attr]


def _invariant(body: Graph, n_consts: int) -> set[int]:
    """Ids of body nodes that depend on the consts alone."""
    inv = {id(i) for i in body.inputs[:n_consts]}
    variant = {id(i) for i in body.inputs[n_consts:]}
    for m in body.nodes:
        if m.op == "input":
            continue
        if all(id(i) in inv for i in m.inputs):  # constants too: they read nothing
            inv.add(id(m))
        else:
            variant.add(id(m))
    return inv


def hoist_invariants(n: Node) -> list[Node] | None:
    """The results of scan `n` rebuilt with its loop-invariant work before the loop, or None
    when there is none."""
    a = n.attrs
    body, nc = a["body"], a["n_consts"]
    inv = _invariant(body, nc)
    frontier: list[Node] = []
    seen: set[int] = set()
    for m in list(body.nodes) + [None]:
        reads = body.outputs if m is None else (m.inputs if id(m) not in inv else ())
        for i in reads:
            if id(i) in inv and i.op not in ("input", "const") and id(i) not in seen:
                seen.add(id(i))
                frontier.append(i)
    if not frontier:
        return None
    outer = inline(Graph(body.inputs[:nc], frontier), list(n.inputs[:nc]))
    mapping = {id(f): make_input(f.aval) for f in frontier}  # type: ignore[arg-type]
    new = map_nodes(
        [m for m in body.nodes if id(m) not in mapping],
        lambda m, o: None,
        nested=False,
        mapping=dict(mapping),
    )
    ins = list(body.inputs)
    new_body = Graph(
        ins[:nc] + [mapping[id(f)] for f in frontier] + ins[nc:],
        [new.get(id(o), o) for o in body.outputs],
    )
    consts, carry, xs = scan_parts(nc, a["n_carry"], list(n.inputs))
    attrs = {**a, "body": new_body, "n_consts": nc + len(frontier)}
    return _projs(apply("scan", consts + outer + carry + xs, attrs, n.meta))


def _accumulation(
    body: Graph, nc: int, k: int, readers: dict[int, int]
) -> tuple[Node, Node] | None:
    """(a, b) when carry k only accumulates products: out_k = c_k + a @ b, with c_k read by
    nothing else and a, b 2-d values of the step."""
    c = body.inputs[nc + k]
    out = body.outputs[k]
    if out.op != "add" or readers.get(id(c), 0) != 1:
        return None
    x, y = out.inputs
    prod = y if x is c else x if y is c else None
    if prod is None or prod.op != "matmul" or prod.aval.shape != c.aval.shape:  # type: ignore[union-attr]
        return None
    pa, pb = prod.inputs
    if pa.aval.ndim != 2 or pb.aval.ndim != 2:  # type: ignore[union-attr]
        return None
    return pa, pb


def fold_accumulations(n: Node) -> list[Node] | None:
    """The results of scan `n` with each carry that accumulates matrix products replaced by
    one product of the stacked factors after the loop, or None when no carry does."""
    a = n.attrs
    body, nc, ncar, T = a["body"], a["n_consts"], a["n_carry"], a["length"]
    if T < 2:
        return None
    readers: dict[int, int] = {}
    for m in body.nodes:
        for i in m.inputs:
            readers[id(i)] = readers.get(id(i), 0) + 1
    for o in body.outputs:
        readers[id(o)] = readers.get(id(o), 0) + 1
    inv = _invariant(body, nc)
    found: dict[int, tuple[Node, Node]] = {}
    for k in range(ncar):
        # the carry is read by its add (and, as the add's result is an output, nothing else)
        ab = _accumulation(body, nc, k, readers)
        if ab is not None and id(ab[0]) not in inv and id(ab[1]) not in inv:
            found[k] = ab
    if not found:
        return None
    keep = [k for k in range(ncar) if k not in found]
    ins = list(body.inputs)
    consts, carry, xs = scan_parts(nc, ncar, ins)
    o_consts, o_carry, o_xs = scan_parts(nc, ncar, list(n.inputs))
    # a factor that is a step's slice of a sequence is that sequence, already stacked
    x_pos = {id(x): j for j, x in enumerate(xs)}
    factors = [f for k in sorted(found) for f in found[k]]
    extra = [f for f in factors if id(f) not in x_pos]
    new_body = Graph(
        consts + [carry[k] for k in keep] + xs,
        [body.outputs[k] for k in keep] + list(body.outputs[ncar:]) + extra,
    )
    attrs = {**a, "body": new_body, "n_carry": len(keep)}
    res = _projs(apply("scan", o_consts + [o_carry[k] for k in keep] + o_xs, attrs, n.meta))
    ny = len(body.outputs) - ncar
    made = iter(res[len(keep) + ny :])
    stacked = [o_xs[x_pos[id(f)]] if id(f) in x_pos else next(made) for f in factors]
    results: list[Node] = [None] * ncar  # type: ignore[list-item]
    for j, k in enumerate(keep):
        results[k] = res[j]
    meta = n.meta
    for j, k in enumerate(sorted(found)):
        A, B = stacked[2 * j], stacked[2 * j + 1]  # [T, M, K] and [T, K, N]
        _, M, K = A.aval.shape  # type: ignore[union-attr]
        N = B.aval.shape[2]  # type: ignore[union-attr]
        At = apply("transpose", [A], {"perm": (1, 0, 2)}, meta)
        A2 = apply("reshape", [At], {"shape": (M, T * K)}, meta)
        B2 = apply("reshape", [B], {"shape": (T * K, N)}, meta)
        total = apply("matmul", [A2, B2], None, meta)
        results[k] = apply("add", [o_carry[k], total], None, meta)
    return results + res[len(keep) : len(keep) + ny]


@register("loops")
def loops(graph: Graph) -> tuple[Graph, PassReport]:
    """Hoist loop-invariant work out of scans; fold per-step product sums into one product."""
    # id -> (the loop, its new results); the loop is kept so that its id is not reused
    replaced: dict[int, tuple[Node, list[Node]]] = {}
    counts = {"hoisted": 0, "folded": 0}

    def rewrite(n: Node, orig: Node) -> Node | None:
        if n.op == "scan":
            res = None
            cur = n
            hoisted = hoist_invariants(cur)
            if hoisted is not None:
                counts["hoisted"] += 1
                cur = hoisted[0].inputs[0]
                res = hoisted
            folded = fold_accumulations(cur)
            if folded is not None:
                counts["folded"] += 1
                res = folded
            if res is not None:
                replaced[id(n)] = (n, res)
            return None
        if n.inputs and not isinstance(n.aval, TupleAval):
            entry = replaced.get(id(n.inputs[0]))
            if entry is not None and entry[0] is n.inputs[0]:
                return entry[1][n.attrs["index"]]
        return None

    out = graph.map(rewrite)
    report = PassReport()
    if counts["hoisted"] or counts["folded"]:
        report.notes.append(
            f"loops: {counts['hoisted']} with invariant work hoisted, "
            f"{counts['folded']} with accumulated products folded into one product"
        )
    return out, report
