"""Matrix decompositions: the singular value decomposition, the symmetric eigendecomposition
and the Cholesky factorisation.

`svd` is one op with one array result: U, the singular values s and Vh of each (..., m, n)
matrix, flattened and joined along a last axis (`svd_parts` reads them back as slices). One
node keeps the IR single-valued while the three factors come from one LAPACK call, and a
gradient rule sees all three in `out`. Compiled code runs NumPy's LAPACK as a visible fallback.

Gradients are the standard ones for the thin SVD (k = min(m, n)), with F[i, j] = 1/(s_j² - s_i²)
off the diagonal:

    ds = diag(Uᵀ dA V)
    dU = U (F ∘ (dS S + S dSᵀ)) + (I - U Uᵀ) dA V S⁻¹          dS = Uᵀ dA V
    dV = V (F ∘ (S dS + dSᵀ S)) + (I - V Vᵀ) dAᵀ U S⁻¹

They exist only where the singular values are distinct and, for U and V of a non-square matrix,
nonzero: at repeated singular values the singular vectors are not unique and F is infinite (the
gradient of s alone, U diag(gs) Vᵀ, is always finite). With full_matrices=True a non-square
matrix's extra columns of U (or rows of Vh) are not unique either, so that form has no gradient.

Example:
    >>> import graphc, numpy as np
    >>> graphc.grad(lambda a: np.sum(np.linalg.svd(a, compute_uv=False)))(np.eye(2) * 3)
    array([[1., 0.],
           [0., 1.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.ir import Aval, DTypeError, GraphcError, ShapeError
from graphc.ops.batching import batch_leading
from graphc.ops.registry import Kind, bind, defop


def _dims(m: int, n: int, full_matrices: bool) -> tuple[int, int, int]:
    """Columns of U, number of singular values, rows of Vh."""
    k = min(m, n)
    return (m, k, n) if full_matrices else (k, k, k)


def _svd_rule(a: Aval, *, full_matrices: bool) -> Aval:
    if a.ndim < 2:
        raise ShapeError(f"svd: needs a stack of matrices (..., m, n), got {a}")
    if a.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise DTypeError(f"svd: needs float32 or float64 matrices, got {a}")
    m, n = a.shape[-2:]
    ku, k, kv = _dims(m, n, full_matrices)
    return Aval(a.shape[:-2] + (m * ku + k + kv * n,), a.dtype)


def _svd_impl(a: np.ndarray, *, full_matrices: bool) -> np.ndarray:
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    batch = a.shape[:-2]
    parts = [u.reshape(batch + (-1,)), s, vh.reshape(batch + (-1,))]
    return np.concatenate(parts, axis=-1).astype(a.dtype, copy=False)


def svd_parts(packed: Any, m: int, n: int, full_matrices: bool) -> tuple[Any, Any, Any]:
    """U (..., m, ku), s (..., k) and Vh (..., kv, n) read from an `svd` result."""
    ku, k, kv = _dims(m, n, full_matrices)
    batch = tuple(packed.shape[:-1])
    u = np.reshape(packed[..., : m * ku], batch + (m, ku))
    s = packed[..., m * ku : m * ku + k]
    vh = np.reshape(packed[..., m * ku + k :], batch + (kv, n))
    return u, s, vh


def _pack(u: Any, s: Any, vh: Any) -> Any:
    batch = tuple(s.shape[:-1])
    return np.concatenate([np.reshape(u, batch + (-1,)), s, np.reshape(vh, batch + (-1,))], axis=-1)


def _mT(x: Any) -> Any:
    return np.swapaxes(x, -1, -2)


def _gap_and_inverse(s: Any) -> tuple[Any, Any]:
    """F[i, j] = 1/(s_j² - s_i²) off the diagonal (0 on it), and 1/s with 1/0 read as 0."""
    k = s.shape[-1]
    eye = np.eye(k, dtype=s.dtype)
    row = np.expand_dims(s, -2)
    col = np.expand_dims(s, -1)
    f = 1 / ((row + col) * (row - col) + eye) - eye
    zero = s == 0
    s_inv = np.where(zero, 0, 1 / np.where(zero, 1, s))
    return f, s_inv


def _factors(out: Any, a: Any, full_matrices: bool) -> tuple[Any, Any, Any]:
    m, n = a.shape[-2:]
    if full_matrices and m != n:
        node = getattr(out, "node", None)
        raise GraphcError(
            "svd: full_matrices=True of a non-square matrix has no gradient (its extra "
            "singular vectors are not unique); use full_matrices=False",
            node.meta.loc if node is not None and node.meta is not None else None,
        )
    return svd_parts(out, m, n, full_matrices)


def _svd_jvp(ts: tuple, out: Any, a: Any, *, full_matrices: bool) -> Any:
    da = ts[0]
    u, s, vh = _factors(out, a, full_matrices)
    v = _mT(vh)
    m, n = a.shape[-2:]
    ds_mat = _mT(u) @ da @ v
    ds = np.diagonal(ds_mat, axis1=-2, axis2=-1)
    f, s_inv = _gap_and_inverse(s)
    row = np.expand_dims(s, -2)
    col = np.expand_dims(s, -1)
    dss = ds_mat * row  # dS S
    sds = ds_mat * col  # S dS
    du = u @ (f * (dss + _mT(dss)))
    dv = v @ (f * (sds + _mT(sds)))
    if m > n:
        dav = da @ v
        du = du + (dav - u @ (_mT(u) @ dav)) * np.expand_dims(s_inv, -2)
    if n > m:
        dau = _mT(da) @ u
        dv = dv + (dau - v @ (vh @ dau)) * np.expand_dims(s_inv, -2)
    return _pack(du, ds, _mT(dv))


def _svd_vjp(g: Any, out: Any, a: Any, *, full_matrices: bool) -> tuple:
    u, s, vh = _factors(out, a, full_matrices)
    m, n = a.shape[-2:]
    gu, gs, gvh = svd_parts(g, m, n, False)
    v, gv = _mT(vh), _mT(gvh)
    f, s_inv = _gap_and_inverse(s)
    x = f * (_mT(u) @ gu)
    y = f * (_mT(v) @ gv)
    row = np.expand_dims(s, -2)
    col = np.expand_dims(s, -1)
    eye = np.eye(s.shape[-1], dtype=s.dtype)
    core = eye * np.expand_dims(gs, -2) + (x + _mT(x)) * row + (y + _mT(y)) * col
    ga = u @ core @ vh
    if m > n:
        gus = gu * np.expand_dims(s_inv, -2)
        ga = ga + (gus - u @ (_mT(u) @ gus)) @ vh
    if n > m:
        gvs = gv * np.expand_dims(s_inv, -2)
        ga = ga + u @ _mT(gvs - v @ (vh @ gvs))
    return (ga,)


defop(
    "svd",
    Kind.OTHER,
    _svd_rule,
    _svd_impl,
    arity=1,
    vjp=_svd_vjp,
    jvp=_svd_jvp,
    batch=batch_leading,
    doc="singular value decomposition of each (..., m, n) matrix as in np.linalg.svd: U, s and "
    "Vh flattened and joined on a last axis; gradients need distinct singular values",
)


def svd(a: Any, full_matrices: bool = False) -> Any:
    """The packed `svd` of a traced or concrete matrix stack."""
    return bind("svd", a, full_matrices=bool(full_matrices))


# -- symmetric eigendecomposition and Cholesky ---------------------------------------------------
# np.linalg.eigh and np.linalg.cholesky read one triangle of their input (UPLO, lower for
# cholesky) and ignore the other, so their derivatives are those of the symmetric matrix that
# triangle describes: a perturbation dA acts as E = tril(dA) + tril(dA, -1)ᵀ (for UPLO='L'),
# and a gradient G with respect to that matrix is tril(G) + tril(Gᵀ, -1) with respect to A.


def _square_float(op: str, a: Aval) -> None:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{op}: needs a stack of square matrices (..., n, n), got {a}")
    if a.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise DTypeError(f"{op}: needs float32 or float64 matrices, got {a}")


def _tri(x: Any, lower: bool, k: int = 0) -> Any:
    n = x.shape[-1]
    keep = np.tri(n, n, k=k, dtype=bool) if lower else ~np.tri(n, n, k=k - 1, dtype=bool)
    return np.where(keep, x, np.zeros((), x.dtype))


def _sym_tangent(da: Any, lower: bool) -> Any:
    """The symmetric matrix a perturbation of the read triangle describes."""
    strict = _tri(da, lower, -1 if lower else 1)
    return _tri(da, lower) + _mT(strict)


def _sym_cotangent(g: Any, lower: bool) -> Any:
    """A gradient with respect to the symmetric matrix, moved onto the read triangle."""
    return _tri(g, lower) + _tri(_mT(g), lower, -1 if lower else 1)


def _eigh_rule(a: Aval, *, lower: bool) -> Aval:
    _square_float("eigh", a)
    n = a.shape[-1]
    return Aval(a.shape[:-2] + (n + n * n,), a.dtype)


def _eigh_impl(a: np.ndarray, *, lower: bool) -> np.ndarray:
    w, v = np.linalg.eigh(a, UPLO="L" if lower else "U")
    parts = [w, v.reshape(a.shape[:-2] + (-1,))]
    return np.concatenate(parts, axis=-1).astype(a.dtype, copy=False)


def eigh_parts(packed: Any, n: int) -> tuple[Any, Any]:
    """Eigenvalues (..., n), ascending, and eigenvectors (..., n, n) from an `eigh` result."""
    batch = tuple(packed.shape[:-1])
    return packed[..., :n], np.reshape(packed[..., n:], batch + (n, n))


def _eig_gaps(w: Any) -> Any:
    """F[i, j] = 1/(w_j - w_i) off the diagonal, 0 on it."""
    n = w.shape[-1]
    eye = np.eye(n, dtype=w.dtype)
    return 1 / (np.expand_dims(w, -2) - np.expand_dims(w, -1) + eye) - eye


def _eigh_jvp(ts: tuple, out: Any, a: Any, *, lower: bool) -> Any:
    w, v = eigh_parts(out, a.shape[-1])
    m = _mT(v) @ _sym_tangent(ts[0], lower) @ v
    dw = np.diagonal(m, axis1=-2, axis2=-1)
    dv = v @ (_eig_gaps(w) * m)
    return np.concatenate([dw, np.reshape(dv, tuple(dv.shape[:-2]) + (-1,))], axis=-1)


def _eigh_vjp(g: Any, out: Any, a: Any, *, lower: bool) -> tuple:
    n = a.shape[-1]
    w, v = eigh_parts(out, n)
    gw, gv = eigh_parts(g, n)
    eye = np.eye(n, dtype=w.dtype)
    inner = eye * np.expand_dims(gw, -2) + _eig_gaps(w) * (_mT(v) @ gv)
    return (_sym_cotangent(v @ inner @ _mT(v), lower),)


defop(
    "eigh",
    Kind.OTHER,
    _eigh_rule,
    _eigh_impl,
    arity=1,
    vjp=_eigh_vjp,
    jvp=_eigh_jvp,
    batch=batch_leading,
    doc="eigenvalues (ascending) and eigenvectors of each symmetric (..., n, n) matrix, read "
    "from one triangle as np.linalg.eigh, joined on a last axis; eigenvector gradients need "
    "distinct eigenvalues",
)


def _cholesky_rule(a: Aval) -> Aval:
    _square_float("cholesky", a)
    return a


def _cholesky_impl(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise GraphcError(
            "numpy.linalg.cholesky: a matrix is not positive definite (its lower triangle "
            "is read as a symmetric matrix)"
        ) from None


def _phi(x: Any) -> Any:
    """The lower triangle with the diagonal halved."""
    n = x.shape[-1]
    mask = np.tri(n, n, dtype=x.dtype) - 0.5 * np.eye(n, dtype=x.dtype)
    return x * mask


def _cholesky_jvp(ts: tuple, out: Any, a: Any) -> Any:
    linv = bind("inv", out)
    return out @ _phi(linv @ _sym_tangent(ts[0], True) @ _mT(linv))


def _cholesky_vjp(g: Any, out: Any, a: Any) -> tuple:
    linv = bind("inv", out)
    s = _mT(linv) @ _phi(_mT(out) @ g) @ linv
    return (_sym_cotangent(s, True),)


defop(
    "cholesky",
    Kind.OTHER,
    _cholesky_rule,
    _cholesky_impl,
    arity=1,
    vjp=_cholesky_vjp,
    jvp=_cholesky_jvp,
    batch=batch_leading,
    doc="lower Cholesky factor of each symmetric positive definite (..., n, n) matrix, read "
    "from its lower triangle as np.linalg.cholesky",
)


# -- QR ------------------------------------------------------------------------------------------
# Q (..., m, kq) and R (..., kq, n) joined on a last axis; kq = min(m, n), or m when complete.
# Gradients exist for the reduced factorisation of matrices with m >= n (R square and
# invertible): dQ = Q (Ω - Qᵀ dA R⁻¹) + dA R⁻¹ and dR = (Qᵀ dA R⁻¹ - Ω) R, with Ω the
# skew-symmetric part built from the strict lower triangle of Qᵀ dA R⁻¹; the reverse rule is
# gA = (gQ + Q copyltu(M)) R⁻ᵀ with M = R gRᵀ - gQᵀ Q and copyltu(M) = tril(M) + tril(M, -1)ᵀ.


def _qr_dims(m: int, n: int, complete: bool) -> int:
    return m if complete else min(m, n)


def _qr_rule(a: Aval, *, complete: bool) -> Aval:
    if a.ndim < 2:
        raise ShapeError(f"qr: needs a stack of matrices (..., m, n), got {a}")
    if a.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise DTypeError(f"qr: needs float32 or float64 matrices, got {a}")
    m, n = a.shape[-2:]
    k = _qr_dims(m, n, complete)
    return Aval(a.shape[:-2] + (m * k + k * n,), a.dtype)


def _qr_impl(a: np.ndarray, *, complete: bool) -> np.ndarray:
    q, r = np.linalg.qr(a, mode="complete" if complete else "reduced")
    batch = a.shape[:-2]
    parts = [q.reshape(batch + (-1,)), r.reshape(batch + (-1,))]
    return np.concatenate(parts, axis=-1).astype(a.dtype, copy=False)


def qr_parts(packed: Any, m: int, n: int, complete: bool) -> tuple[Any, Any]:
    """Q (..., m, k) and R (..., k, n) from a `qr` result."""
    k = _qr_dims(m, n, complete)
    batch = tuple(packed.shape[:-1])
    q = np.reshape(packed[..., : m * k], batch + (m, k))
    r = np.reshape(packed[..., m * k :], batch + (k, n))
    return q, r


def _qr_factors(out: Any, a: Any, complete: bool) -> tuple[Any, Any]:
    m, n = a.shape[-2:]
    if m < n or (complete and m != n):
        node = getattr(out, "node", None)
        raise GraphcError(
            "qr: gradients need a matrix with at least as many rows as columns and "
            "mode='reduced' (R square)",
            node.meta.loc if node is not None and node.meta is not None else None,
        )
    return qr_parts(out, m, n, complete)


def _right_solve_t(r: Any, x: Any) -> Any:
    """x R⁻ᵀ, by one solve with R."""
    return _mT(bind("solve", r, _mT(x)))


def _qr_jvp(ts: tuple, out: Any, a: Any, *, complete: bool) -> Any:
    q, r = _qr_factors(out, a, complete)
    da_rinv = _mT(bind("solve", _mT(r), _mT(ts[0])))  # dA R⁻¹
    x = _mT(q) @ da_rinv
    low = _tri(x, True, -1)
    omega = low - _mT(low)
    dq = q @ (omega - x) + da_rinv
    dr = (x - omega) @ r
    batch = tuple(dq.shape[:-2])
    return np.concatenate([np.reshape(dq, batch + (-1,)), np.reshape(dr, batch + (-1,))], axis=-1)


def _qr_vjp(g: Any, out: Any, a: Any, *, complete: bool) -> tuple:
    q, r = _qr_factors(out, a, complete)
    m, n = a.shape[-2:]
    gq, gr = qr_parts(g, m, n, complete)
    mm = r @ _mT(gr) - _mT(gq) @ q
    sym = _tri(mm, True) + _mT(_tri(mm, True, -1))
    return (_right_solve_t(r, gq + q @ sym),)


defop(
    "qr",
    Kind.OTHER,
    _qr_rule,
    _qr_impl,
    arity=1,
    vjp=_qr_vjp,
    jvp=_qr_jvp,
    batch=batch_leading,
    doc="QR factorisation of each (..., m, n) matrix as np.linalg.qr: Q and R joined on a last "
    "axis; gradients for mode='reduced' with m >= n",
)
