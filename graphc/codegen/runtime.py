"""What generated modules call at run time, under public names.

A graph's module imports these (as `_launch`, `_buf`, ... so that they cannot clash with the
driver's own names); nothing else of graphc is imported by generated code, so what this module
exports is the contract between the code generator and the code it writes:

- `kernel(key, signature, **options)`, `njit`: compiling (or reusing) kernels (`cache`);
- `buf`, `out`: planned and returned storage (`buffers`);
- `launch`, `chunks_for`: chunked kernel launches on a small thread pool;
- `flat`: an operand as the flat contiguous array kernels take;
- `call`, `impl`: ops run by a dedicated compiled kernel (`special`) or their NumPy reference;
- `vm_run`: a run of kernels on the tape machine (`vm`);
- `dot`: the compiled matrix products loop functions call (`blas`);
- `TripLimitError`: what a compiled `while_loop` raises past its `max_trips` (`loops`).

Kernels are compiled with `nogil=True` and take a chunk [lo, hi) of their outermost loop, so the
driver can run chunks on several threads without Numba's parallel machinery (whose compile time
is far larger than the kernels'). The calling thread runs the last chunk itself.

Example:
    >>> from graphc.codegen.runtime import flat
    >>> flat(np.ones((2, 3))).shape
    (6,)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from graphc.codegen.blas import dot
from graphc.codegen.buffers import buf, out
from graphc.codegen.cache import kernel, njit
from graphc.env import env_int
from graphc.ops import REGISTRY
from graphc.ops.control import TripLimitError

__all__ = [
    "buf",
    "call",
    "chunks_for",
    "dot",
    "flat",
    "impl",
    "kernel",
    "launch",
    "njit",
    "out",
    "TripLimitError",
    "vm_run",
]

N_THREADS = env_int("GRAPHC_THREADS", os.cpu_count() or 1, minimum=1)
PARALLEL_MIN_WORK = 1 << 21  # elements × ops below which threads cost more than they save
# (BLAS keeps its own threads spinning after a matrix product: small kernels split across
# threads would fight them for the cores)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, N_THREADS - 1), thread_name_prefix="graphc"
            )
        return _pool


def chunks_for(n0: int, work: int) -> int:
    """How many chunks to split an outermost loop of n0 iterations into."""
    if N_THREADS <= 1 or work < PARALLEL_MIN_WORK or n0 < 2:
        return 1
    return min(N_THREADS, n0)


def launch(kernel: Callable, nchunks: int, n0: int, *args) -> None:
    """Run kernel(*args, lo, hi, chunk) over [0, n0) in `nchunks` chunks."""
    if nchunks <= 1:
        kernel(*args, 0, n0, 0)
        return
    step = -(-n0 // nchunks)
    bounds = [(c * step, min(n0, (c + 1) * step)) for c in range(nchunks)]
    pool = _get_pool()
    futures = [pool.submit(kernel, *args, lo, hi, c) for c, (lo, hi) in enumerate(bounds[:-1])]
    lo, hi = bounds[-1]
    kernel(*args, lo, hi, nchunks - 1)
    for f in futures:
        f.result()


def flat(x: Any) -> np.ndarray:
    """A flat C-contiguous view (copied only when not contiguous). Kernel operands are typed
    read-only, so constants and np.frombuffer data pass without a copy."""
    a = np.asarray(x)
    return a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)


def impl(op: str, attrs: dict, *args: Any) -> Any:
    """Op `op` with attributes `attrs` by its NumPy reference (a fallback). The driver owns
    each result's storage as a new array: a reference returning an operand or a view of one
    (`check` returns its value) gets a copy, so no result aliases a buffer reused later."""
    out = REGISTRY[op].impl(*args, **attrs)
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    if not arrays:
        return out

    def fresh(r: Any) -> Any:
        if isinstance(r, np.ndarray) and any(np.may_share_memory(r, a) for a in arrays):
            return r.copy()
        return r

    return tuple(fresh(r) for r in out) if isinstance(out, tuple) else fresh(out)


def call(name: str, attrs: dict, *args: Any) -> Any:
    """The dedicated compiled kernel `name` of `special` (conv, pooling, gather, ...)."""
    from graphc.codegen import special

    return special.KERNELS[name](*args, **attrs)


def vm_run(prog: Any, ins: list, outs: list) -> tuple[list, list]:
    """Run a tape-machine program: returns (stored results, reduction results)."""
    from graphc.codegen import vm
    from graphc.codegen.kernels import reduce_identity
    from graphc.ir import dtype_name

    dt = prog.dtype
    flat_in = [flat(a) if np.asarray(a).dtype == dt else flat(a).astype(dt) for a in ins]
    # boolean results are computed as 0/1 in the machine's dtype, then converted
    work_out = [o if o.dtype == dt else np.empty(o.size, dt) for o in outs]
    p_in = np.array([a.ctypes.data for a in flat_in], np.int64)
    p_out = np.array([a.ctypes.data for a in work_out], np.int64)
    nblocks = -(-prog.size // prog.block)
    nchunks = chunks_for(nblocks, prog.size * max(prog.ops, 1))
    acc = np.empty((nchunks, max(len(prog.accs), 1)), dt)
    for j, (_, _, kind) in enumerate(prog.accs):
        acc[:, j] = reduce_identity(kind, dt)
    fn = getattr(vm.machine(), "vm_" + dtype_name(dt))
    launch(
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
