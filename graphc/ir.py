"""The graph IR: abstract values, immutable nodes and graphs.

A `Node` is one value computed by one op from other nodes. Nodes never change after creation, so a
graph is simply "everything reachable from the outputs"; passes build new nodes instead of editing.
Every walk here is iterative, so graphs of hundreds of thousands of nodes are fine.

Example:
    >>> import numpy as np, graphc
    >>> g = graphc.trace(lambda x: np.tanh(x) * 2.0, graphc.spec("f32[3]"))
    >>> print(g)
    { lambda ; a:f32[3]. let
        b:f32[3] = tanh a
        c:f32[3] = mul b 2.0:f32
      in (c,) }
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# dtypes

DTYPE_NAMES: dict[np.dtype, str] = {
    np.dtype(np.bool_): "bool",
    np.dtype(np.int8): "i8",
    np.dtype(np.int16): "i16",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
    np.dtype(np.uint8): "u8",
    np.dtype(np.uint16): "u16",
    np.dtype(np.uint32): "u32",
    np.dtype(np.uint64): "u64",
    np.dtype(np.float16): "f16",
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
}
DTYPES_BY_NAME: dict[str, np.dtype] = {v: k for k, v in DTYPE_NAMES.items()}


class GraphcError(Exception):
    """Base class of every error graphc raises on purpose (bad input, unsupported feature)."""

    def __init__(self, message: str, location: str | None = None):
        self.message = message
        self.location = location
        # Exception's own __init__, not super(): subclasses that are also NumPy's exceptions
        # (AxisError) have an __init__ of another signature after this one in their MRO
        Exception.__init__(self, f"{message} (at {location})" if location else message)


class ShapeError(GraphcError):
    """Operands whose shapes or dtypes an op cannot accept."""


class AxisError(ShapeError, np.exceptions.AxisError):
    """An axis argument out of range for the array it names. It is also NumPy's AxisError, so
    code written for NumPy (`except np.exceptions.AxisError`) catches it.

    Example:
        >>> graphc.trace(lambda x: np.sum(x, axis=2), graphc.spec("f32[3]"))
        Traceback (most recent call last):
        graphc.ir.AxisError: sum: axis 2 is out of bounds for a 1-d array (at <stdin>:1)
    """

    # NumPy's AxisError has its own __init__ and __str__; graphc's message and location win
    __str__ = Exception.__str__

    def __init__(
        self,
        message: str,
        location: str | None = None,
        *,
        axis: int | None = None,
        ndim: int | None = None,
    ):
        self.message = message
        self.location = location
        self.axis = axis
        self.ndim = ndim
        Exception.__init__(self, f"{message} (at {location})" if location else message)


class DTypeError(GraphcError):
    """A dtype graphc does not handle, or a dtype an op does not accept."""


def as_dtype(dt: Any) -> np.dtype:
    """Normalise a dtype-like (np.float32, 'f32', 'float32', np.dtype) to a supported np.dtype."""
    if isinstance(dt, str) and dt in DTYPES_BY_NAME:
        return DTYPES_BY_NAME[dt]
    try:
        d = np.dtype(dt)
    except TypeError as e:
        raise DTypeError(f"{dt!r} is not a dtype") from e
    if d not in DTYPE_NAMES:
        raise DTypeError(
            f"dtype {d} is not supported by graphc (supported: {', '.join(DTYPE_NAMES.values())})"
        )
    return d


def dtype_name(dt: np.dtype) -> str:
    return DTYPE_NAMES[np.dtype(dt)]


def is_float(dt: np.dtype) -> bool:
    return np.dtype(dt).kind == "f"


# ---------------------------------------------------------------------------------------------
# abstract values


@dataclass(frozen=True)
class Aval:
    """Shape and dtype of a value: what the compiler knows before the data exists.

    Example:
        >>> Aval((4, 3), np.dtype("float32"))
        Aval(f32[4,3])
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    def __post_init__(self) -> None:
        # every node makes one: what is already a tuple of ints and a supported dtype is kept
        shape = self.shape
        if type(shape) is not tuple or not all(type(s) is int for s in shape):
            object.__setattr__(self, "shape", tuple(int(s) for s in shape))
        dt = self.dtype
        if not (isinstance(dt, np.dtype) and dt in DTYPE_NAMES):
            object.__setattr__(self, "dtype", as_dtype(dt))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        # printed for every node by the IR text, structural hashes and generated code: made
        # once (written to __dict__ directly, which a frozen dataclass allows; not a field)
        text = self.__dict__.get("_text")
        if text is None:
            text = self.__dict__["_text"] = (
                f"{DTYPE_NAMES[self.dtype]}[{','.join(map(str, self.shape))}]"
            )
        return text

    def __repr__(self) -> str:
        return f"Aval({self})"

    @staticmethod
    def parse(text: str) -> Aval:
        """Parse the short form `f32[4,3]` (also `f32[]` for a scalar)."""
        text = text.strip()
        if "[" not in text or not text.endswith("]"):
            raise GraphcError(f"malformed type {text!r}: expected e.g. f32[4,3]")
        name, dims = text[:-1].split("[", 1)
        if name not in DTYPES_BY_NAME:
            raise DTypeError(f"unknown dtype {name!r} in {text!r}")
        parts = [d.strip() for d in dims.split(",")] if dims.strip() else []
        if any(d.startswith("-") and d[1:].isdigit() for d in parts):
            raise GraphcError(f"negative dimension in {text!r}")
        # plain digits only: int() alone would also take "", "+4" and "4_0"
        if not all(d.isascii() and d.isdigit() for d in parts):
            raise GraphcError(f"malformed shape in {text!r}: dimensions must be integers")
        return Aval(tuple(int(d) for d in parts), DTYPES_BY_NAME[name])


