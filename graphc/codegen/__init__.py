"""Code generation: an optimized Graph -> a Python module of Numba kernels plus a driver.

Each fused node becomes one @njit kernel (`kernels`). Everything else runs in the driver, a
plain Python function generated next to the kernels (`driver`): matrix products go to BLAS
through `np.matmul(..., out=)`, movement ops become NumPy views, and ops without a compiled form
call their NumPy reference, listed in `Executable.fallbacks` and reported by GRAPHC_DEBUG. Each
loop or branch (`scan`, `while_loop`, `cond`) becomes one compiled function that runs every
step itself, calling the body's kernels and BLAS (`loops`, `blas`).
Very large elementwise work runs on the precompiled tape machine (`vm`) instead of getting
kernels of its own; conv, pooling, gather and scatter call dedicated kernels (`special`) named
in their op entries.

The package's modules, one job each:

- `driver`: `generate`, the module's source, with the lowering table of driver ops;
- `loops`: the compiled functions of loops and branches, with the lowering table of body ops;
- `blas`: the compiled matrix products loop functions call;
- `buffers`: storage planning for intermediates and the recycling of returned results;
- `cache`: the disk cache: folders, entry names, writing, loading all or nothing;
- `runtime`: the public names generated modules import (`buf`, `out`, `launch`, `kernel`, ...).

Example:
    >>> exe = compile_graph(optimized_graph)
    >>> print(exe.source)        # the generated kernels and driver
    >>> outs = exe([x, w])
"""

from __future__ import annotations

import bisect
import importlib.util
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.codegen import cache
from graphc.codegen.cache import CacheWarning, cache_dir, cache_path
from graphc.codegen.driver import generate, use_vm
from graphc.env import debug_level
from graphc.ir import Graph, GraphcError, Node, dtype_name
from graphc.ops import REGISTRY, Kind
from graphc.signature import InputCheck

__all__ = [
    "CacheWarning",
    "Executable",
    "cache_dir",
    "cache_path",
    "compile_graph",
    "generate",
    "is_compiled_kind",
    "mathlib_name",
    "numba_ready",
    "use_vm",
]

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

    Example:
        >>> exe = compile_graph(optimized_graph)
        >>> exe.path
        '/home/me/.cache/graphc/graphc_0b6c2e41f3a9d8e57c12.py'
    """
    t0 = time.perf_counter()
    # the drivers' runtime reads GRAPHC_THREADS: a bad value is reported here, before any cache
    # entry is touched, not from inside a generated module's import
    from graphc.codegen import runtime  # noqa: F401

    numba_ready()
    source, d = generate(graph)
    name = cache.module_name(source)
    with cache.loading():
        folder = cache.disk_dir()
        folder = cache.load_kernels(d.kernels, d.keys, d.const_defs(), d.e.imports, folder)
        mod, folder = cache.load_module(name, source, folder)
    path = os.path.join(folder, name + ".py") if folder is not None else None
    mod._K = dict(d.consts)
    exe = Executable(graph, source, path, mod.run, d.kernels, d.fallbacks)
    first = source.split("\n").index("def run(args, bufs):") + 2  # run()'s first line, 1-based
    exe.line_nodes = [(first + k, n) for k, n in d.line_nodes]
    exe.compile_seconds = time.perf_counter() - t0
    n_loops = len(d.loops.functions) if d.loops is not None else 0
    if debug_level():
        print(
            f"[graphc] compiled {len(d.kernels)} kernels, "
            + (f"{n_loops} loop functions, " if n_loops else "")
            + f"{len(d.vm_programs)} tape-machine runs in {exe.compile_seconds:.2f} s -> "
            f"{path or 'memory'}",
            file=sys.stderr,
        )
        for fb in d.fallbacks:
            print(f"[graphc]     NumPy fallback: {fb}", file=sys.stderr)
    return exe


def is_compiled_kind(n: Node) -> bool:
    """Whether node n runs compiled code of graphc's own (a kernel) or BLAS (a contraction).

    Example:
        >>> is_compiled_kind(matmul_node)
        True
    """
    return n.op == "fused" or REGISTRY[n.op].kind is Kind.CONTRACTION
