"""What generated drivers call at run time: chunked kernel launches on a small thread pool.

Kernels are compiled with `nogil=True` and take a chunk [lo, hi) of their outermost loop, so the
driver can run chunks on several threads without Numba's parallel machinery (whose compile time
is far larger than the kernels'). The calling thread runs the last chunk itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from graphc.env import env_int

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
