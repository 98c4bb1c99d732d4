"""Package layout: the modules of graphc.nn import each other one way. Their module-level imports
(read with ast, not by importing) form no cycle, and none of them imports inside a function, the
usual way of hiding a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import graphc.nn

PACKAGE = "graphc.nn"
NN_DIR = Path(graphc.nn.__file__).resolve().parent


def _module_name(path: Path) -> str:
    return PACKAGE if path.name == "__init__.py" else f"{PACKAGE}.{path.stem}"


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported: at module level, also inside
    module-level `if`/`try`/`with` blocks, never inside functions or classes."""
    out: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        st = todo.pop()
        if isinstance(st, (ast.Import, ast.ImportFrom)):
            out.append(st)
        elif isinstance(st, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(st, field, []):
                    if isinstance(child, ast.ExceptHandler):
                        todo.extend(child.body)
                    else:
                        todo.append(child)
    return out


def _resolve(st: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not st.level:
        return st.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (st.level - 1)]
    return ".".join(base + ([st.module] if st.module else []))


def import_graph(sources: dict[str, str], package: str = PACKAGE) -> dict[str, set[str]]:
    """Edges importer -> imported among the modules named in `sources` (module name -> source
    text; the package itself is `package`), from module-level imports only."""
    names = set(sources)
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for mod, text in sources.items():
        is_package = mod == package
        for st in _top_level_imports(ast.parse(text)):
            targets: list[str] = []
            if isinstance(st, ast.Import):
                targets = [a.name for a in st.names]
            else:
                base = _resolve(st, mod, is_package)
                # `from graphc.nn import tree` names a module, `from graphc.nn import relu` a
                # name of the package
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in st.names
                ]
            for t in targets:
                # `import graphc.nn.tree` and `from graphc import nn` reach the module that the
                # longest known prefix of the dotted name names; outside modules reach none
                while t and t not in names:
                    t = t.rpartition(".")[0]
                if t:
                    graph[mod].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None; an explicit stack, no recursion."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in sorted(graph):
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(sorted(graph[root]))]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def _nn_sources() -> dict[str, str]:
    return {_module_name(p): p.read_text() for p in sorted(NN_DIR.glob("*.py"))}


def test_nn_module_imports_are_acyclic():
    sources = _nn_sources()
    assert {"graphc.nn.module", "graphc.nn.layers", "graphc.nn.tree"} <= set(sources)
    graph = import_graph(sources)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among graphc.nn modules: " + " -> ".join(cycle or [])
    # the layering the package relies on
    assert "graphc.nn.module" in graph["graphc.nn.layers"]
    assert "graphc.nn.layers" not in graph["graphc.nn.module"]
    assert all(PACKAGE not in deps for m, deps in graph.items() if m != PACKAGE), graph


def test_nn_has_no_function_local_imports():
    found = []
    for mod, text in _nn_sources().items():
        tree = ast.parse(text)
        top = {id(s) for s in _top_level_imports(tree)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                found.append(f"{mod}:{node.lineno}")
    assert not found, f"imports inside functions or classes: {found}"


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        # plain two-module cycle
        (
            {
                "graphc.nn": "",
                "graphc.nn.a": "from graphc.nn.b import x\n",
                "graphc.nn.b": "from graphc.nn.a import y\n",
            },
            {"graphc.nn.a", "graphc.nn.b"},
        ),
        # three modules, reached through `import`, a package-relative `from . import` and a
        # guarded module-level import
        (
            {
                "graphc.nn": "",
                "graphc.nn.a": "import graphc.nn.b\n",
                "graphc.nn.b": "from . import c\n",
                "graphc.nn.c": "try:\n    from .a import f\nexcept ImportError:\n    pass\n",
            },
            {"graphc.nn.a", "graphc.nn.b", "graphc.nn.c"},
        ),
        # a submodule importing a name from the package whose __init__ imports it
        (
            {
                "graphc.nn": "from graphc.nn.layers import Dense\n",
                "graphc.nn.layers": "from graphc import nn\n",
            },
            {"graphc.nn", "graphc.nn.layers"},
        ),
        (
            {
                "graphc.nn": "from graphc.nn.layers import Dense\n",
                "graphc.nn.layers": "from graphc.nn import relu\n",
            },
            {"graphc.nn", "graphc.nn.layers"},
        ),
    ],
)
def test_cycle_finder_reports_cycles(sources, expected):
    cycle = find_cycle(import_graph(sources))
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == expected


def test_cycle_finder_ignores_function_local_and_outside_imports():
    sources = {
        "graphc.nn": "from graphc.nn.a import f\n",
        "graphc.nn.a": "import numpy\nfrom graphc.nn.b import g\n",
        "graphc.nn.b": "import graphc\n\ndef g():\n    from graphc.nn.a import f\n    return f\n",
    }
    graph = import_graph(sources)
    assert graph == {
        "graphc.nn": {"graphc.nn.a"},
        "graphc.nn.a": {"graphc.nn.b"},
        "graphc.nn.b": set(),
    }
    assert find_cycle(graph) is None


def test_cycle_finder_handles_long_chains_without_recursion():
    n = 5000  # deeper than Python's recursion limit
    sources = {"graphc.nn": ""}
    for i in range(n):
        sources[f"graphc.nn.m{i}"] = f"from graphc.nn.m{i + 1} import x\n" if i + 1 < n else ""
    assert find_cycle(import_graph(sources)) is None
    sources[f"graphc.nn.m{n - 1}"] = "from graphc.nn.m0 import x\n"
    cycle = find_cycle(import_graph(sources))
    assert cycle is not None and len(cycle) == n + 1


# -- graphc.codegen --------------------------------------------------------------------------

CODEGEN_DIR = NN_DIR.parent / "codegen"


def _codegen_sources() -> dict[str, str]:
    return {
        ("graphc.codegen" if p.name == "__init__.py" else f"graphc.codegen.{p.stem}"): (
            p.read_text()
        )
        for p in sorted(CODEGEN_DIR.glob("*.py"))
    }


def test_codegen_imports_nothing_from_passes():
    found = []
    for mod, text in _codegen_sources().items():
        for node in ast.walk(ast.parse(text)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            found += [f"{mod}:{node.lineno}" for n in names if n.split(".")[0] == "passes"]
    assert not found, f"codegen imports passes at {found}"


def test_codegen_modules_import_each_other_one_way():
    sources = _codegen_sources()
    assert {"graphc.codegen.driver", "graphc.codegen.buffers", "graphc.codegen.cache"} <= set(
        sources
    )
    graph = import_graph(sources, package="graphc.codegen")
    graph.pop("graphc.codegen")  # the package re-exports its modules' entry points
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among graphc.codegen modules: " + " -> ".join(cycle or [])
    # buffer planning and the cache know nothing of the driver that uses them
    for low in ("graphc.codegen.buffers", "graphc.codegen.cache"):
        assert not graph[low] & {"graphc.codegen.driver", "graphc.codegen.runtime"}, graph[low]
