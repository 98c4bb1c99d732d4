"""Reductions and scans: sum, prod, max, min, any, all (with NumPy's where=, initial= and
keepdims=), mean, var, std, argmax/argmin, logsumexp and softmax, cumsum and cumprod, counts,
whole-array comparisons, and the ufunc methods `reduce` and `accumulate`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import GraphcError, ShapeError
from graphc.numpy._core import (
    _asarr,
    _axes,
    _axis,
    _count,
    _no_extras,
    _norm_axes,
    _sum_dtype,
    astype,
)
from graphc.numpy.shapes import broadcast_to, concatenate, ravel, reshape
from graphc.numpy.ufuncs import (
    _float_like,
    divide,
    equal,
    exp,
    isclose,
    isfinite,
    isnan,
    log,
    sqrt,
    stop_gradient,
    subtract,
    where,
)
from graphc.ops import registry
from graphc.trace import UnsupportedError, bind, user_location


def _mask(x: Any, where: Any) -> Any:
    """A reduction's where= mask as booleans of x's shape (None: every element counts)."""
    if where is None or where is True:
        return None
    m = astype(_asarr(where), np.bool_)
    try:
        ok = np.broadcast_shapes(tuple(m.shape), tuple(x.shape)) == tuple(x.shape)
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(
            f"where= mask of shape {tuple(m.shape)} does not broadcast to the operand's "
            f"shape {tuple(x.shape)}",
            user_location(),
        )
    return m


def _fill_unmasked(x: Any, m: Any, value: Any) -> Any:
    """x where the mask holds, `value` (in x's dtype) elsewhere."""
    return x if m is None else bind("where", broadcast_to(m, x.shape), x, _fill(x, value))


def _fill(x: Any, value: Any) -> Any:
    return np.asarray(value).astype(x.dtype) if np.ndim(value) == 0 else astype(value, x.dtype)


def _accumulation(op: str, name: str):
    """np.sum / np.prod: small integer and boolean operands accumulate in 64 bits, as NumPy.
    where= leaves masked-out elements at the identity; initial= joins the result."""
    identity, combine = (0, "add") if op == "reduce_sum" else (1, "mul")

    def fn(
        x: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = None,
        where: Any = None,
    ) -> Any:
        _no_extras(name, out)
        x = _asarr(x)
        x = astype(x, dtype if dtype is not None else _sum_dtype(x))
        x = _fill_unmasked(x, _mask(x, where), identity)
        r = bind(op, x, axes=_norm_axes(x, axis, name), keepdims=bool(keepdims))
        return r if initial is None else bind(combine, r, _fill(r, initial))

    fn.__name__ = name
    return fn


sum = _accumulation("reduce_sum", "sum")
prod = _accumulation("reduce_prod", "prod")


def _extremum(op: str, name: str):
    """np.max / np.min. There is no identity, so where= needs initial= (as in NumPy), which
    then stands in for masked-out elements and is also the result of an empty reduction."""
    combine = "maximum" if op == "reduce_max" else "minimum"

    def fn(
        x: Any,
        axis: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = None,
        where: Any = None,
    ) -> Any:
        _no_extras(name, out)
        x = _asarr(x)
        m = _mask(x, where)
        if m is not None and initial is None:
            raise ShapeError(
                f"np.{name}: where= needs initial= (the reduction has no identity to give "
                "masked-out elements)",
                user_location(),
            )
        axes = _norm_axes(x, axis, name)
        shape = registry.reduced_shape(tuple(x.shape), axes, bool(keepdims))
        if initial is not None and _count(x, axes) == 0:
            return broadcast_to(_fill(x, initial), shape)
        x = _fill_unmasked(x, m, initial)
        r = bind(op, x, axes=axes, keepdims=bool(keepdims))
        return r if initial is None else bind(combine, r, _fill(r, initial))

    fn.__name__ = name
    return fn


max = amax = _extremum("reduce_max", "max")
min = amin = _extremum("reduce_min", "min")


def ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """Peak to peak, max - min over axis (ties at either end share the gradient).

    Example:
        >>> gnp.ptp(np.array([[1.0, 4.0], [2.0, 3.0]]), axis=1)
        array([3., 1.])
    """
    _no_extras("ptp", out)
    a = _asarr(a)
    axes = _norm_axes(a, axis, "ptp")
    return subtract(max(a, axes, keepdims=keepdims), min(a, axes, keepdims=keepdims))


def _logical_reduction(
    red: Callable, identity: bool, x: Any, axis: Any, out: Any, keepdims: Any, where: Any
) -> Any:
    """np.any / np.all: masked-out elements and empty reductions give the identity."""
    _no_extras("any" if identity is False else "all", out)
    x = astype(_asarr(x), np.bool_)
    x = _fill_unmasked(x, _mask(x, where), identity)
    empty = _count(x, _norm_axes(x, axis, "any" if identity is False else "all")) == 0
    return red(x, axis=axis, out=out, keepdims=keepdims, initial=identity if empty else None)


def any(
    x: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    return _logical_reduction(max, False, x, axis, out, keepdims, where)


def all(
    x: Any, axis: Any = None, out: Any = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    return _logical_reduction(min, True, x, axis, out, keepdims, where)


def mean(
    x: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    *,
    where: Any = None,
) -> Any:
    _no_extras("mean", out)
    x = _asarr(x)
    out_dt = None
    if dtype is not None:
        x = astype(x, dtype)
    elif x.dtype.kind != "f":
        x = astype(x, np.float64)
    elif x.dtype == np.float16:  # NumPy accumulates float16 in float32
        x, out_dt = astype(x, np.float32), np.dtype(np.float16)
    axes = _norm_axes(x, axis, "mean")
    m = _mask(x, where)
    if m is not None:  # the mean of the selected elements: their sum over their count
        s = sum(x, axis=axes, keepdims=keepdims, where=m)
        n = sum(broadcast_to(m, x.shape), axis=axes, keepdims=keepdims)
        r = divide(s, astype(n, s.dtype))
        return r if out_dt is None else astype(r, out_dt)
    s = bind("reduce_sum", x, axes=axes, keepdims=bool(keepdims))
    if x.dtype.kind != "f":  # an integer dtype=: NumPy truncates the true quotient
        return astype(divide(s, _count(x, axes)), x.dtype)
    r = s * (1.0 / _count(x, axes)) if _count(x, axes) else s / 0.0
    return r if out_dt is None else astype(r, out_dt)


def var(
    x: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    *,
    where: Any = None,
    mean: Any = None,
    correction: Any = None,
) -> Any:
    _no_extras("var", out)
    if correction is not None:
        if ddof != 0:
            raise GraphcError(
                "np.var/np.std: ddof and correction can't be provided simultaneously",
                user_location(),
            )
        ddof = correction
    x = _asarr(x)
    if dtype is not None:
        x = astype(x, dtype)
    elif x.dtype.kind != "f":
        x = astype(x, np.float64)
    axes = _norm_axes(x, axis, "var")
    mask = _mask(x, where)
    if mask is not None:
        mu = globals()["mean"](x, axis=axes, keepdims=True, where=mask) if mean is None else mean
        d = x - mu
        s = sum(d * d, axis=axes, keepdims=keepdims, where=mask)
        cnt = sum(broadcast_to(mask, x.shape), axis=axes, keepdims=keepdims)
        dof = astype(cnt, s.dtype) - ddof
        return divide(
            s, globals()["where"](dof > 0, dof, 0.0)
        )  # NumPy: inf/nan when ddof >= the count
    m = globals()["mean"](x, axis=axes, keepdims=True) if mean is None else mean
    d = x - m
    n = _count(x, axes) - ddof
    s = bind("reduce_sum", d * d, axes=axes, keepdims=bool(keepdims))
    return s * (1.0 / n) if n > 0 else s / 0.0  # NumPy: inf/nan when ddof >= the count


def std(
    x: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kw: Any,
) -> Any:
    return sqrt(var(x, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kw))


def _arg(op: str):
    def fn(x: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        _no_extras(op, out)
        x = _asarr(x)
        ax = None if axis is None else _axes(op, axis, x.ndim, single=True)[0]
        return bind(op, x, axis=ax, keepdims=bool(keepdims))

    fn.__name__ = op
    return fn


argmax = _arg("argmax")
argmin = _arg("argmin")


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) over axis, exact for any magnitude (shifted by the max)."""
    x = _float_like(x)
    axes = _norm_axes(x, axis, "logsumexp")
    m = stop_gradient(max(x, axis=axes, keepdims=True))
    m = where(isfinite(m), m, 0)  # rows of -inf give -inf, not nan
    s = sum(exp(x - m), axis=axes, keepdims=True)
    out = log(s) + m
    return out if keepdims else reshape(out, registry.reduced_shape(x.shape, axes, False))


def log_softmax(x: Any, axis: Any = -1) -> Any:
    """x - logsumexp(x), computed as (x - max) - log(sum(exp(x - max))): subtracting the max
    first keeps large logits exact (1e4 + log 2 is not representable in float32)."""
    x = _float_like(x)
    axes = _norm_axes(x, axis, "log_softmax")
    m = stop_gradient(max(x, axis=axes, keepdims=True))
    shifted = x - where(isfinite(m), m, 0)
    return shifted - log(sum(exp(shifted), axis=axes, keepdims=True))


def softmax(x: Any, axis: Any = -1) -> Any:
    """exp(x) / sum(exp(x)), computed from the max-shifted values."""
    x = _float_like(x)
    axes = _norm_axes(x, axis, "softmax")
    e = exp(x - stop_gradient(max(x, axis=axes, keepdims=True)))
    return e / sum(e, axis=axes, keepdims=True)


def _scan(op: str, name: str):
    """np.cumsum / np.cumprod: flattened without an axis; small ints accumulate in 64 bits."""

    def fn(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
        _no_extras(name, out)
        a = _asarr(a)
        if axis is None:
            a, ax = ravel(a), 0
        else:
            ax = _axis(a, axis, name)
        a = astype(a, dtype if dtype is not None else _sum_dtype(a))
        return bind(op, a, axis=ax)

    fn.__name__ = name
    return fn


cumsum = _scan("cumsum", "cumsum")
cumprod = _scan("cumprod", "cumprod")


def cumulative_sum(
    x: Any,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    include_initial: bool = False,
) -> Any:
    """np.cumulative_sum: cumsum, optionally starting with 0."""
    return _cumulative("cumulative_sum", cumsum, 0, x, axis, dtype, out, include_initial)


def cumulative_prod(
    x: Any,
    /,
    *,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    include_initial: bool = False,
) -> Any:
    """np.cumulative_prod: cumprod, optionally starting with 1."""
    return _cumulative("cumulative_prod", cumprod, 1, x, axis, dtype, out, include_initial)


def _cumulative(
    name: str,
    fn: Callable,
    init: int,
    x: Any,
    axis: Any,
    dtype: Any,
    out: Any,
    include_initial: bool,
) -> Any:
    x = _asarr(x)
    if axis is None:
        if x.ndim > 1:
            raise ShapeError(
                f"np.{name}: axis is required for arrays of more than 1 dimension", user_location()
            )
        axis = 0
    r = fn(x, axis=axis, dtype=dtype, out=out)
    if include_initial:
        ax = _axis(r, axis, name)
        shape = list(r.shape)
        shape[ax] = 1
        r = concatenate([broadcast_to(np.asarray(init, r.dtype), tuple(shape)), r], axis=ax)
    return r


def count_nonzero(a: Any, axis: Any = None, *, keepdims: bool = False) -> Any:
    """The number of nonzero elements along axis (int64)."""
    return sum(astype(_asarr(a), np.bool_), axis=axis, keepdims=keepdims)


def allclose(
    a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Any:
    """Whether every element of a is close to b (a traced boolean)."""
    return all(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def array_equal(a1: Any, a2: Any, equal_nan: bool = False) -> Any:
    """Same shape and elements (a Python False for different shapes, as NumPy)."""
    a1, a2 = _asarr(a1), _asarr(a2)
    if tuple(a1.shape) != tuple(a2.shape):
        return False
    eq = equal(a1, a2)
    if equal_nan and a1.dtype.kind == "f" and a2.dtype.kind == "f":
        eq = eq | (isnan(a1) & isnan(a2))
    return all(eq)


def array_equiv(a1: Any, a2: Any) -> Any:
    """Elements equal after broadcasting (False when the shapes do not broadcast)."""
    a1, a2 = _asarr(a1), _asarr(a2)
    try:
        np.broadcast_shapes(tuple(a1.shape), tuple(a2.shape))
    except ValueError:
        return False
    return all(equal(a1, a2))


def _ufunc_reduce(fn: Callable, name: str, accumulates: bool):
    """np.<ufunc>.reduce(x, axis=0, dtype=None, keepdims=False) as the matching reduction."""

    def handler(
        x: Any,
        axis: Any = 0,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = None,
        where: Any = True,
    ) -> Any:
        if out is not None or initial is not None or where is not True:
            raise UnsupportedError(
                f"numpy.{name}.reduce: out=, initial= and where= are not supported",
                user_location(),
            )
        x = _asarr(x)
        if accumulates:
            return fn(x, axis=axis, dtype=dtype, keepdims=keepdims)
        if dtype is not None:
            x = astype(x, dtype)
        return fn(x, axis=axis, keepdims=keepdims)

    return handler


FUNCTIONS: dict[Callable, Callable] = {
    np.sum: sum,
    np.prod: prod,
    np.max: max,
    np.amax: amax,
    np.min: min,
    np.amin: amin,
    np.ptp: ptp,
    np.mean: mean,
    np.var: var,
    np.std: std,
    np.argmax: argmax,
    np.argmin: argmin,
    np.any: any,
    np.all: all,
    np.cumsum: cumsum,
    np.cumprod: cumprod,
    np.count_nonzero: count_nonzero,
    np.cumulative_sum: cumulative_sum,
    np.cumulative_prod: cumulative_prod,
    np.allclose: allclose,
    np.array_equal: array_equal,
    np.array_equiv: array_equiv,
}


UFUNC_METHODS: dict[tuple[np.ufunc, str], Callable] = {
    (np.add, "reduce"): _ufunc_reduce(sum, "add", True),
    (np.multiply, "reduce"): _ufunc_reduce(prod, "multiply", True),
    (np.maximum, "reduce"): _ufunc_reduce(max, "maximum", False),
    (np.minimum, "reduce"): _ufunc_reduce(min, "minimum", False),
    (np.add, "accumulate"): lambda a, axis=0, dtype=None, out=None: cumsum(a, axis, dtype, out),
    (np.multiply, "accumulate"): lambda a, axis=0, dtype=None, out=None: cumprod(
        a, axis, dtype, out
    ),
    (np.logaddexp, "reduce"): lambda a, axis=0, dtype=None, out=None, keepdims=False: logsumexp(
        _float_like(a) if dtype is None else astype(a, dtype), axis, keepdims
    ),
}
