"""Graphviz pictures: DOT conventions, the joint picture, collapsing large graphs, rendering."""

import re
import shutil
import time
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest
import seeds

import graphc
from graphc import viz
from graphc.ir import GraphcError
from passes import COMPILE_PIPELINE, run_pipeline
from passes.autodiff import jvp, vjp
from passes.partition import partition

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")


def trace(name):
    return graphc.trace(getattr(seeds, name), *seeds.EXAMPLE_ARGS[name])


def block(dot: str, name: str) -> str:
    """The text of `subgraph NAME { ... }` (matching braces; labels hold no braces here)."""
    start = dot.index(f"subgraph {name} {{")
    depth = 0
    for k in range(start, len(dot)):
        if dot[k] == "{":
            depth += 1
        elif dot[k] == "}":
            depth -= 1
            if depth == 0:
                return dot[start : k + 1]
    raise AssertionError("unbalanced braces")


_LABEL = re.compile(r'label=("(?:[^"\\]|\\.)*"|[^\s\]]+)')


def label_of(line: str) -> str:
    """The label attribute of a DOT line, unquoted ("" if none)."""
    m = _LABEL.search(line)
    return m.group(1).strip('"') if m else ""


def node_lines(dot: str) -> list[str]:
    return [
        ln.strip()
        for ln in dot.splitlines()
        if "[" in ln and "->" not in ln and not ln.strip().startswith(("graph ", "node ", "edge "))
    ]


def edge_lines(dot: str) -> list[str]:
    return [ln.strip() for ln in dot.splitlines() if "->" in ln]


def node_labels(dot: str) -> list[str]:
    return [label_of(ln) for ln in node_lines(dot)]


def node_line(dot: str, label_start: str) -> str:
    hits = [ln for ln in node_lines(dot) if label_of(ln).startswith(label_start)]
    assert hits, f"no node labeled {label_start!r}"
    return hits[0]


def has_node(dot: str, label_start: str) -> bool:
    return any(lab.startswith(label_start) for lab in node_labels(dot))


def cluster_attrs(dot: str, kind: str) -> dict[str, str]:
    """Subgraph name -> its attribute line, for clusters named cluster_KIND_<k>."""
    return dict(re.findall(rf"subgraph (cluster_{kind}_\d+) {{\s*\n\s*([^\n]*)", dot))


def scoped_model(x, W):
    with graphc.scope("model"):
        for i in range(2):
            with graphc.scope(f"layers.{i}"):
                x = np.tanh(x @ W) * 0.5
    return np.sum(x)


SCOPED_ARGS = (graphc.spec("f32[4,4]"), graphc.spec("f32[4,4]"))


# -- plain pictures ----------------------------------------------------------------------------


def test_inputs_constants_outputs_and_edge_labels():
    g = graphc.trace(
        lambda x, W: np.tanh(x @ W + np.ones((4, 2), np.float32)) * 2.0,
        graphc.spec("f32[4,3]"),
        graphc.spec("f32[3,2]"),
    )
    dot = g.to_dot()
    assert dot == viz.to_dot(g)  # the Graph method delegates
    x = node_line(dot, "a: x")
    assert "shape=invhouse" in x and viz.STYLE["input"]["fillcolor"] in x
    assert "f32[4,3]" in x
    const = [ln for ln in node_lines(dot) if "shape=cylinder" in ln]
    assert len(const) == 1 and label_of(const[0]) == "const\\nf32[4,2]"
    literal = node_line(dot, "2.0")
    assert "shape=plaintext" in literal
    out = node_line(dot, "out 0")
    assert "shape=house" in out and viz.STYLE["output"]["fillcolor"] in out
    matmul = node_line(dot, "matmul")
    assert "shape=box" in matmul and "rounded" in matmul
    labels = re.findall(r'label="([^"]*)"', "\n".join(edge_lines(dot)))
    assert "f32[4,3]" in labels and "f32[3,2]" in labels and "f32[4,2]" in labels


