"""The `graphc` command: every stage of a NumPy function, from the shell.

    graphc dump FILE.py:FUNC [--arg SPEC ...] [--stage STAGE] [--format text|json|dot|graphml]
    graphc viz  FILE.py:FUNC [--arg SPEC ...] [--stage STAGE] -o OUT.svg|.png|.pdf|.dot
    graphc diff FILE.py:FUNC [--arg SPEC ...] [--stage traced|grad] [--passes fold,cse,...]
    graphc passes
    graphc cache info|clear

`python -m graphc ...` is the same command.

FUNCTION: `path/to/file.py:name` (or `package.module:name`); `name` may be dotted
(`Model.forward`).

EXAMPLE ARGUMENTS (one `--arg` per parameter, in order, or by name):

    --arg f32[64,784]    an array of that dtype and shape: bool i8 i16 i32 i64 u8 u16 u32 u64
                         f16 f32 f64; `f64[]` is a scalar
    --arg x=i64[64]      the same, for the parameter named x
    --arg 2.0            a Python float (traced as an f64 scalar); an int such as `--arg 3`
                         stays a static Python int that steers the trace

Without `--arg`, the arguments come from the module's EXAMPLE_ARGS convention: a module-level
dict mapping function names to tuples of example arguments (arrays, numbers or `graphc.spec`s):

    EXAMPLE_ARGS = {"mlp": (graphc.spec("f32[64,784]"), graphc.spec("f32[128,784]"), ...)}

STAGES:

    traced      the graph as traced
    grad        the joint gradient graph w.r.t. all floating-point inputs (a function with one
                float scalar output: its gradient; otherwise a VJP with cotangent inputs)
    forward     the forward half of the joint graph's min-cut partition: the outputs, then
                the residuals saved for the backward pass
    backward    the backward half: residuals and output cotangents in, gradients out
    optimized   after passes.DEFAULT_PIPELINE
    fused       after passes.COMPILE_PIPELINE (optimization, then fusion into kernels)
    kernels     the generated Numba source (graphc.lower), text only
    all         every stage, each under a header
    joint       (viz only) the joint picture: forward and backward nodes, gradient links,
                saved residuals and kernel clusters

JSON FORMAT (`dump --format json`): one object per graph,

    {"format": "graphc-graph/1", "name": "mlp", "inputs": ["a", ...], "outputs": ["h", ...],
     "nodes": [{"name": "c", "op": "matmul", "type": "f32[8,16]", "shape": [8, 16],
                "dtype": "f32", "inputs": ["a", "b"], "attrs": {...}, "loc": "m.py:3",
                "scope": "model.layers.0", "role": null}, ...],
     "grad_of": [{"grad": "bd", "of": "c"}, ...]}   (joint graphs: each cotangent and the value
                                                    it is the gradient of)

Names are those of the IR text. Inputs carry `"input_name"` (their argument path); scalar
constants are named by their literal text (`"2.0:f32"`) and listed once; array constants carry
their `"value"` (a nested list) when small. Attribute values become JSON (tuples as lists,
dtypes as names, nested graphs, e.g. a fused kernel's or a loop's body or a cond's branches, as
graph objects). `--stage all` gives an object keyed by stage (`"kernels": {"source": ...}`).
GraphML (`--format graphml`) is `Graph.to_networkx()` written by networkx, with tuple-valued
attributes as text and each graph a node holds as IR text (`region:body`, `region:cond`,
`region:branches[1]`).

LOOPS AND BRANCHES: every stage shows them. The IR text prints a loop's body, a while loop's
condition and a cond's branches nested in the node that holds them; pictures draw each as a
cluster labelled with its kind and trip count, carries going back by dashed edges; `diff`
prints, under each pass, what it removed, added and rewrote inside each of them
(`in scan body (model.py:12): removed: mul×1 ...`).

Bad arguments (a missing file or function, a malformed spec, the wrong number of arguments, a
function that fails to trace, an output folder that does not exist) print one line,
`graphc: error: ...`, and exit with status 2; other failures (Graphviz missing, an output that
cannot be written, stdout closed early, a bad GRAPHC_* variable, an unusable cache folder) print
one such line and exit with status 1.

Example:
    $ graphc dump examples/seeds.py:mlp --stage fused
    $ graphc dump model.py:loss --arg x=f32[64,784] --arg y=i64[64] --format json
    $ graphc viz examples/seeds.py:mlp_loss --stage joint -o joint.svg
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import json
import math
import os
import re
import stat
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import networkx as nx
import numpy as np

from graphc import stages
from graphc.env import env_int
from graphc.ir import Const, Graph, GraphcError, TupleAval, dtype_name, print_graph
from graphc.ops import REGISTRY
from graphc.text import node_names
from graphc.trace import Spec, spec
from graphc.viz import DEFAULT_BUDGET, render, to_dot
from graphc.viz import FORMATS as VIZ_FORMATS
from graphc.viz import _fmt_bytes as fmt_bytes
from passes import COMPILE_PIPELINE, DEFAULT_PIPELINE, PASSES

# the joint graph is a picture's stage: its IR text is the grad stage's with cotangent inputs
DUMP_STAGES = (*(s for s in stages.STAGES if s != "joint"), "kernels", "all")
VIZ_STAGES = stages.STAGES
FORMATS = ("text", "json", "dot", "graphml")


class CLIError(GraphcError):
    """A bad command line (file, function, arguments): one error line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (`graphc: error: ...`) and never exit by themselves."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


