"""The core's layers depend one way: `graphc.ops` knows nothing of the tracer, and the tracer
knows nothing of graphc.numpy. Tracer's operators and methods are its own (defined in trace.py,
going through NumPy's ufuncs and functions); `graphc.ops.bind` reaches a traced operand through
the `__graphc_bind__` hook its type defines, not through a function the tracer registers."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphc
import graphc.ops
from graphc.ops import bind

trace_module = importlib.import_module("graphc.trace")  # `graphc.trace` is also the function

ROOT = Path(graphc.__file__).resolve().parent.parent
GRAPHC_DIR = ROOT / "graphc"
TRACE_FILE = GRAPHC_DIR / "trace.py"

# Runs a snippet with `graphc` as a bare package: its __init__ (which imports everything) does
# not run, so the snippet imports exactly the modules it names.
_BARE_PACKAGE = f"""
import sys, types
pkg = types.ModuleType("graphc")
pkg.__path__ = [{str(GRAPHC_DIR)!r}]
sys.modules["graphc"] = pkg
"""


def _run_bare(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _BARE_PACKAGE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _python_files() -> list[Path]:
    files = sorted(GRAPHC_DIR.rglob("*.py")) + sorted((ROOT / "passes").rglob("*.py"))
    return [p for p in files if "__pycache__" not in p.parts]


# ---------------------------------------------------------------------------------------------
# nothing is set on Tracer from outside trace.py


def _is_tracer(node: ast.expr, aliases: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in aliases
    return isinstance(node, ast.Attribute) and node.attr == "Tracer"


def tracer_patches(text: str) -> list[int]:
    """Lines of `text` that set an attribute on Tracer: `Tracer.x = ...`, `setattr(Tracer, ...)`,
    `delattr(Tracer, ...)`, also through a name bound to it (`T = Tracer; T.x = ...`)."""
    tree = ast.parse(text)
    aliases = {"Tracer"}
    for node in ast.walk(tree):  # names bound to the class, by import or assignment
        if isinstance(node, ast.ImportFrom):
            aliases |= {a.asname for a in node.names if a.name == "Tracer" and a.asname}
        elif isinstance(node, ast.Assign) and _is_tracer(node.value, aliases):
            aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    lines = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
            and node.args
            and _is_tracer(node.args[0], aliases)
        ):
            lines.append(node.lineno)
        for t in targets:
            if isinstance(t, ast.Attribute) and _is_tracer(t.value, aliases):
                lines.append(node.lineno)
    return lines


def test_no_module_outside_trace_sets_attributes_on_tracer():
    found = {
        str(p.relative_to(ROOT)): tracer_patches(p.read_text())
        for p in _python_files()
        if p != TRACE_FILE
    }
    assert not {k: v for k, v in found.items() if v}, found


@pytest.mark.parametrize(
    "code",
    [
        "Tracer.__add__ = f",
        "T = Tracer\nT.sum = f",
        "setattr(Tracer, name, f)",
        "from graphc.trace import Tracer as Tr\nTr.x += 1",
        "trace.Tracer.view: object = f",
        "def install():\n    T = Tracer\n    for k in names:\n        setattr(T, k, f)",
    ],
)
def test_tracer_patch_finder_sees_assignments(code):
    assert tracer_patches(code)


def test_tracer_patch_finder_ignores_other_assignments():
    assert not tracer_patches("x = Tracer(node)\nx.weak = True\nTracer(n).node\ny.T = 1\n")


def test_tracer_class_is_the_same_before_and_after_graphc_numpy():
    out = _run_bare(
        """
        from graphc.trace import Tracer
        assert "graphc.numpy" not in sys.modules
        before = dict(vars(Tracer))
        import graphc.numpy
        after = dict(vars(Tracer))
        assert before.keys() == after.keys(), sorted(set(before) ^ set(after))
        changed = [k for k in before if before[k] is not after[k]]
        assert not changed, changed
        print(sorted(k for k in before if k in ("__add__", "sum", "T", "__getattr__")))
        """
    )
    assert out.split() == ["['T',", "'__add__',", "'__getattr__',", "'sum']"]


# ---------------------------------------------------------------------------------------------
# graphc.ops does not know the tracer


def imported_modules(text: str, package: list[str]) -> set[str]:
    """Every module `text` (a module of `package`) imports, at module level or inside
    functions, by absolute name: `from .. import trace` in graphc.ops imports graphc.trace."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def test_ops_never_imports_the_tracer():
    for path in sorted((GRAPHC_DIR / "ops").glob("*.py")):
        mods = imported_modules(path.read_text(), ["graphc", "ops"])
        bad = {m for m in mods if m.startswith(("graphc.trace", "graphc.numpy"))}
        assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize(
    "code",
    [
        "import graphc.trace",
        "from graphc.trace import Tracer",
        "from graphc import trace",
        "def f():\n    from .. import trace",
        "def f():\n    from ..trace import bind",
    ],
)
def test_import_finder_sees_imports_of_the_tracer(code):
    assert "graphc.trace" in imported_modules(code, ["graphc", "ops"])