@dataclass(frozen=True)
class TupleAval:
    """The type of a node that yields several values (a fused kernel); read with `proj` nodes."""

    avals: tuple[Aval, ...]

    def __str__(self) -> str:
        return "(" + ", ".join(map(str, self.avals)) + ")"

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.avals)


# ---------------------------------------------------------------------------------------------
# constants


class Const:
    """An immutable array held in an attribute; hashed and compared by content."""

    __slots__ = ("value", "_key")

    def __init__(self, value: Any, dtype: Any = None):
        arr = np.array(value, dtype=dtype, copy=True, order="C")
        as_dtype(arr.dtype)
        arr.flags.writeable = False
        self.value = arr
        digest = hashlib.sha256(arr.tobytes()).hexdigest()
        self._key = (str(arr.dtype), arr.shape, digest)

    @property
    def aval(self) -> Aval:
        return Aval(self.value.shape, self.value.dtype)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Const) and self._key == other._key

    def __repr__(self) -> str:
        return f"Const({self.value!r})"


# ---------------------------------------------------------------------------------------------
# nodes


@dataclass(frozen=True)
class Meta:
    """Where a node came from: the user's `file:line` and the module scope (e.g. model.layers.0)."""

    loc: str | None = None
    scope: str | None = None
    name: str | None = None  # a user-facing name for graph inputs, e.g. the parameter path
    role: str | None = None  # "grad" for nodes the autodiff pass created, "tangent" for JVP


_EMPTY_META = Meta()


