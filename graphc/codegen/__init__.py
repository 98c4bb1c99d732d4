"""Code generation: an optimized Graph -> a Python module of Numba kernels plus a driver.

Each fused node becomes one @njit kernel (see kernels.py). Everything else runs in the driver,
a plain Python function generated next to the kernels: matrix products go to BLAS through
`np.matmul(..., out=)`, movement ops become NumPy views, and ops without a compiled form call
their NumPy reference, listed in `Executable.fallbacks` and reported by GRAPHC_DEBUG.

Memory: intermediate results live in buffers allocated on the first call and reused by later
calls (per thread); two intermediates whose lifetimes do not overlap share a buffer. A returned
array's storage is reused by a later call only once the caller has dropped it (and every view of
it), so a later call never overwrites a result the caller still holds.

The module is written to the cache directory under a name derived from a hash of its source and
of the code generator itself, and imported from there, so Numba's `cache=True` lets a new
process skip LLVM. Very large elementwise work runs on the precompiled tape machine (vm.py)
instead of getting kernels of its own; conv, pooling, gather and scatter call dedicated kernels
(special.py) named in their op entries.

Example:
    >>> exe = compile_graph(optimized_graph)
    >>> print(exe.source)        # the generated kernels and driver
    >>> outs = exe([x, w])
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import importlib.util
import linecache
import mmap
import os
import py_compile
import re
import sys
import tempfile
import threading
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from graphc.codegen import vm
from graphc.ir import Graph, GraphcError, Node, TupleAval, dtype_name
from graphc.ops import REGISTRY, Dedicated, Kind
from graphc.signature import InputCheck

if TYPE_CHECKING:
    from graphc.codegen.kernels import Kernel

_MATHLIB: dict | None = None


def mathlib_name(fn: str, dt: np.dtype) -> str | None:
    """The importable name of graphc's vectorizable version of `fn` for dtype dt, if any."""
    global _MATHLIB
    if _MATHLIB is None:
        try:
            from graphc.codegen import mathlib

            _MATHLIB = {k: mathlib.source_name(*k) for k in mathlib.FUNCS}
        except (ImportError, AttributeError):  # no vectorizable library: NumPy's scalar calls
            _MATHLIB = {}
    return _MATHLIB.get((fn, dtype_name(dt)))


# ---------------------------------------------------------------------------------------------
# cache directory


def cache_path() -> str:
    """Where the disk cache lives: $GRAPHC_CACHE_DIR, else $XDG_CACHE_HOME/graphc, else
    ~/.cache/graphc (not created, not checked).

    Example:
        >>> os.environ["GRAPHC_CACHE_DIR"] = "/tmp/kernels"; cache_path()
        '/tmp/kernels'
    """
    return os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "graphc",
    )


def cache_dir() -> str:
    """The disk cache's folder, created when missing.

    Raises GraphcError saying why when it cannot be a folder (a path under a regular file, no
    permission to create it). Compiling never raises for that: it runs without the disk cache.

    Example:
        >>> cache_dir()
        '/home/me/.cache/graphc'
    """
    d = cache_path()
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise GraphcError(f"cache directory {d} cannot be used: {_why(e)}") from None
    if not os.path.isdir(d):
        raise GraphcError(f"cache directory {d} cannot be used: it is not a folder")
    return d


class CacheWarning(UserWarning):
    """The disk cache cannot be used: graphc compiles in memory for the rest of the process."""


def _why(e: OSError) -> str:
    """The reason a cache path failed, in words: which file is in the way, or the OS's message
    with the path it concerns."""
    if isinstance(e, (NotADirectoryError, FileExistsError)) and e.filename:
        p = os.path.abspath(os.fsdecode(e.filename))
        while not os.path.lexists(p) and os.path.dirname(p) != p:
            p = os.path.dirname(p)
        if os.path.lexists(p) and not os.path.isdir(p):
            return f"{p} is a file, not a folder"
    text = e.strerror or str(e) or type(e).__name__
    return f"{text}: {e.filename}" if e.filename else text


# cache folder -> why compiled modules cannot be kept there; such a folder is warned about once
# and then left alone for the rest of the process
_UNUSABLE: dict[str, str] = {}
_USABLE: set[str] = set()


def _disk_dir() -> str | None:
    """The cache folder when modules can be written there, else None (after one warning).

    Usability is proven by writing a file, not by asking os.access: permission bits say nothing
    for root, a read-only mount or a full disk."""
    d = os.path.abspath(cache_path())
    if d in _USABLE:
        if os.path.isdir(d):
            return d
        _USABLE.discard(d)  # removed while this process ran: made again below
    if d in _UNUSABLE:
        return None
    try:
        os.makedirs(d, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".graphc-probe-", dir=d)
        try:
            os.write(fd, b"graphc")
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as e:
        _give_up_disk(d, _why(e))
        return None
    _USABLE.add(d)
    return d


