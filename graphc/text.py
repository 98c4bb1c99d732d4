"""The IR text format: print a graph, parse it back.

    { lambda ; a:f32[4,3] b:f32[3,2]. let
        c:f32[4,2] = matmul a b
        d:f32[4,2] = tanh c
        e:f32[] = reduce_sum[axes=(0, 1), keepdims=False] d
      in (e,) }

Names are assigned in printing order (a, b, ..., z, ba, bb, ...), so equal graphs print equally.
Scalar constants print inline as `2.0:f32`; small array constants as `const[value=[...]]`
equations; large ones as variables before the `;` whose values live beside the text
(`graph.save(path)` writes `path` and `path.npz`; `graphc.load(path)` reads both).
Source locations print as trailing comments (`# model.py:12 [model.layers.0]`) and parse back.

Grammar (informal):
    graph    := '{' 'lambda' binder* ';' binder* '.' 'let' eqn*
                'in' '(' atom (',' atom)* ','? ')' '}'
    binder   := NAME ':' type
    type     := DTYPE '[' (INT (',' INT)*)? ']'  |  '(' type (',' type)* ')'
    eqn      := binder '=' OP ('[' attr (',' attr)* ']')? atom* comment? NEWLINE
    attr     := NAME '=' value       value := number | string | NAME | tuple | list | graph
    atom     := NAME | literal       literal := number ':' DTYPE
"""

from __future__ import annotations

import ast
import os
import re
from typing import Any

import numpy as np

from graphc.ir import (
    DTYPES_BY_NAME,
    Aval,
    Const,
    Graph,
    GraphcError,
    Meta,
    Node,
    TupleAval,
    dtype_name,
    make_input,
)
from graphc.ops import registry

INLINE_MAX = 16  # array constants up to this many elements print their values in the text
_RESERVED = {"in", "let", "lambda", "inf", "nan"}


class ParseError(GraphcError):
    """IR text that does not follow the grammar."""


def _name(i: int) -> str:
    s = ""
    while True:
        s = chr(97 + i % 26) + s
        i //= 26
        if i == 0:
            return s


def _names():
    i = 0
    while True:
        n = _name(i)
        i += 1
        if n not in _RESERVED:
            yield n


def _is_literal(n: Node) -> bool:
    return n.op == "const" and n.aval.shape == ()


def _is_constvar(n: Node) -> bool:
    return n.op == "const" and n.aval.size > INLINE_MAX


def node_names(graph: Graph) -> dict[int, str]:
    """The printed name of every node (scalar constants get their literal text)."""
    gen = _names()
    names: dict[int, str] = {}
    nodes = graph.nodes
    for n in nodes:
        if _is_constvar(n):
            names[id(n)] = next(gen)
    for n in graph.inputs:
        names[id(n)] = next(gen)
    for n in nodes:
        if id(n) in names:
            continue
        names[id(n)] = _literal(n) if _is_literal(n) else next(gen)
    return names


# ---------------------------------------------------------------------------------------------
# printing


def _scalar(v: Any, dt: np.dtype) -> str:
    if dt == np.bool_:
        return str(bool(v))
    if dt.kind in "iu":
        return str(int(v))
    if np.isnan(v) and np.signbit(v):
        return "-nan"  # NumPy and Python print "nan" whatever the sign
    if dt == np.float64:
        return repr(float(v))
    return str(dt.type(v))


def _literal(n: Node) -> str:
    v = n.attrs["value"].value
    return f"{_scalar(v[()], v.dtype)}:{dtype_name(v.dtype)}"


