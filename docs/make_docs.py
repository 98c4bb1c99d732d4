"""Regenerate the generated parts of graphc's documentation (`make docs`).

    python docs/make_docs.py            # rewrite what is stale
    python docs/make_docs.py --check    # only report what is stale (exit status 1 if anything)

What is generated, and from what:

* `docs/ops.md`, entirely, from the op registry (`graphc.ops.REGISTRY`): kind, arity, gradient
  rules, and the compiled form, asked of the code generator itself (the kernel expression an
  elementwise op's emitter writes, or the driver code generated for a sample graph).
* Sections between `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->` in the
  other pages: the pass registry and pipelines, the simplifier's rewrites, `GRAPHC_DEBUG` output,
  IR examples traced from `examples/seeds.py`, generated code, and the output of every `graphc`
  command shown in `docs/cli.md` (the command is run; its output is pasted).
* `docs/tutorial.md`: its ```python blocks run in order in one namespace (in a scratch directory
  where `examples/` is visible); the ```text block after a block is what it printed. ```console
  blocks are `$ graphc ...` commands, run, followed by their output.
* `docs/images/*.svg`: pictures drawn with `graphc.viz` from the examples. Each SVG records the
  SHA-256 of the DOT text it was drawn from, so staleness is checked without running Graphviz.

tests/test_docs.py runs the same functions and fails when a committed page differs from what they
produce now (timings, byte counts and cache hashes are masked by `normalize`).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import inspect
import io
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
IMAGES = DOCS / "images"
for _p in (str(ROOT), str(ROOT / "examples")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import seeds  # noqa: E402

import graphc  # noqa: E402
from graphc import numpy as gnp  # noqa: E402

# ---------------------------------------------------------------------------------------------
# example programs drawn or printed in the docs (kept first: their line numbers appear in the
# pictures' tooltips)


def gelu_loss(x, w):
    """sum(gelu(x) * w): with its gradients, one fused kernel."""
    return np.sum(gnp.gelu(x) * w)


GELU_ARGS = (graphc.spec("f32[4096]"), graphc.spec("f32[4096]"))


def convnet_step_graph() -> tuple[graphc.Graph, list[str]]:
    """One Adam training step of a small ConvNet on 8x8 digits, traced; and its input names."""
    from graphc import nn

    nn.seed(0)
    model = nn.Chain(
        nn.Conv2d(1, 8, 3, padding=1, act=nn.relu),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, act=nn.relu),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(16 * 2 * 2, 10),
    )
    step = nn.train_step(model, nn.cross_entropy, nn.Adam(1e-3), backend="interpreter")
    opt_state = step.init(model)
    x, y = np.zeros((32, 1, 8, 8), np.float32), np.zeros(32, np.int64)
    graph = step.trace(model, opt_state, x, y)
    params = list(nn.parameters(model))
    names = [f"model.{p}" for p in params] + ["adam.count"]
    names += [f"adam.mu.{p}" for p in params] + [f"adam.nu.{p}" for p in params] + ["x", "y"]
    if len(names) != len(graph.inputs):
        names = []  # the step's inputs changed: fall back to the traced argument paths
    return graph, names


# a model file whose traced IR shows source locations and module scopes
MODEL_PY = """\
import numpy as np
from graphc import nn


def forward(model, x):
    return nn.softmax(model(x))


model = nn.Chain(nn.Dense(4, 8, nn.tanh, rng=0), nn.Dense(8, 3, rng=0))
"""

# a module with a small and a large array constant
LAYER_PY = """\
import numpy as np

scale = np.array([1.0, 2.0, 3.0], np.float32)
W = np.ones((3, 20), np.float32)


def layer(x):
    return np.tanh(x * scale) @ W
"""

# a module with loops and a branch, which cli.md's commands run on as loops.py
LOOPS_PY = """\
import numpy as np

import graphc


def smooth(xs, w):
    def step(h, x):
        h = h * w + np.tanh(x) * 1.0  # (* 1.0: for `graphc diff` to show the simplifier)
        h = graphc.cond(h > 1.0, lambda v: v * 0.5, lambda v: v, h)
        return h, h * 2.0

    h, ys = graphc.scan(step, np.float32(0), xs)
    halvings = graphc.while_loop(
        lambda c: c[0] > 0.1, lambda c: (c[0] * 0.5, c[1] + 1), (np.abs(h) + 1, 0), max_trips=64
    )[1]
    return ys, halvings