class Node:
    """One value: `op` applied to `inputs` with `attrs`, of type `aval`.

    Nodes are immutable and compared by identity; structural comparison lives on `Graph`.
    Create nodes through `graphc.ops.apply` (which runs the op's shape rule), not directly.
    """

    __slots__ = ("op", "inputs", "attrs", "aval", "meta", "serial", "__weakref__")

    op: str
    inputs: tuple[Node, ...]
    attrs: Mapping[str, Any]
    aval: Aval | TupleAval
    meta: Meta
    serial: int  # creation order: tracing a loop body tells its own nodes from the enclosing ones

    def __init__(
        self,
        op: str,
        inputs: Iterable[Node],
        attrs: Mapping[str, Any] | None,
        aval: Aval | TupleAval,
        meta: Meta | None = None,
    ):
        # the slots' own setters: every pass builds nodes, and object.__setattr__ by name
        # costs more than the rest of a node
        _set_op(self, op)
        _set_inputs(self, tuple(inputs))
        _set_attrs(self, MappingProxyType(dict(attrs)) if attrs else _NO_ATTRS)
        _set_aval(self, aval)
        _set_meta(self, meta or _EMPTY_META)
        _set_serial(self, _next_serial())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("graphc nodes are immutable; build a new node instead")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("graphc nodes are immutable; build a new node instead")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape  # type: ignore[union-attr]

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype  # type: ignore[union-attr]

    def with_inputs(self, inputs: Iterable[Node], attrs: Mapping[str, Any] | None = None) -> Node:
        """This node's op applied to other operands (and attributes): same type, same origin.

        The rebuild of a node whose operands were replaced by values of the same types, as
        `Graph.map` does; the shape rule is not run again (verification checks the result).
        New computations are made with `graphc.ops.apply`.

        Example:
            >>> b = a_node.with_inputs([other])   # other.aval == a_node.inputs[0].aval
        """
        return Node(self.op, inputs, self.attrs if attrs is None else attrs, self.aval, self.meta)

    def attr_key(self) -> tuple:
        """Attributes as a hashable, order-independent key (used by CSE and hashing)."""
        return tuple(sorted(self.attrs.items()))

    def __repr__(self) -> str:
        attrs = "".join(f" {k}={v!r}" for k, v in self.attrs.items() if k != "value")
        return f"<Node {self.op}{attrs} : {self.aval}>"


_set_op = Node.op.__set__  # type: ignore[attr-defined]
_set_inputs = Node.inputs.__set__  # type: ignore[attr-defined]
_set_attrs = Node.attrs.__set__  # type: ignore[attr-defined]
_set_aval = Node.aval.__set__  # type: ignore[attr-defined]
_set_meta = Node.meta.__set__  # type: ignore[attr-defined]
_set_serial = Node.serial.__set__  # type: ignore[attr-defined]
_next_serial = itertools.count().__next__


def next_serial() -> int:
    """A serial below that of every node made after the call: how a traced loop body tells
    its own nodes (serial above) from the values it closes over (serial below)."""
    return _next_serial()


_NO_ATTRS: Mapping[str, Any] = MappingProxyType({})


def make_input(aval: Aval, name: str | None = None) -> Node:
    """A fresh graph input of type `aval`."""
    return Node("input", (), {}, aval, Meta(name=name))


# scalar constants by (dtype, bytes): a trace and its gradient make the same few literals
# (1, 0.5, ...) over and over, and a Const is immutable, so nodes can share one
_SCALAR_CONSTS: dict[tuple[np.dtype, bytes], Const] = {}


def make_const(value: Any, dtype: Any = None, meta: Meta | None = None) -> Node:
    """A constant node holding a copy of `value`."""
    c = None
    if type(value) in (int, float, bool) or isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value, dtype=dtype)
        if arr.ndim == 0 and arr.dtype in DTYPE_NAMES:
            key = (arr.dtype, arr.tobytes())
            c = _SCALAR_CONSTS.get(key)
            if c is None:
                if len(_SCALAR_CONSTS) >= 4096:  # a bound: programs may hold many literals
                    _SCALAR_CONSTS.clear()
                c = _SCALAR_CONSTS[key] = Const(arr)
    if c is None:
        c = Const(value, dtype)
    return Node("const", (), {"value": c}, c.aval, meta)


# ---------------------------------------------------------------------------------------------
# walks (all iterative)


