"""The API boundary: Python and NumPy scalars at every entry point (NEP 50 dtypes), arguments
checked against the compiled signature (shape exact, dtype cast as np.copyto would), and
jacobian/hessian over pytrees."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import graphc
from graphc import ArgumentError, nn

HERE = os.path.basename(__file__)


def fd_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of scalar f at float64 array x."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (float(f(x + e)) - float(f(x - e))) / (2 * eps)
    return g


def assert_here(excinfo) -> None:
    """The error names this test file (the user's code), not a line inside graphc."""
    msg = str(excinfo.value)
    assert HERE in msg, msg


# ---------------------------------------------------------------------------------------------
# 1. the jit cache keeps weak (Python) and strong (NumPy) scalars apart

SCALARS = {
    "py_float": lambda: 0.1,
    "np_float64": lambda: np.float64(0.1),
    "np_float32": lambda: np.float32(0.1),
    "0d_float64": lambda: np.array(0.1),
    "0d_float32": lambda: np.array(0.1, np.float32),
}


@pytest.mark.parametrize(
    "order",
    [
        ("py_float", "np_float64", "0d_float64"),
        ("0d_float64", "np_float64", "py_float"),
        ("np_float32", "py_float", "0d_float32", "np_float64"),
    ],
)
@pytest.mark.parametrize("xdtype", [np.float32, np.float64, np.int32])
def test_jit_scalar_kinds_have_numpy_dtypes_in_any_call_order(order, xdtype):
    fns = {
        "mul": lambda x, s: x * s,
        "add_then_tanh": lambda x, s: np.tanh(x + s),
        "maximum": lambda x, s: np.maximum(x, s),
    }
    x = np.arange(1, 4).astype(xdtype)
    for fn in fns.values():
        f = graphc.jit(fn)
        for kind in order:
            s = SCALARS[kind]()
            got, want = f(x, s), fn(x, s)
            assert got.dtype == want.dtype, (kind, got.dtype, want.dtype)
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_jit_weak_and_strong_scalars_compile_separately_and_say_why():
    f = graphc.jit(lambda x, s: x * s)
    x = np.ones(2, np.float32)
    f(x, 0.5)
    f(x, np.float64(0.5))
    f(x, 0.25)  # same weak signature as the first call: no new compile
    assert len(f.compiles) == 2
    assert "weak" in f.compiles[1] and "strong" in f.compiles[1]


@pytest.mark.parametrize("s", [2, True, 0.5, np.float32(0.5), np.int64(3), np.array(3)])
def test_jit_python_and_numpy_scalars_alone(s):
    f = graphc.jit(lambda s: s * 2 + 1)
    got, want = f(s), np.asarray(s * 2 + 1)
    assert np.asarray(got).dtype == want.dtype
    np.testing.assert_allclose(got, want)


# ---------------------------------------------------------------------------------------------
# 2, 7. cotangents and tangents against the output/primal types


@pytest.mark.parametrize(
    "out_shape,ct_shape",
    [((1000,), (2,)), ((3,), (4,)), ((2, 3), (3, 2)), ((2, 3), (6,)), ((3,), ()), ((), (1,))],
)
def test_vjp_cotangent_of_wrong_shape_is_an_error_naming_the_caller(out_shape, ct_shape):
    x = np.linspace(0.1, 1.0, int(np.prod(out_shape))).reshape(out_shape)
    _, back = graphc.vjp(np.sin, x)
    with pytest.raises(ArgumentError) as e:
        back(np.ones(ct_shape))
    assert str(out_shape) in str(e.value) and "cotangent" in str(e.value)
    assert_here(e)


@pytest.mark.parametrize(
    "p_shape,t_shape", [((1000,), (2,)), ((3,), (4,)), ((2, 3), (3, 2)), ((), (2,)), ((2,), ())]
)
def test_jvp_tangent_of_wrong_shape_is_an_error_naming_the_caller(p_shape, t_shape):
    x = np.full(p_shape, 0.3)
    with pytest.raises(ArgumentError) as e:
        graphc.jvp(np.sin, (x,), (np.ones(t_shape),))
    assert str(p_shape) in str(e.value) and "tangent" in str(e.value)
    assert_here(e)


def test_wrong_shape_cotangent_inside_a_trace_is_an_error_too():
    def f(x, ct):
        _, back = graphc.vjp(np.sin, x)
        return back(ct)[0]

    with pytest.raises(ArgumentError) as e:
        graphc.jit(f)(np.ones(5), np.ones(2))
    assert "(5,)" in str(e.value)
    np.testing.assert_allclose(graphc.jit(f)(np.ones(5), np.ones(5)), np.cos(np.ones(5)))


@pytest.mark.parametrize(
    "xdt,ctdt",
    [
        (np.float32, np.float64),
        (np.float64, np.float32),
        (np.float32, np.int64),
        (np.float64, np.bool_),
    ],
)
def test_vjp_cotangent_dtype_is_cast_like_copyto(xdt, ctdt):
    x = np.linspace(0.1, 1.0, 6).astype(xdt).reshape(2, 3)
    ct = np.arange(6).reshape(2, 3).astype(ctdt)
    out, back = graphc.vjp(lambda x: np.tanh(x) * 2, x)
    (g,) = back(ct)
    assert g.dtype == x.dtype
    want = ct.astype(xdt) * 2 * (1 - np.tanh(x) ** 2)
    np.testing.assert_allclose(g, want, rtol=1e-5)


@pytest.mark.parametrize(
    "xdt,tdt", [(np.float32, np.float64), (np.float64, np.float32), (np.float64, np.int32)]
)
def test_jvp_tangent_dtype_is_cast_like_copyto(xdt, tdt):
    x = np.linspace(0.1, 1.0, 4).astype(xdt)
    t = np.arange(4).astype(tdt)
    y, ty = graphc.jvp(np.exp, (x,), (t,))
    assert y.dtype == ty.dtype == np.exp(x).dtype
    np.testing.assert_allclose(ty, np.exp(x) * t.astype(xdt), rtol=1e-5)


@pytest.mark.parametrize(
    "bad,why",
    [
        (np.ones(3, np.complex128), "complex128"),
        (np.array(["a", "b", "c"]), "not numeric"),
        (None, "structure"),
        ("abc", "not numeric"),
    ],
)
def test_cotangent_that_numpy_would_not_cast_is_an_error(bad, why):
    _, back = graphc.vjp(np.sin, np.ones(3, np.float32))
    with pytest.raises(graphc.GraphcError) as e:
        back(bad)
    assert why in str(e.value)
    assert_here(e)


def test_executable_with_an_integer_input_refuses_floats():
    # same-kind casting: int -> float is fine elsewhere, float -> int never
    from graphc.api import executable

    g = graphc.trace(lambda i, x: x[i], np.array([0, 1]), np.ones(3))
    exe = executable(g)
    np.testing.assert_allclose(exe([np.array([2, 0]), np.arange(3.0)])[0], [2.0, 0.0])
    with pytest.raises(ArgumentError) as e:
        exe([np.array([2.0, 0.0]), np.arange(3.0)])
    assert "int64" in str(e.value) and "same-kind" in str(e.value)
    assert_here(e)


@pytest.mark.parametrize("backend", ["numba", "interpreter"])
def test_every_backend_checks_its_arguments(backend):
    from graphc.api import executable

    g = graphc.trace(lambda a, b: a @ b, graphc.spec("f32[2,3]"), graphc.spec("f32[3,4]"))
    exe = executable(g, backend)
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    np.testing.assert_allclose(exe([a, b])[0], a @ b)
    # non-contiguous, other byte order, float64: converted, same values
    bt = np.ones((4, 3), np.float32).T
    big = np.ones((2, 3), ">f4")
    np.testing.assert_allclose(exe([big, bt])[0], a @ b)
    np.testing.assert_allclose(exe([a.astype(np.float64), b])[0], a @ b)
    for args, what in [
        ([np.ones((3, 2), np.float32), b], "input 0"),
        ([a, np.ones((3, 5), np.float32)], "input 1"),
        ([a], "takes 2"),
        ([a, b, b], "takes 2"),
    ]:
        with pytest.raises(ArgumentError) as e:
            exe(args)
        assert what in str(e.value)
        assert_here(e)


def test_compiled_executable_itself_refuses_wrong_shapes():
    from graphc.api import optimize
    from graphc.codegen import compile_graph

    g = graphc.trace(lambda x: np.sum(np.exp(x)), graphc.spec("f64[64]"))
    exe = compile_graph(optimize(g))
    np.testing.assert_allclose(exe([np.zeros(64)])[0], 64.0)
    with pytest.raises(ArgumentError):
        exe([np.zeros(8)])
    with pytest.raises(ArgumentError):
        exe([np.zeros(100000)])


def test_python_int_out_of_range_for_an_integer_input():
    from graphc.api import executable

    g = graphc.trace(lambda i: i + 1, np.int8(1))
    exe = executable(g)
    assert exe([5])[0] == 6
    with pytest.raises(ArgumentError) as e:
        exe([300])
    assert "out of range" in str(e.value)
    with pytest.raises(ArgumentError):
        exe([1.5])


# ---------------------------------------------------------------------------------------------
# 6. Python scalars at every entry point

R_KINDS = {
    "py_float": 0.05,
    "py_int": 3,
    "np_float32": np.float32(0.05),
    "np_float64": np.float64(0.05),
    "0d_float32": np.array(0.05, np.float32),
    "0d_float64": np.array(0.05),
}


def _loss(W, r):
    return r * np.sum(W * W)


@pytest.mark.parametrize("wdt", [np.float32, np.float64])
@pytest.mark.parametrize("rk", list(R_KINDS))
def test_grad_and_value_and_grad_with_scalar_hyperparameter(rk, wdt):
    r = R_KINDS[rk]
    W = np.arange(1.0, 5.0).reshape(2, 2).astype(wdt)
    want_v = _loss(W, r)  # NumPy's own result and dtype
    gW = graphc.grad(_loss)(W, r)
    assert gW.dtype == W.dtype
    np.testing.assert_allclose(gW, 2 * float(r) * W, rtol=1e-5)
    (v, (gW2, gr)) = graphc.value_and_grad(_loss, argnums=(0, 1))(W, r)
    assert np.asarray(v).dtype == np.asarray(want_v).dtype
    np.testing.assert_allclose(v, want_v, rtol=1e-5)
    np.testing.assert_allclose(gW2, gW, rtol=1e-6)
    np.testing.assert_allclose(gr, np.sum(W.astype(np.float64) ** 2), rtol=1e-5)
    if type(r) in (float, int):
        assert type(gr) is float  # a Python number in, a Python number out
    else:
        assert np.asarray(gr).dtype == np.asarray(r).dtype
    # jitted, twice (cached executable)
    step = graphc.jit(graphc.grad(_loss))
    for _ in range(2):
        np.testing.assert_allclose(step(W, r), gW, rtol=1e-6)


@pytest.mark.parametrize("x", [2, 2.0, np.float64(2.0), np.array(2.0), np.float32(2.0)])
def test_flux_gradient_and_withgradient_documented_example(x):
    def f(x):
        return 3 * x**2 + 2 * x + 1

    (g,) = graphc.gradient(f, x)
    v, (g2,) = graphc.withgradient(f, x)
    assert float(g) == float(g2) == 14.0
    assert float(v) == 17.0
    if type(x) in (int, float):
        assert type(g) is float
    assert graphc.grad(f)(x) == 14.0
    np.testing.assert_allclose(graphc.hessian(f)(x), 6.0)
    np.testing.assert_allclose(graphc.jacobian(f)(x), 14.0)


def test_differentiating_a_bool_is_a_clear_error():
    with pytest.raises(graphc.GraphcError) as e:
        graphc.grad(lambda x: 3 * x)(True)
    assert "floating-point scalar" in str(e.value) and "int" in str(e.value)
    assert_here(e)
    with pytest.raises(graphc.GraphcError) as e:
        graphc.check_grads(lambda x: 3 * x, (True,))
    assert "no floating-point argument" in str(e.value)


def test_ints_inside_containers_stay_static():
    def f(p):
        return np.sum(p["w"] ** p["n"])

    p = {"w": np.array([1.0, 2.0]), "n": 3}
    g = graphc.grad(f)(p)
    assert g["n"] is None
    np.testing.assert_allclose(g["w"], 3 * p["w"] ** 2)


@pytest.mark.parametrize("ct", [1, 1.0, True, np.float32(1), np.float64(1), np.array(1.0)])
@pytest.mark.parametrize("xdt", [np.float32, np.float64])
def test_vjp_scalar_cotangent_for_scalar_output(ct, xdt):
    x = np.array([1.0, 2.0, 3.0], xdt)
    out, back = graphc.vjp(lambda x: np.sum(x * x), x)
    assert out.dtype == xdt
    (g,) = back(ct)
    assert g.dtype == xdt
    np.testing.assert_allclose(g, 2 * x * float(ct), rtol=1e-6)


@pytest.mark.parametrize("p", [2, 2.0, np.float32(2.0), np.array(2.0)])
def test_vjp_and_jvp_with_scalar_primals(p):
    def f(x, r):
        return np.sin(x) * r

    x = np.array([0.5, 1.0])
    out, back = graphc.vjp(f, x, p)
    np.testing.assert_allclose(out, np.sin(x) * float(p), rtol=1e-6)
    gx, gr = back(np.ones(2))
    np.testing.assert_allclose(gx, np.cos(x) * float(p), rtol=1e-6)
    np.testing.assert_allclose(gr, np.sum(np.sin(x)), rtol=1e-6)
    y, t = graphc.jvp(f, (x, p), (np.zeros(2), 1))
    np.testing.assert_allclose(t, np.sin(x), rtol=1e-6)
    y, t = graphc.jvp(f, (x, p), (np.ones(2), 0.0))
    np.testing.assert_allclose(t, np.cos(x) * float(p), rtol=1e-6)
    assert y.dtype == f(x, p).dtype


def test_jvp_of_python_numbers_gives_python_numbers():
    y, t = graphc.jvp(lambda x: 3 * x**2 + 2 * x + 1, (2,), (1,))
    assert (y, t) == (17.0, 14.0)


def test_jvp_tangent_structure_must_match():
    with pytest.raises(ArgumentError) as e:
        graphc.jvp(lambda a, b: a * b, (np.ones(2), np.ones(2)), (np.ones(2),))
    assert "structure" in str(e.value)
    assert_here(e)


def test_jvp_tangent_of_an_output_that_does_not_depend_on_the_inputs_is_zero():
    y, t = graphc.jvp(lambda x: (np.sin(x), 7, 2.5), (np.ones(2),), (np.ones(2),))
    assert y[1] == 7 and t[1] == 0
    np.testing.assert_allclose(t[2], 0.0)
    np.testing.assert_allclose(t[0], np.cos(np.ones(2)))


def test_vjp_output_with_static_leaves_lines_cotangents_up():
    out, back = graphc.vjp(lambda x: ("tag", np.sin(x), 2 * x), np.ones(3))
    assert out[0] == "tag"
    # the string's cotangent slot is ignored; the arrays' must meet the arrays' outputs
    (g,) = back(("tag", np.ones(3), np.full(3, 2.0)))
    np.testing.assert_allclose(g, np.cos(np.ones(3)) + 4.0)


@pytest.mark.parametrize("r", [0.5, 2, np.float32(0.5), np.float64(0.5)])
def test_check_grads_with_scalar_arguments(r):
    graphc.check_grads(
        lambda x, r: r * np.sum(np.tanh(x) ** 2), (np.array([0.3, -0.7]), r), order=2
    )


@pytest.mark.parametrize("y", [0.5, 1, np.float64(0.5), np.array(0.5, np.float32)])
def test_train_step_with_scalar_targets_and_learning_rates(y):
    model = nn.Dense(2, 1)
    x = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 1.0]], np.float32)
    for lr in (0.1, np.float32(0.1)):
        step = nn.train_step(model, nn.mse, nn.SGD(lr=lr))
        st = step.init(model)
        m2, _, loss = step(model, st, x, y)
        want = np.mean((np.asarray(model(x)) - y) ** 2)
        assert np.asarray(loss).dtype == np.asarray(want).dtype
        np.testing.assert_allclose(loss, want, rtol=1e-5)
        # one SGD step against the gradient of the same loss
        gW = graphc.grad(lambda m: nn.mse(m(x), y))(model)
        np.testing.assert_allclose(m2.weight, model.weight - np.float32(0.1) * gW.weight, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# 15. jacobian and hessian over pytrees


def _fd_jac(f, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = eps
        e = e.reshape(x.shape)
        cols.append(((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps)).reshape(-1))
    out_shape = np.shape(f(x))
    return np.stack(cols, axis=-1).reshape(out_shape + x.shape)


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_of_dict_to_dict(mode):
    p = {"a": np.array([0.3, 0.7]), "b": np.array([[1.0, 2.0, 3.0]]), "n": 2, "act": np.tanh}

    def f(p):
        return {"y": p["act"](p["a"][:, None] * p["b"]) ** p["n"], "s": np.sum(p["a"])}

    J = graphc.jacobian(f, mode=mode)(p)
    assert set(J) == {"y", "s"} and set(J["y"]) == {"a", "b", "n", "act"}
    assert J["y"]["n"] is None and J["y"]["act"] is None
    assert J["y"]["a"].shape == (2, 3, 2) and J["y"]["b"].shape == (2, 3, 1, 3)
    assert J["s"]["a"].shape == (2,) and J["s"]["b"].shape == (1, 3)
    for out in ("y", "s"):
        for leaf in ("a", "b"):

            def g(v, out=out, leaf=leaf):
                return f({**p, leaf: v})[out]

            np.testing.assert_allclose(J[out][leaf], _fd_jac(g, p[leaf]), rtol=1e-6, atol=1e-8)


def test_jacobian_several_argnums_and_tuple_outputs():
    def f(a, b, c):
        return a * b, np.sum(a) * c

    a, b, c = np.array([1.0, 2.0]), np.array([3.0, 4.0]), 0.5
    J = graphc.jacobian(f, argnums=(0, 2))(a, b, c)
    assert isinstance(J, tuple) and len(J) == 2 and all(len(j) == 2 for j in J)
    np.testing.assert_allclose(J[0][0], np.diag(b))
    np.testing.assert_allclose(J[0][1], np.zeros(2))
    np.testing.assert_allclose(J[1][0], np.full(2, c))
    np.testing.assert_allclose(J[1][1], np.sum(a))
    Jneg = graphc.jacobian(f, argnums=-1)(a, b, c)
    np.testing.assert_allclose(Jneg[1], np.sum(a))


@pytest.mark.parametrize("mode", ["forward-over-reverse", "reverse-over-reverse"])
def test_hessian_of_a_dict_is_the_dict_nested_in_itself(mode):
    def f(p):
        return np.sum(p["a"] ** 2 * p["b"]) + np.sum(np.sin(p["W"]) @ p["a"])

    p = {"a": np.array([1.0, 2.0]), "b": 3.0, "W": np.array([[0.1, 0.2], [0.3, 0.4]])}
    H = graphc.hessian(f, mode=mode)(p)
    assert set(H) == set(p) and all(set(H[k]) == set(p) for k in p)
    for i in p:
        for j in p:
            assert H[i][j].shape == np.shape(p[i]) + np.shape(p[j])

            def gi(v, i=i, j=j):
                return graphc.grad(f)({**p, j: v})[i]

            np.testing.assert_allclose(
                H[i][j], _fd_jac(gi, p[j]), rtol=1e-5, atol=1e-7, err_msg=f"{i},{j}"
            )
    # symmetric, and the same traced inside jit
    np.testing.assert_allclose(H["a"]["W"], np.moveaxis(H["W"]["a"], -1, 0).reshape(2, 2, 2))
    Hj = graphc.jit(lambda a, W: graphc.hessian(f, mode=mode)({"a": a, "b": 3.0, "W": W}))(
        p["a"], p["W"]
    )
    np.testing.assert_allclose(Hj["W"]["W"], H["W"]["W"], rtol=1e-10)


def test_hessian_of_a_list_argument_and_float32():
    def f(xs):
        return np.sum(xs[0] * xs[1] ** 2)

    xs = [np.array([1.0, 2.0], np.float32), np.array([0.5, -1.0], np.float32)]
    H = graphc.hessian(f)(xs)
    assert isinstance(H, list) and isinstance(H[0], list)
    assert H[0][1].dtype == np.float32
    np.testing.assert_allclose(H[0][1], np.diag(2 * xs[1]))
    np.testing.assert_allclose(H[1][1], np.diag(2 * xs[0]))
    np.testing.assert_allclose(H[0][0], np.zeros((2, 2)))


def test_jacobian_of_a_non_array_output_is_a_clear_error():
    with pytest.raises(graphc.GraphcError) as e:
        graphc.jacobian(lambda x: (x * 2, "label"))(np.ones(2))
    assert "label" in str(e.value)
    assert_here(e)
    with pytest.raises(graphc.GraphcError) as e:
        graphc.jacobian(lambda x: np.argmax(x))(np.ones(2))
    assert "floating-point" in str(e.value)
    with pytest.raises(graphc.GraphcError):
        graphc.jacobian(np.sin, mode="sideways")


def test_hessian_with_several_argnums_is_a_tuple_of_tuples():
    def f(x, y):
        return np.sum(x**2 * y) + np.sum(np.sin(y))

    x, y = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    H = graphc.hessian(f, argnums=(0, 1))(x, y)
    assert isinstance(H, tuple) and all(isinstance(h, tuple) and len(h) == 2 for h in H)
    np.testing.assert_allclose(H[0][0], np.diag(2 * y))
    np.testing.assert_allclose(H[0][1], np.diag(2 * x))
    np.testing.assert_allclose(H[1][0], np.diag(2 * x))
    np.testing.assert_allclose(H[1][1], np.diag(-np.sin(y)))


@pytest.mark.parametrize(
    "x",
    [
        np.arange(6, dtype=">f4").reshape(2, 3),  # other byte order
        np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::2],  # strided view
        np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        np.arange(6, dtype=np.float32).reshape(3, 2).T,
    ],
)
def test_jit_and_grad_take_arrays_of_any_layout_and_byte_order(x):
    f = graphc.jit(lambda x: np.tanh(x) * np.sum(x, axis=0))
    np.testing.assert_allclose(f(x), np.tanh(x) * np.sum(x, axis=0), rtol=1e-6)
    g = graphc.jit(graphc.grad(lambda x: np.sum(x**3)))(x)
    np.testing.assert_allclose(g, 3 * np.asarray(x, np.float64) ** 2, rtol=1e-6)


@pytest.mark.parametrize("kind", ["masked", "matrix"])
def test_array_subclasses_whose_operators_differ_are_refused(kind):
    if kind == "masked":
        x = np.ma.array([1.0, 2.0], mask=[False, True])
    else:
        with warnings.catch_warnings():  # np.matrix announces its own deprecation
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            x = np.matrix([[1.0, 2.0]])
    with pytest.raises(graphc.GraphcError) as e:
        graphc.jit(lambda x: x * x)(x)
    assert "not supported as an argument" in str(e.value)
    assert_here(e)
    _, back = graphc.vjp(np.sin, np.ones(np.shape(x)))
    with pytest.raises(ArgumentError) as e:
        back(x)
    assert_here(e)


def test_transformations_of_closures_over_an_enclosing_trace():
    y = np.array([2.0, 3.0])
    x = np.array([1.0, 0.5])
    cases = {
        "grad": (lambda y: graphc.grad(lambda x: np.sum(np.sin(x) * y))(x), np.cos(x) * y),
        "jacobian": (lambda y: graphc.jacobian(lambda x: x * y)(x), np.diag(y)),
        "hessian": (lambda y: graphc.hessian(lambda x: np.sum(x**3 * y))(x), np.diag(6 * x * y)),
        "vjp": (lambda y: graphc.vjp(lambda x: x * y, x)[1](np.ones(2))[0], y),
        "jvp": (lambda y: graphc.jvp(lambda x: x * y, (x,), (np.ones(2),))[1], y),
    }
    for name, (f, want) in cases.items():
        np.testing.assert_allclose(graphc.jit(f)(y), want, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(graphc.jit(f)(2 * y), 2 * want, rtol=1e-12, err_msg=name)
    # and differentiated through: d/dy sum(grad_x sum(x*x*y)) = 2x
    g = graphc.grad(lambda y: np.sum(graphc.grad(lambda x: np.sum(x * x * y))(x)))(y)
    np.testing.assert_allclose(g, 2 * x)


def test_cotangent_and_tangent_dicts_line_up_by_key_not_by_order():
    x = np.array([1.0, 2.0])
    out, back = graphc.vjp(lambda x: {"a": np.sin(x), "b": 2 * x}, x)
    (g,) = back({"b": np.zeros(2), "a": np.ones(2)})
    np.testing.assert_allclose(g, np.cos(x))
    (g,) = back({"b": np.ones(2), "a": np.zeros(2)})
    np.testing.assert_allclose(g, [2.0, 2.0])
    p = {"w": x, "s": 0.5}
    y, t = graphc.jvp(lambda p: p["w"] * p["s"], (p,), ({"s": 1.0, "w": np.zeros(2)},))
    np.testing.assert_allclose(t, x)


@pytest.mark.parametrize(
    "ct",
    [
        {"a": np.ones(2)},  # a key missing
        {"a": np.ones(2), "c": np.ones(2)},  # another key
        (np.ones(2), np.ones(2)),  # a tuple for a dict
        np.ones(2),
    ],
)
def test_cotangent_of_another_structure_is_an_error(ct):
    _, back = graphc.vjp(lambda x: {"a": np.sin(x), "b": 2 * x}, np.ones(2))
    with pytest.raises(ArgumentError) as e:
        back(ct)
    assert "structure" in str(e.value) and "out['b']" in str(e.value)
    assert_here(e)