def test_array_constant_is_a_cylinder():
    c = np.arange(40, dtype=np.float32).reshape(8, 5)
    g = graphc.trace(lambda x: x @ c, graphc.spec("f32[2,8]"))
    line = node_line(g.to_dot(), "const")
    assert "shape=cylinder" in line and "f32[8,5]" in line


def test_op_labels_show_key_attributes():
    dot = trace("mlp_loss").to_dot()
    assert label_of(node_line(dot, "reduce_sum")) == "reduce_sum\\naxes=(0, 1)\\nkeepdims=False"
    assert label_of(node_line(dot, "integer_pow")) == "integer_pow\\nn=2"


def test_fused_kernels_are_clusters_with_their_ops():
    g = run_pipeline(trace("mlp_loss"), COMPILE_PIPELINE)
    dot = viz.to_dot(g)
    kernels = re.findall(r"subgraph (cluster_kernel_\d+) \{", dot)
    assert len(kernels) == 2
    first = block(dot, kernels[0])
    assert has_node(first, "add") and has_node(first, "sigmoid")
    assert not has_node(first, "matmul")  # contractions stay outside the kernel
    second = block(dot, kernels[1])
    for op in ("add", "sub", "integer_pow", "reduce_sum"):
        assert has_node(second, op)
    assert not has_node(dot, "fused")  # the fused node is its cluster, not a box
    assert label_of(cluster_attrs(dot, "kernel")[kernels[1]]) == "kernel l = fused · 4 ops"


def test_multi_result_fused_nodes_are_read_through_their_body():
    joint = vjp(trace("mlp_loss"), [2, 3, 4, 5], seed="ones")
    g = run_pipeline(joint, COMPILE_PIPELINE)
    assert any(n.op == "proj" for n in g.nodes)
    dot = viz.to_dot(g)
    assert not has_node(dot, "proj")
    assert len(re.findall(r"subgraph cluster_kernel_\d+ \{", dot)) == 4


def test_scopes_are_nested_clusters():
    g = graphc.trace(scoped_model, *SCOPED_ARGS)
    dot = g.to_dot()
    labels = {label_of(a) for a in cluster_attrs(dot, "scope").values()}
    assert labels == {"model", "model.layers", "model.layers.0", "model.layers.1"}
    model = block(dot, _cluster_named(dot, "model"))
    layer0 = block(dot, _cluster_named(dot, "model.layers.0"))
    layer1 = block(dot, _cluster_named(dot, "model.layers.1"))
    assert layer0 in model and layer1 in model
    assert has_node(layer0, "tanh") and has_node(layer0, "matmul")
    assert not has_node(layer1, "reduce_sum") and not has_node(model, "reduce_sum")
    assert has_node(dot, "reduce_sum")  # outside every scope


def _cluster_named(dot: str, label: str) -> str:
    for name, attrs in cluster_attrs(dot, "scope").items():
        if label_of(attrs) == label:
            return name
    raise AssertionError(f"no scope cluster {label}")


def test_tangent_nodes_are_styled():
    g = graphc.trace(lambda x: np.sin(x) * x, graphc.spec("f32[3]"))
    dot = viz.to_dot(jvp(g, [0]))
    assert viz._TANGENT_FILL in dot


def test_names_that_look_like_html_and_backslashes_are_escaped():
    g = graphc.trace(lambda x: np.tanh(x), graphc.spec("f32[2]"))
    assert g.name.endswith("<lambda>")
    with graphc.scope('odd "scope" \\ name'):
        h = graphc.trace(lambda x: np.exp(x), graphc.spec("f32[2]"))
    for dot in (viz.to_dot(g), viz.to_dot(h, title="a <b> \\ c")):
        assert "label=<" not in dot
        if HAVE_DOT:
            ET.fromstring(viz.pipe(dot, "svg"))


