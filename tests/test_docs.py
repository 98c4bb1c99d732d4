"""The documentation in docs/: the tutorial runs as written and prints what it shows; every
generated page, section and picture is what docs/make_docs.py produces from the code now (so
adding an op or a pass, or changing what a command prints, without `make docs` fails here); the
IR examples parse back; links, pictures and environment variables are all accounted for."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc.ir import Aval
from graphc.ops import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")


def _load_make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", DOCS / "make_docs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_docs"] = mod
    spec.loader.exec_module(mod)
    return mod


make_docs = _load_make_docs()


def read(page: str) -> str:
    return (DOCS / page).read_text()


def assert_up_to_date(page: str, committed: str, now: str) -> None:
    if make_docs.normalize(now) != make_docs.normalize(committed):
        diff = make_docs.unified_diff(committed, now, f"docs/{page}")
        pytest.fail(f"docs/{page} is stale: run `make docs`\n{diff[:8000]}", pytrace=False)


# -- the tutorial --------------------------------------------------------------------------------


@needs_dot
def test_tutorial_runs_as_written_and_prints_what_it_shows():
    """Every ```python block runs, in order, in one namespace; the ```text block after a block
    is exactly what it printed (and a block that prints has one); console blocks likewise."""
    text = read("tutorial.md")
    assert_up_to_date("tutorial.md", text, make_docs.run_tutorial(text))


def test_tutorial_follows_the_seed_path():
    text = read("tutorial.md")
    code = "\n".join(b.body for b in make_docs.blocks(text) if b.lang in ("python", "console"))
    steps = [
        "graphc.gradient(",
        "graphc.grad(df)",  # a second derivative
        "c=np.tanh",  # a nested structure with a non-array leaf
        "graphc.withgradient(",
        "W - 0.3 * gW",  # linear regression by gradient descent
        "nn.Chain(nn.Dense(",
        "@nn.layer",
        "graphc.destructure(",
        "graphc.hessian(",
        "graphc.jit(seeds.mlp_loss)",
        ".lower(",
        "graphc.viz.render(",
        "graphc dump",
        "graphc.vmap(graphc.grad(",  # per-example gradients
    ]
    positions = [code.find(s) for s in steps]
    missing = [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert not missing, f"the tutorial does not show: {missing}"
    order = [s for _, s in sorted(zip(positions, steps, strict=True))]
    assert order == steps, f"the tutorial's steps are out of order: {order}"


def test_tutorial_blocks_are_run_not_skipped():
    bl = make_docs.blocks(read("tutorial.md"))
    python = [b for b in bl if b.lang == "python"]
    assert len(python) >= 20
    assert not [b for b in python if "no-run" in b.flags]
    outputs = [b for b in bl if b.lang == "text"]
    assert len(outputs) >= 15  # outputs are shown, and so checked


# -- generated pages and sections ----------------------------------------------------------------


def test_ops_md_is_generated_from_the_registry():
    assert_up_to_date("ops.md", read("ops.md"), make_docs.expected_page("ops.md"))


def test_ops_md_has_a_row_per_registered_op():
    text = read("ops.md")
    missing = [name for name in REGISTRY if f"| `{name}` |" not in text]
    assert not missing, f"docs/ops.md has no row for {missing}: run `make docs`"


def test_every_non_elementwise_op_has_a_codegen_sample():
    from graphc.ops import Kind

    fixed = set(make_docs._FIXED_FORMS)
    need = {n for n, d in REGISTRY.items() if d.kind is not Kind.ELEMENTWISE} - fixed
    assert need <= set(make_docs.SAMPLES), (
        f"add samples for {sorted(need - set(make_docs.SAMPLES))} to SAMPLES in docs/make_docs.py"
    )


@pytest.mark.parametrize("page", ["ir.md", "passes.md", "codegen.md"])
def test_generated_sections_are_up_to_date(page):
    assert_up_to_date(page, read(page), make_docs.expected_page(page))


@needs_dot
def test_cli_md_shows_what_the_commands_print():
    assert_up_to_date("cli.md", read("cli.md"), make_docs.expected_page("cli.md"))


def test_every_generated_section_has_a_generator_and_is_used():
    used = set()
    for page in make_docs.PAGES:
        text = read(page)
        begins = re.findall(r"<!-- BEGIN generated: ([\w-]+) -->", text)
        ends = re.findall(r"<!-- END generated: ([\w-]+) -->", text)
        assert begins == ends, f"{page}: unbalanced generated-section markers"
        unknown = set(begins) - set(make_docs.SECTIONS)
        assert not unknown, f"{page}: no generator for {unknown}"
        used |= set(begins)
    assert set(make_docs.SECTIONS) == used, f"unused generators: {set(make_docs.SECTIONS) - used}"


def test_passes_md_lists_every_registered_pass():
    from passes import PASSES

    text = read("passes.md")
    missing = [name for name in PASSES if f"| `{name}` |" not in text]
    assert not missing, f"docs/passes.md does not list {missing}: run `make docs`"


def test_cli_md_covers_every_command():
    from graphc.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = read("cli.md")
    for command in sub.choices:
        shown = re.search(rf"^\$ (?:[A-Z_]+=\S+ )*graphc {command}\b", text, re.M)
        assert shown, f"docs/cli.md shows no `graphc {command}` example"


# -- the IR examples -----------------------------------------------------------------------------


def _ir_examples(text: str) -> list[str]:
    return [b.body for b in make_docs.blocks(text) if b.lang == "text" and b.body.startswith("{")]


def _consts_for(text: str) -> dict[str, np.ndarray]:
    """Values (zeros) for the constant variables an IR text declares before its `;`."""
    head = text[text.index("lambda") + len("lambda") : text.index(";")]
    out = {}
    for name, typ in re.findall(r"(\w+):(\w+\[[\d,]*\])", head):
        aval = Aval.parse(typ)
        out[name] = np.zeros(aval.shape, aval.dtype)
    return out


def test_ir_md_examples_parse_back_and_print_identically():
    examples = _ir_examples(read("ir.md"))
    assert len(examples) >= 8
    for text in examples:
        g = graphc.parse(text, _consts_for(text))
        again = g.pretty() if "#" in text else str(g)
        assert again == text.rstrip("\n"), f"round trip changed:\n{text}\n---\n{again}"
        assert graphc.parse(again, _consts_for(text)) == g


def test_ir_md_grammar_names_every_dtype():
    from graphc.ir import DTYPES_BY_NAME

    grammar = read("ir.md").split("## Grammar")[1].split("##")[0]
    dtypes = re.search(r"DTYPE\s+::=(.*)", grammar).group(1)
    assert set(re.findall(r"\w+", dtypes)) == set(DTYPES_BY_NAME)


# -- pictures ------------------------------------------------------------------------------------


def test_pictures_are_drawn_from_the_examples_now():
    """Each SVG records the digest of the DOT text it was drawn from; the DOT made now must
    match (no Graphviz needed to check)."""
    stale = []
    with make_docs.at(ROOT):
        for pic in make_docs.PICTURES:
            if make_docs.svg_digest(make_docs.IMAGES / pic.name) != make_docs.dot_digest(pic.dot()):
                stale.append(pic.name)
    assert not stale, f"docs/images/{', '.join(stale)} stale or missing: run `make docs`"


def test_pictures_are_referenced_and_generated():
    referenced = set()
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (DOCS / target).exists(), f"{page.name} shows missing picture {target}"
            referenced.add(Path(target).name)
    generated = {p.name for p in make_docs.PICTURES}
    on_disk = {p.name for p in make_docs.IMAGES.glob("*")}
    assert on_disk == generated, f"pictures not made by make_docs: {on_disk - generated}"
    assert generated == referenced, f"pictures shown nowhere: {generated - referenced}"


@pytest.mark.parametrize("name", ["mlp_loss_forward", "mlp_loss_backward", "mlp_loss_joint"])
def test_mlp_pictures_name_their_inputs(name):
    svg = (make_docs.IMAGES / f"{name}.svg").read_text()
    assert "W1" in svg and ("grad" in svg or "saved" in svg)


# -- links, contents, environment, make ---------------------------------------------------------


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_between_pages_resolve():
    for page in DOCS.glob("*.md"):
        text = page.read_text()
        for target in re.findall(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (DOCS / path) if path else page
            assert dest.exists(), f"{page.name} links to missing {target}"
            if anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(), re.M)
                assert anchor in {_slug(h) for h in headings}, f"{page.name}: no anchor {target}"


def test_index_lists_every_page():
    index = read("index.md")
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    missing = [p for p in sorted(pages) if f"({p})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"


def test_every_environment_variable_is_documented():
    used = set()
    for folder in ("graphc", "passes"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            used |= set(re.findall(r"environ(?:\.get)?\(?\[?\s*\"(GRAPHC_\w+)\"", text))
            used |= set(re.findall(r"env_int\(\s*\"(GRAPHC_\w+)\"", text))  # graphc.env
    assert {"GRAPHC_DEBUG", "GRAPHC_CACHE_DIR", "GRAPHC_THREADS"} <= used
    table = read("codegen.md").split("## Environment variables")[1]
    missing = [v for v in sorted(used) if f"| `{v}` |" not in table]
    assert not missing, f"docs/codegen.md does not document {missing}"


def test_makefile_docs_target_runs_the_generator():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^docs: setup\n\t\$\(PY\) docs/make_docs.py$", makefile, re.M)


def test_check_mode_reports_nothing_stale_for_ops(capsys):
    assert make_docs.main(["--check", "ops.md"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_normalize_masks_only_what_varies():
    a = "fold  30  28  0.25 ms  removed: -\nentries: 1 compiled graphs, 5 files, 63.8 KiB (6 bytes)"
    b = "fold  30  28  12.5 ms  removed: -\nentries: 2 compiled graphs, 9 files, 1.2 MiB (1 bytes)"
    assert make_docs.normalize(a) == make_docs.normalize(b)
    assert make_docs.normalize("b:f32[3] = tanh a") != make_docs.normalize("b:f32[4] = tanh a")
    assert make_docs.normalize("fold 30 -> 28") != make_docs.normalize("fold 30 -> 27")


_PATH_REF = re.compile(
    r"(?<![\w./-])((?:graphc|passes|tests|examples|benchmarks|docs)/[A-Za-z0-9_./*-]*[A-Za-z0-9_/*])"
)
_MODULE_REF = re.compile(r"`((?:graphc|passes)(?:\.[a-z_][a-z0-9_]*)+)")


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in DOCS.glob("*.md"))])
def test_files_and_modules_the_docs_name_exist(page):
    """Every repository path (`graphc/stages.py`, `tests/golden/`) and every graphc module or
    attribute path in backticks (`graphc.codegen.vm.write_source`) that a page names exists,
    so a file moved or renamed cannot leave the docs pointing at nothing."""
    text = (ROOT / page).read_text() if page == "README.md" else read(page)
    missing = []
    for ref in sorted(set(_PATH_REF.findall(text))):
        if not list(ROOT.glob(ref.rstrip("/"))):
            missing.append(ref)
    for ref in sorted(set(_MODULE_REF.findall(text))):
        parts = ref.split(".")
        # the longest importable prefix, then attributes
        for k in range(len(parts), 0, -1):
            name = ".".join(parts[:k])
            try:
                obj = importlib.import_module(name)
            except ImportError:
                continue
            try:
                for attr in parts[k:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(ref)
            break
        else:
            missing.append(ref)
    assert not missing, f"{page} names what the repository does not have: {missing}"