# ---------------------------------------------------------------------------------------------
# loading the function and its example arguments


def load_module(path: str) -> ModuleType:
    """Import a Python file (its directory is on sys.path while it runs) or a module name."""
    if not path.endswith(".py") and not os.path.exists(path) and os.sep not in path:
        try:
            return importlib.import_module(path)
        except ImportError as e:
            raise CLIError(f"cannot import module {path!r}: {e}") from None
        except Exception as e:
            raise CLIError(f"importing {path} failed: {_one_line(e)}") from None
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path}")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    name = f"graphc_cli_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot import {path}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException as e:  # noqa: BLE001 - a user file may even call sys.exit
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise CLIError(f"importing {path} failed: {_one_line(e)}") from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return mod


def load_function(target: str) -> tuple[Callable, ModuleType, str]:
    """`FILE.py:FUNC` -> (function, module, function name).

    Example:
        >>> fn, mod, name = load_function("examples/seeds.py:mlp")
        >>> name
        'mlp'
    """
    path, sep, func = target.rpartition(":")
    if not sep or not path or not func:
        raise CLIError(f"expected FILE.py:FUNC, got {target!r}")
    mod = load_module(path)
    obj: Any = mod
    for part in func.split("."):
        if not hasattr(obj, part):
            defined = sorted(
                k
                for k, v in vars(mod).items()
                if inspect.isfunction(v) and v.__module__ == mod.__name__ and not k.startswith("_")
            )
            hint = f" (it defines: {', '.join(defined)})" if defined else ""
            raise CLIError(f"{path} has no function {func!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CLIError(f"{path}:{func} is a {type(obj).__name__}, not a function")
    return obj, mod, func


def parse_value(text: str) -> Any:
    """One --arg value: a spec like `f32[64,784]`, or a Python number.

    Example:
        >>> parse_value("f32[2,3]")
        spec('f32[2,3]')
        >>> parse_value("2.5")
        2.5
    """
    text = text.strip()
    if "[" in text or "]" in text:
        try:
            return spec(text)
        except GraphcError as e:
            raise CLIError(f"malformed --arg {text!r}: {e.message}") from None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, (int, float)):  # bools and ints stay static, floats are traced
        return value
    raise CLIError(
        f"malformed --arg {text!r}: expected a type such as f32[64,784], a name=type "
        "pair such as x=f32[2,3], or a number"
    )


