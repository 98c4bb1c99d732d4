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
from graphc.text import node_names
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


# -- loops and branches ------------------------------------------------------------------------

_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')


def dot_edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    """(tail, head, attributes) of every edge, attribute values unquoted."""
    out = []
    for ln in edge_lines(dot):
        head, _, rest = ln.partition(" [")
        a, b = (x.strip() for x in head.split("->"))
        out.append((a, b, {k: v.strip('"') for k, v in _ATTR.findall(rest)}))
    return out


def ids_in(text: str) -> set[str]:
    """The ids of the nodes declared in `text` (a subgraph block), literals left out."""
    return {ln.split()[0] for ln in node_lines(text) if "shape=plaintext" not in ln}


def node_id(dot: str, label_start: str) -> str:
    return node_line(dot, label_start).split()[0]


def clusters(dot: str) -> dict[str, str]:
    """Subgraph name -> its label, for every cluster."""
    return {
        name: label_of(attrs)
        for name, attrs in re.findall(r"subgraph (cluster_\w+) \{\s*\n\s*([^\n]*)", dot)
    }


def back_edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    return [e for e in dot_edges(dot) if e[2].get("constraint") == "false"]


def two_carries(xs, w):
    """A scan: a loop-invariant operand (w), two carries (one a pair), one sequence, two ys."""

    def step(c, x):
        s, (k, m) = c
        s = s * w + np.tanh(x)
        return (s, (k + 1, np.maximum(m, x))), (s * 2.0, x > 0)

    return graphc.scan(step, (np.float32(0), (0, np.float32(-np.inf))), xs)


def halve(x):
    return graphc.while_loop(
        lambda c: np.sum(c[0]) > 1.0, lambda c: (c[0] * 0.5, c[1] + 1), (x, 0), max_trips=50
    )


def pick(p, x):
    return graphc.cond(p > 0, lambda v: np.sin(v) * 2.0, lambda v: np.cos(v) + 1.0, x)


def pick3(i, x):
    return graphc.switch(i, [np.sin, np.cos, lambda v: v * v], x)


def nested(xs, w):
    """A scan whose body runs a while loop whose body branches."""

    def outer(c, x):
        def inner(k):
            return graphc.cond(
                k[1] > 2, lambda v: (v[0] * 0.5, v[1] + 1), lambda v: (v[0] + x, v[1] + 1), k
            )

        y, _ = graphc.while_loop(lambda k: k[1] < 4, inner, (c, 0))
        return y * w, np.tanh(y)

    c, ys = graphc.scan(outer, np.float32(1), xs, reverse=True)
    return np.sum(ys) + c


def counted(x, n):
    """A loop over integers only: every stage, the gradient too, has it."""
    k = graphc.fori_loop(0, 3, lambda i, c: c * 2 + n, n)
    return np.sum(np.tanh(x) * k.astype(np.float32))


F32, F32_5, BOOL = graphc.spec("f32[]"), graphc.spec("f32[5]"), graphc.spec("bool[]")


def test_a_scan_is_a_cluster_with_carries_slices_and_stacked_outputs():
    g = graphc.trace(two_carries, F32_5, F32)
    dot = viz.to_dot(g)
    assert clusters(dot) == {"cluster_scan_0": "scan c · length 5"}
    body = block(dot, "cluster_scan_0")
    inside = ids_in(body)
    carries = [ln for ln in node_lines(body) if "shape=invtrapezium" in ln]
    assert [label_of(ln) for ln in carries] == [
        "carry 0\\nf32[]",
        "carry 1\\ni64[]",
        "carry 2\\nf32[]",
    ]
    assert label_of(node_line(body, "a[t]")) == "a[t]\\nf32[]"  # step t of the sequence a
    stacks = sorted(label_of(ln) for ln in node_lines(body) if "shape=parallelogram" in ln)
    assert stacks == ["a[t]\\nf32[]", "stack 0\\nf32[5]", "stack 1\\nbool[5]"]
    assert {"tanh", "maximum", "gt"} <= {label_of(ln) for ln in node_lines(body)}
    # one dashed back edge per carry, from its new value inside the loop to the carry
    back = back_edges(dot)
    carry_ids = [ln.split()[0] for ln in carries]
    assert sorted(b for _, b, _ in back) == sorted(carry_ids)
    assert all(a in inside and at["style"] == "dashed" for a, _, at in back)
    assert sorted(at["label"] for _, _, at in back) == ["carry 0", "carry 1", "carry 2"]
    edges = dot_edges(dot)
    # the sequence enters as slices, the loop-invariant operand enters the cluster itself
    assert ("a", node_id(body, "a[t]"), {"label": "f32[5]"}) in edges
    invariant = [(a, b) for a, b, at in edges if at.get("color") == viz._INVARIANT]
    assert len(invariant) == 1 and invariant[0][0] == "b" and invariant[0][1] in inside
    assert label_of(node_line(dot, "b: w")) == "b: w\\nf32[]"
    # the results leave the cluster: the stacked ys, and the final carries from their values
    outs = {b: (a, at.get("label")) for a, b, at in edges if b.startswith("out")}
    assert outs["out3"] == (node_id(body, "stack 0"), "f32[5]")
    assert outs["out4"] == (node_id(body, "stack 1"), "bool[5]")
    assert outs["out0"][0] in inside and outs["out0"][0] not in carry_ids
    assert "proj" not in node_labels(dot)


