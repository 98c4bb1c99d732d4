"""`graphc.numpy.linalg`, NumPy's np.linalg on tracers: norms, inverses, determinants and
solves (ops of their own), the SVD family (pinv, matrix_rank, cond, the 2 and nuclear norms),
eigh, cholesky and qr (each one op whose factors are read back as slices)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from graphc.ir import DTypeError, GraphcError, ShapeError
from graphc.numpy._core import _asarr, _axes, _axis, _norm_axes, _static_int, astype
from graphc.numpy.contractions import cross, dot, matmul, outer, tensordot, vecdot
from graphc.numpy.creation import zeros_like
from graphc.numpy.diagonals import diagonal, trace
from graphc.numpy.reductions import count_nonzero, max, min, sum
from graphc.numpy.shapes import (
    broadcast_to,
    expand_dims,
    matrix_transpose,
    moveaxis,
    ravel,
    reshape,
    swapaxes,
    transpose,
)
from graphc.numpy.ufuncs import absolute, not_equal, power, sqrt, where
from graphc.ops.decomp import eigh_parts as _eigh_parts
from graphc.ops.decomp import qr_parts as _qr_parts
from graphc.ops.decomp import svd_parts as _svd_parts
from graphc.trace import UnsupportedError, bind, user_location


def _square(a: Any, name: str) -> Any:
    a = _asarr(a)
    if a.dtype.kind in "biu":
        a = astype(a, np.float64)
    elif a.dtype not in (np.float32, np.float64):
        raise DTypeError(
            f"numpy.linalg.{name}: arrays of type {a.dtype} are not supported "
            "(float32 and float64 are)",
            user_location(),
        )
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(
            f"numpy.linalg.{name}: needs square matrices (..., n, n), got shape {tuple(a.shape)}",
            user_location(),
        )
    return a


class SlogdetResult(NamedTuple):
    sign: Any
    logabsdet: Any


def _norm_basic(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """np.linalg.norm: vector norms (None, 2, 1, inf, -inf, 0, any p) and matrix norms
    (None, 'fro', 1, -1, inf, -inf), from abs, powers and reductions."""
    x = _asarr(x)
    if x.dtype.kind in "biu":
        x = astype(x, np.float64)
    nd = x.ndim
    if axis is None:
        if ord is None:
            r = sqrt(sum(x * x))
            return reshape(r, (1,) * nd) if keepdims else r
        axes = tuple(range(nd))
    else:
        axes = _axes("norm", axis, nd)
    if len(axes) == 1:
        if isinstance(ord, str):
            raise GraphcError(f"norm: invalid norm order {ord!r} for vectors", user_location())
        kw = {"axis": axes, "keepdims": keepdims}
        if ord == np.inf:
            return max(absolute(x), **kw)
        if ord == -np.inf:
            return min(absolute(x), **kw)
        if ord == 0:
            return sum(astype(not_equal(x, 0), x.dtype), **kw)
        if ord == 1:
            return sum(absolute(x), **kw)
        if ord is None or ord == 2:
            return sqrt(sum(x * x, **kw))
        p = float(ord)
        return power(sum(power(absolute(x), p), **kw), 1.0 / p)
    if len(axes) == 2:
        row, col = axes
        if ord in (2, -2, "nuc"):
            raise UnsupportedError(
                f"norm: the matrix norm ord={ord!r} needs singular values, which graphc does "
                "not compute",
                user_location(),
            )
        if ord is None or ord in ("fro", "f"):
            r = sqrt(sum(x * x, axis=axes))
        elif ord in (1, -1):
            red = max if ord == 1 else min
            r = red(sum(absolute(x), axis=row), axis=col - 1 if col > row else col)
        elif ord in (np.inf, -np.inf):
            red = max if ord == np.inf else min
            r = red(sum(absolute(x), axis=col), axis=row - 1 if row > col else row)
        else:
            raise GraphcError(f"norm: invalid norm order {ord!r} for matrices", user_location())
        if keepdims:
            r = reshape(r, tuple(1 if i in axes else s for i, s in enumerate(x.shape)))
        return r
    raise ShapeError(
        f"norm: axis must name 1 or 2 axes (a vector or a matrix norm), got {axis!r} for an "
        f"array of shape {tuple(x.shape)}",
        user_location(),
    )


def _matrices(a: Any, name: str) -> Any:
    a = _asarr(a)
    if a.dtype.kind in "biu":
        a = astype(a, np.float64)
    elif a.dtype not in (np.float32, np.float64):
        raise DTypeError(
            f"numpy.linalg.{name}: arrays of type {a.dtype} are not supported "
            "(float32 and float64 are)",
            user_location(),
        )
    if a.ndim < 2:
        raise ShapeError(
            f"numpy.linalg.{name}: needs matrices (..., m, n), got shape {tuple(a.shape)}",
            user_location(),
        )
    return a


class SVDResult(NamedTuple):
    U: Any
    S: Any
    Vh: Any


def _svd(
    a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False
) -> Any:
    """np.linalg.svd: U, S, Vh (or only S with compute_uv=False) from one `svd` op.
    Gradients need distinct (and, for U and Vh of a non-square matrix, nonzero) singular
    values; full_matrices=True of a non-square matrix has values but no gradient."""
    a = _matrices(a, "svd")
    m, n = a.shape[-2:]
    fm = bool(full_matrices) and compute_uv and m != n
    packed = bind("svd", a, full_matrices=fm)
    u, s, vh = _svd_parts(packed, m, n, fm)
    return SVDResult(u, s, vh) if compute_uv else s


def _svdvals(x: Any, /) -> Any:
    return _svd(x, compute_uv=False)


def _norm_svd(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """np.linalg.norm, with the matrix norms that need singular values (ord=2, -2, 'nuc')."""
    xa = _asarr(x)
    if ord not in (2, -2, "nuc") or isinstance(ord, bool):
        return _norm_basic(x, ord, axis, keepdims)
    if axis is None:
        if xa.ndim != 2:
            return _norm_basic(x, ord, axis, keepdims)
        axes = (0, 1)
    else:
        axes = tuple(np.atleast_1d(axis).tolist())
        if len(axes) != 2:
            return _norm_basic(x, ord, axis, keepdims)
    row, col = (_axis(xa, axes[0], "norm"), _axis(xa, axes[1], "norm"))
    if row == col:
        raise ShapeError("norm: duplicate axes", user_location())
    mats = moveaxis(_matrices(xa, "norm"), (row, col), (-2, -1))
    s = _svdvals(mats)
    r = max(s, axis=-1) if ord == 2 else min(s, axis=-1) if ord == -2 else sum(s, axis=-1)
    if keepdims:
        r = reshape(r, tuple(1 if i in (row, col) else d for i, d in enumerate(xa.shape)))
    return r


def _pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = None) -> Any:
    """Moore-Penrose pseudo-inverse from the SVD: singular values at or below
    rcond * max(s) are treated as zero (default rcond: max(m, n) * eps)."""
    a0 = _asarr(a)
    if a0.ndim >= 2 and a0.size == 0:  # NumPy: an empty result of the input's dtype
        return np.zeros(tuple(a0.shape[:-2]) + (a0.shape[-1], a0.shape[-2]), dtype=a0.dtype)
    a = _matrices(a, "pinv")
    m, n = a.shape[-2:]
    if rcond is None:
        rcond = rtol if rtol is not None else builtins.max(m, n) * np.finfo(a.dtype).eps
    u, s, vh = _svd(a, full_matrices=False)
    cutoff = np.asarray(rcond) * max(s, axis=-1, keepdims=True) if s.shape[-1] else 0
    keep = s > cutoff
    s_inv = where(keep, 1 / where(keep, s, 1), np.zeros((), s.dtype))
    return matmul(swapaxes(vh, -1, -2) * expand_dims(s_inv, -2), swapaxes(u, -1, -2))


def _matrix_rank(A: Any, tol: Any = None, hermitian: bool = False, *, rtol: Any = None) -> Any:
    """The number of singular values above tol (default: max(s) * max(m, n) * eps)."""
    A = _asarr(A)
    if A.ndim < 2:
        return astype(count_nonzero(A) > 0, np.int64)
    if A.size == 0:
        return np.zeros(tuple(A.shape[:-2]), dtype=np.int64)
    a = _matrices(A, "matrix_rank")
    s = _svdvals(a)
    m, n = a.shape[-2:]
    if tol is None:
        r = rtol if rtol is not None else builtins.max(m, n) * np.finfo(a.dtype).eps
        tol = max(s, axis=-1, keepdims=True) * r
    else:
        tol = expand_dims(_asarr(tol), -1)
    return count_nonzero(s > tol, axis=-1)


def _cond(x: Any, p: Any = None) -> Any:
    """Condition number: s_max / s_min for p None, 2 or -2, else norm(x, p) norm(inv(x), p)."""
    x = _matrices(x, "cond")
    if p is None or p in (2, -2):
        s = _svdvals(x)
        r = max(s, axis=-1) / min(s, axis=-1)
        return 1 / r if p == -2 else r
    return _norm_svd(x, p, axis=(-2, -1)) * _norm_svd(linalg.inv(x), p, axis=(-2, -1))


def _matrix_power(a: Any, n: int) -> Any:
    """a to the integer power n by repeated squaring (negative n: of inv(a))."""
    a = _asarr(a)
    n = _static_int(n, "numpy.linalg.matrix_power: n")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(
            f"numpy.linalg.matrix_power: needs square matrices (..., n, n), got shape "
            f"{tuple(a.shape)}",
            user_location(),
        )
    if n == 0:
        eye = np.eye(a.shape[-1], dtype=a.dtype)
        return broadcast_to(eye, tuple(a.shape)) + zeros_like(a)
    if n < 0:
        a, n = linalg.inv(a), -n
    result, base = None, a
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def _multi_dot(arrays: Sequence[Any], *, out: Any = None) -> Any:
    arrays = [_asarr(a) for a in arrays]
    if len(arrays) < 2:
        raise ShapeError("numpy.linalg.multi_dot: needs at least two arrays", user_location())
    r = arrays[0]
    for b in arrays[1:]:
        r = dot(r, b)
    return r


def _vector_norm(x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    x = _asarr(x)
    if axis is None:
        r = _norm_basic(ravel(x), ord, 0)
        return reshape(r, (1,) * x.ndim) if keepdims else r
    axes = _norm_axes(x, axis, "linalg.vector_norm")
    if len(axes) == 1:
        return _norm_basic(x, ord, axes[0], keepdims)
    rest = [i for i in range(x.ndim) if i not in axes]
    y = reshape(transpose(x, rest + list(axes)), tuple(x.shape[i] for i in rest) + (-1,))
    r = _norm_basic(y, ord, -1)
    if keepdims:
        r = reshape(r, tuple(1 if i in axes else s for i, s in enumerate(x.shape)))
    return r


def _matrix_norm(x: Any, /, *, keepdims: bool = False, ord: Any = "fro") -> Any:
    return _norm_svd(x, ord, axis=(-2, -1), keepdims=keepdims)


class EighResult(NamedTuple):
    eigenvalues: Any
    eigenvectors: Any


def _uplo(UPLO: Any, name: str) -> bool:
    if UPLO not in ("L", "U"):
        raise GraphcError(f"numpy.linalg.{name}: UPLO argument must be 'L' or 'U'", user_location())
    return UPLO == "L"


def _eigh(a: Any, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices, read from one
    triangle as NumPy does; eigenvector gradients need distinct eigenvalues."""
    lower = _uplo(UPLO, "eigh")
    a = _square(a, "eigh")
    w, v = _eigh_parts(bind("eigh", a, lower=lower), a.shape[-1])
    return EighResult(w, v)


