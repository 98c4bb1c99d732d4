"""Polynomials as coefficient arrays (highest power first): evaluation, derivatives,
integrals, sums, products and least-squares fits, the Vandermonde matrix, and 1-d convolution
and correlation (a product of polynomials is a convolution)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir import GraphcError, ShapeError
from graphc.numpy._core import _asarr, _convert, _promote_all, _resolve, _static_int, astype
from graphc.numpy.contractions import matmul
from graphc.numpy.creation import ones_like, zeros_like
from graphc.numpy.indexing import _slice_axis
from graphc.numpy.linear_algebra import _pinv
from graphc.numpy.padding import pad
from graphc.numpy.reductions import sum
from graphc.numpy.shapes import atleast_1d, concatenate, flip, reshape, stack
from graphc.numpy.ufuncs import not_equal, sqrt
from graphc.trace import UnsupportedError, bind, user_location


def _windows(a: Any, width: int) -> Any:
    """Sliding windows (len(a) - width + 1, width) of a 1-d array: one gather."""
    n = a.shape[0]
    idx = np.arange(n - width + 1)[:, None] + np.arange(width)[None, :]
    return bind("gather", a, idx.astype(np.int64), axis=0)


def _convolve(name: str, a: Any, v: Any, mode: str) -> Any:
    dts = _resolve(np.multiply, (a, v))
    a, v = _convert(a, dts[0]), _convert(v, dts[1])
    if a.ndim != 1 or v.ndim != 1:
        raise ShapeError(
            f"np.{name}: needs 1-d arrays, got shapes {tuple(a.shape)} and {tuple(v.shape)}",
            user_location(),
        )
    n, m = a.shape[0], v.shape[0]
    if n == 0 or m == 0:
        raise ShapeError(f"np.{name}: an input is empty", user_location())
    if mode not in ("full", "same", "valid"):
        raise GraphcError(
            f"np.{name}: mode must be 'full', 'same' or 'valid', got {mode!r}", user_location()
        )
    boolean = a.dtype == np.bool_
    if boolean:
        a, v = astype(a, np.int64), astype(v, np.int64)
    ap = pad(a, (m - 1, m - 1))
    full = matmul(_windows(ap, m), flip(v))
    if boolean:
        full = not_equal(full, 0)
    short, long_ = builtins.min(n, m), builtins.max(n, m)
    if mode == "full":
        return full
    if mode == "same":
        start = (short - 1) // 2
        return _slice_axis(full, 0, start, start + long_)
    return _slice_axis(full, 0, short - 1, long_)


def convolve(a: Any, v: Any, mode: str = "full") -> Any:
    """Discrete 1-d convolution (as np.convolve): sliding windows times the flipped kernel."""
    return _convolve("convolve", a, v, mode)


def correlate(a: Any, v: Any, mode: str = "valid") -> Any:
    """Discrete 1-d cross-correlation (as np.correlate): a convolution with v reversed."""
    return _convolve("correlate", a, flip(_asarr(v)), mode)


def polyval(p: Any, x: Any) -> Any:
    """The polynomial with coefficients p (highest power first) at x, by Horner's rule."""
    p = _asarr(p)
    if p.ndim != 1:
        raise ShapeError(f"np.polyval: p must be 1-d, got shape {tuple(p.shape)}", user_location())
    y = zeros_like(_asarr(x)) * p[0] if p.shape[0] else zeros_like(_asarr(x))
    for i in range(p.shape[0]):
        y = y * x + p[i]
    return y


def polyder(p: Any, m: int = 1) -> Any:
    """The m-th derivative of the polynomial with coefficients p (highest power first)."""
    p = _asarr(p)
    m = _static_int(m, "np.polyder: m")
    if m < 0:
        raise GraphcError("np.polyder: order of derivative must be positive", user_location())
    for _ in range(m):
        n = p.shape[0] - 1
        if n <= 0:
            return zeros_like(p[:1]) if p.shape[0] else p
        p = _slice_axis(p, 0, 0, n) * np.arange(n, 0, -1).astype(
            p.dtype if p.dtype.kind == "f" else np.int64
        )
    return p