def test_a_reversed_scan_says_so():
    g = graphc.trace(lambda xs: graphc.scan(lambda c, x: (c + x, c), 0.0, xs, reverse=True), F32_5)
    assert list(clusters(viz.to_dot(g)).values()) == ["scan b · length 5 · reverse"]


def test_a_checkpointed_scan_says_it_recomputes():
    def f(xs, w):
        return graphc.scan(lambda c, x: (np.tanh(c * w + x),) * 2, 0.0, xs, checkpoint=2)[0]

    g = viz.apply_stage(f, "grad", graphc.spec("f32[4]"), F32)
    (outer,) = [n for n in g.nodes if n.op == "scan" and n.attrs.get("remat")]
    dot = viz.to_dot(g)
    remat = {k: v for k, v in clusters(dot).items() if v.endswith("remat")}
    assert list(remat.values()) == [f"scan {node_names(g)[id(outer)]} · length 2 · remat"]
    # it runs the segment's steps as a scan of its own, drawn inside
    inner = re.findall(r"subgraph (cluster_scan_\d+) \{", block(dot, next(iter(remat))))
    assert len(inner) == 2 and clusters(dot)[inner[1]].endswith("· length 2")


def test_an_unchanged_carry_loops_on_itself():
    g = graphc.trace(lambda xs, s: graphc.scan(lambda c, x: (c, c * x), s, xs), F32_5, F32)
    ((a, b, at),) = back_edges(viz.to_dot(g))
    assert a == b and at["label"] == "carry 0 (unchanged)"


def test_a_while_loop_has_cond_and_body_clusters_and_carries():
    dot = viz.to_dot(graphc.trace(halve, graphc.spec("f32[3]")))
    assert clusters(dot) == {
        "cluster_while_loop_0": "while b · max_trips 50",
        "cluster_while_loop_0_cond": "cond",
        "cluster_while_loop_0_body": "body",
    }
    loop = block(dot, "cluster_while_loop_0")
    cond, body = block(loop, "cluster_while_loop_0_cond"), block(loop, "cluster_while_loop_0_body")
    assert label_of(node_line(cond, "while true")) == "while true" and has_node(cond, "gt")
    assert not has_node(body, "gt") and has_node(body, "mul") and has_node(body, "add")
    carries = {label_of(ln): ln.split()[0] for ln in node_lines(loop) if "invtrapezium" in ln}
    assert set(carries) == {"carry 0\\nf32[3]", "carry 1\\ni64[]"}
    assert not set(carries.values()) & (ids_in(cond) | ids_in(body))  # shared by both
    back = back_edges(dot)
    assert sorted(b for _, b, _ in back) == sorted(carries.values())
    assert all(a in ids_in(body) for a, _, _ in back)
    edges = dot_edges(dot)
    # both graphs read the carries; the result is the carry when the test fails
    assert (carries["carry 0\\nf32[3]"], node_id(cond, "reduce_sum"), {"label": "f32[3]"}) in edges
    assert ("a", carries["carry 0\\nf32[3]"], {"label": "f32[3]"}) in edges
    assert (carries["carry 0\\nf32[3]"], "out0", {"label": "f32[3]"}) in edges
    no_limit = graphc.trace(lambda x: graphc.while_loop(lambda c: c < 9, lambda c: c + 1, x), F32)
    assert list(clusters(viz.to_dot(no_limit)).values())[0] == "while b"