# -- the joint picture -------------------------------------------------------------------------


def test_grad_stage_styles_forward_and_backward_apart():
    joint = viz.apply_stage(seeds.mlp_loss, "grad")
    dot = viz.to_dot(joint)
    grad_ops = [ln for ln in node_lines(dot) if viz._GRAD_FILL in ln and "shape=box" in ln]
    fwd_ops = [ln for ln in node_lines(dot) if 'fillcolor="#ffffff"' in ln]
    n_grad = sum(1 for n in joint.equations if n.meta.role == "grad")
    assert len(grad_ops) == n_grad and fwd_ops
    params = [ln for ln in node_lines(dot) if viz.STYLE["param"]["fillcolor"] in ln]
    assert len(params) == 6  # every float input is differentiated
    grads = {"grad x", "grad y", "grad W1", "grad b1", "grad W2", "grad b2"}
    assert grads <= set(node_labels(dot))


def test_joint_picture_links_gradients_to_values():
    g = graphc.trace(seeds.sqdiff, *seeds.EXAMPLE_ARGS["sqdiff"])
    joint = vjp(g, [0, 1], seed="inputs")
    dot = viz.to_dot(joint)
    dashed = [ln for ln in edge_lines(dot) if "style=dashed" in ln]
    assert dashed and all("∂" in ln and viz._GRAD_LINE in ln for ln in dashed)
    # the links are drawn from the value to its gradient, arrow at the value
    tails = {ln.split(" -> ")[0] for ln in dashed}
    assert {"a", "b"} <= tails
    assert all("dir=back" in ln for ln in dashed)


def test_joint_picture_marks_saved_residuals_with_bytes():
    joint = viz.apply_stage(seeds.mlp_loss, "joint")
    part = partition(joint)
    dot = viz.to_dot(joint)
    saved_nodes = [ln for ln in node_lines(dot) if "saved " in ln and "peripheries=2" in ln]
    assert len(saved_nodes) == len(part.residuals)
    residual_edges = [ln for ln in edge_lines(dot) if viz._RESIDUAL in ln]
    labeled = [ln for ln in residual_edges if "saved " in ln]
    assert len(labeled) == len(part.residuals)
    total = sum(int(b) for b in re.findall(r"saved (\d+) B", "\n".join(labeled)))
    assert total == part.residual_bytes
    assert "sigmoid\\nsaved 512 B" in dot  # the f32[8,16] activation: 8 * 16 * 4 bytes
    assert re.search(r"\(1\.\d KiB\)", dot)  # the total, in the title


def test_joint_picture_has_kernel_clusters():
    joint = viz.apply_stage(seeds.mlp_loss, "joint")
    dot = viz.to_dot(joint)
    groups = viz.kernel_groups(joint)
    assert len(re.findall(r"subgraph cluster_kernel_\d+ \{", dot)) == len(groups) > 0
    # the sigmoid and its derivative run in one kernel
    assert any({"sigmoid", "sub", "mul"} <= {n.op for n in k} for k in groups)
    assert "cluster_kernel" not in viz.to_dot(joint, kernels=False)


def test_kernel_groups_are_the_graphs_own_nodes():
    g = graphc.trace(lambda x: np.sum(np.tanh(x) * 2), graphc.spec("f32[8]"))
    groups = viz.kernel_groups(g)
    assert [[n.op for n in k] for k in groups] == [["tanh", "mul", "reduce_sum"]]
    ids = {id(n) for n in g.nodes}
    assert all(id(n) in ids for n in groups[0])


def test_partition_picture():
    part = partition(viz.apply_stage(seeds.mlp_loss, "joint"))
    dot = viz.to_dot(part)
    fwd, bwd = block(dot, "cluster_forward"), block(dot, "cluster_backward")
    assert has_node(fwd, "out 0") and has_node(bwd, "grad x")
    crossing = [ln for ln in edge_lines(dot) if viz._RESIDUAL in ln]
    assert len(crossing) == len(part.residuals)
    assert all(
        ln.split(" -> ")[0].startswith("f_") and ln.split(" -> ")[1].split(" ")[0].startswith("b_")
        for ln in crossing
    )
    assert len([ln for ln in edge_lines(dot) if "style=dashed" in ln]) == 6


