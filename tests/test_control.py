"""Loops and branches: scan, fori_loop, while_loop, cond and switch.

Values against the unrolled Python loop (NumPy), the reference interpreter and compiled code;
the IR they build (one node holding its body, whatever the trip count); text round trips of
every region kind; and the errors users meet.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import graphc
from graphc.ir import Graph
from graphc.ops.control import TripLimitError

RNG = np.random.default_rng(7)
W = (RNG.standard_normal((4, 4)) * 0.5).astype(np.float32)
U = (RNG.standard_normal((4, 3)) * 0.5).astype(np.float32)


def _line(offset: int = 0) -> str:
    """file:line of the caller's line plus `offset`."""
    f = inspect.currentframe().f_back  # type: ignore[union-attr]
    return f"test_control.py:{f.f_lineno + offset}"  # type: ignore[union-attr]


def rnn_scan(h0, xs):
    def step(h, x):
        h = np.tanh(W @ h + U @ x)
        return h, h * 2.0

    return graphc.scan(step, h0, xs)


def rnn_unrolled(h0, xs):
    h, ys = h0, []
    for x in xs:
        h = np.tanh(W @ h + U @ x)
        ys.append(h * 2.0)
    return h, np.stack(ys)


def _data(T=6):
    return np.zeros(4, np.float32), RNG.standard_normal((T, 3)).astype(np.float32)


def _close(got, want, rtol=1e-5, atol=1e-6):
    gl, wl = graphc.tree_util.tree_leaves(got), graphc.tree_util.tree_leaves(want)
    assert len(gl) == len(wl)
    for g, w in zip(gl, wl, strict=True):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# scan


def test_scan_matches_unrolled_loop_interpreter_and_compiled():
    h0, xs = _data()
    want = rnn_unrolled(h0, xs)
    _close(rnn_scan(h0, xs), want)  # eager: computed at once
    g = graphc.trace(rnn_scan, h0, xs)
    _close(graphc.evaluate(g, h0, xs), list(want))
    _close(graphc.jit(rnn_scan)(h0, xs), want)


def test_scan_is_one_node_whatever_the_trip_count():
    h0 = np.zeros(4, np.float32)
    counts = set()
    for T in (3, 50):
        g = graphc.trace(rnn_scan, h0, np.ones((T, 3), np.float32))
        counts.add(tuple(n.op for n in g.equations))
        (loop,) = [n for n in g.equations if n.op == "scan"]
        assert loop.attrs["length"] == T
    assert len(counts) == 1  # the same equations for 3 and for 50 steps


def test_scan_reverse_keeps_ys_aligned_with_xs():
    xs = np.arange(5, dtype=np.float64)
    carry, ys = graphc.scan(lambda c, x: (c + x, c * 10 + x), 0.0, xs, reverse=True)
    c, want = 0.0, np.zeros(5)
    for t in reversed(range(5)):
        want[t] = c * 10 + xs[t]
        c = c + xs[t]
    assert carry == c
    np.testing.assert_array_equal(ys, want)
    f = graphc.jit(lambda xs: graphc.scan(lambda c, x: (c + x, c * 10 + x), 0.0, xs, reverse=True))
    _close(f(xs), (np.float64(c), want))


def test_scan_pytrees_closures_and_no_xs():
    params = {"a": np.float32(0.5), "b": np.ones(2, np.float32)}

    def f(params, init):
        def step(c, _):
            s, (u, v) = c["s"], c["uv"]
            s = s * params["a"] + np.sum(u)
            return {"s": s, "uv": (u + params["b"], v - 1)}, (s, u)

        return graphc.scan(step, init, None, length=4)

    init = {"s": np.float32(1), "uv": (np.zeros(2, np.float32), np.int64(10))}
    got = graphc.jit(f)(params, init)
    s, u, v = np.float32(1), np.zeros(2, np.float32), np.int64(10)
    ss, us = [], []
    for _ in range(4):
        s = s * params["a"] + np.sum(u)
        ss.append(s)
        us.append(u)
        u, v = u + params["b"], v - 1
    _close(got, ({"s": s, "uv": (u, v)}, (np.stack(ss), np.stack(us))))