EXAMPLE_ARGS = {"smooth": (graphc.spec("f32[16]"), graphc.spec("f32[]"))}
"""

# ---------------------------------------------------------------------------------------------
# plumbing


class DocsError(Exception):
    """The docs cannot be generated (a tutorial block failed, an unknown section, ...)."""


@contextlib.contextmanager
def at(path: Path | str) -> Iterator[None]:
    """Run with `path` as the working directory (source locations are relative to it)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A scratch working directory in which `examples/` is the repository's: commands shown in
    the docs run there as they would at the repository root, and their files stay there."""
    with tempfile.TemporaryDirectory(prefix="graphc-docs-") as tmp:
        os.symlink(ROOT / "examples", Path(tmp) / "examples")
        (Path(tmp) / "loops.py").write_text(LOOPS_PY)  # the page shows its source
        with at(tmp):
            yield Path(tmp)


def fence(lang: str, body: str) -> str:
    lines = [ln.rstrip() for ln in body.rstrip("\n").split("\n")]
    return f"```{lang}\n" + "\n".join(lines) + "\n```\n"


_VOLATILE = [
    (re.compile(r"\b\d+(?:\.\d+)? ms\b"), "<t> ms"),
    (re.compile(r"\b\d+\.\d+ s\b"), "<t> s"),
    (re.compile(r"\b\d+(?:\.\d+)? (?:B|KiB|MiB|GiB)\b"), "<size>"),
    (re.compile(r"\b\d+ (bytes|files|compiled graphs)\b"), r"<n> \1"),
    (re.compile(r"(compiled graphs,? (?:and )?)\d+ kernels\b"), r"\1<n> kernels"),
    (re.compile(r"graphc_[0-9a-f]{12,}"), "graphc_<hash>"),
]


def normalize(text: str) -> str:
    """`text` with what varies from run to run masked: timings, sizes, file counts, cache module
    names. Runs of spaces inside lines are collapsed too: table columns, headers included, are
    as wide as the values they hold (a 49 ms pass widens the whole time column)."""
    out = []
    for line in text.split("\n"):
        new = line.rstrip()
        for pattern, repl in _VOLATILE:
            new = pattern.sub(repl, new)
        new = re.sub(r"(?<=\S) {2,}", " ", new)
        out.append(new)
    return "\n".join(out)


def unified_diff(old: str, new: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), f"{name} (committed)", f"{name} (now)"
        )
    )


# ---------------------------------------------------------------------------------------------
# fenced blocks


_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*(?:\n|\Z)", re.M | re.S)


@dataclass
class Block:
    """A fenced code block: its info string, body and span in the page."""

    info: str
    body: str
    start: int
    end: int

    @property
    def lang(self) -> str:
        return (self.info.split() or [""])[0]

    @property
    def flags(self) -> list[str]:
        return self.info.split()[1:]


def blocks(text: str) -> list[Block]:
    return [
        Block(m.group(1).strip(), m.group(2), m.start(), m.end()) for m in _FENCE.finditer(text)
    ]


def run_command(line: str) -> str:
    """Run one console line `[NAME=value ...] graphc ARGS... [> /dev/null]` as the shell would
    (in the current directory) and return what it prints: stdout, then stderr."""
    argv = shlex.split(line)
    env = dict(os.environ, COLUMNS="100", PYTHONIOENCODING="utf-8")
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        key, value = argv.pop(0).split("=", 1)
        env[key] = value
    quiet = argv[-2:] == [">", "/dev/null"]
    if quiet:
        argv = argv[:-2]
    if not argv or argv[0] != "graphc":
        raise DocsError(f"console blocks run graphc commands only: {line!r}")
    proc = subprocess.run(
        [sys.executable, "-m", "graphc", *argv[1:]], env=env, capture_output=True, text=True
    )
    return ("" if quiet else proc.stdout) + proc.stderr


def console(lines: list[str]) -> str:
    """A console session: each `$ command` followed by its output."""
    parts = []
    for line in lines:
        parts.append(f"$ {line}")
        out = run_command(line).rstrip("\n")
        if out:
            parts.append(out)
    return "\n".join(parts)


def fill_console(body: str) -> str:
    return console([ln[2:] for ln in body.split("\n") if ln.startswith("$ ")])


# ---------------------------------------------------------------------------------------------
# the tutorial


TUTORIAL = DOCS / "tutorial.md"


def run_tutorial(text: str, path: Path = TUTORIAL) -> str:
    """Run the page's ```python blocks in order in one namespace and its ```console blocks, in a
    sandbox; return the page with every output block rewritten to what the code printed."""
    edits: list[tuple[int, int, str]] = []
    bl = blocks(text)
    ns: dict = {"__name__": "tutorial"}
    saved_path = list(sys.path)
    try:
        with sandbox():
            i = 0
            while i < len(bl):
                b = bl[i]
                nxt = bl[i + 1] if i + 1 < len(bl) else None
                if b.lang == "python" and "no-run" not in b.flags:
                    out = _run_python(b, ns, text, path)
                    has_out = (
                        nxt is not None
                        and nxt.lang == "text"
                        and not text[b.end : nxt.start].strip()
                    )
                    if has_out:
                        edits.append((b.end, nxt.end, "\n" + fence("text", out) if out else ""))
                        i += 1
                    elif out:
                        edits.append((b.end, b.end, "\n" + fence("text", out)))
                elif b.lang == "console":
                    edits.append((b.start, b.end, fence("console", fill_console(b.body))))
                i += 1
    finally:
        sys.path[:] = saved_path
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _run_python(b: Block, ns: dict, text: str, path: Path) -> str:
    line = text.count("\n", 0, b.start) + 1  # the opening fence; the code starts one below
    code = compile("\n" * line + b.body, str(path), "exec")
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            exec(code, ns)
    except Exception as e:
        raise DocsError(
            f"{path.name}: the python block at line {line} failed: {type(e).__name__}: {e}"
        ) from e
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# ops.md


def _elementwise_form(name: str) -> str:
    """The scalar expression the op's emitter writes into a kernel, for f32 operands."""
    from graphc.codegen.kernels import EmitContext, emit_op
    from graphc.ir import Aval, make_input
    from graphc.ops import apply

    attrs = {"cast": {"dtype": np.dtype(np.float64)}, "integer_pow": {"n": 3}}.get(name, {})
    arity = graphc.ops.REGISTRY[name].arity or 2
    f32, b = np.dtype(np.float32), np.dtype(np.bool_)
    for dts in ([f32] * arity, [b] * arity, [b] + [f32] * (arity - 1)):
        try:
            node = apply(name, [make_input(Aval((), dt)) for dt in dts], attrs)
            break
        except graphc.GraphcError:
            continue
    else:
        raise DocsError(f"cannot build a sample {name} node")
    names = ["c", "x", "y"] if arity == 3 else ["x", "y"][:arity]
    e = EmitContext()
    expr = emit_op(e, node, names)
    for src, const in sorted(e.consts.items(), key=lambda kv: -len(kv[1])):
        expr = re.sub(rf"\b{const}\b", src, expr)
    note = {"cast": " (to f64)", "integer_pow": " (n = 3)"}.get(name, "")
    return f"`{expr}`{note}"