def _eigvalsh(a: Any, UPLO: str = "L") -> Any:
    return _eigh(a, UPLO).eigenvalues


def _cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """The Cholesky factor of symmetric positive definite matrices (lower, or upper with
    upper=True, each read from its own triangle as NumPy does)."""
    a = _square(a, "cholesky")
    if upper:
        return swapaxes(bind("cholesky", swapaxes(a, -1, -2)), -1, -2)
    return bind("cholesky", a)


class QRResult(NamedTuple):
    Q: Any
    R: Any


def _qr(a: Any, mode: str = "reduced") -> Any:
    """np.linalg.qr for modes 'reduced', 'complete' and 'r'; gradients for the reduced
    factorisation of matrices with at least as many rows as columns."""
    if mode not in ("reduced", "complete", "r"):
        raise UnsupportedError(
            f"numpy.linalg.qr: mode={mode!r} is not supported ('reduced', 'complete', 'r' are)",
            user_location(),
        )
    a = _matrices(a, "qr")
    m, n = a.shape[-2:]
    complete = mode == "complete" and m > n
    q, r = _qr_parts(bind("qr", a, complete=complete), m, n, complete)
    return r if mode == "r" else QRResult(q, r)


def _tensorinv(a: Any, ind: int = 2) -> Any:
    a = _asarr(a)
    ind = _static_int(ind, "numpy.linalg.tensorinv: ind")
    if ind <= 0:
        raise GraphcError("numpy.linalg.tensorinv: ind must be a positive integer", user_location())
    old = tuple(a.shape)
    front = int(np.prod(old[:ind], dtype=np.int64))
    back = int(np.prod(old[ind:], dtype=np.int64))
    if front != back:
        raise ShapeError(
            f"numpy.linalg.tensorinv: the first {ind} axes of shape {old} do not hold as many "
            "elements as the rest",
            user_location(),
        )
    return reshape(linalg.inv(reshape(a, (front, back))), old[ind:] + old[:ind])