def _give_up_disk(d: str, reason: str) -> None:
    if d in _UNUSABLE:
        return
    _USABLE.discard(d)
    _UNUSABLE[d] = reason
    warnings.warn(
        f"graphc cannot use the compile cache {d} ({reason}); compiling in memory instead for "
        "the rest of this process (nothing is kept for later processes). Set GRAPHC_CACHE_DIR "
        "to a writable folder to keep compiled code.",
        CacheWarning,
        stacklevel=_user_stacklevel(),
    )


def _user_stacklevel() -> int:
    """The stack level of the first caller outside graphc, so a warning names the user's line."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    inner = (pkg + os.sep, os.path.join(os.path.dirname(pkg), "passes") + os.sep)
    f = sys._getframe(1)  # the function that warns: level 1
    level = 1
    while f is not None and f.f_code.co_filename.startswith(inner):
        f = f.f_back
        level += 1
    return level if f is not None else 1


def _codegen_salt() -> str:
    """Changes whenever the code generator changes, so old cache entries are not reused."""
    import graphc

    h = hashlib.sha256(graphc.__version__.encode())
    here = os.path.dirname(os.path.abspath(__file__))
    for f in sorted(os.listdir(here)):
        if f.endswith(".py"):
            with open(os.path.join(here, f), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()[:12]


_SALT: str | None = None


# ---------------------------------------------------------------------------------------------
# the executable


@dataclass
class Executable:
    """A compiled graph. Call it with a list of input arrays; it returns the output arrays."""

    graph: Graph
    source: str
    path: str | None  # the module's file in the cache folder; None when compiled in memory
    run: Any
    kernels: list = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    compile_seconds: float = 0.0
    _local: threading.local = field(default_factory=threading.local)
    check: Any = None  # the InputCheck of the graph's signature
    checks_inputs = True  # callers need not wrap it in a check of their own
    # (first line in the module, node) for each node's code in run(), in line order: maps a
    # runtime error (a gather's index out of range) back to the node and the user's line
    line_nodes: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.check is None:
            self.check = InputCheck(self.graph)

    def cache_stats(self) -> tuple[int, int]:
        """(kernels loaded from Numba's on-disk cache, kernels compiled by LLVM)."""
        hits = misses = 0
        mod = self.run.__globals__
        for k in self.kernels:
            st = mod[k.name].stats
            hits += sum(st.cache_hits.values())
            misses += sum(st.cache_misses.values())
        return hits, misses

    def __call__(self, args: list) -> list:
        # kernels index with the sizes they were generated for: an argument of another shape
        # would be read out of bounds, so none reaches them unchecked
        args = self.check(args)
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = self._local.bufs = {}
        try:
            return self.run(args, bufs)
        except GraphcError:
            raise
        except Exception as e:
            n = self.node_of(e)
            if n is None:
                raise
            where = f" (traced at {n.meta.loc})" if n.meta.loc else ""
            raise GraphcError(f"evaluating {n.op}{where} failed: {e}") from e

    def node_of(self, e: BaseException) -> Node | None:
        """The node whose code in run() raised `e`, from the line run() was executing."""
        code = getattr(self.run, "__code__", None)
        tb, line = e.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code is code:
                line = tb.tb_lineno
            tb = tb.tb_next
        if line is None or not self.line_nodes:
            return None
        k = bisect.bisect_right([ln for ln, _ in self.line_nodes], line) - 1
        return self.line_nodes[k][1] if k >= 0 else None


# ---------------------------------------------------------------------------------------------
# driver generation


_VIEW_OPS = ("reshape", "transpose", "broadcast_to", "slice", "flip", "proj")


class _Driver:
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
        self.slots: dict[int, int] = {}  # id(node) -> buffer slot for pooled intermediates
        self.fresh: set[int] = set()  # storage owners whose result is returned to the caller
        self.vm_programs: list = []
        self.n_out = 0
        # id(node) -> a driver variable holding its value as the flat, contiguous array a
        # kernel takes (kernel results): passed as it is instead of through _flat()
        self.flat: dict[int, str] = {}
        self.kernel_by_key: dict[str, Any] = {}  # _kernel_key -> the kernel emitted for it
        self.keys: dict[str, str] = {}  # kernel name -> its key
        self.shared: dict[str, int] = {}  # kernel name -> call sites, when more than one
        self.flat_parts: dict[int, list[str | None]] = {}  # per result of a multi-output kernel
        self.line_nodes: list[tuple[int, Node | None]] = []  # (index in self.lines, node)
        self._projs: dict[int, list[Node]] | None = None
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
        from graphc.text import node_names

        return node_names(self.graph)

    def build(self) -> str:
        from graphc.codegen.kernels import SUPPORTED_DTYPES, emit_kernel

        g = self.graph
        irn = self.ir_names()
        nodes = g.nodes
        self.by_id = {id(n): n for n in nodes}
        self._plan_storage(nodes)
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
            if n.op == "fused" and use_vm() and vm.eligible(n):
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
            if n.op == "fused":
                ok = all(
                    dtype_name(i.dtype) in SUPPORTED_DTYPES
                    for i in n.attrs["body"].nodes
                    if not isinstance(i.aval, TupleAval)
                )
                if ok:
                    name = f"kernel{len(self.kernels)}"
                    body_lines = _body_ir(n)
                    kern = emit_kernel(name, n, self.e, body_lines)
                    # the same code under another name (e.g. the SGD update of every
                    # parameter, whose sizes arrive as loop bounds) is compiled once
                    key = _kernel_key(kern, self.const_defs())
                    prev = self.kernel_by_key.get(key)
                    if prev is not None:
                        kern = replace(kern, name=prev.name)
                        self.shared[prev.name] = self.shared.get(prev.name, 1) + 1
                    else:
                        self.kernel_by_key[key] = kern
                        self.keys[name] = key
                        self.kernels.append(kern)
                        self.kernel_src.append(kern.source)
                    self._call_kernel(n, v, kern)
                    continue
            self._generic(n, v)
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
        space = vm.space_of(first)
        dt = _float_dtype(first)
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
            if not (
                m.op == "fused"
                and vm.eligible(m)
                and vm.space_of(m) == space
                and _float_dtype(m) == dt
            ):
                break
            if any(id(i) in reduced for i in m.inputs):
                break
            batch.append(m)
            in_batch.add(id(m))
            reduced |= set(self._reduction_results(m))
        return batch, consts

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
            outs.append(self._buffer(owner, av.size, av.dtype))
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

    # -- storage ------------------------------------------------------------------------------
    def _plan_storage(self, nodes: list[Node]) -> None:
        """Assign pooled buffer slots to intermediates; lifetimes that do not overlap share a
        buffer. Views (reshape, transpose, ...) keep their base's buffer alive."""
        pos = {id(n): k for k, n in enumerate(nodes)}
        base: dict[int, int] = {}  # id(node) -> id(node owning its storage)
        for n in nodes:
            if n.op in _VIEW_OPS and n.op != "proj":
                base[id(n)] = base[id(n.inputs[0])]
            else:
                base[id(n)] = id(n)
        last: dict[int, int] = {}
        for n in nodes:
            for i in n.inputs:
                b = base[id(i)]
                last[b] = max(last.get(b, -1), pos[id(n)])
        self.fresh = {base[id(o)] for o in self.graph.outputs}
        self.base = base
        # a kernel's results are all written when the kernel runs: they are born together
        births: dict[int, list[Node]] = {}
        for n in nodes:
            if n.op == "proj" and n.inputs[0].op == "fused":
                births.setdefault(id(n.inputs[0]), []).append(n)
            elif _owns_storage(n):
                births.setdefault(id(n), []).append(n)
        free: dict[int, list[int]] = {}
        # (last use, birth order, nbytes, slot): the buffers that die at a node come off the
        # heap in time linear overall, and are freed in the order they were born
        live: list[tuple[int, int, int, int]] = []
        n_slots = born = 0
        for n in nodes:
            k = pos[id(n)]
            dead = []
            while live and live[0][0] < k:
                dead.append(heapq.heappop(live))
            for e in sorted(dead, key=lambda e: e[1]):
                free.setdefault(e[2], []).append(e[3])
            for owner in births.get(id(n), []):
                if id(owner) in self.fresh:
                    continue
                nbytes = owner.aval.nbytes
                slot = free[nbytes].pop() if free.get(nbytes) else None
                if slot is None:
                    slot, n_slots = n_slots, n_slots + 1
                self.slots[id(owner)] = slot
                heapq.heappush(live, (max(last.get(id(owner), k), k), born, nbytes, slot))
                born += 1

    def _buffer(self, owner: Node | None, size: int, dt: np.dtype) -> str:
        """Source for the flat storage of a result: pooled if planned, else a returned array
        (which may recycle a previous call's result once the caller has let go of it)."""
        if owner is not None and id(owner) in self.slots:
            return f"_buf(bufs, {self.slots[id(owner)]}, {size}, np.{np.dtype(dt).name})"
        self.n_out += 1
        return f"_out(bufs, 'r{self.n_out}', {size}, np.{np.dtype(dt).name})"

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

    def _call_kernel(self, n: Node, v: str, kern) -> None:
        from graphc.codegen import runtime
        from graphc.codegen.kernels import reduce_identity

        plan = kern.plan
        args = [self.flat.get(id(i)) or f"_flat({self._arg(i)})" for i in n.inputs]
        outs: list[str] = [""] * len(kern.out_avals)
        flat: list[str | None] = [None] * len(kern.out_avals)
        n0 = kern.n0
        nchunks = runtime.chunks_for(n0, kern.work)
        owners = self._result_owners(n)
        for k in kern.full_outputs:
            av = kern.out_avals[k]
            self.lines.append(f"    {v}_o{k} = {self._buffer(owners[k], av.size, av.dtype)}")
            args.append(f"{v}_o{k}")
            outs[k] = f"{v}_o{k}.reshape({av.shape})"
            flat[k] = f"{v}_o{k}"
        for k in kern.row_outputs:  # written once per row: no initial value needed
            av = kern.out_avals[k]
            self.lines.append(f"    {v}_r{k} = {self._buffer(owners[k], av.size, av.dtype)}")
            args.append(f"{v}_r{k}")
            outs[k] = f"{v}_r{k}.reshape({av.shape})"
            flat[k] = f"{v}_r{k}"
        for k, kind in kern.red_outputs:
            av = kern.out_avals[k]
            rows = nchunks if plan.outer_reduced else 1
            ident = self.e.lit(reduce_identity(kind, av.dtype), av.dtype)
            self.lines.append(f"    {v}_r{k} = np.full({rows * plan.red_size}, {ident})")
            args.append(f"{v}_r{k}")
            if rows > 1:  # combine the per-chunk partial results
                outs[k] = (
                    f"{v}_r{k}.reshape({rows}, {plan.red_size}).{kind}(axis=0).reshape({av.shape})"
                )
            else:
                outs[k] = f"{v}_r{k}.reshape({av.shape})"
                flat[k] = f"{v}_r{k}"
        if nchunks == 1:  # one chunk, the whole loop: a direct call
            self.lines.append(f"    {kern.name}({', '.join(args)}, 0, {n0}, 0)")
        else:
            self.lines.append(f"    _launch({kern.name}, {nchunks}, {n0}, {', '.join(args)})")
        if not isinstance(n.aval, TupleAval):
            self.lines.append(f"    {v} = {outs[0]}")
            if flat[0]:
                self.flat[id(n)] = flat[0]
        else:
            self.lines.append(f"    {v} = ({', '.join(outs)},)")
            self.flat_parts[id(n)] = flat

    def _result_owners(self, n: Node) -> list[Node | None]:
        """For each result of fused node n, the node that owns its storage."""
        if not isinstance(n.aval, TupleAval):
            return [n]
        owners: list[Node | None] = [None] * len(n.aval.avals)
        for m in self.projections(n):
            owners[m.attrs["index"]] = m
        return owners

    def _generic(self, n: Node, v: str) -> None:
        a = [self._arg(i) for i in n.inputs]
        at = n.attrs
        op = n.op
        if op == "proj":
            self.lines.append(f"    {v} = {a[0]}[{at['index']}]")
            part = self.flat_parts.get(id(n.inputs[0]), [])
            if at["index"] < len(part) and part[at["index"]]:
                self.flat[id(n)] = part[at["index"]]
        elif op == "reshape":
            self.lines.append(f"    {v} = {a[0]}.reshape({tuple(at['shape'])})")
        elif op == "transpose":
            self.lines.append(f"    {v} = {a[0]}.transpose({tuple(at['perm'])})")
        elif op == "broadcast_to":
            self.lines.append(f"    {v} = np.broadcast_to({a[0]}, {tuple(at['shape'])})")
        elif op == "slice":
            sl = ", ".join(
                f"{s}:{e}:{st}"
                for s, e, st in zip(at["start"], at["stop"], at["step"], strict=True)
            )
            self.lines.append(f"    {v} = {a[0]}[{sl}]" if sl else f"    {v} = {a[0]}")
        elif op == "flip":
            self.lines.append(f"    {v} = np.flip({a[0]}, {tuple(at['axes'])})")
        elif op == "matmul":
            self.lines.append(f"    {v}_b = {self._buffer(n, n.aval.size, n.dtype)}")
            self.lines.append(f"    {v} = np.matmul({a[0]}, {a[1]}, out={v}_b.reshape({n.shape}))")
            self.flat[id(n)] = f"{v}_b"
        else:
            key = f"A{len(self.consts)}"
            self.consts[key] = dict(at)  # type: ignore[assignment]
            kernel = _special_kernel(op)
            if kernel is not None:  # a dedicated compiled kernel (conv, pooling, gather, ...)
                self.lines.append(f"    {v} = _call({kernel!r}, _K['{key}'], {', '.join(a)})")
                return
            self.fallbacks.append(f"{op} (runs its NumPy implementation)")
            self.lines.append(f"    {v} = _impl({op!r}, _K['{key}'], {', '.join(a)})")

    def _output(self, o: Node) -> str:
        v = self.names[id(o)]
        owner = self.by_id[self.base[id(o)]]
        if owner.op in ("input", "const"):
            return f"np.array({v})"  # never hand out an input, a constant or a view of them
        return v


VM_MIN_OPS = 128  # kernels (or runs of kernels) at least this big run on the tape machine


def use_vm() -> bool:
    return os.environ.get("GRAPHC_VM", "1") not in ("", "0")


def _float_dtype(f: Node) -> np.dtype:
    return next(
        v.dtype
        for v in f.attrs["body"].nodes
        if not isinstance(v.aval, TupleAval) and v.dtype.kind == "f"
    )


def _owns_storage(n: Node) -> bool:
    """Nodes whose result the driver allocates (kernel results and matrix products)."""
    if n.op == "fused":
        return not isinstance(n.aval, TupleAval)
    return n.op in ("matmul", "proj")


def _ir_line(n: Node, irn: dict[int, str]) -> str:
    from graphc.text import fmt_value

    attrs = (
        ""
        if not n.attrs or n.op == "fused"
        else "[" + ", ".join(f"{k}={fmt_value(val)}" for k, val in sorted(n.attrs.items())) + "]"
    )
    args = " ".join(irn[id(i)] for i in n.inputs)
    return f"{irn[id(n)]}:{n.aval} = {n.op}{attrs} {args}".rstrip()


def _body_ir(n: Node) -> list[str]:
    from graphc.text import print_graph

    return print_graph(n.attrs["body"]).splitlines()


_HEADER = '''"""graphc generated module (do not edit; regenerated when stale).

graph {hash}
"""
import math

import numpy as np
from numba import types as _nb
from numba import uint64 as _ix  # unsigned indices: no wraparound test, so loops vectorise

from graphc.codegen.runtime import launch as _launch
from graphc.codegen import _buf, _call, _flat, _impl, _out, _vm_run
# _kernel(key, signature, **options): the kernel below, compiled by numba.njit(signature,
# **options) in the cache's module for this key (graphc_kernel_*.py), which every graph with
# a kernel of the same code shares
from graphc.codegen import _kernel
from graphc.codegen.accum import acc_add as _acc_add, acc_mul as _acc_mul
{imports}

def _ro(t):
    return _nb.Array(t, 1, "C", readonly=True)


def _rw(t):
    return _nb.Array(t, 1, "C")

'''


def generate(graph: Graph) -> tuple[str, _Driver]:
    """The module source for `graph` (kernels and driver) and the driver builder."""
    d = _Driver(graph)
    driver = d.build()
    imports = ""
    if d.e.imports:
        imports = "from graphc.codegen.mathlib import " + ", ".join(sorted(d.e.imports)) + "\n"
    parts = [_HEADER.format(hash=graph.structural_hash(), imports=imports)]
    parts += [f"{name} = {src}" for src, name in d.e.consts.items()]
    parts.append("")
    for k, kern in zip(d.kernels, d.kernel_src, strict=True):
        if k.name in d.shared:  # say so where the reader meets one body's IR for several
            head, rest = kern.split("\n", 1)
            note = f"    # ({d.shared[k.name]} call sites in run(), each with its own sizes)"
            kern = f"{head}\n{note}\n{rest}"
        parts.append(f'\n@_kernel("{d.keys[k.name]}", {k.signature}, {_options(k)})\n{kern}\n')
    parts.append("\ndef run(args, bufs):")
    parts.append(driver)
    parts.append("")
    return "\n".join(parts), d


HUGE_MIN_BYTES = 4 << 20  # buffers this large get a mapping of their own, on huge pages
_HUGE = 2 << 20


# Kernels by the hash of everything their machine code depends on: a kernel met again in another
# graph of this process (the same step for a new batch size, whose loops take the batch as a
# bound) reuses the compiled one instead of compiling or loading it again.
_KERNELS: dict[str, Any] = {}
_kernels_lock = threading.Lock()


def _options(k: Kernel) -> str:
    """The njit options of kernel k. No fast-math: recomputing a value anywhere must give the
    same bits (derivative rules compare `x == max(x)`); accumulations reassociate on their own
    instructions (`accum`)."""
    return "cache=True, nogil=True, error_model='numpy', fastmath=False"


def _code(k: Kernel) -> str:
    """The kernel's body without its name and IR comments: what its machine code depends on."""
    lines = k.source.split("\n")[1:]
    return "\n".join(ln for ln in lines if not ln.lstrip().startswith("#"))


def _used_consts(code: str, const_defs: dict[str, str]) -> str:
    used = sorted(set(re.findall(r"\b_c\w+", code)) & set(const_defs))
    return "".join(f"{n} = {const_defs[n]}\n" for n in used)


def _kernel_key(k: Kernel, const_defs: dict[str, str]) -> str:
    code = _code(k)
    text = "\n".join([k.signature, _options(k), _used_consts(code, const_defs), code])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


_KERNEL_HEADER = '''"""A graphc kernel, shared by all graphs with a kernel of this code."""
import math

import numpy as np
# numba.njit; its cache=True keeps machine code beside this module when it is a cache file
from graphc.codegen import _njit as njit
from numba import types as _nb
from numba import uint64 as _ix

from graphc.codegen.accum import acc_add as _acc_add, acc_mul as _acc_mul
{imports}

def _ro(t):
    return _nb.Array(t, 1, "C", readonly=True)


def _rw(t):
    return _nb.Array(t, 1, "C")

'''


def _kernel_module(k: Kernel, const_defs: dict[str, str], imports: set[str]) -> str:
    """A module holding just kernel k, as `kernel`: its text depends only on what the kernel's
    key does (no IR comments, no graph), so every graph can load the same file."""
    code = _code(k)
    math_fns = sorted(f for f in imports if re.search(rf"\b{f}\b", code))
    imp = f"from graphc.codegen.mathlib import {', '.join(math_fns)}\n" if math_fns else ""
    head = k.source.split("\n", 1)[0]
    params = head[head.index("(") :]
    return (
        _KERNEL_HEADER.format(imports=imp)
        + _used_consts(code, const_defs)
        + f"\n@njit({k.signature}, {_options(k)})\ndef kernel{params}\n{code}\n"
    )


def _load_kernels(d: _Driver, folder: str | None) -> str | None:
    """Make every kernel of a graph available under its key: from this process, else from its
    module in the cache folder (whose Numba cache a new process loads instead of running
    LLVM), written when missing. Returns the folder, None once it proved unusable."""
    const_defs = d.const_defs()
    for k in d.kernels:
        key = d.keys[k.name]
        if key in _KERNELS:
            continue
        name = "graphc_kernel_" + hashlib.sha256((key + _SALT).encode()).hexdigest()[:20]
        source = _kernel_module(k, const_defs, d.e.imports)
        mod, folder = _load_module(name, source, folder)
        _KERNELS[key] = mod.kernel
    return folder


def _njit(signature: Any, **options: Any) -> Callable:
    """`numba.njit(signature, **options)`, with `cache` honoured only for a module that is a
    file: one compiled in memory (no usable cache folder) has nowhere to keep machine code."""

    def decorate(fn: Callable) -> Any:
        from numba import njit

        opts = options
        if opts.get("cache") and not os.path.isfile(fn.__code__.co_filename):
            opts = {**opts, "cache": False}
        return njit(signature, **opts)(fn)

    return decorate


def _kernel(key: str, signature: Any, **options: Any) -> Callable:
    """The decorator of generated kernels: `njit(signature, **options)`, or the kernel already
    compiled in this process under the same key."""

    def decorate(fn: Callable) -> Any:
        with _kernels_lock:
            k = _KERNELS.get(key)
            if k is None:
                k = _KERNELS[key] = _njit(signature, **options)(fn)
        return k

    return decorate


def alloc(size: int, dtype) -> np.ndarray:
    """An uninitialised flat array. Large ones live in an anonymous mapping of their own,
    advised for transparent huge pages: once NumPy has freed big temporaries, malloc hands out
    recycled 4 KiB-paged heap memory instead, and streaming through that thrashes the TLB
    (measured: a 4M-element kernel 4x slower)."""
    dtype = np.dtype(dtype)
    nbytes = size * dtype.itemsize
    if nbytes < HUGE_MIN_BYTES:
        return np.empty(size, dtype)
    m = mmap.mmap(-1, nbytes + _HUGE)
    if hasattr(m, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
        m.madvise(mmap.MADV_HUGEPAGE)
    probe = np.frombuffer(m, np.uint8, count=1)
    skip = -probe.ctypes.data % _HUGE  # start on a huge-page boundary
    del probe
    # the array itself must be the root that views of it refer to (its base is the mapping):
    # _out decides whether a result is still in use from this array's reference count
    return np.frombuffer(m, dtype, count=size, offset=skip)


def _buf(bufs: dict, slot: int, size: int, dtype) -> np.ndarray:
    """A pooled buffer, allocated on first use and reused by later calls."""
    b = bufs.get(slot)
    if b is None or b.size != size or b.dtype != dtype:
        b = bufs[slot] = alloc(size, dtype)
    return b


def _out(bufs: dict, key: str, size: int, dtype) -> np.ndarray:
    """Storage for a result returned to the caller. The previous call's array at this position
    is reused only when nothing but this pool refers to it any more (the caller dropped the
    result and every view of it), so a result the caller keeps is never overwritten; reusing
    it avoids first-touch page faults on fresh memory, which cost more than the kernels."""
    prev = bufs.get(key)
    # references: the pool, `prev`, and getrefcount's argument
    if (
        prev is not None
        and prev.size == size
        and prev.dtype == dtype
        and sys.getrefcount(prev) <= 3
    ):
        return prev
    a = bufs[key] = alloc(size, dtype)
    return a


def _flat(x: Any) -> np.ndarray:
    """A flat C-contiguous view (copied only when not contiguous). Kernel operands are typed
    read-only, so constants and np.frombuffer data pass without a copy."""
    a = np.asarray(x)
    return a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)


def _impl(op: str, attrs: dict, *args: Any) -> Any:
    return REGISTRY[op].impl(*args, **attrs)


def _special_kernel(op: str) -> str | None:
    """The dedicated kernel an op's registry entry names (`lowering=Dedicated(NAME)`)."""
    low = REGISTRY[op].lowering
    if not isinstance(low, Dedicated):
        return None
    try:
        from graphc.codegen import special
    except ImportError:
        return None
    return low.name if low.name in getattr(special, "KERNELS", {}) else None


def _call(name: str, attrs: dict, *args: Any) -> Any:
    from graphc.codegen import special

    return special.KERNELS[name](*args, **attrs)


def _vm_run(prog, ins: list, outs: list) -> tuple[list, list]:
    """Run a tape-machine program: returns (stored results, reduction results)."""
    from graphc.codegen import runtime
    from graphc.codegen.kernels import reduce_identity

    dt = prog.dtype
    flat_in = [_flat(a) if np.asarray(a).dtype == dt else _flat(a).astype(dt) for a in ins]
    # boolean results are computed as 0/1 in the machine's dtype, then converted
    work_out = [o if o.dtype == dt else np.empty(o.size, dt) for o in outs]
    p_in = np.array([a.ctypes.data for a in flat_in], np.int64)
    p_out = np.array([a.ctypes.data for a in work_out], np.int64)
    nblocks = -(-prog.size // prog.block)
    nchunks = runtime.chunks_for(nblocks, prog.size * max(prog.ops, 1))
    acc = np.empty((nchunks, max(len(prog.accs), 1)), dt)
    for j, (_, _, kind) in enumerate(prog.accs):
        acc[:, j] = reduce_identity(kind, dt)
    fn = getattr(vm.machine(), "vm_" + dtype_name(dt))
    runtime.launch(
        fn,
        nchunks,
        nblocks,
        prog.code,
        prog.consts,
        p_in,
        p_out,
        acc,
        prog.size,
        prog.nregs,
        prog.block,
    )
    for o, w in zip(outs, work_out, strict=True):
        if o is not w:
            o[...] = w != 0 if o.dtype == np.bool_ else w
    reds = []
    for j, (_, _, kind) in enumerate(prog.accs):
        col = acc[:, j]
        reds.append(
            np.asarray(
                col.sum() if kind == "sum" else col.max() if kind == "max" else col.min(), dtype=dt
            )
        )
    del flat_in
    return outs, reds


# ---------------------------------------------------------------------------------------------
# compile


_import_lock = threading.Lock()
_numba_ready = False


def numba_ready() -> None:
    """Prepare Numba for loading kernels, minus one start-up cost graphc never needs.

    The first kernel Numba compiles or loads from its cache imports numba.np.arraymath, which
    checks that NumPy-style linear algebra could work by importing scipy.linalg: 0.2 s of a
    warm start's 1 s, for a BLAS that graphc's kernels never call (matrix products run in the
    driver). The check is answered from whether SciPy is installed instead; code that does use
    linear algebra inside Numba still imports SciPy's BLAS when it is compiled, as before."""
    global _numba_ready
    if _numba_ready:
        return
    _numba_ready = True
    if "numba.np.arraymath" in sys.modules:
        return
    try:
        import numba.np.linalg as nl
    except Exception:
        return
    full = getattr(nl, "ensure_blas", None)
    if full is None:
        return

    def scipy_installed() -> None:
        if importlib.util.find_spec("scipy") is None:
            raise ImportError("scipy is required for linear algebra")

    nl.ensure_blas = scipy_installed
    try:
        import numba.np.arraymath  # noqa: F401  (its import-time check runs now, cheaply)
    except Exception:
        pass
    finally:
        nl.ensure_blas = full


def compile_graph(graph: Graph) -> Executable:
    """Generate, write, import and wrap the module for `graph`.

    All or nothing: when anything fails or is interrupted (Ctrl-C) the process is left as it was
    before the call (no module half imported, no kernel registered), so the next call compiles
    afresh. A cache folder that cannot be written is warned about once; modules are then compiled
    in memory.
    """
    global _SALT
    t0 = time.perf_counter()
    # the drivers' runtime reads GRAPHC_THREADS: a bad value is reported here, before any cache
    # entry is touched, not from inside a generated module's import
    from graphc.codegen import runtime  # noqa: F401

    numba_ready()
    if _SALT is None:
        _SALT = _codegen_salt()
    source, d = generate(graph)
    digest = hashlib.sha256((source + _SALT).encode()).hexdigest()[:20]
    name = f"graphc_{digest}"
    with _import_lock:
        n_kernels, n_modules = len(_KERNELS), len(_MODULES)
        try:
            folder = _disk_dir()
            with _kernels_lock:
                folder = _load_kernels(d, folder)
            mod, folder = _load_module(name, source, folder)
        except BaseException:
            _rollback(n_kernels, n_modules)
            raise
    path = os.path.join(folder, name + ".py") if folder is not None else None
    mod._K = dict(d.consts)
    exe = Executable(graph, source, path, mod.run, d.kernels, d.fallbacks)
    first = source.split("\n").index("def run(args, bufs):") + 2  # run()'s first line, 1-based
    exe.line_nodes = [(first + k, n) for k, n in d.line_nodes]
    exe.compile_seconds = time.perf_counter() - t0
    from passes import debug_level

    if debug_level():
        print(
            f"[graphc] compiled {len(d.kernels)} kernels, {len(d.vm_programs)} tape-machine "
            f"runs in {exe.compile_seconds:.2f} s -> {path or 'memory'}",
            file=sys.stderr,
        )
        for fb in d.fallbacks:
            print(f"[graphc]     NumPy fallback: {fb}", file=sys.stderr)
    return exe


# Modules this process loaded completely, by name. Only these are reused: a module that failed
# or was interrupted half-way is never registered (and leaves sys.modules as it was).
_MODULES: dict[str, Any] = {}


def _rollback(n_kernels: int, n_modules: int) -> None:
    """Forget the kernels and modules registered after the first n_kernels / n_modules (both
    registries only grow, in insertion order, under _import_lock)."""
    for key in list(_KERNELS)[n_kernels:]:
        del _KERNELS[key]
    for name in list(_MODULES)[n_modules:]:
        mod = _MODULES.pop(name)
        if sys.modules.get(name) is mod:
            del sys.modules[name]


def _write_atomic(path: str, text: str) -> None:
    """Write `text` to `path` so that no reader, in any process, ever sees part of it: into a
    temporary file in the same folder, then renamed over `path`."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _load_module(name: str, source: str, folder: str | None) -> tuple[Any, str | None]:
    """The module `name` with text `source`, and the folder it lives in (None: in memory).

    From this process when loaded before; else from the cache folder, (re)writing the file when
    missing, stale or unreadable, and discarding every file of the entry once if importing it
    fails (corrupt bytecode or Numba cache files); else, when the folder cannot be written,
    compiled in memory."""
    mod = _MODULES.get(name)
    if mod is not None:
        # compiled earlier in this process, perhaps while GRAPHC_CACHE_DIR named another folder:
        # the kernels are reused, and this folder gets the source it is promised
        if folder is not None:
            path = os.path.join(folder, name + ".py")
            try:
                if not os.path.exists(path):
                    _write_atomic(path, source)
            except OSError as e:
                _give_up_disk(folder, _why(e))
                folder = None
        return mod, folder
    if folder is not None:
        path = os.path.join(folder, name + ".py")
        try:
            return _load_from_disk(name, path, source), folder
        except OSError as e:
            _give_up_disk(folder, _why(e))
    return _load_in_memory(name, source), None


def _load_from_disk(name: str, path: str, source: str) -> Any:
    for attempt in range(2):
        try:
            with open(path, "rb") as f:
                ok = f.read() == source.encode("utf-8")
        except OSError:
            ok = False
        if not ok:
            _purge(path)  # whatever bytecode and machine code belonged to the old text
            _write_atomic(path, source)
        _ensure_bytecode(path, source)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            _exec(name, mod, lambda m: spec.loader.exec_module(m))  # type: ignore[union-attr]
            return mod
        except Exception:
            if attempt:
                raise
            # corrupt bytecode or Numba cache files: discard the entry, build it again
            _purge(path)
    raise GraphcError("unreachable")


def _load_in_memory(name: str, source: str) -> Any:
    filename = f"<graphc in memory: {name}>"
    # tracebacks and Numba's error messages quote source lines through linecache
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    mod = types.ModuleType(name)
    mod.__file__ = filename
    code = compile(source, filename, "exec")
    _exec(name, mod, lambda m: exec(code, m.__dict__))
    return mod


def _exec(name: str, mod: Any, run: Callable[[Any], None]) -> None:
    """Run a module's body with the module in sys.modules (Numba re-imports the defining module
    when it loads a cached kernel); registered only when the body completes, and sys.modules is
    restored whatever stops it, Ctrl-C included."""
    previous = sys.modules.get(name)
    sys.modules[name] = mod
    try:
        run(mod)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    _MODULES[name] = mod


def _ensure_bytecode(path: str, source: str) -> None:
    """Keep the module's compiled bytecode beside it, as part of the cache: Python would not
    write it under PYTHONDONTWRITEBYTECODE, and compiling a driver's source on every start
    costs more than loading its kernels. The bytecode records a hash of its source, checked
    here and again by the import, so bytecode that is unreadable or belongs to other text is
    replaced, never run."""
    cfile = importlib.util.cache_from_source(path)
    if not _bytecode_matches(cfile, source.encode("utf-8")):
        py_compile.compile(
            path,
            cfile=cfile,
            doraise=False,
            quiet=2,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )


def _bytecode_matches(cfile: str, source: bytes) -> bool:
    """Whether `cfile` starts with the header of checked, hash-based bytecode for `source`."""
    try:
        with open(cfile, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    checked_hash_flags = (0b11).to_bytes(4, "little")
    return (
        len(head) == 16
        and head[:4] == importlib.util.MAGIC_NUMBER
        and head[4:8] == checked_hash_flags
        and head[8:] == importlib.util.source_hash(source)
    )


def _purge(path: str) -> None:
    """Remove a cache entry and Numba's cache files for it."""
    base = os.path.splitext(os.path.basename(path))[0]
    try:
        os.remove(path)
    except OSError:
        pass
    pyc = os.path.join(os.path.dirname(path), "__pycache__")
    try:
        names = os.listdir(pyc)
    except OSError:
        return
    for f in names:
        if f.startswith(base + "."):
            try:
                os.remove(os.path.join(pyc, f))
            except OSError:
                pass


def is_compiled_kind(n: Node) -> bool:
    return n.op == "fused" or REGISTRY[n.op].kind is Kind.CONTRACTION