def test_ops_bind_computes_on_arrays_without_the_tracer():
    out = _run_bare(
        """
        import numpy as np
        import graphc.ops
        from graphc.ir import ShapeError
        assert "graphc.trace" not in sys.modules
        a, b = np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0], np.float32)
        r = graphc.ops.bind("add", a, b)
        assert r.dtype == np.float32 and r.tolist() == [4.0, 6.0], r
        s = graphc.ops.bind("reduce_sum", np.ones((2, 3)), axes=(1,), keepdims=False)
        assert s.tolist() == [3.0, 3.0], s
        try:
            graphc.ops.bind("add", a, np.ones(3, np.float32))
        except ShapeError as e:
            assert "add" in str(e)
        else:
            raise AssertionError("no shape error")
        assert "graphc.trace" not in sys.modules
        print("ok")
        """
    )
    assert out.strip() == "ok"


# ---------------------------------------------------------------------------------------------
# the bind hook


class Recorder:
    """An operand type of its own: graphc.ops.bind hands it the call."""

    calls: list[tuple] = []

    def __graphc_bind__(self, op: str, args: tuple, attrs: dict) -> str:
        Recorder.calls.append((op, args, attrs))
        return "recorded"


def test_an_operand_with_the_bind_hook_receives_the_call():
    Recorder.calls = []
    r = Recorder()
    a = np.ones(3)
    assert bind("add", a, r) == "recorded"
    assert bind("reduce_sum", r, axes=(0,), keepdims=False) == "recorded"
    assert [(op, args[0] is a, args[1] is r, attrs) for op, args, attrs in Recorder.calls[:1]] == [
        ("add", True, True, {})
    ]
    assert Recorder.calls[1] == ("reduce_sum", (r,), {"axes": (0,), "keepdims": False})


def test_tracers_receive_bind_through_the_hook():
    seen = []

    def f(x):
        y = bind("tanh", x)
        seen.append(type(y))
        return bind("add", y, np.float64(1.0))

    g = graphc.trace(f, np.zeros(3))
    assert seen == [graphc.Tracer]
    assert [n.op for n in g.equations] == ["tanh", "add"]
    assert graphc.Tracer.__graphc_bind__ is vars(graphc.Tracer)["__graphc_bind__"]


def test_bind_on_arrays_checks_shapes_first():
    with pytest.raises(graphc.ShapeError, match="broadcast"):
        bind("add", np.ones(2), np.ones(3))
    with pytest.raises(graphc.GraphcError, match="unknown op"):
        bind("no_such_op", np.ones(2))


# ---------------------------------------------------------------------------------------------
# Tracer's operators and methods go through NumPy's protocols and graphc.numpy's tables


def _counting(table: dict, key: object, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    handler = table[key]

    def counted(*args, **kwargs):
        calls.append(1)
        return handler(*args, **kwargs)

    monkeypatch.setitem(table, key, counted)
    return calls


@pytest.mark.parametrize(
    "table, key, fn",
    [
        ("HANDLED_UFUNCS", np.add, lambda x: x + 1.0),
        ("HANDLED_UFUNCS", np.multiply, lambda x: 2.0 * x),
        ("HANDLED_UFUNCS", np.matmul, lambda x: x @ x.T),
        ("HANDLED_UFUNCS", np.less, lambda x: x < 0.5),
        ("HANDLED_UFUNCS", np.absolute, lambda x: abs(x)),
        ("HANDLED_FUNCTIONS", np.sum, lambda x: x.sum(axis=0)),
        ("HANDLED_FUNCTIONS", np.reshape, lambda x: x.reshape(3, 2)),
        ("HANDLED_FUNCTIONS", np.transpose, lambda x: x.T),
        ("HANDLED_METHODS", "getitem", lambda x: x[0]),
        ("HANDLED_METHODS", "astype", lambda x: x.astype(np.float32)),
    ],
)
def test_operators_and_methods_reach_the_dispatch_tables(table, key, fn, monkeypatch):
    calls = _counting(getattr(trace_module, table), key, monkeypatch)
    graphc.trace(fn, np.ones((2, 3)))
    assert calls, f"{key} was not reached through {table}"


def test_an_operand_that_refuses_ufuncs_gets_its_reflected_operator():
    class Refuses:
        __array_ufunc__ = None

        def __radd__(self, other):
            return "reflected"

    seen = []
    graphc.trace(lambda x: seen.append(x + Refuses()) or x, np.ones(2))
    assert seen == ["reflected"]
