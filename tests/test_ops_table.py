"""The op table: every registered op, traced from NumPy (or `graphc.numpy`) code, verified,
run by the reference interpreter and compared with an independent NumPy reference.

The table (`CASES`) is data only; the checks are functions of a row. The batching column
(`test_batched`) runs every row under `graphc.vmap` over a stack of three random argument sets
(batched in several ways) and compares with the stack of the three per-example results. Columns
planned for later reuse the same rows:
  * gradients: rows whose op is `REGISTRY[op].differentiable` and whose `smooth` flag is set
    (inputs away from kinks and ties) can be checked against finite differences;
  * a compiled backend: run `case.fn` compiled on `case.make_args()` and compare with `case.tol`.

A row's `ref` is an independent reference. Without one, `fn` itself is called on NumPy arrays,
which runs real NumPy when `fn` uses `np.*` only; rows of ops NumPy lacks (`NO_NUMPY_OPS`) must
give a `ref` (naive Python loops for the image ops, `math.erf`, ...).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import graphc
import graphc.numpy as gnp
from graphc.ops import REGISTRY, bind
from graphc.verify import verify

F64, F32, F16 = np.float64, np.float32, np.float16
I8, I16, I32, I64, U8 = np.int8, np.int16, np.int32, np.int64, np.uint8
BOOL = np.bool_

DEFAULT_TOL = {np.dtype(F16): 1e-3, np.dtype(F32): 1e-6, np.dtype(F64): 1e-12}

# ops with no NumPy function: their rows must carry an independent reference
NO_NUMPY_OPS = {
    "relu",
    "sigmoid",
    "softplus",
    "erf",
    "rsqrt",
    "stop_gradient",
    "conv2d",
    "conv2d_input_grad",
    "conv2d_weight_grad",
    "max_pool2d",
    "max_pool2d_grad",
    "max_pool2d_select",
    "avg_pool2d",
    "avg_pool2d_grad",
    "scatter_add",
}


def table_ops() -> set[str]:
    """The ops the table must cover: all registered ops but sources and derived ones."""
    return {
        n for n in REGISTRY if n not in ("input", "const") and not n.startswith(("fused", "proj"))
    }


# ---------------------------------------------------------------------------------------------
# rows


Maker = Callable[[np.random.Generator], Any]


@dataclass(frozen=True)
class OpCase:
    """One row: tracing `fn(*args)` must produce `op`, and its value must match `ref`.

    args    arrays / scalars, or makers `rng -> array` (drawn with a seed derived from `id`)
    ref     independent reference on NumPy arrays (default: `fn` itself, i.e. real NumPy)
    tol     rtol and atol for floating outputs (default by output dtype); ints/bools are exact
    smooth  the inputs stay away from kinks, ties and poles (finite differences are meaningful)
    modes   the derivative modes the op has (custom_vjp: reverse only; none: refused)
    order   the highest order of derivative the op has
    """

    op: str
    fn: Callable[..., Any]
    args: list
    ref: Callable[..., Any] | None = None
    id: str = ""
    tol: float | None = None
    smooth: bool = True
    modes: tuple[str, ...] = ("rev", "fwd")
    order: int = 2

    def make_args(self) -> list:
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        return [a(rng) if callable(a) else a for a in self.args]

    def reference(self, *arrays: Any) -> Any:
        return (self.ref or self.fn)(*arrays)

    def tolerance(self, dtype: np.dtype) -> float:
        return self.tol if self.tol is not None else DEFAULT_TOL.get(np.dtype(dtype), 0.0)


CASES: list[OpCase] = []


def row(
    op: str,
    id: str,
    fn: Callable,
    *args: Any,
    ref: Callable | None = None,
    tol: float | None = None,
    smooth: bool = True,
    modes: tuple[str, ...] = ("rev", "fwd"),
    order: int = 2,
) -> None:
    CASES.append(
        OpCase(op, fn, list(args), ref=ref, id=id, tol=tol, smooth=smooth, modes=modes, order=order)
    )


# -- argument makers ---------------------------------------------------------------------------


def normal(*shape: int, dtype: Any = F64, scale: float = 1.0) -> Maker:
    return lambda rng: np.asarray(rng.standard_normal(shape) * scale).astype(dtype)


def uniform(lo: float, hi: float, *shape: int, dtype: Any = F64) -> Maker:
    return lambda rng: np.asarray(rng.uniform(lo, hi, shape)).astype(dtype)


def nonzero(*shape: int, dtype: Any = F64) -> Maker:
    """Values of magnitude 0.5..2 with random signs (safe divisors)."""
    return lambda rng: np.asarray(
        rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    ).astype(dtype)


def ints(lo: int, hi: int, *shape: int, dtype: Any = I64) -> Maker:
    return lambda rng: np.asarray(rng.integers(lo, hi, shape)).astype(dtype)


def bools(*shape: int) -> Maker:
    return lambda rng: np.asarray(rng.random(shape) < 0.5)


def halves(*shape: int, dtype: Any = F64) -> Maker:
    """Multiples of 0.5 (many exact ties for rounding and comparisons), including zeros."""
    return lambda rng: np.asarray(rng.integers(-6, 7, shape) / 2).astype(dtype)


def with_zeros(make: Maker) -> Maker:
    def f(rng: np.random.Generator) -> np.ndarray:
        x = make(rng)
        return np.where(rng.random(x.shape) < 0.3, np.zeros((), x.dtype), x)

    return f


def fixed(values: Any, dtype: Any = F64) -> Maker:
    return lambda rng: np.array(values, dtype=dtype)


def name(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def dname(dt: Any) -> str:
    return graphc.ir.dtype_name(np.dtype(dt))


# ---------------------------------------------------------------------------------------------
# independent references for ops NumPy lacks


def ref_relu(x):
    return x * (x > 0).astype(x.dtype)


def ref_sigmoid(x):
    x = np.asarray(x)
    out_dt = x.dtype if x.dtype.kind == "f" else np.dtype(F64)
    return (0.5 * (1.0 + np.tanh(x.astype(F64) / 2))).astype(out_dt)


def _vec64(f: Callable[[float], float]) -> Callable[[Any], np.ndarray]:
    """Apply a scalar float64 function elementwise; result in x's float dtype (f64 for ints)."""

    def g(x):
        x = np.asarray(x)
        out_dt = x.dtype if x.dtype.kind == "f" else np.dtype(F64)
        return np.vectorize(f, otypes=[F64])(x.astype(F64)).astype(out_dt)

    return g