def polyint(p: Any, m: int = 1, k: Any = None) -> Any:
    """The m-th antiderivative of p, with integration constants k (0 by default)."""
    p = _asarr(p)
    m = _static_int(m, "np.polyint: m")
    ks = np.zeros(m) if k is None else np.atleast_1d(k)
    if len(ks) == 1 and m > 1:
        ks = np.full(m, ks[0])
    if p.dtype.kind != "f":
        p = astype(p, np.float64)
    for i in range(m):
        n = p.shape[0]
        p = concatenate(
            [p / np.arange(n, 0, -1).astype(p.dtype), astype(_asarr(ks[i]), p.dtype)[None]]
        )
    return p


def _poly_pair(a1: Any, a2: Any) -> tuple[Any, Any]:
    a1, a2 = _promote_all([atleast_1d(_asarr(a1)), atleast_1d(_asarr(a2))])
    n = builtins.max(a1.shape[0], a2.shape[0])
    return pad(a1, (n - a1.shape[0], 0)), pad(a2, (n - a2.shape[0], 0))


def polyadd(a1: Any, a2: Any) -> Any:
    x, y = _poly_pair(a1, a2)
    return x + y


def polysub(a1: Any, a2: Any) -> Any:
    x, y = _poly_pair(a1, a2)
    return x - y


def polymul(a1: Any, a2: Any) -> Any:
    return convolve(atleast_1d(_asarr(a1)), atleast_1d(_asarr(a2)))


def vander(x: Any, N: Any = None, increasing: bool = False) -> Any:
    """Columns of powers of x (decreasing unless increasing)."""
    x = _asarr(x)
    if x.ndim != 1:
        raise ShapeError("np.vander: x must be 1-d", user_location())
    n = x.shape[0] if N is None else _static_int(N, "np.vander: N")
    cols = [x**i for i in range(n)] if n else []
    cols = [ones_like(x) if i == 0 else c for i, c in enumerate(cols)]
    if not increasing:
        cols = cols[::-1]
    return stack(cols, axis=1) if cols else reshape(zeros_like(x), (x.shape[0], 0))


def polyfit(
    x: Any, y: Any, deg: int, rcond: Any = None, full: bool = False, w: Any = None, cov: Any = False
) -> Any:
    """Least-squares polynomial coefficients (highest power first), as np.polyfit: the
    column-scaled Vandermonde matrix's pseudo-inverse applied to y."""
    if full or w is not None or cov:
        raise UnsupportedError("np.polyfit: full=, w= and cov= are not supported", user_location())
    deg = _static_int(deg, "np.polyfit: deg")
    x, y = _asarr(x), _asarr(y)
    if deg < 0:
        raise GraphcError("np.polyfit: expected deg >= 0", user_location())
    if x.ndim != 1 or x.shape[0] == 0:
        raise ShapeError("np.polyfit: expected a non-empty 1-d x", user_location())
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ShapeError("np.polyfit: expected y of x's length (1-d or 2-d)", user_location())
    dt = np.result_type(x.dtype, y.dtype, np.float64)
    x, y = astype(x, dt), astype(y, dt)
    if rcond is None:
        rcond = x.shape[0] * np.finfo(dt).eps
    lhs = vander(x, deg + 1)
    scale = sqrt(sum(lhs * lhs, axis=0))
    c = matmul(_pinv(lhs / scale, rcond=rcond), y)
    return c / (scale if c.ndim == 1 else reshape(scale, (-1, 1)))


FUNCTIONS: dict[Callable, Callable] = {
    np.convolve: convolve,
    np.correlate: correlate,
    np.polyval: polyval,
    np.vander: vander,
    np.polyder: polyder,
    np.polyint: polyint,
    np.polyadd: polyadd,
    np.polysub: polysub,
    np.polymul: polymul,
    np.polyfit: polyfit,
}