def test_scan_closure_values_become_loop_invariant_operands():
    def f(Wt, h0, xs):
        return graphc.scan(lambda h, x: (np.tanh(Wt @ h + x), None), h0, xs)[0]

    g = graphc.trace(f, W, np.zeros(4, np.float32), np.ones((3, 4), np.float32))
    (loop,) = [n for n in g.equations if n.op == "scan"]
    assert loop.attrs["n_consts"] == 1 and loop.inputs[0] is g.inputs[0]
    # the closed-over parameter is an input of the body, not a constant copied into it
    assert not any(n.op == "const" and n.aval.size > 1 for n in loop.attrs["body"].nodes)


def test_scan_python_float_carry_takes_the_dtype_the_body_gives_it():
    xs = np.arange(4, dtype=np.float32)
    carry, ys = graphc.jit(lambda xs: graphc.scan(lambda c, x: (c + x, c), 0.0, xs))(xs)
    c = 0.0
    for x in xs:
        c = c + x  # NEP 50: a Python float added to float32 stays float32
    assert carry.dtype == np.float32 == np.asarray(c).dtype and carry == c
    assert ys.dtype == np.float32


def test_nested_scan():
    def f(xss):
        def outer(c, xs):
            inner_c, _ = graphc.scan(lambda a, x: (a * 0.5 + x + c, None), 0.0, xs)
            return c + inner_c, inner_c

        return graphc.scan(outer, 0.0, xss)

    xss = RNG.standard_normal((3, 4))
    c, want = 0.0, []
    for xs in xss:
        a = 0.0
        for x in xs:
            a = a * 0.5 + x + c
        c = c + a
        want.append(a)
    _close(graphc.jit(f)(xss), (np.float64(c), np.array(want)))
    g = graphc.trace(f, xss)
    assert graphc.parse(str(g)) == g


def test_fori_loop_static_bounds_is_a_scan():
    got = graphc.jit(lambda x: graphc.fori_loop(2, 7, lambda i, v: v * 0.9 + i, x))(np.ones(3))
    v = np.ones(3)
    for i in range(2, 7):
        v = v * 0.9 + i
    _close(got, v)
    g = graphc.trace(lambda x: graphc.fori_loop(2, 7, lambda i, v: v * 0.9 + i, x), np.ones(3))
    assert [n.op for n in g.equations].count("scan") == 1
    # empty range: the initial value
    _close(graphc.fori_loop(5, 2, lambda i, v: v + 1, np.ones(2)), np.ones(2))


def test_fori_loop_traced_bounds_is_a_while_loop():
    def f(n, x):
        return graphc.fori_loop(0, n, lambda i, v: v + i, x)

    got = graphc.jit(f)(np.int64(5), np.float64(1.0))
    assert got == 1.0 + sum(range(5))
    g = graphc.trace(f, np.int64(5), 1.0)
    assert "while_loop" in [n.op for n in g.equations]


# ---------------------------------------------------------------------------------------------
# while_loop


