"""Random NumPy programs for the conformance suite.

A program is a list of steps drawn from a catalogue of NumPy operations (elementwise functions,
broadcasting binary operations, reductions over every axis form, shape operations, indexing,
matmul). Each step is checked with NumPy while the program is generated, so every program is
valid NumPy; the same program then runs as plain NumPy (the reference), through graphc's
interpreter and compiled. Steps keep values in a moderate range (tanh, 1 + x², ...) so that
finite differences are meaningful in float64.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Input shape sets: chosen so that broadcasting, matmul and reductions over several axes occur.
INPUT_SHAPES: tuple[tuple[tuple[int, ...], ...], ...] = (
    ((3, 4), (4,)),
    ((2, 3, 4), (4, 3)),
    ((4, 4), (4, 4)),
    ((3, 1, 4), (2, 4)),
    ((5,), (5,)),
    ((2, 3), (3, 2), (2, 1)),
    ((2, 2, 3), (3,), (2, 1, 1)),
)

# --- the catalogue: name -> (arity, builder). A builder gets the numpy-like module `np` (always
# NumPy itself: graphc traces through NumPy's dispatch), the operands and a generator for its
# parameters, drawn once at generation time and frozen into the step.


def _unary(fn: Callable[[Any], Any]) -> Callable:
    return lambda rng, shapes: (fn, {})


UNARY: dict[str, Callable[[Any], Any]] = {
    "tanh": np.tanh,
    "sin": np.sin,
    "cos": np.cos,
    "exp_tanh": lambda v: np.exp(np.tanh(v)),
    "log1p_sq": lambda v: np.log1p(v * v),
    "log_sq1": lambda v: np.log(v * v + 1.0),
    "sqrt_sq1": lambda v: np.sqrt(v * v + 1.0),
    "abs": np.abs,
    "square": np.square,
    "neg": np.negative,
    "recip": lambda v: 1.0 / (1.0 + v * v),
    "arctan": np.arctan,
    "sinh_tanh": lambda v: np.sinh(np.tanh(v)),
    "cosh_tanh": lambda v: np.cosh(np.tanh(v)),
    "expm1_tanh": lambda v: np.expm1(np.tanh(v)),
    "logaddexp": lambda v: np.logaddexp(v, 0.5),
    "relu": lambda v: np.maximum(v, 0.0),
    "clip": lambda v: np.clip(v, -0.5, 0.7),
    "arcsinh": np.arcsinh,
    "arcsin_tanh": lambda v: np.arcsin(0.9 * np.tanh(v)),
    "arctanh_tanh": lambda v: np.arctanh(0.9 * np.tanh(v)),
    "pow_frac": lambda v: np.power(v * v + 1.0, 1.5),
    "pow_int": lambda v: v**3,
    "signx": lambda v: np.sign(v) * v,
    "cbrt": lambda v: np.cbrt(v * v + 1.0),
    "exp2": lambda v: np.exp2(np.tanh(v)),
    "log2": lambda v: np.log2(v * v + 1.0),
    "log10": lambda v: np.log10(v * v + 1.0),
    "hypot1": lambda v: np.hypot(v, 1.0),
    "sigmoidish": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "scale": lambda v: 2.5 * v - 0.5,
    "floor_mix": lambda v: v - 0.1 * np.floor(v),
}

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": lambda a, b: a / (1.0 + b * b),
    "maximum": np.maximum,
    "minimum": np.minimum,
    "where": lambda a, b: np.where(a > b, a, 2.0 * b),
    "arctan2": lambda a, b: np.arctan2(a, b + 3.0),
    "hypot": lambda a, b: np.hypot(a, b + 2.0),
    "pow": lambda a, b: np.power(a * a + 1.0, 0.3 * np.tanh(b)),
    "logaddexp2": np.logaddexp2,
    "fmax": np.fmax,
}

REDUCTIONS: dict[str, Callable[..., Any]] = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "prod": lambda v, axis, keepdims: np.prod(1.0 + 0.2 * np.tanh(v), axis=axis, keepdims=keepdims),
    "var": np.var,
    "std": lambda v, axis, keepdims: np.std(v, axis=axis, keepdims=keepdims) + 0.0,
    "logsumexp": lambda v, axis, keepdims: np.log(np.sum(np.exp(v), axis=axis, keepdims=keepdims)),
    "amax": np.amax,
    "norm": lambda v, axis, keepdims: np.sqrt(np.sum(v * v, axis=axis, keepdims=keepdims) + 1.0),
}


def axis_forms(ndim: int) -> list[Any]:
    """Every axis argument a reduction over an `ndim`-array accepts: None, each axis as a
    positive and a negative int, and every tuple of two or more distinct axes (some in
    non-sorted order and with negative entries)."""
    forms: list[Any] = [None]
    for a in range(ndim):
        forms += [a, a - ndim]
    for a in range(ndim):
        for b in range(ndim):
            if a != b:
                forms.append((a, b - ndim if (a + b) % 2 else b))
    if ndim >= 3:
        forms += [tuple(range(ndim)), tuple(reversed(range(ndim)))]
    return forms


@dataclasses.dataclass(frozen=True)
class Step:
    kind: str  # unary | binary | reduce | shape | matmul | concat | index | cumsum
    name: str
    args: tuple[int, ...]  # indices into the program's value list
    params: tuple = ()

    def __str__(self) -> str:
        ps = f" {self.params}" if self.params else ""
        return f"{self.kind}:{self.name}{ps} <- {self.args}"


def _shape_op(name: str, params: tuple) -> Callable[[Any], Any]:
    """One shape or indexing operation, parameters frozen."""
    if name == "transpose":
        return lambda v: np.transpose(v, params[0]) if params[0] is not None else v.T
    if name == "swapaxes":
        return lambda v: np.swapaxes(v, *params)
    if name == "moveaxis":
        return lambda v: np.moveaxis(v, *params)
    if name == "expand_dims":
        return lambda v: np.expand_dims(v, params[0])
    if name == "squeeze":
        return lambda v: np.squeeze(v, axis=params[0])
    if name == "reshape":
        return lambda v: np.reshape(v, params[0])
    if name == "ravel":
        return np.ravel
    if name == "flip":
        return lambda v: np.flip(v, axis=params[0])
    if name == "roll":
        return lambda v: np.roll(v, params[0], axis=params[1])
    if name == "slice":
        return lambda v: v[params[0]]
    if name == "take":
        return lambda v: np.take(v, np.array(params[0]), axis=params[1])
    if name == "fancy":
        return lambda v: v[np.array(params[0])]
    if name == "broadcast_to":
        return lambda v: np.broadcast_to(v, params[0])
    if name == "cumsum":
        return lambda v: np.cumsum(v, axis=params[0])
    if name == "tile":
        return lambda v: np.tile(v, params[0])
    if name == "repeat":
        return lambda v: np.repeat(v, params[0], axis=params[1])
    if name == "astype_roundtrip":
        return lambda v: v.astype(np.float64).astype(v.dtype)
    raise KeyError(name)


def _propose_shape_op(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[str, tuple]:
    nd = len(shape)
    names = ["transpose", "expand_dims", "reshape", "ravel", "slice", "broadcast_to", "tile"]
    if nd >= 1:
        names += ["flip", "roll", "take", "fancy", "cumsum", "repeat", "astype_roundtrip"]
    if nd >= 2:
        names += ["swapaxes", "moveaxis"]
    if 1 in shape:
        names.append("squeeze")
    name = names[rng.integers(len(names))]
    ax = int(rng.integers(-nd, nd)) if nd else 0
    if name == "transpose":
        perm = None if rng.random() < 0.3 or nd < 2 else tuple(int(a) for a in rng.permutation(nd))
        return name, (perm,)
    if name in ("swapaxes", "moveaxis"):
        return name, (int(rng.integers(-nd, nd)), int(rng.integers(-nd, nd)))
    if name == "expand_dims":
        return name, (int(rng.integers(-nd - 1, nd + 1)),)
    if name == "squeeze":
        ones = [k for k, s in enumerate(shape) if s == 1]
        return name, (ones[rng.integers(len(ones))] - (nd if rng.random() < 0.5 else 0),)
    if name == "reshape":
        size = int(np.prod(shape))
        options = [(size,), (-1,), (1, size), (size, 1)]
        for d in (2, 3, 4):
            if size % d == 0 and size > d:
                options += [(d, size // d), (d, -1), (-1, d, 1)]
        return name, (options[rng.integers(len(options))],)
    if name == "flip":
        return name, (None if rng.random() < 0.3 else ax,)
    if name == "roll":
        return name, (int(rng.integers(-3, 4)), ax)
    if name == "slice":
        if nd == 0:
            return name, ((),)
        idx: list[Any] = []
        for s in shape:
            r = rng.integers(5)
            if r == 0:
                idx.append(slice(None, None, -1))
            elif r == 1 and s > 1:
                idx.append(slice(1, None))
            elif r == 2 and s > 1:
                idx.append(slice(None, None, 2))
            elif r == 3 and s > 1:
                idx.append(int(rng.integers(-s, s)))
            else:
                idx.append(slice(None))
        if rng.random() < 0.3:
            idx.insert(int(rng.integers(len(idx) + 1)), None)
        return name, (tuple(idx),)
    if name in ("take", "fancy"):
        n = shape[ax if name == "take" else 0]
        ids = tuple(int(i) for i in rng.integers(-n, n, size=int(rng.integers(1, 5))))
        return name, (ids, ax) if name == "take" else (ids,)
    if name == "broadcast_to":
        return name, ((2,) + tuple(shape),)
    if name == "cumsum":
        return name, (ax,)
    if name == "tile":
        return name, ((2,) if nd <= 1 else (1, 2),)
    if name == "repeat":
        return name, (2, ax)
    return name, ()


@dataclasses.dataclass
class Program:
    """A generated program: `n_inputs` arrays in, `outputs` (indices of values) out."""

    seed: int
    shapes: tuple[tuple[int, ...], ...]
    steps: list[Step]
    outputs: tuple[int, ...]

    def __call__(self, *xs: Any) -> tuple:
        vals = list(xs)
        for st in self.steps:
            vals.append(apply_step(st, [vals[i] for i in st.args]))
        return tuple(vals[i] for i in self.outputs)

    def __str__(self) -> str:
        lines = [f"program seed={self.seed} inputs={self.shapes}"]
        n = len(self.shapes)
        lines += [f"  v{n + k} = {st}" for k, st in enumerate(self.steps)]
        lines.append("  return " + ", ".join(f"v{i}" for i in self.outputs))
        return "\n".join(lines)


def apply_step(st: Step, ops: Sequence[Any]) -> Any:
    if st.kind == "unary":
        return UNARY[st.name](ops[0])
    if st.kind == "binary":
        return BINARY[st.name](ops[0], ops[1])
    if st.kind == "reduce":
        axis, keepdims = st.params
        return REDUCTIONS[st.name](ops[0], axis=axis, keepdims=keepdims)
    if st.kind == "shape":
        return _shape_op(st.name, st.params)(ops[0])
    if st.kind == "matmul":
        a, b = ops
        if st.name == "matmul":
            return a @ b
        if st.name == "matmul_t":
            return a @ np.swapaxes(b, -1, -2)
        if st.name == "dot":
            return np.dot(a, b)
        if st.name == "einsum":
            return np.einsum(st.params[0], a, b)
        if st.name == "tensordot":
            return np.tensordot(a, b, axes=st.params[0])
    if st.kind == "concat":
        if st.name == "concatenate":
            return np.concatenate([ops[0], ops[1]], axis=st.params[0])
        return np.stack([ops[0], ops[1]], axis=st.params[0])
    raise KeyError(st)


def _propose(rng: np.random.Generator, vals: list[np.ndarray]) -> Step:
    n = len(vals)
    pick = lambda: (
        int(rng.integers(n)) if rng.random() < 0.4 else int(n - 1 - rng.integers(min(n, 3)))
    )
    r = rng.random()
    if r < 0.30:
        name = list(UNARY)[rng.integers(len(UNARY))]
        return Step("unary", name, (pick(),))
    if r < 0.52:
        name = list(BINARY)[rng.integers(len(BINARY))]
        a, b = pick(), pick()
        if a == b and rng.random() < 0.8:
            b = int(rng.integers(n))
        return Step("binary", name, (a, b))
    if r < 0.67:
        a = pick()
        name = list(REDUCTIONS)[rng.integers(len(REDUCTIONS))]
        forms = axis_forms(vals[a].ndim)
        return Step(
            "reduce", name, (a,), (forms[rng.integers(len(forms))], bool(rng.random() < 0.4))
        )
    if r < 0.85:
        a = pick()
        name, params = _propose_shape_op(rng, vals[a].shape)
        return Step("shape", name, (a,), params)
    if r < 0.95:
        a, b = pick(), pick()
        kinds = ["matmul", "matmul_t", "dot", "einsum", "tensordot"]
        kind = kinds[rng.integers(len(kinds))]
        params: tuple = ()
        if kind == "einsum":
            params = (
                ["ij,jk->ik", "ij,kj->ik", "i,i->", "ij,j->i", "bij,bjk->bik", "ij,ij->j"][
                    rng.integers(6)
                ],
            )
        if kind == "tensordot":
            params = ([1, 2, ([0], [0]), ([-1], [0])][rng.integers(4)],)
        return Step("matmul", kind, (a, b), params)
    a, b = pick(), pick()
    nd = vals[a].ndim
    axis = int(rng.integers(-nd - 1, nd + 1)) if nd else 0
    return Step("concat", ["concatenate", "stack"][rng.integers(2)], (a, b), (axis,))


def generate(seed: int, steps: int = 10, max_size: int = 400) -> Program:
    """A valid random program: each proposed step is run with NumPy on float64 samples and kept
    only if NumPy accepts it, its result is small and finite, and it is floating point."""
    rng = np.random.default_rng(seed)
    shapes = INPUT_SHAPES[seed % len(INPUT_SHAPES)]
    vals = [rng.standard_normal(s) for s in shapes]
    prog_steps: list[Step] = []
    tries = 0
    while len(prog_steps) < steps and tries < 50 * steps:
        tries += 1
        st = _propose(rng, vals)
        try:
            with np.errstate(all="raise"):
                v = np.asarray(apply_step(st, [vals[i] for i in st.args]))
        except (ValueError, IndexError, TypeError, FloatingPointError, np.exceptions.AxisError):
            continue
        if v.dtype != np.float64 or v.size == 0 or v.size > max_size or v.ndim > 4:
            continue
        if st.name == "std" and vals[st.args[0]].size == v.size:
            continue  # the std of one element is sqrt at 0: no derivative (NaN, as in JAX)
        if not np.all(np.isfinite(v)) or np.max(np.abs(v), initial=0) > 1e4:
            continue
        prog_steps.append(st)
        vals.append(v)
    n_in = len(shapes)
    last = len(vals) - 1
    outs = {last}
    for _ in range(2):
        outs.add(int(rng.integers(n_in, len(vals))))
    return Program(seed, shapes, prog_steps, tuple(sorted(outs)))


def loss_weights(prog: Program, dtype: Any) -> list[np.ndarray]:
    """Fixed random weights per output: the scalar loss is sum_k sum(w_k * out_k)."""
    rng = np.random.default_rng(10_000 + prog.seed)
    outs = prog(*[np.zeros(s) + 0.5 for s in prog.shapes])
    return [rng.standard_normal(np.shape(o)).astype(dtype) for o in outs]


def make_loss(prog: Program, weights: list[np.ndarray]) -> Callable[..., Any]:
    def loss(*xs: Any) -> Any:
        return sum(np.sum(w * o) for w, o in zip(weights, prog(*xs), strict=True))

    return loss