def bind_args(fn: Callable, name: str, texts: Sequence[str]) -> tuple[tuple, dict, list[str]]:
    """Match --arg texts to the parameters of `fn`: (args, kwargs, parameter names in order)."""
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for t in texts:
        m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*=(.*)", t)
        if m:
            if m.group(1) in named:
                raise CLIError(f"--arg {m.group(1)}= is given twice")
            named[m.group(1)] = parse_value(m.group(2))
        else:
            if named:
                raise CLIError(
                    f"positional --arg {t!r} after a named one: give positional arguments first"
                )
            positional.append(parse_value(t))
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return tuple(positional), named, []
    params = sig.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for k in named:
            if k not in params:
                raise CLIError(f"{name}{_signature_text(sig)} has no parameter named {k!r}")
    try:
        bound = sig.bind(*positional, **named)
    except TypeError as e:
        raise CLIError(f"wrong arguments for {name}{_signature_text(sig)}: {e}") from None
    return bound.args, bound.kwargs, list(bound.arguments)


def _signature_text(sig: inspect.Signature) -> str:
    return (
        "("
        + ", ".join(
            p.name if p.default is p.empty else f"{p.name}=…" for p in sig.parameters.values()
        )
        + ")"
    )


def example_args(fn: Callable, mod: ModuleType, name: str) -> tuple[tuple, dict, list[str]]:
    """The module's EXAMPLE_ARGS[name] (or no arguments for a function that needs none)."""
    examples = getattr(mod, "EXAMPLE_ARGS", None)
    if isinstance(examples, dict) and name in examples:
        args = examples[name]
        if not isinstance(args, (tuple, list)):
            args = (args,)
        try:
            bound = inspect.signature(fn).bind(*args)
            return bound.args, bound.kwargs, list(bound.arguments)
        except (TypeError, ValueError) as e:
            raise CLIError(f"EXAMPLE_ARGS[{name!r}] does not fit {name}: {e}") from None
    try:
        inspect.signature(fn).bind()
        return (), {}, []
    except TypeError:
        pass
    except ValueError:
        return (), {}, []
    raise CLIError(
        f"{name} needs example arguments: pass --arg TYPE per parameter (e.g. "
        f"--arg f32[64,784]) or define EXAMPLE_ARGS = {{{name!r}: (...)}} in its "
        "module"
    )


class Target:
    """A function with its example arguments, traced once; its stages on demand (built by
    `graphc.stages`)."""

    def __init__(self, target: str, arg_texts: Sequence[str]):
        self.fn, self.mod, self.name = load_function(target)
        if arg_texts:
            self.args, self.kwargs, params = bind_args(self.fn, self.name, arg_texts)
        else:
            self.args, self.kwargs, params = example_args(self.fn, self.mod, self.name)
        values = list(self.args) + list(self.kwargs.values())
        traced = [
            p
            for p, v in zip(params, values, strict=False)
            if isinstance(v, (Spec, float, np.ndarray, np.generic))
        ]
        self.graph = self._trace()
        self.input_names = traced if len(traced) == len(self.graph.inputs) else None
        self.stages = stages.Stages(self.graph)

    def _trace(self) -> Graph:
        try:
            return stages.traced(self.fn, *self.args, **self.kwargs)
        except GraphcError as e:
            raise CLIError(f"cannot trace {self.name}: {_one_line(e)}") from None
        except Exception as e:
            raise CLIError(f"tracing {self.name} failed: {_one_line(e)}") from None

    def stage(self, name: str) -> Any:
        """The graph at a stage (source text for `kernels`)."""
        return self.stages.get(name)


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    first = " ".join(text.split("\n")[0].split())
    if isinstance(e, GraphcError):
        return first
    return f"{type(e).__name__}: {first}"


# ---------------------------------------------------------------------------------------------
# JSON and GraphML


def _json_value(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else repr(f)  # "inf", "-inf", "nan"
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, np.dtype):
        return dtype_name(v)
    if isinstance(v, type) and issubclass(v, np.generic):
        return dtype_name(np.dtype(v))
    if isinstance(v, (tuple, list)):
        return [_json_value(x) for x in v]
    if isinstance(v, Const):
        arr = v.value
        out: dict[str, Any] = {"type": f"{dtype_name(arr.dtype)}{list(arr.shape)}"}
        if arr.size <= 16:
            out["value"] = _json_value(arr.tolist())
        return out
    if isinstance(v, Graph):
        return graph_to_json(v)
    return repr(v)