def _tensorsolve(a: Any, b: Any, axes: Any = None) -> Any:
    a, b = _asarr(a), _asarr(b)
    if axes is not None:
        allaxes = list(range(a.ndim))
        for k in axes:
            allaxes.remove(k % a.ndim)
            allaxes.insert(a.ndim, k % a.ndim)
        a = transpose(a, allaxes)
    rest = tuple(a.shape[b.ndim :])
    m = int(np.prod(b.shape, dtype=np.int64))
    k = int(np.prod(rest, dtype=np.int64))
    if m != k or tuple(a.shape[: b.ndim]) != tuple(b.shape):
        raise ShapeError(
            f"numpy.linalg.tensorsolve: a of shape {tuple(a.shape)} does not fit b of shape "
            f"{tuple(b.shape)}",
            user_location(),
        )
    return reshape(linalg.solve(reshape(a, (m, k)), ravel(b)), rest)


class linalg:  # noqa: N801  (mirrors np.linalg)
    """graphc's np.linalg: norm (a composition, with the SVD for ord=2, -2 and 'nuc'), inv,
    det and slogdet (ops with NumPy fallbacks when compiled), solve (an op of its own, LU as in
    NumPy), the SVD family, eigh, cholesky, qr, and what np.linalg shares with numpy (outer,
    cross, trace, diagonal, matmul, ...)."""

    norm = staticmethod(_norm_svd)

    @staticmethod
    def inv(a: Any) -> Any:
        return bind("inv", _square(a, "inv"))

    @staticmethod
    def det(a: Any) -> Any:
        return bind("det", _square(a, "det"))

    @staticmethod
    def slogdet(a: Any) -> SlogdetResult:
        a = _square(a, "slogdet")
        return SlogdetResult(bind("detsign", a), bind("logabsdet", a))

    @staticmethod
    def solve(a: Any, b: Any) -> Any:
        a, b = _square(a, "solve"), _asarr(b)
        b = astype(b, np.result_type(a.dtype, b.dtype, np.float32))
        a = astype(a, b.dtype)
        if b.ndim == 0 or b.shape[-1 if b.ndim == 1 else -2] != a.shape[-1]:
            raise ShapeError(
                f"numpy.linalg.solve: b of shape {tuple(b.shape)} does not fit a of shape "
                f"{tuple(a.shape)}",
                user_location(),
            )
        # NumPy 2: a 1-d b is one vector; otherwise b is a stack of (n, k) matrices
        vec = b.ndim == 1
        if vec:
            b = reshape(b, (b.shape[0], 1))
        batch = np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
        a = broadcast_to(a, batch + tuple(a.shape[-2:]))
        b = broadcast_to(b, batch + tuple(b.shape[-2:]))
        x = bind("solve", a, b)
        return reshape(x, tuple(x.shape[:-1])) if vec else x

    qr = staticmethod(_qr)
    eigh = staticmethod(_eigh)
    eigvalsh = staticmethod(_eigvalsh)
    cholesky = staticmethod(_cholesky)
    svd = staticmethod(_svd)
    svdvals = staticmethod(_svdvals)
    pinv = staticmethod(_pinv)
    matrix_rank = staticmethod(_matrix_rank)
    cond = staticmethod(_cond)
    matrix_power = staticmethod(_matrix_power)
    multi_dot = staticmethod(_multi_dot)
    vector_norm = staticmethod(_vector_norm)
    matrix_norm = staticmethod(_matrix_norm)
    tensorinv = staticmethod(_tensorinv)
    tensorsolve = staticmethod(_tensorsolve)
    outer = staticmethod(outer)
    cross = staticmethod(lambda x1, x2, /, *, axis=-1: cross(x1, x2, axis=axis))
    trace = staticmethod(lambda x, /, *, offset=0, dtype=None: trace(x, offset, -2, -1, dtype))
    diagonal = staticmethod(lambda x, /, *, offset=0: diagonal(x, offset, -2, -1))
    matmul = staticmethod(matmul)
    tensordot = staticmethod(tensordot)
    vecdot = staticmethod(vecdot)
    matrix_transpose = staticmethod(matrix_transpose)


