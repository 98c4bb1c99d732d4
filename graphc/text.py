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
import math
import os
import re
from typing import Any

import numpy as np

from graphc.ir import (
    _RESERVED,
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
from graphc.ir import INLINE_MAX as INLINE_MAX  # printing lives with the IR; the names stay here
from graphc.ir import fmt_value as fmt_value
from graphc.ir import node_names as node_names
from graphc.ir import print_graph as print_graph
from graphc.ir import save as save
from graphc.ops import registry
from graphc.verify import VerifyError
from graphc.verify import verify as _verify

MAX_NESTING = 64  # attribute values and tuple types nest at most this deep in text
# graphs inside attributes (fused bodies, one level in practice) nest at most this deep: the
# parser reads a nested graph with a call, so this bounds its stack use to a few dozen frames
MAX_GRAPH_NESTING = 8
MAX_ELEMENTS = 1 << 48  # a type with more elements than this is not a real array


class ParseError(GraphcError):
    """IR text that does not follow the grammar or does not type-check; the message starts
    with the line (`line 3: ...`) and ends with the column, also kept as `.line`, `.column`."""

    def __init__(
        self,
        message: str,
        location: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ):
        super().__init__(message, location)
        self.line = line
        self.column = column


class TextTypeError(ParseError, VerifyError):
    """Well-formed IR text whose types are wrong (a shape, a dtype, an operand count, an
    attribute): a ParseError naming the line, and a VerifyError like any ill-typed graph."""


Token = tuple[str, str, int, int]  # kind, text, line, column


def _err(t: Token, msg: str, cls: type[ParseError] = ParseError) -> ParseError:
    return cls(f"line {t[2]}: {msg} (column {t[3]})", line=t[2], column=t[3])


def _found(t: Token) -> str:
    return repr(t[1]) if t[1] else "end of text"


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
        self.toks: list[Token] = []
        line, pos, line_start = 1, 0, 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise _err(
                    ("", "", line, pos - line_start + 1), f"unexpected character {text[pos]!r}"
                )
            kind = m.lastgroup or ""
            val = m.group()
            if kind != "ws":
                self.toks.append((kind, val, line, pos - line_start + 1))
            if kind == "nl":
                line += 1
                line_start = m.end()
            pos = m.end()
        self.toks.append(("eof", "", line, pos - line_start + 1))
        self.i = 0
        self.check = True  # type-check equations as they are read

    def peek(self, skip_nl: bool = True) -> Token:
        j = self.i
        while skip_nl and self.toks[j][0] in ("nl", "comment"):
            j += 1
        return self.toks[j]

    def next(self, skip_nl: bool = True) -> Token:
        while skip_nl and self.toks[self.i][0] in ("nl", "comment"):
            self.i += 1
        t = self.toks[self.i]
        if t[0] != "eof":
            self.i += 1
        return t

    def expect(self, val: str) -> Token:
        t = self.next()
        if t[1] != val or t[0] == "str":
            raise _err(t, f"expected {val!r}, found {_found(t)}")
        return t

    def fail(self, what: str) -> ParseError:
        t = self.peek()
        return _err(t, f"expected {what}, found {_found(t)}")


def _parse_dims(tk: _Tokens, t: Token) -> Aval:
    tk.expect("[")
    dims: list[int] = []
    if tk.peek()[1] != "]":
        while True:  # INT (',' INT)*: no missing, doubled or trailing commas
            d = tk.next()
            if d[0] != "num" or not d[1].isdigit():
                raise _err(d, f"bad dimension {d[1]!r}")
            dims.append(int(d[1]))
            if dims[-1] > MAX_ELEMENTS or math.prod(dims) > MAX_ELEMENTS:
                raise _err(d, f"dimension {d[1]} makes the array too large")
            if tk.peek()[1] != ",":
                break
            tk.next()
    tk.expect("]")
    return Aval(tuple(dims), DTYPES_BY_NAME[t[1]])


def _parse_type(tk: _Tokens) -> Aval | TupleAval:
    """A type; tuple types nest, walked with an explicit stack."""
    open_tuples: list[list[Aval | TupleAval]] = []
    while True:
        t = tk.next()
        if t[1] == "(" and t[0] == "punct":
            if len(open_tuples) >= MAX_NESTING:
                raise _err(t, f"types nested deeper than {MAX_NESTING} levels")
            open_tuples.append([])
            continue
        if t[0] != "name" or t[1] not in DTYPES_BY_NAME:
            raise _err(t, f"expected a type like f32[4,3], found {_found(t)}")
        aval: Aval | TupleAval = _parse_dims(tk, t)
        while True:
            if not open_tuples:
                return aval
            open_tuples[-1].append(aval)
            nt = tk.next()
            if nt[1] == ",":
                break
            if nt[1] != ")":
                raise _err(nt, f"expected ',' or ')' in a tuple type, found {_found(nt)}")
            aval = TupleAval(tuple(open_tuples.pop()))  # type: ignore[arg-type]


def _number(t: Token) -> int | float:
    text = t[1]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    v = float(text)
    if math.isinf(v):
        raise _err(t, f"number {text} is out of range for a 64-bit float")
    return v


_NAMED_VALUES = {"True": True, "False": False, "None": None, "inf": math.inf, "nan": math.nan}


def _parse_scalar_value(tk: _Tokens, t: Token, consts: dict, depth: int) -> Any:
    kind, val = t[0], t[1]
    if kind == "num":
        return _number(t)
    if kind == "str":
        try:
            return ast.literal_eval(val)
        except (ValueError, SyntaxError) as e:
            raise _err(t, f"bad string {val}: {e}") from None
    if val == "-":
        nt = tk.next()
        if nt[1] == "inf":
            return -math.inf
        if nt[1] == "nan":
            return -math.nan
        raise _err(t, "unexpected '-'")
    if kind == "name":
        if val in _NAMED_VALUES:
            return _NAMED_VALUES[val]
        if val in DTYPES_BY_NAME:
            return DTYPES_BY_NAME[val]
        raise _err(t, f"unknown name {val!r} in an attribute")
    if val == "{":
        if depth >= MAX_GRAPH_NESTING:
            raise _err(t, f"graphs nested deeper than {MAX_GRAPH_NESTING} levels")
        tk.i -= 1
        return _parse_graph(tk, consts, depth + 1)
    raise _err(t, f"unexpected {_found(t)} in an attribute")


def _parse_value(tk: _Tokens, consts: dict, depth: int = 0) -> Any:
    """An attribute value (inside a graph nested `depth` deep). Tuples and lists nest,
    walked with an explicit stack (closer and items of each open bracket), so deep nesting
    is an error rather than a crash."""
    stack: list[tuple[str, list]] = []
    while True:
        t = tk.next()
        if t[0] == "punct" and t[1] in ("(", "["):
            if len(stack) >= MAX_NESTING:
                raise _err(t, f"attribute value nested deeper than {MAX_NESTING} levels")
            stack.append((")" if t[1] == "(" else "]", []))
            if tk.peek()[1] != stack[-1][0]:
                continue
            tk.next()
            closer, items = stack.pop()
            v: Any = tuple(items) if closer == ")" else items
        else:
            v = _parse_scalar_value(tk, t, consts, depth)
        while stack:  # v completes an item: close every bracket that ends here
            closer, items = stack[-1]
            items.append(v)
            nt = tk.next()
            if nt[1] == "," and tk.peek()[1] != closer:
                break
            if nt[1] == ",":
                nt = tk.next()
            if nt[1] != closer:
                raise _err(nt, f"expected ',' or {closer!r}, found {_found(nt)}")
            stack.pop()
            v = tuple(items) if closer == ")" else items
        else:
            return v


def _literal_value(t: Token, text: str, dtype: np.dtype) -> np.ndarray:
    """The value of the literal `text:dtype`, refusing text the dtype cannot hold exactly as
    written (out of range, a fraction for an integer, a number for a bool)."""
    bare = text.lstrip("-")
    if dtype == np.bool_:
        if text not in ("True", "False"):
            raise _err(t, f"a bool literal is True or False, not {text}")
        return np.array(text == "True")
    if dtype.kind in "iu":
        if not re.fullmatch(r"-?\d+", text):
            raise _err(t, f"literal {text} is not an integer, so not a {dtype_name(dtype)}")
        info = np.iinfo(dtype)
        if not info.min <= int(text) <= info.max:
            raise _err(
                t,
                f"literal {text} is out of range for {dtype_name(dtype)} "
                f"({info.min} to {info.max})",
            )
        return np.array(int(text), dtype=dtype)
    if bare in ("True", "False"):
        raise _err(t, f"literal {text} is not a number, so not a {dtype_name(dtype)}")
    with np.errstate(all="ignore"):
        value = np.array(dtype.type(text))
    if np.isinf(value) and bare != "inf":
        raise _err(t, f"literal {text} is out of range for {dtype_name(dtype)}")
    return value


def _parse_atom(tk: _Tokens, env: dict[str, Node]) -> Node:
    t = tk.next(skip_nl=False)
    kind, val = t[0], t[1]
    neg = False
    if val == "-":
        neg = True
        t = tk.next(skip_nl=False)
        kind, val = t[0], t[1]
        if val.startswith("-"):
            raise _err(t, "unexpected '-'")
    if kind == "name" and val in env and not neg:
        return env[val]
    if kind == "num" or val in ("True", "False", "inf", "nan"):
        if tk.peek(skip_nl=False)[1] != ":":
            raise _err(t, f"literal {val} needs a type, e.g. {val}:f32")
        tk.next(skip_nl=False)
        dt = tk.next(skip_nl=False)
        if dt[1] not in DTYPES_BY_NAME:
            raise _err(dt, f"unknown dtype {dt[1]!r}")
        dtype = DTYPES_BY_NAME[dt[1]]
        value = _literal_value(t, ("-" if neg else "") + val, dtype)
        return Node("const", (), {"value": Const(value, dtype)}, Aval((), dtype))
    raise _err(t, f"unknown variable {val!r}" if val else "expected an operand, found end of text")


def _parse_comment(text: str) -> Meta:
    # the location may contain spaces (a path such as "My Projects/model.py:3")
    m = re.fullmatch(r"#\s*(?P<loc>[^\[]*?)\s*(?:\[(?P<scope>[^\]]*)\])?\s*", text)
    if not m:
        return Meta()
    return Meta(m.group("loc") or None, m.group("scope"))


def _const_value(t: Token, value: Any, aval: Aval) -> Const:
    """A const equation's value attribute as an array of exactly the declared type: numbers
    of the dtype's kind (True/False for bool, integers in range for integer dtypes)."""
    name = dtype_name(aval.dtype)
    if value is None:
        raise _err(t, "const needs a value attribute, e.g. const[value=[1.0, 2.0]]", TextTypeError)
    try:
        obj = np.array(value, dtype=object)
    except (ValueError, TypeError):
        obj = None
    if obj is not None and any(isinstance(v, (list, tuple)) for v in obj.flat):
        obj = None  # lists of different lengths
    if obj is None or obj.shape != aval.shape:
        shape = "a ragged nesting" if obj is None else f"shape {obj.shape}"
        raise _err(t, f"const value has {shape}, the text says {aval}", TextTypeError)
    kinds = {type(v) for v in obj.flat}
    allowed = {"b": {bool}, "i": {int}, "u": {int}, "f": {int, float}}[aval.dtype.kind]
    if not kinds <= allowed:
        raise _err(t, f"const value holds values that are not {name}", TextTypeError)
    try:
        with np.errstate(all="ignore"):
            arr = np.array(obj.tolist() if obj.ndim else obj[()], dtype=aval.dtype)
    except OverflowError:
        arr = None
    if arr is None or (aval.dtype.kind == "f" and not _all_inf_written(obj, arr)):
        raise _err(t, f"const value is out of range for {name}", TextTypeError)
    return Const(arr)


def _all_inf_written(obj: np.ndarray, arr: np.ndarray) -> bool:
    """Whether every value that became inf was written as inf (not as a finite number too
    large for the dtype)."""
    written = [isinstance(v, float) and math.isinf(v) for v in obj.flat]
    return bool(np.array_equal(np.isinf(arr).ravel(), np.array(written, dtype=bool)))


def _check_equation(t: Token, op: str, args: list[Node], attrs: dict, aval: Any) -> None:
    """Type-check one parsed equation as `verify` would, naming its line on failure."""
    d = registry.get(op)
    if d.kind.value == "source" and op != "const":
        raise _err(t, f"{op} nodes are declared after 'lambda', not computed by equations")
    if d.arity is not None and len(args) != d.arity:
        raise _err(t, f"{op} takes {d.arity} operands, got {len(args)}", TextTypeError)
    for a in args:
        if isinstance(a.aval, TupleAval) and op != "proj":
            raise _err(t, f"{op} reads a multi-output value directly (use proj)", TextTypeError)
    problem = registry.attribute_problem(d, attrs)
    if problem is not None:
        raise _err(t, problem, TextTypeError)
    try:
        want = d.shape(*[a.aval for a in args], **attrs)
    except GraphcError as e:
        msg = e.message if e.message.startswith(f"{op}:") else f"{op}: {e.message}"
        raise _err(t, msg, TextTypeError) from None
    except Exception as e:  # attribute values of the wrong kind, e.g. axes='x'
        raise _err(t, f"{op}: invalid attributes or operands ({e})", TextTypeError) from None
    if want != aval:
        raise _err(t, f"{op}: the text says {aval}, but its operands give {want}", TextTypeError)


def _parse_graph(tk: _Tokens, consts: dict, depth: int = 0) -> Graph:
    tk.expect("{")
    tk.expect("lambda")
    env: dict[str, Node] = {}

    def binders(stop: str) -> list[tuple[Token, Aval]]:
        out = []
        while tk.peek()[1] != stop:
            n = tk.next()
            if n[0] != "name" or n[1] in _RESERVED:
                raise _err(n, f"expected a variable name or {stop!r}, found {_found(n)}")
            if n[1] in env or any(m[1] == n[1] for m, _ in out):
                raise _err(n, f"variable {n[1]!r} is defined twice")
            tk.expect(":")
            aval = _parse_type(tk)
            if not isinstance(aval, Aval):
                raise _err(n, f"{n[1]} must have an array type, not {aval}", TextTypeError)
            out.append((n, aval))
        tk.next()
        return out

    for n, aval in binders(";"):
        name = n[1]
        if name not in consts:
            raise _err(
                n,
                f"constant {name} has no value: read graphs with large constants "
                "with graphc.load(path), or pass consts={...} to graphc.parse",
            )
        arr = np.asarray(consts[name])
        if arr.shape != aval.shape or arr.dtype != aval.dtype:
            raise _err(
                n, f"constant {name}: value is {arr.dtype}{list(arr.shape)}, text says {aval}"
            )
        env[name] = Node("const", (), {"value": Const(arr)}, aval)
    inputs = []
    for n, aval in binders("."):
        env[n[1]] = make_input(aval)
        inputs.append(env[n[1]])
    tk.expect("let")
    while tk.peek()[1] != "in":
        n = tk.next()
        if n[0] != "name" or n[1] in _RESERVED:
            raise _err(n, f"expected an equation or 'in', found {_found(n)}")
        if n[1] in env:
            raise _err(n, f"variable {n[1]!r} is defined twice")
        tk.expect(":")
        aval = _parse_type(tk)
        tk.expect("=")
        op_t = tk.next()
        if op_t[0] != "name" or op_t[1] not in registry.REGISTRY:
            raise _err(op_t, f"unknown op {op_t[1]!r}")
        attrs: dict[str, Any] = {}
        if tk.peek(skip_nl=False)[1] == "[":
            tk.next()
            while tk.peek()[1] != "]":
                k = tk.next()
                if k[0] != "name":
                    raise _err(k, f"expected an attribute name, found {_found(k)}")
                if k[1] in attrs:
                    raise _err(k, f"attribute {k[1]!r} is given twice")
                tk.expect("=")
                attrs[k[1]] = _parse_value(tk, consts, depth)
                if tk.peek()[1] == ",":
                    tk.next()
                elif tk.peek()[1] != "]":
                    raise tk.fail("',' or ']' after an attribute")
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
            if not isinstance(aval, Aval):
                raise _err(op_t, "const must have an array type", TextTypeError)
            attrs["value"] = _const_value(op_t, attrs.get("value"), aval)
        if tk.check:
            _check_equation(op_t, op_t[1], args, attrs, aval)
        env[n[1]] = Node(op_t[1], args, attrs, aval, meta)
    tk.expect("in")
    tk.expect("(")
    outs = []
    while tk.peek()[1] != ")":
        outs.append(_parse_atom(tk, env))
        if tk.peek()[1] == ",":
            tk.next()
        elif tk.peek()[1] != ")":
            raise tk.fail("',' or ')' after an output")
    tk.expect(")")
    tk.expect("}")
    return Graph(inputs, outs)


def parse(text: str, consts: dict[str, Any] | None = None, *, verify: bool = True) -> Graph:
    """Parse IR text into a Graph equal to the one printed, type-checking every equation as
    it is read (and verifying the whole graph unless `verify=False`).

    Every problem with the text raises ParseError naming its line and column; ill-typed
    equations raise TextTypeError, which is both a ParseError and a VerifyError.

    Example:
        >>> g = graphc.parse("{ lambda ; a:f32[3]. let\\n b:f32[3] = tanh a\\n in (b,) }")
        >>> g.equations[0].op
        'tanh'
    """
    tk = _Tokens(text)
    tk.check = verify
    g = _parse_graph(tk, consts or {})
    if tk.peek()[0] != "eof":
        raise tk.fail("end of text")
    if verify:
        try:
            _verify(g)
        except VerifyError as e:
            raise TextTypeError(e.message) from None
    return g


def load(path: str | os.PathLike) -> Graph:
    """Read a graph written by `Graph.save`."""
    path = os.fspath(path)
    with open(path) as f:
        text = f.read()
    consts = {}
    if os.path.exists(path + ".npz"):
        with np.load(path + ".npz") as z:
            consts = {k: z[k] for k in z.files}
    try:
        return parse(text, consts)
    except ParseError as e:  # the text's line and column, in this file
        raise type(e)(e.message, path, line=e.line, column=e.column) from None