def toposort(outputs: Iterable[Node]) -> list[Node]:
    """All nodes reachable from `outputs`, each after its inputs, in a deterministic order.

    The order is the post-order of a depth-first walk that visits outputs and inputs left to
    right, so equal graphs give equal orders. Raises GraphcError on a cycle.
    """
    order: list[Node] = []
    append = order.append
    state: dict[int, int] = {}  # id -> 1 visiting, 2 done
    for root in outputs:
        if id(root) in state:
            continue
        # one input iterator per open node: resuming it costs less than re-indexing
        stack: list[tuple[Node, Iterator[Node]]] = [(root, iter(root.inputs))]
        push, pop = stack.append, stack.pop
        state[id(root)] = 1
        while stack:
            node, it = stack[-1]
            for child in it:
                s = state.get(id(child))
                if s is None:
                    state[id(child)] = 1
                    push((child, iter(child.inputs)))
                    break
                if s == 1:
                    raise GraphcError(f"the graph has a cycle through a {child.op} node")
            else:
                pop()
                state[id(node)] = 2
                append(node)
    return order


def users(nodes: Iterable[Node]) -> dict[int, list[Node]]:
    """Map id(node) -> the nodes (among `nodes`) that read it, once per use."""
    out: dict[int, list[Node]] = {}
    for n in nodes:
        for i in n.inputs:
            out.setdefault(id(i), []).append(n)
    return out


def node_signatures(graph: Graph) -> dict[int, int]:
    """A structural hash per node (op, attributes, type and, recursively, its inputs; graph
    inputs by position). Equal signatures mean equal computations, whatever the objects."""
    pos = {id(n): i for i, n in enumerate(graph.inputs)}
    sig: dict[int, int] = {}
    for n in graph.nodes:
        if n.op == "input":
            sig[id(n)] = hash(("input", pos.get(id(n), -1), str(n.aval)))
        else:
            sig[id(n)] = hash(
                (n.op, n.attr_key(), str(n.aval), tuple(sig[id(i)] for i in n.inputs))
            )
    return sig


def substitute(
    outputs: list[Node], mapping: dict[int, Node], order: list[Node] | None = None
) -> list[Node]:
    """Rebuild the graph above `outputs`, replacing each node whose id is in `mapping`.

    Nodes whose inputs did not change are reused as they are. Shape rules are not re-run: the
    replacement must have the same aval as what it replaces. `order`: a topological order of
    (at least) everything `outputs` reach, when the caller has one (a graph's `nodes`).
    """
    get = mapping.get
    new = map_nodes(
        toposort(outputs) if order is None else order,
        lambda n, orig: get(id(orig)),
        nested=False,
    )
    return [new[id(o)] for o in outputs]


MapFn = Callable[["Node", "Node"], "Node | None"]
"""`fn(node, original)`: `node` is `original` with its operands already mapped (the very same
object when none changed); the result replaces it, None keeps it."""


def nested_graphs(node: Node) -> list[Graph]:
    """The graphs a node holds in its attributes: a fused kernel's body, a loop's body and
    condition, the branches of a `cond` (an attribute may hold a tuple of graphs)."""
    if not node.attrs:
        return []
    out: list[Graph] = []
    for v in node.attrs.values():
        if isinstance(v, Graph):
            out.append(v)
        elif isinstance(v, tuple) and v and isinstance(v[0], Graph):
            out.extend(g for g in v if isinstance(g, Graph))
    return out