def test_a_cond_has_a_cluster_per_branch():
    dot = viz.to_dot(graphc.trace(pick, F32, graphc.spec("f32[3]")))
    assert clusters(dot) == {
        "cluster_cond_0": "cond d · 2 branches",
        "cluster_cond_0_branch0": "branch 0 (false)",
        "cluster_cond_0_branch1": "branch 1 (true)",
    }
    outer = block(dot, "cluster_cond_0")
    false, true = block(outer, "cluster_cond_0_branch0"), block(outer, "cluster_cond_0_branch1")
    assert has_node(false, "cos") and not has_node(false, "sin")
    assert has_node(true, "sin") and not has_node(true, "cos")
    edges = dot_edges(dot)
    # the operand enters each branch; the index feeds the test; each branch feeds the result
    assert ("b", node_id(false, "cos"), {"label": "f32[3]"}) in edges
    assert ("b", node_id(true, "sin"), {"label": "f32[3]"}) in edges
    test, result = node_id(outer, "if"), node_id(outer, "result 0")
    assert (node_id(dot, "gt"), test, {"label": "bool[]"}) in edges
    into_result = {a for a, b, _ in edges if b == result}
    assert into_result == {node_id(false, "add"), node_id(true, "mul"), test}
    assert (result, "out0", {"label": "f32[3]"}) in edges
    assert not back_edges(dot)


def test_a_branch_without_ops_is_still_drawn():
    g = graphc.trace(lambda p, x: graphc.cond(p, lambda v: v * 0.5, lambda v: v, x), BOOL, F32)
    dot = viz.to_dot(g)
    assert set(clusters(dot)) == {
        "cluster_cond_0",
        "cluster_cond_0_branch0",
        "cluster_cond_0_branch1",
    }
    false = block(dot, "cluster_cond_0_branch0")
    assert node_labels(false) == ["no ops"]
    # what the branch returns is its operand, straight into the result
    result = node_id(dot, "result 0")
    assert {a for a, b, _ in dot_edges(dot) if b == result} == {
        "b",
        node_id(dot, "mul"),
        node_id(dot, "if"),
    }


def test_a_switch_names_its_branches_by_index():
    dot = viz.to_dot(graphc.trace(pick3, graphc.spec("i32[]"), graphc.spec("f32[3]")))
    assert clusters(dot) == {
        "cluster_cond_0": "switch c · 3 branches",
        "cluster_cond_0_branch0": "branch 0",
        "cluster_cond_0_branch1": "branch 1",
        "cluster_cond_0_branch2": "branch 2",
    }
    assert label_of(node_line(dot, "switch")) == "switch"


def test_nested_loops_nest_their_clusters():
    dot = viz.to_dot(graphc.trace(nested, graphc.spec("f32[6]"), F32))
    assert clusters(dot) == {
        "cluster_scan_0": "scan c · length 6 · reverse",
        "cluster_while_loop_1": "while d",
        "cluster_while_loop_1_cond": "cond",
        "cluster_while_loop_1_body": "body",
        "cluster_cond_2": "cond e · 2 branches",
        "cluster_cond_2_branch0": "branch 0 (false)",
        "cluster_cond_2_branch1": "branch 1 (true)",
    }
    scan = block(dot, "cluster_scan_0")
    loop = block(scan, "cluster_while_loop_1")
    branch = block(block(loop, "cluster_while_loop_1_body"), "cluster_cond_2")
    assert has_node(branch, "result 0") and has_node(branch, "result 1")
    # the scan's carry, and the while loop's two carries (fed by the branch's results)
    back = back_edges(dot)
    assert len(back) == 3
    results = {node_id(branch, "result 0"), node_id(branch, "result 1")}
    assert {a for a, b, _ in back if b in ids_in(loop)} == results
    # the sequence slice is read in the false branch, three levels down
    xt = node_id(scan, "a[t]")
    assert any(
        a == xt and b in ids_in(block(branch, "cluster_cond_2_branch0"))
        for a, b, _ in dot_edges(dot)
    )