# operand types and attributes of one sample node per non-elementwise op: the code generator
# is asked what it makes of it
_POOL = {"kernel": (2, 2), "stride": (2, 2)}
_CONV = {"stride": (1, 1), "padding": (1, 1)}
SAMPLES: dict[str, tuple[list[str], dict]] = {
    "check": (["bool[]", "f32[3]"], {"message": "too many trips"}),
    "once": (["f32[3]"], {}),
    "reduce_sum": (["f32[4,8]"], {"axes": (1,), "keepdims": False}),
    "reduce_max": (["f32[4,8]"], {"axes": (1,), "keepdims": False}),
    "reduce_min": (["f32[4,8]"], {"axes": (1,), "keepdims": False}),
    "reduce_prod": (["f32[4,8]"], {"axes": (1,), "keepdims": False}),
    "argmax": (["f32[4,8]"], {"axis": 1}),
    "argmin": (["f32[4,8]"], {"axis": 1}),
    "reshape": (["f32[4,8]"], {"shape": (8, 4)}),
    "transpose": (["f32[4,8]"], {"perm": (1, 0)}),
    "broadcast_to": (["f32[4,8]"], {"shape": (3, 4, 8)}),
    "slice": (["f32[4,8]"], {"start": (0, 0), "stop": (4, 8), "step": (1, 2)}),
    "pad": (["f32[4,8]"], {"pads": ((1, 1, 0), (0, 0, 0)), "value": 0.0}),
    "concatenate": (["f32[4,8]", "f32[2,8]"], {"axis": 0}),
    "flip": (["f32[4,8]"], {"axes": (0,)}),
    "gather": (["f32[4,8]", "i64[3]"], {"axis": 0}),
    "scatter_add": (["f32[3,8]", "i64[3]"], {"axis": 0, "shape": (4, 8)}),
    "matmul": (["f32[4,3]", "f32[3,2]"], {}),
    "conv2d": (["f32[2,3,8,8]", "f32[4,3,3,3]"], _CONV),
    "conv2d_input_grad": (["f32[2,4,8,8]", "f32[4,3,3,3]"], {**_CONV, "in_hw": (8, 8)}),
    "conv2d_weight_grad": (["f32[2,3,8,8]", "f32[2,4,8,8]"], {**_CONV, "kernel_hw": (3, 3)}),
    "max_pool2d": (["f32[2,3,8,8]"], _POOL),
    "max_pool2d_grad": (["f32[2,3,8,8]", "f32[2,3,4,4]"], _POOL),
    "max_pool2d_select": (["f32[2,3,8,8]", "f32[2,3,8,8]"], _POOL),
    "avg_pool2d": (["f32[2,3,8,8]"], _POOL),
    "avg_pool2d_grad": (["f32[2,3,4,4]"], {**_POOL, "in_hw": (8, 8)}),
    "cumsum": (["f32[4,8]"], {"axis": 1}),
    "cumprod": (["f32[4,8]"], {"axis": 1}),
    "argsort": (["f32[4,8]"], {"axis": 1}),
    "inv": (["f32[3,3]"], {}),
    "solve": (["f32[3,3]", "f32[3,2]"], {}),
    "det": (["f32[3,3]"], {}),
    "svd": (["f32[4,3]"], {"full_matrices": False}),
    "eigh": (["f32[3,3]"], {"lower": True}),
    "cholesky": (["f32[3,3]"], {}),
    "qr": (["f32[4,3]"], {"complete": False}),
    "searchsorted": (["f32[8]", "f32[4]"], {"side": "left"}),
    "logabsdet": (["f32[3,3]"], {}),
    "detsign": (["f32[3,3]"], {}),
}