def map_nodes(
    nodes: Iterable[Node],
    fn: MapFn,
    *,
    nested: bool = True,
    mapping: dict[int, Node] | None = None,
    _done: dict | None = None,
) -> dict[int, Node]:
    """Walk `nodes` (a topological order) once: rebuild each node whose operands were
    replaced, then offer it to `fn`. Returns id(original) -> what it became: `mapping`,
    extended, when given (`fn` may record there what nodes outside `nodes` become, as fusion
    does for the other members of a kernel it builds at the first one).

    A node none of whose operands changed is passed on as the same object, so `fn` may cache
    its answers by identity. With `nested`, the graphs held in a node's attributes (fused
    bodies) are mapped with the same `fn` first, innermost first, with a worklist rather than
    recursion; a node whose body changed is rebuilt around the new body. Replacements must
    keep the type of what they replace (verification checks it).
    """
    done: dict[int, Graph] = {} if _done is None else _done  # id(nested graph) -> mapped
    new: dict[int, Node] = {} if mapping is None else mapping
    get = new.get
    for n in nodes:
        cur = n
        ins = n.inputs
        if ins:
            mapped = tuple([get(id(i), i) for i in ins])
            if mapped != ins:  # nodes compare by identity
                cur = Node(n.op, mapped, n.attrs, n.aval, n.meta)  # n.with_inputs, inlined
        if nested and n.attrs is not _NO_ATTRS:
            bodies = nested_graphs(n)
            if bodies:
                _map_nested(bodies, fn, done)
                cur = _with_bodies(cur, done)
        rep = fn(cur, n)
        new[id(n)] = cur if rep is None else rep
    return new


def _map_nested(bodies: list[Graph], fn: MapFn, done: dict[int, Graph]) -> None:
    """Map `bodies` and every graph nested in them into `done`, children before parents, so
    that mapping one graph never has to descend further (the walk needs no recursion)."""
    stack = [b for b in bodies if id(b) not in done]
    while stack:
        g = stack[-1]
        if id(g) in done:
            stack.pop()
            continue
        inner = [b for m in g.nodes for b in nested_graphs(m) if id(b) not in done]
        if inner:
            stack.extend(inner)
            continue
        stack.pop()
        new = map_nodes(g.nodes, fn, nested=True, _done=done)
        ins = [new[id(i)] for i in g.inputs]
        outs = [new[id(o)] for o in g.outputs]
        same = all(a is b for a, b in zip(ins, g.inputs, strict=True)) and all(
            a is b for a, b in zip(outs, g.outputs, strict=True)
        )
        done[id(g)] = g if same else g.derive(inputs=ins, outputs=outs)


def _with_bodies(node: Node, done: dict[int, Graph]) -> Node:
    """`node` holding the mapped versions of its nested graphs (itself when none changed)."""
    attrs = dict(node.attrs)
    changed = False
    for k, v in attrs.items():
        if isinstance(v, Graph) and done[id(v)] is not v:
            attrs[k] = done[id(v)]
            changed = True
        elif isinstance(v, tuple) and v and isinstance(v[0], Graph):
            new = tuple(done.get(id(g), g) if isinstance(g, Graph) else g for g in v)
            if any(a is not b for a, b in zip(new, v, strict=True)):
                attrs[k] = new
                changed = True
    return node.with_inputs(node.inputs, attrs) if changed else node


# ---------------------------------------------------------------------------------------------
# graphs