ref_softplus = _vec64(lambda v: max(v, 0.0) + math.log1p(math.exp(-abs(v))))
ref_erf = _vec64(math.erf)
ref_rsqrt = _vec64(lambda v: 1.0 / math.sqrt(v))
ref_gelu_erf = _vec64(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))
ref_gelu_tanh = _vec64(
    lambda v: 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv_taps(x_shape, w_shape, stride, padding):
    """Every (n, o, oh, ow, c, i, j, y, x) with input pixel (y, x) inside the unpadded image:
    out[n, o, oh, ow] += x[n, c, y, x] * w[o, c, i, j] defines conv2d (zero padding)."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x_shape
    o, c2, kh, kw = w_shape
    assert c == c2
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    for b, f, r, s in np.ndindex(n, o, oh, ow):
        for ch, i, j in np.ndindex(c, kh, kw):
            y, xx = r * sh + i - ph, s * sw + j - pw
            if 0 <= y < h and 0 <= xx < wd:
                yield b, f, r, s, ch, i, j, y, xx


def conv_out_shape(x_shape, w_shape, stride, padding):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    return (
        x_shape[0],
        w_shape[0],
        (x_shape[2] + 2 * ph - w_shape[2]) // sh + 1,
        (x_shape[3] + 2 * pw - w_shape[3]) // sw + 1,
    )


def ref_conv2d(x, w, stride=1, padding=0):
    out = np.zeros(conv_out_shape(x.shape, w.shape, stride, padding))
    for b, f, r, s, ch, i, j, y, xx in conv_taps(x.shape, w.shape, stride, padding):
        out[b, f, r, s] += float(x[b, ch, y, xx]) * float(w[f, ch, i, j])
    return out.astype(x.dtype)


def ref_conv2d_input_grad(g, w, stride, padding, in_hw):
    x_shape = (g.shape[0], w.shape[1]) + tuple(in_hw)
    assert conv_out_shape(x_shape, w.shape, stride, padding) == g.shape
    dx = np.zeros(x_shape)
    for b, f, r, s, ch, i, j, y, xx in conv_taps(x_shape, w.shape, stride, padding):
        dx[b, ch, y, xx] += float(g[b, f, r, s]) * float(w[f, ch, i, j])
    return dx.astype(g.dtype)


def ref_conv2d_weight_grad(x, g, stride, padding, kernel_hw):
    w_shape = (g.shape[1], x.shape[1]) + tuple(kernel_hw)
    assert conv_out_shape(x.shape, w_shape, stride, padding) == g.shape
    dw = np.zeros(w_shape)
    for b, f, r, s, ch, i, j, y, xx in conv_taps(x.shape, w_shape, stride, padding):
        dw[f, ch, i, j] += float(x[b, ch, y, xx]) * float(g[b, f, r, s])
    return dw.astype(x.dtype)


def pool_windows(hw, kernel, stride):
    """(oh, ow, [(y, x), ...] in row-major window order) for every pooling window."""
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
    oh, ow = (hw[0] - kh) // sh + 1, (hw[1] - kw) // sw + 1
    for r, s in np.ndindex(oh, ow):
        yield r, s, [(r * sh + i, s * sw + j) for i in range(kh) for j in range(kw)]


def pool_out_shape(x_shape, kernel, stride):
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
    return x_shape[:2] + ((x_shape[2] - kh) // sh + 1, (x_shape[3] - kw) // sw + 1)


def first_max(x, b, c, pos):
    best = pos[0]
    for p in pos[1:]:
        if x[b, c, p[0], p[1]] > x[b, c, best[0], best[1]]:
            best = p
    return best


def ref_max_pool2d(x, kernel, stride):
    out = np.zeros(pool_out_shape(x.shape, kernel, stride), x.dtype)
    for b, c in np.ndindex(*x.shape[:2]):
        for r, s, pos in pool_windows(x.shape[2:], kernel, stride):
            out[b, c, r, s] = max(x[b, c, y, xx] for y, xx in pos)
    return out


def ref_avg_pool2d(x, kernel, stride):
    out = np.zeros(pool_out_shape(x.shape, kernel, stride))
    for b, c in np.ndindex(*x.shape[:2]):
        for r, s, pos in pool_windows(x.shape[2:], kernel, stride):
            out[b, c, r, s] = sum(float(x[b, c, y, xx]) for y, xx in pos) / len(pos)
    return out.astype(x.dtype)


def ref_max_pool2d_grad(x, g, kernel, stride):
    out = np.zeros(x.shape)
    for b, c in np.ndindex(*x.shape[:2]):
        for r, s, pos in pool_windows(x.shape[2:], kernel, stride):
            y, xx = first_max(x, b, c, pos)
            out[b, c, y, xx] += float(g[b, c, r, s])
    return out.astype(x.dtype)


def ref_max_pool2d_select(x, h, kernel, stride):
    out = np.zeros(pool_out_shape(x.shape, kernel, stride), x.dtype)
    for b, c in np.ndindex(*x.shape[:2]):
        for r, s, pos in pool_windows(x.shape[2:], kernel, stride):
            y, xx = first_max(x, b, c, pos)
            out[b, c, r, s] = h[b, c, y, xx]
    return out


def ref_avg_pool2d_grad(g, kernel, stride, in_hw):
    out = np.zeros(g.shape[:2] + tuple(in_hw))
    for b, c in np.ndindex(*g.shape[:2]):
        for r, s, pos in pool_windows(in_hw, kernel, stride):
            for y, xx in pos:
                out[b, c, y, xx] += float(g[b, c, r, s]) / len(pos)
    return out.astype(g.dtype)


def ref_scatter_add(u, *idx, axis, shape):
    k = len(idx)
    bshape = np.broadcast_shapes(*[np.shape(i) for i in idx])
    bidx = [np.broadcast_to(i, bshape) for i in idx]
    out = np.zeros(shape, u.dtype)
    for pre in np.ndindex(*shape[:axis]):
        for bi in np.ndindex(*bshape):
            target = tuple(
                int(ix[bi]) % n for ix, n in zip(bidx, shape[axis : axis + k], strict=True)
            )
            for post in np.ndindex(*shape[axis + k :]):
                out[pre + target + post] += u[pre + bi + post]
    return out


def ref_pad_interior(x, pads, value):
    out_shape = tuple(
        lo + hi + n + max(n - 1, 0) * it for n, (lo, hi, it) in zip(x.shape, pads, strict=True)
    )
    out = np.full(out_shape, value, x.dtype)
    for i in np.ndindex(*x.shape):
        out[tuple(lo + k * (it + 1) for k, (lo, _, it) in zip(i, pads, strict=True))] = x[i]
    return out


# ---------------------------------------------------------------------------------------------
# elementwise: unary

# op, NumPy function, maker of a float input of (shape, dtype), integer inputs allowed
UNARY = [
    ("neg", np.negative, lambda s, d: normal(*s, dtype=d), True),
    ("abs", np.abs, lambda s, d: normal(*s, dtype=d), True),
    ("sign", np.sign, lambda s, d: with_zeros(normal(*s, dtype=d)), True),
    ("exp", np.exp, lambda s, d: normal(*s, dtype=d), False),
    ("exp2", np.exp2, lambda s, d: normal(*s, dtype=d, scale=3), False),
    ("log2", np.log2, lambda s, d: uniform(0.05, 5, *s, dtype=d), False),
    ("log10", np.log10, lambda s, d: uniform(0.05, 5, *s, dtype=d), False),
    ("log", np.log, lambda s, d: uniform(0.05, 5, *s, dtype=d), False),
    ("log1p", np.log1p, lambda s, d: uniform(-0.9, 5, *s, dtype=d), False),
    ("expm1", np.expm1, lambda s, d: normal(*s, dtype=d), False),
    ("sqrt", np.sqrt, lambda s, d: uniform(0.01, 5, *s, dtype=d), False),
    ("square", np.square, lambda s, d: normal(*s, dtype=d), True),
    ("sin", np.sin, lambda s, d: normal(*s, dtype=d, scale=3), False),
    ("cos", np.cos, lambda s, d: normal(*s, dtype=d, scale=3), False),
    ("tan", np.tan, lambda s, d: uniform(-1.4, 1.4, *s, dtype=d), False),
    ("tanh", np.tanh, lambda s, d: normal(*s, dtype=d, scale=3), False),
    ("floor", np.floor, lambda s, d: normal(*s, dtype=d, scale=3), False),
    ("ceil", np.ceil, lambda s, d: normal(*s, dtype=d, scale=3), False),
    ("round", np.round, lambda s, d: halves(*s, dtype=d), False),
]
UNARY_SHAPES = [((3, 4), F64), ((2, 3, 2), F32), ((), F64), ((5,), F32)]
NOT_SMOOTH = {"sign", "round"}  # inputs with zeros / exact halves

for _op, _f, _mk, _int_ok in UNARY:
    for _shape, _dt in UNARY_SHAPES:
        row(
            _op,
            f"{_op}-{dname(_dt)}-{name(_shape)}",
            _f,
            _mk(_shape, _dt),
            smooth=_op not in NOT_SMOOTH,
        )
    row(_op, f"{_op}-f32-numpy-scalar", _f, np.float32(0.75), smooth=_op not in NOT_SMOOTH)
    if _int_ok:  # the op itself on integers
        row(_op, f"{_op}-i32-3x4", _f, ints(-5, 6, 3, 4, dtype=I32), smooth=False)
        row(_op, f"{_op}-i64-scalar", _f, ints(-5, 6, dtype=I64), smooth=False)
    elif _op not in ("floor", "ceil", "round"):  # NumPy promotes integers to float
        row(_op, f"{_op}-i64-promotes", _f, ints(1, 6, 3, 4), smooth=False)
        row(_op, f"{_op}-i32-promotes", _f, ints(1, 6, 2, 3, dtype=I32), smooth=False)

# NumPy 2.3+ keeps integer (and bool) dtypes through floor/ceil/round: no op for those operands
row(
    "floor",
    "floor-f64-and-floor-i64",
    lambda x, i: np.floor(i) + np.floor(x).astype(I64),
    normal(3, 4, scale=3),
    ints(-5, 6, 3, 4),
    smooth=False,
)
row(
    "ceil",
    "ceil-f32-and-ceil-i32",
    lambda x, i: np.ceil(i) + np.ceil(x).astype(I32),
    normal(3, 4, dtype=F32, scale=3),
    ints(-5, 6, 4, dtype=I32),
    smooth=False,
)
row(
    "floor",
    "floor-f64-and-floor-bool",
    lambda x, b: np.floor(b) & (np.floor(x) > 0),
    normal(3, 4, scale=3),
    bools(3, 4),
    smooth=False,
)
row(
    "round",
    "round-f64-and-round-i64",
    lambda x, i: np.round(i) + np.round(x).astype(I64),
    halves(3, 4),
    ints(-50, 50, 3, 4),
    smooth=False,
)
row("round", "round-rint-f32", np.rint, halves(2, 5, dtype=F32), smooth=False)
row("round", "round-rint-i64-promotes", np.rint, ints(-5, 6, 3, 4), smooth=False)
row("round", "round-method-f64", lambda x: x.round(), halves(6), smooth=False)
row("exp", "exp-i8-promotes-f16", np.exp, ints(-3, 4, 3, 4, dtype=I8), smooth=False)
row("exp", "exp-f64-extremes", np.exp, fixed([-800.0, -1.0, 0.0, 1.0, 700.0]))
row("log", "log-f64-zero-and-inf", np.log, fixed([0.0, 1e-300, 1.0, np.inf]))
row("sqrt", "sqrt-f32-zero-and-inf", np.sqrt, fixed([0.0, 4.0, np.inf], F32))
row("tanh", "tanh-python-float", np.tanh, 0.3)
row("log2", "log2-powers-of-two-f64", np.log2, fixed([0.125, 1.0, 2.0, 1024.0, 2.0**-1074]))
row("log10", "log10-powers-of-ten-f64", np.log10, fixed([1e-30, 0.001, 1.0, 10.0, 1e22]))
row("exp2", "exp2-int-exponents-i64-promotes", np.exp2, ints(-4, 5, 6))
row("log1p", "log1p-logaddexp-f64", np.logaddexp, normal(3, 4, scale=3), normal(4, scale=3))
row(
    "log1p",
    "log1p-logaddexp-extremes",
    np.logaddexp,
    fixed([-np.inf, np.inf, 800.0, -800.0]),
    fixed([-np.inf, np.inf, 799.0, 3.0]),
    smooth=False,
)
row("neg", "neg-operator-f32", lambda x: -x, normal(2, 3, dtype=F32))
row("abs", "abs-operator-i64", lambda x: abs(x), ints(-5, 6, 7), smooth=False)
row("abs", "abs-f64-signed-zeros", np.abs, fixed([-0.0, 0.0, -np.inf, 3.0]), smooth=False)
row("sign", "sign-f64-nan-inf", np.sign, fixed([np.nan, -np.inf, -0.0, 2.0]), smooth=False)

# ops NumPy lacks (graphc.numpy), with independent references
_GNP_UNARY = [
    ("rsqrt", gnp.rsqrt, ref_rsqrt, lambda s, d: uniform(0.05, 5, *s, dtype=d)),
    ("sigmoid", gnp.sigmoid, ref_sigmoid, lambda s, d: normal(*s, dtype=d, scale=4)),
    ("relu", gnp.relu, ref_relu, lambda s, d: normal(*s, dtype=d)),
    ("softplus", gnp.softplus, ref_softplus, lambda s, d: normal(*s, dtype=d, scale=4)),
    ("erf", gnp.erf, ref_erf, lambda s, d: normal(*s, dtype=d, scale=2)),
    (
        "stop_gradient",
        gnp.stop_gradient,
        lambda x: np.array(x, copy=True),
        lambda s, d: normal(*s, dtype=d),
    ),
]
for _op, _f, _ref, _mk in _GNP_UNARY:
    for _shape, _dt in UNARY_SHAPES:
        row(_op, f"{_op}-{dname(_dt)}-{name(_shape)}", _f, _mk(_shape, _dt), ref=_ref)
row("rsqrt", "rsqrt-i64-promotes", gnp.rsqrt, ints(1, 9, 3, 4), ref=ref_rsqrt, smooth=False)
row(
    "sigmoid",
    "sigmoid-f64-extremes",
    gnp.sigmoid,
    fixed([-1000.0, -40.0, -1.0, 0.0, 1.0, 40.0, 1000.0]),
    ref=ref_sigmoid,
)
row(
    "sigmoid",
    "sigmoid-f32-extremes",
    gnp.sigmoid,
    fixed([-200.0, -20.0, 0.0, 20.0, 200.0], F32),
    ref=ref_sigmoid,
)
row(
    "sigmoid",
    "sigmoid-i32-promotes",
    gnp.sigmoid,
    ints(-5, 6, 4, dtype=I32),
    ref=ref_sigmoid,
    smooth=False,
)
row("relu", "relu-i32", gnp.relu, ints(-5, 6, 3, 4, dtype=I32), ref=ref_relu, smooth=False)
row("relu", "relu-f64-zeros", gnp.relu, with_zeros(normal(3, 4)), ref=ref_relu, smooth=False)
row(
    "softplus",
    "softplus-f64-extremes",
    gnp.softplus,
    fixed([-800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0]),
    ref=ref_softplus,
)
row(
    "softplus",
    "softplus-f32-extremes",
    gnp.softplus,
    fixed([-100.0, -20.0, 0.0, 20.0, 100.0], F32),
    ref=ref_softplus,
)
row("erf", "erf-f64-tails", gnp.erf, fixed([-7.0, -3.0, -1e-8, 0.0, 0.5, 3.0, 7.0]), ref=ref_erf)
row(
    "erf",
    "erf-gelu-exact-f64",
    lambda x: gnp.gelu(x, approximate=False),
    normal(3, 4),
    ref=ref_gelu_erf,
)
row(
    "erf",
    "erf-gelu-exact-f32",
    lambda x: gnp.gelu(x, approximate=False),
    normal(2, 5, dtype=F32),
    ref=ref_gelu_erf,
)
row("tanh", "tanh-gelu-approx-f64", gnp.gelu, normal(3, 4, scale=2), ref=ref_gelu_tanh)
row(
    "stop_gradient",
    "stop_gradient-i64",
    gnp.stop_gradient,
    ints(-5, 6, 3),
    ref=lambda x: np.array(x, copy=True),
    smooth=False,
)
row(
    "stop_gradient",
    "stop_gradient-bool",
    gnp.stop_gradient,
    bools(2, 3),
    ref=lambda x: np.array(x, copy=True),
    smooth=False,
)

# isfinite, logical_not, cast, integer_pow
_SPECIAL = [0.5, -np.inf, np.nan, np.inf, -2.0, 0.0]
row("isfinite", "isfinite-f64", np.isfinite, fixed(_SPECIAL))
row("isfinite", "isfinite-f32-2x3", np.isfinite, fixed([_SPECIAL[:3], _SPECIAL[3:]], F32))
row("isfinite", "isfinite-f64-scalar", np.isfinite, fixed(np.inf))
row("isfinite", "isfinite-i64", np.isfinite, ints(-5, 5, 4))
row("isfinite", "isfinite-isinf-f64", np.isinf, fixed(_SPECIAL))
row("isfinite", "isfinite-isinf-f32", np.isinf, fixed(_SPECIAL, F32))
row("logical_not", "logical_not-bool", np.logical_not, bools(3, 4))
row("logical_not", "logical_not-invert-bool", lambda b: ~b, bools(2, 3, 2))
row("logical_not", "logical_not-bool-scalar", np.logical_not, fixed(True, BOOL))
row("logical_not", "logical_not-f64", np.logical_not, fixed([0.0, -0.0, 1.5, np.nan, np.inf]))
row("logical_not", "logical_not-i32", np.logical_not, ints(-2, 3, 6, dtype=I32))
row("cast", "cast-f64-to-f32", lambda x: x.astype(F32), normal(3, 4))
row("cast", "cast-f32-to-f64", lambda x: x.astype(F64), normal(2, 3, dtype=F32))
row("cast", "cast-f64-to-i32-truncates", lambda x: x.astype(I32), normal(3, 4, scale=5))
row("cast", "cast-f64-to-bool", lambda x: x.astype(bool), with_zeros(normal(3, 4)))
row("cast", "cast-bool-to-f32", lambda b: b.astype(F32), bools(3, 4))
row("cast", "cast-i64-to-u8-np-astype", lambda i: np.astype(i, U8), ints(0, 256, 5))
row("cast", "cast-i64-to-f32-scalar", lambda i: i.astype(F32), ints(-9, 9))
row("cast", "cast-i32-to-i64", lambda i: i.astype(I64), ints(-9, 9, 2, 2, dtype=I32))
row("cast", "cast-implicit-f32-plus-f64", lambda x, y: x + y, normal(3, 4, dtype=F32), normal(4))
row("integer_pow", "integer_pow-sq-f64-3x4", lambda x: x**2, normal(3, 4))
row("integer_pow", "integer_pow-cube-f32-2x1x4", lambda x: x**3, normal(2, 1, 4, dtype=F32))
row("integer_pow", "integer_pow-minus1-f64", lambda x: x**-1, nonzero(5))
row("integer_pow", "integer_pow-minus2-f32", lambda x: x**-2, nonzero(2, 3, dtype=F32))
row("integer_pow", "integer_pow-zero-f64", lambda x: x**0, normal(3))
row("integer_pow", "integer_pow-one-f64-scalar", lambda x: x**1, normal())
row("integer_pow", "integer_pow-float-exponent-2.0", lambda x: x**2.0, normal(4))
row("integer_pow", "integer_pow-np-power-5", lambda x: np.power(x, 5), normal(2, 3))
row("integer_pow", "integer_pow-np-int64-exponent", lambda x: x ** np.int64(3), normal(3, 2))
row(
    "integer_pow",
    "integer_pow-i32-cube",
    lambda i: i**3,
    ints(-5, 6, 3, 4, dtype=I32),
    smooth=False,
)
row("integer_pow", "integer_pow-i64-sq-scalar", lambda i: i**2, ints(-5, 6), smooth=False)


# ---------------------------------------------------------------------------------------------
# elementwise: binary

BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((4, 1), ())]
_BINARY = [
    ("add", np.add, normal, normal),
    ("sub", np.subtract, normal, normal),
    ("mul", np.multiply, normal, normal),
    ("div", np.divide, normal, nonzero),
    ("maximum", np.maximum, normal, normal),
    ("minimum", np.minimum, normal, normal),
    (
        "pow",
        np.power,
        lambda *s, dtype: uniform(0.2, 3, *s, dtype=dtype),
        lambda *s, dtype: uniform(-2, 2, *s, dtype=dtype),
    ),
]
for _op, _f, _mx, _my in _BINARY:
    for _k, (_sx, _sy) in enumerate(BINARY_SHAPES):
        _dt = (F64, F32)[_k % 2]
        row(
            _op,
            f"{_op}-{dname(_dt)}-{name(_sx)}-{name(_sy)}",
            _f,
            _mx(*_sx, dtype=_dt),
            _my(*_sy, dtype=_dt),
        )

row("add", "add-operator-f32-python-float", lambda x: x + 1.5, normal(3, dtype=F32))
row("add", "add-f32-f64-promotes", np.add, normal(3, 4, dtype=F32), normal(4))
row("add", "add-i32-f32-promotes-f64", np.add, ints(-5, 5, 3, 1, dtype=I32), normal(4, dtype=F32))
row("add", "add-i8-i16", np.add, ints(-50, 50, 3, dtype=I8), ints(-50, 50, 2, 1, dtype=I16))
row("add", "add-u8-i8-promotes-i16", np.add, ints(0, 200, 4, dtype=U8), ints(-9, 9, 4, dtype=I8))
row("add", "add-i64-broadcast", np.add, ints(-9, 9, 2, 1, 3), ints(-9, 9, 4, 1))
row("add", "add-bool-bool", np.add, bools(3, 4), bools(4))
row("add", "add-python-float-input", lambda x, y: x + y, 1.25, normal(2, 2))
row("add", "add-f32-scalars", np.add, np.float32(1.5), np.float32(-0.25))
row("sub", "sub-operator-i64-python-int", lambda i: i - 3, ints(-9, 9, 3, 2))
row("sub", "sub-rsub-f64", lambda x: 1.0 - x, normal(3))
row("sub", "sub-i32-f64", np.subtract, ints(-9, 9, 3, dtype=I32), normal(2, 3))
row("mul", "mul-operator-f32-python-float-stays-f32", lambda x: x * 2.5, normal(2, 3, dtype=F32))
row("mul", "mul-bool-mask-f32", lambda b, x: b * x, bools(3, 4), normal(3, 4, dtype=F32))
row("mul", "mul-i64", np.multiply, ints(-9, 9, 3, 4), ints(-9, 9, 4))
row("mul", "mul-outer", np.outer, normal(3), normal(4))
row("div", "div-i64-i64-promotes-f64", np.divide, ints(-9, 9, 3, 4), ints(1, 5, 4))
row("div", "div-operator-f32-by-python-int", lambda x: x / 3, normal(5, dtype=F32))
row("div", "div-rtruediv-f64", lambda x: 2.0 / x, nonzero(3, 2))
row("div", "div-reciprocal-f32", np.reciprocal, nonzero(4, dtype=F32))
row(
    "div",
    "div-by-zero-f64",
    np.divide,
    fixed([1.0, -1.0, 0.0]),
    fixed([0.0, 0.0, 0.0]),
    smooth=False,
)
row(
    "maximum",
    "maximum-i32",
    np.maximum,
    ints(-5, 5, 3, 4, dtype=I32),
    ints(-5, 5, 4, dtype=I32),
    smooth=False,
)
row("maximum", "maximum-i64-f64", np.maximum, ints(-3, 3, 3, 1), halves(4), smooth=False)
row(
    "maximum",
    "maximum-nan-f64",
    np.maximum,
    fixed([np.nan, 1.0, -np.inf]),
    fixed([0.0, np.nan, 2.0]),
    smooth=False,
)
row("maximum", "maximum-clip-lower-f32", lambda x: np.clip(x, -0.5, None), normal(3, 4, dtype=F32))
row("minimum", "minimum-clip-f64", lambda x: np.clip(x, -0.5, 0.5), normal(3, 4))
row("minimum", "minimum-i64-ties", np.minimum, ints(-2, 2, 5), ints(-2, 2, 5), smooth=False)
row(
    "minimum",
    "minimum-nan-f32",
    np.minimum,
    fixed([np.nan, 1.0], F32),
    fixed([0.0, np.nan], F32),
    smooth=False,
)
row("pow", "pow-sqrt-exponent-0.5-f64", lambda x: x**0.5, uniform(0.1, 4, 3, 4))
row("pow", "pow-rpow-base-2-f32", lambda x: 2.0**x, normal(5, dtype=F32))
row("pow", "pow-f64-scalar-exponent-array", lambda x, y: x**y, uniform(0.1, 4, 3), uniform(-2, 2))
row("pow", "pow-i64-base-f64-exponent", np.power, ints(1, 5, 4), uniform(-2, 2, 4))
row(
    "pow",
    "pow-zero-base-f64",
    np.power,
    fixed([0.0, 0.0, 0.0, 2.0]),
    fixed([0.0, 1.5, 2.0, 0.0]),
    smooth=False,
)

# ---------------------------------------------------------------------------------------------
# more ufuncs: inverse and hyperbolic trigonometry, NaN-ignoring extrema, remainders. Each op's
# edge-case row comes first, so that it is one of the two rows the compiled backend runs.

_INF, _NAN = np.inf, np.nan
_EDGE_UNARY = [
    # sinh/cosh overflow float32 exactly past 89.4159 (exp already past 88.7228)
    ("sinh", np.sinh, fixed([-89.42, -89.41, -88.9, -1e-30, -0.0, 0.0, 1e-3, 89.41, 89.42], F32)),
    ("cosh", np.cosh, fixed([-_INF, -89.41, -88.9, 0.0, 1e-3, 89.41, 89.42, 100.0, _NAN], F32)),
    ("arcsin", np.arcsin, fixed([-1.0, -0.0, 0.0, 1e-300, 0.5, 1.0, 1.5, _NAN])),
    ("arccos", np.arccos, fixed([-1.0, -0.0, 1e-8, 0.5, 1.0, -1.5, _NAN], F32)),
    ("arctan", np.arctan, fixed([-_INF, -1e300, -2.5, -0.0, 1e-310, 0.7, 1e20, _INF, _NAN])),
    ("arcsinh", np.arcsinh, fixed([-_INF, -1e300, -3.0, -0.0, 1e-310, 0.5, 1e200, _INF, _NAN])),
    ("arccosh", np.arccosh, fixed([0.5, 1.0, 1.0 + 1e-6, 2.0, 3e38, _INF, _NAN], F32)),
    ("arctanh", np.arctanh, fixed([-1.0, -0.5, -0.0, 1e-20, 0.9999, 1.0, 1.5, _NAN])),
    ("cbrt", np.cbrt, fixed([-_INF, -27.0, -0.0, 1e-300, 8.0, 1e300, _NAN])),
]
_NEW_UNARY = [
    ("sinh", np.sinh, lambda s, d: normal(*s, dtype=d, scale=3)),
    ("cosh", np.cosh, lambda s, d: normal(*s, dtype=d, scale=3)),
    ("arcsin", np.arcsin, lambda s, d: uniform(-0.9, 0.9, *s, dtype=d)),
    ("arccos", np.arccos, lambda s, d: uniform(-0.9, 0.9, *s, dtype=d)),
    ("arctan", np.arctan, lambda s, d: normal(*s, dtype=d, scale=3)),
    ("arcsinh", np.arcsinh, lambda s, d: normal(*s, dtype=d, scale=3)),
    ("arccosh", np.arccosh, lambda s, d: uniform(1.1, 5, *s, dtype=d)),
    ("arctanh", np.arctanh, lambda s, d: uniform(-0.9, 0.9, *s, dtype=d)),
    ("cbrt", np.cbrt, lambda s, d: nonzero(*s, dtype=d)),
]
for _op, _f, _edge in _EDGE_UNARY:
    row(_op, f"{_op}-edges", _f, _edge, smooth=False)
for _op, _f, _mk in _NEW_UNARY:
    for _shape, _dt in UNARY_SHAPES[:3]:
        row(_op, f"{_op}-{dname(_dt)}-{name(_shape)}", _f, _mk(_shape, _dt))
    row(_op, f"{_op}-i64-promotes", _f, ints(1, 3, 3, 2), smooth=False)
# NumPy 2 spells the inverse functions asin, acos, ... too (the same ufuncs)
row("arcsin", "arcsin-asin-f32", np.asin, uniform(-0.9, 0.9, 2, 3, dtype=F32))
row("arccos", "arccos-acos-f64", np.acos, uniform(-0.9, 0.9, 4))
row("arctan", "arctan-atan-f64", np.atan, normal(3, 2))
row("arcsinh", "arcsinh-asinh-f32", np.asinh, normal(5, dtype=F32))
row("arccosh", "arccosh-acosh-f64", np.acosh, uniform(1.1, 4, 3))
row("arctanh", "arctanh-atanh-f64", np.atanh, uniform(-0.9, 0.9, 2, 2))
row("trunc", "trunc-f64-edges", np.trunc, fixed([-_INF, -2.5, -0.7, -0.0, 0.3, 1.5, _NAN]))
row("trunc", "trunc-f32-2x3", np.trunc, normal(2, 3, dtype=F32, scale=3), smooth=False)
row(
    "trunc",
    "trunc-f64-and-trunc-i64",  # integers keep their dtype (NumPy >= 2.3): no op for them
    lambda x, i: np.trunc(i) + np.trunc(x).astype(I64),
    normal(3, 4, scale=3),
    ints(-5, 6, 3, 4),
    smooth=False,
)
row("abs", "abs-fabs-f32", np.fabs, fixed([-_INF, -1.5, -0.0, 2.0, _NAN], F32), smooth=False)
row("abs", "abs-fabs-i64-promotes", np.fabs, ints(-5, 6, 3, 4), smooth=False)
row("abs", "abs-fabs-f64", np.fabs, normal(3, 4))
row("mul", "mul-deg2rad-f32", np.deg2rad, normal(3, 4, dtype=F32, scale=100))
row("mul", "mul-radians-i64-promotes", np.radians, ints(-360, 360, 5))
row("mul", "mul-rad2deg-f64", np.rad2deg, normal(2, 3))
row("mul", "mul-degrees-f32", np.degrees, normal(4, dtype=F32))
row("log1p", "log1p-logaddexp2-f64", np.logaddexp2, normal(3, 4, scale=3), normal(4, scale=3))
row("log1p", "log1p-logaddexp2-f32", np.logaddexp2, normal(2, 3, dtype=F32), normal(3, dtype=F32))
row(
    "log1p",
    "log1p-logaddexp2-extremes",
    np.logaddexp2,
    fixed([-_INF, _INF, 1100.0, -1100.0, _NAN]),
    fixed([-_INF, _INF, 1099.0, 3.0, 0.0]),
    smooth=False,
)

_EDGE_BINARY = [
    (
        "arctan2",  # C99's special values: signed zeros, infinities, x = -0.0 counts as negative
        np.arctan2,
        fixed([0.0, -0.0, 0.0, -0.0, 1.0, -1.0, _INF, -_INF, _INF, 2.0, -2.0, 1e-300, _NAN, 0.0]),
        fixed([0.0, 0.0, -0.0, -0.0, 0.0, -0.0, _INF, -_INF, 3.0, _INF, -_INF, 1e300, 1.0, _NAN]),
    ),
    (
        "hypot",  # no overflow or underflow before the result; inf beats NaN
        np.hypot,
        fixed([3e300, 3e-310, _INF, _NAN, -_INF, 0.0, -4.0], F64),
        fixed([4e300, 4e-310, _NAN, -_INF, 1.0, -0.0, 3.0], F64),
    ),
    (
        "fmax",  # NaN only where both are NaN
        np.fmax,
        fixed([_NAN, 1.0, _NAN, -_INF, 2.0], F32),
        fixed([0.0, _NAN, _NAN, -1.0, -3.0], F32),
    ),
    ("fmin", np.fmin, fixed([_NAN, 1.0, _NAN, _INF, 2.0]), fixed([0.0, _NAN, _NAN, 1.0, -3.0])),
    (
        "copysign",
        np.copysign,
        fixed([1.5, -1.5, 0.0, -0.0, _INF, _NAN, 2.0], F32),
        fixed([-0.0, 0.0, -1.0, 1.0, -2.0, -1.0, _NAN], F32),
    ),
    (
        "heaviside",
        np.heaviside,
        fixed([-_INF, -1.0, -0.0, 0.0, 1e-300, _INF, _NAN]),
        fixed([0.5, 0.5, 0.5, 0.25, 0.5, 0.5, 0.5]),
    ),
    (
        "fmod",  # the sign of x; x / 0 and inf / y give NaN
        np.fmod,
        fixed([5.5, -5.5, 5.5, -5.5, -0.0, 1.0, _INF, 3.0]),
        fixed([2.0, 2.0, -2.0, -2.0, 3.0, 0.0, 1.0, _INF]),
    ),
    (
        "remainder",  # the sign of y (Python's %), -0.0 and 0.0 as NumPy gives them
        np.remainder,
        fixed([5.5, -5.5, 5.5, -5.5, -0.0, 4.0, 1.0, -3.0, _INF], F32),
        fixed([2.0, 2.0, -2.0, -2.0, 3.0, -2.0, 0.0, _INF, 1.0], F32),
    ),
    (
        "floor_divide",  # 1 // 0.1 is 9 (floor(1 / 0.1) would be 10), as in Python and NumPy
        np.floor_divide,
        fixed([1.0, 7.0, -7.0, 7.0, -0.0, 1.0, -1.0, 0.0, _INF, 5.0]),
        fixed([0.1, 2.0, 2.0, -2.0, 3.0, 0.0, 0.0, 0.0, 2.0, _INF]),
    ),
]
for _op, _f, _x, _y in _EDGE_BINARY:
    row(_op, f"{_op}-edges", _f, _x, _y, smooth=False)
_NEW_BINARY = [
    ("arctan2", np.arctan2, normal, normal),
    ("hypot", np.hypot, normal, normal),
    ("fmax", np.fmax, normal, normal),
    ("fmin", np.fmin, normal, normal),
    ("copysign", np.copysign, normal, nonzero),
    ("fmod", np.fmod, lambda *s, dtype: normal(*s, dtype=dtype, scale=3), nonzero),
    ("remainder", np.remainder, lambda *s, dtype: normal(*s, dtype=dtype, scale=3), nonzero),
    ("floor_divide", np.floor_divide, lambda *s, dtype: normal(*s, dtype=dtype, scale=3), nonzero),
]
for _op, _f, _mx, _my in _NEW_BINARY:
    for _k, (_sx, _sy) in enumerate(BINARY_SHAPES[:3]):
        _dt = (F64, F32)[_k % 2]
        row(
            _op,
            f"{_op}-{dname(_dt)}-{name(_sx)}-{name(_sy)}",
            _f,
            _mx(*_sx, dtype=_dt),
            _my(*_sy, dtype=_dt),
        )
row("arctan2", "arctan2-atan2-i64-promotes", np.atan2, ints(-3, 4, 3, 4), ints(-3, 4, 4))
row("arctan2", "arctan2-f32-python-float", lambda y: np.arctan2(y, 2.0), normal(5, dtype=F32))
row(
    "hypot", "hypot-i32-promotes", np.hypot, ints(-9, 9, 2, 3, dtype=I32), ints(-9, 9, 3, dtype=I32)
)
row("fmax", "fmax-i32", np.fmax, ints(-5, 5, 3, 4, dtype=I32), ints(-5, 5, 4, dtype=I32))
row("fmin", "fmin-i64-ties", np.fmin, ints(-2, 2, 5), ints(-2, 2, 5), smooth=False)
row("fmax", "fmax-ties-f64", np.fmax, halves(3, 4), halves(4), smooth=False)
row("copysign", "copysign-i64-promotes", np.copysign, ints(-3, 4, 4), ints(-3, 4, 4))
row(
    "heaviside",  # its derivative in h is 1 where floor(x) == 0
    "heaviside-f64-of-floor",
    lambda x, h: np.heaviside(np.floor(x), h),
    uniform(-1.9, 1.9, 3, 4),
    normal(3, 4),
)
row("heaviside", "heaviside-f32", np.heaviside, normal(2, 3, dtype=F32), normal(3, dtype=F32))
row("remainder", "remainder-mod-f64-python-int", lambda x: np.mod(x, 3), normal(3, 4, scale=5))
row("fmod", "fmod-i64-f64-promotes", np.fmod, ints(-9, 9, 4), nonzero(3, 1))

_CMP = [
    ("lt", np.less, "<"),
    ("le", np.less_equal, "<="),
    ("gt", np.greater, ">"),
    ("ge", np.greater_equal, ">="),
    ("eq", np.equal, "=="),
    ("ne", np.not_equal, "!="),
]
_CMP_OPERATOR = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
for _op, _f, _sym in _CMP:
    row(_op, f"{_op}-f64-3x4-4", _f, halves(3, 4), halves(4), smooth=False)
    row(
        _op,
        f"{_op}-f32-2x1x4-3x1",
        _f,
        halves(2, 1, 4, dtype=F32),
        halves(3, 1, dtype=F32),
        smooth=False,
    )
    row(
        _op,
        f"{_op}-i32-ties",
        _f,
        ints(0, 3, 3, 4, dtype=I32),
        ints(0, 3, 3, 4, dtype=I32),
        smooth=False,
    )
    row(_op, f"{_op}-i64-vs-f32", _f, ints(-2, 3, 4, 1), halves(3, dtype=F32), smooth=False)
    row(_op, f"{_op}-scalar-vs-array", _f, fixed(0.5), halves(2, 3), smooth=False)
    row(
        _op,
        f"{_op}-operator-python-float",
        lambda x, s=_sym: _CMP_OPERATOR[s](x, 0.5),
        halves(3, 4, dtype=F32),
        smooth=False,
    )
    row(_op, f"{_op}-bool", _f, bools(3, 4), bools(3, 4), smooth=False)
    row(
        _op,
        f"{_op}-nan-f64",
        _f,
        fixed([np.nan, 1.0, np.nan, np.inf]),
        fixed([np.nan, np.nan, 1.0, np.inf]),
        smooth=False,
    )
row("ne", "ne-isnan-f64", np.isnan, fixed(_SPECIAL), smooth=False)

for _op, _f, _sym in [
    ("logical_and", np.logical_and, "&"),
    ("logical_or", np.logical_or, "|"),
    ("logical_xor", np.logical_xor, "^"),
]:
    _operator = {"&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b}[_sym]
    row(_op, f"{_op}-bool-3x4", _f, bools(3, 4), bools(3, 4), smooth=False)
    row(_op, f"{_op}-bool-2x1x4-3x1", _f, bools(2, 1, 4), bools(3, 1), smooth=False)
    row(_op, f"{_op}-operator-bool", _operator, bools(4, 3), bools(3), smooth=False)
    row(_op, f"{_op}-bool-scalar", _f, fixed(True, BOOL), bools(2, 2), smooth=False)
    row(_op, f"{_op}-i64", _f, ints(-2, 3, 3, 4), ints(-2, 3, 4), smooth=False)
    row(
        _op,
        f"{_op}-f64-nan",
        _f,
        fixed([0.0, np.nan, 2.0, 0.0, -0.0]),
        fixed([1.0, 0.0, 0.0, 0.0, 3.0]),
        smooth=False,
    )
    row(_op, f"{_op}-f32-bool", _f, with_zeros(normal(3, 4, dtype=F32)), bools(4), smooth=False)

# where
row("where", "where-f64-3x4", np.where, bools(3, 4), normal(3, 4), normal(3, 4))
row(
    "where",
    "where-broadcast-f32",
    np.where,
    bools(3, 1),
    normal(2, 1, 4, dtype=F32),
    normal(4, dtype=F32),
)
row("where", "where-scalar-cond", np.where, fixed(False, BOOL), normal(2, 3), normal(2, 3))
row(
    "where",
    "where-f32-python-zero-stays-f32",
    lambda c, x: np.where(c, x, 0.0),
    bools(3, 4),
    normal(3, 4, dtype=F32),
)
row("where", "where-cond-from-compare", lambda x: np.where(x > 0, x, 0.1 * x), normal(3, 4))
row("where", "where-i64-cond-cast", np.where, ints(0, 3, 3, 4), normal(3, 4), normal(4))
row(
    "where",
    "where-i32-f64-promotes",
    np.where,
    bools(3, 4),
    ints(-5, 5, 3, 4, dtype=I32),
    normal(3, 4),
)
row("where", "where-i64", np.where, bools(5), ints(-5, 5, 5), ints(-5, 5, 1))
row("where", "where-bool", np.where, bools(3, 4), bools(3, 4), bools(4))
row("where", "where-f32-f64-promotes", np.where, bools(3), normal(3, dtype=F32), normal(3))
row("where", "where-python-scalars-i64", lambda x: np.where(x > 0, 1, 0), normal(3, 4))
row("where", "where-python-floats-f64", lambda x: np.where(x > 0, 1.0, -1.0), normal(3, 4))
row("where", "where-nan-branch", lambda c, x: np.where(c, x, np.nan), bools(4), normal(4))


# ---------------------------------------------------------------------------------------------
# reductions


def reducer(f: Callable, axis: Any, keepdims: bool) -> Callable:
    return lambda x: f(x, axis=axis, keepdims=keepdims)


RED_AXES = [None, 0, -1, (0, 2), (1, 2), (2, 0, 1)]
_REDUCE = [
    ("reduce_sum", np.sum, normal),
    ("reduce_max", np.max, normal),
    ("reduce_min", np.min, normal),
    ("reduce_prod", np.prod, lambda *s, dtype: uniform(0.5, 1.5, *s, dtype=dtype)),
]
for _op, _f, _mk in _REDUCE:
    for _k, _axis in enumerate(RED_AXES):
        for _keep in (False, True):
            _dt = (F64, F32)[(_k + _keep) % 2]
            _an = "all" if _axis is None else "".join(map(str, np.atleast_1d(_axis)))
            row(
                _op,
                f"{_op}-{dname(_dt)}-2x3x4-axis{_an}-keep{int(_keep)}",
                reducer(_f, _axis, _keep),
                _mk(2, 3, 4, dtype=_dt),
            )
    row(_op, f"{_op}-f64-scalar", _f, _mk(dtype=F64))
    row(_op, f"{_op}-f32-1d", _f, _mk(7, dtype=F32))
    row(_op, f"{_op}-i32", reducer(_f, 1, False), ints(-3, 4, 3, 4, dtype=I32), smooth=False)
    row(_op, f"{_op}-i64-keepdims", reducer(_f, (0, 1), True), ints(-3, 4, 3, 4), smooth=False)

row("reduce_sum", "reduce_sum-bool-counts-i64", lambda b: np.sum(b, axis=0), bools(5, 3))
row("reduce_sum", "reduce_sum-u8-to-u64", np.sum, ints(0, 256, 4, 3, dtype=U8))
row("reduce_sum", "reduce_sum-i8-to-i64", lambda i: i.sum(axis=1), ints(-100, 100, 3, 5, dtype=I8))
row("reduce_sum", "reduce_sum-dtype-f32", lambda x: np.sum(x, axis=1, dtype=F32), normal(3, 4))
row("reduce_sum", "reduce_sum-method-axis-tuple", lambda x: x.sum((0, 1)), normal(2, 3, 4))
row("reduce_sum", "reduce_sum-mean-f64", lambda x: np.mean(x, axis=(0, 2)), normal(2, 3, 4))
row(
    "reduce_sum",
    "reduce_sum-mean-f32-keepdims",
    lambda x: x.mean(-1, keepdims=True),
    normal(3, 5, dtype=F32),
)
row("reduce_sum", "reduce_sum-mean-i64-promotes", np.mean, ints(-9, 9, 3, 4))
row("reduce_sum", "reduce_sum-var-f64", lambda x: np.var(x, axis=0), normal(5, 3))
row(
    "reduce_sum",
    "reduce_sum-std-f32-ddof1",
    lambda x: np.std(x, ddof=1),
    normal(6, dtype=F32),
    tol=3e-6,
)
row("reduce_sum", "reduce_sum-empty-axis", lambda x: np.sum(x, axis=1), normal(3, 0))
row("reduce_sum", "reduce_sum-einsum-trace-free", lambda x: np.einsum("ij->i", x), normal(3, 4))
row("reduce_max", "reduce_max-any-bool", lambda b: np.any(b, axis=1), bools(3, 4), smooth=False)
row("reduce_max", "reduce_max-any-f64-all-axes", np.any, with_zeros(normal(2, 2)), smooth=False)
row("reduce_max", "reduce_max-method-f32", lambda x: x.max(axis=0), normal(3, 4, dtype=F32))
row(
    "reduce_max",
    "reduce_max-amax-nan",
    lambda x: np.amax(x, axis=1),
    fixed([[1.0, np.nan, 2.0], [0.0, -1.0, 5.0]]),
    smooth=False,
)
row("reduce_max", "reduce_max-bool-np-max", lambda b: np.max(b, axis=0), bools(4, 3), smooth=False)
row(
    "reduce_min",
    "reduce_min-all-bool",
    lambda b: np.all(b, axis=(0, 1), keepdims=True),
    bools(2, 3, 2),
    smooth=False,
)
row("reduce_min", "reduce_min-all-i64", np.all, ints(0, 3, 2, 3), smooth=False)
row("reduce_min", "reduce_min-method-f64", lambda x: x.min(-1), normal(3, 4))
row(
    "reduce_min",
    "reduce_min-u8",
    lambda i: np.min(i, axis=0),
    ints(0, 256, 4, 3, dtype=U8),
    smooth=False,
)
row(
    "reduce_prod",
    "reduce_prod-with-zeros-f64",
    lambda x: np.prod(x, axis=1),
    with_zeros(normal(3, 4)),
    smooth=False,
)
row("reduce_prod", "reduce_prod-i32-to-i64", np.prod, ints(-3, 4, 2, 3, dtype=I32), smooth=False)
row(
    "reduce_prod",
    "reduce_prod-bool-to-i64",
    lambda b: np.prod(b, axis=-1),
    bools(3, 2),
    smooth=False,
)
row("reduce_prod", "reduce_prod-empty-axis", lambda x: np.prod(x, axis=0), normal(0, 3))

for _op, _f in [("argmax", np.argmax), ("argmin", np.argmin)]:
    row(_op, f"{_op}-f64-flat", _f, normal(3, 4))
    row(_op, f"{_op}-f32-axis0", lambda x, f=_f: f(x, axis=0), normal(3, 4, dtype=F32))
    row(_op, f"{_op}-f64-axis-neg1", lambda x, f=_f: f(x, axis=-1), normal(2, 3, 4))
    row(
        _op,
        f"{_op}-f64-axis1-keepdims",
        lambda x, f=_f: f(x, axis=1, keepdims=True),
        normal(2, 3, 4),
    )
    row(
        _op,
        f"{_op}-f32-flat-keepdims",
        lambda x, f=_f: f(x, keepdims=True),
        normal(2, 3, dtype=F32),
    )
    row(_op, f"{_op}-i64-ties-first", lambda x, f=_f: f(x, axis=1), ints(0, 2, 4, 5))
    row(_op, f"{_op}-i32-flat-ties", _f, ints(0, 2, 3, 3, dtype=I32))
    row(_op, f"{_op}-bool", lambda x, f=_f: f(x, axis=0), bools(4, 3))
    row(_op, f"{_op}-scalar", _f, normal())
    row(_op, f"{_op}-method", lambda x, m=_f.__name__: getattr(x, m)(axis=1), normal(3, 4))
    row(
        _op,
        f"{_op}-nan-first",
        lambda x, f=_f: f(x, axis=1),
        fixed([[1.0, np.nan, 3.0, np.nan], [2.0, 1.0, 2.0, 1.0]]),
    )


# ---------------------------------------------------------------------------------------------
# shape ops

row("reshape", "reshape-ravel-f64", lambda x: x.reshape(-1), normal(3, 4))
row("reshape", "reshape-np-f32-infer", lambda x: np.reshape(x, (2, -1, 2)), normal(3, 4, dtype=F32))
row("reshape", "reshape-method-varargs", lambda x: x.reshape(4, 3), normal(3, 4))
row("reshape", "reshape-scalar-to-1x1", lambda x: np.reshape(x, (1, 1)), normal())
row("reshape", "reshape-to-scalar", lambda x: np.reshape(x, ()), normal(1, 1))
row("reshape", "reshape-newaxis", lambda x: x[None, :, None], normal(4, dtype=F32))
row("reshape", "reshape-expand-dims", lambda x: np.expand_dims(x, (0, -1)), ints(0, 9, 3))
row("reshape", "reshape-squeeze", lambda x: np.squeeze(x, axis=1), normal(3, 1, 2))
row("reshape", "reshape-ravel-bool", np.ravel, bools(2, 3))
row("reshape", "reshape-int-index", lambda x: x[1], normal(3, 4))
row("reshape", "reshape-ellipsis-newaxis", lambda x: x[None, ..., 0], normal(2, 3))
row("reshape", "reshape-squeeze-all", np.squeeze, normal(1, 3, 1))
row("reshape", "reshape-empty", lambda x: x.reshape(0, 4, 2), normal(2, 0, 4))

row("transpose", "transpose-T-f64", lambda x: x.T, normal(3, 4))
row(
    "transpose",
    "transpose-perm-f32",
    lambda x: np.transpose(x, (1, 0, 2)),
    normal(2, 3, 4, dtype=F32),
)
row("transpose", "transpose-negative-axes", lambda x: np.transpose(x, (-1, 0, 1)), normal(2, 3, 4))
row("transpose", "transpose-default-reverses-3d", np.transpose, normal(2, 3, 4))
row("transpose", "transpose-swapaxes", lambda x: np.swapaxes(x, 0, -1), ints(0, 9, 2, 3, 4))
row("transpose", "transpose-moveaxis", lambda x: np.moveaxis(x, 0, -1), normal(2, 3, 4))
row(
    "transpose",
    "transpose-moveaxis-several",
    lambda x: np.moveaxis(x, [0, 1], [2, 0]),
    normal(2, 3, 4),
)
row("transpose", "transpose-method-varargs", lambda x: x.transpose(1, 0), normal(3, 4))
row("transpose", "transpose-mT-bool", lambda x: x.mT, bools(2, 3, 4))
row("transpose", "transpose-method-tuple", lambda x: x.transpose((2, 0, 1)), normal(2, 3, 4))

row("broadcast_to", "broadcast_to-row", lambda x: np.broadcast_to(x, (3, 4)), normal(4))
row(
    "broadcast_to",
    "broadcast_to-3x1-to-2x3x5-f32",
    lambda x: np.broadcast_to(x, (2, 3, 5)),
    normal(3, 1, dtype=F32),
)
row("broadcast_to", "broadcast_to-scalar", lambda x: np.broadcast_to(x, (2, 3)), normal())
row("broadcast_to", "broadcast_to-i64", lambda x: np.broadcast_to(x, (2, 2, 3)), ints(0, 9, 1, 3))
row("broadcast_to", "broadcast_to-bool", lambda x: np.broadcast_to(x, (4, 2)), bools(4, 1))
row(
    "broadcast_to",
    "broadcast_to-ones-like",
    lambda x: np.ones_like(x) * 2.0,
    normal(2, 3, dtype=F32),
)
row("broadcast_to", "broadcast_to-full-like-i64", lambda x: np.full_like(x, 7) + x, ints(0, 9, 3))

row("slice", "slice-step2-f64", lambda x: x[1:5:2], normal(6))
row("slice", "slice-cols-f32", lambda x: x[:, 1:3], normal(3, 4, dtype=F32))
row("slice", "slice-rows-and-step", lambda x: x[1:, ::2], normal(3, 5))
row("slice", "slice-int-then-range", lambda x: x[-1, 2:], normal(3, 4))
row("slice", "slice-ellipsis", lambda x: x[..., 1:3], normal(2, 3, 4))
row("slice", "slice-empty", lambda x: x[2:1], normal(4, 2))
row("slice", "slice-past-end", lambda x: x[2:10:3], normal(9))
row("slice", "slice-negative-bounds", lambda x: x[-3:-1], normal(5))
row("slice", "slice-i64-step3", lambda x: x[::3], ints(0, 9, 7))
row("slice", "slice-bool", lambda x: x[1:, :1], bools(3, 2))
row("slice", "slice-neg-step2", lambda x: x[::-2], normal(6))
row("slice", "slice-neg-step-bounded", lambda x: x[5:1:-2], normal(7))
row("slice", "slice-neg-step-2d", lambda x: x[-2::-1, 3:0:-2], normal(4, 5))

row("flip", "flip-reverse-f64", lambda x: x[::-1], normal(5))
row("flip", "flip-np-all-axes", np.flip, normal(2, 3, 4))
row("flip", "flip-np-axis1-f32", lambda x: np.flip(x, axis=1), normal(3, 4, dtype=F32))
row("flip", "flip-np-axes-0-2", lambda x: np.flip(x, (0, -1)), normal(2, 3, 4))
row("flip", "flip-i64-cols", lambda x: x[:, ::-1], ints(0, 9, 3, 4))
row("flip", "flip-bool", lambda x: x[::-1], bools(4, 2))
row("flip", "flip-empty-result", lambda x: x[1:3:-1], normal(4))

row("pad", "pad-1-f64", lambda x: np.pad(x, 1), normal(3, 4))
row("pad", "pad-widths-f32", lambda x: np.pad(x, ((1, 2), (0, 3))), normal(2, 3, dtype=F32))
row(
    "pad",
    "pad-constant-f64",
    lambda x: np.pad(x, ((0, 0), (2, 1)), constant_values=-1.5),
    normal(2, 2),
)
row("pad", "pad-i64-constant", lambda x: np.pad(x, 2, constant_values=7), ints(0, 9, 3))
row("pad", "pad-3d-pairs", lambda x: np.pad(x, (1, 0)), normal(2, 1, 2))
row("pad", "pad-bool", lambda x: np.pad(x, 1), bools(2, 2))
row(
    "pad",
    "pad-interior-bind-f64",
    lambda x: bind("pad", x, pads=((1, 0, 2), (0, 2, 1)), value=0.5),
    normal(3, 2),
    ref=lambda x: ref_pad_interior(x, ((1, 0, 2), (0, 2, 1)), 0.5),
)
row(
    "pad",
    "pad-interior-bind-f32-empty-axis",
    lambda x: bind("pad", x, pads=((0, 1, 1), (2, 0, 3)), value=0.0),
    normal(0, 3, dtype=F32),
    ref=lambda x: ref_pad_interior(x, ((0, 1, 1), (2, 0, 3)), 0.0),
)

row(
    "concatenate",
    "concatenate-axis0-f64",
    lambda a, b: np.concatenate([a, b]),
    normal(2, 3),
    normal(4, 3),
)
row(
    "concatenate",
    "concatenate-axis-neg1-three",
    lambda a, b, c: np.concatenate((a, b, c), -1),
    normal(2, 1, dtype=F32),
    normal(2, 3, dtype=F32),
    normal(2, 2, dtype=F32),
)
row(
    "concatenate",
    "concatenate-promotes-f32-f64",
    lambda a, b: np.concatenate([a, b], axis=1),
    normal(2, 2, dtype=F32),
    normal(2, 3),
)
row(
    "concatenate",
    "concatenate-i64-bool-promotes",
    lambda a, b: np.concatenate([a, b]),
    ints(0, 9, 3),
    bools(2),
)
row(
    "concatenate",
    "concatenate-with-constant",
    lambda a: np.concatenate([a, np.ones((1, 3))]),
    normal(2, 3),
)
row(
    "concatenate",
    "concatenate-axis-none-flattens",
    lambda a, b: np.concatenate([a, b], None),
    normal(2, 2),
    normal(3),
)
row(
    "concatenate",
    "concatenate-stack-axis1",
    lambda a, b: np.stack([a, b], axis=1),
    normal(3, 2),
    normal(3, 2),
)
row(
    "concatenate",
    "concatenate-stack-axis-neg1",
    lambda a, b: np.stack([a, b], axis=-1),
    normal(3, 2, dtype=F32),
    normal(3, 2, dtype=F32),
)
row(
    "concatenate",
    "concatenate-empty-part",
    lambda a, b: np.concatenate([a, b], axis=1),
    normal(2, 0),
    normal(2, 3),
)
row(
    "concatenate",
    "concatenate-hstack-1d",
    lambda a, b: np.hstack([a, b]),
    ints(0, 9, 2),
    ints(0, 9, 3),
)
row("concatenate", "concatenate-vstack", lambda a, b: np.vstack([a, b]), normal(3), normal(2, 3))

row("gather", "gather-take-flat-const", lambda x: np.take(x, [2, 0, 2, 11]), normal(3, 4))
row(
    "gather",
    "gather-take-axis1-traced",
    lambda x, i: np.take(x, i, axis=1),
    normal(3, 4),
    ints(0, 4, 5),
)
row(
    "gather",
    "gather-take-negative-const",
    lambda x: np.take(x, [-1, 0], axis=0),
    normal(3, 2, dtype=F32),
)
row(
    "gather",
    "gather-take-2d-index",
    lambda x, i: np.take(x, i, axis=0),
    normal(5, 2),
    ints(0, 5, 2, 3, dtype=I32),
)
row("gather", "gather-labels", lambda x, lab: x[np.arange(4), lab], normal(4, 3), ints(0, 3, 4))
row(
    "gather",
    "gather-cols-i32-index",
    lambda x, i: x[:, i],
    normal(3, 5, dtype=F32),
    ints(0, 5, 4, dtype=I32),
)
row("gather", "gather-rows-2d-index", lambda x, i: x[i], normal(5, 3), ints(0, 5, 2, 2))
row("gather", "gather-list-index", lambda x: x[[0, 2]], normal(3, 4))
row("gather", "gather-separated-indices", lambda x: x[1, :, [0, 2]], normal(2, 3, 4))
row("gather", "gather-adjacent-int-and-list", lambda x: x[:, [0, 1], 2], normal(2, 3, 4))
row(
    "gather",
    "gather-broadcast-indices",
    lambda x, i, j: x[i, j],
    normal(4, 5),
    ints(0, 4, 3, 1),
    ints(0, 5, 2),
)
row("gather", "gather-i64-data", lambda x, i: x[i], ints(0, 99, 6), ints(0, 6, 4))
row("gather", "gather-bool-data", lambda x, i: x[:, i], bools(3, 4), ints(0, 4, 2))
row("gather", "gather-negative-traced-index", lambda x, i: x[i], normal(5), ints(-5, 5, 6))
row("gather", "gather-u8-index", lambda x, i: x[i], normal(4, 2), ints(0, 4, 3, dtype=U8))


def _scatter(axis: int, shape: tuple[int, ...]) -> Callable:
    return lambda u, *idx: bind("scatter_add", u, *idx, axis=axis, shape=shape)


def _scatter_ref(axis: int, shape: tuple[int, ...]) -> Callable:
    return lambda u, *idx: ref_scatter_add(u, *idx, axis=axis, shape=shape)


for _id, _axis, _shape, _u, _idx in [
    ("axis0-repeats-f64", 0, (5, 3), normal(6, 3), [fixed([0, 2, 2, 4, 0, 2], I64)]),
    ("axis1-2d-index-f32", 1, (2, 4, 3), normal(2, 2, 3, 3, dtype=F32), [ints(0, 4, 2, 3)]),
    ("two-indices-f64", 0, (4, 3, 2), normal(5, 2), [ints(0, 4, 5), ints(0, 3, 5)]),
    ("broadcast-indices", 0, (3, 4), normal(2, 3), [ints(0, 3, 2, 1), ints(0, 4, 3)]),
    ("i64-updates", 0, (4,), ints(-9, 9, 7), [ints(0, 4, 7, dtype=I32)]),
    ("scalar-index", 1, (2, 3), normal(2), [fixed(1, I64)]),
]:
    row(
        "scatter_add",
        f"scatter_add-{_id}",
        _scatter(_axis, _shape),
        _u,
        *_idx,
        ref=_scatter_ref(_axis, _shape),
    )


# ---------------------------------------------------------------------------------------------
# contractions

row("matmul", "matmul-2d-f64", np.matmul, normal(3, 4), normal(4, 5))
row(
    "matmul",
    "matmul-operator-f32",
    lambda a, b: a @ b,
    normal(2, 3, dtype=F32),
    normal(3, 4, dtype=F32),
    tol=2e-6,
)
row("matmul", "matmul-batched", np.matmul, normal(2, 3, 4), normal(2, 4, 2))
row("matmul", "matmul-batch-broadcast", np.matmul, normal(2, 1, 3, 4), normal(5, 4, 2))
row(
    "matmul",
    "matmul-batch-2d-right",
    lambda a, b: a @ b,
    normal(3, 2, 4, dtype=F32),
    normal(4, 3, dtype=F32),
    tol=2e-6,
)
row("matmul", "matmul-1d-2d", np.matmul, normal(4), normal(4, 3))
row("matmul", "matmul-2d-1d", lambda a, b: a @ b, normal(3, 4), normal(4))
row("matmul", "matmul-1d-batched", np.matmul, normal(4), normal(2, 4, 3))
row("matmul", "matmul-batched-1d", np.matmul, normal(2, 3, 4), normal(4))
row("matmul", "matmul-1d-1d-scalar", np.matmul, normal(5), normal(5))
row("matmul", "matmul-dot-1d", np.dot, normal(4, dtype=F32), normal(4, dtype=F32), tol=2e-6)
row("matmul", "matmul-dot-2d", np.dot, normal(2, 3), normal(3, 2))
row("matmul", "matmul-dot-3d-tensordot", np.dot, normal(2, 3), normal(4, 3, 2))
row("matmul", "matmul-method-dot", lambda a, b: a.dot(b), normal(2, 3), normal(3))
row("matmul", "matmul-vdot", np.vdot, normal(2, 3), normal(3, 2))
row("matmul", "matmul-inner", np.inner, normal(2, 3), normal(4, 3))
row("matmul", "matmul-i64", np.matmul, ints(-5, 5, 3, 4), ints(-5, 5, 4, 2))
row(
    "matmul",
    "matmul-i32-f32-promotes",
    np.matmul,
    ints(-5, 5, 3, 4, dtype=I32),
    normal(4, 2, dtype=F32),
)
row("matmul", "matmul-f32-f64-promotes", np.matmul, normal(3, 4, dtype=F32), normal(4, 2))
row(
    "matmul",
    "matmul-einsum-ij-jk",
    lambda a, b: np.einsum("ij,jk->ik", a, b),
    normal(3, 4),
    normal(4, 2),
)
row(
    "matmul",
    "matmul-einsum-batched",
    lambda a, b: np.einsum("bij,bjk->bik", a, b),
    normal(2, 3, 4),
    normal(2, 4, 5),
)
row(
    "matmul",
    "matmul-einsum-transposed-out",
    lambda a, b: np.einsum("ij,kj->ki", a, b),
    normal(3, 4),
    normal(2, 4),
)
row("matmul", "matmul-einsum-dot", lambda a, b: np.einsum("i,i", a, b), normal(5), normal(5))
row(
    "matmul",
    "matmul-einsum-three",
    lambda a, b, c: np.einsum("ij,jk,kl->il", a, b, c),
    normal(2, 3),
    normal(3, 4),
    normal(4, 2),
)
row(
    "matmul",
    "matmul-einsum-sum-then-contract",
    lambda a, b: np.einsum("ijk,jl->il", a, b),
    normal(2, 3, 4),
    normal(3, 2),
)
row(
    "matmul",
    "matmul-tensordot-2",
    lambda a, b: np.tensordot(a, b),
    normal(2, 3, 4),
    normal(3, 4, 2),
)
row(
    "matmul",
    "matmul-tensordot-outer",
    lambda a, b: np.tensordot(a, b, axes=0),
    normal(2, 3),
    normal(2),
)
row("matmul", "matmul-empty-inner", np.matmul, normal(2, 0), normal(0, 3))
row(
    "matmul",
    "matmul-tensordot-axes",
    lambda a, b: np.tensordot(a, b, axes=([0], [1])),
    normal(3, 2, dtype=F32),
    normal(4, 3, dtype=F32),
    tol=2e-6,
)


# -- image ops ---------------------------------------------------------------------------------

# x shape, w shape, stride, padding, dtype
CONV = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0, F64),
    ((2, 2, 7, 6), (3, 2, 3, 3), 2, 1, F32),
    ((1, 3, 6, 5), (2, 3, 3, 2), (2, 1), (1, 0), F64),
    ((2, 1, 4, 4), (2, 1, 1, 1), 1, 0, F32),
    ((1, 2, 6, 6), (2, 2, 3, 3), 2, 0, F64),  # stride leaves the last row/column unused
    ((1, 1, 3, 3), (1, 1, 3, 3), 1, 2, F32),  # padding larger than needed
]
for _xs, _ws, _s, _p, _dt in CONV:
    _sid = f"{dname(_dt)}-{name(_xs)}-k{name(_ws[2:])}-s{name(_pair(_s))}-p{name(_pair(_p))}"
    _tol = 1e-5 if _dt == F32 else None
    row(
        "conv2d",
        f"conv2d-{_sid}",
        lambda x, w, s=_s, p=_p: gnp.conv2d(x, w, s, p),
        normal(*_xs, dtype=_dt),
        normal(*_ws, dtype=_dt),
        ref=lambda x, w, s=_s, p=_p: ref_conv2d(x, w, s, p),
        tol=_tol,
    )
    _gs = conv_out_shape(_xs, _ws, _s, _p)
    _attrs = {"stride": _pair(_s), "padding": _pair(_p)}
    row(
        "conv2d_input_grad",
        f"conv2d_input_grad-{_sid}",
        lambda g, w, a=_attrs, hw=_xs[2:]: bind("conv2d_input_grad", g, w, in_hw=hw, **a),
        normal(*_gs, dtype=_dt),
        normal(*_ws, dtype=_dt),
        ref=lambda g, w, a=_attrs, hw=_xs[2:]: ref_conv2d_input_grad(g, w, in_hw=hw, **a),
        tol=_tol,
    )
    row(
        "conv2d_weight_grad",
        f"conv2d_weight_grad-{_sid}",
        lambda x, g, a=_attrs, k=_ws[2:]: bind("conv2d_weight_grad", x, g, kernel_hw=k, **a),
        normal(*_xs, dtype=_dt),
        normal(*_gs, dtype=_dt),
        ref=lambda x, g, a=_attrs, k=_ws[2:]: ref_conv2d_weight_grad(x, g, kernel_hw=k, **a),
        tol=_tol,
    )
row(
    "conv2d",
    "conv2d-f32-x-f64-w-promotes",
    lambda x, w: gnp.conv2d(x, w, padding=1),
    normal(1, 2, 4, 4, dtype=F32),
    normal(2, 2, 3, 3),
    ref=lambda x, w: ref_conv2d(x.astype(F64), w, 1, 1),
)

# x shape, kernel, stride, dtype
POOL = [
    ((2, 3, 4, 4), 2, 2, F64),
    ((1, 2, 5, 5), 2, 2, F32),  # odd size: the last row/column is dropped
    ((2, 2, 7, 7), 3, 2, F64),  # overlapping windows
    ((1, 3, 6, 5), 3, 2, F32),
    ((1, 1, 5, 6), (2, 3), (1, 2), F64),
]
for _xs, _k, _s, _dt in POOL:
    _pid = f"{dname(_dt)}-{name(_xs)}-k{name(_pair(_k))}-s{name(_pair(_s))}"
    _attrs = {"kernel": _pair(_k), "stride": _pair(_s)}
    _os = pool_out_shape(_xs, _k, _s)
    row(
        "max_pool2d",
        f"max_pool2d-{_pid}",
        lambda x, k=_k, s=_s: gnp.max_pool2d(x, k, s),
        normal(*_xs, dtype=_dt),
        ref=lambda x, a=_attrs: ref_max_pool2d(x, **a),
    )
    row(
        "avg_pool2d",
        f"avg_pool2d-{_pid}",
        lambda x, k=_k, s=_s: gnp.avg_pool2d(x, k, s),
        normal(*_xs, dtype=_dt),
        ref=lambda x, a=_attrs: ref_avg_pool2d(x, **a),
    )
    row(
        "max_pool2d_grad",
        f"max_pool2d_grad-{_pid}",
        lambda x, g, a=_attrs: bind("max_pool2d_grad", x, g, **a),
        normal(*_xs, dtype=_dt),
        normal(*_os, dtype=_dt),
        ref=lambda x, g, a=_attrs: ref_max_pool2d_grad(x, g, **a),
    )
    row(
        "max_pool2d_select",
        f"max_pool2d_select-{_pid}",
        lambda x, h, a=_attrs: bind("max_pool2d_select", x, h, **a),
        normal(*_xs, dtype=_dt),
        normal(*_xs, dtype=_dt),
        ref=lambda x, h, a=_attrs: ref_max_pool2d_select(x, h, **a),
    )
    row(
        "avg_pool2d_grad",
        f"avg_pool2d_grad-{_pid}",
        lambda g, a=_attrs, hw=_xs[2:]: bind("avg_pool2d_grad", g, in_hw=hw, **a),
        normal(*_os, dtype=_dt),
        ref=lambda g, a=_attrs, hw=_xs[2:]: ref_avg_pool2d_grad(g, in_hw=hw, **a),
    )

# ties inside windows: the first maximum (row-major) wins
_TIES = {"kernel": (2, 2), "stride": (1, 1)}
row(
    "max_pool2d",
    "max_pool2d-ties-default-stride",
    lambda x: gnp.max_pool2d(x, 2),
    ints(0, 2, 1, 2, 4, 4, dtype=F64),
    ref=lambda x: ref_max_pool2d(x, 2, 2),
    smooth=False,
)
row(
    "max_pool2d",
    "max_pool2d-i64-promotes",
    lambda x: gnp.max_pool2d(x, 2),
    ints(-5, 5, 1, 1, 4, 4),
    ref=lambda x: ref_max_pool2d(x.astype(F64), 2, 2),
    smooth=False,
)
row(
    "avg_pool2d",
    "avg_pool2d-i32-promotes",
    lambda x: gnp.avg_pool2d(x, 2),
    ints(-5, 5, 1, 1, 4, 4, dtype=I32),
    ref=lambda x: ref_avg_pool2d(x.astype(F64), 2, 2),
)
row(
    "max_pool2d_grad",
    "max_pool2d_grad-ties-overlapping",
    lambda x, g: bind("max_pool2d_grad", x, g, **_TIES),
    ints(0, 2, 1, 2, 4, 4, dtype=F64),
    normal(1, 2, 3, 3),
    ref=lambda x, g: ref_max_pool2d_grad(x, g, **_TIES),
    smooth=False,
)
row(
    "max_pool2d_select",
    "max_pool2d_select-ties-overlapping",
    lambda x, h: bind("max_pool2d_select", x, h, **_TIES),
    ints(0, 2, 1, 2, 4, 4, dtype=F32),
    normal(1, 2, 4, 4, dtype=F32),
    ref=lambda x, h: ref_max_pool2d_select(x, h, **_TIES),
    smooth=False,
)


# ---------------------------------------------------------------------------------------------
# scans, sorting, linear algebra


def wellcond(*shape: int, dtype: Any = F64) -> Maker:
    """Stacks of diagonally dominant (well-conditioned) square matrices."""
    return lambda rng: (rng.standard_normal(shape) + 3 * np.eye(shape[-1])).astype(dtype)


row("cumsum", "cumsum-axis1-f64", lambda x: np.cumsum(x, axis=1), normal(2, 3, 4))
row("cumsum", "cumsum-flat-f32", np.cumsum, normal(3, 2, dtype=F32), tol=2e-6)
row("cumsum", "cumsum-i32-to-i64", lambda x: np.cumsum(x, axis=0), ints(-9, 9, 4, 2, dtype=I32))
row("cumsum", "cumsum-bool", lambda x: x.cumsum(-1), bools(2, 5))
row("cumprod", "cumprod-axis0-f64", lambda x: np.cumprod(x, axis=0), uniform(0.5, 1.5, 3, 4))
row("cumprod", "cumprod-flat-f32", np.cumprod, uniform(0.5, 1.5, 5, dtype=F32))
row("cumprod", "cumprod-i64", lambda x: np.cumprod(x, 1), ints(-3, 4, 2, 4))
row("cumprod", "cumprod-with-zeros-f64", np.cumprod, fixed([2.0, 0.0, 3.0, 0.0, -1.5]))
row("argsort", "argsort-last-axis-f64", np.argsort, normal(3, 5))
# graphc's argsort is always stable; NumPy's default kind may order ties differently
row(
    "argsort",
    "argsort-axis0-ties",
    lambda x: np.argsort(x, axis=0),
    ints(0, 3, 6, 2),
    ref=lambda x: np.argsort(x, axis=0, kind="stable"),
)
row("argsort", "argsort-nan-f32", np.argsort, fixed([2.0, np.nan, -1.0, 2.0], F32))
# np.sort is a gather with the argsort: its rows check the gather side (and its gradients)
row("gather", "gather-sort-f64", lambda x: np.sort(x, axis=1), normal(2, 4, 3))
row("gather", "gather-sort-flat-i16", lambda x: np.sort(x, axis=None), ints(-5, 5, 3, 3, dtype=I16))
row("inv", "inv-f64", np.linalg.inv, wellcond(3, 3))
row("inv", "inv-batched-f32", np.linalg.inv, wellcond(2, 4, 4, dtype=F32), tol=1e-5)
row("inv", "inv-1x1", np.linalg.inv, wellcond(1, 1))
row(
    "solve",
    "solve-matrix-f64",
    np.linalg.solve,
    wellcond(3, 3),
    normal(3, 2),
)
row(
    "solve",
    "solve-batched-vector-f32",
    np.linalg.solve,
    wellcond(2, 4, 4, dtype=F32),
    normal(4, dtype=F32),
    tol=1e-5,
)
row("solve", "solve-broadcast-batch-f64", np.linalg.solve, wellcond(3, 3), normal(2, 3, 1))
row("det", "det-f64", np.linalg.det, normal(3, 3))
row("det", "det-batched-f32", np.linalg.det, normal(2, 3, 3, dtype=F32), tol=1e-5)
row("det", "det-2x2", np.linalg.det, normal(2, 2))
row("logabsdet", "logabsdet-f64", lambda x: np.linalg.slogdet(x)[1], normal(3, 3))
row(
    "logabsdet",
    "logabsdet-batched-f32",
    lambda x: np.linalg.slogdet(x).logabsdet,
    normal(2, 4, 4, dtype=F32),
    tol=1e-5,
)
row("detsign", "detsign-f64", lambda x: np.linalg.slogdet(x)[0], normal(3, 4, 4))
row("detsign", "detsign-singular", lambda x: np.linalg.slogdet(x).sign, fixed([[1.0, 2], [2, 4]]))
row("svd", "svd-values-f64", lambda x: np.linalg.svd(x, compute_uv=False), normal(4, 3))
row(
    "svd",
    "svd-reconstruct-batched-f32",
    lambda x: (lambda u, s, vh: (u * s[..., None, :]) @ vh)(*np.linalg.svd(x, full_matrices=False)),
    normal(2, 3, 5, dtype=F32),
    tol=1e-5,
)
row("svd", "svd-full-square-u-abs", lambda x: np.abs(np.linalg.svd(x)[0]), normal(2, 3, 3))
row("eigh", "eigh-values-f64", np.linalg.eigvalsh, normal(2, 4, 4))
row(
    "eigh",
    "eigh-vectors-abs-upper-f32",
    lambda x: np.abs(np.linalg.eigh(x, "U")[1]),
    normal(3, 3, dtype=F32),
    tol=1e-5,
)
row(
    "cholesky",
    "cholesky-lower-triangle-read-f64",
    np.linalg.cholesky,
    fixed([[4.0, 9.0, 9.0], [1.0, 3.0, 9.0], [0.5, 0.2, 2.0]]),
)
row(
    "cholesky",
    "cholesky-upper-f32",
    lambda x: np.linalg.cholesky(x, upper=True),
    fixed([[4.0, 1.0, 0.5], [-9.0, 3.0, 0.2], [-9.0, -9.0, 2.0]], F32),
    tol=1e-6,
)
row("qr", "qr-r-f64", lambda x: np.linalg.qr(x, mode="r"), normal(4, 3))
row(
    "qr",
    "qr-q-abs-batched-f32",
    lambda x: np.abs(np.linalg.qr(x).Q),
    normal(2, 3, 3, dtype=F32),
    tol=1e-5,
)
row(
    "searchsorted",
    "searchsorted-left-f64",
    lambda a, v: np.searchsorted(a, v),
    fixed([-1.0, 0.0, 0.0, 2.5]),
    fixed([[-2.0, 0.0], [1.0, 3.0]]),
)
row(
    "searchsorted",
    "searchsorted-right-i32",
    lambda a, v: np.searchsorted(a, v, side="right"),
    fixed([1, 3, 3, 7], I32),
    fixed([3, 0, 8], I32),
)


# -- control flow: references are the unrolled loops ---------------------------------------------


def _scan_ref(W, xs):
    h, ys = np.zeros(W.shape[0]), []
    for x in xs:
        h = np.tanh(W @ h + x)
        ys.append(h * 2)
    return np.concatenate([h, np.stack(ys).ravel()])


def _scan_rnn(W, xs):
    def step(h, x):
        h = np.tanh(W @ h + x)
        return h, h * 2

    h, ys = graphc.scan(step, np.zeros(3), xs)
    return np.concatenate([h, ys.ravel()])


def _while_ref(x):
    while np.sum(x) < 4:
        x = x * 1.5 + 0.1
    return x


row("scan", "scan-rnn", _scan_rnn, normal(3, 3, scale=0.5), normal(4, 3), ref=_scan_ref)
row(
    "while_loop",
    "while-grow",
    lambda x: graphc.while_loop(lambda c: np.sum(c) < 4, lambda c: c * 1.5 + 0.1, x),
    uniform(0.5, 1.0, 2),
    ref=_while_ref,
    smooth=False,  # the trip count jumps where the sum crosses 4
)
row(
    "while_loop",
    "while-counted",
    lambda x: graphc.while_loop(
        lambda c: c[0] < 3, lambda c: (c[0] + 1, np.sin(c[1]) * 1.5), (0, x), max_trips=5
    )[1],
    normal(3),
    ref=lambda x: np.sin(np.sin(np.sin(x) * 1.5) * 1.5) * 1.5,
)
row(
    "cond",
    "cond-sign",
    lambda x: graphc.cond(np.sum(x) > 0, lambda x: np.sin(x), lambda x: x * x, x),
    uniform(0.2, 1.0, 3),
    ref=lambda x: np.sin(x) if np.sum(x) > 0 else x * x,
)
row(
    "check",
    "check-false",
    lambda x: bind("check", np.sum(x) > 1e9, x, message="too big"),
    normal(3),
    ref=lambda x: x,
)


# -- derivatives of one's own, rematerialisation ------------------------------------------------


@graphc.custom_jvp
def _softplus_rule(x):
    return np.log1p(np.exp(x))


_softplus_rule.defjvp(lambda p, t: (_softplus_rule(p[0]), t[0] / (1 + np.exp(-p[0]))))


@graphc.custom_vjp
def _sin_rule(x):
    return np.sin(x)


_sin_rule.defvjp(lambda x: (np.sin(x), x), lambda x, g: (g * np.cos(x),))

row(
    "custom_jvp_call",
    "custom-jvp-softplus",
    _softplus_rule,
    normal(5),
    ref=lambda x: np.log1p(np.exp(x)),
)
row(
    "custom_vjp_call",
    "custom-vjp-sin",
    _sin_rule,
    normal(5),
    ref=np.sin,
    modes=("rev",),
    order=1,
)
row(
    "checkpoint",
    "checkpoint-two-args",
    graphc.checkpoint(lambda x, y: np.sin(x) * y),
    normal(2, 3),
    normal(3),
    ref=lambda x, y: np.sin(x) * y,
)
row("once", "once", lambda x: bind("once", x), normal(3), ref=lambda x: x, modes=())


# ---------------------------------------------------------------------------------------------
# checks


def assert_matches(got: Any, want: Any, case: OpCase, what: str = "value") -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{case.id}: {what} shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{case.id}: {what} dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        tol = case.tolerance(want.dtype)
        np.testing.assert_allclose(
            got, want, rtol=tol, atol=tol, equal_nan=True, err_msg=f"{case.id}: {what}"
        )
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"{case.id}: {what}")


def check_impl_types(graph: graphc.Graph, arrays: list) -> None:
    """Every node's NumPy implementation returns exactly the shape and dtype its rule promised
    (the interpreter would quietly cast; a compiled backend trusts the rule)."""
    env = {id(n): np.asarray(a) for n, a in zip(graph.inputs, arrays, strict=True)}
    for n in graph.nodes:
        if n.op == "input":
            continue
        out = REGISTRY[n.op].impl(*[env[id(i)] for i in n.inputs], **n.attrs)
        if isinstance(n.aval, graphc.ir.TupleAval):  # a loop's results, read by proj
            outs, avals = [np.asarray(o) for o in out], list(n.aval.avals)
            assert len(outs) == len(avals), f"{n.op} impl returned {len(outs)} results"
            out = tuple(outs)
        else:
            outs, avals = [np.asarray(out)], [n.aval]
            out = outs[0]
        for o, a in zip(outs, avals, strict=True):
            assert (o.shape, o.dtype) == (a.shape, a.dtype), (
                f"{n.op} impl returned {o.dtype}{list(o.shape)}, its rule says {a}"
            )
        env[id(n)] = out


def check_forward(case: OpCase) -> None:
    """Trace, verify, check the op is there, evaluate, compare with the reference."""
    arrays = case.make_args()
    saved = [np.array(a, copy=True) for a in arrays]
    with np.errstate(all="ignore"):
        want = case.reference(
            *[np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in arrays]
        )
    g = graphc.trace(case.fn, *arrays)
    verify(g)
    counts = g.op_counts()
    assert case.op in counts, f"{case.id}: traced graph has no {case.op}: {counts}\n{g}"
    with np.errstate(all="ignore"):
        check_impl_types(g, arrays)
        got = graphc.evaluate(g, *arrays)
    assert len(got) == 1
    assert_matches(got[0], want, case)
    for a, s in zip(arrays, saved, strict=True):
        np.testing.assert_array_equal(np.asarray(a), s, err_msg=f"{case.id}: input modified")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op(case: OpCase) -> None:
    check_forward(case)


# -- the batching column: vmap over three argument sets equals the stack of the three results --

BATCHINGS = {
    "all": "every array argument batched on axis 0",
    "first": "the first array argument batched, the others shared",
    "rest": "the others batched, the first shared",
    "last": "every array argument batched on its last axis (in_axes=-1)",
}


def argument_sets(case: OpCase, n: int = 3) -> list[list]:
    """`n` argument sets of the row, each drawn with its own seed."""
    out = []
    for k in range(n):
        rng = np.random.default_rng(zlib.crc32(case.id.encode()) + 7919 * k)
        out.append([a(rng) if callable(a) else a for a in case.args])
    return out


def check_batched(case: OpCase, how: str) -> bool:
    """vmap(case.fn) over stacked arguments against the per-example results (both by the
    interpreter); False when the row has no arguments to batch that way."""
    sets = argument_sets(case)
    arrays = [k for k, a in enumerate(sets[0]) if isinstance(a, (np.ndarray, np.generic))]
    batched = {"all": arrays, "last": arrays, "first": arrays[:1], "rest": arrays[1:]}[how]
    if not batched:
        return False
    axis = -1 if how == "last" else 0
    args, in_axes = [], []
    for k, a in enumerate(sets[0]):
        if k in batched:
            args.append(np.stack([s[k] for s in sets], axis=axis))
            in_axes.append(axis)
        else:
            args.append(a)
            in_axes.append(None)
    per_example = []
    for s in sets:
        ex = [s[k] if k in batched else sets[0][k] for k in range(len(s))]
        with np.errstate(all="ignore"):
            per_example.append(graphc.evaluate(graphc.trace(case.fn, *ex), *ex)[0])
    want = np.stack(per_example)
    g = graphc.trace(graphc.vmap(case.fn, in_axes=tuple(in_axes)), *args)
    verify(g)
    with np.errstate(all="ignore"):
        (got,) = graphc.evaluate(g, *args)
    # batched products and reductions may add in another order than one example's
    scaled = OpCase(case.op, case.fn, case.args, id=case.id, tol=10 * case.tolerance(want.dtype))
    assert_matches(got, want, scaled, f"vmap ({BATCHINGS[how]})")
    return True


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_batched(case: OpCase) -> None:
    done = [how for how in BATCHINGS if check_batched(case, how)]
    # rows of Python scalars only have nothing to batch
    assert done or not any(isinstance(a, (np.ndarray, np.generic)) for a in case.make_args())


def test_every_op_has_a_row() -> None:
    missing = sorted(table_ops() - {c.op for c in CASES})
    assert not missing, f"ops without a row in CASES: {missing}"


def test_rows_are_well_formed() -> None:
    ids = [c.id for c in CASES]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    assert not dups, f"duplicate row ids: {dups}"
    assert all(ids), "every row needs an id"
    unknown = sorted({c.op for c in CASES} - set(REGISTRY))
    assert not unknown, f"rows name unregistered ops: {unknown}"
    no_ref = sorted(c.id for c in CASES if c.op in NO_NUMPY_OPS and c.ref is None)
    assert not no_ref, f"rows of ops NumPy lacks need an independent ref: {no_ref}"


# -- the transpose ops against the naive forward references, through <A x, y> == <x, A^T y> ------


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a.astype(F64) * b.astype(F64)))


def _run(fn: Callable, *arrays: Any) -> np.ndarray:
    g = graphc.trace(fn, *arrays)
    verify(g)
    return graphc.evaluate(g, *arrays)[0]


@pytest.mark.parametrize(
    "xs, ws, s, p, dt", CONV, ids=[f"{name(c[0])}-{name(c[1])}-s{c[2]}-p{c[3]}" for c in CONV]
)
def test_conv_transposes_are_adjoint(xs, ws, s, p, dt) -> None:
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(xs).astype(dt), rng.standard_normal(ws).astype(dt)
    g = rng.standard_normal(conv_out_shape(xs, ws, s, p)).astype(dt)
    attrs = {"stride": _pair(s), "padding": _pair(p)}
    y = ref_conv2d(x.astype(F64), w.astype(F64), s, p)  # A x with A = conv2d(., w)
    dx = _run(lambda g, w: bind("conv2d_input_grad", g, w, in_hw=xs[2:], **attrs), g, w)
    dw = _run(lambda x, g: bind("conv2d_weight_grad", x, g, kernel_hw=ws[2:], **attrs), x, g)
    tol = 1e-5 if dt == F32 else 1e-12
    assert _dot(y, g) == pytest.approx(_dot(x, dx), rel=tol, abs=tol)
    assert _dot(y, g) == pytest.approx(_dot(w, dw), rel=tol, abs=tol)


@pytest.mark.parametrize("xs, k, s, dt", POOL, ids=[f"{name(c[0])}-k{c[1]}-s{c[2]}" for c in POOL])
def test_pool_transposes_are_adjoint(xs, k, s, dt) -> None:
    rng = np.random.default_rng(8)
    attrs = {"kernel": _pair(k), "stride": _pair(s)}
    x, h = rng.standard_normal(xs).astype(dt), rng.standard_normal(xs).astype(dt)
    g = rng.standard_normal(pool_out_shape(xs, k, s)).astype(dt)
    tol = 1e-5 if dt == F32 else 1e-12
    # avg_pool2d_grad is the transpose of avg_pool2d
    dx = _run(lambda g: bind("avg_pool2d_grad", g, in_hw=xs[2:], **attrs), g)
    assert _dot(ref_avg_pool2d(x.astype(F64), **attrs), g) == pytest.approx(
        _dot(x, dx), rel=tol, abs=tol
    )
    # for fixed x, max_pool2d_select(x, .) is linear and max_pool2d_grad(x, .) its transpose
    sel = _run(lambda x, h: bind("max_pool2d_select", x, h, **attrs), x, h)
    dh = _run(lambda x, g: bind("max_pool2d_grad", x, g, **attrs), x, g)
    assert _dot(sel, g) == pytest.approx(_dot(h, dh), rel=tol, abs=tol)
    # and max_pool2d(x) == max_pool2d_select(x, x)
    np.testing.assert_array_equal(
        _run(lambda x: bind("max_pool2d_select", x, x, **attrs), x), ref_max_pool2d(x, **attrs)
    )


def test_scatter_add_is_adjoint_of_gather() -> None:
    rng = np.random.default_rng(9)
    x, idx = rng.standard_normal((5, 3)), rng.integers(0, 5, (4, 2))
    u = rng.standard_normal((3, 4, 2))
    gathered = _run(lambda x, i: np.take(x, i, axis=0), x, idx)  # (4, 2, 3)
    scattered = _run(lambda u, i: bind("scatter_add", u, i, axis=1, shape=(3, 5)), u, idx)
    # <take(x, idx, axis=0), u^T> == <x, scatter_add(u, idx)^T>
    assert _dot(gathered, np.moveaxis(u, 0, -1)) == pytest.approx(_dot(x, scattered.T), rel=1e-12)
