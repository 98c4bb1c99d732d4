"""Distances between floating-point results in units in the last place."""

import numpy as np


def _ordered(v: np.ndarray) -> np.ndarray:
    it = np.int32 if v.dtype == np.float32 else np.int64
    i = v.view(it).astype(np.int64)
    return np.where(i < 0, np.int64(np.iinfo(it).min) - i, i)


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in representable numbers; NaN vs NaN is 0, NaN vs a number is infinite."""
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    d = np.abs(_ordered(a) - _ordered(b)).astype(np.float64)
    d[np.isnan(a) & np.isnan(b)] = 0
    d[np.isnan(a) ^ np.isnan(b)] = np.inf
    return d
