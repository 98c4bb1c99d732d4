"""Statistics: NaN-ignoring reductions, quantiles, percentiles and medians (a sort and two
order statistics, interpolated as NumPy's methods do), averages, covariance and correlation."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import DTypeError, GraphcError, ShapeError
from graphc.numpy._core import _asarr, _axes, _count, _no_extras, _norm_axes, _static_int, astype
from graphc.numpy.contractions import matmul
from graphc.numpy.diagonals import diagonal
from graphc.numpy.indexing import take_along_axis
from graphc.numpy.reductions import (
    all,
    any,
    argmax,
    argmin,
    cumprod,
    cumsum,
    max,
    mean,
    min,
    prod,
    sum,
    var,
)
from graphc.numpy.shapes import atleast_2d, broadcast_to, concatenate, reshape, squeeze, transpose
from graphc.numpy.sorting import sort
from graphc.numpy.ufuncs import (
    ceil,
    clip,
    floor,
    isnan,
    logical_not,
    maximum,
    minimum,
    multiply,
    rint,
    sqrt,
    where,
)
from graphc.ops import registry
from graphc.trace import Tracer, UnsupportedError, user_location


def average(
    a: Any, axis: Any = None, weights: Any = None, returned: bool = False, *, keepdims: Any = False
) -> Any:
    """The (weighted) mean over axis; with returned=True also the sum of the weights."""
    a = _asarr(a)
    axes = _norm_axes(a, axis, "average")
    keepdims = bool(keepdims)
    if weights is None:
        avg = mean(a, axis=axes, keepdims=keepdims)
        scl: Any = np.asarray(a.size / builtins.max(avg.size, 1), dtype=avg.dtype)
    else:
        w = _asarr(weights)
        if a.dtype.kind in "biu":
            dt = np.result_type(a.dtype, w.dtype, np.float64)
        else:
            dt = np.result_type(a.dtype, w.dtype)
        if tuple(a.shape) != tuple(w.shape):
            if axis is None:
                raise ShapeError(
                    f"average: weights of shape {tuple(w.shape)} differ from a's shape "
                    f"{tuple(a.shape)}; give the axis they run along",
                    user_location(),
                )
            given = list(_axes("average", axis, a.ndim))
            if tuple(w.shape) != tuple(a.shape[g] for g in given):
                raise ShapeError(
                    f"average: weights of shape {tuple(w.shape)} do not match a's shape "
                    f"{tuple(a.shape)} along axis {axis}",
                    user_location(),
                )
            w = transpose(w, tuple(int(i) for i in np.argsort(given)))
            w = reshape(w, tuple(s if i in given else 1 for i, s in enumerate(a.shape)))
        scl = sum(w, axis=axes, dtype=dt, keepdims=keepdims)
        if not isinstance(scl, Tracer) and np.any(scl == 0):
            raise GraphcError("average: the weights sum to zero", user_location())
        avg = sum(multiply(astype(a, dt), astype(w, dt)), axis=axes, keepdims=keepdims) / scl
    if not returned:
        return avg
    if tuple(np.shape(scl)) != tuple(avg.shape):
        scl = broadcast_to(scl, avg.shape)
    return avg, scl


def _nan_masked(a: Any, fill: float) -> tuple[Any, Any]:
    """a with NaNs replaced by fill, and the NaN mask (None for non-float arrays)."""
    a = _asarr(a)
    if a.dtype.kind != "f":
        return a, None
    m = isnan(a)
    return where(m, np.asarray(fill, a.dtype), a), m


def nansum(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    """sum treating NaNs as 0."""
    _no_extras("nansum", out, kw.get("where"), kw.get("initial"))
    return sum(_nan_masked(a, 0.0)[0], axis=axis, dtype=dtype, keepdims=keepdims)


def nanprod(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    """prod treating NaNs as 1."""
    _no_extras("nanprod", out, kw.get("where"), kw.get("initial"))
    return prod(_nan_masked(a, 1.0)[0], axis=axis, dtype=dtype, keepdims=keepdims)


def _nan_extremum(name: str, fill: float, red: Callable):
    def fn(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Any:
        _no_extras(name, out, kw.get("where"), kw.get("initial"))
        v, m = _nan_masked(a, fill)
        r = red(v, axis=axis, keepdims=keepdims)
        if m is None:
            return r
        # a slice of NaNs only gives NaN, as NumPy (which also warns)
        return where(all(m, axis=axis, keepdims=keepdims), np.asarray(np.nan, r.dtype), r)

    fn.__name__ = name
    fn.__doc__ = f"{red.__name__} ignoring NaNs (NaN for slices of NaNs only)."
    return fn


nanmax = _nan_extremum("nanmax", -np.inf, max)
nanmin = _nan_extremum("nanmin", np.inf, min)


def _nan_arg(name: str, fill: float, red: Callable):
    def fn(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        v, m = _nan_masked(a, fill)
        r = red(v, axis=axis, keepdims=keepdims)
        if m is None:
            return r
        # NumPy raises for a slice of NaNs only, which compiled code cannot; -1 marks it
        if axis is None:
            dead = all(m)
        else:
            dead = all(m, axis=axis, keepdims=keepdims)
        return where(dead, np.asarray(-1, r.dtype), r)

    fn.__name__ = name
    fn.__doc__ = f"{red.__name__} ignoring NaNs; -1 for slices of NaNs only."
    return fn


nanargmax = _nan_arg("nanargmax", -np.inf, argmax)
nanargmin = _nan_arg("nanargmin", np.inf, argmin)


def _nan_count(m: Any, a: Any, axis: Any, keepdims: bool) -> Any:
    if m is None:
        axes = _norm_axes(a, axis, "nan reduction")
        return np.asarray(_count(a, axes), dtype=np.int64)
    return sum(logical_not(m), axis=axis, keepdims=keepdims)


def nanmean(
    a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    """mean of the non-NaN values (NaN where there are none)."""
    _no_extras("nanmean", out, kw.get("where"))
    a = _asarr(a)
    if a.dtype.kind != "f":
        return mean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    v, m = _nan_masked(a, 0.0)
    if dtype is not None:
        v = astype(v, dtype)
    s = sum(v, axis=axis, keepdims=keepdims)
    return s / astype(_nan_count(m, a, axis, keepdims), s.dtype)


def nanvar(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kw: Any,
) -> Any:
    """var of the non-NaN values (NaN where fewer than ddof + 1 remain)."""
    _no_extras("nanvar", out, kw.get("where"))
    a = _asarr(a)
    if a.dtype.kind != "f":
        return var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    v, m = _nan_masked(a, 0.0)
    if dtype is not None:
        v = astype(v, dtype)
    cnt = astype(_nan_count(m, a, axis, True), v.dtype)
    mu = sum(v, axis=axis, keepdims=True) / cnt
    d = where(m, np.zeros((), v.dtype), v - mu)
    s = sum(d * d, axis=axis, keepdims=keepdims)
    dof = astype(_nan_count(m, a, axis, keepdims), v.dtype) - ddof
    ok = dof > 0
    return where(ok, s / where(ok, dof, 1), np.asarray(np.nan, v.dtype))


def nanstd(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: int = 0,
    keepdims: bool = False,
    **kw: Any,
) -> Any:
    """std of the non-NaN values."""
    return sqrt(nanvar(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kw))


def nancumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """cumsum treating NaNs as 0."""
    return cumsum(_nan_masked(a, 0.0)[0], axis=axis, dtype=dtype, out=out)


def nancumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """cumprod treating NaNs as 1."""
    return cumprod(_nan_masked(a, 1.0)[0], axis=axis, dtype=dtype, out=out)


_QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(name: str, a: Any, q: Any, axis: Any, method: str, keepdims: bool, nan: bool) -> Any:
    """Quantiles from a sort along the reduced axes: the two neighbouring order statistics,
    interpolated as NumPy's methods do; the gradient flows to those two elements."""
    if isinstance(q, Tracer):
        raise UnsupportedError(f"np.{name}: q must be a constant, not traced", user_location())
    if method not in _QUANTILE_METHODS:
        raise UnsupportedError(
            f"np.{name}: method={method!r} is not supported (supported: "
            f"{', '.join(_QUANTILE_METHODS)})",
            user_location(),
        )
    try:
        qa = np.asarray(q, dtype=np.float64)
    except (TypeError, ValueError):
        raise GraphcError(f"np.{name}: q must be numbers, got {q!r}", user_location()) from None
    if np.any(~((qa >= 0) & (qa <= 1))):
        what = (
            "Percentiles must be in the range [0, 100]"
            if "percentile" in name
            else ("Quantiles must be in the range [0, 1]")
        )
        raise GraphcError(f"np.{name}: {what}, got {q!r}", user_location())
    a = _asarr(a)
    jumps = method in ("lower", "higher", "nearest")
    out_dt = a.dtype
    if not jumps:
        if a.dtype == np.bool_ and "median" not in name:
            raise DTypeError(
                f"np.{name}: boolean arrays cannot be interpolated (NumPy rejects them); cast "
                "to a number type first",
                user_location(),
            )
        if a.dtype.kind != "f":
            a = astype(a, np.float64)
        # NumPy's promotion of a with q (a Python float q is weak)
        qt = q if isinstance(q, (int, float)) else np.asarray(q).dtype
        out_dt = np.result_type(a.dtype, qt)
    scalar_in = a.ndim == 0
    if scalar_in and axis is None:
        a = reshape(a, (1,))
    axes = _norm_axes(a, axis, name)
    if not axes:
        raise ShapeError(f"np.{name}: needs at least one axis to reduce", user_location())
    if builtins.any(a.shape[i] == 0 for i in axes):
        if jumps or not (nan or "median" in name):
            raise ShapeError(f"np.{name}: cannot take quantiles of an empty axis", user_location())
        # NumPy: NaN (with a warning) for the median (and nan-quantiles) of nothing
        shape = qa.shape + registry.reduced_shape(tuple(a.shape), axes, bool(keepdims))
        return np.full(shape, np.nan, dtype=out_dt)
    rest = [i for i in range(a.ndim) if i not in axes]
    x = transpose(a, rest + list(axes))
    n = _count(a, axes)
    x = reshape(x, tuple(a.shape[i] for i in rest) + (n,))
    s = sort(x, axis=-1)
    qf = qa.reshape(qa.shape + (1,) * len(rest) + (1,))
    nan = nan and a.dtype.kind == "f"
    if nan:
        cnt = sum(logical_not(isnan(x)), axis=-1, keepdims=True)
        pos = astype(cnt - 1, np.float64) * qf  # (q..., rest..., 1)
    else:
        pos = np.asarray((n - 1) * qf)
    lo_f = floor(pos)
    frac = pos - lo_f
    if method == "lower":
        hi_f, frac = lo_f, frac * 0
    elif method == "higher":
        lo_f = ceil(pos)
        hi_f, frac = lo_f, frac * 0
    elif method == "nearest":
        lo_f = rint(pos)  # NumPy rounds half to even here
        hi_f, frac = lo_f, frac * 0
    else:
        hi_f = lo_f + 1
        if method == "midpoint":
            frac = (
                where(frac > 0, 0.5, frac)
                if isinstance(frac, Tracer)
                else np.where(frac > 0, 0.5, frac)
            )
    lo = clip(astype(lo_f, np.int64), 0, n - 1)
    hi = clip(astype(hi_f, np.int64), 0, n - 1)
    if nan:  # never read the NaNs sorted to the end: lerp with NaN * 0 is NaN
        last = maximum(cnt - 1, 0)
        lo, hi = minimum(lo, last), minimum(hi, last)
    lead = qa.ndim
    sb = broadcast_to(s, qa.shape + tuple(s.shape)) if lead else s
    shape = qa.shape + tuple(s.shape[:-1]) + (1,)
    v_lo = take_along_axis(sb, broadcast_to(lo, shape), axis=-1)
    v_hi = take_along_axis(sb, broadcast_to(hi, shape), axis=-1)
    if jumps:
        r = v_lo
    else:
        t = astype(frac, out_dt)
        d = astype(v_hi - v_lo, out_dt)
        v_lo, v_hi = astype(v_lo, out_dt), astype(v_hi, out_dt)
        # NumPy's lerp: from the nearer end, so t = 1 gives the upper value exactly
        r = where(t >= 0.5, v_hi - d * (1 - t), v_lo + d * t)
    r = reshape(r, tuple(r.shape[:-1]))
    if scalar_in and axis is None:
        return r
    if a.dtype.kind == "f":
        bad = all(isnan(x), axis=-1) if nan else any(isnan(x), axis=-1)
        r = where(bad, np.asarray(np.nan, r.dtype), r)
    if keepdims:
        r = reshape(r, qa.shape + tuple(1 if i in axes else a.shape[i] for i in range(a.ndim)))
    return r


