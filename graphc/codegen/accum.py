"""Reduction accumulators: the only arithmetic in a generated kernel that may be reordered.

Kernels compile without value-changing fast-math flags (no `contract`, no `reassoc` on their own
code): an expression then rounds the same way in every loop, kernel and process that computes
it. Derivative rules rely on that: max's rule marks its winners with `x == max(x)`, and a row
kernel recomputes `x` in a later pass than the one that took the maximum; an FMA contracted in
one pass and not the other left no winner and a zero gradient.

A float sum or product still has to be reassociated for LLVM to vectorize it, so the kernels
accumulate through these functions, whose own instructions carry `reassoc`: LLVM keeps fast-math
flags per instruction when it inlines them (`forceinline`), so only the accumulation is
reordered.

Example:
    >>> acc = acc_add(acc, v)   # in a generated kernel's reduction loop
"""

from __future__ import annotations

from numba import njit

_acc = njit(cache=True, error_model="numpy", fastmath={"reassoc"}, forceinline=True)


@_acc
def acc_add(a, b):  # noqa: ANN001, ANN201  (Numba specialises it per dtype)
    return a + b


@_acc
def acc_mul(a, b):  # noqa: ANN001, ANN201
    return a * b