def test_forward_and_backward_stages_alone():
    fwd = viz.to_dot(viz.apply_stage(seeds.mlp_loss, "forward"))
    assert has_node(fwd, "residual W1") and "saved " in fwd
    bwd = viz.to_dot(viz.apply_stage(seeds.mlp_loss, "backward"))
    assert viz.STYLE["residual_in"]["fillcolor"] in bwd
    assert viz.STYLE["input"]["fillcolor"] not in bwd


def test_stage_errors():
    with pytest.raises(GraphcError, match="unknown stage"):
        viz.apply_stage(seeds.poly, "bogus", 2.0)
    with pytest.raises(GraphcError, match="no floating-point inputs"):
        viz.apply_stage(lambda i: i * 2, "grad", graphc.spec("i64[3]"))
    with pytest.raises(GraphcError, match="example arguments"):
        viz.apply_stage(lambda x: x, "traced")
    with pytest.raises(GraphcError, match="draws a Graph or a Partition"):
        viz.to_dot("not a graph")


def test_functions_use_example_args_and_jit():
    assert len(viz.apply_stage(seeds.mlp, "traced").inputs) == 5
    g = viz.apply_stage(graphc.jit(seeds.poly), "traced", 2.0)
    assert [n.op for n in g.equations][0] == "integer_pow"


# -- large graphs ------------------------------------------------------------------------------


def chain(x, n, scoped):
    for i in range(n):
        if scoped:
            with graphc.scope(f"model.layers.{i // 100}"):
                x = np.tanh(x) * 0.5 + x
        else:
            x = np.tanh(x) * 0.5 + x
    return np.sum(x)


@pytest.fixture(scope="module")
def big_scoped():
    g = graphc.trace(chain, graphc.spec("f32[8]"), 2500, True)
    assert len(g.nodes) >= 10_000
    return g


def test_10k_nodes_collapse_by_scope_and_render(big_scoped, tmp_path):
    t0 = time.perf_counter()
    dot = viz.to_dot(big_scoped)
    t_dot = time.perf_counter() - t0
    assert t_dot < 5.0, f"DOT generation took {t_dot:.2f} s"
    nodes = node_lines(dot)
    assert len(nodes) <= viz.DEFAULT_BUDGET
    boxes = [ln for ln in nodes if "shape=tab" in ln]
    assert len(boxes) == 25
    assert "model.layers.7\\n300 nodes: add ×100, mul ×100, tanh ×100" in dot
    assert "10,002 nodes shown as" in dot
    assert 'label="f32[8] ×2"' in dot  # merged edges between boxes
    if HAVE_DOT:
        t0 = time.perf_counter()
        viz.render(big_scoped, tmp_path / "big.svg")
        t_render = time.perf_counter() - t0
        assert t_render < 10.0, f"rendering took {t_render:.2f} s"
        ET.parse(tmp_path / "big.svg")


def test_10k_nodes_without_scopes_collapse_into_blocks():
    g = graphc.trace(chain, graphc.spec("f32[8]"), 2500, False)
    dot = viz.to_dot(g, budget=100)
    nodes = node_lines(dot)
    assert len(nodes) <= 100
    blocks = [ln for ln in nodes if "shape=folder" in ln]
    assert len(blocks) > 10
    assert "tanh ×" in blocks[0]
    # the input and the output stay visible
    assert node_line(dot, "a: x") and node_line(dot, "out 0")
    full = viz.to_dot(g, budget=None)
    assert len(node_lines(full)) > 10_000