@pytest.mark.parametrize("stage", ["traced", "grad", "joint", "forward", "optimized", "fused"])
def test_loops_are_drawn_at_every_stage(stage):
    g = viz.apply_stage(counted, stage, graphc.spec("f32[4]"), graphc.spec("i32[]"))
    (scan,) = [n for n in g.nodes if n.op == "scan"]
    # fori_loop(0, 3, ...) is a scan of 3 steps carrying the counter (which the optimizer
    # drops: nothing reads it) and the value
    assert scan.attrs["n_carry"] == (1 if stage in ("optimized", "fused") else 2)
    dot = viz.to_dot(g)
    loops = {k: v for k, v in clusters(dot).items() if k.startswith("cluster_scan")}
    assert len(loops) == 1
    name, label = next(iter(loops.items()))
    assert label == f"scan {node_names(g)[id(scan)]} · length 3"
    carries = [ln.split()[0] for ln in node_lines(block(dot, name)) if "invtrapezium" in ln]
    assert len(carries) == scan.attrs["n_carry"]
    assert sorted(b for _, b, _ in back_edges(dot)) == sorted(carries)


def test_a_partition_draws_its_loops_in_the_forward_part():
    g = graphc.trace(counted, graphc.spec("f32[4]"), graphc.spec("i32[]"))
    dot = viz.to_dot(partition(viz.apply_stage(g, "joint")))
    forward = block(dot, "cluster_forward")
    assert "subgraph cluster_scan_0 {" in forward
    assert "cluster_scan" not in block(dot, "cluster_backward")
    assert len(back_edges(forward + "\n" + dot)) >= 2


def long_body(xs, h):
    """A scan whose body holds a branch with a long chain: 40 + 10 ops, and 20 outside."""

    def step(c, x):
        c = chain_ops(c + x, 10)
        return c, graphc.cond(np.sum(c) > 0, lambda v: chain_ops(v, 13), lambda v: v * 2.0, c)

    c, ys = graphc.scan(step, h, xs)
    return np.sum(chain_ops(ys, 7)) + np.sum(c)


def chain_ops(x, n):
    for _ in range(n):
        x = np.tanh(x) * 0.5 + x
    return x


def test_large_loop_bodies_collapse_innermost_first():
    g = graphc.trace(long_body, graphc.spec("f32[7,4]"), graphc.spec("f32[4]"))
    full = viz.to_dot(g, budget=None)
    assert len(node_lines(full)) > 100 and "subgraph cluster_cond_1 {" in full
    # the branch first: one box inside the scan's cluster, which stays
    dot = viz.to_dot(g, budget=75)
    assert len([ln for ln in node_lines(dot) if "shape=plaintext" not in ln]) <= 75
    assert "loops and branches nested 2 deep collapsed" in dot
    box = node_line(dot, "cond")
    assert "shape=component" in box
    # both branches: 13 steps of tanh, mul, add and one mul
    assert label_of(box) == "cond bj · 2 branches\\n40 nodes: mul ×14, add ×13, tanh ×13"
    assert box in block(dot, "cluster_scan_0") and "cluster_cond" not in dot
    # then the scan: its back edge falls inside the box
    dot = viz.to_dot(g, budget=40)
    assert "(loops and branches collapsed)" in dot
    scan = node_line(dot, "scan c")
    assert "shape=component" in scan and "cluster_scan" not in dot and not back_edges(dot)
    assert re.search(r"\d+ nodes: ", label_of(scan))


def test_a_checkpoint_is_a_call_drawn_in_place_at_every_stage():
    def f(x):
        return np.sum(graphc.checkpoint(lambda a: np.sin(np.tanh(a)) * 2.0)(x))

    traced = viz.to_dot(graphc.trace(f, graphc.spec("f32[3]")))
    assert clusters(traced) == {"cluster_checkpoint_0": "checkpoint b"}
    call = block(traced, "cluster_checkpoint_0")
    assert [label_of(ln) for ln in node_lines(call) if "plaintext" not in ln] == [
        "tanh",
        "sin",
        "mul",
    ]
    edges = dot_edges(traced)
    # its operand goes straight in, its result straight out (no proj)
    assert ("a", node_id(call, "tanh"), {"label": "f32[3]"}) in edges
    assert (node_id(call, "mul"), node_id(traced, "reduce_sum"), {"label": "f32[3]"}) in edges
    # the gradient recomputes the body in a checkpoint of its own, in the backward pass
    grad = viz.to_dot(viz.apply_stage(f, "grad", graphc.spec("f32[3]")))
    calls = [k for k in clusters(grad) if k.startswith("cluster_checkpoint")]
    assert len(calls) == 2
    backward = block(grad, calls[1])
    assert has_node(backward, "cos") and viz._GRAD_FILL in backward
    # after inlining, the fused stage has none
    assert "cluster_checkpoint" not in viz.to_dot(
        viz.apply_stage(f, "fused", graphc.spec("f32[3]"))
    )


