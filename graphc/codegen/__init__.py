"""Code generation: an optimized Graph -> a Python module of Numba kernels plus a driver.

Each fused node becomes one @njit kernel (see kernels.py). Everything else runs in the driver,
a plain Python function generated next to the kernels: matrix products go to BLAS through
`np.matmul(..., out=)`, movement ops become NumPy views, and ops without a compiled form call
their NumPy reference, listed in `Executable.fallbacks` and reported by GRAPHC_DEBUG.

Memory: intermediate results live in buffers allocated on the first call and reused by later
calls (per thread); two intermediates whose lifetimes do not overlap share a buffer. Returned
arrays are always freshly allocated, so a later call never overwrites them.

The module is written to the cache directory under a name derived from the graph's structural
hash, and imported from there, so Numba's `cache=True` lets a new process skip LLVM.

Example:
    >>> exe = compile_graph(optimized_graph)
    >>> print(exe.source)        # the generated kernels and driver
    >>> outs = exe([x, w])
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.ir import Graph, GraphcError, Node, TupleAval, dtype_name
from graphc.ops import REGISTRY, Kind

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


def cache_dir() -> str:
    d = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "graphc")
    os.makedirs(d, exist_ok=True)
    return d


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
    path: str
    run: Any
    kernels: list = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    compile_seconds: float = 0.0
    _local: threading.local = field(default_factory=threading.local)

    def cache_stats(self) -> tuple[int, int]:
        """(kernels loaded from Numba's on-disk cache, kernels compiled by LLVM)."""
        hits = misses = 0
        mod = sys.modules.get(os.path.splitext(os.path.basename(self.path))[0])
        for k in self.kernels:
            st = getattr(mod, k.name).stats
            hits += sum(st.cache_hits.values())
            misses += sum(st.cache_misses.values())
        return hits, misses

    def __call__(self, args: list) -> list:
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = self._local.bufs = {}
        return self.run(args, bufs)


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
        self.lines.append("    " + ", ".join(self.names[id(n)] for n in g.inputs) +
                          (", = args" if len(g.inputs) == 1 else " = args")
                          if g.inputs else "    pass")
        for n in nodes:
            if n.op == "input":
                continue
            v = f"v_{irn[id(n)]}" if not irn[id(n)][0].isdigit() and ":" not in irn[id(n)] \
                else f"v{len(self.names)}"
            self.names[id(n)] = v
            if n.op == "const":
                self._const(n, v)
                continue
            self.lines.append(f"    # {_ir_line(n, irn)}")
            if n.op == "fused":
                ok = all(dtype_name(i.dtype) in SUPPORTED_DTYPES for i in n.attrs["body"].nodes
                         if not isinstance(i.aval, TupleAval))
                if ok:
                    name = f"kernel{len(self.kernels)}"
                    body_lines = _body_ir(n)
                    kern = emit_kernel(name, n, self.e, body_lines)
                    self.kernels.append(kern)
                    self.kernel_src.append(kern.source)
                    self._call_kernel(n, v, kern)
                    continue
            self._generic(n, v)
        outs = [self._output(o) for o in g.outputs]
        self.lines.append(f"    return [{', '.join(outs)}]")
        return "\n".join(self.lines)

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
        live: list[tuple[int, int, int]] = []  # (last use, nbytes, slot)
        n_slots = 0
        for n in nodes:
            k = pos[id(n)]
            for e in [e for e in live if e[0] < k]:
                free.setdefault(e[1], []).append(e[2])
                live.remove(e)
            for owner in births.get(id(n), []):
                if id(owner) in self.fresh:
                    continue
                nbytes = owner.aval.nbytes
                slot = free[nbytes].pop() if free.get(nbytes) else None
                if slot is None:
                    slot, n_slots = n_slots, n_slots + 1
                self.slots[id(owner)] = slot
                live.append((max(last.get(id(owner), k), k), nbytes, slot))

    def _buffer(self, owner: Node | None, size: int, dt: np.dtype) -> str:
        """Source for the flat storage of a result: pooled if planned, else fresh."""
        if owner is not None and id(owner) in self.slots:
            return f"_buf(bufs, {self.slots[id(owner)]}, {size}, np.{np.dtype(dt).name})"
        return f"np.empty({size}, np.{np.dtype(dt).name})"

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
        args = [f"_flat({self._arg(i)})" for i in n.inputs]
        outs: list[str] = [""] * len(kern.out_avals)
        n0 = plan.dims[0] if plan.dims else 1
        nchunks = runtime.chunks_for(n0, kern.work)
        owners = self._result_owners(n)
        for k in kern.full_outputs:
            av = kern.out_avals[k]
            self.lines.append(f"    {v}_o{k} = {self._buffer(owners[k], av.size, av.dtype)}")
            args.append(f"{v}_o{k}")
            outs[k] = f"{v}_o{k}.reshape({av.shape})"
        for k, kind in kern.red_outputs:
            av = kern.out_avals[k]
            rows = nchunks if plan.outer_reduced else 1
            ident = self.e.lit(reduce_identity(kind, av.dtype), av.dtype)
            self.lines.append(f"    {v}_r{k} = np.full({rows * plan.red_size}, {ident})")
            args.append(f"{v}_r{k}")
            if rows > 1:  # combine the per-chunk partial results
                outs[k] = (f"{v}_r{k}.reshape({rows}, {plan.red_size}).{kind}(axis=0)"
                           f".reshape({av.shape})")
            else:
                outs[k] = f"{v}_r{k}.reshape({av.shape})"
        self.lines.append(f"    _launch({kern.name}, {nchunks}, {n0}, {', '.join(args)})")
        if not isinstance(n.aval, TupleAval):
            self.lines.append(f"    {v} = {outs[0]}")
        else:
            self.lines.append(f"    {v} = ({', '.join(outs)},)")

    def _result_owners(self, n: Node) -> list[Node | None]:
        """For each result of fused node n, the node that owns its storage."""
        if not isinstance(n.aval, TupleAval):
            return [n]
        owners: list[Node | None] = [None] * len(n.aval.avals)
        for m in self.graph.nodes:
            if m.op == "proj" and m.inputs[0] is n:
                owners[m.attrs["index"]] = m
        return owners

    def _generic(self, n: Node, v: str) -> None:
        a = [self._arg(i) for i in n.inputs]
        at = n.attrs
        op = n.op
        if op == "proj":
            self.lines.append(f"    {v} = {a[0]}[{at['index']}]")
        elif op == "reshape":
            self.lines.append(f"    {v} = {a[0]}.reshape({tuple(at['shape'])})")
        elif op == "transpose":
            self.lines.append(f"    {v} = {a[0]}.transpose({tuple(at['perm'])})")
        elif op == "broadcast_to":
            self.lines.append(f"    {v} = np.broadcast_to({a[0]}, {tuple(at['shape'])})")
        elif op == "slice":
            sl = ", ".join(f"{s}:{e}:{st}" for s, e, st in
                           zip(at["start"], at["stop"], at["step"], strict=True))
            self.lines.append(f"    {v} = {a[0]}[{sl}]" if sl else f"    {v} = {a[0]}")
        elif op == "flip":
            self.lines.append(f"    {v} = np.flip({a[0]}, {tuple(at['axes'])})")
        elif op == "matmul":
            buf = self._buffer(n, n.aval.size, n.dtype)
            self.lines.append(f"    {v} = np.matmul({a[0]}, {a[1]}, out={buf}.reshape("
                              f"{n.shape}))")
        else:
            key = f"A{len(self.consts)}"
            self.consts[key] = dict(at)  # type: ignore[assignment]
            self.fallbacks.append(f"{op} (runs its NumPy implementation)")
            self.lines.append(f"    {v} = _impl({op!r}, _K['{key}'], {', '.join(a)})")

    def _output(self, o: Node) -> str:
        v = self.names[id(o)]
        owner = self.by_id[self.base[id(o)]]
        if owner.op in ("input", "const") or not _owns_storage(owner):
            return f"np.array({v})"  # never hand out an input, a constant or a view of them
        return v


def _owns_storage(n: Node) -> bool:
    """Nodes whose result the driver allocates (kernel results and matrix products)."""
    if n.op == "fused":
        return not isinstance(n.aval, TupleAval)
    return n.op in ("matmul", "proj")


def _ir_line(n: Node, irn: dict[int, str]) -> str:
    from graphc.text import fmt_value

    attrs = "" if not n.attrs or n.op == "fused" else "[" + ", ".join(
        f"{k}={fmt_value(val)}" for k, val in sorted(n.attrs.items())) + "]"
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
from numba import njit
from numba import types as _nb

from graphc.codegen.runtime import launch as _launch
from graphc.codegen import _buf, _flat, _impl
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
        flags = '"reassoc", "contract"' if k.red_outputs else '"contract"'
        parts.append(f"\n@njit({k.signature}, cache=True, nogil=True, "
                     f"error_model='numpy', fastmath={{{flags}}})\n{kern}\n")
    parts.append("\ndef run(args, bufs):")
    parts.append(driver)
    parts.append("")
    return "\n".join(parts), d


def _buf(bufs: dict, slot: int, size: int, dtype) -> np.ndarray:
    """A pooled buffer, allocated on first use and reused by later calls."""
    b = bufs.get(slot)
    if b is None or b.size != size or b.dtype != dtype:
        b = bufs[slot] = np.empty(size, dtype)
    return b


def _flat(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.flags.c_contiguous and a.flags.writeable:  # kernel signatures take writable arrays
        return a.reshape(-1)
    return np.array(a, order="C").reshape(-1)  # constants and np.frombuffer data are read-only


def _impl(op: str, attrs: dict, *args: Any) -> Any:
    return REGISTRY[op].impl(*args, **attrs)


# ---------------------------------------------------------------------------------------------
# compile


_import_lock = threading.Lock()


def compile_graph(graph: Graph) -> Executable:
    """Generate, write, import and wrap the module for `graph`."""
    global _SALT
    t0 = time.perf_counter()
    if _SALT is None:
        _SALT = _codegen_salt()
    source, d = generate(graph)
    digest = hashlib.sha256((source + _SALT).encode()).hexdigest()[:20]
    name = f"graphc_{digest}"
    path = os.path.join(cache_dir(), name + ".py")
    with _import_lock:
        mod = _load_module(name, path, source)
    consts = dict(d.consts)
    mod._K = consts
    exe = Executable(graph, source, path, mod.run, d.kernels, d.fallbacks)
    exe.compile_seconds = time.perf_counter() - t0
    return exe


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _load_module(name: str, path: str, source: str):
    """Import the module at `path`, (re)writing it when missing, stale or corrupt."""
    if name in sys.modules:
        return sys.modules[name]
    for attempt in range(2):
        try:
            with open(path) as f:
                ok = f.read() == source
        except OSError:
            ok = False
        if not ok:
            _write_atomic(path, source)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        # Numba re-imports the defining module when it loads a cached kernel
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)  # type: ignore[union-attr]
            return mod
        except Exception:
            del sys.modules[name]
            if attempt:
                raise
            _purge(path)
    raise GraphcError("unreachable")


def _purge(path: str) -> None:
    """Remove a cache entry and Numba's cache files for it."""
    base = os.path.splitext(os.path.basename(path))[0]
    try:
        os.remove(path)
    except OSError:
        pass
    pyc = os.path.join(os.path.dirname(path), "__pycache__")
    if os.path.isdir(pyc):
        for f in os.listdir(pyc):
            if f.startswith(base + "."):
                try:
                    os.remove(os.path.join(pyc, f))
                except OSError:
                    pass


def is_compiled_kind(n: Node) -> bool:
    return n.op == "fused" or REGISTRY[n.op].kind is Kind.CONTRACTION
