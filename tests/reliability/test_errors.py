"""Bad input gets a clear graphc error naming what was wrong and the user's file:line.

Covers: ndarray methods and their keywords (initial=/where= work, unknown keywords are named),
ndarray attributes, errors of composite NumPy functions naming the user's call, einsum
subscripts, runtime errors of compiled graphs mapped to the traced line, item assignment of
traced values into NumPy arrays, libraries that call NumPy, and the IR text parser (a catalogue
of bad text and random mutations of good text).
"""

import inspect
import os
import sys
import textwrap

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import graphc
import passes
from graphc.text import ParseError, TextTypeError

HERE = os.path.basename(__file__)
RNG = np.random.default_rng(0)


def _lines_of(marker: str) -> list[int]:
    """The lines of this file carrying the comment `# <marker>`."""
    with open(__file__) as f:
        out = [k for k, line in enumerate(f, 1) if line.rstrip().endswith(f"# {marker}")]
    assert out, f"no line marked {marker}"
    return out


def _line_of(marker: str) -> int:
    (k,) = _lines_of(marker)
    return k


def _assert_at(err: BaseException, marker: str) -> None:
    """The error names this file at a line marked `marker` (and says `at`)."""
    msg = str(err)
    assert any(f"{HERE}:{k})" in msg for k in _lines_of(marker)), msg


def _trace_error(fn, *args, cls=graphc.GraphcError):
    with pytest.raises(cls) as info:
        graphc.trace(fn, *args)
    return info.value


X = RNG.standard_normal((3, 4))
MASK = RNG.random((3, 4)) > 0.4
MASK[:, 0] = True  # every row and column keeps an element, so means are defined
MASK[0, :] = True


# ---------------------------------------------------------------------------------------------
# reductions: initial= and where= work, as in NumPy (methods and functions)

REDUCTIONS = [
    ("sum", {"initial": 1.5}),
    ("sum", {"where": MASK}),
    ("sum", {"where": MASK, "initial": -2.0, "axis": 1}),
    ("sum", {"where": MASK[0], "axis": 0, "keepdims": True}),
    ("prod", {"where": MASK, "axis": 0}),
    ("prod", {"initial": 3.0, "axis": (0, 1)}),
    ("max", {"initial": 0.0}),
    ("max", {"initial": 10.0, "axis": 1}),
    ("max", {"where": MASK, "initial": -5.0, "axis": 0}),
    ("min", {"where": MASK, "initial": 5.0, "axis": 1, "keepdims": True}),
    ("min", {"initial": -0.25}),
    ("mean", {"where": MASK}),
    ("mean", {"where": MASK, "axis": 1}),
    ("var", {"where": MASK, "axis": 0}),
    ("std", {"where": MASK, "axis": 1, "ddof": 1}),
    ("any", {"where": MASK}),
    ("all", {"where": MASK, "axis": 0}),
    ("sum", {"where": True}),
]


@pytest.mark.parametrize("name, kw", REDUCTIONS, ids=lambda v: str(v)[:40])
@pytest.mark.parametrize("form", ["method", "function"])
def test_reduction_keywords_match_numpy(name, kw, form):
    x = X > 0 if name in ("any", "all") else X
    if form == "method":

        def f(a):
            return getattr(a, name)(**kw)
    else:

        def f(a):
            return getattr(np, name)(a, **kw)

    want = f(x)
    g = graphc.trace(f, x)
    (got,) = graphc.evaluate(g, x)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got.dtype == np.asarray(want).dtype
    np.testing.assert_allclose(graphc.jit(f)(x), want, rtol=1e-12)


def test_reduction_with_traced_mask_matches_numpy_and_differentiates():
    def f(a, b):
        m = b > 0  # a mask that is itself traced
        return np.sum(a * a, where=m) + a.max(where=m, initial=-3.0) + a.mean(axis=0, where=m)

    b = RNG.standard_normal((3, 4))
    b[0] = 1.0  # every column keeps an element
    want = f(X, b)
    np.testing.assert_allclose(graphc.jit(f)(X, b), want, rtol=1e-12)
    graphc.check_grads(lambda a: f(a, b), (X,))


def test_empty_reductions_with_initial():
    z = np.zeros((0, 3))
    for f in (
        lambda a: a.max(axis=0, initial=-1.0),
        lambda a: np.min(a, axis=0, initial=2.0),
        lambda a: a.sum(axis=0, initial=4.0),
        lambda a: np.any(a > 0, axis=0),
        lambda a: np.all(a > 0, axis=0),
    ):
        (got,) = graphc.evaluate(graphc.trace(f, z), z)
        np.testing.assert_array_equal(got, f(z))


def test_where_needs_initial_for_max_and_bad_masks_are_named():
    e = _trace_error(lambda a: a.max(where=a > 0), X)  # err-max-where
    assert "initial" in str(e) and "where" in str(e)
    _assert_at(e, "err-max-where")
    e = _trace_error(lambda a: np.sum(a, where=np.ones(3, bool)), X)  # err-mask-shape
    assert "where=" in str(e) and "(3,)" in str(e) and "(3, 4)" in str(e)
    _assert_at(e, "err-mask-shape")


