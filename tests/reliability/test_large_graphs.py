"""Compile-time work per node: the faster walks and passes give exactly what the plain ones
gave (same IR text, same values)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_args, random_program

import graphc
from graphc.ir import Aval, Graph, GraphcError, Node
from graphc.ops.interp import evaluate
from passes import rewrite
from passes.simplify import rewrites_for, simplify_node


def one_step(n: Node) -> Node | None:
    """The first simplification that fits, not chained: what is left is for later rounds."""
    if n.op in ("input", "const") or not isinstance(n.aval, Aval):
        return None
    for rw in rewrites_for(n.op):
        rep = rw(n)
        if rep is not None and rep is not n:
            return rep
    return None


def _sweep_rewrite(graph: Graph, rule, max_rounds: int = 8) -> Graph:
    """The plain rewrite: every round offers every node to the rule."""
    for _ in range(max_rounds):
        changed = False
        new: dict[int, Node] = {}
        for n in graph.nodes:
            ins = tuple(new.get(id(i), i) for i in n.inputs)
            cur = (
                n
                if all(a is b for a, b in zip(ins, n.inputs, strict=True))
                else Node(n.op, ins, n.attrs, n.aval, n.meta)
            )
            rep = rule(cur) if cur.op != "input" else None
            if rep is not None and rep is not cur:
                changed, cur = True, rep
            elif cur is not n:
                changed = True
            new[id(n)] = cur
        graph = graph.derive(outputs=[new[id(o)] for o in graph.outputs])
        if not changed:
            break
    return graph


def identity_program(seed: int, steps: int = 16):
    """A random program full of algebraic identities that take several rewrite rounds:
    products with one and minus one, sums with zero, double negations, exp(log(.)), nested
    transposes, constant products to reassociate."""

    def prog(x, y):
        rng = np.random.default_rng(seed)
        vals = [x, y]
        for _ in range(steps):
            a, b = vals[rng.integers(len(vals))], vals[rng.integers(len(vals))]
            k = rng.integers(9)
            if k == 0:
                v = (a * 1.0 + 0.0) * b
            elif k == 1:
                v = np.negative(-(a * -1.0)) + b
            elif k == 2:
                v = np.exp(np.log(np.abs(a) + 1.0)) * (0.0 - b)
            elif k == 3:
                v = np.transpose(np.transpose(a)) * 2.0 * 3.0 + b
            elif k == 4:
                v = np.tanh(a) * 1.0 - (0.0 - b)
            elif k == 5:
                v = np.sum(a * 1.0, axis=-1, keepdims=True) + b * 0.0
            elif k == 6:
                v = (a + 0.0) / (1.0 + b * b)
            elif k == 7:
                v = np.sin(np.negative(-a)) * 0.5 * 4.0
            else:
                v = np.maximum(a, b) - 0.0
            vals.append(v)
        return sum(np.sum(v * v) for v in vals[2:])

    return prog


def _programs():
    for seed in range(10):
        yield f"identities{seed}", identity_program(seed)
    for seed in range(6):
        prog = random_program(seed, steps=12)
        yield f"random{seed}", lambda x, y, prog=prog: sum(np.sum(v * v) for v in prog(x, y))


@pytest.mark.parametrize("name, fn", list(_programs()), ids=lambda v: str(v)[:14])
def test_rewrite_equals_the_plain_sweep(name, fn):
    args = random_args(len(name), (3, 4))
    for g in (
        graphc.trace(fn, *args),
        graphc.trace(graphc.value_and_grad(fn, argnums=(0, 1)), *args),
    ):
        for rule in (simplify_node, one_step):
            fast = rewrite(g, rule)
            plain = _sweep_rewrite(g, rule)
            assert fast.pretty(locations=False) == plain.pretty(locations=False), name
            for rounds in (1, 2, 3):  # a round cap stops both at the same place
                assert rewrite(g, rule, max_rounds=rounds).pretty(locations=False) == (
                    _sweep_rewrite(g, rule, max_rounds=rounds).pretty(locations=False)
                )
            for a, b in zip(evaluate(fast, *args), evaluate(g, *args), strict=True):
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5)


def test_rewrite_offers_a_kept_node_once_and_a_rebuilt_node_again():
    """The rule sees each node it kept once; a node whose input a later round replaces is
    offered again (so rewrites that need the new input still happen)."""
    x = np.ones(3, np.float32)
    g = graphc.trace(lambda x: np.sin(np.tanh(x) * 1.0) + 0.0, x)
    seen: list[str] = []

    def rule(n: Node) -> Node | None:
        seen.append(n.op)
        return simplify_node(n)

    out = rewrite(g, rule)
    assert [n.op for n in out.equations] == ["tanh", "sin"]
    # round 1: tanh, mul (-> tanh), sin (rebuilt on tanh), add (-> sin); round 2 sees nothing
    # new: sin and tanh were kept with the inputs they have
    assert seen.count("tanh") == 1
    assert seen.count("sin") == 1


_NEXT = {"sin": "cos", "cos": "tanh", "exp": "sin"}  # one step per call: exp takes three rounds


def _renaming(n: Node) -> Node | None:
    op = _NEXT.get(n.op)
    return None if op is None else Node(op, n.inputs, n.attrs, n.aval, n.meta)


@pytest.mark.parametrize("rounds", [1, 2, 3, 4, 8])
def test_rewrite_offers_replacements_again_in_later_rounds(rounds):
    """A replacement the rule made is offered to it in the next round (and readers of a
    replaced node are rebuilt and offered), up to the round cap."""
    x = np.ones(3, np.float32)
    g = graphc.trace(lambda x: np.exp(np.sin(np.exp(x)) * 2.0) + np.cos(x), x)
    fast = rewrite(g, _renaming, max_rounds=rounds)
    plain = _sweep_rewrite(g, _renaming, max_rounds=rounds)
    assert fast.pretty(locations=False) == plain.pretty(locations=False)
    if rounds >= 3:
        assert not {"exp", "sin", "cos"} & {n.op for n in fast.equations}
        want = np.tanh(np.tanh(np.tanh(x)) * 2.0) + np.tanh(x)
        np.testing.assert_allclose(evaluate(fast, x)[0], want, rtol=1e-6)


def test_rewrite_rejects_a_rule_that_changes_the_type():
    g = graphc.trace(lambda x: np.sin(x), np.ones(3, np.float32))

    def bad(n: Node) -> Node | None:
        if n.op == "sin":
            return Node("sin", n.inputs, {}, Aval((3,), np.dtype("float64")), n.meta)
        return None

    with pytest.raises(GraphcError, match="changed its type"):
        rewrite(g, bad)


def _batched_program(steps: int):
    """Elementwise chains long enough for the tape machine, separated by matrix products:
    one tape-machine batch per step."""

    def loss(x, w):
        for _ in range(steps):
            for _ in range(70):
                x = np.tanh(x) * 0.9 + 0.05
            x = w @ x
        return np.sum(x)

    return loss


@pytest.mark.parametrize("steps", [1, 3, 6])
def test_tape_machine_batches_do_not_each_walk_the_graph(monkeypatch, steps):
    """Code generation indexes the graph's readers once, whatever the number of tape-machine
    batches; and the batched program computes what NumPy computes."""
    from graphc import codegen

    loss = _batched_program(steps)
    rng = np.random.default_rng(steps)
    x = rng.standard_normal(8).astype(np.float32)
    w = (rng.standard_normal((8, 8)) * 0.3).astype(np.float32)
    f = graphc.jit(graphc.value_and_grad(loss, argnums=(0, 1)))
    opt = f.lower(x, w).optimized
    walks = {"n": 0}
    real_nodes = Graph.nodes

    def counting(self):
        if self is opt:
            walks["n"] += 1
        return real_nodes.fget(self)

    monkeypatch.setattr(Graph, "nodes", property(counting))
    _, d = codegen.generate(opt)
    monkeypatch.undo()
    assert len(d.vm_programs) >= steps  # forward and backward runs between the products
    assert walks["n"] <= 4  # a fixed number of walks, not one per batch

    value, (gx, gw) = f(x, w)
    want = graphc.value_and_grad(loss, argnums=(0, 1), backend="interpreter")(x, w)
    np.testing.assert_allclose(value, want[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gx, want[1][0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(gw, want[1][1], rtol=1e-3, atol=1e-5)

    def numpy_loss(x, w):
        for _ in range(steps):
            for _ in range(70):
                x = np.tanh(x) * np.float32(0.9) + np.float32(0.05)
            x = w @ x
        return np.sum(x)

    np.testing.assert_allclose(value, numpy_loss(x, w), rtol=1e-4, atol=1e-5)
