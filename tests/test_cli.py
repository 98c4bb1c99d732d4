"""The `graphc` command: dump, viz, passes, diff, cache, and one-line errors."""

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest
from conftest import marker_line

import graphc
from graphc.cli import graph_to_json, main, parse_value
from graphc.text import node_names
from passes import COMPILE_PIPELINE, DEFAULT_PIPELINE, PASSES

ROOT = Path(__file__).resolve().parent.parent
SEEDS = str(ROOT / "examples" / "seeds.py")
HAVE_DOT = shutil.which("dot") is not None

# convnet on 12x12 images: 12 -conv3-> 10 -pool-> 5 -conv3-> 3 -pool-> 1, so 8 features
CONVNET_SMALL = [
    "--arg",
    "f32[2,1,12,12]",
    "--arg",
    "f32[4,1,3,3]",
    "--arg",
    "f32[4]",
    "--arg",
    "f32[8,4,3,3]",
    "--arg",
    "f32[8]",
    "--arg",
    "f32[8,10]",
    "--arg",
    "f32[10]",
]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code, err, *fragments, status=2):
    assert code == status
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("graphc: error: ")
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


# -- dump --------------------------------------------------------------------------------------


def test_dump_traced_uses_example_args(capsys):
    code, out, err = run(capsys, "dump", f"{SEEDS}:mlp")
    assert code == 0 and not err
    assert out.startswith("{ lambda ; a:f32[4,16] b:f32[8,4] c:f32[8] d:f32[3,8] e:f32[3]. let")
    assert "matmul b a  # " in out and "seeds.py:26" in out


def test_dump_explicit_args_and_no_locations(capsys):
    code, out, _ = run(
        capsys, "dump", f"{SEEDS}:sqdiff", "--arg", "f32[5]", "--arg", "f32[5]", "--no-locations"
    )
    assert code == 0
    assert out == (
        "{ lambda ; a:f32[5] b:f32[5]. let\n"
        "    c:f32[5] = sub a b\n"
        "    d:f32[5] = integer_pow[n=2] c\n"
        "    e:f32[] = reduce_sum[axes=(0,), keepdims=False] d\n"
        "  in (e,) }\n"
    )


def test_named_args_match_parameters(capsys):
    code, out, _ = run(
        capsys,
        "dump",
        f"{SEEDS}:sqdiff",
        "--arg",
        "y=f64[3]",
        "--arg",
        "x=f32[3]",
        "--no-locations",
    )
    assert code == 0
    assert out.startswith("{ lambda ; a:f32[3] b:f64[3]. let")  # x first, whatever the order
    code, out, _ = run(
        capsys, "dump", f"{SEEDS}:sqdiff", "--arg", "f32[3]", "--arg", "y=f32[3]", "--format", "dot"
    )
    assert code == 0 and '"a: x' in out and '"b: y' in out  # parameter names in the picture


def test_dump_grad_stage(capsys):
    code, out, _ = run(capsys, "dump", f"{SEEDS}:mlp_loss", "--stage", "grad")
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("  in (p, ") and last.count(",") == 6  # loss + 6 gradients
    code, out, _ = run(capsys, "dump", f"{SEEDS}:poly", "--stage", "grad", "--no-locations")
    assert out.strip().splitlines()[-1] == "  in (f, k) }"


def test_dump_optimized_and_fused(capsys):
    _, opt, _ = run(capsys, "dump", f"{SEEDS}:mlp_loss", "--stage", "optimized")
    assert "fused" not in opt and "matmul" in opt
    _, fused, _ = run(capsys, "dump", f"{SEEDS}:mlp_loss", "--stage", "fused")
    assert fused.count("= fused[body={ lambda") == 2


