"""The IR core: avals, nodes, structural identity, big graphs, verify, text, save/load."""

import inspect
import os
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

import graphc
import graphc.numpy as gnp
from graphc.ir import Aval, Graph, Meta, Node, make_const, make_input
from graphc.text import ParseError
from graphc.verify import verify


def _f32(shape):
    return Aval(shape, np.float32)


# ---------------------------------------------------------------------------------------------
# a very long chain: no recursion anywhere


@pytest.mark.slow
def test_100k_node_chain_has_no_recursion():
    n = 100_000

    def chain(x):
        for _ in range(n // 2):
            x = np.sin(x)
            x = np.tanh(x)
        return x

    x = np.linspace(-3, 3, 4, dtype=np.float32)
    want = chain(x)  # plain NumPy, before lowering the limit
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(500)
    try:
        g = graphc.trace(chain, graphc.spec("f32[4]"))
        assert len(g.equations) == n
        verify(g)
        text = str(g)
        assert text.count("\n") == n + 1
        g2 = graphc.parse(text, verify=False)  # g2 == g below implies g2 verifies too
        assert g2 == g and hash(g2) == hash(g)
        (got,) = graphc.evaluate(g2, x)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
        G = g.to_networkx()
        assert G.number_of_nodes() == n + 1 and G.number_of_edges() == n
        del g, g2, G  # freeing a 100k-deep chain of nodes must not recurse either
    finally:
        sys.setrecursionlimit(old)


# ---------------------------------------------------------------------------------------------
# structural hash and equality


def _layer(x, W):
    return np.sum(np.tanh(x @ W) * 2.0, axis=0)


def test_two_traces_are_equal_but_distinct_objects():
    W = graphc.spec("f32[3,2]")
    g1 = graphc.trace(_layer, graphc.spec("f32[4,3]"), W)
    g2 = graphc.trace(_layer, graphc.spec("f32[4,3]"), W)
    assert g1 is not g2
    assert all(a is not b for a, b in zip(g1.nodes, g2.nodes, strict=True))
    assert g1 == g2
    assert hash(g1) == hash(g2)
    assert g1.structural_hash() == g2.structural_hash()
    assert len({g1, g2}) == 1
    assert g1 != "not a graph"


def _hash_of(fn, *args):
    return graphc.trace(fn, *args).structural_hash()


def test_hash_changes_with_structure():
    sq = graphc.spec("f32[3,3]")
    base = _hash_of(lambda x: np.sum(x, axis=0), sq)
    assert _hash_of(lambda x: np.sum(x, axis=0), sq) == base
    # an attribute
    assert _hash_of(lambda x: np.sum(x, axis=1), sq) != base
    assert _hash_of(lambda x: np.sum(x, axis=0, keepdims=True), sq) != base
    # a dtype
    assert _hash_of(lambda x: np.sum(x, axis=0), graphc.spec("f64[3,3]")) != base
    # a shape
    assert _hash_of(lambda x: np.sum(x, axis=0), graphc.spec("f32[4,3]")) != base
    # the op
    assert _hash_of(lambda x: np.max(x, axis=0), sq) != base


def test_hash_changes_with_constant_values():
    v = graphc.spec("f32[3]")
    # scalar literals (printed inline)
    assert _hash_of(lambda x: x * 2.0, v) == _hash_of(lambda x: x * 2.0, v)
    assert _hash_of(lambda x: x * 2.0, v) != _hash_of(lambda x: x * 3.0, v)
    assert _hash_of(lambda x: x + 0.0, v) != _hash_of(lambda x: x + -0.0, v)
    # small arrays (printed inline)
    c1 = np.array([1.0, 2.0, 3.0], np.float32)
    c2 = np.array([1.0, 2.0, 4.0], np.float32)
    assert _hash_of(lambda x: x + c1, v) == _hash_of(lambda x: x + c1.copy(), v)
    assert _hash_of(lambda x: x + c1, v) != _hash_of(lambda x: x + c2, v)
    # large arrays: the text shows only a name and a type, so the hash must see the data
    m = graphc.spec("f32[2,40]")
    W1 = np.linspace(-1, 1, 40 * 30, dtype=np.float32).reshape(40, 30)
    W2 = W1.copy()
    W2[17, 3] += 1.0
    g1 = graphc.trace(lambda x: x @ W1, m)
    g2 = graphc.trace(lambda x: x @ W2, m)
    assert str(g1) == str(g2)
    assert g1 != g2 and g1.structural_hash() != g2.structural_hash()
    assert graphc.trace(lambda x: x @ W1.copy(), m) == g1


def test_hash_changes_with_operand_order():
    v = graphc.spec("f32[3]")
    assert _hash_of(lambda x, y: x - y, v, v) != _hash_of(lambda x, y: y - x, v, v)
    assert _hash_of(
        lambda x, y: x @ y, graphc.spec("f32[3,3]"), graphc.spec("f32[3,3]")
    ) != _hash_of(lambda x, y: y @ x, graphc.spec("f32[3,3]"), graphc.spec("f32[3,3]"))
    # output order counts too
    assert _hash_of(lambda x, y: (np.sin(x), np.cos(y)), v, v) != _hash_of(
        lambda x, y: (np.cos(y), np.sin(x)), v, v
    )


def test_hash_ignores_locations_and_input_names():
    def f(x, y):
        return np.tanh(x) + y

    def g(a, b):  # same computation, different lines and parameter names
        t = np.tanh(a)
        return t + b

    v = graphc.spec("f32[3]")
    g1 = graphc.trace(f, v, v)
    with graphc.scope("somewhere.else"):
        g2 = graphc.trace(g, a=v, b=v)
    locs1 = [n.meta.loc for n in g1.equations]
    locs2 = [n.meta.loc for n in g2.equations]
    assert locs1 != locs2 and all(locs1) and all(locs2)
    assert [n.meta.name for n in g1.inputs] != [n.meta.name for n in g2.inputs]
    assert g2.equations[0].meta.scope == "somewhere.else"
    assert g1 == g2 and hash(g1) == hash(g2)

    # the same with hand-built nodes
    def build(name, loc, scope):
        x = make_input(_f32((3,)), name)
        return Graph([x], [Node("tanh", (x,), {}, x.aval, Meta(loc, scope))])

    assert build("p", "a.py:1", None) == build("q", "b.py:99", "model.layer")


def test_shared_scalar_literal_equals_its_reparse():
    # one scalar-constant node used twice (as CSE would leave it) prints like two literals
    x = make_input(_f32((3,)))
    two = make_const(np.float32(2.0))
    y = Node("add", (Node("mul", (x, two), {}, x.aval), two), {}, x.aval)
    g = verify(Graph([x], [y]))
    g2 = graphc.parse(str(g))
    assert str(g2) == str(g)
    assert g2 == g and hash(g2) == hash(g)


def test_structural_hash_is_stable_across_processes():
    code = (
        "import numpy as np, graphc\n"
        "W = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)\n"
        "g = graphc.trace(lambda x: np.tanh(x @ W) * 0.5, graphc.spec('f32[2,40]'))\n"
        "print(g.structural_hash())\n"
    )
    W = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    g = graphc.trace(lambda x: np.tanh(x @ W) * 0.5, graphc.spec("f32[2,40]"))
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == g.structural_hash()
    assert len(g.structural_hash()) == 64


def test_round_trip_of_unusual_graphs():
    cases = [
        graphc.trace(lambda: np.zeros(3) + 0),  # no inputs
        graphc.trace(lambda x, y: np.tanh(y), graphc.spec("f32[2]"), graphc.spec("f32[3]")),
        graphc.trace(lambda x: (x, x, np.sin(x), np.sin(x)), graphc.spec("f64[]")),
        graphc.trace(lambda x: x, graphc.spec("bool[2,0]")),
        graphc.trace(lambda x: x.astype(np.int32) * 3, graphc.spec("f16[2]")),
    ]
    for g in cases:
        verify(g)
        g2 = graphc.parse(str(g))
        assert g2 == g and str(g2) == str(g)
        assert len(g2.inputs) == len(g.inputs) and len(g2.outputs) == len(g.outputs)
    assert str(cases[0]).startswith("{ lambda ;. let")
    # (x, x, sin x, sin x): repeated outputs stay one node each
    g = cases[2]
    assert g.outputs[0] is g.outputs[1] and g.outputs[2] is not g.outputs[3]
    g2 = graphc.parse(str(g))
    assert g2.outputs[0] is g2.outputs[1] and g2.outputs[2] is not g2.outputs[3]


# ---------------------------------------------------------------------------------------------
# to_networkx


def test_to_networkx():
    line = inspect.currentframe().f_lineno + 1
    g = graphc.trace(lambda x: np.tanh(x * x) + 1.0, graphc.spec("f32[3]"))
    G = g.to_networkx()
    assert isinstance(G, nx.MultiDiGraph)
    assert set(G.nodes) == {"a", "b", "c", "d", "1.0:f32"}
    # every name in the IR text is a networkx node
    for text_line in str(g).splitlines()[1:-1]:
        assert text_line.split(":")[0].strip() in G
    assert G.number_of_nodes() == len(g.nodes)
    assert G.nodes["a"]["op"] == "input"
    assert G.nodes["b"]["op"] == "mul"
    assert G.nodes["c"]["op"] == "tanh"
    assert G.nodes["d"]["op"] == "add"
    assert G.nodes["1.0:f32"]["op"] == "const"
    assert G.nodes["b"]["shape"] == (3,)
    assert G.nodes["b"]["dtype"] == "float32"
    assert G.nodes["b"]["type"] == "f32[3]"
    assert G.nodes["d"]["is_output"] and not G.nodes["c"]["is_output"]
    assert os.path.basename(G.nodes["b"]["loc"]) == f"test_ir.py:{line}"
    # x * x: two parallel edges, one per operand position
    assert G.number_of_edges("a", "b") == 2
    assert sorted(d["operand"] for d in G.get_edge_data("a", "b").values()) == [0, 1]
    assert G.number_of_edges() == 5
    assert G.get_edge_data("1.0:f32", "d")[0]["operand"] == 1
    assert nx.is_directed_acyclic_graph(G)
    assert list(nx.topological_sort(G))[-1] == "d"


# ---------------------------------------------------------------------------------------------
# avals and nodes


@pytest.mark.parametrize(
    "text, shape, dtype",
    [
        ("f32[4,3]", (4, 3), np.float32),
        ("f64[]", (), np.float64),
        ("bool[2]", (2,), np.bool_),
        ("i64[1,1,1]", (1, 1, 1), np.int64),
        ("u8[0]", (0,), np.uint8),
        ("f16[7]", (7,), np.float16),
    ],
)
def test_aval_parse_str_round_trip(text, shape, dtype):
    a = Aval.parse(text)
    assert a.shape == shape and a.dtype == np.dtype(dtype)
    assert str(a) == text
    assert Aval.parse(str(a)) == a
    assert repr(a) == f"Aval({text})"
    assert Aval.parse(f"  {text} ") == a


@pytest.mark.parametrize(
    "text",
    [
        "",
        "f32",
        "f32[",
        "f32[4",
        "f32]4[",
        "[4]",
        "float[4]",
        "f128[4]",
        "f32[a]",
        "f32[1.5]",
        "f32[-1]",
        "f32[4][3]",
        "f32[4,,3]",
        "f32[,4]",
        "f32[4,]",
        "f32[4 3]",
        "f32[4_0]",
        "f32[+4]",
        "f32(4)",
    ],
)
def test_aval_parse_rejects_bad_strings(text):
    with pytest.raises(graphc.GraphcError):
        Aval.parse(text)


def test_aval_properties_and_immutability():
    a = Aval((4, 3), "f32")
    assert a.dtype == np.float32 and a.ndim == 2 and a.size == 12 and a.nbytes == 48
    assert Aval((), np.float64).size == 1
    assert hash(a) == hash(Aval.parse("f32[4,3]"))
    with pytest.raises(AttributeError):
        a.shape = (1,)
    with pytest.raises(graphc.DTypeError):
        Aval((3,), np.complex64)


def test_nodes_are_immutable():
    g = graphc.trace(lambda x: np.tanh(x) * 2.0, graphc.spec("f32[3]"))
    n = g.equations[0]
    for name, value in [
        ("op", "sin"),
        ("inputs", ()),
        ("attrs", {}),
        ("aval", n.aval),
        ("meta", Meta()),
        ("something_new", 1),
    ]:
        with pytest.raises(AttributeError):
            setattr(n, name, value)
    with pytest.raises(AttributeError):
        del n.op
    with pytest.raises(TypeError):
        n.attrs["axis"] = 0  # a read-only mapping
    assert n.op == "tanh"
    c = g.constants[0]
    with pytest.raises(ValueError):
        c.attrs["value"].value[()] = 5.0  # constant data is read-only too


def test_const_copies_its_value():
    arr = np.arange(3.0)
    c = make_const(arr)
    arr[0] = 99.0
    assert c.attrs["value"].value[0] == 0.0


# ---------------------------------------------------------------------------------------------
# verify


def _graph(*out_nodes, inputs):
    return Graph(inputs, out_nodes)


def test_verify_accepts_a_good_graph():
    x = make_input(_f32((4, 3)))
    y = Node("reduce_sum", (x,), {"axes": (0,), "keepdims": False}, _f32((3,)))
    graphc.verify(_graph(y, inputs=[x]))
    assert verify(_graph(y, inputs=[x])) is not None


@pytest.mark.parametrize(
    "aval",
    [_f32((4,)), Aval((3,), np.float64), _f32((1, 3)), _f32(())],
)
def test_verify_catches_wrong_type(aval):
    x = make_input(_f32((4, 3)))
    y = Node("reduce_sum", (x,), {"axes": (0,), "keepdims": False}, aval)
    with pytest.raises(graphc.VerifyError, match="reduce_sum"):
        graphc.verify(_graph(y, inputs=[x]))


def test_verify_catches_shape_rule_rejection():
    x = make_input(_f32((4, 3)))
    y = make_input(_f32((5,)))
    z = Node("add", (x, y), {}, _f32((4, 3)))  # shapes do not broadcast
    with pytest.raises(graphc.VerifyError, match="add"):
        graphc.verify(_graph(z, inputs=[x, y]))
    w = Node("reduce_sum", (x,), {"bogus": 1}, _f32(()))  # an attribute the rule does not know
    with pytest.raises(graphc.VerifyError, match="reduce_sum"):
        graphc.verify(_graph(w, inputs=[x]))


def test_verify_catches_wrong_arity():
    x = make_input(_f32((3,)))
    y = Node("tanh", (x, x), {}, x.aval)
    with pytest.raises(graphc.VerifyError, match="tanh has 2 operands, expected 1"):
        graphc.verify(_graph(y, inputs=[x]))
    z = Node("add", (x,), {}, x.aval)
    with pytest.raises(graphc.VerifyError, match="add has 1 operands, expected 2"):
        graphc.verify(_graph(z, inputs=[x]))


def test_verify_catches_a_foreign_input():
    x = make_input(_f32((3,)))
    leaked = make_input(_f32((3,)))  # e.g. from another trace
    y = Node("add", (x, leaked), {}, x.aval)
    with pytest.raises(graphc.VerifyError, match="not one of the graph's inputs"):
        graphc.verify(_graph(y, inputs=[x]))
    graphc.verify(_graph(y, inputs=[x, leaked]))


def test_verify_catches_bad_input_lists():
    x = make_input(_f32((3,)))
    with pytest.raises(graphc.VerifyError, match="twice"):
        graphc.verify(_graph(x, inputs=[x, x]))
    c = make_const(np.zeros(3, np.float32))
    with pytest.raises(graphc.VerifyError, match="not an input"):
        graphc.verify(_graph(c, inputs=[c]))


def test_verify_catches_an_unknown_op():
    x = make_input(_f32((3,)))
    y = Node("frobnicate", (x,), {}, x.aval)
    with pytest.raises(graphc.VerifyError, match="unknown op 'frobnicate'"):
        graphc.verify(_graph(y, inputs=[x]))
    assert issubclass(graphc.VerifyError, graphc.GraphcError)


# ---------------------------------------------------------------------------------------------
# save / load and constants


def test_save_load_large_constant(tmp_path, rng):
    W = rng.standard_normal((40, 30)).astype(np.float32)
    b = rng.standard_normal(30).astype(np.float32)  # size 30 > 16: also a constant variable

    def f(x):
        return np.tanh(x @ W + b) * 0.5

    g = graphc.trace(f, graphc.spec("f32[5,40]"))
    text = str(g)
    assert text.startswith("{ lambda a:f32[40,30] b:f32[30] ; c:f32[5,40]. let")
    path = tmp_path / "model.ir"
    g.save(str(path))
    assert path.exists() and (tmp_path / "model.ir.npz").exists()
    g2 = graphc.load(path)
    assert g2 == g and hash(g2) == hash(g)
    assert str(g2) == text
    x = rng.standard_normal((5, 40)).astype(np.float32)
    np.testing.assert_array_equal(graphc.evaluate(g2, x)[0], graphc.evaluate(g, x)[0])
    np.testing.assert_allclose(graphc.evaluate(g2, x)[0], f(x), rtol=1e-5, atol=1e-6)
    # the saved text keeps source locations
    assert [n.meta.loc for n in g2.equations] == [n.meta.loc for n in g.equations]

    # the text alone is not enough, and says so
    with pytest.raises(ParseError, match="constant a has no value"):
        graphc.parse(text)
    with pytest.raises(ParseError, match="graphc.load"):
        graphc.parse(text, consts={"a": W})
    # ... but text plus the values is
    assert graphc.parse(text, consts={"a": W, "b": b}) == g
    with pytest.raises(ParseError, match="constant b"):
        graphc.parse(text, consts={"a": W, "b": b[:20]})
    with pytest.raises(ParseError, match="constant a"):
        graphc.parse(text, consts={"a": W.astype(np.float64), "b": b})

    # saving a graph without large constants removes a stale .npz
    graphc.trace(lambda x: x + 1.0, graphc.spec("f32[3]")).save(str(path))
    assert not (tmp_path / "model.ir.npz").exists()
    assert graphc.load(path) == graphc.trace(lambda x: x + 1.0, graphc.spec("f32[3]"))


def test_small_constants_print_inline(tmp_path):
    c16 = np.arange(16, dtype=np.float32).reshape(4, 4) / 7
    c17 = np.arange(17, dtype=np.float64)
    flags = np.array([True, False, True])
    ints = np.array([[-(2**63), 2**63 - 1]], dtype=np.int64)

    def f(x, n):
        return (
            x @ c16 + 0.25,
            np.sum(n) + np.sum(x[0, :1] * c17),
            np.where(flags, x[0, :3], -2.5),
            n * ints,
            x > 1e-45,
        )

    g = graphc.trace(f, graphc.spec("f32[2,4]"), graphc.spec("i64[2,2]"))
    text = str(g)
    assert "const[value=[[0.0, 0.14285715, " in text
    assert "const[value=[True, False, True]]" in text
    assert "const[value=[[-9223372036854775808, 9223372036854775807]]]" in text
    assert "0.25:f32" in text and "1e-45:f32" in text and "-2.5:f32" in text
    assert text.startswith("{ lambda a:f64[17] ; b:f32[2,4] c:i64[2,2]. let")
    g2 = graphc.parse(text, consts={"a": c17})
    assert g2 == g and str(g2) == text
    # without the single large constant, the rest parses from text alone
    g_small = graphc.trace(
        lambda x, n: f(x, n)[::2], graphc.spec("f32[2,4]"), graphc.spec("i64[2,2]")
    )
    text = str(g_small)
    assert text.startswith("{ lambda ; ")
    g3 = graphc.parse(text)
    assert g3 == g_small and str(g3) == text
    x = np.array([[0.0, 1.0, 2.0, 3.0], [-1.0, 1e-45, 5.0, 2.0]], np.float32)
    n = np.array([[1, 2], [3, 4]], np.int64)
    for a, b in zip(graphc.evaluate(g3, x, n), graphc.evaluate(g_small, x, n), strict=True):
        np.testing.assert_array_equal(a, b)
    # the 16/17 boundary
    inline = graphc.trace(lambda x: x + np.ones(16, np.float32), graphc.spec("f32[16]"))
    assert "const[value=" in str(inline) and graphc.parse(str(inline)) == inline
    big = graphc.trace(lambda x: x + np.ones(17, np.float32), graphc.spec("f32[17]"))
    assert str(big).startswith("{ lambda a:f32[17] ; b:f32[17]. let")


def _literal_graph(value, dtype):
    dt = np.dtype(dtype)
    x = make_input(Aval((2,), dt))
    c = make_const(value, dt)
    op = "logical_and" if dt == np.bool_ else "add"
    return verify(Graph([x], [Node(op, (x, c), {}, x.aval)]))


@pytest.mark.parametrize(
    "value, dtype, text",
    [
        (np.inf, np.float32, "inf:f32"),
        (-np.inf, np.float32, "-inf:f32"),
        (np.nan, np.float32, "nan:f32"),
        (-0.0, np.float32, "-0.0:f32"),
        (0.0, np.float32, "0.0:f32"),
        (1e-45, np.float32, "1e-45:f32"),
        (3.4028235e38, np.float32, "3.4028235e+38:f32"),
        (0.1, np.float32, "0.1:f32"),
        (0.1, np.float64, "0.1:f64"),
        (5e-324, np.float64, "5e-324:f64"),
        (-np.inf, np.float64, "-inf:f64"),
        (np.nan, np.float64, "nan:f64"),
        (65504.0, np.float16, "6.55e+04:f16"),
        (2**62 + 1, np.int64, "4611686018427387905:i64"),
        (-(2**63), np.int64, "-9223372036854775808:i64"),
        (2**64 - 1, np.uint64, "18446744073709551615:u64"),
        (-128, np.int8, "-128:i8"),
        (True, np.bool_, "True:bool"),
        (False, np.bool_, "False:bool"),
    ],
)
def test_literal_edge_values_round_trip(value, dtype, text):
    g = _literal_graph(value, dtype)
    printed = str(g)
    assert f" a {text}\n" in printed
    g2 = graphc.parse(printed)
    assert g2 == g and hash(g2) == hash(g) and str(g2) == printed
    got = g2.equations[0].inputs[1].attrs["value"].value
    want = g.equations[0].inputs[1].attrs["value"].value
    assert got.dtype == want.dtype and got.shape == ()
    assert got.tobytes() == want.tobytes()  # bit-exact: keeps -0.0, the NaN, the last ulp


def test_negative_nan_round_trips():
    neg_nan = np.float32(-np.nan)
    assert np.signbit(neg_nan)
    for g in [
        _literal_graph(neg_nan, np.float32),
        _literal_graph(-np.nan, np.float64),
        graphc.trace(
            lambda x: x + np.array([np.nan, -np.nan, 0.0], np.float32), graphc.spec("f32[3]")
        ),
    ]:
        g2 = graphc.parse(str(g))
        assert str(g2) == str(g)
        assert g2 == g


def test_array_constant_edge_values_round_trip():
    arrays = [
        np.array([np.inf, -np.inf, np.nan, -0.0, 1e-45, 3.4028235e38], np.float32),
        np.array([[0.1, 1 / 3], [1e-300, -5e-324]], np.float64),
        np.array([2**63 - 1, -(2**63), 0], np.int64),
        np.array([2**64 - 1, 0], np.uint64),
        np.array([True, False]),
        np.array([1.5, -65504.0, 6e-8], np.float16),
    ]
    for arr in arrays:
        x = make_input(Aval(arr.shape, arr.dtype))
        op = "logical_and" if arr.dtype == np.bool_ else "add"
        g = verify(Graph([x], [Node(op, (x, make_const(arr)), {}, x.aval)]))
        g2 = graphc.parse(str(g))
        assert g2 == g and str(g2) == str(g)
        assert g2.constants[0].attrs["value"].value.tobytes() == arr.tobytes()


def test_constant_output_and_literal_output():
    W = np.ones((5, 5), np.float32)
    g = graphc.trace(lambda x: (x, W, np.float32(3.0), np.zeros(2)), graphc.spec("f32[2]"))
    text = str(g)
    assert text.endswith("in (b, a, 3.0:f32, c) }")
    g2 = graphc.parse(text, consts={"a": W})
    assert g2 == g
    outs = graphc.evaluate(g2, np.zeros(2, np.float32))
    np.testing.assert_array_equal(outs[1], W)
    assert outs[2] == 3.0 and outs[2].dtype == np.float32
    # a literal written directly as an output parses too
    g3 = graphc.parse("{ lambda ; a:f32[2]. let\n  in (a, 2.5:f64) }")
    assert g3.outputs[1].op == "const" and g3.outputs[1].aval == Aval((), np.float64)
    assert str(graphc.parse(str(g3))) == str(g3)


# ---------------------------------------------------------------------------------------------
# source locations


def test_locations_print_and_parse_back():
    def f(x):
        with graphc.scope("model"), graphc.scope("layers.0"):
            y = np.tanh(x)
        return y * 2.0

    line = inspect.getsourcelines(f)[1]
    g = graphc.trace(f, graphc.spec("f32[3]"))
    tanh, mul = g.equations
    assert os.path.basename(tanh.meta.loc) == f"test_ir.py:{line + 2}"
    assert tanh.meta.scope == "model.layers.0"
    assert os.path.basename(mul.meta.loc) == f"test_ir.py:{line + 3}"
    assert mul.meta.scope is None
    text = g.pretty(locations=True)
    lines = text.splitlines()
    assert lines[1].endswith(f"tanh a  # {tanh.meta.loc} [model.layers.0]")
    assert lines[2].endswith(f"mul b 2.0:f32  # {mul.meta.loc}")
    assert "#" not in g.pretty(locations=False) and "#" not in str(g)
    g2 = graphc.parse(text)
    assert g2 == g
    assert [(n.meta.loc, n.meta.scope) for n in g2.equations] == [
        (n.meta.loc, n.meta.scope) for n in g.equations
    ]
    assert g2.pretty(locations=True) == text
    # without comments, the parsed nodes have no locations
    assert all(n.meta.loc is None for n in graphc.parse(str(g)).equations)


@pytest.mark.parametrize(
    "loc, scope",
    [
        ("model.py:12", None),
        (None, "encoder.block.3"),
        ("model.py:12", "encoder"),
        ("/home/me/My Projects/model.py:7", "net.layers.0"),
        ("C:\\Users\\me\\model.py:7", None),
        ("<stdin>:1", "top"),
    ],
)
def test_location_comments_round_trip(loc, scope):
    x = make_input(_f32((3,)))
    y = Node("tanh", (x,), {}, x.aval, Meta(loc, scope))
    z = Node("sin", (y,), {}, x.aval, Meta("other.py:1", None))
    g = Graph([x], [z])
    g2 = graphc.parse(g.pretty(locations=True))
    assert (g2.equations[0].meta.loc, g2.equations[0].meta.scope) == (loc, scope)
    assert g2.equations[1].meta.loc == "other.py:1"
    assert g2.pretty(locations=True) == g.pretty(locations=True)


# ---------------------------------------------------------------------------------------------
# parse errors

GOOD = """{ lambda ; a:f32[3] b:f32[3]. let
    c:f32[3] = tanh a
    d:f32[3] = add c b
    e:f32[] = reduce_sum[axes=(0,), keepdims=False] d
  in (e,) }"""


def test_good_text_parses():
    g = graphc.parse(GOOD)
    assert str(g) == GOOD
    assert [n.op for n in g.equations] == ["tanh", "add", "reduce_sum"]


def _bad(old, new):
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    "text, line, what",
    [
        (_bad("= tanh a", "= frobnicate a"), 2, "unknown op 'frobnicate'"),
        (_bad("= add c b", "= add c z"), 3, "unknown variable 'z'"),
        (_bad("in (e,)", "in (q,)"), 5, "unknown variable 'q'"),
        (_bad("e:f32[] = reduce_sum", "e:f32[ = reduce_sum"), 4, "dimension"),
        (_bad("d:f32[3] = add", "d:float[3] = add"), 3, "type"),
        (_bad("d:f32[3] = add", "d:f32[x] = add"), 3, "dimension"),
        (_bad("d:f32[3] = add", "d:f32[3 3] = add"), 3, "']'"),
        (_bad("d:f32[3] = add", "d:f32[3,] = add"), 3, "dimension"),
        (_bad("b:f32[3]. let", "b:f32(3). let"), 1, "'['"),
        (_bad("  in (e,) }", "  (e,) }"), 5, "'in'"),
        (_bad("  in (e,) }", ""), 5, "'in'"),
        (_bad("c:f32[3] = tanh", "c:f32[3] tanh"), 2, "'='"),
        (_bad("d:f32[3] = add c b", "c:f32[3] = add c b"), 3, "defined twice"),
        (_bad("= add c b", "= add c 2.0"), 3, "needs a type"),
        (_bad("= add c b", "= add c 2.0:f31"), 3, "unknown dtype"),
        (_bad("= tanh a", "= tanh a $"), 2, "unexpected character"),
        (GOOD + " extra", 5, "end of text"),
    ],
)
def test_parse_errors_name_the_line(text, line, what):
    with pytest.raises(ParseError) as info:
        graphc.parse(text)
    msg = str(info.value)
    assert f"line {line}:" in msg
    assert what in msg
    assert isinstance(info.value, graphc.GraphcError)


def test_parse_type_errors_are_verify_errors():
    # well-formed text whose types are wrong is caught by verify, not the parser
    with pytest.raises(graphc.VerifyError):
        graphc.parse(_bad("c:f32[3] = tanh", "c:f32[4] = tanh"))
    g = graphc.parse(_bad("c:f32[3] = tanh", "c:f32[4] = tanh"), verify=False)
    assert g.equations[0].aval == _f32((4,))


def test_gnp_functions_trace():
    g = graphc.trace(lambda x: gnp.relu(gnp.sigmoid(x)), graphc.spec("f32[3]"))
    assert [n.op for n in g.equations] == ["sigmoid", "relu"]
    assert graphc.parse(str(g)) == g