def _per_cent(q: Any) -> Any:
    """q / 100, a Python float for a Python number (NumPy treats those as weak)."""
    return (
        q / 100
        if isinstance(q, (int, float)) and not isinstance(q, bool)
        else np.true_divide(q, 100)
    )


def quantile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    """q-th quantiles along axis (NaN where a slice holds NaN), by sorting.

    Example:
        >>> quantile(np.array([3.0, 1.0, 2.0, 4.0]), 0.5)
        np.float64(2.5)
    """
    _no_extras("quantile", out, weights)
    return _quantile("quantile", a, q, axis, interpolation or method, keepdims, False)


def percentile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    """q-th percentiles along axis, by sorting."""
    _no_extras("percentile", out, weights)
    return _quantile("percentile", a, _per_cent(q), axis, interpolation or method, keepdims, False)


def median(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Any:
    """The median along axis, by sorting."""
    _no_extras("median", out)
    return _quantile("median", a, 0.5, axis, "linear", keepdims, False)


def nanquantile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    """quantile of the non-NaN values (NaN for slices of NaNs only)."""
    _no_extras("nanquantile", out, weights)
    return _quantile("nanquantile", a, q, axis, interpolation or method, keepdims, True)


def nanpercentile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    """percentile of the non-NaN values."""
    _no_extras("nanpercentile", out, weights)
    return _quantile(
        "nanpercentile", a, _per_cent(q), axis, interpolation or method, keepdims, True
    )


def nanmedian(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Any:
    """median of the non-NaN values."""
    _no_extras("nanmedian", out)
    return _quantile("nanmedian", a, 0.5, axis, "linear", keepdims, True)


def cov(
    m: Any,
    y: Any = None,
    rowvar: bool = True,
    bias: bool = False,
    ddof: Any = None,
    fweights: Any = None,
    aweights: Any = None,
    *,
    dtype: Any = None,
) -> Any:
    """Covariance matrix of the variables in m's rows (columns with rowvar=False).

    Example:
        >>> cov(np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]))
        array([[ 1., -1.],
               [-1.,  1.]])
    """
    if fweights is not None or aweights is not None:
        raise UnsupportedError("np.cov: fweights= and aweights= are not supported", user_location())
    x = _asarr(m)
    if x.ndim > 2:
        raise ShapeError(
            f"np.cov: m has more than 2 dimensions ({tuple(x.shape)})", user_location()
        )
    dt = np.result_type(x.dtype, np.float64) if dtype is None else np.dtype(dtype)
    x = astype(atleast_2d(x), dt)
    if not rowvar and x.shape[0] != 1:
        x = transpose(x)
    if y is not None:
        yy = astype(atleast_2d(_asarr(y)), dt)
        if not rowvar and yy.shape[0] != 1:
            yy = transpose(yy)
        x = concatenate([x, yy], axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    n = x.shape[1] - _static_int(ddof, "np.cov: ddof")
    xc = x - mean(x, axis=1, keepdims=True)
    c = matmul(xc, transpose(xc))
    c = c * (1.0 / n) if n > 0 else c / 0.0
    return squeeze(c)


def corrcoef(x: Any, y: Any = None, rowvar: bool = True, *, dtype: Any = None) -> Any:
    """Pearson correlation coefficients, clipped to [-1, 1] as NumPy."""
    c = cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return c / c
    d = sqrt(diagonal(c))
    c = c / reshape(d, (-1, 1)) / reshape(d, (1, -1))
    return clip(c, -1, 1)


FUNCTIONS: dict[Callable, Callable] = {
    np.average: average,
    np.nansum: nansum,
    np.nanprod: nanprod,
    np.nanmax: nanmax,
    np.nanmin: nanmin,
    np.nanargmax: nanargmax,
    np.nanargmin: nanargmin,
    np.nanmean: nanmean,
    np.nanvar: nanvar,
    np.nanstd: nanstd,
    np.nancumsum: nancumsum,
    np.nancumprod: nancumprod,
    np.quantile: quantile,
    np.percentile: percentile,
    np.median: median,
    np.nanquantile: nanquantile,
    np.nanpercentile: nanpercentile,
    np.nanmedian: nanmedian,
    np.cov: cov,
    np.corrcoef: corrcoef,
}