# ---------------------------------------------------------------------------------------------
# method keywords: unknown ones are named, unsupported ones say so


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda a: a.mean(bogus=1), "bogus"),  # err-kw
        (lambda a: a.sum(axis=0, keepdim=True), "keepdim"),  # err-kw
        (lambda a: a.max(axes=0), "axes"),  # err-kw
        (lambda a: a.reshape(12, shape=3), "shape"),  # err-kw
        (lambda a: a.astype(np.float32, dtype=3), "dtype"),  # err-kw
        (lambda a: a.clip(0, 1, a_min=0), "a_min"),  # err-kw
        (lambda a: a.argsort(axis=0, descending=True), "descending"),  # err-kw
        (lambda a: a.cumsum(axis=0, reverse=True), "reverse"),  # err-kw
        (lambda a: a.squeeze(0, 1), "positional"),  # err-kw
        (lambda a: a.swapaxes(0), "axis2"),  # err-kw
        (lambda a: a.take(), "indices"),  # err-kw
        (lambda a: a.var(ddof=1, bias=True), "bias"),  # err-kw
    ],
)
def test_bad_method_arguments_are_named_at_the_users_line(call, word):
    e = _trace_error(call, X, cls=graphc.GraphcError)
    assert isinstance(e, graphc.ArgumentError) and isinstance(e, TypeError)  # as NumPy
    msg = str(e)
    assert word in msg, msg
    assert "lambda" not in msg and "_m_" not in msg, msg  # no internal function's signature
    _assert_at(e, "err-kw")


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda a: a.sum(out=a), "out="),  # err-unsup
        (lambda a: a.max(axis=0, out=a), "out="),  # err-unsup
        (lambda a: a.argmax(out=a), "out="),  # err-unsup
        (lambda a: a.cumsum(out=a), "out="),  # err-unsup
        (lambda a: a.round(2, out=a), "out="),  # err-unsup
        (lambda a: a.take([0], mode="wrap"), "mode"),  # err-unsup
        (lambda a: a.dot(a.T, out=a), "out="),  # err-unsup
    ],
)
def test_unsupported_method_keywords_are_named(call, word):
    e = _trace_error(call, X, cls=graphc.UnsupportedError)
    assert word in str(e), str(e)
    _assert_at(e, "err-unsup")


def test_method_keywords_numpy_accepts_work():
    fns = [
        lambda a: a.astype(np.float32, order="C", casting="same_kind", copy=False),
        lambda a: a.copy(order="F"),
        lambda a: a.reshape((4, 3), order="C"),
        lambda a: a.argmax(axis=1, keepdims=True),
        lambda a: a.clip(min=-0.5, max=0.5),
        lambda a: np.var(a, axis=0, correction=1),
        lambda a: a.std(axis=1, ddof=1, keepdims=True),
        lambda a: a.transpose(1, 0),
        lambda a: a.transpose((1, 0)),
        lambda a: a.transpose(None),
        lambda a: np.zeros_like(a, shape=(2, 5)),
        lambda a: np.full_like(a, 7.0, dtype=np.float32, shape=(4,)),
        lambda a: np.ones_like(a, order="F", subok=True),
    ]
    for f in fns:
        (got,) = graphc.evaluate(graphc.trace(f, X), X)
        want = f(X)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert got.shape == want.shape and got.dtype == want.dtype


def test_astype_casting_rule_is_checked():
    e = _trace_error(lambda a: a.astype(np.int32, casting="safe"), X)  # err-cast
    assert "safe" in str(e) and "int32" in str(e)
    _assert_at(e, "err-cast")


# ---------------------------------------------------------------------------------------------
# ndarray attributes


@pytest.mark.parametrize(
    "f",
    [
        lambda a: a.real * 2,
        lambda a: a.imag + a,
        lambda a: a.conj() - a.conjugate(),
        lambda a: a.flat[5] + a.flat[-1],
        lambda a: a.flat[2:7],
        lambda a: np.stack(list(a.flat)),
        lambda a: a.T @ a,
        lambda a: a.mT,
        lambda a: a * a.nbytes + a.itemsize,
        lambda a: a.flatten()[::2],
    ],
)
def test_ndarray_attributes_match_numpy(f):
    (got,) = graphc.evaluate(graphc.trace(f, X), X)
    want = f(X)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got.shape == np.shape(want)


def test_every_ndarray_attribute_works_or_says_why_not():
    """Every public ndarray attribute: a value, a callable, or a graphc error naming it."""
    names = [n for n in dir(np.ndarray) if not n.startswith("_")]
    seen = []

    def f(a):
        for name in names:
            try:
                v = getattr(a, name)
            except graphc.GraphcError as e:
                assert name in str(e), (name, str(e))
                assert f"{HERE}:" in str(e), (name, str(e))
                seen.append(name)
                continue
            assert v is not None, name
        return a

    graphc.trace(f, X)
    assert {"fill", "sort", "nonzero", "flags", "strides"} <= set(seen)
    for name in ("real", "imag", "flat", "nbytes", "T", "sum", "item", "view"):
        assert name not in seen


