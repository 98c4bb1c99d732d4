"""Image ops NumPy lacks, on NCHW arrays: 2-d convolution (cross-correlation) and max and
average pooling."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.numpy._core import _convert, _resolve
from graphc.numpy.ufuncs import _float_like
from graphc.trace import bind


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0) -> Any:
    """2-d cross-correlation of NCHW images x with OIHW weights w (zero padding)."""
    dts = _resolve(np.multiply, (x, w))
    return bind(
        "conv2d",
        _convert(x, dts[0]),
        _convert(w, dts[1]),
        stride=_pair(stride),
        padding=_pair(padding),
    )


def max_pool2d(x: Any, kernel: Any = 2, stride: Any = None) -> Any:
    """Max over kernel-sized windows of NCHW images (stride defaults to the kernel)."""
    k = _pair(kernel)
    return bind("max_pool2d", _float_like(x), kernel=k, stride=_pair(stride) if stride else k)


def avg_pool2d(x: Any, kernel: Any = 2, stride: Any = None) -> Any:
    """Mean over kernel-sized windows of NCHW images (stride defaults to the kernel)."""
    k = _pair(kernel)
    return bind("avg_pool2d", _float_like(x), kernel=k, stride=_pair(stride) if stride else k)