class Graph:
    """A function in IR form: ordered `inputs`, ordered `outputs`, everything in between.

    Graphs are immutable. Equality and hashing are structural: two graphs are equal when they
    compute the same thing the same way, whatever objects they are made of (source locations and
    input names do not count). The structural hash is the compile-cache key.

    Example:
        >>> g = graphc.trace(lambda x, y: np.sum((x - y) ** 2), 1.0, 2.0)
        >>> len(g.inputs), len(g.outputs)
        (2, 1)
    """

    __slots__ = (
        "inputs",
        "outputs",
        "_nodes",
        "_equations",
        "_hash",
        "in_tree",
        "out_tree",
        "name",
        "info",
    )

    def __init__(
        self,
        inputs: Iterable[Node],
        outputs: Iterable[Node],
        *,
        in_tree: Any = None,
        out_tree: Any = None,
        name: str | None = None,
    ):
        self.inputs: tuple[Node, ...] = tuple(inputs)
        self.outputs: tuple[Node, ...] = tuple(outputs)
        self.in_tree = in_tree
        self.out_tree = out_tree
        self.name = name
        # annotations that are not part of the structure (e.g. autodiff's cotangent map)
        self.info: dict[str, Any] = {}
        self._nodes: list[Node] | None = None
        self._equations: list[Node] | None = None
        self._hash: str | None = None

    # -- structure ------------------------------------------------------------------------------
    @property
    def nodes(self) -> list[Node]:
        """Every node in topological order: the inputs first (in order), then the rest."""
        if self._nodes is None:
            body = toposort(self.outputs)
            ins = {id(i) for i in self.inputs}
            self._nodes = list(self.inputs) + [n for n in body if id(n) not in ins]
        return self._nodes

    @property
    def constants(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "const"]

    @property
    def equations(self) -> list[Node]:
        """The nodes that do work (everything but inputs and constants). The list is the
        graph's own (passes and the pipeline ask for it often): do not modify it."""
        if self._equations is None:
            self._equations = [n for n in self.nodes if n.op != "input" and n.op != "const"]
        return self._equations

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.equations:
            counts[n.op] = counts.get(n.op, 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def with_outputs(self, outputs: Iterable[Node]) -> Graph:
        """A graph with the same inputs and other outputs (annotations are not kept)."""
        return Graph(self.inputs, outputs, in_tree=self.in_tree, name=self.name)

    def map(self, fn: MapFn, *, nested: bool = True) -> Graph:
        """The graph rebuilt node by node: `fn(node, original)` sees each node in
        topological order with its operands already mapped and returns a replacement of the
        same type, or None to keep it. Unchanged nodes are reused (an identity map returns a
        graph made of the very same nodes); with `nested`, fused bodies are mapped too. The
        result is `derive`d: same trees, name and annotations.

        Example:
            >>> g2 = g.map(lambda n, orig: n.inputs[0] if n.op == "stop_gradient" else None)
        """
        new = map_nodes(self.nodes, fn, nested=nested)
        return self.derive(
            inputs=[new[id(i)] for i in self.inputs], outputs=[new[id(o)] for o in self.outputs]
        )

    def derive(
        self, inputs: Iterable[Node] | None = None, outputs: Iterable[Node] | None = None
    ) -> Graph:
        """The same function rebuilt by a pass: new inputs/outputs, same trees, name and
        annotations. Passes return `graph.derive(outputs=...)`."""
        g = Graph(
            self.inputs if inputs is None else inputs,
            self.outputs if outputs is None else outputs,
            in_tree=self.in_tree,
            out_tree=self.out_tree,
            name=self.name,
        )
        g.info.update(self.info)
        if g.inputs == self.inputs and g.outputs == self.outputs:  # (nodes compare by identity)
            # the same nodes: what is known about their order holds, and a pass that changed
            # nothing costs the next one no new walk of a large graph
            g._nodes = None if self._nodes is None else list(self._nodes)
            g._equations = None if self._equations is None else list(self._equations)
            g._hash = self._hash
        return g

    # -- identity -------------------------------------------------------------------------------
    def structural_hash(self) -> str:
        """A hex digest that depends only on the structure (ops, attrs, types, constants)."""
        if self._hash is None:
            h = hashlib.sha256(print_graph(self, locations=False).encode())
            # scalar literals are written out in full, once per use (the text cannot show that
            # one literal node is shared), so only array constants add their data here
            for c in self.constants:
                if c.aval.shape != ():
                    h.update(repr(c.attrs["value"]._key).encode())
            self._hash = h.hexdigest()
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return self is other or self.structural_hash() == other.structural_hash()

    def __hash__(self) -> int:
        return hash(self.structural_hash())

    # -- views ------------------------------------------------------------------------------------
    def __str__(self) -> str:
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {len(self.inputs)} inputs, {len(self.equations)} equations>"

    def pretty(self, locations: bool = True) -> str:
        """The IR text, with source locations as trailing comments when `locations`."""
        return print_graph(self, locations=locations)

    def to_networkx(self):  # -> networkx.MultiDiGraph
        """The graph as a `networkx.MultiDiGraph`: one node per value (named as in the IR text),
        one edge per use (so a value used twice by one op gives two edges), with op, shape,
        dtype and location attributes on nodes and the operand position on edges."""
        import networkx as nx

        names = node_names(self)
        g = nx.MultiDiGraph()
        out_ids = {id(o) for o in self.outputs}
        for n in self.nodes:
            aval = n.aval
            g.add_node(
                names[id(n)],
                op=n.op,
                shape=getattr(aval, "shape", None),
                dtype=str(getattr(aval, "dtype", "tuple")),
                type=str(aval),
                loc=n.meta.loc,
                scope=n.meta.scope,
                is_output=id(n) in out_ids,
            )
        for n in self.nodes:
            for pos, i in enumerate(n.inputs):
                g.add_edge(names[id(i)], names[id(n)], operand=pos)
        return g

    def to_dot(self, **kwargs: Any) -> str:
        """The graph as Graphviz DOT text; keyword options as for `graphc.viz.to_dot`."""
        from graphc.viz import to_dot

        return to_dot(self, **kwargs)

    def save(self, path: str) -> None:
        """Write the graph as IR text (`path`) plus its large constants (`path` + '.npz')."""
        save(self, path)


# ---------------------------------------------------------------------------------------------
# the IR's text form (printing; graphc.text parses it back). It lives with the IR because a
# graph's structural hash, and so its identity in every cache, is a hash of this text.

INLINE_MAX = 16  # array constants up to this many elements print their values in the text
_RESERVED = {"in", "let", "lambda", "inf", "nan"}


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


def node_names(graph: Graph, *, nested: bool = False) -> dict[int, str]:
    """The printed name of every node (scalar constants get their literal text). A `nested`
    graph (a loop body) declares no constants after `lambda`: its large constants are
    equations with their values written out, so the text of the outer graph says everything."""
    gen = _names()
    names: dict[int, str] = {}
    nodes = graph.nodes
    for n in nodes:
        if not nested and _is_constvar(n):
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


def fmt_value(v: Any, indent: str = "", locations: bool = False) -> str:
    """An attribute value in IR text (a graph's equations with their source locations as
    comments when `locations`)."""
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
        inner = ", ".join(fmt_value(x, indent, locations) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x, indent) for x in v) + "]"
    if isinstance(v, Const):
        arr = v.value
        return _fmt_array(arr)
    if isinstance(v, Graph):
        return print_graph(v, indent=indent + "    ", nested=True, locations=locations)
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