def test_unsupported_attributes_say_why_and_keep_hasattr_working():
    e = _trace_error(lambda a: a.sort(), X, cls=graphc.UnsupportedError)  # err-sort
    assert "in place" in str(e) and "np.sort" in str(e)
    _assert_at(e, "err-sort")
    e = _trace_error(lambda a: a.nonzero(), X, cls=graphc.UnsupportedError)  # err-nonzero
    assert "nonzero" in str(e) and "np.where" in str(e)
    _assert_at(e, "err-nonzero")
    e = _trace_error(lambda a: a.fill(0), X, cls=graphc.UnsupportedError)  # err-fill
    _assert_at(e, "err-fill")
    e = _trace_error(lambda a: a.sum().item(), X, cls=graphc.TracerError)  # err-item
    assert ".item()" in str(e)
    _assert_at(e, "err-item")
    flags = []
    graphc.trace(lambda a: flags.append(hasattr(a, "flags") or hasattr(a, "no_such")) or a, X)
    assert flags == [False]
    with pytest.raises(AttributeError, match="no_such"):
        graphc.trace(lambda a: a.no_such, X)


# ---------------------------------------------------------------------------------------------
# composite NumPy functions name the user's call, not their building blocks


@pytest.mark.parametrize(
    "f, name",
    [
        (lambda a: np.concatenate([a, a], axis=3), "np.concatenate"),  # err-call
        (lambda a: np.concatenate([a, a.T]), "np.concatenate"),  # err-call
        (lambda a: np.flip(a, 5), "np.flip"),  # err-call
        (lambda a: np.squeeze(a, 5), "np.squeeze"),  # err-call
        (lambda a: np.squeeze(a, 0), "np.squeeze"),  # err-call
        (lambda a: np.stack([a, a], axis=5), "np.stack"),  # err-call
        (lambda a: np.stack([a, a.T]), "np.stack"),  # err-call
        (lambda a: np.expand_dims(a, 7), "np.expand_dims"),  # err-call
        (lambda a: np.sum(a, axis=-3), "np.sum"),  # err-call
        (lambda a: np.mean(a, axis=(0, 0)), "np.mean"),  # err-call
        (lambda a: np.argmax(a, axis=2), "np.argmax"),  # err-call
        (lambda a: np.take(a, [0], axis=4), "np.take"),  # err-call
        (lambda a: np.logaddexp.reduce(a, axis=5), "logaddexp.reduce"),  # err-call
        (lambda a: np.add.reduce(a, axis=9), "np.add.reduce"),  # err-call
        (lambda a: a.sum(axis=9), ".sum()"),  # err-call
        (lambda a: a.squeeze(axis=1), ".squeeze()"),  # err-call
        (lambda a: a.reshape(5, 5), "reshape"),  # err-call
        (lambda a: np.linalg.norm(a, axis=4), "np.linalg.norm"),  # err-call
    ],
)
def test_errors_name_the_function_the_user_called(f, name):
    e = _trace_error(f, X)
    msg = str(e)
    assert name in msg, msg
    for internal in ("reduction:", "expand_dims:", "reduce_sum:", "reduce_max:"):
        if internal.rstrip(":") not in name:
            assert internal not in msg, msg
    _assert_at(e, "err-call")


# ---------------------------------------------------------------------------------------------
# einsum subscripts are validated like NumPy's

A34, B45, C33 = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5)), np.eye(3)


@pytest.mark.parametrize(
    "spec, ops, words",
    [
        ("ij->zz", (A34,), ["'z'", "more than once"]),
        ("ij->k", (A34,), ["'k'", "no input"]),
        ("ij->I", (A34,), ["'I'", "no input"]),
        ("ij->ii", (A34,), ["'i'", "more than once"]),
        ("ijk->i", (A34,), ["operand 0", "3"]),
        ("i->i", (A34,), ["operand 0", "2 dimensions"]),
        ("ij,jk->ik", (A34,), ["2 operands", "1 was given"]),
        ("ij->i", (A34, B45), ["1 operand", "2 were given"]),
        ("ij,jk->ik", (A34, A34), ["'j'", "size 4", "3"]),
        ("ij,ij->i", (A34, B45), ["'i'", "size 3", "4"]),
        ("i1->i", (A34,), ["'1'", "letters"]),
        ("ij->i->j", (A34,), ["'->'"]),
        ("ij-i", (A34,), ["'->'"]),
        ("ij>i", (A34,), ["'->'"]),
    ],
)
def test_einsum_bad_subscripts(spec, ops, words):
    with pytest.raises(ValueError):
        np.einsum(spec, *ops)  # NumPy rejects them too

    def f(*xs):
        return np.einsum(spec, *xs)  # err-einsum

    e = _trace_error(f, *ops)
    msg = str(e)
    assert "np.einsum" in msg, msg
    for w in words:
        assert w in msg, msg
    assert "substring" not in msg
    _assert_at(e, "err-einsum")