def graph_to_json(graph: Graph) -> dict[str, Any]:
    """The graph as a JSON-ready dict (the format is described in this module's docstring).

    Example:
        >>> d = graph_to_json(graphc.trace(seeds.poly, 2.0))
        >>> [n["op"] for n in d["nodes"]][:2]
        ['input', 'integer_pow']
    """
    names = node_names(graph)
    nodes = []
    seen: set[str] = set()
    for n in graph.nodes:
        name = names[id(n)]
        if name in seen:
            continue
        seen.add(name)
        aval = n.aval
        entry: dict[str, Any] = {"name": name, "op": n.op, "type": str(aval)}
        if not isinstance(aval, TupleAval):
            entry["shape"] = list(aval.shape)
            entry["dtype"] = dtype_name(aval.dtype)
        entry["inputs"] = [names[id(i)] for i in n.inputs]
        entry["attrs"] = {k: _json_value(v) for k, v in sorted(n.attrs.items())}
        if n.op == "const":
            const = entry["attrs"].pop("value", None)
            if isinstance(const, dict) and "value" in const:
                entry["value"] = const["value"]
        entry["loc"] = n.meta.loc
        entry["scope"] = n.meta.scope
        entry["role"] = n.meta.role
        if n.op == "input":
            entry["input_name"] = n.meta.name
        nodes.append(entry)
    out: dict[str, Any] = {
        "format": "graphc-graph/1",
        "name": graph.name,
        "inputs": [names[id(i)] for i in graph.inputs],
        "outputs": [names[id(o)] for o in graph.outputs],
        "nodes": nodes,
    }
    grad_of = graph.info.get("grad_of")
    if grad_of:
        # only pairs whose both ends are in this graph (a pass may have replaced them)
        by_id = {id(n): n for n in graph.nodes}
        out["grad_of"] = [
            {"grad": names[id(ct)], "of": names[id(fwd)]}
            for ct, fwd in grad_of
            if by_id.get(id(ct)) is ct and by_id.get(id(fwd)) is fwd and ct.aval == fwd.aval
        ]
    return out


def graph_to_graphml(graph: Graph) -> str:
    """GraphML text of `graph.to_networkx()`, attributes made GraphML-compatible (tuples as
    text, missing values left out, the role and input names added, and the IR text of each
    graph a node holds as `region:NAME`, e.g. `region:body` or `region:branches[1]`)."""
    g = graph.to_networkx()
    names = node_names(graph)
    for n in graph.nodes:
        data = g.nodes[names[id(n)]]
        if n.meta.role:
            data["role"] = n.meta.role
        if n.op == "input" and n.meta.name:
            data["input_name"] = n.meta.name
        for name, body in stages.regions(n):
            data[f"region:{name}"] = print_graph(body, nested=True)
    for _, data in g.nodes(data=True):
        for k in list(data):
            v = data[k]
            if v is None:
                del data[k]
            elif isinstance(v, (tuple, list)):
                data[k] = ",".join(map(str, v))
            elif not isinstance(v, (str, int, float, bool)):
                data[k] = str(v)
    g.graph = {"name": graph.name or ""}
    return "\n".join(nx.generate_graphml(g)) + "\n"


# ---------------------------------------------------------------------------------------------
# commands


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _render_stage(t: Target, stage: str, fmt: str, args: argparse.Namespace) -> str:
    obj = t.stage(stage)
    if stage == "kernels":
        if fmt != "text":
            raise CLIError("the kernels stage is source code: use --format text")
        return obj
    if fmt == "text":
        text = obj.pretty(locations=not args.no_locations)
        if stage in ("forward", "backward"):
            text += "\n" + _residual_note(t.stages.partition())
        return text
    if fmt == "json":
        return json.dumps(graph_to_json(obj), indent=1)
    if fmt == "dot":
        return to_dot(obj, input_names=t.input_names, budget=args.budget or None)
    return graph_to_graphml(obj)


def _residual_note(part: Any) -> str:
    """What crosses from the forward to the backward pass, and what the backward recomputes
    instead (the bodies of checkpointed regions)."""
    recomputed = sum(
        1
        for n in part.backward.nodes
        if n.op != "proj" and isinstance(n.aval, TupleAval) and REGISTRY[n.op].inline is not None
    )
    note = (
        f"# residuals: {len(part.residuals)} values, {part.residual_bytes} bytes saved for "
        "the backward pass"
    )
    if recomputed:
        note += f"; {recomputed} checkpointed region(s) recomputed there instead of saved"
    return note