FUNCTIONS: dict[Callable, Callable] = {
    np.linalg.norm: linalg.norm,
    np.linalg.inv: linalg.inv,
    np.linalg.det: linalg.det,
    np.linalg.slogdet: linalg.slogdet,
    np.linalg.solve: linalg.solve,
    np.linalg.svd: linalg.svd,
    np.linalg.svdvals: linalg.svdvals,
    np.linalg.pinv: linalg.pinv,
    np.linalg.matrix_rank: linalg.matrix_rank,
    np.linalg.cond: linalg.cond,
    np.linalg.matrix_power: linalg.matrix_power,
    np.linalg.multi_dot: linalg.multi_dot,
    np.linalg.vector_norm: linalg.vector_norm,
    np.linalg.matrix_norm: linalg.matrix_norm,
    np.linalg.outer: linalg.outer,
    np.linalg.cross: linalg.cross,
    np.linalg.trace: linalg.trace,
    np.linalg.diagonal: linalg.diagonal,
    np.linalg.matmul: linalg.matmul,
    np.linalg.tensordot: linalg.tensordot,
    np.linalg.vecdot: linalg.vecdot,
    np.linalg.matrix_transpose: linalg.matrix_transpose,
    np.linalg.eigh: linalg.eigh,
    np.linalg.eigvalsh: linalg.eigvalsh,
    np.linalg.cholesky: linalg.cholesky,
    np.linalg.qr: linalg.qr,
    np.linalg.tensorinv: linalg.tensorinv,
    np.linalg.tensorsolve: linalg.tensorsolve,
}
