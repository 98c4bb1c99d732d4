"""Where a driver's values live: planned buffers for intermediates, recycled storage for results.

Intermediates live in buffers allocated on a driver's first call and reused by later calls (one
pool per thread); two intermediates whose lifetimes do not overlap share a buffer
(`StoragePlan`). A returned array's storage is reused by a later call only once the caller has
dropped it and every view of it (`recyclable`), so a later call never overwrites a result the
caller still holds.

Example:
    >>> plan = StoragePlan(graph.nodes, graph.outputs, views={"reshape"}, allocates={"matmul"})
    >>> plan.buffer(node, node.aval.size, node.dtype)
    '_buf(bufs, 0, 2048, np.float32)'
"""

from __future__ import annotations

import heapq
import mmap
import sys
from collections.abc import Iterable

import numpy as np

from graphc.ir import Node, TupleAval

HUGE_MIN_BYTES = 4 << 20  # buffers this large get a mapping of their own, on huge pages
_HUGE = 2 << 20


# ---------------------------------------------------------------------------------------------
# planning (at code generation)


class StoragePlan:
    """Which buffer each value of a graph is stored in.

    A node's storage belongs to its *owner*: itself, or for a view (an op in `views`, which
    returns a view of its first operand) its operand's owner. Owners are the results of kernels
    (`fused` nodes and the `proj`s of multi-result ones) and of ops in `allocates`; each is given
    a pooled slot, shared with owners whose lifetimes (birth to last use, views included) do
    not overlap. Owners of the graph's outputs get no slot: their storage is handed to the
    caller (`out`).

    Example:
        >>> plan = StoragePlan(g.nodes, g.outputs, views={"reshape"}, allocates={"matmul"})
        >>> plan.slots[id(matmul_node)]
        0
    """

    def __init__(
        self,
        nodes: list[Node],
        outputs: Iterable[Node],
        views: set[str],
        allocates: set[str],
    ) -> None:
        self.slots: dict[int, int] = {}  # id(owner) -> pooled buffer slot
        self.by_id = {id(n): n for n in nodes}
        pos = {id(n): k for k, n in enumerate(nodes)}
        base: dict[int, int] = {}  # id(node) -> id(node owning its storage)
        for n in nodes:
            base[id(n)] = base[id(n.inputs[0])] if n.op in views else id(n)
        self.base = base
        last: dict[int, int] = {}
        for n in nodes:
            for i in n.inputs:
                b = base[id(i)]
                last[b] = max(last.get(b, -1), pos[id(n)])
        # storage owners whose result is returned to the caller
        self.fresh = {base[id(o)] for o in outputs}
        self.n_out = 0
        # a kernel's (or a loop's) results are all written when it runs: they are born
        # together, with the node that computes them
        births: dict[int, list[Node]] = {}
        for n in nodes:
            if n.op == "proj":
                births.setdefault(id(n.inputs[0]), []).append(n)
            elif _owns_storage(n, allocates):
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

    def owner(self, n: Node) -> Node:
        """The node whose storage n's value lives in."""
        return self.by_id[self.base[id(n)]]

    def buffer(self, owner: Node | None, size: int, dt: np.dtype) -> str:
        """Source for the flat storage of a result: pooled if planned, else a returned array
        (which may recycle a previous call's result once the caller has let go of it)."""
        if owner is not None and id(owner) in self.slots:
            return f"_buf(bufs, {self.slots[id(owner)]}, {size}, np.{np.dtype(dt).name})"
        self.n_out += 1
        return f"_out(bufs, 'r{self.n_out}', {size}, np.{np.dtype(dt).name})"


def _owns_storage(n: Node, allocates: set[str]) -> bool:
    """Nodes whose result the driver allocates (kernel results and ops in `allocates`)."""
    if n.op == "fused":
        return not isinstance(n.aval, TupleAval)
    return n.op == "proj" or n.op in allocates


# ---------------------------------------------------------------------------------------------
# at run time