def test_fused_kernels_collapse_to_boxes_with_counts():
    g = run_pipeline(graphc.trace(chain, graphc.spec("f32[8]"), 300, False), COMPILE_PIPELINE)
    dot = viz.to_dot(g, budget=60)
    boxes = [ln for ln in node_lines(dot) if "shape=box3d" in ln]
    assert boxes and "cluster_kernel" not in dot
    assert re.search(r"\d+ nodes: \w+ ×\d+", boxes[0])


def test_collapsed_joint_picture_keeps_roles_and_residuals():
    g = graphc.trace(chain, graphc.spec("f32[8]"), 150, True)
    dot = viz.to_dot(viz.apply_stage(g, "joint"), budget=40)
    assert len(node_lines(dot)) <= 40
    assert viz._GRAD_FILL in dot and "saved 32 B" in dot
    assert "∂ ×" in dot  # merged gradient links


# -- rendering ---------------------------------------------------------------------------------


@needs_dot
def test_render_svg_png_pdf(tmp_path):
    out = viz.render(seeds.mlp_loss, tmp_path / "joint.svg", stage="joint", legend=True)
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    ns = {"s": "http://www.w3.org/2000/svg"}
    titles = {t.text for t in root.iterfind(".//s:g[@class='cluster']/s:title", ns)}
    assert any(t.startswith("cluster_kernel_") for t in titles)
    texts = " ".join(t.text or "" for t in root.iterfind(".//s:text", ns))
    assert "saved 512 B" in texts and "grad W1" in texts
    png = viz.render(trace("sqdiff"), tmp_path / "g.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    pdf = viz.render(seeds.mlp, tmp_path / "g.pdf", stage="fused")
    assert open(pdf, "rb").read(5) == b"%PDF-"


def test_render_dot_and_bad_extension(tmp_path):
    out = viz.render(seeds.poly, tmp_path / "p.dot", 2.0, stage="grad")
    assert open(out).read().startswith("digraph")
    with pytest.raises(GraphcError, match=r"\.svg, \.png, \.pdf or \.dot"):
        viz.render(seeds.poly, tmp_path / "p.txt", 2.0)


def _assert_install_hint(e: pytest.ExceptionInfo) -> None:
    msg = str(e.value)
    assert isinstance(e.value, GraphcError)
    assert "apt-get install graphviz" in msg and "brew install graphviz" in msg
    assert "\n" not in msg and msg.count(". ") == 0


def test_missing_dot_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    g = trace("mlp")
    with pytest.raises(viz.GraphvizNotFoundError) as e:
        viz.render(g, tmp_path / "g.svg")
    _assert_install_hint(e)
    assert not (tmp_path / "g.svg").exists()
    # DOT text needs no Graphviz
    assert open(viz.render(g, tmp_path / "g.dot")).read().startswith("digraph")


def test_missing_dot_executable_not_found(tmp_path, monkeypatch):
    def missing(self, *a, **k):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Source, "pipe", missing)
    with pytest.raises(viz.GraphvizNotFoundError) as e:
        viz.render(seeds.poly, tmp_path / "p.png", 2.0)
    _assert_install_hint(e)


def test_dot_ranking_bug_is_retried_with_newrank(monkeypatch):
    calls = []

    def flaky(self, *a, **k):
        calls.append(self.source)
        if "newrank=true" not in self.source:
            raise graphviz.CalledProcessError(1, ["dot"], stderr=b"Error: trouble in init_rank\n")
        return b"<svg/>"

    monkeypatch.setattr(graphviz.Source, "pipe", flaky)
    assert viz.pipe(trace("mlp").to_dot(), "svg") == b"<svg/>"
    assert len(calls) == 2


def test_fmt_bytes():
    assert [viz._fmt_bytes(n) for n in (512, 32 * 1024, 3 << 20, 5 << 30)] == [
        "512 B",
        "32.0 KiB",
        "3.0 MiB",
        "5.0 GiB",
    ]