def collatz_steps(n):
    def body(c):
        k, n = c
        return k + 1, np.where(n % 2 == 0, n // 2, 3 * n + 1)  # n is a float64

    return graphc.while_loop(lambda c: c[1] != 1, body, (np.int64(0), n))[0]


def test_while_loop_data_dependent_trip_count():
    f = graphc.jit(collatz_steps)
    for n in (1, 6, 27):
        k, m = 0, n
        while m != 1:
            m = m // 2 if m % 2 == 0 else 3 * m + 1
            k += 1
        x = np.float64(n)
        assert f(x) == k == graphc.evaluate(graphc.trace(collatz_steps, x), x)[0]


def test_while_loop_max_trips_is_checked_at_run_time():
    def f(x):
        return graphc.while_loop(lambda x: np.sum(x) < 100, lambda x: x * 2, x, max_trips=5)

    np.testing.assert_array_equal(graphc.jit(f)(np.ones(2) * 4), np.ones(2) * 64)
    with pytest.raises(TripLimitError, match="max_trips=5"):
        graphc.evaluate(graphc.trace(f, np.ones(2)), np.ones(2) * 0.1)


def test_while_loop_condition_must_be_a_boolean_scalar():
    with pytest.raises(graphc.ControlFlowError, match="boolean scalar, got bool\\[2\\]") as e:
        graphc.trace(lambda x: graphc.while_loop(lambda x: x < 1, lambda x: x, x), np.ones(2))
    assert e.value.location.endswith(_line(-1))


# ---------------------------------------------------------------------------------------------
# cond and switch


def test_cond_picks_a_branch_and_closes_over_values():
    y = np.arange(3.0)

    def f(x, s):
        return graphc.cond(np.sum(x) > 0, lambda x: x * s + y, lambda x: -x, x)

    cf = graphc.jit(f)
    x = np.ones(3)
    _close(cf(x, 2.0), x * 2.0 + y)
    _close(cf(-x, 2.0), x)
    g = graphc.trace(f, x, 2.0)
    (node,) = [n for n in g.equations if n.op == "cond"]
    assert [len(b.inputs) for b in node.attrs["branches"]] == [2, 2]  # x, then s
    assert graphc.parse(str(g)) == g


def test_switch_clamps_the_index_like_jax():
    def f(k, x):
        return graphc.switch(k, [np.sin, np.cos, lambda x: x * 3], x)

    sf = graphc.jit(f)
    x = np.linspace(0, 1, 4)
    for k, want in ((-5, np.sin(x)), (0, np.sin(x)), (1, np.cos(x)), (2, x * 3), (9, x * 3)):
        _close(sf(np.int64(k), x), want)
    assert graphc.switch(1, [np.sin, np.cos], 0.5) == np.cos(0.5)


def test_cond_pytree_outputs():
    def f(p, x):
        return graphc.cond(p, lambda x: {"a": x, "b": (x * 2,)}, lambda x: {"a": -x, "b": (x,)}, x)

    out = graphc.jit(f)(np.bool_(True), np.ones(2))
    _close(out, {"a": np.ones(2), "b": (np.ones(2) * 2,)})


@pytest.mark.parametrize(
    "pred, msg",
    [
        (np.ones(2) > 0, "boolean scalar, got bool\\[2\\]"),
        (np.float64(1.0), "boolean scalar, got f64\\[\\] \\(compare it"),
        (np.int64(1), "boolean scalar, got i64\\[\\]"),
    ],
)
def test_cond_predicate_errors(pred, msg):
    with pytest.raises(graphc.ControlFlowError, match=msg) as e:
        graphc.trace(lambda p, x: graphc.cond(p, lambda x: x, lambda x: x, x), pred, 1.0)
    assert e.value.location.endswith(_line(-1))


def test_cond_branches_of_different_types():
    with pytest.raises(graphc.ControlFlowError, match="different types.*f64\\[2\\].*f32\\[2\\]"):
        graphc.trace(
            lambda p, x: graphc.cond(p, lambda x: x, lambda x: x.astype(np.float64), x),
            np.bool_(True),
            np.ones(2, np.float32),
        )
    with pytest.raises(graphc.ControlFlowError, match="different types"):
        graphc.trace(
            lambda p, x: graphc.cond(p, lambda x: (x, x), lambda x: x, x), np.bool_(True), 1.0
        )


# ---------------------------------------------------------------------------------------------
# errors in loop bodies


def test_carry_changing_shape_names_both_types_and_the_line():
    def f(xs):
        return graphc.scan(lambda c, x: (np.stack([c, c]), x), np.float32(0), xs)

    with pytest.raises(graphc.ControlFlowError) as e:
        graphc.trace(f, np.ones(3, np.float32))
    msg = str(e.value)
    assert "f32[]" in msg and "f32[2]" in msg and "carry" in msg
    assert e.value.location.endswith(_line(-6))
    assert isinstance(e.value, TypeError)


def test_carry_changing_dtype_is_an_error():
    with pytest.raises(graphc.ControlFlowError, match="f32\\[3\\] on input but f64\\[3\\]"):
        graphc.trace(
            lambda x: graphc.while_loop(lambda c: np.sum(c) < 1, lambda c: c.astype(np.float64), x),
            np.ones(3, np.float32),
        )


def test_carry_changing_structure_is_an_error():
    with pytest.raises(graphc.ControlFlowError, match="structure"):
        graphc.trace(lambda xs: graphc.scan(lambda c, x: ((c, c), x), 0.0, xs), np.ones(3))


@pytest.mark.parametrize(
    "call, msg",
    [
        (lambda xs: graphc.scan(lambda c, x: c, 0.0, xs), "must return a pair"),
        (lambda xs: graphc.scan(lambda c, x: (c, x), 0.0, xs, length=4), "length=4"),
        (lambda xs: graphc.scan(lambda c, x: (c, x), 0.0, None), "give xs or length"),
        (lambda xs: graphc.scan(lambda c, x: (c, x), 0.0, (xs, xs[:2])), "different leading"),
        (lambda xs: graphc.scan(lambda c, x: (c, x), "a", xs), "init is a str"),
        (lambda xs: graphc.scan(lambda c, x: (c, x), 0.0, xs[0]), "scalar"),
        (lambda xs: graphc.switch(xs[0], [np.sin], xs), "integer scalar"),
        (lambda xs: graphc.fori_loop(0.5, 3, lambda i, v: v, xs), "lower must be an int"),
        (lambda xs: graphc.while_loop(lambda c: True, lambda c: c, xs, max_trips=-1), "max_trips"),
    ],
)
def test_bad_arguments(call, msg):
    with pytest.raises(graphc.ControlFlowError, match=msg):
        graphc.trace(call, np.ones(3))


# ---------------------------------------------------------------------------------------------
# the IR: text, verification


def _programs():
    h0, xs = _data(3)
    yield graphc.trace(rnn_scan, h0, xs)
    yield graphc.trace(collatz_steps, np.float64(6))
    yield graphc.trace(
        lambda k, x: graphc.switch(k, [np.sin, np.cos, np.tanh], x), np.int64(1), np.ones(2)
    )
    big = np.arange(40.0)  # a large closed-over constant: an operand, declared once outside
    yield graphc.trace(lambda xs: graphc.scan(lambda c, x: (c + big * x, c), big, xs), np.ones(2))


@pytest.mark.parametrize("k", range(4))
def test_every_region_kind_round_trips_through_text(k, tmp_path):
    g = list(_programs())[k]
    text = str(g)
    assert graphc.parse(text, {n: v for n, v in _constvars(g).items()}) == g
    g.save(tmp_path / "g.ir")
    back = graphc.load(tmp_path / "g.ir")
    assert back == g
    args = [np.ones(i.aval.shape, i.aval.dtype) * 2 for i in g.inputs]
    _close(graphc.evaluate(back, *args), graphc.evaluate(g, *args))


def _constvars(g: Graph) -> dict:
    from graphc.ir import _is_constvar, node_names

    names = node_names(g)
    return {names[id(n)]: n.attrs["value"].value for n in g.nodes if _is_constvar(n)}


def test_nested_regions_print_indented():
    xss = np.ones((2, 3))

    def f(xss):
        return graphc.scan(
            lambda c, xs: (c + graphc.scan(lambda a, x: (a + x, None), 0.0, xs)[0], None), 0.0, xss
        )[0]

    text = str(graphc.trace(f, xss))
    inner = [ln for ln in text.splitlines() if "scan[" in ln]
    assert len(inner) == 2
    assert len(inner[1]) - len(inner[1].lstrip()) > len(inner[0]) - len(inner[0].lstrip())


def test_verifier_checks_region_signatures():
    g = graphc.trace(rnn_scan, *_data(3))
    (loop,) = [n for n in g.equations if n.op == "scan"]
    body = loop.attrs["body"]
    wrong = Graph(body.inputs, body.outputs[:1])  # drops the per-step output
    from graphc.ir import Node

    bad = Node("scan", loop.inputs, {**loop.attrs, "body": wrong}, loop.aval)
    with pytest.raises(graphc.VerifyError, match="scan"):
        graphc.verify(Graph(g.inputs, [bad]))
    text = str(g).replace("length=3", "length=4")
    with pytest.raises(graphc.VerifyError, match="sequence 0 is f32\\[3,3\\]"):
        graphc.parse(text)