def fmt_value(v: Any, indent: str = "") -> str:
    """An attribute value in IR text."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return repr(v)
    if v is None:
        return "None"
    if isinstance(v, np.dtype):
        return dtype_name(v)
    if isinstance(v, type) and issubclass(v, np.generic):
        return dtype_name(np.dtype(v))
    if isinstance(v, tuple):
        inner = ", ".join(fmt_value(x, indent) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x, indent) for x in v) + "]"
    if isinstance(v, Const):
        arr = v.value
        return _fmt_array(arr)
    if isinstance(v, Graph):
        return print_graph(v, indent=indent + "    ")
    raise GraphcError(f"cannot print attribute value {v!r}")


def _fmt_array(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return _scalar(arr[()], arr.dtype)
    return "[" + ", ".join(_fmt_array(a) for a in arr) + "]"


def _comment(n: Node) -> str:
    parts = []
    if n.meta.loc:
        parts.append(n.meta.loc)
    if n.meta.scope:
        parts.append(f"[{n.meta.scope}]")
    return "  # " + " ".join(parts) if parts else ""


def print_graph(graph: Graph, *, locations: bool = False, indent: str = "") -> str:
    """The graph as IR text (with source locations as comments when `locations`)."""
    names = node_names(graph)
    nodes = graph.nodes

    def binder(n: Node) -> str:
        return f"{names[id(n)]}:{n.aval}"

    consts = " ".join(binder(n) for n in nodes if _is_constvar(n))
    ins = " ".join(binder(n) for n in graph.inputs)
    lines = [f"{{ lambda {consts + ' ' if consts else ''};{' ' if ins else ''}{ins}. let"]
    for n in nodes:
        if n.op == "input" or _is_literal(n) or _is_constvar(n):
            continue
        attrs = ""
        if n.attrs:
            attrs = (
                "["
                + ", ".join(f"{k}={fmt_value(v, indent)}" for k, v in sorted(n.attrs.items()))
                + "]"
            )
        args = "".join(" " + names[id(i)] for i in n.inputs)
        line = f"{indent}    {binder(n)} = {n.op}{attrs}{args}"
        lines.append(line + (_comment(n) if locations else ""))
    outs = ", ".join(names[id(o)] for o in graph.outputs)
    lines.append(f"{indent}  in ({outs}{',' if len(graph.outputs) == 1 else ''}) }}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# parsing

_TOKEN = re.compile(
    r"""
    (?P<nl>\n)
  | (?P<ws>[ \t\r]+)
  | (?P<comment>\#[^\n]*)
  | (?P<num>-?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+(?:[eE][-+]?\d+)?|\d+))
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<punct>[{}()\[\],=:;.\-])
""",
    re.VERBOSE,
)


class _Tokens:
    def __init__(self, text: str):
        self.toks: list[tuple[str, str, int]] = []
        line, pos = 1, 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise ParseError(f"line {line}: unexpected character {text[pos]!r}")
            kind = m.lastgroup
            val = m.group()
            if kind != "ws":
                self.toks.append((kind, val, line))
            if kind == "nl":
                line += 1
            pos = m.end()
        self.toks.append(("eof", "", line))
        self.i = 0

    def peek(self, skip_nl: bool = True) -> tuple[str, str, int]:
        j = self.i
        while skip_nl and self.toks[j][0] in ("nl", "comment"):
            j += 1
        return self.toks[j]

    def next(self, skip_nl: bool = True) -> tuple[str, str, int]:
        while skip_nl and self.toks[self.i][0] in ("nl", "comment"):
            self.i += 1
        t = self.toks[self.i]
        if t[0] != "eof":
            self.i += 1
        return t

    def expect(self, val: str) -> None:
        t = self.next()
        if t[1] != val:
            raise ParseError(f"line {t[2]}: expected {val!r}, found {t[1] or 'end of text'!r}")

    def fail(self, what: str) -> ParseError:
        t = self.peek()
        return ParseError(f"line {t[2]}: expected {what}, found {t[1] or 'end of text'!r}")


def _parse_type(tk: _Tokens) -> Aval | TupleAval:
    t = tk.next()
    if t[1] == "(":
        avals = [_parse_type(tk)]
        while tk.peek()[1] == ",":
            tk.next()
            avals.append(_parse_type(tk))
        tk.expect(")")
        return TupleAval(tuple(avals))  # type: ignore[arg-type]
    if t[0] != "name" or t[1] not in DTYPES_BY_NAME:
        raise ParseError(f"line {t[2]}: expected a type like f32[4,3], found {t[1]!r}")
    tk.expect("[")
    dims = []
    if tk.peek()[1] != "]":
        while True:  # INT (',' INT)*: no missing, doubled or trailing commas
            d = tk.next()
            if d[0] != "num" or not d[1].isdigit():
                raise ParseError(f"line {d[2]}: bad dimension {d[1]!r}")
            dims.append(int(d[1]))
            if tk.peek()[1] != ",":
                break
            tk.next()
    tk.expect("]")
    return Aval(tuple(dims), DTYPES_BY_NAME[t[1]])


def _number(text: str) -> int | float:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


def _parse_value(tk: _Tokens, consts: dict) -> Any:
    t = tk.next()
    kind, val = t[0], t[1]
    if kind == "num":
        return _number(val)
    if val == "-":
        nt = tk.next()
        if nt[1] == "inf":
            return float("-inf")
        if nt[1] == "nan":
            return -float("nan")
        raise ParseError(f"line {t[2]}: unexpected '-'")
    if kind == "str":
        return ast.literal_eval(val)
    if kind == "name":
        special = {
            "True": True,
            "False": False,
            "None": None,
            "inf": float("inf"),
            "nan": float("nan"),
        }
        if val in special:
            return special[val]
        if val in DTYPES_BY_NAME:
            return DTYPES_BY_NAME[val]
        raise ParseError(f"line {t[2]}: unknown name {val!r} in an attribute")
    if val in ("(", "["):
        close = ")" if val == "(" else "]"
        items = []
        while tk.peek()[1] != close:
            items.append(_parse_value(tk, consts))
            if tk.peek()[1] == ",":
                tk.next()
            elif tk.peek()[1] != close:
                raise tk.fail(f"',' or {close!r}")
        tk.next()
        return tuple(items) if val == "(" else items
    if val == "{":
        tk.i -= 1
        return _parse_graph(tk, consts)
    raise ParseError(f"line {t[2]}: unexpected {val!r} in an attribute")


def _parse_atom(tk: _Tokens, env: dict[str, Node]) -> Node:
    t = tk.next(skip_nl=False)
    kind, val = t[0], t[1]
    neg = False
    if val == "-":
        neg = True
        t = tk.next(skip_nl=False)
        kind, val = t[0], t[1]
    if kind == "name" and val in env and not neg:
        return env[val]
    if kind == "num" or val in ("True", "False", "inf", "nan"):
        if tk.peek(skip_nl=False)[1] != ":":
            raise ParseError(f"line {t[2]}: literal {val} needs a type, e.g. {val}:f32")
        tk.next(skip_nl=False)
        dt = tk.next(skip_nl=False)
        if dt[1] not in DTYPES_BY_NAME:
            raise ParseError(f"line {dt[2]}: unknown dtype {dt[1]!r}")
        dtype = DTYPES_BY_NAME[dt[1]]
        text = ("-" if neg else "") + val
        if dtype == np.bool_:
            value = np.array(val == "True")
        elif dtype.kind in "iu":
            value = np.array(int(text), dtype=dtype)
        else:
            value = np.array(dtype.type(text))
        return Node("const", (), {"value": Const(value, dtype)}, Aval((), dtype))
    raise ParseError(f"line {t[2]}: unknown variable {val!r}")


def _parse_comment(text: str) -> Meta:
    # the location may contain spaces (a path such as "My Projects/model.py:3")
    m = re.fullmatch(r"#\s*(?P<loc>[^\[]*?)\s*(?:\[(?P<scope>[^\]]*)\])?\s*", text)
    if not m:
        return Meta()
    return Meta(m.group("loc") or None, m.group("scope"))


def _parse_graph(tk: _Tokens, consts: dict) -> Graph:
    tk.expect("{")
    tk.expect("lambda")
    env: dict[str, Node] = {}

    def binders(stop: str) -> list[tuple[str, Aval]]:
        out = []
        while tk.peek()[1] != stop:
            n = tk.next()
            if n[0] != "name":
                raise ParseError(f"line {n[2]}: expected a variable name, found {n[1]!r}")
            tk.expect(":")
            out.append((n[1], _parse_type(tk)))
        tk.next()
        return out

    for name, aval in binders(";"):
        if name not in consts:
            raise ParseError(
                f"constant {name} has no value: read graphs with large constants "
                "with graphc.load(path), or pass consts={...} to graphc.parse"
            )
        arr = np.asarray(consts[name])
        if arr.shape != aval.shape or arr.dtype != aval.dtype:
            raise ParseError(
                f"constant {name}: value is {arr.dtype}{list(arr.shape)}, text says {aval}"
            )
        env[name] = Node("const", (), {"value": Const(arr)}, aval)
    inputs = []
    for name, aval in binders("."):
        env[name] = make_input(aval)
        inputs.append(env[name])
    tk.expect("let")
    while tk.peek()[1] != "in":
        n = tk.next()
        if n[0] != "name":
            raise ParseError(
                f"line {n[2]}: expected an equation or 'in', found {n[1] or 'end of text'!r}"
            )
        if n[1] in env:
            raise ParseError(f"line {n[2]}: variable {n[1]!r} is defined twice")
        tk.expect(":")
        aval = _parse_type(tk)
        tk.expect("=")
        op_t = tk.next()
        if op_t[0] != "name" or op_t[1] not in registry.REGISTRY:
            raise ParseError(f"line {op_t[2]}: unknown op {op_t[1]!r}")
        attrs: dict[str, Any] = {}
        if tk.peek(skip_nl=False)[1] == "[":
            tk.next()
            while tk.peek()[1] != "]":
                k = tk.next()
                tk.expect("=")
                attrs[k[1]] = _parse_value(tk, consts)
                if tk.peek()[1] == ",":
                    tk.next()
            tk.next()
        args = []
        while tk.peek(skip_nl=False)[0] not in ("nl", "comment", "eof") and tk.peek(skip_nl=False)[
            1
        ] not in ("in", "}"):
            args.append(_parse_atom(tk, env))
        meta = Meta()
        if tk.peek(skip_nl=False)[0] == "comment":
            meta = _parse_comment(tk.next(skip_nl=False)[1])
        if op_t[1] == "const":
            attrs["value"] = Const(np.array(attrs.get("value"), dtype=aval.dtype))
        attrs = {k: _retuple(v) for k, v in attrs.items()}
        node = Node(op_t[1], args, attrs, aval, meta)
        env[n[1]] = node
    tk.expect("in")
    tk.expect("(")
    outs = []
    while tk.peek()[1] != ")":
        outs.append(_parse_atom(tk, env))
        if tk.peek()[1] == ",":
            tk.next()
    tk.expect(")")
    tk.expect("}")
    return Graph(inputs, outs)


def _retuple(v: Any) -> Any:
    """Attribute tuples nest as tuples (lists only appear inside constant values)."""
    if isinstance(v, tuple):
        return tuple(_retuple(x) for x in v)
    return v


def parse(text: str, consts: dict[str, Any] | None = None, *, verify: bool = True) -> Graph:
    """Parse IR text into a Graph equal to the one printed (and verify it).

    Example:
        >>> g = graphc.parse("{ lambda ; a:f32[3]. let\\n b:f32[3] = tanh a\\n in (b,) }")
        >>> g.equations[0].op
        'tanh'
    """
    tk = _Tokens(text)
    g = _parse_graph(tk, consts or {})
    if tk.peek()[0] != "eof":
        raise tk.fail("end of text")
    if verify:
        from graphc.verify import verify as _verify

        _verify(g)
    return g


def save(graph: Graph, path: str | os.PathLike) -> None:
    """Write IR text (with locations) to `path`, large constants to `path`.npz."""
    path = os.fspath(path)
    with open(path, "w") as f:
        f.write(print_graph(graph, locations=True) + "\n")
    names = node_names(graph)
    big = {names[id(n)]: n.attrs["value"].value for n in graph.nodes if _is_constvar(n)}
    if big:
        np.savez(path + ".npz", **big)
    elif os.path.exists(path + ".npz"):
        os.remove(path + ".npz")


def load(path: str | os.PathLike) -> Graph:
    """Read a graph written by `Graph.save`."""
    path = os.fspath(path)
    with open(path) as f:
        text = f.read()
    consts = {}
    if os.path.exists(path + ".npz"):
        with np.load(path + ".npz") as z:
            consts = {k: z[k] for k in z.files}
    return parse(text, consts)
