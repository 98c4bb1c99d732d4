"""The pass contract: one rebuild walk (`Graph.map`), passes that return (graph, report) and
leave their input alone, the order check, verification inside fused bodies, and a rewrite
that says when it stopped without converging."""

import sys

import numpy as np
import pytest

import graphc
from graphc.ir import Aval, Graph, GraphcError, Node, make_input, substitute
from graphc.ops import apply
from graphc.ops.interp import evaluate
from graphc.verify import verify
from passes import (
    COMPILE_PIPELINE,
    PASSES,
    PassReport,
    RewriteNotConverged,
    register,
    rewrite,
    run_pipeline,
)
from passes.fuse import FusionReport, fuse


def _mlp(x, w):
    h = np.tanh(x @ w)
    return np.sum(np.sin(h) * h + 1.0)


def _traced() -> Graph:
    return graphc.trace(
        graphc.value_and_grad(_mlp), graphc.spec("f32[4,3]"), graphc.spec("f32[3,5]")
    )


def _args():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)


@pytest.fixture
def temp_pass():
    """Register passes for one test and remove them afterwards."""
    names: list[str] = []

    def add(name: str, fn, **props):
        register(name, **props)(fn)
        names.append(name)

    yield add
    for name in names:
        del PASSES[name]


# -- the rebuild walk -----------------------------------------------------------------------


def test_identity_map_reuses_every_node():
    g = _traced()
    g2 = g.map(lambda n, orig: None)
    assert g2 == g and g2 is not g
    assert all(a is b for a, b in zip(g2.nodes, g.nodes, strict=True))


def test_a_replacement_reaches_its_readers():
    g = graphc.trace(lambda x: np.sin(np.tanh(x)) * 2.0, graphc.spec("f32[3]"))
    seen: list[tuple[str, bool]] = []

    def swap(n: Node, orig: Node) -> Node | None:
        seen.append((n.op, n is orig))
        return apply("cos", list(n.inputs), None, n.meta) if n.op == "tanh" else None

    g2 = g.map(swap)
    # nodes above the replacement are rebuilt; the others are offered as they are
    assert dict(seen) == {"input": True, "tanh": True, "sin": False, "mul": False, "const": True}
    x = np.linspace(-1, 1, 3).astype(np.float32)
    np.testing.assert_allclose(evaluate(g2, x)[0], np.sin(np.cos(x)) * 2.0, rtol=1e-6)
    assert g.op_counts() == {"tanh": 1, "sin": 1, "mul": 1}  # the input graph is unchanged


def test_nested_bodies_are_mapped():
    g = fuse(graphc.trace(lambda x: np.sin(np.tanh(x) + 1.0), graphc.spec("f32[8]")))
    (kernel,) = [n for n in g.equations if n.op == "fused"]
    assert "tanh" in kernel.attrs["body"].op_counts()

    def swap(n: Node, orig: Node) -> Node | None:
        return apply("cos", list(n.inputs), None, n.meta) if n.op == "tanh" else None

    assert g.map(swap, nested=False) == g
    g2 = verify(g.map(swap))
    (kernel2,) = [n for n in g2.equations if n.op == "fused"]
    assert "cos" in kernel2.attrs["body"].op_counts()
    assert "tanh" not in kernel2.attrs["body"].op_counts()
    x = np.linspace(-1, 1, 8).astype(np.float32)
    np.testing.assert_allclose(evaluate(g2, x)[0], np.sin(np.cos(x) + 1.0), rtol=1e-6)


def test_a_100000_node_chain_maps_without_recursion():
    x = make_input(Aval((4,), np.dtype("float32")))
    v = x
    for i in range(100_000):
        v = apply("sin" if i % 2 else "tanh", [v])
    g = Graph([x], [v])
    first = g.nodes[1]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        g2 = g.map(lambda n, orig: apply("cos", list(n.inputs)) if orig is first else None)
        outs = substitute(list(g.outputs), {id(first): apply("cos", [x])})
    finally:
        sys.setrecursionlimit(limit)
    assert len(g2.equations) == 100_000 and g2.op_counts()["cos"] == 1
    assert outs[0] is not v and outs[0].op == v.op


# -- the contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fold", "simplify", "cse", "dce", "fuse"])
def test_a_pass_returns_a_report_and_leaves_its_input_alone(name):
    g = _traced()
    g.info["marker"] = "kept"
    info = dict(g.info)
    text = str(g)
    out, report = PASSES[name].fn(g)
    assert isinstance(out, Graph) and isinstance(report, PassReport)
    assert g.info == info and str(g) == text
    assert out.info["marker"] == "kept"


def test_the_pipeline_leaves_its_input_alone_and_keeps_the_reports():
    g = _traced()
    info = dict(g.info)
    out = run_pipeline(g, COMPILE_PIPELINE)
    assert g.info == info and "pipeline" not in g.info
    fuse_record = out.info["pipeline"][COMPILE_PIPELINE.index("fuse")]
    assert isinstance(fuse_record.details, FusionReport)
    assert fuse_record.notes == [str(b) for b in fuse_record.details.boundaries]
    assert all(r.converged for r in out.info["pipeline"])
    # no pass at all: the record goes on a copy
    assert "pipeline" not in g.info and "pipeline" in run_pipeline(g, []).info
    assert "pipeline" not in g.info


