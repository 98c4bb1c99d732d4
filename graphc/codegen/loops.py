"""Loops and branches compiled: every `scan`, `while_loop` and `cond` node becomes one Numba
function, called once from the driver (or from the function of the loop around it).

A scan's function is `for t in range(T)` around its body's code, written once whatever the trip
count (T is an argument, so the function's text does not depend on it); a while_loop's is
`while True` with the condition computed into a local each trip; a cond's is an `if` chain that
runs the taken branch only. Inside, each body node is lowered by its entry in `LOOP_LOWERINGS`:

- fused kernels are called (kernels are compiled with explicit signatures, so another compiled
  function calls them directly); a kernel over scalars is inlined as scalar code in locals;
- matrix products call BLAS through Numba's `np.dot(a, b, out)`, behind one compiled function
  per dtype and layout shared by all loops (`blas`); operands are C- or F-contiguous (copied
  into a buffer first otherwise: Numba would copy on every call);
- reshape, transpose, slice and flip are views; broadcast, concatenate, pad, gather and
  argmax/argmin write a buffer; a loop or branch inside the body calls its own function;
  array constants of a body are arguments (the caller passes them), not frozen into the code.

Storage: every value a step computes lives in a workspace (one flat array per dtype, which the
caller passes in: the driver's pooled buffers, or the outer loop's workspace), carved into
views once per call, so no step allocates. A carry lives in two buffers that swap after every
step (the step reads one and writes the other); its last value lands in the result array
because the first buffer is chosen by T's parity. A step's value that is a result (the next
carry, or ys[t]) is written straight where it belongs when the node computing it writes a
buffer; otherwise it is copied there at the end of the step. Scalar carries are locals.
Sequences are read as views xs[t]. Body nodes that read only loop-invariant values run once,
before the loop (not in a branch: only the taken branch may run).

A node whose body holds an op with no lowering here keeps the loop in Python: the driver runs
the op's reference implementation and lists it in `Driver.fallbacks`, saying which op.

Example:
    >>> src, d = generate(optimized_graph_with_a_scan)
    >>> [f.name for f in d.loops.functions]
    ['loop0']
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graphc.codegen.kernels import SUPPORTED_DTYPES, emit_op, np_type, reduce_identity
from graphc.ir import Graph, Node, TupleAval, dtype_name, nested_graphs, print_graph
from graphc.ops import REGISTRY, Fusion
from graphc.ops.control import scan_parts

if TYPE_CHECKING:
    from graphc.codegen.driver import Driver

ALIGN = 16  # workspace views start at multiples of this many elements (vector loads)


def _nb_type(dt: np.dtype) -> str:
    dt = np.dtype(dt)
    return "_nb.boolean" if dt == np.bool_ else f"_nb.{dt.name}"


def _cast(dt: np.dtype, expr: str) -> str:
    """`expr` typed exactly as dtype dt: Numba would otherwise widen a float32 local that a
    Python number touches, and a carry would change type between steps."""
    return expr if np.dtype(dt) == np.bool_ else f"{np_type(dt)}({expr})"


def _blas() -> bool:
    """Whether Numba's np.dot can reach BLAS (it needs SciPy's)."""
    return importlib.util.find_spec("scipy") is not None


# ---------------------------------------------------------------------------------------------
# values


@dataclass(eq=False)
class Val:
    """A value inside a loop function: a scalar local, a flat C-contiguous array of its
    elements, an N-d array (of Numba `layout`), or several of these. `home` is the block of
    code where it is defined: whatever another form needs is made there, once."""

    shape: tuple[int, ...]
    dtype: np.dtype
    home: list[str]
    scalar: str | None = None
    flat: str | None = None
    arr: str | None = None
    layout: str = "C"
    carr: str | None = None  # the N-d C-contiguous form, once made

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass
class LoopFn:
    """One generated loop (or branch) function and how it is called: its operands (flat),
    the body constants it takes as arguments, its results (flat buffers it writes), one
    workspace per dtype, and for a scan the trip count."""

    name: str
    source: str
    signature: str
    consts: list[Node]  # the array constants of its bodies, taken as arguments
    results: list[Any]  # result avals of the node it was written for (a shared function's
    # call sites may have other trip counts: they size results from their own node)
    workspace: dict[str, int]  # dtype name -> elements
    takes_length: bool


# ---------------------------------------------------------------------------------------------
# which nodes compile


LoopLowering = Callable[["Body", Node, list[Any], list[str]], "Val | list[Val]"]
LOOP_LOWERINGS: dict[str, LoopLowering] = {}


def loop_lowering(*ops: str) -> Callable[[LoopLowering], LoopLowering]:
    """Register how code inside a loop function computes `ops`: fn(body, node, operand values,
    block) -> its value (a list for several results), appending statements to `block`.

    Example:
        >>> @loop_lowering("negative_view")
        ... def _neg(b, n, xs, block): ...
    """

    def register(fn: LoopLowering) -> LoopLowering:
        for op in ops:
            if op in LOOP_LOWERINGS:
                raise ValueError(f"op {op!r} already has a loop lowering")
            LOOP_LOWERINGS[op] = fn
        return fn

    return register


def _region_graphs(node: Node) -> list[Graph]:
    d = REGISTRY.get(node.op)
    return nested_graphs(node) if d is not None and d.regions else []


def why_not_compiled(node: Node) -> str | None:
    """Why region node `node` (or a region inside it) cannot be one compiled function: the
    first node of its bodies with no loop lowering or a dtype kernels lack; None when it can.
    A worklist over the nesting, not a recursion."""
    work = list(_region_graphs(node))
    seen: set[int] = set()
    while work:
        g = work.pop()
        if id(g) in seen:
            continue
        seen.add(id(g))
        for n in g.nodes:
            avals = n.aval.avals if isinstance(n.aval, TupleAval) else (n.aval,)
            for av in avals:
                if dtype_name(av.dtype) not in SUPPORTED_DTYPES:
                    return f"its body computes {dtype_name(av.dtype)} values ({n.op})"
            if n.op in ("input", "const", "proj"):
                continue
            if n.op == "fused":
                body = n.attrs["body"]
                bad = [
                    m
                    for m in body.nodes
                    if not isinstance(m.aval, TupleAval)
                    and dtype_name(m.dtype) not in SUPPORTED_DTYPES
                ]
                if bad:
                    return f"its body's kernel computes {dtype_name(bad[0].dtype)} values"
                continue
            if n.op not in LOOP_LOWERINGS:
                return f"its body's {n.op} has no compiled form inside a loop"
            if n.op == "matmul" and not _matmul_batches(n):
                return "its body's matmul broadcasts batch axes partly"
            work.extend(_region_graphs(n))
    return None


# ---------------------------------------------------------------------------------------------
# one function being written


class Fn:
    """The pieces of one loop function as it is written: parameters, workspace views (carved
    once per call), hoisted constants, fresh local names."""

    def __init__(self, gen: LoopCodegen, name: str):
        self.gen = gen
        self.name = name
        self.params: list[tuple[str, str]] = []  # (name, Numba type)
        self.carve: list[str] = []
        self.ws: dict[str, int] = {}  # dtype name -> elements used so far
        self.ws_high: dict[str, int] = {}  # dtype name -> most elements ever used
        self.consts: dict[Any, tuple[str, Node]] = {}  # Const -> (parameter, node)
        self.count = 0

    def local(self, prefix: str = "v") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def alloc(self, dt: np.dtype, size: int) -> str:
        """A flat view of `size` elements of the workspace of dtype dt, for this call only."""
        key = np.dtype(dt).name
        off = self.ws.get(key, 0)
        name = self.local("w")
        self.carve.append(f"{name} = ws_{key}[{off}:{off + size}]")
        self.ws[key] = off + -(-size // ALIGN) * ALIGN
        self.ws_high[key] = max(self.ws_high.get(key, 0), self.ws[key])
        return name

    def mark(self) -> dict[str, int]:
        return dict(self.ws)

    def reset(self, mark: dict[str, int]) -> None:
        """Reuse the workspace from `mark` on (for a branch that runs instead of another)."""
        self.ws = dict(mark)

    def const_param(self, node: Node) -> str:
        """The parameter through which the caller passes array constant `node`."""
        c = node.attrs["value"]
        if c not in self.consts:
            self.consts[c] = (f"k{len(self.consts)}", node)
        return self.consts[c][0]


def _loops(shape: tuple[int, ...], stmt: Callable[[list[str]], str]) -> list[str]:
    """`stmt(index variables)` inside a loop nest over `shape` (relative indentation)."""
    idx = [f"j{k}" for k in range(len(shape))]
    out = [
        f"{'    ' * k}for {i} in range({n}):"
        for k, (i, n) in enumerate(zip(idx, shape, strict=True))
    ]
    return out + ["    " * len(shape) + stmt(idx)]


def _copy(dst: str, src: str, size: int) -> list[str]:
    """dst[:] = src for flat arrays of `size` elements, as a loop: Numba's slice assignment
    compiles a shape check whose error message alone takes seconds to compile."""
    if size <= 1:
        return [f"{dst}[0] = {src}[0]"] if size else []
    return [f"for j0 in range({size}):", f"    {dst}[j0] = {src}[j0]"]


def _fill(dst: str, value: str, size: int) -> list[str]:
    """dst[:] = value for a flat array of `size` elements, as a loop (see `_copy`)."""
    if size <= 1:
        return [f"{dst}[0] = {value}"] if size else []
    return [f"for j0 in range({size}):", f"    {dst}[j0] = {value}"]


def _at(name: str, idx: list[str]) -> str:
    return f"{name}[{', '.join(idx)}]" if idx else f"{name}[0]"


# ---------------------------------------------------------------------------------------------
# a graph's code inside a loop function


class Body:
    """Writes the code of one graph (a loop body, a condition, a branch) into a function:
    loop-invariant nodes into `pre` (run once per call; None: nothing is hoisted), the others
    into `loop`. `targets`: for a body output, the flat buffer it should be written into when
    the node computing it writes a buffer (the next carry, ys[t], a branch's result)."""

    def __init__(
        self,
        fn: Fn,
        graph: Graph,
        inputs: list[Val],
        pre: list[str] | None,
        loop: list[str],
        targets: dict[int, str] | None = None,
    ):
        self.fn = fn
        self.d = fn.gen.d
        self.e = fn.gen.d.e
        self.graph = graph
        self.inputs = inputs
        self.pre = pre
        self.loop = loop
        self.targets = dict(targets or {})  # id(node) -> flat buffer
        self.used: set[int] = set()  # ids of the nodes written into their target
        self.projs: dict[tuple[int, int], Node] = {}
        for m in graph.nodes:
            if m.op == "proj":
                self.projs[(id(m.inputs[0]), m.attrs["index"])] = m

    def run(self) -> list[Val]:
        vals: dict[int, Any] = {}
        for inp, v in zip(self.graph.inputs, self.inputs, strict=True):
            vals[id(inp)] = v
        for n in self.graph.nodes:
            if n.op == "input":
                continue
            ops = [vals[id(i)] for i in n.inputs]
            flat = [x for o in ops for x in (o if isinstance(o, list) else [o])]
            invariant = self.pre is not None and all(x.home is self.pre for x in flat)
            block = self.pre if invariant else self.loop
            assert block is not None
            if n.op == "const":
                block = self.pre if self.pre is not None else self.loop
            vals[id(n)] = LOOP_LOWERINGS[n.op](self, n, ops, block)
        return [vals[id(o)] for o in self.graph.outputs]

    # -- storage --------------------------------------------------------------------------
    def storage(self, n: Node, k: int | None, block: list[str]) -> str:
        """A flat buffer for result k of n (None: its only result): the output target of the
        node that holds it when it has one and runs every step, else workspace."""
        owner = n if k is None else self.projs.get((id(n), k))
        av = n.aval if k is None else n.aval.avals[k]  # type: ignore[union-attr]
        if owner is not None and block is not self.pre and id(owner) in self.targets:
            self.used.add(id(owner))
            return self.targets[id(owner)]
        return self.fn.alloc(av.dtype, av.size)

    # -- forms of a value -----------------------------------------------------------------
    def scalar(self, v: Val) -> str:
        if v.scalar is None:
            name = self.fn.local("s")
            src = _at(v.flat, ["0"]) if v.flat else _at(self.arr(v), ["0"] * v.ndim)
            v.home.append(f"{name} = {src}")
            v.scalar = name
        return v.scalar

    def flat(self, v: Val) -> str:
        """A flat C-contiguous array of v's elements (copied into workspace when needed)."""
        if v.flat is None:
            src = v.carr or (v.arr if v.layout == "C" else None)
            if src is not None:
                if v.ndim == 1:
                    v.flat = src
                else:
                    v.flat = self.fn.local("f")
                    v.home.append(f"{v.flat} = {src}.reshape({v.size})")
            elif v.scalar is not None and v.size == 1:
                v.flat = self.fn.alloc(v.dtype, 1)
                v.home.append(f"{v.flat}[0] = {v.scalar}")
            else:
                assert v.arr is not None
                v.flat = self.fn.alloc(v.dtype, v.size)
                dst = self.fn.local("c")
                v.home.append(f"{dst} = {v.flat}.reshape({v.shape})")
                v.home += _loops(v.shape, lambda ix: f"{_at(dst, ix)} = {_at(v.arr, ix)}")
                v.carr = dst
        return v.flat

    def carr(self, v: Val) -> str:
        """v as an N-d C-contiguous array (ndim >= 1)."""
        if v.carr is None:
            if v.arr is not None and v.layout == "C":
                v.carr = v.arr
            else:
                f = self.flat(v)
                if v.carr is None:
                    if v.ndim == 1:
                        v.carr = f
                    else:
                        v.carr = self.fn.local("a")
                        v.home.append(f"{v.carr} = {f}.reshape({v.shape})")
        return v.carr

    def arr(self, v: Val) -> str:
        """v as an N-d array of any layout."""
        return v.arr if v.arr is not None else self.carr(v)

    def copy_into(self, dst_flat: str, v: Val, block: list[str]) -> None:
        """Statements in `block` copying v's elements into flat buffer `dst_flat`."""
        if v.size == 0:
            return
        if v.flat is not None or v.carr is not None or (v.arr is not None and v.layout == "C"):
            block += _copy(dst_flat, self.flat(v), v.size)
        elif v.scalar is not None:
            block += _fill(dst_flat, v.scalar, v.size)
        else:
            dst = self.fn.local("c")
            block.append(f"{dst} = {dst_flat}.reshape({v.shape})")
            src = self.arr(v)
            block += _loops(v.shape, lambda ix: f"{_at(dst, ix)} = {_at(src, ix)}")

    def result(self, n: Node, flat: str, block: list[str], av: Any = None) -> Val:
        av = av or n.aval
        return Val(tuple(av.shape), av.dtype, block, flat=flat)


# ---------------------------------------------------------------------------------------------
# lowerings inside loops


@loop_lowering("const")
def _l_const(b: Body, n: Node, ops: list, block: list[str]) -> Val:
    arr = n.attrs["value"].value
    if arr.ndim == 0:
        return Val((), arr.dtype, block, scalar=b.e.lit(arr[()], arr.dtype))
    return Val(arr.shape, arr.dtype, block, flat=b.fn.const_param(n))


@loop_lowering("proj")
def _l_proj(b: Body, n: Node, ops: list, block: list[str]) -> Val:
    return ops[0][n.attrs["index"]]


def _inline(n: Node) -> bool:
    """A kernel over scalars (every value of shape (), no reduction): computed in locals."""
    body = n.attrs["body"]
    return all(
        m.aval.shape == () and REGISTRY[m.op].fusion in (Fusion.ELEMENTWISE, Fusion.VIEW)
        for m in body.equations
    )


@loop_lowering("fused")
def _l_fused(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val | list[Val]:
    body = n.attrs["body"]
    e = b.e
    if _inline(n):
        names: dict[int, str] = {}
        for i, v in zip(body.inputs, ops, strict=True):
            names[id(i)] = b.scalar(v)
        for m in body.nodes:
            if m.op == "const":
                names[id(m)] = e.lit(m.attrs["value"].value[()], m.dtype)
            elif m.op != "input":
                expr = emit_op(e, m, [names[id(i)] for i in m.inputs])
                names[id(m)] = b.fn.local()
                block.append(f"{names[id(m)]} = {_cast(m.dtype, expr)}")
        vals = [Val((), o.dtype, block, scalar=names[id(o)]) for o in body.outputs]
        return vals if isinstance(n.aval, TupleAval) else vals[0]
    kern = b.d.kernel_for(n)
    assert kern is not None
    tup = isinstance(n.aval, TupleAval)
    args = [b.flat(v) for v in ops]
    outs: dict[int, str] = {}
    for k in kern.full_outputs + kern.row_outputs:
        outs[k] = b.storage(n, k if tup else None, block)
    for k, kind in kern.red_outputs:
        av = kern.out_avals[k]
        outs[k] = b.storage(n, k if tup else None, block)
        block += _fill(outs[k], e.lit(reduce_identity(kind, av.dtype), av.dtype), av.size)
    order = kern.full_outputs + kern.row_outputs + [k for k, _ in kern.red_outputs]
    block.append(f"{kern.name}({', '.join(args + [outs[k] for k in order])}, 0, {kern.n0}, 0)")
    vals = [b.result(n, outs[k], block, kern.out_avals[k]) for k in range(len(kern.out_avals))]
    return vals if tup else vals[0]


def _reshaped(v: Val, shape: tuple[int, ...], b: Body) -> Val:
    """v's elements, in row-major order, as a value of `shape` (a view when v is contiguous)."""
    if v.flat is None and v.carr is None and not (v.arr is not None and v.layout == "C"):
        if v.scalar is not None and v.size == 1:
            return Val(shape, v.dtype, v.home, scalar=v.scalar)
    return Val(shape, v.dtype, v.home, flat=b.flat(v), scalar=v.scalar if v.size == 1 else None)


@loop_lowering("reshape")
def _l_reshape(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    return _reshaped(ops[0], n.shape, b)


@loop_lowering("transpose")
def _l_transpose(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    (x,) = ops
    perm = tuple(n.attrs["perm"])
    moved = [p for p in perm if x.shape[p] != 1]
    if moved == sorted(moved):  # only unit axes move: the same elements in the same order
        return _reshaped(x, n.shape, b)
    a = b.arr(x)
    name = b.fn.local("t")
    if x.ndim == 2:
        x.home.append(f"{name} = {a}.T")
        layout = {"C": "F", "F": "C"}.get(x.layout if x.arr is not None else "C", "A")
    else:
        x.home.append(f"{name} = {a}.transpose({perm})")
        layout = "A"
    return Val(n.shape, n.dtype, x.home, arr=name, layout=layout)


@loop_lowering("slice")
def _l_slice(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    (x,) = ops
    at = n.attrs
    if all(
        s == 0 and e == d and st == 1
        for s, e, st, d in zip(at["start"], at["stop"], at["step"], x.shape, strict=True)
    ):
        return x
    a = b.arr(x)
    parts = [
        f"{s}:{e}" if st == 1 else f"{s}:{e}:{st}"
        for s, e, st in zip(at["start"], at["stop"], at["step"], strict=True)
    ]
    name = b.fn.local("sl")
    x.home.append(f"{name} = {a}[{', '.join(parts)}]")
    contiguous = x.ndim == 1 and at["step"][0] == 1 and (x.arr is None or x.layout == "C")
    return Val(n.shape, n.dtype, x.home, arr=name, layout="C" if contiguous else "A")


@loop_lowering("flip")
def _l_flip(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    (x,) = ops
    axes = set(n.attrs["axes"])
    if all(x.shape[k] <= 1 for k in axes):
        return x
    a = b.arr(x)
    name = b.fn.local("fl")
    parts = ["::-1" if k in axes else ":" for k in range(x.ndim)]
    x.home.append(f"{name} = {a}[{', '.join(parts)}]")
    return Val(n.shape, n.dtype, x.home, arr=name, layout="A")


@loop_lowering("broadcast_to")
def _l_broadcast(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    (x,) = ops
    shape = tuple(n.shape)
    if x.size == math.prod(shape):
        return _reshaped(x, shape, b)
    out = b.storage(n, None, block)
    if x.size == 1:
        value = b.scalar(x) if x.shape == () else _at(b.flat(x), ["0"])
        block += _fill(out, value, n.aval.size)
        return b.result(n, out, block)
    src = b.arr(x)
    dst = b.fn.local("c")
    block.append(f"{dst} = {out}.reshape({shape})")
    lead = len(shape) - x.ndim

    def stmt(ix: list[str]) -> str:
        sx = ["0" if x.shape[k] == 1 else ix[lead + k] for k in range(x.ndim)]
        return f"{_at(dst, ix)} = {_at(src, sx)}"

    block += _loops(shape, stmt)
    return b.result(n, out, block)


@loop_lowering("concatenate")
def _l_concatenate(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    axis = n.attrs["axis"]
    out = b.storage(n, None, block)
    dst = b.fn.local("c")
    block.append(f"{dst} = {out}.reshape({tuple(n.shape)})")
    off = 0
    for x in ops:
        if x.size:
            src = b.arr(x)

            def stmt(ix: list[str], src: str = src, off: int = off) -> str:
                di = [f"{off} + {i}" if k == axis and off else i for k, i in enumerate(ix)]
                return f"{_at(dst, di)} = {_at(src, ix)}"

            block += _loops(x.shape, stmt)
        off += x.shape[axis]
    return b.result(n, out, block)


@loop_lowering("pad")
def _l_pad(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    (x,) = ops
    pads = n.attrs["pads"]
    out = b.storage(n, None, block)
    block += _fill(out, b.e.lit(n.attrs.get("value", 0.0), n.dtype), n.aval.size)
    if x.size:
        dst = b.fn.local("c")
        block.append(f"{dst} = {out}.reshape({tuple(n.shape)})")
        src = b.arr(x)

        def stmt(ix: list[str]) -> str:
            di = [f"{lo} + {i} * {it + 1}" for (lo, _, it), i in zip(pads, ix, strict=True)]
            return f"{_at(dst, di)} = {_at(src, ix)}"

        block += _loops(x.shape, stmt)
    return b.result(n, out, block)


@loop_lowering("gather")
def _l_gather(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    x, idx = ops[0], ops[1:]
    axis, k = n.attrs["axis"], len(ops) - 1
    bshape = tuple(n.shape[axis : len(n.shape) - (x.ndim - axis - k)])
    out = b.storage(n, None, block)
    if not n.aval.size:
        return b.result(n, out, block)
    dst = out  # a scalar result is element 0 of its flat buffer
    if n.shape != ():
        dst = b.fn.local("c")
        block.append(f"{dst} = {out}.reshape({tuple(n.shape)})")
    src = b.arr(x)
    reads = [b.scalar(i) if i.shape == () else b.arr(i) for i in idx]
    q = [b.fn.local("q") for _ in idx]
    nb = len(bshape)
    # (relative indentation) the index checks and the copy, innermost
    shape = tuple(n.shape)
    lines = _loops(shape, lambda ix: "")[:-1]
    ind = "    " * len(shape)
    ix = [f"j{m}" for m in range(len(shape))]
    for j, (i, r) in enumerate(zip(idx, reads, strict=True)):
        lead = nb - i.ndim
        at = [("0" if i.shape[m] == 1 else ix[axis + lead + m]) for m in range(i.ndim)]
        lines.append(f"{ind}{q[j]} = np.int64({r if i.shape == () else _at(r, at)})")
        size = x.shape[axis + j]
        lines.append(f"{ind}if {q[j]} < 0:")
        lines.append(f"{ind}    {q[j]} += {size}")
        lines.append(f"{ind}if {q[j]} < 0 or {q[j]} >= {size}:")
        lines.append(
            f"{ind}    raise IndexError('gather: an index is out of bounds for axis "
            f"{axis + j} with size {size}')"
        )
    sx = ix[:axis] + q + ix[axis + nb :]
    lines.append(f"{ind}{_at(dst, ix)} = {_at(src, sx)}")
    block += lines
    return b.result(n, out, block)


@loop_lowering("argmax", "argmin")
def _l_argext(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    # the first extreme, or the first NaN (as NumPy): a strict comparison keeps the first
    (x,) = ops
    axis = n.attrs["axis"]
    better = ">" if n.op == "argmax" else "<"
    out = b.storage(n, None, block)
    best, at, v = b.fn.local("best"), b.fn.local("at"), b.fn.local("e")
    if axis is None:
        src, kept, size = b.flat(x), (), x.size
    else:
        src = b.arr(x)
        kept = tuple(d for k, d in enumerate(x.shape) if k != axis)
        size = x.shape[axis]
    lines = _loops(kept, lambda ix: "")[:-1]
    ind = "    " * len(kept)
    ix = [f"j{k}" for k in range(len(kept))]

    def read(j: str) -> str:
        if axis is None:
            return f"{src}[{j}]"
        return _at(src, ix[:axis] + [j] + ix[axis:])

    q = b.fn.local("q")
    lines += [
        f"{ind}{at} = 0",
        f"{ind}{best} = {read('0')}",
        f"{ind}for {q} in range({size}):",
        f"{ind}    {v} = {read(q)}",
        f"{ind}    if {v} != {v}:",
        f"{ind}        {at} = {q}",
        f"{ind}        break",
        f"{ind}    if {v} {better} {best}:",
        f"{ind}        {best} = {v}",
        f"{ind}        {at} = {q}",
        f"{ind}{_at(out, [_flat_index(kept, ix)])} = {at}",
    ]
    block += lines
    return b.result(n, out, block)


def _flat_index(shape: tuple[int, ...], ix: list[str]) -> str:
    """The row-major offset of index `ix` in an array of `shape`."""
    terms, stride = [], 1
    for d, i in reversed(list(zip(shape, ix, strict=True))):
        terms.append(i if stride == 1 else f"{i} * {stride}")
        stride *= d
    return " + ".join(reversed(terms)) if terms else "0"


@loop_lowering("check")
def _l_check(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    # a run-time check (a reverse-mode while_loop's trip bound): the error its reference raises
    pred, x = ops
    block.append(f"if {b.scalar(pred)}:")
    block.append(f"    raise _TripLimitError({n.attrs['message']!r})")
    return x


def _matmul_batches(n: Node) -> bool:
    """Whether each operand's batch axes are either the result's or all of size 1."""
    out_batch = n.shape[:-2]
    for x in n.inputs:
        batch = (1,) * (len(out_batch) - (x.aval.ndim - 2)) + tuple(x.shape[:-2])
        if math.prod(batch) not in (1, math.prod(out_batch)) or (
            math.prod(batch) > 1 and batch != tuple(out_batch)
        ):
            return False
    return True


@loop_lowering("matmul")
def _l_matmul(b: Body, n: Node, ops: list[Val], block: list[str]) -> Val:
    x, y = ops
    m, k = x.shape[-2:]
    nn = y.shape[-1]
    out = b.storage(n, None, block)
    nb = math.prod(n.shape[:-2])
    blas = n.dtype.kind == "f" and _blas()

    def operand(v: Val) -> tuple[str, str]:
        """v as 2-d matrices (3-d: a stack of them) and their layout, C or F."""
        if nb == 1 and v.ndim == 2 and v.arr is not None and v.layout in "CF":
            return v.arr, v.layout  # a transposed operand is read as it is: BLAS transposes
        if nb == 1 and v.ndim == 2:
            return b.carr(v), "C"
        name = b.fn.local("mm")
        shape = v.shape[-2:] if nb == 1 else (math.prod(v.shape[:-2]), *v.shape[-2:])
        v.home.append(f"{name} = {b.flat(v)}.reshape({shape})")
        return name, "C"

    (a, la), (c, lc) = operand(x), operand(y)
    dst = b.fn.local("c")
    block.append(f"{dst} = {out}.reshape({(nb, m, nn) if nb > 1 else (m, nn)})")
    product = b.fn.gen.dot(n.dtype, la, lc) if blas else None

    def call(a: str, c: str, o: str) -> list[str]:
        if product is not None:
            return [f"{product}({a}, {c}, {o})"]
        acc = b.fn.local("acc")  # integers (no BLAS), or no SciPy for Numba to reach BLAS
        zero = b.e.lit(0, n.dtype)
        return [
            f"for j0 in range({m}):",
            f"    for j1 in range({nn}):",
            f"        {acc} = {zero}",
            f"        for j2 in range({k}):",
            f"            {acc} = {_cast(n.dtype, f'{acc} + {a}[j0, j2] * {c}[j2, j1]')}",
            f"        {o}[j0, j1] = {acc}",
        ]

    if nb == 1:
        block += call(a, c, dst)
    else:
        q = b.fn.local("q")
        ai = f"{a}[{q}]" if math.prod(x.shape[:-2]) > 1 else f"{a}[0]"
        ci = f"{c}[{q}]" if math.prod(y.shape[:-2]) > 1 else f"{c}[0]"
        block.append(f"for {q} in range({nb}):")
        block += ["    " + ln for ln in call(ai, ci, f"{dst}[{q}]")]
    return b.result(n, out, block)


def _call_region(b: Body, n: Node, ops: list[Val], block: list[str]) -> list[Val]:
    """A loop or branch inside a body: a call of its own function."""
    fn = b.fn.gen.functions_by_node[id(n)]
    args = [b.flat(v) for v in ops]
    args += [b.fn.const_param(c) for c in fn.consts]
    results = n.aval.avals  # type: ignore[union-attr]  # this node's: a shared fn has others'
    outs = [b.storage(n, k, block) for k in range(len(results))]
    ws = [b.fn.alloc(np.dtype(dt), size) for dt, size in sorted(fn.workspace.items())]
    tail = [str(n.attrs["length"])] if fn.takes_length else []
    block.append(f"{fn.name}({', '.join(args + outs + ws + tail)})")
    return [b.result(n, o, block, av) for o, av in zip(outs, results, strict=True)]


for _op in ("scan", "while_loop", "cond"):
    loop_lowering(_op)(_call_region)


# ---------------------------------------------------------------------------------------------
# the functions


def _indent(lines: list[str], depth: int) -> list[str]:
    return ["    " * depth + ln for ln in lines]


@dataclass
class _Carries:
    """A loop's carries: scalar ones in locals, array ones in two buffers that swap."""

    vals: list[Val] = field(default_factory=list)
    cur: list[str | None] = field(default_factory=list)  # the buffer read this step
    nxt: list[str | None] = field(default_factory=list)  # the buffer written this step


def _carries(
    fn: Fn,
    nodes: list[Node],
    params: list[str],
    outs: list[str],
    pre: list[str],
    loop: list[str],
    parity: str | None,
) -> _Carries:
    """Set up the carries of a loop from their initial values (`params`, flat) and result
    buffers (`outs`). `parity`: an expression true when an even number of steps will run (the
    first buffer is then the result itself); None when unknown (a while_loop: the result is
    copied at the end when needed)."""
    c = _Carries()
    for k, (node, p, o) in enumerate(zip(nodes, params, outs, strict=True)):
        av = node.aval
        if av.shape == ():
            name = f"carry{k}"
            pre.append(f"{name} = {_cast(av.dtype, f'{p}[0]')}")
            c.vals.append(Val((), av.dtype, loop, scalar=name))
            c.cur.append(None)
            c.nxt.append(None)
            continue
        other = fn.alloc(av.dtype, av.size)
        cur, nxt = f"cur{k}", f"nxt{k}"
        if parity is None:
            pre.append(f"{cur}, {nxt} = {o}, {other}")
        else:
            pre += [
                f"if {parity}:",
                f"    {cur}, {nxt} = {o}, {other}",
                "else:",
                f"    {cur}, {nxt} = {other}, {o}",
            ]
        pre += _copy(cur, p, av.size)
        c.vals.append(Val(tuple(av.shape), av.dtype, loop, flat=cur))
        c.cur.append(cur)
        c.nxt.append(nxt)
    return c


@dataclass
class _Targets:
    """Where a body's outputs are written in place: buffer by node (what `Body` reads), and the
    node whose buffer it is by output position."""

    by_node: dict[int, str] = field(default_factory=dict)
    by_pos: dict[int, int] = field(default_factory=dict)

    def written(self, body: Body, pos: int) -> bool:
        """Whether output `pos` is already in its buffer (its node wrote it there)."""
        return pos in self.by_pos and self.by_pos[pos] in body.used


def _targets(graph: Graph, wanted: dict[int, str]) -> _Targets:
    """In-place targets for the output positions in `wanted` (position -> flat buffer): for
    each output computed by the body (not an input or a constant), at its first position. A
    reshape passes its target on to its operand when nothing else reads that (a product's
    result reshaped to a vector is written where the vector belongs)."""
    readers: dict[int, int] = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers[id(i)] = readers.get(id(i), 0) + 1
    outputs = {id(o) for o in graph.outputs}
    t = _Targets()
    for pos, o in enumerate(graph.outputs):
        if pos not in wanted or o.op in ("input", "const") or id(o) in t.by_node:
            continue
        if next(k for k, p in enumerate(graph.outputs) if p is o) != pos:
            continue
        node = o
        while (
            node.op == "reshape"
            and node.inputs[0].op not in ("input", "const")
            and readers.get(id(node.inputs[0])) == 1
            and id(node.inputs[0]) not in outputs
        ):
            node = node.inputs[0]
        t.by_node[id(node)] = wanted[pos]
        t.by_pos[pos] = id(node)
    return t


def _step_end(
    body: Body,
    values: list[Val],
    carries: _Carries,
    targets: _Targets,
    ys: list[tuple[Val, str, str]],
) -> None:
    """The end of a step: copy what was not written in place, then the scalar carries, then
    swap the carry buffers. `ys`: (value, its flat slot for this step, the scalar slot)."""
    loop = body.loop
    n = len(carries.vals)
    for k in range(n):
        nxt = carries.nxt[k]
        if nxt is not None and not targets.written(body, k):
            body.copy_into(nxt, values[k], loop)
    for j, (v, slot, scalar_slot) in enumerate(ys):
        if v.shape == ():
            loop.append(f"{scalar_slot} = {body.scalar(v)}")
        elif not targets.written(body, n + j):
            body.copy_into(slot, v, loop)
    scalars = [k for k in range(n) if carries.nxt[k] is None]
    if scalars:
        lhs = ", ".join(carries.vals[k].scalar for k in scalars)  # type: ignore[misc]
        rhs = ", ".join(_cast(values[k].dtype, body.scalar(values[k])) for k in scalars)
        loop.append(f"{lhs} = {rhs}")
    for k in range(n):
        if carries.nxt[k] is not None:
            loop.append(f"{carries.cur[k]}, {carries.nxt[k]} = {carries.nxt[k]}, {carries.cur[k]}")


def _finish(
    fn: Fn,
    head: str,
    node: Node,
    parts: list[str],
    takes_length: bool,
    outs: list[str],
    ins: list[str],
) -> LoopFn:
    """Assemble the function: parameters, workspace views, code."""
    ws = sorted(fn.ws_high)
    params = list(ins) + [p for p, _ in fn.consts.values()] + outs + [f"ws_{dt}" for dt in ws]
    types = (
        [f"_ro({_nb_type(i.dtype)})" for i in node.inputs]
        + [f"_ro({_nb_type(c.dtype)})" for _, c in fn.consts.values()]
        + [f"_rw({_nb_type(av.dtype)})" for av in node.aval.avals]  # type: ignore[union-attr]
        + [f"_rw({_nb_type(np.dtype(dt))})" for dt in ws]
    )
    if takes_length:
        params.append("T")
        types.append("_nb.int64")
    lines = [f"def {fn.name}({', '.join(params)}):"]
    lines += [f"    # {ln}" for ln in head.splitlines()]
    body = fn.carve + parts
    lines += _indent(body or ["pass"], 1)
    return LoopFn(
        fn.name,
        "\n".join(lines),
        "_nb.void(" + ", ".join(types) + ")",
        [c for _, c in fn.consts.values()],
        list(node.aval.avals),  # type: ignore[union-attr]
        dict(fn.ws_high),
        takes_length,
    )


def _head(node: Node) -> str:
    """The comment heading a loop function: what it runs (its regions' IR, not its trip count,
    so the function's text is the same for every length)."""
    parts = [
        f"{node.op}: "
        + ", ".join(
            f"{k}={v}"
            for k, v in sorted(node.attrs.items())
            if not isinstance(v, (Graph, tuple)) and k != "length"
        )
    ]
    for k, v in sorted(node.attrs.items()):
        graphs = (
            [v]
            if isinstance(v, Graph)
            else [g for g in v if isinstance(g, Graph)]
            if isinstance(v, tuple)
            else []
        )
        for j, g in enumerate(graphs):
            label = k if isinstance(v, Graph) else f"{k}[{j}]"
            parts.append(f"{label} = " + print_graph(g, nested=True))
    return "\n".join(parts)


def _emit_scan(gen: LoopCodegen, node: Node, name: str) -> LoopFn:
    a = node.attrs
    body, nc, ncar = a["body"], a["n_consts"], a["n_carry"]
    fn = Fn(gen, name)
    ins = [f"in{k}" for k in range(len(node.inputs))]
    outs = [f"out{k}" for k in range(len(node.aval.avals))]  # type: ignore[union-attr]
    pre: list[str] = []
    loop: list[str] = []
    consts, init, xs = scan_parts(nc, ncar, list(zip(node.inputs, ins, strict=True)))
    const_vals = [Val(tuple(c.shape), c.dtype, pre, flat=p) for c, p in consts]
    carries = _carries(
        fn, [c for c, _ in init], [p for _, p in init], outs[:ncar], pre, loop, "T % 2 == 0"
    )
    x_vals = []
    for x, p in xs:
        step = tuple(x.shape[1:])
        size = math.prod(step)
        if step == ():
            s = fn.local("x")
            loop.append(f"{s} = {p}[t]")
            x_vals.append(Val((), x.dtype, loop, scalar=s))
        else:
            f = fn.local("x")
            loop.append(f"{f} = {p}[t * {size}:t * {size} + {size}]")
            x_vals.append(Val(step, x.dtype, loop, flat=f))
    ys: list[tuple[Val | None, str, str]] = []
    wanted: dict[int, str] = {}
    for k, c in enumerate(carries.nxt):
        if c is not None:
            wanted[k] = c
    y_slots = []
    for j, av in enumerate(node.aval.avals[ncar:]):  # type: ignore[union-attr]
        o = outs[ncar + j]
        step = tuple(av.shape[1:])
        size = math.prod(step)
        if step != () and size:
            slot = fn.local("y")
            loop.append(f"{slot} = {o}[t * {size}:t * {size} + {size}]")
            wanted[ncar + j] = slot
        else:
            slot = ""
        y_slots.append((slot, f"{o}[t]"))
    targets = _targets(body, wanted)
    b = Body(fn, body, const_vals + carries.vals + x_vals, pre, loop, targets.by_node)
    values = b.run()
    ys = [(v, s, ss) for v, (s, ss) in zip(values[ncar:], y_slots, strict=True)]
    _step_end(b, values, carries, targets, ys)  # type: ignore[arg-type]
    post = [
        f"{outs[k]}[0] = {carries.vals[k].scalar}" for k in range(ncar) if carries.nxt[k] is None
    ]
    head = "for t in range(T - 1, -1, -1):" if a["reverse"] else "for t in range(T):"
    parts = pre + [head] + _indent(loop or ["pass"], 1) + post
    return _finish(fn, _head(node), node, parts, True, outs, ins)


def _emit_while(gen: LoopCodegen, node: Node, name: str) -> LoopFn:
    a = node.attrs
    cond, body = a["cond"], a["body"]
    nc, nb, max_trips = a["n_cond_consts"], a["n_body_consts"], a["max_trips"]
    fn = Fn(gen, name)
    ins = [f"in{k}" for k in range(len(node.inputs))]
    outs = [f"out{k}" for k in range(len(node.aval.avals))]  # type: ignore[union-attr]
    pre: list[str] = []
    loop: list[str] = []
    ops = list(zip(node.inputs, ins, strict=True))
    cconsts, bconsts, init = ops[:nc], ops[nc : nc + nb], ops[nc + nb :]
    cvals = [Val(tuple(c.shape), c.dtype, pre, flat=p) for c, p in cconsts]
    bvals = [Val(tuple(c.shape), c.dtype, pre, flat=p) for c, p in bconsts]
    carries = _carries(fn, [c for c, _ in init], [p for _, p in init], outs, pre, loop, None)
    cb = Body(fn, cond, cvals + carries.vals, pre, loop)
    (test,) = cb.run()
    loop.append(f"if not {cb.scalar(test)}:")
    loop.append("    break")
    if max_trips is not None:
        loop.append(f"if trips == {max_trips}:")
        loop.append(
            "    raise _TripLimitError('while_loop: the condition still holds after "
            f"max_trips={max_trips} trips')"
        )
    wanted = {k: c for k, c in enumerate(carries.nxt) if c is not None}
    targets = _targets(body, wanted)
    b = Body(fn, body, bvals + carries.vals, pre, loop, targets.by_node)
    values = b.run()
    _step_end(b, values, carries, targets, [])
    loop.append("trips += 1")
    post = []
    for k, cur in enumerate(carries.cur):
        if cur is None:
            post.append(f"{outs[k]}[0] = {carries.vals[k].scalar}")
        else:  # after an odd number of trips the last carry is in the other buffer
            size = node.aval.avals[k].size  # type: ignore[union-attr]
            post += ["if trips % 2 == 1:"] + _indent(_copy(outs[k], cur, size) or ["pass"], 1)
    parts = pre + ["trips = 0", "while True:"] + _indent(loop, 1) + post
    return _finish(fn, _head(node), node, parts, False, outs, ins)


def _emit_cond(gen: LoopCodegen, node: Node, name: str) -> LoopFn:
    branches = node.attrs["branches"]
    fn = Fn(gen, name)
    ins = [f"in{k}" for k in range(len(node.inputs))]
    outs = [f"out{k}" for k in range(len(node.aval.avals))]  # type: ignore[union-attr]
    index = node.inputs[0]
    if index.dtype == np.bool_:
        parts = [f"branch = 1 if {ins[0]}[0] else 0"]
    else:  # clamped into range, as graphc.switch does
        parts = [f"branch = min(max(np.int64({ins[0]}[0]), 0), {len(branches) - 1})"]
    mark = fn.mark()
    for j, g in enumerate(branches):
        fn.reset(mark)  # only one branch runs: they share the workspace
        block: list[str] = []
        vals = [
            Val(tuple(x.shape), x.dtype, block, flat=p)
            for x, p in zip(node.inputs[1:], ins[1:], strict=True)
        ]
        wanted = {k: o for k, o in enumerate(outs) if g.outputs[k].aval.shape != ()}
        targets = _targets(g, wanted)
        b = Body(fn, g, vals, None, block, targets.by_node)
        values = b.run()
        for k, (v, o) in enumerate(zip(values, outs, strict=True)):
            if v.shape == ():
                block.append(f"{o}[0] = {b.scalar(v)}")
            elif not targets.written(b, k):
                b.copy_into(o, v, block)
        if len(branches) == 1:
            parts += block
        else:
            parts.append(
                f"{'if' if j == 0 else 'elif'} branch == {j}:" if j < len(branches) - 1 else "else:"
            )
            parts += _indent(block or ["pass"], 1)
    return _finish(fn, _head(node), node, parts, False, outs, ins)


_EMIT = {"scan": _emit_scan, "while_loop": _emit_while, "cond": _emit_cond}


class LoopCodegen:
    """The loop functions of one graph's module, in the order they are defined (inner loops
    before the loops that call them); functions of equal code are written once."""

    def __init__(self, d: Driver):
        self.d = d
        self.functions: list[LoopFn] = []
        self.functions_by_node: dict[int, LoopFn] = {}
        self.by_code: dict[str, LoopFn] = {}
        self.dots: dict[tuple[str, str, str], str] = {}  # (dtype, layouts) -> module global

    def dot(self, dt: np.dtype, a_layout: str, b_layout: str) -> str:
        """The module global holding the compiled matrix product for these operands
        (`blas.dot`)."""
        key = (np.dtype(dt).name, a_layout, b_layout)
        if key not in self.dots:
            self.dots[key] = f"_dot_{key[0]}_{a_layout}{b_layout}"
        return self.dots[key]

    def globals(self) -> list[str]:
        """Module-level definitions the loop functions read (their matrix products)."""
        return [
            f'{name} = _dot("{dt}", "{la}", "{lb}")' for (dt, la, lb), name in self.dots.items()
        ]

    def function(self, node: Node) -> LoopFn:
        """The function of region node `node`, with those of the regions inside it (written
        innermost first, from a worklist over the nesting)."""
        order: list[Node] = []
        work = [node]
        while work:
            n = work.pop()
            if id(n) in self.functions_by_node:
                continue
            order.append(n)
            for g in _region_graphs(n):
                work.extend(m for m in g.nodes if m.op in _EMIT)
        for n in reversed(order):  # every region's inner regions come later in `order`
            if id(n) in self.functions_by_node:
                continue
            name = f"loop{len(self.functions)}"
            fn = _EMIT[n.op](self, n, name)
            key = fn.signature + "\n" + _code(fn.source)
            prev = self.by_code.get(key)
            if prev is None:
                self.by_code[key] = fn
                self.functions.append(fn)
            else:
                fn = prev
            self.functions_by_node[id(n)] = fn
        return self.functions_by_node[id(node)]


def _code(source: str) -> str:
    lines = source.split("\n")[1:]
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith("#"))


def lower_region(d: Driver, n: Node, v: str, a: list[str]) -> tuple[list[str] | None, str | None]:
    """The driver's statements calling the function of loop or branch node n, or (None, why)
    when its bodies do not compile (the loop then runs in Python)."""
    why = why_not_compiled(n)
    if why is not None:
        return None, f"{why}: the loop runs in Python, each step in the reference interpreter"
    if d.loops is None:
        d.loops = LoopCodegen(d)
    fn = d.loops.function(n)
    args = [d.flat.get(id(i)) or f"_flat({x})" for i, x in zip(n.inputs, a, strict=True)]
    for c in fn.consts:
        key = f"K{len(d.consts)}"
        d.consts[key] = c.attrs["value"].value.reshape(-1)
        args.append(f"_K['{key}']")
    lines = []
    owners = d._result_owners(n)
    outs = []
    results = n.aval.avals  # type: ignore[union-attr]  # this node's: a shared fn has others'
    for k, av in enumerate(results):
        o = f"{v}_o{k}"
        lines.append(f"{o} = {d.storage.buffer(owners[k], av.size, av.dtype)}")
        outs.append(o)
    ws = [
        f"_buf(bufs, '{v}_ws_{dt}', {size}, np.{dt})" for dt, size in sorted(fn.workspace.items())
    ]
    tail = [str(n.attrs["length"])] if fn.takes_length else []
    lines.append(f"{fn.name}({', '.join(args + outs + ws + tail)})")
    parts = [f"{o}.reshape({tuple(av.shape)})" for o, av in zip(outs, results, strict=True)]
    lines.append(f"{v} = ({', '.join(parts)},)")
    d.flat_parts[id(n)] = list(outs)
    return lines, None