def cmd_dump(args: argparse.Namespace) -> int:
    t = Target(args.function, args.arg)
    if args.stage != "all":
        _write(_render_stage(t, args.stage, args.format, args))
        return 0
    stages = DUMP_STAGES[:-1]
    if args.format == "graphml":
        raise CLIError("--stage all cannot be one GraphML file: choose a stage")
    parts: dict[str, str] = {}
    missing: dict[str, str] = {}
    for s in stages:
        if s == "kernels" and args.format != "text":
            if args.format == "json":
                parts[s] = t.stage(s)
            continue
        try:
            parts[s] = _render_stage(t, s, args.format, args)
        except GraphcError as e:
            if s not in ("grad", "forward", "backward"):  # e.g. no float inputs: no gradient
                raise
            missing[s] = _one_line(e)
    if args.format == "json":
        doc: dict[str, Any] = {}
        for s in stages:
            if s in missing:
                doc[s] = {"error": missing[s]}
            elif s in parts:
                doc[s] = {"source": parts[s]} if s == "kernels" else json.loads(parts[s])
        _write(json.dumps(doc, indent=1))
    elif args.format == "dot":
        _write("\n".join(f"// stage: {s}\n{v}" for s, v in parts.items()))
    else:
        _write(
            "\n\n".join(
                f"=== {s} ===\n"
                + (f"(not available: {missing[s]})" if s in missing else parts[s].rstrip())
                for s in stages
            )
        )
    return 0


def cmd_viz(args: argparse.Namespace) -> int:
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in VIZ_FORMATS:
        raise CLIError(
            f"cannot tell the picture format from {args.output!r}: use a .svg, .png, "
            ".pdf or .dot file name"
        )
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise CLIError(f"cannot write {args.output}: the folder {folder} {what}")
    if os.path.isdir(args.output):
        raise CLIError(f"cannot write {args.output}: it is a folder")
    t = Target(args.function, args.arg)
    obj = t.stage(args.stage)
    try:
        render(
            obj,
            args.output,
            stage=None,
            budget=args.budget or None,
            legend=args.legend,
            input_names=t.input_names,
            rankdir=args.rankdir,
        )
    except OSError as e:
        raise GraphcError(f"cannot write {args.output}: {_os_reason(e)}") from None
    _write(f"wrote {args.output} ({args.stage} stage of {t.name})")
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    width = max(len(n) for n in PASSES)
    lines = [f"{name:<{width}}  {p.doc}" for name, p in PASSES.items()]
    lines += [
        "",
        f"default pipeline:  {' → '.join(DEFAULT_PIPELINE)}",
        f"compile pipeline:  {' → '.join(COMPILE_PIPELINE)}",
    ]
    _write("\n".join(lines))
    return 0


def _fmt_counter(c: Any) -> str:
    return ", ".join(f"{op}×{k}" for op, k in sorted(c.items())) or "-"


