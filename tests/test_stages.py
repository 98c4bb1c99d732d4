"""graphc.stages: every stage built in one place, giving the graphs the passes give when called
directly; fusion's record of which nodes each kernel computes, which pictures draw."""

import ast
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import seeds
from conftest import marker_line

import graphc
from graphc import stages, viz
from graphc.cli import main
from graphc.ir import GraphcError, is_float
from graphc.text import node_names
from passes import COMPILE_PIPELINE, DEFAULT_PIPELINE, run_pipeline
from passes.autodiff import vjp
from passes.fuse import fuse
from passes.partition import Partition, partition

ROOT = Path(__file__).resolve().parent.parent
S = graphc.spec


def softmax_pool(x, b):
    """A row reduction, broadcasts against it, and a reduction over the other axis."""
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return np.sum(e / np.sum(e, axis=1, keepdims=True) * b, axis=0)


def three_outputs(x, y, n):
    """Several outputs, one of them an integer (not differentiated), and an integer input."""
    h = np.tanh(x) * y
    return h, np.sum(h * x) + n.astype(np.float32).sum(), np.argmax(h, axis=1)


def repeated(x):
    """The same value traced three times: structurally equal nodes in different kernels."""
    return np.tanh(x).sum(axis=1) + np.tanh(x).sum(axis=1) * np.tanh(x)[:, 0]


def counted(x, n):
    """A loop over integers only (the gradient passes it by), and float math around it."""
    k = graphc.fori_loop(0, 3, lambda i, c: c * 2 + n, n)
    return np.sum(np.tanh(x) * k.astype(np.float32))


PROGRAMS = {
    "mlp_loss": (seeds.mlp_loss, seeds.EXAMPLE_ARGS["mlp_loss"]),
    "counted": (counted, (S("f32[4]"), S("i32[]"))),
    "softmax_pool": (softmax_pool, (S("f32[4,6]"), S("f32[6]"))),
    "three_outputs": (three_outputs, (S("f32[3,5]"), S("f32[5]"), S("i32[3]"))),
    "repeated": (repeated, (S("f32[4,5]"),)),
}


def direct(graph, stage):
    """The stage made by calling the passes themselves."""
    wrt = [k for k, x in enumerate(graph.inputs) if is_float(x.dtype)]
    outs = [k for k, o in enumerate(graph.outputs) if is_float(o.dtype)]
    loss = len(graph.outputs) == 1 and graph.outputs[0].aval.shape == () and outs == [0]
    if stage == "traced":
        return graph
    if stage == "grad":
        return vjp(graph, wrt, seed="ones" if loss else "inputs", outputs=outs)
    joint = vjp(graph, wrt, seed="inputs", outputs=outs)
    if stage == "joint":
        return joint
    if stage in ("forward", "backward"):
        return getattr(partition(joint), stage)
    return run_pipeline(graph, DEFAULT_PIPELINE if stage == "optimized" else COMPILE_PIPELINE)


# -- the stages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", stages.STAGES)
@pytest.mark.parametrize("name", PROGRAMS)
def test_each_stage_is_the_graph_the_passes_give(name, stage):
    fn, args = PROGRAMS[name]
    want = direct(graphc.trace(fn, *args), stage)
    got = stages.build(fn, stage, *args)
    assert str(got) == str(want)
    assert got.pretty() == want.pretty()  # the source locations too
    cached = stages.Stages(graphc.trace(fn, *args)).get(stage)
    assert str(cached) == str(want)


@pytest.mark.parametrize("stage", ["traced", "grad", "forward", "backward", "optimized", "fused"])
def test_the_command_prints_the_stages_graph(stage, capsys):
    assert main(["dump", str(ROOT / "examples" / "seeds.py:mlp"), "--stage", stage]) == 0
    printed = capsys.readouterr().out
    want = stages.build(seeds.mlp, stage).pretty(locations=True)
    if stage in ("forward", "backward"):  # then a line on what crosses between the two
        g = graphc.trace(seeds.mlp, *seeds.EXAMPLE_ARGS["mlp"])
        part = stages.partitioned(stages.joint(g))
        want += f"\n# residuals: {len(part.residuals)} values, {part.residual_bytes} bytes"
        want += " saved for the backward pass"
    # the command imports the file under its own module name; the locations are the same file
    assert printed == want + "\n"


