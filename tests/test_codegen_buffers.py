"""graphc.codegen.buffers: storage planning, and the recycling of returned results.

A result the caller keeps (or any view of it) is never overwritten by a later call; a result
the caller dropped is written into again; the decision refuses wherever what it relies on does
not hold.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import graphc
from graphc.codegen import buffers
from graphc.codegen import driver as cg_driver
from graphc.codegen.buffers import HUGE_MIN_BYTES, StoragePlan, alloc, buf, out, recyclable


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


# -- through compiled functions --------------------------------------------------------------


def _elementwise(x, w):
    return np.tanh(x) * 2.0 + w


def _product(x, w):
    return x @ w.T


def _reduction(x, w):
    return np.sum(x * w, axis=1)


FUNCTIONS = [_elementwise, _product, _reduction]


def _inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 6)), rng.standard_normal((4, 6))


@pytest.fixture(params=["kernel", "tape"])
def path(request, monkeypatch):
    """Results written by a kernel, or by the tape machine."""
    if request.param == "tape":
        monkeypatch.setattr(cg_driver, "VM_MIN_OPS", 0)
    return request.param


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_a_result_the_caller_keeps_is_never_overwritten(fn, path):
    f = graphc.jit(fn)
    a = _inputs(0)
    b = _inputs(1)
    first = f(*a)
    kept = first.copy()
    second = f(*b)
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_allclose(first, fn(*a), rtol=1e-12)
    np.testing.assert_allclose(second, fn(*b), rtol=1e-12)
    assert not np.shares_memory(first, second)


# (a reduction's result is a new array on every call: nothing to recycle)
@pytest.mark.parametrize("fn", [_elementwise, _product], ids=lambda f: f.__name__)
def test_a_result_the_caller_dropped_is_written_into_again(fn, path):
    f = graphc.jit(fn)
    f(*_inputs(0))  # compiled; its result dropped at once
    first = f(*_inputs(1))
    where = _address(first)
    del first
    b = _inputs(2)
    second = f(*b)
    # the old storage is still in the pool when the new result is made: the same address is
    # the same buffer, not a freed one handed out again
    assert _address(second) == where
    np.testing.assert_allclose(second, fn(*b), rtol=1e-12)


def _as_array(held) -> np.ndarray:
    return np.asarray(held[0] if isinstance(held, list) else held)


@pytest.mark.parametrize(
    "view",
    [
        lambda r: r[1:],
        lambda r: r.T,
        lambda r: r.reshape(-1)[::2],
        lambda r: r.view(np.uint8),
        lambda r: memoryview(r),
        lambda r: [r],
    ],
    ids=["slice", "transpose", "view-of-view", "reinterpreted", "memoryview", "in-a-list"],
)
def test_a_view_of_a_dropped_result_keeps_it_from_being_overwritten(view):
    f = graphc.jit(_elementwise)
    first = f(*_inputs(0))
    held = view(first)
    want = np.array(_as_array(held))
    where = _address(first)
    del first
    second = f(*_inputs(1))
    assert _address(second) != where
    np.testing.assert_array_equal(_as_array(held), want)


def test_every_result_of_a_multi_result_function_is_kept_separately():
    f = graphc.jit(graphc.value_and_grad(lambda x, w: np.sum(np.tanh(x) * w), argnums=(0, 1)))
    a, b = _inputs(0), _inputs(1)
    value, (gx, gw) = f(*a)
    kept = [np.array(value), gx.copy(), gw.copy()]
    value2, (gx2, gw2) = f(*b)
    for got, want in zip([value, gx, gw], kept, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(gx2, (1 - np.tanh(b[0]) ** 2) * b[1], rtol=1e-12)
    np.testing.assert_allclose(gw2, np.tanh(b[0]), rtol=1e-12)


# -- the decision itself ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, HUGE_MIN_BYTES // 8], ids=["heap", "mapped"])
def test_an_array_only_the_pool_holds_is_recyclable(size):
    pool = {"r1": alloc(size, np.float64)}
    assert recyclable(pool, "r1", size, np.float64)
    assert recyclable(pool, "r1", size, np.dtype(np.float64))


@pytest.mark.parametrize("size", [8, HUGE_MIN_BYTES // 8], ids=["heap", "mapped"])
@pytest.mark.parametrize(
    "hold",
    [
        lambda a: a,
        lambda a: a.reshape(2, -1),
        lambda a: a[1:][::2],
        lambda a: a.view(np.int64),
        lambda a: memoryview(a),
        lambda a: {"x": a},
    ],
    ids=["itself", "reshaped", "view-of-view", "reinterpreted", "memoryview", "in-a-dict"],
)
def test_any_other_reference_or_view_prevents_recycling(size, hold):
    pool = {"r1": alloc(size, np.float64)}
    held = hold(pool["r1"])
    assert not recyclable(pool, "r1", size, np.float64)
    del held
    assert recyclable(pool, "r1", size, np.float64)


class _Sub(np.ndarray):
    pass


@pytest.mark.parametrize(
    "entry,size,dtype",
    [
        (None, 8, np.float64),  # no previous result
        (np.arange(16.0)[4:12], 8, np.float64),  # a view: its views refer to another array
        (np.frombuffer(bytearray(64), np.float64), 8, np.float64),  # memory of another object
        (np.empty(8).view(_Sub), 8, np.float64),  # a subclass
        (np.empty(8), 9, np.float64),  # another size
        (np.empty(8), 8, np.float32),  # another dtype
        (np.empty(8)[::-1].copy()[::-1], 8, np.float64),  # not contiguous (and a view)
    ],
    ids=["missing", "view", "foreign-memory", "subclass", "size", "dtype", "reversed"],
)
def test_it_refuses_arrays_that_break_its_assumptions(entry, size, dtype):
    pool = {} if entry is None else {"r1": entry}
    del entry
    assert not recyclable(pool, "r1", size, dtype)


def test_it_refuses_a_read_only_array():
    pool = {"r1": np.empty(8)}
    pool["r1"].flags.writeable = False
    assert not recyclable(pool, "r1", 8, np.float64)


def test_it_refuses_everything_without_exact_reference_counts(monkeypatch):
    monkeypatch.setattr(sys, "implementation", types.SimpleNamespace(name="pypy"))
    assert buffers._calibrate() is None
    monkeypatch.undo()
    assert buffers._calibrate() == buffers._ONLY_THE_POOL is not None
    monkeypatch.setattr(buffers, "_ONLY_THE_POOL", None)
    pool = {"r1": np.empty(8)}
    assert not recyclable(pool, "r1", 8, np.float64)
    assert out(pool, "r1", 8, np.float64) is not None
    a = pool["r1"]
    assert out(pool, "r1", 8, np.float64) is not a  # fresh storage every time


def test_out_reuses_a_dropped_result_and_allocates_beside_a_kept_one():
    pool: dict = {}
    a = out(pool, "r1", 8, np.float64)
    a[:] = 1.0
    b = out(pool, "r1", 8, np.float64)
    assert b is not a and pool["r1"] is b
    np.testing.assert_array_equal(a, 1.0)
    where = _address(b)
    del a, b
    c = out(pool, "r1", 8, np.float64)
    assert _address(c) == where
    assert out(pool, "r1", 4, np.float64).size == 4  # another size: new storage


def test_a_pooled_buffer_is_reused_until_its_size_or_dtype_changes():
    pool: dict = {}
    a = buf(pool, 0, 8, np.float32)
    assert buf(pool, 0, 8, np.float32) is a
    assert buf(pool, 0, 9, np.float32) is not a
    assert buf(pool, 0, 9, np.float64).dtype == np.float64


@pytest.mark.parametrize("size", [3, HUGE_MIN_BYTES // 4 + 5])
def test_alloc_gives_a_writeable_flat_array_of_the_size(size):
    a = alloc(size, np.float32)
    assert a.shape == (size,) and a.dtype == np.float32 and a.flags.writeable
    a[:] = 2.0
    assert float(a[-1]) == 2.0
    if size * 4 >= HUGE_MIN_BYTES:
        assert isinstance(a.base, memoryview)  # its own mapping; views of it point to a


# -- planning ------------------------------------------------------------------------------


def _matmul_chain(a, b, c, d, e):
    return (((a @ b) @ c) @ d) @ e


def _plan(fn, *args) -> tuple[StoragePlan, list]:
    g = graphc.trace(fn, *args)
    plan = StoragePlan(g.nodes, g.outputs, views={"reshape", "transpose"}, allocates={"matmul"})
    products = [n for n in g.nodes if n.op == "matmul"]
    return plan, products


def test_intermediates_whose_lifetimes_do_not_overlap_share_a_buffer():
    m = np.ones((3, 3))
    plan, (p1, p2, p3, p4) = _plan(_matmul_chain, m, m, m, m, m)
    # p1 is read by p2 (so both live at once), dead when p3 is born: p3 takes its buffer
    assert plan.slots[id(p1)] != plan.slots[id(p2)]
    assert plan.slots[id(p3)] == plan.slots[id(p1)]
    assert id(p4) not in plan.slots  # the output: handed to the caller, not pooled
    assert plan.buffer(p4, 9, np.float64) == "_out(bufs, 'r1', 9, np.float64)"
    assert plan.buffer(p1, 9, np.float64) == f"_buf(bufs, {plan.slots[id(p1)]}, 9, np.float64)"


def test_a_view_keeps_the_buffer_it_looks_into_alive():
    def fn(a, b, c, d):
        p1 = a @ b
        t = p1.T  # read at the end: p1's buffer must live until then
        p2 = p1 @ c
        p3 = p2 @ d
        return p3 @ t

    m = np.ones((3, 3))
    plan, (p1, p2, p3, _) = _plan(fn, m, m, m, m)
    # without the view, p1 would be dead when p3 is born and p3 would take its buffer
    assert len({plan.slots[id(p1)], plan.slots[id(p2)], plan.slots[id(p3)]}) == 3


def test_buffers_of_other_sizes_are_not_shared():
    plan, (p1, _, p3, _) = _plan(
        _matmul_chain,
        np.ones((2, 3)),
        np.ones((3, 4)),
        np.ones((4, 5)),
        np.ones((5, 6)),
        np.ones((6, 7)),
    )
    # p1 (2x4) is dead when p3 (2x6) is born, but a buffer only serves values of its size
    assert plan.slots[id(p3)] != plan.slots[id(p1)]