@pytest.mark.parametrize(
    "spec, ops",
    [
        ("ij,jk->ik", (A34, B45)),
        ("ij,jk", (A34, B45)),
        ("ij->", (A34,)),
        ("ij->ji", (A34,)),
        ("i j , j k -> k i", (A34, B45)),
        ("ij,ij->i", (A34, A34)),
        ("ab,bc,cd->ad", (A34, B45, B45.T)),
    ],
)
def test_einsum_valid_subscripts_still_match_numpy(spec, ops):
    (got,) = graphc.evaluate(graphc.trace(lambda *xs: np.einsum(spec, *xs), *ops), *ops)
    np.testing.assert_allclose(got, np.einsum(spec, *ops), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# runtime errors of compiled graphs point at the traced line


def _gather_x(x, i):
    return np.tanh(x[i]) * 2  # err-gather-x


def _gather_take(x, i):
    return np.take(x, i, axis=1).sum() + x.sum()  # err-gather-take


def _gather_along(x, i):
    return np.take_along_axis(x, np.stack([i, i, i]), axis=1)  # err-gather-along


def _gather_grad(x, i):
    return graphc.grad(lambda y: (y[:, i] ** 2).sum())(x)  # err-gather-grad


@pytest.mark.parametrize(
    "fn, marker, bad",
    [
        (_gather_x, "err-gather-x", np.array([0, 3])),
        (_gather_x, "err-gather-x", np.array([-4])),
        (_gather_take, "err-gather-take", np.array([1, 4])),
        (_gather_along, "err-gather-along", np.array([9, 0])),
        (_gather_grad, "err-gather-grad", np.array([0, 5])),
    ],
)
def test_out_of_range_indices_name_the_traced_line(fn, marker, bad):
    x = RNG.standard_normal((3, 4))
    ok = np.zeros_like(bad)
    step = graphc.jit(fn)
    np.testing.assert_allclose(step(x, ok), fn(x, ok), rtol=1e-12)  # fine indices still work
    for run in (lambda: step(x, bad), lambda: graphc.evaluate(graphc.trace(fn, x, bad), x, bad)):
        with pytest.raises(graphc.GraphcError) as info:
            run()
        msg = str(info.value)
        assert "out of bounds" in msg, msg
        assert "gather" in msg or "scatter" in msg, msg
        _assert_at(info.value, marker)


def test_driver_line_map_points_at_each_nodes_code():
    from graphc.codegen import compile_graph

    def f(x, W, i):
        h = np.tanh(x @ W)
        return (h[i] ** 2).sum() + np.concatenate([h, h], axis=1).max()

    args = (X, RNG.standard_normal((4, 2)), np.array([0, 2]))
    g = passes.run_pipeline(graphc.trace(graphc.value_and_grad(f), *args), passes.COMPILE_PIPELINE)
    exe = compile_graph(g)
    lines = exe.source.split("\n")
    assert len(exe.line_nodes) >= 5
    for ln, n in exe.line_nodes[:-1]:
        assert lines[ln - 1].startswith("    # "), lines[ln - 1]
        assert f"= {n.op}" in lines[ln - 1], (lines[ln - 1], n.op)
    ln, n = exe.line_nodes[-1]  # the outputs: no node
    assert n is None and "return [" in "\n".join(lines[ln - 1 :])


# ---------------------------------------------------------------------------------------------
# filling a preallocated NumPy array with traced values


def _fill_scalars(x):
    out = np.zeros(4)
    for i in range(4):
        out[i] = x[i] ** 2  # err-fill-scalar
    return out


def _fill_rows(x):
    out = np.empty((3, 4))
    for i in range(3):
        out[i] = np.tanh(x[i])  # err-fill-row
    return out


def _fill_slice(x):
    out = np.zeros((3, 4))
    out[:, 1:] = x[:, 1:]  # err-fill-slice
    return out


def _fill_fancy(x):
    out = np.zeros(4)
    out[[0, 2]] = x[:2, 0]  # err-fill-fancy
    return out


@pytest.mark.parametrize(
    "fn, marker",
    [
        (_fill_scalars, "err-fill-scalar"),
        (_fill_rows, "err-fill-row"),
        (_fill_slice, "err-fill-slice"),
        (_fill_fancy, "err-fill-fancy"),
    ],
)
def test_item_assignment_into_numpy_arrays_is_named(fn, marker):
    x = RNG.standard_normal((4, 4))[: 3 if "row" in marker or "slice" in marker else 4]
    for run in (
        lambda: graphc.trace(fn, x),
        lambda: graphc.jit(fn)(x),
        lambda: graphc.grad(lambda y: fn(y).sum())(x),
    ):
        with pytest.raises(graphc.TracerError) as info:
            run()
        msg = str(info.value)
        assert "assigning a traced value into a NumPy array" in msg, msg
        assert "np.stack" in msg
        _assert_at(info.value, marker)


def test_building_a_list_instead_matches_numpy():
    def f(x):
        out = [None] * 4
        for i in range(4):
            out[i] = x[i] ** 2
        return np.stack(out)

    x = RNG.standard_normal(4)
    np.testing.assert_allclose(graphc.jit(f)(x), f(x), rtol=1e-12)


def test_other_concrete_conversions_keep_their_messages():
    e = _trace_error(lambda a: float(a.sum()), X, cls=graphc.TracerError)  # err-float
    assert "float()" in str(e)
    _assert_at(e, "err-float")
    e = _trace_error(lambda a: np.asarray(a) + 1, X, cls=graphc.TracerError)  # err-asarray
    assert "np.asarray" in str(e)
    _assert_at(e, "err-asarray")


# ---------------------------------------------------------------------------------------------
# libraries that call NumPy: the error names the user's line (and where in the library)

FAKE_LIB = """
import numpy as np


def normalise(x):
    arr = np.asarray(x, dtype=float)  # lib-asarray
    return arr / arr.sum()


def wrong_axis(x):
    return np.sum(x, axis=7)  # lib-axis


def helper(x):
    return np.tanh(x) * 2


def nested(x):
    return wrong_axis(x) + 1
"""


@pytest.fixture
def fakelib(tmp_path, monkeypatch):
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "fakelib_gc.py").write_text(textwrap.dedent(FAKE_LIB))
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("fakelib_gc", None)
    import fakelib_gc

    yield fakelib_gc
    sys.modules.pop("fakelib_gc", None)


