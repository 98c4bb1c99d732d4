"""The `graphc` command: dump, viz, passes, diff, cache, and one-line errors."""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest

import graphc
from graphc.cli import graph_to_json, main, parse_value
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