def test_a_function_with_its_own_derivative_rules_names_them():
    @graphc.custom_vjp
    def softplus(x):
        return np.log1p(np.exp(x))

    softplus.defvjp(
        lambda x: (np.log1p(np.exp(x)), (x,)), lambda res, g: (g / (1 + np.exp(-res[0])),)
    )
    dot = viz.to_dot(graphc.trace(lambda x: np.sum(softplus(x)), graphc.spec("f32[3]")))
    assert clusters(dot) == {"cluster_custom_vjp_call_0": "custom_vjp_call b · rules: fwd, bwd"}
    # what it computes is its function, not its rules
    inside = block(dot, "cluster_custom_vjp_call_0")
    assert [label_of(ln) for ln in node_lines(inside)] == ["exp", "log1p"]


def test_an_op_the_picture_does_not_know_is_a_box_beside_its_graphs():
    from graphc.ir import Aval, Graph, Meta, Node, TupleAval, make_input

    body = graphc.trace(lambda a, b: (np.tanh(a) + b, a * b), *[graphc.spec("f32[3]")] * 2)
    f32 = Aval((3,), np.dtype(np.float32))
    x = make_input(f32, "x")
    n = Node("mystery", (x, x), {"body": body, "k": 2}, TupleAval((f32, f32)), Meta())
    g = Graph([x], [Node("proj", (n,), {"index": 1}, f32, Meta())])
    dot = viz.to_dot(g)
    assert clusters(dot) == {"cluster_mystery_0": "mystery b", "cluster_mystery_0_body": "body"}
    outer = block(dot, "cluster_mystery_0")
    assert label_of(node_line(outer, "mystery")) == "mystery\\nk=2"  # its graph not written out
    inner = block(outer, "cluster_mystery_0_body")
    assert sorted(label_of(ln) for ln in node_lines(inner) if "house" in ln) == [
        "in 0\\nf32[3]",
        "in 1\\nf32[3]",
        "out 0",
        "out 1",
    ]
    assert ("b", node_id(dot, "proj"), {"label": "(f32[3], f32[3])"}) in dot_edges(dot)


@needs_dot
def test_loop_pictures_render(tmp_path):
    for fn, args, name in [
        (nested, (graphc.spec("f32[6]"), F32), "nested.svg"),
        (counted, (graphc.spec("f32[4]"), graphc.spec("i32[]")), "joint.svg"),
    ]:
        out = viz.render(fn, tmp_path / name, *args, stage="joint" if fn is counted else "traced")
        root = ET.parse(out).getroot()
        ns = {"s": "http://www.w3.org/2000/svg"}
        titles = {t.text for t in root.iterfind(".//s:g[@class='cluster']/s:title", ns)}
        assert any(t.startswith("cluster_scan_") for t in titles)
        texts = " ".join(t.text or "" for t in root.iterfind(".//s:text", ns))
        assert "carry 0" in texts


GOLDEN_LOOPS = {
    "scan": (two_carries, (graphc.spec("f32[4]"), F32), ["xs", "w"]),
    "cond": (pick, (F32, graphc.spec("f32[3]")), ["p", "x"]),
    "while_loop": (halve, (graphc.spec("f32[3]"),), ["x"]),
}


@pytest.mark.parametrize("name", GOLDEN_LOOPS)
def test_golden_loop_programs(name):
    """The IR text and the picture of a small scan, cond and while_loop, as committed (the
    picture drawn from the parsed text, so source lines do not enter its tooltips);
    GRAPHC_UPDATE_GOLDEN=1 rewrites them."""
    from conftest import check_golden

    fn, args, names = GOLDEN_LOOPS[name]
    text = str(graphc.trace(fn, *args))
    check_golden(f"{name}.ir", text)
    g = graphc.parse(text)
    assert str(g) == text
    check_golden(f"{name}.dot", viz.to_dot(g, input_names=names).rstrip("\n"))