def alloc(size: int, dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised flat array. Large ones live in an anonymous mapping of their own,
    advised for transparent huge pages: once NumPy has freed big temporaries, malloc hands out
    recycled 4 KiB-paged heap memory instead, and streaming through that thrashes the TLB
    (measured: a 4M-element kernel 4x slower).

    Example:
        >>> alloc(3, np.float32).shape
        (3,)
    """
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
    # the array itself must be the root that views of it refer to (its base is a memoryview of
    # the mapping, not an array): `recyclable` counts the references to this array
    return np.frombuffer(m, dtype, count=size, offset=skip)


def buf(bufs: dict, slot: int, size: int, dtype: np.dtype | type) -> np.ndarray:
    """A pooled buffer, allocated on first use and reused by later calls.

    Example:
        >>> pool = {}; buf(pool, 0, 4, np.float64) is buf(pool, 0, 4, np.float64)
        True
    """
    b = bufs.get(slot)
    if b is None or b.size != size or b.dtype != dtype:
        b = bufs[slot] = alloc(size, dtype)
    return b


def out(bufs: dict, key: str, size: int, dtype: np.dtype | type) -> np.ndarray:
    """Storage for a result returned to the caller: the previous call's array at this position
    when `recyclable` says nothing but the pool refers to it any more, else a fresh one. Reusing
    it avoids first-touch page faults on fresh memory, which cost more than the kernels.

    Example:
        >>> pool = {}; a = out(pool, "r1", 4, np.float64); b = out(pool, "r1", 4, np.float64)
        >>> a is b    # the caller still holds a
        False
    """
    if recyclable(bufs, key, size, dtype):
        return bufs[key]
    a = bufs[key] = alloc(size, dtype)
    return a


def _refs(pool: dict, key: str) -> int:
    # the measurement `recyclable` compares against its calibration: the same code, so the
    # same temporary references (the subscript's result, getrefcount's argument)
    return sys.getrefcount(pool[key])


def _calibrate() -> int | None:
    """What `_refs` reports for an array only a pool holds; None where reference counts do not
    say who holds an object (not CPython) or the count is not what a pool alone explains."""
    if sys.implementation.name != "cpython" or not hasattr(sys, "getrefcount"):
        return None
    n = _refs({"r": np.empty(1)}, "r")
    return n if 1 <= n <= 3 else None


_ONLY_THE_POOL: int | None = _calibrate()


def recyclable(pool: dict, key: str, size: int, dtype: np.dtype | type) -> bool:
    """Whether `pool[key]`, an array a previous call returned (through views), may be
    overwritten by this call: only when nothing but the pool refers to it any more.

    What the decision relies on, and where it refuses (answers False, so the caller allocates
    fresh storage and the old array stays as it was):

    - CPython's reference counts: every live reference to an object is counted, and
      `sys.getrefcount` reports it. The count an array held by the pool alone shows is measured
      once at import, through the same code (`_calibrate`); elsewhere (PyPy, GraalPy), or when
      that count is implausible, it always refuses.
    - Every view of the array refers to the array itself. NumPy points a view's `base` at the
      first array up the chain that owns its data or whose base is not an array: an array that
      owns its data (`np.empty`), or whose base is a memoryview (`alloc`'s mapped memory). It
      refuses an array whose base is another array (a view: views of it need not count towards
      it) or another object, and subclasses of ndarray.
    - The driver holds no reference of its own to a returned array between calls (its locals
      are gone once `run` returns), so any count above the pool's is the caller's: the result,
      a view of it, or anything that keeps one. A count below the pool's is unexpected:
      it refuses.
    - The array still has the requested size and dtype, and is writeable and contiguous.

    Memory reached other than through the array (its raw address, or its base memoryview taken
    by hand) is not tracked. Each thread has its own pool, so no other thread measures at once.

    Example:
        >>> pool = {"r1": alloc(4, np.float64)}
        >>> kept = pool["r1"].reshape(2, 2); recyclable(pool, "r1", 4, np.float64)
        False
        >>> del kept; recyclable(pool, "r1", 4, np.float64)
        True
    """
    if _ONLY_THE_POOL is None:
        return False
    prev = pool.get(key)
    if (
        type(prev) is not np.ndarray
        or prev.size != size
        or prev.dtype != dtype
        or not (prev.flags.owndata or isinstance(prev.base, memoryview))
        or not prev.flags.writeable
        or not prev.flags.c_contiguous
    ):
        return False
    del prev  # the count below must see only the pool's reference and the caller's
    return _refs(pool, key) == _ONLY_THE_POOL