def test_library_converting_a_tracer_is_reported_at_the_users_line(fakelib):
    e = _trace_error(lambda a: fakelib.normalise(a) * 2, X, cls=graphc.TracerError)  # err-lib
    msg = str(e)
    _assert_at(e, "err-lib")
    assert "fakelib_gc.py:" in msg and "library" in msg, msg


def test_library_shape_errors_are_reported_at_the_users_line(fakelib):
    e = _trace_error(lambda a: fakelib.wrong_axis(a), X, cls=graphc.ShapeError)  # err-lib-axis
    assert "np.sum" in str(e) and "axis 7" in str(e)
    _assert_at(e, "err-lib-axis")
    e = _trace_error(lambda a: fakelib.nested(a), X, cls=graphc.ShapeError)  # err-lib-nested
    _assert_at(e, "err-lib-nested")


def test_library_calls_that_trace_record_the_users_line(fakelib):
    g = graphc.trace(lambda a: fakelib.helper(a) + 1, X)  # lib-ok
    locs = {n.meta.loc for n in g.equations}
    assert locs == {f"{os.path.relpath(__file__)}:{_line_of('lib-ok')}"}, locs
    (got,) = graphc.evaluate(g, X)
    np.testing.assert_allclose(got, np.tanh(X) * 2 + 1, rtol=1e-12)


def test_scipy_logsumexp_is_reported_at_the_users_line():
    special = pytest.importorskip("scipy.special")
    e = _trace_error(lambda a: special.logsumexp(a, axis=1), X)  # err-scipy
    _assert_at(e, "err-scipy")
    assert "scipy" in str(e)


# ---------------------------------------------------------------------------------------------
# IR text: every error is a ParseError with its line (and column)

GOOD = """{ lambda ; a:f32[4,3] b:f32[3]. let
    c:f32[4,3] = add a b
    d:f32[3] = reduce_sum[axes=(0,), keepdims=False] c
    e:i64[2] = const[value=[1, 2]]
  in (d, e) }"""