def test_dump_convnet_with_small_shapes(capsys):
    code, out, _ = run(capsys, "dump", f"{SEEDS}:convnet", *CONVNET_SMALL, "--stage", "fused")
    assert code == 0
    assert "conv2d" in out and "fused[body=" in out
    assert out.strip().splitlines()[-1].startswith("  in (")
    code, out, _ = run(
        capsys, "dump", f"{SEEDS}:convnet", *CONVNET_SMALL, "--stage", "grad", "--format", "json"
    )
    doc = json.loads(out)
    # not a scalar: a VJP with a cotangent input; the value and 7 gradients (x is float too)
    assert len(doc["inputs"]) == 7 + 1 and len(doc["outputs"]) == 1 + 7
    assert any(n["op"] == "conv2d" for n in doc["nodes"])


def test_dump_json(capsys):
    code, out, _ = run(capsys, "dump", f"{SEEDS}:mlp_loss", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["format"] == "graphc-graph/1" and doc["name"] == "mlp_loss"
    assert doc["inputs"] == ["a", "b", "c", "d", "e", "f"] and doc["outputs"] == ["p"]
    by_name = {n["name"]: n for n in doc["nodes"]}
    g = by_name["g"]
    assert g["op"] == "matmul" and g["inputs"] == ["c", "a"] and g["type"] == "f32[8,16]"
    assert g["shape"] == [8, 16] and g["dtype"] == "f32"
    assert g["loc"].endswith("seeds.py:26") and g["scope"] is None and g["role"] is None
    assert by_name["p"]["attrs"] == {"axes": [0, 1], "keepdims": False}
    assert by_name["a"]["input_name"] == "x"
    assert set(g) >= {"name", "op", "attrs", "type", "inputs", "loc", "scope"}


def test_dump_json_fused_bodies_and_grad_links(capsys):
    _, out, _ = run(capsys, "dump", f"{SEEDS}:mlp", "--stage", "fused", "--format", "json")
    fused = [n for n in json.loads(out)["nodes"] if n["op"] == "fused"]
    body = fused[0]["attrs"]["body"]
    assert body["format"] == "graphc-graph/1" and [n["op"] for n in body["nodes"]][-1] == "sigmoid"
    _, out, _ = run(capsys, "dump", f"{SEEDS}:sqdiff", "--stage", "grad", "--format", "json")
    doc = json.loads(out)
    roles = {n["role"] for n in doc["nodes"]}
    assert "grad" in roles
    assert {"grad": doc["outputs"][1], "of": "a"} in doc["grad_of"]


def test_graph_to_json_literals_and_constants():
    import numpy as np

    g = graphc.trace(
        lambda x: x * 2.0 + np.arange(3.0, dtype=np.float32) + 2.0, graphc.spec("f32[3]")
    )
    doc = graph_to_json(g)
    names = [n["name"] for n in doc["nodes"]]
    assert names.count("2.0:f32") == 1  # a literal is listed once
    const = [n for n in doc["nodes"] if n["op"] == "const" and n["shape"] == [3]][0]
    assert const["value"] == [0.0, 1.0, 2.0]
    json.dumps(doc, allow_nan=False)


def test_dump_graphml(capsys):
    code, out, _ = run(capsys, "dump", f"{SEEDS}:mlp", "--format", "graphml")
    assert code == 0
    g = nx.parse_graphml(out)
    assert g.number_of_nodes() == len(graphc.trace(*_mlp()).nodes)
    assert g.nodes["f"]["op"] == "matmul" and g.nodes["f"]["shape"] == "8,16"
    assert g.nodes["a"]["input_name"] == "x"


def _mlp():
    import seeds

    return (seeds.mlp, *seeds.EXAMPLE_ARGS["mlp"])


def test_dump_dot(capsys):
    code, out, _ = run(capsys, "dump", f"{SEEDS}:mlp_loss", "--stage", "grad", "--format", "dot")
    assert code == 0 and out.startswith("digraph graphc {") and "style=dashed" in out


def test_dump_all_stages(capsys):
    code, out, _ = run(capsys, "dump", f"{SEEDS}:poly", "--stage", "all")
    assert code == 0
    headers = [ln for ln in out.splitlines() if ln.startswith("=== ")]
    assert headers == [
        f"=== {s} ==="
        for s in ("traced", "grad", "forward", "backward", "optimized", "fused", "kernels")
    ]
    assert "@_kernel(" in out and "def run(args, bufs):" in out  # the generated source
    code, out, _ = run(capsys, "dump", f"{SEEDS}:poly", "--stage", "all", "--format", "json")
    doc = json.loads(out)
    assert list(doc) == ["traced", "grad", "forward", "backward", "optimized", "fused", "kernels"]
    assert "def run(" in doc["kernels"]["source"]


def test_dump_all_without_float_inputs(capsys, tmp_path):
    f = tmp_path / "ints.py"
    f.write_text("def double(i):\n    return i * 2\n")
    code, out, _ = run(
        capsys, "dump", f"{f}:double", "--arg", "i64[4]", "--stage", "all", "--format", "dot"
    )
    assert code == 0 and out.count("digraph graphc") == 3  # traced, optimized, fused
    code, out, err = run(capsys, "dump", f"{f}:double", "--arg", "i64[4]", "--stage", "grad")
    assert_one_error_line(code, err, "no floating-point inputs", status=1)


def test_kernels_stage_is_text_only(capsys):
    code, _, err = run(capsys, "dump", f"{SEEDS}:poly", "--stage", "kernels", "--format", "json")
    assert_one_error_line(code, err, "--format text")


# -- viz ---------------------------------------------------------------------------------------


def test_viz_writes_dot_and_svg(capsys, tmp_path):
    out = tmp_path / "mlp.dot"
    code, stdout, _ = run(capsys, "viz", f"{SEEDS}:mlp_loss", "--stage", "joint", "-o", str(out))
    assert code == 0 and str(out) in stdout
    assert "saved 512 B" in out.read_text()
    if HAVE_DOT:
        svg = tmp_path / "conv.svg"
        code, _, _ = run(
            capsys,
            "viz",
            f"{SEEDS}:convnet",
            *CONVNET_SMALL,
            "--stage",
            "fused",
            "--legend",
            "-o",
            str(svg),
        )
        assert code == 0
        assert ET.parse(svg).getroot().tag.endswith("svg")


def test_viz_without_dot(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    code, _, err = run(capsys, "viz", f"{SEEDS}:mlp", "-o", str(tmp_path / "m.svg"))
    assert_one_error_line(code, err, "apt-get install graphviz", "brew install graphviz", status=1)
    code, _, _ = run(capsys, "viz", f"{SEEDS}:mlp", "-o", str(tmp_path / "m.dot"))
    assert code == 0


# -- passes, diff, cache -----------------------------------------------------------------------


def test_passes(capsys):
    code, out, _ = run(capsys, "passes")
    assert code == 0
    for name, p in PASSES.items():
        assert any(ln.startswith(name) and ln.endswith(p.doc) for ln in out.splitlines())
    assert " → ".join(DEFAULT_PIPELINE) in out and " → ".join(COMPILE_PIPELINE) in out


def test_diff(capsys):
    code, out, _ = run(capsys, "diff", f"{SEEDS}:mlp_loss", "--stage", "grad")
    assert code == 0
    lines = out.splitlines()
    table = [ln for ln in lines if ln.split(" ")[0] in PASSES]
    assert [ln.split()[0] for ln in table] == COMPILE_PIPELINE
    fold = table[0].split()
    assert fold[1:3] == ["30", "28"] and fold[4] == "ms" and "removed:" in table[0]
    assert "fusion: 4 kernels, 7 why-not-fused boundaries" in out
    assert "× matmul is a contraction" in out
    assert sum("why not fused:" in ln for ln in lines) == 7
    code, out, _ = run(capsys, "diff", f"{SEEDS}:mlp", "--passes", "cse,dce")
    assert code == 0 and "fusion" not in out
    code, _, err = run(capsys, "diff", f"{SEEDS}:mlp", "--passes", "cse,nope")
    assert_one_error_line(code, err, "unknown pass 'nope'")


def test_cache_info_and_clear(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    (tmp_path / "graphc_abc.py").write_text("x = 1\n")
    (tmp_path / "graphc_def.py").write_text("y = 22\n")
    (tmp_path / "graphc_kernel_0a1b.py").write_text("z = 3\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "graphc_abc.kernel0-3.py311.nbi").write_bytes(b"0" * 100)
    (tmp_path / "keep.txt").write_text("not ours")
    code, out, _ = run(capsys, "cache", "info")
    assert code == 0 and str(tmp_path) in out
    assert "entries: 2 compiled graphs, 1 kernels, 4 files, 119 B (119 bytes)" in out
    code, out, _ = run(capsys, "cache", "clear")
    assert code == 0 and "removed 2 compiled graphs and 1 kernels (4 files" in out
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
    _, out, _ = run(capsys, "cache", "info")
    assert "entries: 0 compiled graphs, 0 kernels, 0 files, 0 B" in out


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,fragments",
    [
        (["dump", "missing.py:f"], ["no such file: missing.py"]),
        (["dump", f"{SEEDS}:nope"], ["has no function 'nope'", "mlp_loss"]),
        (["dump", SEEDS], ["expected FILE.py:FUNC"]),
        (["dump", f"{SEEDS}:mlp", "--arg", "f32[4,x]"], ["malformed --arg 'f32[4,x]'"]),
        (["dump", f"{SEEDS}:mlp", "--arg", "q32[4]"], ["unknown dtype 'q32'"]),
        (["dump", f"{SEEDS}:mlp", "--arg", "hello"], ["malformed --arg 'hello'"]),
        (
            ["dump", f"{SEEDS}:sqdiff", "--arg", "f32[2]"],
            ["wrong arguments for sqdiff(x, y)", "missing a required argument: 'y'"],
        ),
        (
            ["dump", f"{SEEDS}:poly", "--arg", "f32[2]", "--arg", "f32[2]"],
            ["too many positional arguments"],
        ),
        (["dump", f"{SEEDS}:poly", "--arg", "z=f32[2]"], ["has no parameter named 'z'"]),
        (
            ["dump", f"{SEEDS}:sqdiff", "--arg", "f32[2]", "--arg", "f32[3]"],
            ["cannot trace sqdiff", "seeds.py"],
        ),
        (["dump", f"{SEEDS}:mlp", "--stage", "nope"], ["invalid choice: 'nope'"]),
        (["viz", f"{SEEDS}:mlp", "-o", "x.txt"], [".svg, .png, .pdf or .dot"]),
        (["viz", f"{SEEDS}:mlp"], ["-o/--output"]),
        (["frobnicate"], ["invalid choice"]),
        ([], ["choose a command"]),
    ],
)
def test_bad_arguments_give_one_line(capsys, argv, fragments):
    code, out, err = run(capsys, *argv)
    assert not out
    assert_one_error_line(code, err, *fragments)


def test_user_code_failures_give_one_line(capsys, tmp_path):
    f = tmp_path / "bad.py"
    f.write_text(
        "import numpy as np\n"
        "def boom(x):\n    raise ValueError('boom\\nmore')\n"
        "def branchy(x):\n    return x if x > 0 else -x\n"
        "def noargs(x):\n    return x\n"
        "EXAMPLE_ARGS = {'branchy': (2.0,)}\n"
    )
    code, _, err = run(capsys, "dump", f"{f}:boom", "--arg", "f32[2]")
    assert_one_error_line(code, err, "tracing boom failed: ValueError: boom")
    code, _, err = run(capsys, "dump", f"{f}:branchy")
    assert_one_error_line(code, err, "cannot trace branchy")
    code, _, err = run(capsys, "dump", f"{f}:noargs")
    assert_one_error_line(code, err, "needs example arguments", "EXAMPLE_ARGS")
    broken = tmp_path / "broken.py"
    broken.write_text("def f(x:\n")
    code, _, err = run(capsys, "dump", f"{broken}:f")
    assert_one_error_line(code, err, "importing", "SyntaxError")


def test_parse_value():
    assert parse_value("f32[2,3]") == graphc.spec("f32[2,3]")
    assert parse_value("f64[]").shape == ()
    assert parse_value("2.5") == 2.5 and parse_value("3") == 3


def test_help_mentions_example_args_convention(capsys):
    code, out, _ = run(capsys, "dump", "--help")
    assert code == 0 and "EXAMPLE_ARGS" in out and "f32[64,784]" in out


# -- end to end --------------------------------------------------------------------------------


def _env():
    env = dict(os.environ)
    env.setdefault("GRAPHC_CACHE_DIR", "/tmp/gcache-viz")
    return env


def test_python_dash_m_graphc():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphc",
            "dump",
            f"{SEEDS}:poly",
            "--stage",
            "grad",
            "--no-locations",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("{ lambda ; a:f64[]. let") and "in (f, k) }" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "graphc", "dump", "nowhere.py:f"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "graphc: error: no such file: nowhere.py\n"


def test_console_script():
    exe = Path(sys.executable).with_name("graphc")
    if not exe.exists():
        pytest.skip("the graphc console script is not installed in this environment")
    r = subprocess.run(
        [str(exe), "passes"], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert r.returncode == 0 and "fuse" in r.stdout
    r = subprocess.run(
        [str(exe), "dump", f"{SEEDS}:mlp", "--arg", "f32[1,2,3]"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1


# -- loops and branches at every stage -----------------------------------------------------------

LOOPS = """\
import numpy as np

import graphc


def running(xs, w):
    def step(c, x):
        c = c * w + np.tanh(x) * 1.0
        return c, c + 0.0

    return graphc.scan(step, np.float32(0), xs)  # the scan


def pick(p, x):
    return graphc.cond(p > 0, lambda v: np.sin(v) * 1.0, lambda v: np.cos(v) + 1.0, x)  # the cond


def halve(x):
    return graphc.while_loop(
        lambda c: np.sum(c[0]) > 1.0, lambda c: (c[0] * 0.5, c[1] + 1), (x, 0), max_trips=50
    )


def counted(x, n):
    k = graphc.fori_loop(0, 3, lambda i, c: c * 2 + n, n)
    return np.sum(np.tanh(x) * k.astype(np.float32))


EXAMPLE_ARGS = {
    "running": (graphc.spec("f32[5]"), graphc.spec("f32[]")),
    "pick": (graphc.spec("f32[]"), graphc.spec("f32[3]")),
    "halve": (graphc.spec("f32[3]"),),
    "counted": (graphc.spec("f32[4]"), graphc.spec("i32[]")),
}
"""

# how each program's node holding graphs starts in the IR text at any stage, and pieces of its
# text in the stages without autodiff and before fusion (which fuses the bodies too)
HOLDER = {
    "running": "= scan[body={ lambda ",
    "pick": "= cond[branches=({ lambda ",
    "halve": "= while_loop[body={ lambda ",
    "counted": "= scan[body={ lambda ",
}
REGION_TEXT = {
    "running": ["= scan[body={ lambda ; a:f32[] b:f32[] c:f32[]. let\n        d:f32[] = mul b a\n"],
    "pick": [
        "= cond[branches=({ lambda ; a:f32[3]. let\n        b:f32[3] = cos a\n",
        "      in (c,) }, { lambda ; a:f32[3]. let\n        b:f32[3] = sin a\n",
    ],
    "halve": [
        "= while_loop[body={ lambda ; a:f32[3]",
        "}, cond={ lambda ; a:f32[3]",
        "        d:bool[] = gt c 1.0:f32\n      in (d,) }, max_trips=50,",
    ],
    "counted": ["= scan[body={ lambda ; a:i32[] b:"],
}


@pytest.fixture
def loops(tmp_path):
    path = tmp_path / "loops.py"
    path.write_text(LOOPS)
    return str(path)


def _sections(out: str) -> dict[str, str]:
    parts = out.split("=== ")[1:]
    return {p.split(" ===\n")[0]: p.split(" ===\n", 1)[1] for p in parts}


def _held(graph):
    """The loops and branches of `graph`, those inside them too (a worklist over nesting)."""
    from graphc.stages import regions

    out, work = [], [graph]
    while work:
        for n in work.pop().nodes:
            if n.op in ("scan", "while_loop", "cond"):
                out.append(n)
            work += [g for _, g in regions(n)]
    return out


def test_dump_prints_the_regions_at_every_stage(capsys, loops):
    from graphc.cli import Target

    for name, texts in REGION_TEXT.items():
        code, out, err = run(capsys, "dump", f"{loops}:{name}", "--stage", "all", "--no-locations")
        assert code == 0 and not err
        sections = _sections(out)
        assert list(sections) == [
            "traced",
            "grad",
            "forward",
            "backward",
            "optimized",
            "fused",
            "kernels",
        ]
        t = Target(f"{loops}:{name}", [])
        for stage, text in sections.items():
            if stage == "kernels":  # the generated source, the loop in it however it runs
                assert "def run(args, bufs):" in text
                continue
            g = t.stage(stage)
            if stage in ("forward", "backward"):  # the IR, then what crosses between them
                text, note = text.rstrip("\n").rsplit("\n", 1)
                part = t.stages.partition()
                assert note.startswith(
                    f"# residuals: {len(part.residuals)} values, {part.residual_bytes} bytes"
                )
            assert text.rstrip("\n") == g.pretty(locations=False)
            # every node holding graphs prints them nested: its text starts as in the traced
            # graph (the gradient may turn a bounded while loop into a scan of max_trips steps)
            held = _held(g)
            for n in held:
                holder = next(h for h in HOLDER.values() if h.startswith(f"= {n.op}["))
                assert text.count(holder) >= 1
            assert sum(text.count(f"= {op}[") for op in ("scan", "while_loop", "cond")) == len(held)
            if stage in ("traced", "optimized", "fused"):
                assert HOLDER[name] in text, (name, stage)
            if stage in ("traced", "optimized"):
                for piece in texts:
                    assert piece in text, (name, stage, piece)
            if stage == "fused":  # bodies and branches are fused like graphs of their own
                assert "= fused[body={ lambda " in text, (name, stage)
            # a loop the gradient passes by has no backward loop; the others have one
            assert held or (name == "counted" and stage == "backward"), (name, stage)


def test_dump_traced_scan_text(capsys, loops):
    code, out, _ = run(capsys, "dump", f"{loops}:running", "--no-locations")
    assert code == 0
    assert out == (
        "{ lambda ; a:f32[5] b:f32[]. let\n"
        "    c:(f32[], f32[5]) = scan[body={ lambda ; a:f32[] b:f32[] c:f32[]. let\n"
        "        d:f32[] = mul b a\n"
        "        e:f32[] = tanh c\n"
        "        f:f32[] = mul e 1.0:f32\n"
        "        g:f32[] = add d f\n"
        "        h:f32[] = add g 0.0:f32\n"
        "      in (g, h) }, length=5, n_carry=1, n_consts=1, reverse=False] b 0.0:f32 a\n"
        "    d:f32[] = proj[index=0] c\n"
        "    e:f32[5] = proj[index=1] c\n"
        "  in (d, e) }\n"
    )
    _, out, _ = run(capsys, "dump", f"{loops}:running")  # the loop's line says where it is
    assert f"reverse=False] b 0.0:f32 a  # {loops}:{marker_line(loops, 'the scan')}\n" in out


def _clusters(dot: str) -> dict[str, str]:
    """Subgraph name -> its label, for every cluster."""
    out = {}
    for name, attrs in re.findall(r"subgraph (cluster_\w+) \{\s*\n\s*([^\n]*)", dot):
        label = re.search(r'label=("(?:[^"\\]|\\.)*"|[^\s\]]+)', attrs)
        out[name] = label.group(1).strip('"') if label else ""
    return out


def _back_edges(dot: str) -> list[str]:
    return [ln for ln in dot.splitlines() if "->" in ln and "constraint=false" in ln]


def test_viz_draws_a_cluster_per_region_and_a_back_edge_per_carry(capsys, loops, tmp_path):
    from graphc.cli import Target

    want = {
        "running": {"cluster_scan_0": "scan c · length 5"},
        "pick": {
            "cluster_cond_0": "cond d · 2 branches",
            "cluster_cond_0_branch0": "branch 0 (false)",
            "cluster_cond_0_branch1": "branch 1 (true)",
        },
        "halve": {
            "cluster_while_loop_0": "while b · max_trips 50",
            "cluster_while_loop_0_cond": "cond",
            "cluster_while_loop_0_body": "body",
        },
    }
    for name, clusters in want.items():
        t = Target(f"{loops}:{name}", [])
        for stage in ("traced", "optimized", "fused"):
            out = tmp_path / f"{name}-{stage}.dot"
            code, stdout, _ = run(
                capsys, "viz", f"{loops}:{name}", "--stage", stage, "-o", str(out)
            )
            assert code == 0 and stdout == f"wrote {out} ({stage} stage of {name})\n"
            dot = out.read_text()
            regions = {k: v for k, v in _clusters(dot).items() if "kernel" not in k}
            assert regions == clusters, (name, stage)  # the fused stage has kernels too
            (node,) = [n for n in t.stage(stage).nodes if n.op in ("scan", "while_loop", "cond")]
            carries = {"scan": node.attrs.get("n_carry"), "cond": 0}.get(node.op)
            if carries is None:  # a while loop carries what its body returns
                carries = len(node.attrs["body"].outputs)
            back = _back_edges(dot)
            assert len(back) == carries and all("style=dashed" in ln for ln in back)
            assert sorted(ln.split(" -> ")[1].split(" ")[0] for ln in back) == [
                f"b_carry{k}" if node.op == "while_loop" else f"c_carry{k}" for k in range(carries)
            ]
    # a loop the gradient passes by, at the stages of the joint picture
    for stage in ("grad", "joint", "forward", "backward"):
        out = tmp_path / f"counted-{stage}.dot"
        code, _, _ = run(capsys, "viz", f"{loops}:counted", "--stage", stage, "-o", str(out))
        dot = out.read_text()
        assert code == 0
        if stage == "backward":  # the loop's value is saved: the backward pass has no loop
            assert "cluster_scan" not in dot
        else:
            g = Target(f"{loops}:counted", []).stage(stage)
            (scan,) = [n for n in g.nodes if n.op == "scan"]
            loop = f"scan {node_names(g)[id(scan)]} · length 3"
            assert [v for v in _clusters(dot).values() if "kernel" not in v] == [loop]
            assert len(_back_edges(dot)) == 2


@pytest.mark.parametrize("name", ["running", "pick", "halve", "counted"])
def test_viz_draws_the_loops_of_every_stage(capsys, loops, tmp_path, name):
    """At every stage (the gradient's loops and branches too): one cluster per loop, a while
    loop's two graphs and each branch; one back edge per carry."""
    from graphc.cli import VIZ_STAGES, Target

    t = Target(f"{loops}:{name}", [])
    for stage in VIZ_STAGES:
        out = tmp_path / f"{stage}.dot"
        code, _, _ = run(capsys, "viz", f"{loops}:{name}", "--stage", stage, "-o", str(out))
        assert code == 0
        dot = out.read_text()
        held = _held(t.stage(stage))
        want_clusters = sum(
            {"scan": 1, "while_loop": 3}.get(n.op, 1 + len(n.attrs.get("branches", ())))
            for n in held
        )
        carries = sum(
            n.attrs["n_carry"] if n.op == "scan" else len(n.attrs["body"].outputs)
            for n in held
            if n.op != "cond"
        )
        drawn = [k for k in _clusters(dot) if not k.startswith(("cluster_kernel", "cluster_scope"))]
        assert len(drawn) == want_clusters, (stage, drawn)
        assert len(_back_edges(dot)) == carries, stage


def test_diff_says_what_changed_inside_bodies(capsys, loops):
    code, out, _ = run(capsys, "diff", f"{loops}:running", "--passes", "fold,simplify,dce")
    assert code == 0
    lines = out.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("simplify "))
    assert lines[k].endswith("removed: -   added: -   rewritten: proj×2, scan×1")
    where = f"{loops}:{marker_line(loops, 'the scan')}"
    assert lines[k + 1] == (
        f"  in scan body ({where}):  removed: add×1, mul×1   added: -   rewritten: add×1"
    )
    assert lines[k + 2].startswith("dce ")
    assert sum(ln.startswith("  in ") for ln in lines) == 1  # fold and dce changed nothing
    code, out, _ = run(capsys, "diff", f"{loops}:pick", "--passes", "simplify")
    where = f"{loops}:{marker_line(loops, 'the cond')}"
    assert f"  in cond branches[1] ({where}):  removed: mul×1   added: -   rewritten: -" in out
    assert "branches[0]" not in out  # cos(v) + 1.0 keeps its add


def test_json_and_graphml_hold_the_regions(capsys, loops):
    code, out, _ = run(capsys, "dump", f"{loops}:halve", "--format", "json")
    assert code == 0
    (loop,) = [n for n in json.loads(out)["nodes"] if n["op"] == "while_loop"]
    assert [n["op"] for n in loop["attrs"]["body"]["nodes"] if n["inputs"]] == ["mul", "add"]
    assert [n["op"] for n in loop["attrs"]["cond"]["nodes"] if n["inputs"]] == ["reduce_sum", "gt"]
    assert loop["attrs"]["max_trips"] == 50
    code, out, _ = run(capsys, "dump", f"{loops}:pick", "--format", "json")
    (branch,) = [n for n in json.loads(out)["nodes"] if n["op"] == "cond"]
    assert [[n["op"] for n in b["nodes"] if n["inputs"]] for b in branch["attrs"]["branches"]] == [
        ["cos", "add"],
        ["sin", "mul"],
    ]
    code, out, _ = run(capsys, "dump", f"{loops}:pick", "--format", "graphml")
    g = nx.parse_graphml(out)
    assert g.nodes["d"]["op"] == "cond"
    assert g.nodes["d"]["region:branches[0]"] == (
        "{ lambda ; a:f32[3]. let\n    b:f32[3] = cos a\n    c:f32[3] = add b 1.0:f32\n  in (c,) }"
    )
    # IR text of its own: it parses back
    true = graphc.parse(g.nodes["d"]["region:branches[1]"])
    assert [n.op for n in true.equations] == ["sin", "mul"]


def test_dump_reports_residual_bytes_and_checkpointed_regions(capsys, tmp_path):
    script = tmp_path / "ck.py"
    script.write_text(
        "import numpy as np\nimport graphc\n\n"
        "def block(W1, W2, x):\n    return x + np.tanh(x @ W1) @ W2\n\n"
        "layer = graphc.checkpoint(block)\n\n"
        "def plain(W1, W2, x):\n    for _ in range(3):\n        x = block(W1, W2, x)\n"
        "    return np.sum(x)\n\n"
        "def ck(W1, W2, x):\n    for _ in range(3):\n        x = layer(W1, W2, x)\n"
        "    return np.sum(x)\n\n"
        "ARGS = (np.ones((4, 16)), np.ones((16, 4)), np.ones((8, 4)))\n"
        "EXAMPLE_ARGS = {'plain': ARGS, 'ck': ARGS}\n"
    )
    saved = {}
    for name in ("plain", "ck"):
        code, out, _ = run(capsys, "dump", f"{script}:{name}", "--stage", "forward")
        assert code == 0
        note = out.rstrip().splitlines()[-1]
        saved[name] = int(note.split(" values, ")[1].split(" bytes")[0])
        assert ("3 checkpointed region(s) recomputed" in note) == (name == "ck")
    assert saved["ck"] < saved["plain"]