def print_graph(
    graph: Graph, *, locations: bool = False, indent: str = "", nested: bool = False
) -> str:
    """The graph as IR text (with source locations as comments when `locations`); a `nested`
    graph is printed inside an attribute, its large constants written out in full."""
    names = node_names(graph, nested=nested)
    nodes = graph.nodes

    def binder(n: Node) -> str:
        return f"{names[id(n)]}:{n.aval}"

    consts = "" if nested else " ".join(binder(n) for n in nodes if _is_constvar(n))
    ins = " ".join(binder(n) for n in graph.inputs)
    lines = [f"{{ lambda {consts + ' ' if consts else ''};{' ' if ins else ''}{ins}. let"]
    for n in nodes:
        if n.op == "input" or _is_literal(n) or (not nested and _is_constvar(n)):
            continue
        attrs = ""
        if n.attrs:
            attrs = (
                "["
                + ", ".join(
                    f"{k}={fmt_value(v, indent, locations)}" for k, v in sorted(n.attrs.items())
                )
                + "]"
            )
        args = "".join(" " + names[id(i)] for i in n.inputs)
        line = f"{indent}    {binder(n)} = {n.op}{attrs}{args}"
        lines.append(line + (_comment(n) if locations else ""))
    outs = ", ".join(names[id(o)] for o in graph.outputs)
    lines.append(f"{indent}  in ({outs}{',' if len(graph.outputs) == 1 else ''}) }}")
    return "\n".join(lines)


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