def _bad(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


PARSE_ERRORS = [
    # type errors: the line of the equation, TextTypeError (a VerifyError too)
    (_bad("d:f32[3] =", "d:f32[4] ="), 3, TextTypeError, "f32[4]"),
    (_bad("d:f32[3] =", "d:f64[3] ="), 3, TextTypeError, "f64[3]"),
    (_bad("d:f32[3] =", "d:i32[3] ="), 3, TextTypeError, "i32[3]"),
    (_bad("add a b", "add a b b"), 2, TextTypeError, "operands"),
    (_bad("add a b", "add a"), 2, TextTypeError, "operands"),
    (_bad("axes=(0,)", "axes=(5,)"), 3, TextTypeError, "axis 5"),
    (_bad("axes=(0,)", "axes=(0, 0)"), 3, TextTypeError, "repeated"),
    (_bad("axes=(0,)", "axes='x'"), 3, TextTypeError, "reduce_sum"),
    (_bad("[axes=(0,), keepdims=False]", "[keepdims=False]"), 3, TextTypeError, "'axes'"),
    (_bad("keepdims=False]", "keepdims=False, bogus=1]"), 3, TextTypeError, "'bogus'"),
    (_bad("add a b", "matmul a b"), 2, TextTypeError, "matmul"),
    (_bad("c:f32[4,3] = add a b", "c:(f32[4,3], f32[3]) = add a b"), 2, TextTypeError, "add"),
    (_bad("add a b", "tanh a b"), 2, TextTypeError, "tanh takes 1 operands"),
    (_bad("add a b", "gather[axis=0] a b"), 2, TextTypeError, "gather"),
    (_bad("const[value=[1, 2]]", "const[value=[1, 2, 3]]"), 4, TextTypeError, "shape"),
    (_bad("const[value=[1, 2]]", "const[value=[1, [2]]]"), 4, TextTypeError, "ragged"),
    (_bad("const[value=[1, 2]]", "const[value=[1, 2.5]]"), 4, TextTypeError, "i64"),
    (_bad("const[value=[1, 2]]", "const[value=['a', 'b']]"), 4, TextTypeError, "i64"),
    (
        _bad("const[value=[1, 2]]", "const[value=[1, 99999999999999999999]]"),
        4,
        TextTypeError,
        "out of range",
    ),
    (_bad("const[value=[1, 2]]", "const"), 4, TextTypeError, "value"),
    (
        _bad("e:i64[2] = const[value=[1, 2]]", "e:f16[1] = const[value=[1e6]]"),
        4,
        TextTypeError,
        "out of range",
    ),
    (_bad("e:i64[2] = const[value=[1, 2]]", "e:f32[3] = input"), 4, ParseError, "lambda"),
    # literals out of range or of the wrong kind
    (_bad("add a b", "add a 300:i8"), 2, ParseError, "out of range"),
    (_bad("add a b", "add a -129:i8"), 2, ParseError, "out of range"),
    (_bad("add a b", "add a 1e39:f32"), 2, ParseError, "out of range"),
    (_bad("add a b", "add a 70000:f16"), 2, ParseError, "out of range"),
    (_bad("add a b", "add a 1.5:i32"), 2, ParseError, "integer"),
    (_bad("add a b", "add a 2:bool"), 2, ParseError, "True or False"),
    (_bad("add a b", "add a True:f32"), 2, ParseError, "not a number"),
    (_bad("add a b", "add a nan:i32"), 2, ParseError, "integer"),
    (_bad("axes=(0,)", "axes=(1e999,)"), 3, ParseError, "out of range"),
    # grammar
    (_bad("add a b", "add a q"), 2, ParseError, "unknown variable"),
    (_bad("add a b", "frob a b"), 2, ParseError, "unknown op"),
    (_bad("axes=(0,)", "axes=(0,"), 3, ParseError, "expected"),
    (_bad("axes=(0,), keepdims", "axes=(0,) keepdims"), 3, ParseError, "','"),
    (_bad("axes=(0,)", "axes=zz"), 3, ParseError, "unknown name"),
    (_bad("axes=(0,)", "axes='\\N'"), 3, ParseError, "bad string"),
    (_bad("axes=(0,), keepdims=False", "axes=(0,), axes=(0,)"), 3, ParseError, "twice"),
    (_bad("b:f32[3]", "a:f32[3]"), 1, ParseError, "twice"),
    (_bad("b:f32[3]", "b:f32[99999999999999999999]"), 1, ParseError, "too large"),
    (_bad("b:f32[3]", "b:(f32[3], f32[3])"), 1, TextTypeError, "array type"),
    (_bad("b:f32[3]", "b:(f32[3],)"), 1, ParseError, "expected a type"),
    (_bad("b:f32[3]", "b:f32[3"), 1, ParseError, "dimension"),
    (_bad("b:f32[3]", "b:f32[3,]"), 1, ParseError, "dimension"),
    (_bad("b:f32[3]", "b:f32[-3]"), 1, ParseError, "dimension"),
    (_bad("  in (d, e) }", "  in (d, e }"), 5, ParseError, "expected"),
    (_bad("  in (d, e) }", "  in (d e) }"), 5, ParseError, "','"),
    (GOOD + " }", 5, ParseError, "end of text"),
    (GOOD[:-10], 5, ParseError, "expected"),
]


@pytest.mark.parametrize("text, line, cls, words", PARSE_ERRORS)
def test_parse_error_catalogue(text, line, cls, words):
    with pytest.raises(cls) as info:
        graphc.parse(text)
    e = info.value
    msg = str(e)
    assert msg.startswith(f"line {line}: "), msg
    assert e.line == line and isinstance(e.column, int) and e.column >= 1
    assert f"(column {e.column})" in msg
    assert words in msg, msg
    if cls is TextTypeError:
        assert isinstance(e, graphc.VerifyError)


def test_parse_error_columns_point_at_the_token():
    text = _bad("add a b", "add a $")
    with pytest.raises(ParseError) as info:
        graphc.parse(text)
    line = text.split("\n")[1]
    assert info.value.line == 2 and info.value.column == line.index("$") + 1
    text = _bad("add a b", "add a 300:i8")
    with pytest.raises(ParseError) as info:
        graphc.parse(text)
    assert info.value.column == text.split("\n")[1].index("300") + 1


def _nested_fused(depth: int) -> str:
    """A graph whose fused bodies nest `depth` deep (an identity at the bottom)."""
    body = "{ lambda ; a:f32[2]. let\n b:f32[2] = neg a\n in (b,) }"
    for _ in range(depth):
        body = "{ lambda ; a:f32[2]. let\n b:f32[2] = fused[body=" + body + "] a\n in (b,) }"
    return body


@pytest.mark.parametrize(
    "text",
    [
        _bad("axes=(0,)", "axes=" + "(" * 100_000 + ")" * 100_000),
        _bad("axes=(0,)", "axes=" + "[" * 100_000),
        _bad("axes=(0,)", "axes=" + "(0, " * 50_000),
        _bad("d:f32[3] =", "d:" + "(" * 100_000 + "f32[3]" + ")" * 100_000 + " ="),
        _bad("const[value=[1, 2]]", "const[value=" + "[" * 70 + "1" + "]" * 70 + "]"),
        _nested_fused(100),
    ],
    ids=["tuples", "lists", "open", "types", "const", "graphs"],
)
def test_deep_nesting_is_a_parse_error_not_a_crash(text):
    old = sys.getrecursionlimit()
    # the parser must not recurse on nesting: 100 frames beyond the test's own are plenty
    sys.setrecursionlimit(len(inspect.stack(0)) + 100)
    try:
        with pytest.raises(ParseError, match="nested deeper"):
            graphc.parse(text)
    finally:
        sys.setrecursionlimit(old)


def test_moderate_nesting_parses():
    g = graphc.parse(_nested_fused(5))
    (got,) = graphc.evaluate(g, np.array([1.0, -2.0], np.float32))
    np.testing.assert_array_equal(got, [-1.0, 2.0])


# ---------------------------------------------------------------------------------------------
# fuzz: random mutations of valid IR text parse to a verified graph or raise ParseError


def _corpus() -> list[str]:
    def f(x, W, i):
        h = np.tanh(x @ W)
        y = np.concatenate([h, np.pad(h, ((0, 0), (1, 0)))[:, :2]], axis=1)
        return np.sum(np.where(y > 0, y, 0.5) ** 2) + h[i].mean() + y.astype(np.float16).max()

    args = (
        np.ones((3, 4), np.float32),
        np.ones((4, 2), np.float32),
        np.array([0, 2]),
    )
    g = graphc.trace(graphc.value_and_grad(f), *args)
    fused = passes.run_pipeline(g, passes.COMPILE_PIPELINE)
    small = graphc.trace(lambda x: np.cumsum(x.reshape(2, 2), axis=1) * -0.0, np.arange(4.0))
    consts = graphc.trace(lambda x: x * np.array([1, 2, 3], np.int8) + True, np.ones(3, np.int8))
    return [g.pretty(), fused.pretty(locations=True), small.pretty(), consts.pretty()]


CORPUS = _corpus()
VOCAB = (
    list(",()[]{}=:;.-#\n")
    + ["in", "let", "lambda", "a", "b", "zz", "tanh", "add", "fused", "proj", "const"]
    + ["f32", "f16", "bool", "i8", "u64", "True", "inf", "nan", "None", "'s'", "'\\x'"]
    + ["0", "1", "-1", "300", "1e999", "0.5", "99999999999999999999", "1.5:i8", "2.0:f32"]
    + ["axes=", "value=", "[1, [2]]", "(0, 0)", "f32[3]", "(f32[3], f32[3])"]
)


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 3))):
        n = len(text)
        i = draw(st.integers(0, n))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "digit", "chars"]))
        if kind == "insert":
            text = text[:i] + draw(st.sampled_from(VOCAB)) + text[i:]
        elif kind == "delete":
            j = draw(st.integers(i, min(n, i + 12)))
            text = text[:i] + text[j:]
        elif kind == "replace":
            j = draw(st.integers(i, min(n, i + 4)))
            text = text[:i] + draw(st.sampled_from(VOCAB)) + text[j:]
        elif kind == "duplicate":
            j = draw(st.integers(i, min(n, i + 40)))
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "chars":
            text = text[:i] + draw(st.text(max_size=3)) + text[i:]
        else:
            digits = [k for k, c in enumerate(text) if c.isdigit()]
            if digits:
                k = draw(st.sampled_from(digits))
                text = text[:k] + draw(st.sampled_from("0123456789")) + text[k + 1 :]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_ir_text_parses_or_raises_parse_error(text):
    try:
        g = graphc.parse(text)
    except ParseError as e:
        assert str(e).startswith(f"line {e.line}: "), str(e)
        assert str(e).endswith(f"(column {e.column})"), str(e)
        return
    graphc.verify(g)  # whatever parses is a well-typed graph
    assert graphc.parse(g.pretty()).structural_hash() == g.structural_hash()


