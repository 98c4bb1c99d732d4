"""Driver generation: an optimized Graph -> the source of its module (kernels and `run`).

Each fused node becomes one kernel (`kernels`), or with its neighbours one run of the tape
machine (`vm`) when they are large. Every other node is lowered to driver code by its entry in
the lowering table (`LOWERINGS`, filled by `@lowering(op)`): matrix products go to BLAS
through `np.matmul(..., out=)`, movement ops become NumPy views. An op without an entry calls
the dedicated kernel its op entry names (`lowering=Dedicated(NAME)`, `special`), else its NumPy
reference (a fallback, listed in `Driver.fallbacks`). A loop or branch calls its own compiled
function (`loops`), written after the kernels. Storage comes from `buffers`; the module imports
what it calls at run time from `runtime`.

Example:
    >>> source, driver = generate(optimized_graph)
    >>> driver.fallbacks
    []
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from graphc.codegen import cache, vm
from graphc.codegen.buffers import StoragePlan
from graphc.ir import Graph, Node, TupleAval, dtype_name, fmt_value, node_names, print_graph
from graphc.ops import REGISTRY, Dedicated

if TYPE_CHECKING:
    from graphc.codegen.kernels import Kernel

VM_MIN_OPS = 128  # kernels (or runs of kernels) at least this big run on the tape machine


def use_vm() -> bool:
    """Whether large kernels may run on the tape machine (GRAPHC_VM, on unless "0" or "")."""
    return os.environ.get("GRAPHC_VM", "1") not in ("", "0")


# ---------------------------------------------------------------------------------------------
# the lowering table


# a lowering: (driver, node, the node's variable, its operands' variables) -> driver statements
Lowering = Callable[["Driver", Node, str, list[str]], list[str]]


@dataclass(frozen=True)
class LoweringEntry:
    """How the driver computes one op: `lower` writes the statements; `view` says its result is
    a view of its first operand (sharing that operand's storage), `allocates` that its result
    is stored in a buffer the driver plans (`buffers.StoragePlan`)."""

    lower: Lowering
    view: bool = False
    allocates: bool = False


LOWERINGS: dict[str, LoweringEntry] = {}


def lowering(*ops: str, view: bool = False, allocates: bool = False) -> Callable:
    """Register the driver's lowering of `ops`: one entry per op, read by `Driver.build`.

    Example:
        >>> @lowering("roll")   # a new op: one entry
        ... def _roll(d, n, v, a):
        ...     return [f"{v} = np.roll({a[0]}, {n.attrs['shift']}, {n.attrs['axis']})"]
    """

    def register(fn: Lowering) -> Lowering:
        for op in ops:
            if op in LOWERINGS:
                raise ValueError(f"op {op!r} already has a driver lowering")
            LOWERINGS[op] = LoweringEntry(fn, view, allocates)
        return fn

    return register


@lowering("proj")
def _proj(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    k = n.attrs["index"]
    part = d.flat_parts.get(id(n.inputs[0]), [])
    if k < len(part) and part[k]:
        d.flat[id(n)] = part[k]
    return [f"{v} = {a[0]}[{k}]"]


@lowering("reshape", view=True)
def _reshape(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    return [f"{v} = {a[0]}.reshape({tuple(n.attrs['shape'])})"]


@lowering("transpose", view=True)
def _transpose(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    return [f"{v} = {a[0]}.transpose({tuple(n.attrs['perm'])})"]


@lowering("broadcast_to", view=True)
def _broadcast_to(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    return [f"{v} = np.broadcast_to({a[0]}, {tuple(n.attrs['shape'])})"]


@lowering("slice", view=True)
def _slice(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    at = n.attrs
    sl = ", ".join(
        f"{s}:{e}:{st}" for s, e, st in zip(at["start"], at["stop"], at["step"], strict=True)
    )
    return [f"{v} = {a[0]}[{sl}]" if sl else f"{v} = {a[0]}"]


@lowering("flip", view=True)
def _flip(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    return [f"{v} = np.flip({a[0]}, {tuple(n.attrs['axes'])})"]


@lowering("matmul", allocates=True)
def _matmul(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    d.flat[id(n)] = f"{v}_b"
    return [
        f"{v}_b = {d.storage.buffer(n, n.aval.size, n.dtype)}",
        f"{v} = np.matmul({a[0]}, {a[1]}, out={v}_b.reshape({n.shape}))",
    ]


@lowering("fused")
def _fused(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    # storage of kernel results is planned structurally (`buffers`): a tuple-valued kernel's
    # results belong to its `proj`s
    lines = d.kernel(n, v)
    return lines if lines is not None else _by_op_entry(d, n, v, a)


@lowering("scan", "while_loop", "cond")
def _region(d: Driver, n: Node, v: str, a: list[str]) -> list[str]:
    # one compiled function per loop or branch (`loops`); a body it cannot compile keeps the
    # loop in Python, through the op's reference implementation
    from graphc.codegen.loops import lower_region

    lines, why = lower_region(d, n, v, a)
    return lines if lines is not None else _by_op_entry(d, n, v, a, why)


def _by_op_entry(d: Driver, n: Node, v: str, a: list[str], why: str | None = None) -> list[str]:
    """Ops without a lowering of their own: the dedicated compiled kernel their op entry names
    (conv, pooling, gather, ...), else their NumPy reference (`why` says why, when known)."""
    key = f"A{len(d.consts)}"
    d.consts[key] = dict(n.attrs)  # type: ignore[assignment]
    kernel = special_kernel(n.op)
    if kernel is not None:
        return [f"{v} = _call({kernel!r}, _K['{key}'], {', '.join(a)})"]
    d.fallbacks.append(f"{n.op} ({why or 'runs its NumPy implementation'})")
    return [f"{v} = _impl({n.op!r}, _K['{key}'], {', '.join(a)})"]


def special_kernel(op: str) -> str | None:
    """The dedicated kernel an op's registry entry names (`lowering=Dedicated(NAME)`)."""
    low = REGISTRY[op].lowering
    if not isinstance(low, Dedicated):
        return None
    try:
        from graphc.codegen import special
    except ImportError:
        return None
    return low.name if low.name in getattr(special, "KERNELS", {}) else None


# ---------------------------------------------------------------------------------------------
# the driver


class Driver:
    """The generator of one graph's module: `build` writes `run`'s body into `lines`, and
    collects the kernels, constants, tape-machine programs and fallbacks it needs."""

    def __init__(self, graph: Graph):
        from graphc.codegen.kernels import EmitContext

        self.graph = graph
        self.e = EmitContext()
        self.lines: list[str] = []
        self.kernels: list = []
        self.kernel_src: list[str] = []
        self.fallbacks: list[str] = []
        self.consts: dict[str, np.ndarray] = {}
        self.names: dict[int, str] = {}
        self.storage: StoragePlan | None = None  # made by build()
        self.vm_programs: list = []
        # id(node) -> a driver variable holding its value as the flat, contiguous array a
        # kernel takes (kernel results): passed as it is instead of through _flat()
        self.flat: dict[int, str] = {}
        self.kernel_by_key: dict[str, Any] = {}  # cache.kernel_key -> the kernel emitted for it
        self.keys: dict[str, str] = {}  # kernel name -> its key
        self.shared: dict[str, int] = {}  # kernel name -> call sites, when more than one
        self.flat_parts: dict[int, list[str | None]] = {}  # per result of a multi-output kernel
        self.line_nodes: list[tuple[int, Node | None]] = []  # (index in self.lines, node)
        self.loops: Any = None  # the loop functions' generator (`loops`), made on first use
        self._projs: dict[int, list[Node]] | None = None
        # id(fused node) -> its tape-machine profile (`_vm_profile`); the graph keeps the nodes
        # alive while the driver is built, so their ids stay theirs
        self._profiles: dict[int, tuple[tuple[int, ...], np.dtype] | None] = {}
        self._readers: dict[int, list[Node]] | None = None

    def projections(self, f: Node) -> list[Node]:
        """The `proj` nodes reading fused node f's results (one index for the whole graph, so
        asking for every kernel stays linear in the graph's size)."""
        if self._projs is None:
            self._projs = {}
            for m in self.graph.nodes:
                if m.op == "proj":
                    self._projs.setdefault(id(m.inputs[0]), []).append(m)
        return self._projs.get(id(f), [])

    def readers(self) -> dict[int, list[Node]]:
        """id(node) -> the nodes reading it, once per use: one index for the whole graph, so
        that each tape-machine batch does not walk the graph again."""
        if self._readers is None:
            self._readers = {}
            for m in self.graph.nodes:
                for i in m.inputs:
                    self._readers.setdefault(id(i), []).append(m)
        return self._readers

    # -- naming -----------------------------------------------------------------------------
    def ir_names(self) -> dict[int, str]:
        return node_names(self.graph)

    def build(self) -> str:
        g = self.graph
        irn = self.ir_names()
        nodes = g.nodes
        views = {op for op, e in LOWERINGS.items() if e.view}
        allocates = {op for op, e in LOWERINGS.items() if e.allocates}
        self.storage = StoragePlan(nodes, g.outputs, views, allocates)
        for k, n in enumerate(g.inputs):
            self.names[id(n)] = f"in{k}"
        self.lines.append(
            "    "
            + ", ".join(self.names[id(n)] for n in g.inputs)
            + (", = args" if len(g.inputs) == 1 else " = args")
            if g.inputs
            else "    pass"
        )
        k = 0
        while k < len(nodes):
            n = nodes[k]
            k += 1
            if n.op == "input":
                continue
            if n.op == "fused" and use_vm() and self._vm_profile(n) is not None:
                batch, rest = self._vm_batch(nodes, k - 1)
                if sum(len(f.attrs["body"].equations) for f in batch) >= VM_MIN_OPS:
                    for c in rest:  # constants met inside the batch: no inputs, emit first
                        self._name(c, irn)
                        self._const(c, self.names[id(c)])
                    self.line_nodes.append((len(self.lines), batch[0]))
                    self._emit_vm(batch, irn)
                    k = self._skip_batch(nodes, k - 1, batch, rest)
                    continue
            v = self._name(n, irn)
            if n.op == "const":
                self._const(n, v)
                continue
            self.line_nodes.append((len(self.lines), n))
            self.lines.append(f"    # {_ir_line(n, irn)}")
            self._lower(n, v)
        self.line_nodes.append((len(self.lines), None))  # returning: no node's code
        outs = [self._output(o) for o in g.outputs]
        self.lines.append(f"    return [{', '.join(outs)}]")
        return "\n".join(self.lines)

    def const_defs(self) -> dict[str, str]:
        """Module-level constant name -> its source text."""
        return {name: src for src, name in self.e.consts.items()}

    def _name(self, n: Node, irn: dict[int, str]) -> str:
        if id(n) not in self.names:
            name = irn[id(n)]
            self.names[id(n)] = f"v_{name}" if name.isidentifier() else f"v{len(self.names)}"
        return self.names[id(n)]

    # -- the tape machine -------------------------------------------------------------------
    def _vm_batch(self, nodes: list[Node], start: int) -> tuple[list[Node], list[Node]]:
        """The longest run of machine-eligible kernels from nodes[start] over one space and
        dtype, none reading a reduction computed inside the run; and constants met on the way."""
        first = nodes[start]
        profile = self._vm_profile(first)
        batch, consts = [first], []
        in_batch = {id(first)}
        reduced: set[int] = set(self._reduction_results(first))
        for k in range(start + 1, len(nodes)):
            m = nodes[k]
            if m.op == "proj" and id(m.inputs[0]) in in_batch:
                continue
            if m.op == "const":
                consts.append(m)
                continue
            if not (m.op == "fused" and self._vm_profile(m) == profile):
                break
            if any(id(i) in reduced for i in m.inputs):
                break
            batch.append(m)
            in_batch.add(id(m))
            reduced |= set(self._reduction_results(m))
        return batch, consts

    def _vm_profile(self, f: Node) -> tuple[tuple[int, ...], np.dtype] | None:
        """(iteration space, float dtype) of fused node f when it can run on the tape
        machine, else None; found once per node (batches ask about their neighbours)."""
        key = id(f)
        if key not in self._profiles:
            self._profiles[key] = (vm.space_of(f), _float_dtype(f)) if vm.eligible(f) else None
        return self._profiles[key]

    def _reduction_results(self, f: Node) -> list[int]:
        """Ids of the nodes through which other nodes read f's reduction results."""
        body = f.attrs["body"]
        red = [k for k, o in enumerate(body.outputs) if REGISTRY[o.op].reduction]
        if not isinstance(f.aval, TupleAval):
            return [id(f)] if red else []
        return [id(m) for m in self.projections(f) if m.attrs["index"] in red]

    def _skip_batch(
        self, nodes: list[Node], start: int, batch: list[Node], consts: list[Node]
    ) -> int:
        in_batch = {id(b) for b in batch}
        members = in_batch | {id(c) for c in consts}
        k = start
        while k < len(nodes) and (
            id(nodes[k]) in members
            or (nodes[k].op == "proj" and id(nodes[k].inputs[0]) in in_batch)
        ):
            k += 1
        return k

    def _emit_vm(self, batch: list[Node], irn: dict[int, str]) -> None:
        in_batch = {id(b) for b in batch}
        out_ids = {id(o) for o in self.graph.outputs}
        needed: set[tuple[int, int]] = set()
        readers = self.readers()

        def used_outside(node: Node) -> bool:
            return id(node) in out_ids or any(
                id(r) not in in_batch for r in readers.get(id(node), [])
            )

        projs: dict[tuple[int, int], Node] = {}
        for f in batch:
            if isinstance(f.aval, TupleAval):
                for p in readers.get(id(f), []):
                    if p.op == "proj":
                        projs[(id(f), p.attrs["index"])] = p
                        if used_outside(p):
                            needed.add((id(f), p.attrs["index"]))
            elif used_outside(f):
                needed.add((id(f), 0))
        prog = vm.translate(batch, needed)
        key = f"P{len(self.consts)}"
        self.consts[key] = prog  # type: ignore[assignment]
        self.vm_programs.append(prog)
        for f in batch:
            self.lines.append(f"    # {_ir_line(f, irn)}  [tape machine]")
        ins = ", ".join(self.names[id(src)] for src, _ in prog.inputs)
        outs = []
        for f, idx in prog.outputs:
            owner = f if not isinstance(f.aval, TupleAval) else projs.get((id(f), idx))
            av = f.attrs["body"].outputs[idx].aval
            outs.append(self.storage.buffer(owner, av.size, av.dtype))
        res = f"_vmr{len(self.vm_programs)}"
        self.lines.append(
            f"    {res} = _vm_run(_K['{key}'], [{ins}{',' if ins else ''}], "
            f"[{', '.join(outs)}{',' if outs else ''}])"
        )
        produced: dict[tuple[int, int], str] = {}
        for j, (f, idx) in enumerate(prog.outputs):
            av = f.attrs["body"].outputs[idx].aval
            produced[(id(f), idx)] = f"{res}[0][{j}].reshape({av.shape})"
        for j, (f, idx, _) in enumerate(prog.accs):
            av = f.attrs["body"].outputs[idx].aval
            produced[(id(f), idx)] = f"{res}[1][{j}].reshape({av.shape})"
        projs_of: dict[int, list[tuple[int, Node]]] = {}  # per fused node, in projs' order
        for (fid, k), p in projs.items():
            projs_of.setdefault(fid, []).append((k, p))
        for f in batch:
            v = self._name(f, irn)
            body = f.attrs["body"]
            if isinstance(f.aval, TupleAval):
                parts = [produced.get((id(f), k), "None") for k in range(len(body.outputs))]
                self.lines.append(f"    {v} = ({', '.join(parts)},)")
                for k, p in projs_of.get(id(f), []):
                    self.lines.append(f"    {self._name(p, irn)} = {v}[{k}]")
            else:
                self.lines.append(f"    {v} = {produced.get((id(f), 0), 'None')}")

    # -- ops ----------------------------------------------------------------------------------
    def _const(self, n: Node, v: str) -> None:
        arr = n.attrs["value"].value
        if arr.ndim == 0:
            self.lines.append(f"    {v} = {self.e.lit(arr[()], arr.dtype)}")
        else:
            key = f"K{len(self.consts)}"
            self.consts[key] = arr
            self.lines.append(f"    {v} = _K['{key}']")

    def _arg(self, n: Node) -> str:
        return self.names[id(n)]

    def kernel(self, n: Node, v: str) -> list[str] | None:
        """Statements computing fused node n by a kernel (one per distinct code: another node
        with the same kernel code calls the one emitted first), or None when its dtypes have
        no kernel."""
        kern = self.kernel_for(n)
        return None if kern is None else self._call_kernel(n, v, kern)

    def kernel_for(self, n: Node) -> Kernel | None:
        """The kernel computing fused node n, emitted once per distinct code (a node with the
        code of an earlier one gets that one under its name), or None when its dtypes have no
        kernel. Loop functions (`loops`) call kernels they get here."""
        from graphc.codegen.kernels import SUPPORTED_DTYPES, emit_kernel

        if not all(
            dtype_name(i.dtype) in SUPPORTED_DTYPES
            for i in n.attrs["body"].nodes
            if not isinstance(i.aval, TupleAval)
        ):
            return None
        name = f"kernel{len(self.kernels)}"
        kern = emit_kernel(name, n, self.e, _body_ir(n))
        # the same code under another name (e.g. the SGD update of every parameter, whose
        # sizes arrive as loop bounds) is compiled once
        key = cache.kernel_key(kern, self.const_defs())
        prev = self.kernel_by_key.get(key)
        if prev is not None:
            kern = replace(kern, name=prev.name)
            self.shared[prev.name] = self.shared.get(prev.name, 1) + 1
        else:
            self.kernel_by_key[key] = kern
            self.keys[name] = key
            self.kernels.append(kern)
            self.kernel_src.append(kern.source)
        return kern

    def _call_kernel(self, n: Node, v: str, kern: Kernel) -> list[str]:
        from graphc.codegen import runtime
        from graphc.codegen.kernels import reduce_identity

        plan = kern.plan
        lines: list[str] = []
        args = [self.flat.get(id(i)) or f"_flat({self._arg(i)})" for i in n.inputs]
        outs: list[str] = [""] * len(kern.out_avals)
        flat: list[str | None] = [None] * len(kern.out_avals)
        n0 = kern.n0
        nchunks = runtime.chunks_for(n0, kern.work)
        owners = self._result_owners(n)
        for k in kern.full_outputs:
            av = kern.out_avals[k]
            lines.append(f"{v}_o{k} = {self.storage.buffer(owners[k], av.size, av.dtype)}")
            args.append(f"{v}_o{k}")
            outs[k] = f"{v}_o{k}.reshape({av.shape})"
            flat[k] = f"{v}_o{k}"
        for k in kern.row_outputs:  # written once per row: no initial value needed
            av = kern.out_avals[k]
            lines.append(f"{v}_r{k} = {self.storage.buffer(owners[k], av.size, av.dtype)}")
            args.append(f"{v}_r{k}")
            outs[k] = f"{v}_r{k}.reshape({av.shape})"
            flat[k] = f"{v}_r{k}"
        for k, kind in kern.red_outputs:
            av = kern.out_avals[k]
            rows = nchunks if plan.outer_reduced else 1
            ident = self.e.lit(reduce_identity(kind, av.dtype), av.dtype)
            lines.append(f"{v}_r{k} = np.full({rows * plan.red_size}, {ident})")
            args.append(f"{v}_r{k}")
            if rows > 1:  # combine the per-chunk partial results
                outs[k] = (
                    f"{v}_r{k}.reshape({rows}, {plan.red_size}).{kind}(axis=0).reshape({av.shape})"
                )
            else:
                outs[k] = f"{v}_r{k}.reshape({av.shape})"
                flat[k] = f"{v}_r{k}"
        if nchunks == 1:  # one chunk, the whole loop: a direct call
            lines.append(f"{kern.name}({', '.join(args)}, 0, {n0}, 0)")
        else:
            lines.append(f"_launch({kern.name}, {nchunks}, {n0}, {', '.join(args)})")
        if not isinstance(n.aval, TupleAval):
            lines.append(f"{v} = {outs[0]}")
            if flat[0]:
                self.flat[id(n)] = flat[0]
        else:
            lines.append(f"{v} = ({', '.join(outs)},)")
            self.flat_parts[id(n)] = flat
        return lines

    def _result_owners(self, n: Node) -> list[Node | None]:
        """For each result of fused node n, the node that owns its storage."""
        if not isinstance(n.aval, TupleAval):
            return [n]
        owners: list[Node | None] = [None] * len(n.aval.avals)
        for m in self.projections(n):
            owners[m.attrs["index"]] = m
        return owners

    def _lower(self, n: Node, v: str) -> None:
        entry = LOWERINGS.get(n.op)
        lower = entry.lower if entry is not None else _by_op_entry
        args = [self._arg(i) for i in n.inputs]
        self.lines += [f"    {line}" for line in lower(self, n, v, args)]

    def _output(self, o: Node) -> str:
        v = self.names[id(o)]
        owner = self.storage.owner(o)
        if owner.op in ("input", "const"):
            return f"np.array({v})"  # never hand out an input, a constant or a view of them
        return v


def _float_dtype(f: Node) -> np.dtype:
    return next(
        v.dtype
        for v in f.attrs["body"].nodes
        if not isinstance(v.aval, TupleAval) and v.dtype.kind == "f"
    )


def _ir_line(n: Node, irn: dict[int, str]) -> str:
    # a graph held in an attribute (a kernel's or loop's body) is shown in its own place
    attrs = (
        ""
        if not n.attrs or n.op == "fused"
        else "["
        + ", ".join(
            f"{k}={'{...}' if _holds_graph(val) else fmt_value(val)}"
            for k, val in sorted(n.attrs.items())
        )
        + "]"
    )
    args = " ".join(irn[id(i)] for i in n.inputs)
    return f"{irn[id(n)]}:{n.aval} = {n.op}{attrs} {args}".rstrip()


def _holds_graph(v: Any) -> bool:
    return isinstance(v, Graph) or (isinstance(v, tuple) and any(isinstance(g, Graph) for g in v))


def _body_ir(n: Node) -> list[str]:
    return print_graph(n.attrs["body"]).splitlines()


_HEADER = '''"""graphc generated module (do not edit; regenerated when stale).

content {digest}
"""
import math

import numpy as np
from numba import types as _nb
from numba import uint64 as _ix  # unsigned indices: no wraparound test, so loops vectorise

from graphc.codegen.runtime import buf as _buf, call as _call, flat as _flat, impl as _impl
from graphc.codegen.runtime import launch as _launch, out as _out, vm_run as _vm_run
# _kernel(key, signature, **options): the kernel below, compiled by numba.njit(signature,
# **options) in the cache's module for this key (graphc_kernel_*.py), which every graph with
# a kernel of the same code shares
from graphc.codegen.runtime import kernel as _kernel
from graphc.codegen.accum import acc_add as _acc_add, acc_mul as _acc_mul
{imports}

def _ro(t):
    return _nb.Array(t, 1, "C", readonly=True)


def _rw(t):
    return _nb.Array(t, 1, "C")

'''


# what a module with loop functions imports besides the header's names
_LOOP_IMPORTS = (
    "# loop functions: numba.njit (kept in Numba's cache beside this file), the compiled\n"
    "# matrix products they call, and the error a while_loop past its max_trips raises\n"
    "from graphc.codegen.runtime import njit as _njit, dot as _dot\n"
    "from graphc.codegen.runtime import TripLimitError as _TripLimitError\n"
)


def generate(graph: Graph) -> tuple[str, Driver]:
    """The module source for `graph` (kernels and driver) and the driver builder.

    Example:
        >>> source, d = generate(optimized_graph)
        >>> "def run(args, bufs):" in source
        True
    """
    d = Driver(graph)
    driver = d.build()
    imports = ""
    if d.e.imports:
        imports = "from graphc.codegen.mathlib import " + ", ".join(sorted(d.e.imports)) + "\n"
    if d.loops is not None:
        imports += _LOOP_IMPORTS
    parts = [f"{name} = {src}" for src, name in d.e.consts.items()]
    parts.append("")
    for k, kern in zip(d.kernels, d.kernel_src, strict=True):
        if k.name in d.shared:  # say so where the reader meets one body's IR for several
            head, rest = kern.split("\n", 1)
            note = f"    # ({d.shared[k.name]} call sites in run(), each with its own sizes)"
            kern = f"{head}\n{note}\n{rest}"
        opts = cache.njit_options(k)
        parts.append(f'\n@_kernel("{d.keys[k.name]}", {k.signature}, {opts})\n{kern}\n')
    if d.loops is not None:
        parts += [""] + d.loops.globals()
    for fn in d.loops.functions if d.loops is not None else []:  # inner loops first
        parts.append(f"\n@_njit({fn.signature}, {cache.loop_options()})\n{fn.source}\n")
    parts.append("\ndef run(args, bufs):")
    parts.append(driver)
    parts.append("")
    text = "\n".join(parts)
    header = _HEADER.format(digest=_module_digest(text, d), imports=imports)
    return header + "\n" + text, d


def _module_digest(text: str, d: Driver) -> str:
    """A digest of everything a module computes with: its text, and the values the driver
    hands it at run time (`_K`: array constants, the attributes of dedicated kernels and
    fallbacks, tape-machine programs), which the text names but does not hold. Modules are
    cached and shared by the hash of their source, which this line makes a hash of both.

    Digesting what was generated costs a fraction of printing the graph again (a 100,000-op
    graph's text runs to megabytes), and tells apart exactly what behaves differently."""
    h = hashlib.sha256(text.encode())
    for key, value in d.consts.items():
        h.update(f"\n{key}: {type(value).__name__} ".encode())
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype} {value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, vm.Program):
            h.update(f"{value.dtype} {value.size} {value.nregs} {value.block}".encode())
            h.update(np.ascontiguousarray(value.code).tobytes())
            h.update(np.ascontiguousarray(value.consts).tobytes())
        elif isinstance(value, dict):
            h.update(", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(value.items())).encode())
        else:
            raise TypeError(f"internal: no digest for a run-time value of type {type(value)}")
    return h.hexdigest()