def test_the_order_is_checked_before_anything_runs():
    g = _traced()
    with pytest.raises(
        GraphcError,
        match=r"pass 'fuse' \(step 2 .*\) needs a graph without fused"
        r" kernels \('unfused'\), but pass 'fuse' before it does not keep it",
    ):
        run_pipeline(g, ["fuse", "fuse"])
    fused = run_pipeline(g, COMPILE_PIPELINE)
    with pytest.raises(GraphcError, match="pass 'fuse' .* but the input graph is not one"):
        run_pipeline(fused, ["dce", "fuse"])
    run_pipeline(fused, ["dce", "cse"])  # these run anywhere
    with pytest.raises(GraphcError, match="unknown pass 'nope'"):
        run_pipeline(g, ["fold", "nope"])


def test_a_pass_requiring_an_unfused_graph_is_refused_after_fusion(temp_pass):
    def noop(graph):
        """Does nothing, on unfused graphs only."""
        return graph.derive(), PassReport()

    temp_pass("only_unfused", noop, requires=("unfused",))
    run_pipeline(_traced(), ["only_unfused", "fuse"])
    with pytest.raises(GraphcError, match="pass 'only_unfused' .* needs a graph without fused"):
        run_pipeline(_traced(), ["fuse", "dce", "only_unfused"])
    with pytest.raises(GraphcError, match="unknown property"):
        register("bad_property", requires=("shiny",))


# -- verification inside fused bodies --------------------------------------------------------


def _corrupt_body(graph: Graph) -> Graph:
    """`graph` with one fused body whose tanh claims the wrong dtype."""

    def wrong(n: Node, orig: Node) -> Node | None:
        if n.op == "tanh":
            return Node("tanh", n.inputs, None, Aval(n.shape, np.dtype("float64")), n.meta)
        return None

    def swap_body(n: Node, orig: Node) -> Node | None:
        if n.op != "fused" or "tanh" not in n.attrs["body"].op_counts():
            return None
        return n.with_inputs(n.inputs, {"body": n.attrs["body"].map(wrong)})

    return graph.map(swap_body, nested=False)


def test_a_corrupted_body_is_reported_with_the_pass_name(temp_pass, monkeypatch):
    g = fuse(graphc.trace(lambda x: np.sin(np.tanh(x) + 1.0), graphc.spec("f32[8]")))
    verify(g)
    with pytest.raises(GraphcError, match="in the body of fused node 0: tanh: node type f64"):
        verify(_corrupt_body(g))

    def corrupt(graph):
        """Breaks a fused body."""
        return _corrupt_body(graph), PassReport()

    temp_pass("corrupt", corrupt)
    with pytest.raises(GraphcError, match="invalid after pass 'corrupt': in the body of fused"):
        run_pipeline(g, ["corrupt"], verify=True)
    # GRAPHC_DEBUG turns verification on too
    monkeypatch.setenv("GRAPHC_VERIFY", "0")
    run_pipeline(g, ["corrupt"], debug=0)  # not checked
    monkeypatch.setenv("GRAPHC_DEBUG", "1")
    with pytest.raises(GraphcError, match="invalid after pass 'corrupt'"):
        run_pipeline(g, ["corrupt"])


def test_a_body_that_disagrees_with_its_node_is_reported():
    g = fuse(graphc.trace(lambda x: np.sin(np.tanh(x) + 1.0), graphc.spec("f32[8]")))
    (kernel,) = [n for n in g.equations if n.op == "fused"]
    body = kernel.attrs["body"]
    other = Graph([make_input(Aval((8,), np.dtype("float64")))], body.outputs, name="kernel")
    bad = kernel.with_inputs(kernel.inputs, {"body": other})
    with pytest.raises(GraphcError, match="operand types do not match the body's inputs"):
        verify(Graph(g.inputs, [bad]))


# -- rewrite's rounds -------------------------------------------------------------------------


def _restless(n: Node) -> Node | None:
    """Never satisfied: a fresh copy of every tanh, each time."""
    return apply("tanh", list(n.inputs), None, n.meta) if n.op == "tanh" else None


def test_rewrite_reports_that_it_did_not_converge(temp_pass, capsys):
    g = graphc.trace(lambda x: np.sin(np.tanh(x)), graphc.spec("f32[3]"))
    report = PassReport()
    out = rewrite(g, _restless, max_rounds=3, report=report)
    assert out == g
    assert not report.converged and "did not converge" in report.notes[0]
    with pytest.warns(RewriteNotConverged):
        rewrite(g, _restless, max_rounds=2)
    done = PassReport()
    rewrite(g, lambda n: None, report=done)
    assert done.converged and not done.notes

    def restless(graph):
        """Rewrites forever."""
        rep = PassReport()
        return rewrite(graph, _restless, report=rep), rep

    temp_pass("restless", restless)
    out = run_pipeline(g, ["restless"], debug=1)
    assert not out.info["pipeline"][0].converged
    assert "rewrite did not converge" in capsys.readouterr().err
