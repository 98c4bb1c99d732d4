"""NumPy's complex-number functions for graphc's real dtypes: real parts are the arrays
themselves, imaginary parts zeros, angles 0 or pi."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.numpy._core import _asarr, astype
from graphc.numpy.creation import ones_like, zeros_like
from graphc.numpy.ufuncs import signbit, where


def real(x: Any) -> Any:
    """The real part: the array itself (graphc has no complex numbers)."""
    return _asarr(x)


def imag(x: Any) -> Any:
    """The imaginary part: zeros (graphc has no complex numbers)."""
    return zeros_like(_asarr(x))


def conjugate(x: Any, **kw: Any) -> Any:
    """The complex conjugate: the array itself (graphc has no complex numbers)."""
    return _asarr(x)


conj = conjugate


def isreal(x: Any) -> Any:
    return ones_like(_asarr(x), dtype=np.bool_)


def iscomplex(x: Any) -> Any:
    return zeros_like(_asarr(x), dtype=np.bool_)


def iscomplexobj(x: Any) -> bool:
    return False


def isrealobj(x: Any) -> bool:
    return True


def real_if_close(a: Any, tol: float = 100) -> Any:
    return _asarr(a)


def angle(z: Any, deg: bool = False) -> Any:
    """The argument of real numbers: pi for negative ones, else 0 (180/0 in degrees)."""
    z = _asarr(z)
    z = z if z.dtype.kind == "f" else astype(z, np.float64)
    return where(signbit(z), 180.0 if deg else np.pi, 0.0) * ones_like(z)


FUNCTIONS: dict[Callable, Callable] = {
    np.real: real,
    np.imag: imag,
    np.isreal: isreal,
    np.iscomplexobj: iscomplexobj,
    np.isrealobj: isrealobj,
    np.angle: angle,
    np.iscomplex: iscomplex,
    np.real_if_close: real_if_close,
}


UFUNCS: dict[np.ufunc, Callable] = {
    np.conjugate: conjugate,
}