_FIXED_FORMS = {
    "input": "an argument of the generated `run(args, bufs)`",
    "const": "a literal in the kernel, or a module-level array (`_K[...]`)",
    "fused": "one `@njit` kernel (chunked over threads), or a tape-machine program when large",
    "proj": "tuple indexing in the driver",
    "scan": "one compiled loop function (`for t in range(T)`) calling the body's kernels and BLAS",
    "while_loop": "one compiled loop function; the condition is computed in locals each trip",
    "cond": "one compiled function running only the taken branch",
    "custom_jvp_call": "its function's equations, spliced in by the `inline` pass",
    "custom_vjp_call": "its function's equations, spliced in by the `inline` pass",
    "checkpoint": "its body's equations, spliced in by the `inline` pass",
}


def _driver_form(name: str) -> str:
    """What the code generator makes of a sample graph holding one `name` node."""
    from graphc.codegen import generate
    from graphc.ir import Aval, Graph, make_input
    from graphc.ops import REGISTRY, Fusion, apply
    from passes import run_pipeline

    if name not in SAMPLES:
        raise DocsError(f"docs/make_docs.py has no sample for op {name!r}: add one to SAMPLES")
    types, attrs = SAMPLES[name]
    ins = [make_input(Aval.parse(t)) for t in types]
    graph = run_pipeline(Graph(ins, [apply(name, ins, attrs)]), ["fuse"], verify=False)
    out = graph.outputs[0]
    if out.op == "fused":
        kind = REGISTRY[name].reduction
        return f"a loop in a fused kernel, accumulating in a local (`{kind}`)"
    _, driver = generate(graph)
    if driver.fallbacks:
        return "NumPy reference (a fallback: listed in `Lowered.fallbacks`)"
    lines = driver.lines
    k = next(i for i, ln in enumerate(lines) if ln.strip().startswith("#") and f"= {name}" in ln)
    # the line computing the op's value (a matrix product names its buffer on the line before)
    nxt = lines[k + 2] if k + 2 < len(lines) else ""
    line = nxt if "np.matmul" in nxt else lines[k + 1]
    code = line.strip().split(" = ", 1)[1]
    code = re.sub(r"\bin(\d)\b", lambda m: "ab"[int(m.group(1))], code)
    label = "BLAS" if "np.matmul" in code else "NumPy view" if name != "proj" else ""
    view = REGISTRY[name].fusion is Fusion.VIEW
    inside = "; inside a kernel: stride-0 reads" if view else ""
    return f"{label}: `{code}`{inside}".lstrip(": ")


def compiled_form(name: str) -> str:
    from graphc.ops import REGISTRY, Kind

    if name in _FIXED_FORMS:
        return _FIXED_FORMS[name]
    d = REGISTRY[name]
    if d.kind is Kind.ELEMENTWISE:
        return _elementwise_form(name)
    return _driver_form(name)


def _doc(name: str) -> str:
    from graphc.ops import REGISTRY

    d = REGISTRY[name]
    if d.doc:
        return _cell(d.doc)
    impl = d.impl
    if isinstance(impl, np.ufunc) or getattr(impl, "__module__", "").startswith("numpy"):
        return f"as `np.{impl.__name__}`"
    return ""


def _cell(text: str) -> str:
    """Table cell text: a `|` (also inside code) would end the cell."""
    return text.replace("|", "\\|")


def _yes(flag: bool) -> str:
    return "yes" if flag else "—"


KIND_TITLES = {
    "elementwise": "Elementwise ops",
    "reduction": "Reductions",
    "shape": "Shape and movement ops",
    "contraction": "Contractions",
    "other": "Other ops",
    "source": "Sources",
}


