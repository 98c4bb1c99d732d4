"""Package layout: the modules of graphc.nn, and those of graphc.numpy, import each other one way.
Their module-level imports (read with ast, not by importing) form no cycle, and none of them
imports inside a function, the usual way of hiding a cycle. graphc.numpy's package exports every
public function its families define, and every NumPy function the tracer dispatches on."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc.nn
import graphc.numpy as gnp
from graphc.numpy import dispatch, unsupported

PACKAGE = "graphc.nn"
NN_DIR = Path(graphc.nn.__file__).resolve().parent
NUMPY_PACKAGE = "graphc.numpy"
NUMPY_DIR = Path(gnp.__file__).resolve().parent


def _module_name(path: Path, package: str = PACKAGE) -> str:
    return package if path.name == "__init__.py" else f"{package}.{path.stem}"


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


def _numpy_sources() -> dict[str, str]:
    return {_module_name(p, NUMPY_PACKAGE): p.read_text() for p in sorted(NUMPY_DIR.glob("*.py"))}


def _function_local_imports(sources: dict[str, str]) -> list[str]:
    found = []
    for mod, text in sources.items():
        tree = ast.parse(text)
        top = {id(s) for s in _top_level_imports(tree)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                found.append(f"{mod}:{node.lineno}")
    return found


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
    found = _function_local_imports(_nn_sources())
    assert not found, f"imports inside functions or classes: {found}"


# -- graphc.numpy -------------------------------------------------------------------------------

# the families whose functions make up graphc.numpy's namespace; `dispatch` and `tracer_methods`
# fill the tracer's tables, `unsupported` holds refusals only
NUMPY_MACHINERY = {"dispatch", "tracer_methods", "unsupported"}


def _numpy_modules() -> dict[str, object]:
    names = [m for m in _numpy_sources() if m != NUMPY_PACKAGE]
    return {m.rpartition(".")[2]: importlib.import_module(m) for m in names}


def test_numpy_module_imports_are_acyclic():
    sources = _numpy_sources()
    assert {"graphc.numpy._core", "graphc.numpy.ufuncs", "graphc.numpy.dispatch"} <= set(sources)
    graph = import_graph(sources, NUMPY_PACKAGE)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among graphc.numpy modules: " + " -> ".join(cycle or [])
    # only the package's __init__ imports the package; the families import each other
    assert all(NUMPY_PACKAGE not in deps for m, deps in graph.items() if m != NUMPY_PACKAGE)
    # the shared machinery is the bottom layer
    assert graph["graphc.numpy._core"] == set(), graph["graphc.numpy._core"]


def test_numpy_has_no_function_local_imports():
    found = _function_local_imports(_numpy_sources())
    assert not found, f"imports inside functions or classes: {found}"


def test_tracer_does_not_import_graphc_numpy():
    """graphc.numpy builds on graphc.trace (it fills the tracer's dispatch tables); the tracer
    never imports it back."""
    text = Path(sys.modules["graphc.trace"].__file__).read_text()
    imported = set()
    for st in ast.walk(ast.parse(text)):
        if isinstance(st, ast.ImportFrom):
            imported.add(st.module or "")
            imported |= {f"{st.module}.{a.name}" for a in st.names}
        elif isinstance(st, ast.Import):
            imported |= {a.name for a in st.names}
    assert not {m for m in imported if m.startswith(NUMPY_PACKAGE)}, imported


def test_numpy_exports_every_public_function_of_its_families():
    missing, not_listed = [], []
    for name, mod in _numpy_modules().items():
        if name in NUMPY_MACHINERY:
            continue
        for attr, obj in vars(mod).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if not callable(obj):
                continue
            if getattr(gnp, attr, None) is not obj:
                missing.append(f"{mod.__name__}.{attr}")
            elif attr not in gnp.__all__ and attr != "divmod_":  # divmod_: never in __all__
                not_listed.append(attr)
    assert not missing, f"not exported by graphc.numpy: {missing}"
    assert not not_listed, f"not in graphc.numpy.__all__: {not_listed}"
    assert [n for n in gnp.__all__ if not hasattr(gnp, n)] == []
    assert len(set(gnp.__all__)) == len(gnp.__all__)


def test_numpy_exports_every_function_the_tracer_dispatches_on():
    """Each NumPy function and ufunc a tracer handles is graphc.numpy's function of the same
    name (np.linalg's under gnp.linalg), unless graphc refuses it with a reason."""
    trace_module = sys.modules["graphc.trace"]
    # divmod_: the builtin's name stays the builtin's; NumPy 2's np.transpose is np.permute_dims
    other_name = {np.divmod: "divmod_", np.permute_dims: "permute_dims"}
    wrong = []
    for table in (trace_module.HANDLED_FUNCTIONS, trace_module.HANDLED_UFUNCS):
        assert table, "graphc.numpy registered no handlers"
        for fn, handler in table.items():
            if handler.__module__ == unsupported.__name__:
                continue
            space = gnp.linalg if fn.__module__.startswith("numpy.linalg") else gnp
            names = (fn.__name__, other_name.get(fn, fn.__name__))
            if not any(getattr(space, n, None) is handler for n in names):
                wrong.append(fn.__name__)
    assert not wrong, f"handlers that are not graphc.numpy's function of that name: {wrong}"


def test_every_family_table_is_registered():
    trace_module = sys.modules["graphc.trace"]
    joined = [
        (dispatch.FUNCTION_TABLES, "FUNCTIONS", trace_module.HANDLED_FUNCTIONS),
        (dispatch.UFUNC_TABLES, "UFUNCS", trace_module.HANDLED_UFUNCS),
        (dispatch.UFUNC_METHOD_TABLES, "UFUNC_METHODS", trace_module.HANDLED_UFUNC_METHODS),
    ]
    for tables, attr, handled in joined:
        ids = {id(t) for t in tables}
        for name, mod in _numpy_modules().items():
            table = getattr(mod, attr, None)
            if table is not None:
                assert id(table) in ids, f"graphc.numpy.{name}.{attr} is not registered"
        for table in tables:
            assert all(handled[k] is v for k, v in table.items())
    # a binary ufunc's outer method comes with it
    assert (np.hypot, "outer") in trace_module.HANDLED_UFUNC_METHODS


def test_a_numpy_function_handled_by_two_families_is_an_error():
    with pytest.raises(RuntimeError, match="two families"):
        dispatch._joined(({np.sum: gnp.sum}, {np.sum: gnp.prod}))


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


# ---------------------------------------------------------------------------------------------
# the whole product: graphc and passes

ROOT_DIR = NN_DIR.parent.parent

# the layers, lowest first: a module imports (at module level or inside a function) only from
# its own layer or lower ones
LAYERS: list[tuple[str, ...]] = [
    ("graphc.ir", "graphc.env", "graphc.version", "graphc.tree_util", "graphc.data"),
    ("graphc.ops",),
    ("graphc.text", "graphc.verify"),
    ("graphc.trace",),
    ("graphc.numpy",),
    ("graphc.control", "graphc.custom"),
    ("passes",),
    ("graphc.signature",),
    ("graphc.codegen",),
    ("graphc.api",),
    ("graphc",),  # the package's namespace: the public API
    ("graphc.stages",),
    ("graphc.viz", "graphc.cli", "graphc.nn", "graphc.torch", "graphc.__main__"),
]
# upward imports inside functions that load an optional heavy dependency on first use
LAZY_UPWARD = {
    # drawing needs Graphviz (the graphviz package and `dot`), optional for everything else
    ("graphc.ir", "graphc.viz"),
}


def _product_sources() -> dict[str, str]:
    out = {}
    for top in ("graphc", "passes"):
        for p in sorted((ROOT_DIR / top).rglob("*.py")):
            rel = p.relative_to(ROOT_DIR).with_suffix("").parts
            name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
            out[name] = p.read_text()
    return out


def _layer(mod: str) -> int:
    best = (-1, -1)
    for k, names in enumerate(LAYERS):
        for n in names:
            if (mod == n or mod.startswith(n + ".")) and len(n) > best[1]:
                best = (k, len(n))
    assert best[0] >= 0, f"{mod} is in no layer: add it to LAYERS"
    return best[0]


def _every_import(sources: dict[str, str]) -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every import statement, in functions too."""
    names = set(sources)
    out = []
    for mod, text in sources.items():
        is_package = any(m.startswith(mod + ".") for m in names)
        for st in ast.walk(ast.parse(text)):
            if isinstance(st, ast.Import):
                targets = [a.name for a in st.names]
            elif isinstance(st, ast.ImportFrom):
                base = _resolve(st, mod, is_package)
                subs = [f"{base}.{a.name}" for a in st.names if f"{base}.{a.name}" in names]
                targets = subs if len(subs) == len(st.names) else [base, *subs]
            else:
                continue
            for t in targets:
                while t and t not in names:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    out.append((mod, t, st.lineno))
    return out


def test_product_module_imports_are_acyclic():
    """graphc's and passes' module-level imports form no cycle (a package imports its own
    submodules; a submodule does not import its package back, e.g. the passes import the pass
    manager, not `passes`)."""
    sources = _product_sources()
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for mod, text in sources.items():
        is_package = any(m.startswith(mod + ".") for m in sources)
        for st in _top_level_imports(ast.parse(text)):
            if isinstance(st, ast.Import):
                targets = [a.name for a in st.names]
            else:
                base = _resolve(st, mod, is_package)
                subs = [f"{base}.{a.name}" for a in st.names if f"{base}.{a.name}" in sources]
                targets = subs if len(subs) == len(st.names) else [base, *subs]
            for t in targets:
                while t and t not in sources:
                    t = t.rpartition(".")[0]
                if t and t != mod and not mod.startswith(t + "."):
                    graph[mod].add(t)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_imports_point_down_the_layers():
    """No module imports from a layer above its own, at module level or inside a function:
    a function-local import is not a way around the layering (the few that load an optional
    heavy dependency are listed, with their reason, in LAZY_UPWARD)."""
    sources = _product_sources()
    bad = []
    for mod, target, line in _every_import(sources):
        if mod.startswith(target + "."):
            continue  # a module's own package namespace, imported before it anyway
        if _layer(target) > _layer(mod) and (mod, target) not in LAZY_UPWARD:
            bad.append(f"{mod}:{line} imports {target}")
    assert not bad, "imports pointing up the layers:\n" + "\n".join(bad)


def test_layer_check_sees_function_local_imports():
    sources = {
        "graphc.ir": "def f():\n    from graphc.api import jit\n",
        "graphc.api": "from graphc.ir import Graph\n",
    }
    found = [(m, t) for m, t, _ in _every_import(sources)]
    assert ("graphc.ir", "graphc.api") in found
    assert _layer("graphc.api") > _layer("graphc.ir")