def test_stage_functions_compose():
    g = graphc.trace(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"])
    assert str(stages.traced(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"])) == str(g)
    assert stages.traced(g) is g
    assert stages.grad(g).info["wrt"] == (0, 1, 2, 3, 4, 5)
    assert stages.grad(g, seed="inputs").pretty() == stages.joint(g).pretty()
    part = stages.partitioned(stages.joint(g))
    assert isinstance(part, Partition) and part.residuals
    assert str(stages.optimized(g)) == str(run_pipeline(g, DEFAULT_PIPELINE))
    assert str(stages.fused(g)) == str(run_pipeline(g, COMPILE_PIPELINE))
    steps = stages.after_passes(g, ["fold", "cse"], diffs=True).info["pipeline"]
    assert [r.name for r in steps] == ["fold", "cse"]
    assert "def " in stages.kernel_source(g)


def test_one_partition_serves_forward_and_backward():
    st = stages.Stages(graphc.trace(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"]))
    assert st.get("backward").info["forward"] is st.get("forward")
    assert st.get("joint") is st.get("joint")  # built once
    assert st.get("traced") is st.graph


def test_stage_refusals():
    g = graphc.trace(seeds.poly, 2.0)
    with pytest.raises(GraphcError, match="unknown stage 'bogus'"):
        stages.build(g, "bogus")
    with pytest.raises(GraphcError, match="unknown stage 'bogus'"):
        stages.Stages(g).get("bogus")
    with pytest.raises(GraphcError, match="already a graph"):
        stages.traced(g, 2.0)
    with pytest.raises(GraphcError, match="no floating-point outputs"):
        stages.grad(graphc.trace(lambda x: x > 0, S("f32[3]")))
    part = stages.partitioned(stages.build(seeds.mlp_loss, "joint"))
    assert stages.build(part, "joint") is part
    with pytest.raises(GraphcError, match="drawn as it is"):
        stages.build(part, "fused")


# -- the graphs nodes hold, and what passes change inside them ---------------------------------


def decay(xs, w):
    """A scan whose body branches; `* 1.0` and `- 0.0` for simplify to remove."""

    def step(c, x):
        v = graphc.cond(c > 0, lambda u: u * 1.0, lambda u: u - 0.0, c)  # the cond
        return v * w + x * 1.0, np.exp(c)

    return graphc.scan(step, np.float32(0), xs)  # the scan


def test_regions_name_the_graphs_a_node_holds():
    g = graphc.trace(decay, S("f32[5]"), S("f32[]"))
    scan = g.equations[0]
    assert scan.op == "scan"
    ((name, body),) = stages.regions(scan)
    assert name == "body" and body is scan.attrs["body"]
    (branch,) = [n for n in scan.attrs["body"].nodes if n.op == "cond"]
    assert stages.regions(branch) == [
        ("branches[0]", branch.attrs["branches"][0]),
        ("branches[1]", branch.attrs["branches"][1]),
    ]
    w = graphc.trace(lambda x: graphc.while_loop(lambda c: c < 9, lambda c: c + 1, x), S("f32[]"))
    loop = w.equations[0]
    assert stages.regions(loop) == [("cond", loop.attrs["cond"]), ("body", loop.attrs["body"])]
    mlp = graphc.trace(seeds.mlp, *seeds.EXAMPLE_ARGS["mlp"])
    fused = [n for n in stages.fused(mlp).nodes if n.op == "fused"]
    assert fused and all([k for k, _ in stages.regions(n)] == ["body"] for n in fused)
    assert stages.regions(g.outputs[0]) == []  # a proj holds no graph


def test_pass_steps_are_the_pipeline_one_pass_at_a_time():
    g = graphc.trace(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"])
    steps = stages.pass_steps(g, COMPILE_PIPELINE)
    whole = stages.after_passes(g, COMPILE_PIPELINE, diffs=True)
    assert str(steps[-1][1]) == str(whole)
    for (rec, after), want in zip(steps, whole.info["pipeline"], strict=True):
        assert (rec.name, rec.nodes_before, rec.nodes_after) == (
            want.name,
            want.nodes_before,
            want.nodes_after,
        )
        assert (rec.removed, rec.added, rec.rewritten) == (want.removed, want.added, want.rewritten)
        assert rec.nodes_after == len(after.equations)
    with pytest.raises(GraphcError, match="needs a graph without fused kernels"):
        stages.pass_steps(g, ["fuse", "fuse"])  # the order is checked before anything runs


def test_region_changes_say_what_changed_inside_loops_and_branches():
    g = graphc.trace(decay, S("f32[5]"), S("f32[]"))
    here = Path(__file__).resolve()
    loc = str(here.relative_to(Path.cwd())) if here.is_relative_to(Path.cwd()) else str(here)
    scan = f"scan body ({loc}:{marker_line(str(here), 'the scan')})"
    cond = f"cond branches[%d] ({loc}:{marker_line(str(here), 'the cond')})"
    changes = stages.region_changes(g, stages.after_passes(g, ["simplify"]))
    assert changes == [
        # x * 1.0 goes; what reads the simplified values is rebuilt
        (scan, Counter(mul=1), Counter(), Counter(cond=1, proj=1, mul=1, add=1)),
        (f"{scan} › {cond % 0}", Counter(sub=1), Counter(), Counter()),
        (f"{scan} › {cond % 1}", Counter(mul=1), Counter(), Counter()),
    ]
    assert stages.region_changes(g, stages.after_passes(g, ["cse"])) == []
    # a graph whose loops are new (or gone) has nothing to compare inside them
    plain = graphc.trace(lambda x: np.tanh(x), S("f32[3]"))
    assert stages.region_changes(plain, g) == stages.region_changes(g, plain) == []


# -- fusion's record of each kernel's nodes ------------------------------------------------------


def fusion_inputs():
    out = []
    for name, (fn, args) in PROGRAMS.items():
        g = graphc.trace(fn, *args)
        out += [(f"{name}:traced", g), (f"{name}:joint", stages.joint(g))]
        out.append((f"{name}:optimized", stages.optimized(g)))
    return out


@pytest.mark.parametrize(
    "name, graph", fusion_inputs(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_fusion_records_the_input_nodes_of_each_kernel(name, graph):
    out = fuse(graph)
    kernels = out.info["kernels"]
    fused_nodes = [n for n in out.nodes if n.op == "fused"]
    assert len(kernels) == len(fused_nodes) == out.info["fusion"].kernels > 0
    position = {id(n): k for k, n in enumerate(graph.nodes)}
    # every member is a node of the input graph, in exactly one kernel
    held = Counter(id(m) for members in kernels for m in members)
    assert set(held) <= set(position) and set(held.values()) == {1}
    for members, f in zip(kernels, fused_nodes, strict=True):
        body = f.attrs["body"]
        # each kernel's members are its body's equations: as many, the same ops and types
        assert len(members) == len(body.equations)
        assert Counter((m.op, str(m.aval), m.attr_key()) for m in members) == Counter(
            (b.op, str(b.aval), b.attr_key()) for b in body.equations
        )
        assert [position[id(m)] for m in members] == sorted(position[id(m)] for m in members)
    # and every other equation stays outside the kernels
    # (a proj reading a kernel's results is fusion's; one reading a loop's was there before)
    outside = [
        n
        for n in out.equations
        if n.op != "fused" and not (n.op == "proj" and n.inputs[0].op == "fused")
    ]
    assert len(graph.equations) == sum(held.values()) + len(outside)


def test_a_fused_graph_has_no_kernels_to_find():
    g = stages.fused(graphc.trace(seeds.mlp, *seeds.EXAMPLE_ARGS["mlp"]))
    assert stages.kernels(g) == []


def test_kernel_clusters_hold_exactly_the_fused_nodes():
    """Structurally equal values (three tanh(x)) fall in different kernels: each cluster of the
    joint picture holds the very nodes fusion put in that kernel."""
    joint = stages.joint(graphc.trace(repeated, S("f32[4,5]")))
    dot = viz.to_dot(joint)
    names = node_names(joint)
    kernels = fuse(joint).info["kernels"]
    assert len(kernels) > 1
    tanhs = [n for n in joint.nodes if n.op == "tanh"]
    assert len(tanhs) == 3
    for k, members in enumerate(kernels):
        block = dot[dot.index(f"subgraph cluster_kernel_{k} {{") :]
        block = block[: block.index("}")]
        drawn = {
            ln.split()[0]
            for ln in block.splitlines()[1:]
            if "[" in ln and "->" not in ln and "shape=plaintext" not in ln and "label=" in ln
        }
        assert drawn == {names[id(m)] for m in members}


# -- who builds stages ---------------------------------------------------------------------------


def _imported_names(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


@pytest.mark.parametrize("module", ["viz", "cli"])
def test_pictures_and_the_command_build_no_stage_themselves(module):
    names = _imported_names(ROOT / "graphc" / f"{module}.py")
    passes = {n for n in names if n.startswith("passes")}
    # the names of the passes and pipelines (to list them) and the Partition type, nothing
    # that runs autodiff, partitioning, fusion or a pipeline
    assert passes <= {
        "passes.COMPILE_PIPELINE",
        "passes.DEFAULT_PIPELINE",
        "passes.PASSES",
        "passes.partition.Partition",
    }
    assert "graphc.api.lower" not in names and "graphc.trace.trace" not in names


def test_stages_sit_below_the_pictures_and_the_command():
    names = _imported_names(ROOT / "graphc" / "stages.py")
    assert not any(n.startswith(("graphc.viz", "graphc.cli", "graphc.nn")) for n in names)