def cmd_diff(args: argparse.Namespace) -> int:
    names = (
        COMPILE_PIPELINE
        if args.passes is None
        else [p.strip() for p in args.passes.split(",") if p.strip()]
    )
    unknown = [p for p in names if p not in PASSES]
    if unknown:
        raise CLIError(f"unknown pass {unknown[0]!r} (passes: {', '.join(PASSES)})")
    t = Target(args.function, args.arg)
    graph = t.stage(args.stage)
    steps = stages.pass_steps(graph, names)
    out = steps[-1][1] if steps else graph
    rows = [("pass", "before", "after", "time", "removed", "added", "rewritten")]
    # under each pass, what it changed inside loop bodies, branches and kernels
    inside: list[list[str]] = []
    before = graph
    for r, after in steps:
        rows.append(
            (
                r.name,
                str(r.nodes_before),
                str(r.nodes_after),
                f"{r.seconds * 1e3:.2f} ms",
                _fmt_counter(r.removed),
                _fmt_counter(r.added),
                _fmt_counter(r.rewritten),
            )
        )
        inside.append(
            [
                f"  in {path}:  removed: {_fmt_counter(gone)}   added: {_fmt_counter(made)}   "
                f"rewritten: {_fmt_counter(rewritten)}"
                for path, gone, made, rewritten in stages.region_changes(before, after)
            ]
        )
        before = after
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    lines = [f"{t.name} ({args.stage}, {len(graph.equations)} equations): {' → '.join(names)}", ""]
    lines.append(
        f"{rows[0][0]:<{widths[0]}}  {rows[0][1]:>{widths[1]}}  {rows[0][2]:>{widths[2]}}  "
        f"{rows[0][3]:>{widths[3]}}  changes"
    )
    for row, notes in zip(rows[1:], inside, strict=True):
        lines.append(
            f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  "
            f"{row[3]:>{widths[3]}}  removed: {row[4]}   added: {row[5]}   "
            f"rewritten: {row[6]}"
        )
        lines += notes
    # the fusion report of the last fuse
    report = out.info.get("fusion")
    notes = [str(b) for b in report.boundaries] if report is not None else []
    if "fuse" in names:
        kernels = report.kernels if report is not None else 0
        lines += ["", f"fusion: {kernels} kernels, {len(notes)} why-not-fused boundaries"]
        if report is not None and report.boundaries:
            for reason, k in sorted(report.reasons().items(), key=lambda kv: -kv[1]):
                lines.append(f"  {k:>4} × {reason}")
        if notes:
            lines.append("")
            lines += [f"  {n}" for n in notes]
    _write("\n".join(lines))
    return 0


def _cache_files(d: str) -> tuple[list[str], int, int]:
    """The files graphc put in cache directory `d`, how many compiled graphs and how many shared
    kernel modules they hold."""
    files, entries, kernels = [], 0, 0
    if os.path.isdir(d):
        for f in os.listdir(d):
            p = os.path.join(d, f)
            if f.startswith("graphc_") and os.path.isfile(p):
                files.append(p)
                if f.endswith(".py"):
                    if f.startswith("graphc_kernel_"):
                        kernels += 1
                    else:
                        entries += 1
        pyc = os.path.join(d, "__pycache__")
        if os.path.isdir(pyc):
            files += [os.path.join(pyc, f) for f in os.listdir(pyc) if f.startswith("graphc_")]
    return sorted(files), entries, kernels