def render_ops() -> str:
    from graphc.ops import REGISTRY, Kind

    by_kind: dict[Kind, list[str]] = {}
    for name, d in REGISTRY.items():
        by_kind.setdefault(d.kind, []).append(name)
    counts = ", ".join(f"{len(by_kind.get(k, []))} {k.value}" for k in Kind)
    out = [
        "# Ops",
        "",
        "<!-- generated by docs/make_docs.py from graphc.ops.REGISTRY: do not edit by hand -->",
        "",
        f"graphc knows {len(REGISTRY)} ops ({counts}). Each is one `defop(...)` entry in "
        "`graphc/ops/` holding its shape and dtype rule, its NumPy reference implementation "
        "(what the interpreter runs), its gradient rules and its code generation. "
        "This page is generated from that registry by `make docs`.",
        "",
        "Columns:",
        "",
        "- **arity**: the number of operands (*n*: any number).",
        "- **diff.**: differentiable. Ops that are not (comparisons, `floor`, `argmax`, ...) have "
        "derivative zero: no gradient flows through them.",
        "- **VJP** / **JVP**: the op has a reverse-mode / forward-mode rule. Rules are NumPy code "
        "run on traced values, so derivatives are ordinary IR that can be differentiated again.",
        "- **vmap**: the op has a batching rule (how `graphc.vmap` computes it for a batch of "
        "examples at once); an op without one runs as a loop over the batch.",
        "- **compiled form**: what the Numba backend generates. For elementwise ops, the scalar "
        "expression its emitter writes into a fused kernel (for `f32` operands `x`, `y`; "
        "names such as `tanh_f32` are graphc's vectorizable math functions in "
        "`graphc/codegen/mathlib.py`). For the others, what the code generator makes of a "
        "graph holding just that op (operands `a`, `b`): a loop in a kernel, a BLAS call, a NumPy "
        "view in the driver, or a call of the NumPy reference (a *fallback*).",
        "",
    ]
    for kind in Kind:
        names = by_kind.get(kind, [])
        if not names:
            continue
        out += [
            f"## {KIND_TITLES.get(kind.value, kind.value)}",
            "",
            "| op | arity | diff. | VJP | JVP | vmap | compiled form | doc |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in names:
            d = REGISTRY[name]
            arity = "*n*" if d.arity is None else str(d.arity)
            out.append(
                f"| `{name}` | {arity} | {_yes(d.differentiable)} | {_yes(d.vjp is not None)} | "
                f"{_yes(d.jvp is not None)} | {_yes(d.batch is not None)} | "
                f"{_cell(compiled_form(name))} | {_doc(name) or '—'} |"
            )
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# passes.md


def _first_paragraph(doc: str | None) -> str:
    text = inspect.cleandoc(doc or "").split("\n\n")[0]
    return " ".join(text.split()).replace("|", "\\|")


def section_pass_list() -> str:
    from passes import PASSES

    rows = ["| pass | module | what it does |", "|---|---|---|"]
    for name, p in PASSES.items():
        rows.append(f"| `{name}` | `{p.fn.__module__}` | {p.doc} |")
    return "\n".join(rows)


def section_pipelines() -> str:
    from passes import COMPILE_PIPELINE, DEFAULT_PIPELINE

    return "\n".join(
        [
            f"- `DEFAULT_PIPELINE` (optimization): {' → '.join(DEFAULT_PIPELINE)}",
            f"- `COMPILE_PIPELINE` (what `graphc.jit` and the numba backend run): "
            f"{' → '.join(COMPILE_PIPELINE)}",
        ]
    )


def section_rewrites() -> str:
    from passes import simplify

    rows = ["| op | rewrite | what it does |", "|---|---|---|"]
    for op, rws in simplify.REWRITES.items():
        for rw in rws:
            rows.append(f"| `{op}` | `{rw.__name__}` | {_first_paragraph(rw.__doc__)} |")
    for rw in simplify.ELEMENTWISE_REWRITES:
        rows.append(f"| every elementwise op | `{rw.__name__}` | {_first_paragraph(rw.__doc__)} |")
    return "\n".join(rows)


def _simplified(fn: Callable, *args) -> str:
    from passes import run_pipeline

    g = graphc.trace(fn, *args)
    return f"{g}\n# after simplify:\n{run_pipeline(g, ['simplify'], verify=True)}"


def section_simplify_examples() -> str:
    f32 = graphc.spec("f32[3]")
    parts = [
        "# lambda x: -(-x) * 1.0 + 0.0",
        _simplified(lambda x: -(-x) * 1.0 + 0.0, f32),  # noqa: B002
        "",
        "# lambda x: x * 0.0                           (x may be inf or NaN: kept)",
        _simplified(lambda x: x * 0.0, f32),
        "",
        "# lambda x: (x > 0).astype(np.float32) * 0.0  (finite by construction: zero)",
        _simplified(lambda x: (x > 0).astype(np.float32) * 0.0, f32),
    ]
    return fence("text", "\n".join(parts))


def section_limits() -> str:
    from graphc.codegen import kernels, runtime
    from graphc.codegen.driver import VM_MIN_OPS
    from graphc.text import INLINE_MAX
    from passes.fold import FOLD_MAX_ELEMENTS
    from passes.fuse import MAX_GROUP

    return "\n".join(
        [
            f"- `passes.fold.FOLD_MAX_ELEMENTS = {FOLD_MAX_ELEMENTS}`: the largest result, in "
            "elements, that constant folding materialises.",
            f"- `passes.fuse.MAX_GROUP = {MAX_GROUP}`: ops per fused kernel (the size cap).",
            f"- `graphc.codegen.driver.VM_MIN_OPS = {VM_MIN_OPS}`: fused kernels (or runs of "
            "kernels over one iteration space) with at least this many ops run on the tape "
            "machine.",
            f"- `graphc.codegen.kernels.SUM_BLOCK = {kernels.SUM_BLOCK}`: the block length of "
            "long floating-point sums in kernels.",
            f"- `graphc.codegen.runtime.PARALLEL_MIN_WORK = {runtime.PARALLEL_MIN_WORK}`: the "
            "work (elements × ops) below which a kernel runs on one thread.",
            f"- `graphc.text.INLINE_MAX = {INLINE_MAX}`: array constants up to this many "
            "elements print their values in the IR text.",
        ]
    )


DOCS_CACHE = "/tmp/graphc-docs-cache"  # the cache directory of examples that show its path


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Run with these environment variables set (and restore them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _debug_output(level: int, fn: Callable, *args) -> str:
    """What compiling `fn` on `args` prints under GRAPHC_DEBUG=level."""
    err = io.StringIO()
    with environment(GRAPHC_DEBUG=str(level), GRAPHC_CACHE_DIR=DOCS_CACHE):
        with contextlib.redirect_stderr(err):
            graphc.lower(graphc.trace(fn, *args))
    return err.getvalue()


def section_debug_example() -> str:
    out = _debug_output(1, graphc.grad(seeds.sqdiff), *seeds.EXAMPLE_ARGS["sqdiff"])
    return fence("text", out)


def section_debug2_example() -> str:
    lines = _debug_output(2, seeds.poly, 2.0).rstrip("\n").split("\n")
    return fence("text", "\n".join(lines[:17] + ["..."]))


def section_fusion_report() -> str:
    from graphc import stages

    g = stages.grad(stages.traced(seeds.mlp_loss, *seeds.EXAMPLE_ARGS["mlp_loss"]))
    report = stages.fused(g).info["fusion"]
    lines = [f"kernels: {report.kernels}"]
    lines += [f"{k} × {reason}" for reason, k in report.reasons().items()]
    lines += [str(b) for b in report.boundaries]
    return fence("text", "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# ir.md


def _traced(name: str) -> graphc.Graph:
    return graphc.trace(getattr(seeds, name), *seeds.EXAMPLE_ARGS[name])


def section_ir_poly() -> str:
    return fence("text", _traced("poly").pretty())


def section_ir_mlp() -> str:
    return fence("text", str(_traced("mlp")))


def section_ir_literals() -> str:
    def literals(x, k):
        y = np.where(np.isfinite(x), x, -np.inf)
        return y * 0.5, k + 1, np.logical_not(x > 1e-8)

    return fence("text", str(graphc.trace(literals, graphc.spec("f32[3]"), graphc.spec("i32[]"))))


def _run_file(source: str, filename: str) -> dict:
    """Execute example source as if it were the file `filename` (so locations name it)."""
    ns: dict = {"__name__": os.path.splitext(filename)[0]}
    exec(compile(source, filename, "exec"), ns)
    return ns


def section_ir_model_source() -> str:
    return fence("python", MODEL_PY)


def section_ir_model() -> str:
    ns = _run_file(MODEL_PY, "model.py")
    return fence("text", graphc.trace(ns["forward"], ns["model"], graphc.spec("f32[2,4]")).pretty())


def _layer_graph() -> graphc.Graph:
    return graphc.trace(_run_file(LAYER_PY, "layer.py")["layer"], graphc.spec("f32[3]"))


def section_ir_layer_source() -> str:
    return fence("python", LAYER_PY)


def section_ir_consts() -> str:
    return fence("text", str(_layer_graph()))


def section_ir_saved() -> str:
    g = _layer_graph()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.ir")
        g.save(path)
        text = Path(path).read_text()
        with np.load(path + ".npz") as z:
            arrays = ", ".join(f"`{k}`: {z[k].dtype}{list(z[k].shape)}" for k in z.files)
        same = graphc.load(path) == g
    return (
        "`layer.ir`:\n\n"
        + fence("text", text)
        + f"\n`layer.ir.npz` holds {arrays}; `graphc.load('layer.ir') == g` is {same}.\n"
    )


def section_ir_fused() -> str:
    from passes import COMPILE_PIPELINE, run_pipeline

    vg = graphc.value_and_grad(gelu_loss, argnums=(0, 1))
    g = graphc.trace(vg, *GELU_ARGS)
    return fence("text", str(run_pipeline(g, COMPILE_PIPELINE)))


def rnn_scan(W, h0, xs):
    def step(h, x):
        h = np.tanh(W @ h + x)
        return h, h * 2

    return graphc.scan(step, h0, xs)


def section_ir_scan() -> str:
    args = (graphc.spec("f32[4,4]"), graphc.spec("f32[4]"), graphc.spec("f32[6,4]"))
    return fence("text", str(graphc.trace(rnn_scan, *args)))


def section_ir_joint() -> str:
    from passes.autodiff import vjp

    g = graphc.trace(seeds.sqdiff, *seeds.EXAMPLE_ARGS["sqdiff"])
    return fence("text", str(vjp(g, wrt=[0, 1], seed="ones")))


# ---------------------------------------------------------------------------------------------
# codegen.md


def _relu_layer(x, W, b):
    return gnp.relu(x @ W + b)


RELU_ARGS = (graphc.spec("f32[64,128]"), graphc.spec("f32[128,32]"), graphc.spec("f32[32]"))


@cache
def _lowered_relu():
    return graphc.lower(graphc.trace(_relu_layer, *RELU_ARGS))


def section_codegen_lowered() -> str:
    low = _lowered_relu()
    return fence("text", f"{low!r}\n{low.optimized}")


def section_codegen_module() -> str:
    return fence("python", _lowered_relu().source)


def _softmax(x):
    return gnp.softmax(x, axis=1)


def section_codegen_row_kernel() -> str:
    low = graphc.lower(graphc.trace(_softmax, graphc.spec("f32[64,10]")))
    src = low.source
    start = src.index("def kernel0")
    return fence("python", src[start : src.index("\n\n\n", start)])


def _long_chain(x):
    for _ in range(70):
        x = np.tanh(x) * 0.5 + x
    return np.sum(x)


def section_codegen_vm() -> str:
    low = graphc.lower(graphc.trace(_long_chain, graphc.spec("f32[100000]")))
    src = low.source
    return fence("text", f"{low!r}\n\n" + src[src.index("def run") :])


def _argmax_exp(x):
    return np.argmax(np.exp(x), axis=1)


def section_codegen_fallback() -> str:
    low = graphc.lower(graphc.trace(_argmax_exp, graphc.spec("f32[8,10]")))
    src = low.source
    return fence("text", f"{low!r}\nfallbacks: {low.fallbacks}\n\n" + src[src.index("def run") :])


def section_codegen_fallback_debug() -> str:
    out = _debug_output(1, _argmax_exp, graphc.spec("f32[16,10]"))
    keep = [ln for ln in out.split("\n") if "] compiled" in ln or "NumPy fallback" in ln]
    return fence("text", "\n".join(keep))


# ---------------------------------------------------------------------------------------------
# cli.md

CLI_COMMANDS: dict[str, list[str]] = {
    "cli-help": ["graphc --help"],
    "cli-dump": ["graphc dump examples/seeds.py:mlp"],
    "cli-dump-fused": ["graphc dump examples/seeds.py:mlp --stage fused --no-locations"],
    "cli-dump-grad": [
        "graphc dump examples/seeds.py:sqdiff --arg f32[3] --arg y=f32[3] --stage grad"
    ],
    "cli-dump-partition": [
        "graphc dump examples/seeds.py:mlp_loss --stage forward --no-locations",
        "graphc dump examples/seeds.py:mlp_loss --stage backward --no-locations",
    ],
    "cli-dump-kernels": ["graphc dump examples/seeds.py:poly --stage kernels"],
    "cli-dump-json": ["graphc dump examples/seeds.py:poly --format json"],
    "cli-dump-dot": ["graphc dump examples/seeds.py:poly --format dot"],
    "cli-dump-loops": ["graphc dump loops.py:smooth --no-locations"],
    "cli-viz": [
        "graphc viz examples/seeds.py:mlp_loss --stage joint -o mlp_loss_joint.svg",
        "graphc viz examples/seeds.py:convnet --stage fused -o convnet.png --budget 60",
    ],
    "cli-viz-loops": ["graphc viz loops.py:smooth -o loops.svg"],
    "cli-diff": ["graphc diff examples/seeds.py:mlp_loss --stage grad"],
    "cli-diff-loops": ["graphc diff loops.py:smooth --passes fold,simplify,dce"],
    "cli-diff-passes": ["graphc diff examples/seeds.py:poly --stage grad --passes fold,simplify"],
    "cli-passes": ["graphc passes"],
    "cli-cache": [
        "GRAPHC_CACHE_DIR=/tmp/graphc-docs-cache graphc cache clear",
        "GRAPHC_CACHE_DIR=/tmp/graphc-docs-cache graphc dump examples/seeds.py:mlp "
        "--stage kernels > /dev/null",
        "GRAPHC_CACHE_DIR=/tmp/graphc-docs-cache graphc cache info",
    ],
    "cli-errors": [
        "graphc dump examples/seeds.py:mlpp",
        "graphc dump examples/seeds.py:sqdiff --arg f32[3]",
        "graphc dump examples/seeds.py:sqdiff --arg f32[3 --arg f32[3]",
    ],
}


def _cli_section(name: str) -> Callable[[], str]:
    return lambda: fence("console", console(CLI_COMMANDS[name]))


def section_cli_loops_source() -> str:
    return fence("python", LOOPS_PY)


# ---------------------------------------------------------------------------------------------
# pictures


@dataclass
class Picture:
    name: str
    dot: Callable[[], str]


def _param_names(fn: Callable) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _mlp_dot(stage: str) -> str:
    from graphc import stages, viz

    args = seeds.EXAMPLE_ARGS["mlp_loss"]
    # the backward picture titles its residual and cotangent inputs itself, naming forward
    # values by these parameter names
    graph = stages.build(seeds.mlp_loss, stage, *args)
    return viz.to_dot(graph, input_names=_param_names(seeds.mlp_loss))


def _gelu_dot() -> str:
    from graphc import stages, viz

    vg = graphc.value_and_grad(gelu_loss, argnums=(0, 1))
    graph = stages.fused(graphc.trace(vg, *GELU_ARGS))
    return viz.to_dot(graph, input_names=["x", "w"], title="value_and_grad(gelu_loss), fused")


def _convnet_dot() -> str:
    from graphc import stages, viz

    graph, names = convnet_step_graph()
    fused = stages.fused(graph)
    return viz.to_dot(
        fused, input_names=names or None, budget=150, title="one Adam step of a small ConvNet"
    )


def _loops_dot() -> str:
    from graphc import viz

    ns = _run_file(LOOPS_PY, "loops.py")
    graph = graphc.trace(ns["smooth"], *ns["EXAMPLE_ARGS"]["smooth"])
    return viz.to_dot(graph, input_names=_param_names(ns["smooth"]))


PICTURES = [
    Picture("mlp_loss_forward.svg", lambda: _mlp_dot("forward")),
    Picture("mlp_loss_backward.svg", lambda: _mlp_dot("backward")),
    Picture("mlp_loss_joint.svg", lambda: _mlp_dot("joint")),
    Picture("gelu_fused.svg", _gelu_dot),
    Picture("convnet_step.svg", _convnet_dot),
    Picture("loops.svg", _loops_dot),
]

_STAMP = re.compile(r"<!-- graphc docs: dot sha256 ([0-9a-f]{64}) -->")


def dot_digest(dot: str) -> str:
    return hashlib.sha256(dot.encode()).hexdigest()


def svg_digest(path: Path) -> str | None:
    """The DOT digest a generated SVG records (None: not generated by make_docs)."""
    if not path.exists():
        return None
    m = _STAMP.search(path.read_text(errors="replace"))
    return m.group(1) if m else None


def write_picture(pic: Picture, dot: str) -> None:
    from graphc import viz

    svg = viz.pipe(dot, "svg").decode()
    stamp = f"<!-- graphc docs: dot sha256 {dot_digest(dot)} -->\n"
    head, sep, rest = svg.partition("\n")
    svg = head + sep + stamp + rest if head.startswith("<?xml") else stamp + svg
    IMAGES.mkdir(exist_ok=True)
    (IMAGES / pic.name).write_text(svg)


# ---------------------------------------------------------------------------------------------
# sections and pages

SECTIONS: dict[str, Callable[[], str]] = {
    "pass-list": section_pass_list,
    "pipelines": section_pipelines,
    "rewrites": section_rewrites,
    "simplify-examples": section_simplify_examples,
    "limits": section_limits,
    "debug-example": section_debug_example,
    "debug2-example": section_debug2_example,
    "fusion-report": section_fusion_report,
    "ir-poly": section_ir_poly,
    "ir-mlp": section_ir_mlp,
    "ir-literals": section_ir_literals,
    "ir-model-source": section_ir_model_source,
    "ir-model": section_ir_model,
    "ir-layer-source": section_ir_layer_source,
    "ir-consts": section_ir_consts,
    "ir-saved": section_ir_saved,
    "ir-fused": section_ir_fused,
    "ir-scan": section_ir_scan,
    "ir-joint": section_ir_joint,
    "codegen-lowered": section_codegen_lowered,
    "codegen-module": section_codegen_module,
    "codegen-row-kernel": section_codegen_row_kernel,
    "codegen-vm": section_codegen_vm,
    "codegen-fallback": section_codegen_fallback,
    "codegen-fallback-debug": section_codegen_fallback_debug,
    "cli-loops-source": section_cli_loops_source,
    **{name: _cli_section(name) for name in CLI_COMMANDS},
}

_SECTION = re.compile(
    r"(?P<begin><!-- BEGIN generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(?P<end><!-- END generated: (?P=name) -->)",
    re.S,
)

# pages whose sections are filled in (ops.md is generated whole; tutorial.md is run)
PAGES = ["ir.md", "passes.md", "codegen.md", "cli.md"]


def fill_sections(text: str, page: str) -> str:
    """`text` with every generated section replaced by what its generator produces now. The
    commands of cli.md run in a sandbox; everything else at the repository root (source
    locations are relative to it)."""

    def repl(m: re.Match) -> str:
        name = m.group("name")
        if name not in SECTIONS:
            raise DocsError(f"{page}: unknown generated section {name!r}")
        return f"{m.group('begin')}{SECTIONS[name]().rstrip(chr(10))}\n{m.group('end')}"

    with sandbox() if page == "cli.md" else at(ROOT):
        return _SECTION.sub(repl, text)


def expected_page(page: str) -> str:
    """What docs/`page` should contain now."""
    if page == "ops.md":
        with at(ROOT):
            return render_ops() + "\n"
    text = (DOCS / page).read_text()
    if page == "tutorial.md":
        return run_tutorial(text)
    return fill_sections(text, page)


ALL_PAGES = ["ops.md", *PAGES, "tutorial.md"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate the generated parts of docs/.")
    ap.add_argument("--check", action="store_true", help="report stale files, change nothing")
    ap.add_argument("pages", nargs="*", help="only these pages (default: all, and the pictures)")
    args = ap.parse_args(argv)
    stale = []
    for page in args.pages or ALL_PAGES:
        path = DOCS / page
        old = path.read_text() if path.exists() else ""
        new = expected_page(page)
        if normalize(new) != normalize(old):  # timings and the like alone leave a page be
            stale.append(page)
            if not args.check:
                path.write_text(new)
                print(f"wrote docs/{page}")
    if not args.pages:
        with at(ROOT):
            for pic in PICTURES:
                dot = pic.dot()
                path = IMAGES / pic.name
                if svg_digest(path) != dot_digest(dot):
                    stale.append(f"images/{pic.name}")
                    if not args.check:
                        write_picture(pic, dot)
                        print(f"wrote docs/images/{pic.name}")
    if args.check and stale:
        print("stale (run `make docs`): " + ", ".join(stale))
        return 1
    if not stale:
        print("docs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