def test_corpus_parses():
    for text in CORPUS:
        g = graphc.parse(text)
        assert g.pretty() == graphc.parse(g.pretty()).pretty()


def test_verify_names_missing_and_unknown_attributes_without_internal_signatures():
    from graphc.ir import Aval, Node, make_input

    x = make_input(Aval((4, 3), np.dtype(np.float32)))
    out = Aval((3,), np.dtype(np.float32))
    for attrs, words in [
        ({"keepdims": False}, "needs the attribute 'axes'"),
        ({"axes": (0,), "keepdims": False, "bogus": 1}, "has no attribute 'bogus'"),
    ]:
        y = Node("reduce_sum", (x,), attrs, out)
        with pytest.raises(graphc.VerifyError) as info:
            graphc.verify(graphc.Graph([x], [y]))
        assert words in str(info.value) and "lambda" not in str(info.value)


def test_load_names_the_file_and_line(tmp_path):
    path = tmp_path / "model.ir"
    path.write_text(_bad("axes=(0,)", "axes=(7,)"))
    with pytest.raises(TextTypeError) as info:
        graphc.load(path)
    msg = str(info.value)
    assert msg.startswith("line 3: ") and str(path) in msg and "axis 7" in msg
    assert info.value.line == 3


@pytest.mark.parametrize(
    "f",
    [
        lambda a: np.concatenate([a, a], out=np.empty((6, 4))),  # err-out
        lambda a: np.stack([a, a], out=np.empty((2, 3, 4))),  # err-out
        lambda a: np.take(a, [0, 1], out=np.empty(2)),  # err-out
        lambda a: np.dot(a, a.T, out=np.empty((3, 3))),  # err-out
        lambda a: np.outer(a[0], a[1], out=np.empty((4, 4))),  # err-out
        lambda a: np.round(a, out=np.empty((3, 4))),  # err-out
        lambda a: np.any(a > 0, out=np.empty((), bool)),  # err-out
        lambda a: np.argmax(a, out=np.empty((), np.intp)),  # err-out
        lambda a: np.einsum("ij->j", a, out=np.empty(4)),  # err-out
    ],
)
def test_out_arguments_are_refused_not_ignored(f):
    e = _trace_error(f, X, cls=graphc.UnsupportedError)
    assert "out=" in str(e), str(e)
    _assert_at(e, "err-out")