def _cache_folder() -> str:
    """The cache folder (not created): a path that cannot be a folder is an error."""
    from graphc.codegen import cache_path  # loads Numba, which only these commands need

    d = cache_path()
    try:
        st = os.stat(d)
    except FileNotFoundError:
        return d  # nothing cached yet
    except OSError as e:
        raise GraphcError(f"cache directory {d} cannot be used: {_os_reason(e)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise GraphcError(f"cache directory {d} cannot be used: it is a file, not a folder")
    return d


def cmd_cache(args: argparse.Namespace) -> int:
    d = _cache_folder()
    try:
        files, entries, kernels = _cache_files(d)
    except OSError as e:
        raise GraphcError(f"cannot read cache directory {d}: {_os_reason(e)}") from None
    size = 0
    for f in files:
        try:
            size += os.path.getsize(f)
        except OSError:
            pass
    if args.action == "info":
        _write(
            f"cache directory: {d}\nentries: {entries} compiled graphs, {kernels} kernels, "
            f"{len(files)} files, {fmt_bytes(size)} ({size} bytes)"
        )
        return 0
    removed, failed = 0, []
    for f in files:
        try:
            os.remove(f)
            removed += 1
        except FileNotFoundError:  # removed meanwhile by another process
            removed += 1
        except OSError as e:
            failed.append(e)
    pyc = os.path.join(d, "__pycache__")
    try:
        if os.path.isdir(pyc) and not os.listdir(pyc):
            os.rmdir(pyc)
    except OSError:
        pass
    if failed:
        raise GraphcError(
            f"could not clear {d}: {len(failed)} of {len(files)} files could not be removed "
            f"({_os_reason(failed[0])}); {removed} removed"
        )
    _write(
        f"removed {entries} compiled graphs and {kernels} kernels ({removed} files, "
        f"{fmt_bytes(size)}) from {d}"
    )
    return 0


def _os_reason(e: OSError) -> str:
    from graphc.codegen.cache import os_error_reason  # loads Numba: only once something failed

    return os_error_reason(e)


# ---------------------------------------------------------------------------------------------
# the parser


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "function",
        metavar="FILE.py:FUNC",
        help="the function: a Python file (or module name) and a function in it",
    )
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="SPEC",
        help="one example argument: a type such as f32[64,784], name=type, or a "
        "number; repeat per parameter (default: EXAMPLE_ARGS in the module)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the `graphc` command."""
    doc = __doc__ or ""
    epilog = doc[doc.index("EXAMPLE ARGUMENTS") : doc.index("Example:")].rstrip()
    parser = _Parser(
        prog="graphc",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Look at every stage of a NumPy function: traced, gradient, "
        "optimized, fused and compiled.",
        epilog=epilog,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "dump",
        help="print the IR at a stage",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    _add_target(p)
    p.add_argument("--stage", choices=DUMP_STAGES, default="traced")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument(
        "--no-locations", action="store_true", help="leave the source locations out of the text"
    )
    p.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        help="--format dot: collapse pictures above this many nodes (0: never)",
    )
    p.set_defaults(run=cmd_dump)

    p = sub.add_parser(
        "viz",
        help="draw a stage with Graphviz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    _add_target(p)
    p.add_argument("--stage", choices=VIZ_STAGES, default="traced")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="the picture; the format comes from the extension: .svg .png .pdf .dot",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        help="collapse the picture above this many nodes (0: never)",
    )
    p.add_argument("--legend", action="store_true", help="add a legend of the styles")
    p.add_argument("--rankdir", choices=("TB", "LR"), default="TB", help="layout direction")
    p.set_defaults(run=cmd_viz)

    p = sub.add_parser("diff", help="what each pass of the pipeline did, and why-not-fused")
    _add_target(p)
    p.add_argument(
        "--stage",
        choices=("traced", "grad"),
        default="traced",
        help="the graph the pipeline starts from",
    )
    p.add_argument(
        "--passes", metavar="P1,P2,...", help="the passes to run (default: the compile pipeline)"
    )
    p.set_defaults(run=cmd_diff)

    p = sub.add_parser("passes", help="list the registered passes")
    p.set_defaults(run=cmd_passes)

    p = sub.add_parser("cache", help="the compile cache: info, or clear it")
    p.add_argument("action", choices=("info", "clear"))
    p.set_defaults(run=cmd_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `graphc` command with `argv` (default: sys.argv[1:]); returns the exit status.

    Every failure is one line on standard error, `graphc: error: ...`, and a non-zero status;
    warnings are one line each, `graphc: warning: ...`.

    Example:
        >>> main(["dump", "examples/seeds.py:poly", "--stage", "grad"])
        0
    """
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        return _main(argv)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"graphc: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _error(text: str, status: int) -> int:
    print(f"graphc: error: {text}", file=sys.stderr)
    return status


def _check_environment() -> None:
    """Refuse bad GRAPHC_* values before any work, naming the variable."""
    env_int("GRAPHC_THREADS", 1, minimum=1)
    env_int("GRAPHC_DEBUG", 0, minimum=0, maximum=2)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise CLIError("choose a command: dump, viz, diff, passes or cache (see graphc -h)")
        _check_environment()
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # a full disk or closed pipe is reported here, not at exit
        return status
    except CLIError as e:
        return _error(_one_line(e), 2)
    except GraphcError as e:
        return _error(_one_line(e), 1)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except BrokenPipeError:  # `graphc dump ... | head -1`
        _silence_stdout()
        return _error("standard output was closed before everything was written", 1)
    except OSError as e:  # e.g. stdout redirected to a full disk
        _silence_stdout()
        where = "" if e.filename else "cannot write standard output: "
        return _error(where + _os_reason(e), 1)
    except KeyboardInterrupt:
        _silence_stdout()
        return _error("interrupted", 130)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        # stdout is not a real file (captured in tests): drop what is buffered instead
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