def test_keywords_that_change_values_are_honoured():
    fns = [
        lambda a: np.hstack([a, a], dtype=np.float32),
        lambda a: np.vstack([a[0], a[1]], dtype=np.float32),
        lambda a: np.concatenate([a, a], axis=None, dtype=np.float32),
        lambda a: np.stack([a, a], axis=-1, dtype=np.float32),
        lambda a: np.einsum("ij,ij->i", a, a, dtype=np.float32, optimize=True),
    ]
    for f in fns:
        (got,) = graphc.evaluate(graphc.trace(f, X), X)
        want = f(X)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6)
    e = _trace_error(lambda a: np.einsum("ij->i", a, bogus=1), X)  # err-einsum-kw
    assert isinstance(e, TypeError) and "bogus" in str(e)
    _assert_at(e, "err-einsum-kw")


def test_python_protocols_on_tracers():
    import copy

    x = RNG.standard_normal(5) * 3
    fns = [
        lambda a: copy.copy(a) * 2,
        lambda a: copy.deepcopy(a) + 1,
        lambda a: copy.deepcopy({"w": a, "n": [a, 2]})["n"][0] - a,
    ]
    for f in fns:
        np.testing.assert_allclose(graphc.jit(f)(x), f(x), rtol=1e-12)
    # rounding to decimals is computed as NumPy does: bit-equal results
    np.testing.assert_array_equal(graphc.jit(lambda a: a.round(2))(x), x.round(2))


@pytest.mark.parametrize(
    "f",
    [
        lambda a: np.reshape(a, "abc"),  # err-arg
        lambda a: a.sum(axis="x"),  # err-arg
        lambda a: np.mean(a, axis=0.5),  # err-arg
        lambda a: a.var(ddof="x"),  # err-arg
        lambda a: np.zeros_like(a, shape="ab"),  # err-arg
        lambda a: np.pad(a, ((1, 2, 3),)),  # err-arg
    ],
)
def test_arguments_of_the_wrong_kind_are_named_at_the_users_line(f):
    """Arguments graphc's implementation cannot use fail with a graphc error that is also a
    ValueError or TypeError, as NumPy's are, naming the call and the user's line."""
    with pytest.raises((ValueError, TypeError)):
        f(X)  # NumPy rejects them too
    e = _trace_error(f, X)
    assert isinstance(e, (graphc.ArgumentError, graphc.ArgumentValueError)), type(e)
    assert str(e).split(":")[0].startswith(("np.", ".")), str(e)
    _assert_at(e, "err-arg")
