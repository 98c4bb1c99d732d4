"""Products of arrays: matmul and dot and their relatives, tensordot (one matmul between two
reshapes), einsum (diagonals, transposes, reductions and batched matmuls), kron and cross."""

from __future__ import annotations

import builtins
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.ir import AxisError, GraphcError, ShapeError
from graphc.numpy._core import (
    _asarr,
    _axes,
    _axis,
    _convert,
    _no_extras,
    _promote_all,
    _resolve,
    astype,
)
from graphc.numpy.diagonals import diagonal
from graphc.numpy.reductions import sum
from graphc.numpy.shapes import (
    broadcast_to,
    expand_dims,
    moveaxis,
    ravel,
    reshape,
    squeeze,
    stack,
    transpose,
)
from graphc.numpy.ufuncs import greater, multiply, not_equal
from graphc.trace import ArgumentError, UnsupportedError, bind, user_location


def matmul(a: Any, b: Any) -> Any:
    """NumPy's matmul: 1-d operands are promoted to matrices and the added axis removed."""
    dts = _resolve(np.matmul, (a, b))
    a, b = _convert(a, dts[0]), _convert(b, dts[1])
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul: operands must not be scalars (use *)", user_location())
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ShapeError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}", user_location())
    out = bind("matmul", a2, b2)
    if a.ndim == 1:
        out = squeeze(out, -2)
    if b.ndim == 1:
        out = squeeze(out, -1)
    return out


def dot(a: Any, b: Any, out: Any = None) -> Any:
    _no_extras("dot", out)
    a, b = _asarr(a), _asarr(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if b.ndim <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 2]))


def vdot(a: Any, b: Any) -> Any:
    return dot(ravel(a), ravel(b))


def inner(a: Any, b: Any) -> Any:
    a, b = _asarr(a), _asarr(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


def outer(a: Any, b: Any, out: Any = None) -> Any:
    _no_extras("outer", out)
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """Sum over the given axes of a and b, as one matmul between two reshapes."""
    dts = _resolve(np.matmul, (a, b))
    a, b = _convert(a, dts[0]), _convert(b, dts[1])
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, (bool, np.bool_)):
        # NumPy's reading: the last n axes of a with the first n of b (none for n <= 0)
        n = int(axes)
        if n > builtins.min(a.ndim, b.ndim):
            raise AxisError(
                f"tensordot: axes={n} sums over the last {n} axes of a and the first {n} of b, "
                f"but a has {a.ndim} and b has {b.ndim}",
                user_location(),
                axis=n,
                ndim=builtins.min(a.ndim, b.ndim),
            )
        ax_a = _axes("tensordot", list(range(-n, 0)), a.ndim, what="axes")
        ax_b = _axes("tensordot", list(range(n)), b.ndim, what="axes")
    else:
        try:
            spec_a, spec_b = axes
        except (TypeError, ValueError):
            raise GraphcError(
                f"tensordot: axes must be an int or a pair (axes of a, axes of b), got {axes!r}",
                user_location(),
            ) from None
        ax_a = _axes("tensordot", spec_a, a.ndim, what="axes of a")
        ax_b = _axes("tensordot", spec_b, b.ndim, what="axes of b")
        if len(ax_a) != len(ax_b):
            raise ShapeError(
                f"tensordot: {len(ax_a)} axes of a {tuple(ax_a)} but {len(ax_b)} of b "
                f"{tuple(ax_b)}; they are summed in pairs",
                user_location(),
            )
    ax_a, ax_b = list(ax_a), list(ax_b)
    for i, j in zip(ax_a, ax_b, strict=True):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(
                f"tensordot: axis {i} of {a.shape} and axis {j} of {b.shape} differ",
                user_location(),
            )
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [i for i in range(b.ndim) if i not in ax_b]
    k = int(np.prod([a.shape[i] for i in ax_a], dtype=np.int64))
    a2 = reshape(transpose(a, free_a + ax_a), (-1, k))
    b2 = reshape(transpose(b, ax_b + free_b), (k, -1))
    out = bind("matmul", a2, b2)
    return reshape(out, tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b))


def vecdot(x1: Any, x2: Any, /, *, axis: int = -1, **kw: Any) -> Any:
    """Dot products of vectors along axis (broadcast over the rest)."""
    p = multiply(x1, x2)
    ax = _axis(p, axis, "vecdot")
    if p.dtype == np.bool_:
        return greater(sum(p, axis=ax), 0)
    return sum(p, axis=ax, dtype=p.dtype)


def matvec(x1: Any, x2: Any, /, **kw: Any) -> Any:
    """Matrix-vector products over stacks: (..., m, n) with (..., n)."""
    x2 = _asarr(x2)
    return squeeze(matmul(x1, expand_dims(x2, -1)), -1)


def vecmat(x1: Any, x2: Any, /, **kw: Any) -> Any:
    """Vector-matrix products over stacks: (..., m) with (..., m, n)."""
    x1 = _asarr(x1)
    return squeeze(matmul(expand_dims(x1, -2), x2), -2)


def kron(a: Any, b: Any) -> Any:
    """Kronecker product: an outer product of the two, reshaped block-wise."""
    a, b = _asarr(a), _asarr(b)
    nd = builtins.max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + tuple(a.shape)
    sb = (1,) * (nd - b.ndim) + tuple(b.shape)
    a2 = reshape(a, tuple(v for s in sa for v in (s, 1)))
    b2 = reshape(b, tuple(v for s in sb for v in (1, s)))
    return reshape(multiply(a2, b2), tuple(x * y for x, y in zip(sa, sb, strict=True)))


def cross(
    a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None
) -> Any:
    """Cross product of 3-vectors (2-vectors get a zero z; two 2-vectors give the z value)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _promote_all([_asarr(a), _asarr(b)])
    a = moveaxis(a, _axis(a, axisa, "cross"), -1)
    b = moveaxis(b, _axis(b, axisb, "cross"), -1)
    na, nb = a.shape[-1], b.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ShapeError(
            f"np.cross: incompatible dimensions for cross product (dimension must be 2 or 3), "
            f"got {na} and {nb}",
            user_location(),
        )

    def comp(x: Any, i: int) -> Any:
        return x[..., i] if i < x.shape[-1] else None

    a0, a1, a2 = comp(a, 0), comp(a, 1), comp(a, 2)
    b0, b1, b2 = comp(b, 0), comp(b, 1), comp(b, 2)
    z = a0 * b1 - a1 * b0
    if na == 2 and nb == 2:
        return z
    x = (a1 * b2 if b2 is not None else 0) - (a2 * b1 if a2 is not None else 0)
    y = (a2 * b0 if a2 is not None else 0) - (a0 * b2 if b2 is not None else 0)
    shp = np.broadcast_shapes(tuple(a.shape[:-1]), tuple(b.shape[:-1]))
    c = stack([broadcast_to(_asarr(t), shp) for t in (x, y, z)], axis=-1)
    return moveaxis(c, -1, _axis(c, axisc, "cross"))


def _einsum_check(spec: Any, operands: Sequence[Any]) -> None:
    """Reject subscripts NumPy rejects, with NumPy's reasons: characters that are not letters,
    a malformed '->', operand counts and ranks that do not match, output labels that are
    repeated or appear in no input, and one label with different sizes."""
    if not isinstance(spec, str):
        raise UnsupportedError(
            "np.einsum: only the subscripts-string form einsum('ij,jk->ik', a, b) is supported",
            user_location(),
        )
    text = spec.replace(" ", "")
    lhs, arrow, out = text.partition("->")
    if "-" in lhs or ">" in lhs or (arrow and ("-" in out or ">" in out)):
        raise ShapeError(
            f"np.einsum: {spec!r} does not have a proper '->' before the output subscripts",
            user_location(),
        )
    for c in lhs + out:
        if c not in string.ascii_letters and c not in ",.":
            raise ShapeError(
                f"np.einsum: invalid subscript {c!r} in {spec!r}; subscripts must be letters",
                user_location(),
            )
    if "." in text:
        return  # '...' gets its own message from the parser
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise ShapeError(
            f"np.einsum: {spec!r} names {len(ins)} operand{'s' * (len(ins) != 1)} but "
            f"{len(operands)} {'was' if len(operands) == 1 else 'were'} given",
            user_location(),
        )
    sizes: dict[str, tuple[int, int]] = {}
    for k, (sub, x) in enumerate(zip(ins, operands, strict=True)):
        shape = tuple(np.shape(x))
        if len(sub) != len(shape):
            raise ShapeError(
                f"np.einsum: operand {k} has {len(shape)} dimension"
                f"{'s' * (len(shape) != 1)} (shape {shape}) but its subscripts {sub!r} "
                f"name {len(sub)}",
                user_location(),
            )
        for c, d in zip(sub, shape, strict=True):
            if c in sizes and sizes[c][0] != d and sizes[c][1] == k:
                raise ShapeError(
                    f"np.einsum: repeated index {c!r} of operand {k} has lengths "
                    f"{sizes[c][0]} and {d}",
                    user_location(),
                )
            if c in sizes and sizes[c][0] != d and 1 not in (sizes[c][0], d):
                raise ShapeError(
                    f"np.einsum: index {c!r} has size {sizes[c][0]} in operand {sizes[c][1]} "
                    f"but {d} in operand {k}",
                    user_location(),
                )
            if c not in sizes or sizes[c][0] == 1:  # a length of 1 broadcasts, as in NumPy
                sizes[c] = (d, k)
    if arrow:
        for c in out:
            if out.count(c) > 1:
                raise ShapeError(
                    f"np.einsum: output subscript {c!r} appears more than once in {spec!r}",
                    user_location(),
                )
            if c not in sizes:
                raise ShapeError(
                    f"np.einsum: output subscript {c!r} appears in no input of {spec!r}",
                    user_location(),
                )


def _einsum_parse(spec: str, n: int) -> tuple[list[str], str]:
    spec = spec.replace(" ", "")
    if "." in spec:
        raise UnsupportedError("einsum: '...' is not supported; name every axis", user_location())
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != n:
        raise ShapeError(
            f"einsum: {spec!r} names {len(ins)} operands but {n} were given", user_location()
        )
    if not arrow:
        counts = {c: lhs.count(c) for c in lhs if c in string.ascii_letters}
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
    for s in ins:
        if len(set(s)) != len(s):
            raise UnsupportedError(
                f"einsum: repeated index within one operand ({s!r}: "
                "diagonals/traces) is not supported",
                user_location(),
            )
    return ins, out


def _einsum_one(x: Any, s: str, keep: str) -> tuple[Any, str]:
    """Sum x over its letters not in `keep`."""
    axes = tuple(i for i, c in enumerate(s) if c not in keep)
    if not axes:
        return x, s
    return bind("reduce_sum", x, axes=axes, keepdims=False), "".join(c for c in s if c in keep)


def _einsum_pair(a: Any, sa: str, b: Any, sb: str, keep: str) -> tuple[Any, str]:
    a, sa = _einsum_one(a, sa, sb + keep)
    b, sb = _einsum_one(b, sb, sa + keep)
    batch = [c for c in sa if c in sb and c in keep]
    contract = [c for c in sa if c in sb and c not in keep]
    fa = [c for c in sa if c not in sb]
    fb = [c for c in sb if c not in sa]
    dims = {**dict(zip(sa, a.shape, strict=True)), **dict(zip(sb, b.shape, strict=True))}
    for c in set(sa) & set(sb):
        if a.shape[sa.index(c)] != b.shape[sb.index(c)]:
            raise ShapeError(
                f"einsum: index {c!r} has sizes {a.shape[sa.index(c)]} and {b.shape[sb.index(c)]}",
                user_location(),
            )

    def size(cs):
        return int(np.prod([dims[c] for c in cs], dtype=np.int64))

    a3 = reshape(
        transpose(a, [sa.index(c) for c in batch + fa + contract]),
        (size(batch), size(fa), size(contract)),
    )
    b3 = reshape(
        transpose(b, [sb.index(c) for c in batch + contract + fb]),
        (size(batch), size(contract), size(fb)),
    )
    out = bind("matmul", a3, b3)
    letters = batch + fa + fb
    return reshape(out, tuple(dims[c] for c in letters)), "".join(letters)


def _einsum_named(spec: str, *operands: Any, **kwargs: Any) -> Any:
    """Einstein summation for named axes (no '...' and no repeated index within an operand),
    lowered to transposes, reshapes, reductions and batched matmuls."""
    if kwargs.get("out") is not None:
        raise UnsupportedError("einsum: out= is not supported", user_location())
    unknown = sorted(set(kwargs) - {"out", "dtype", "order", "casting", "optimize"})
    if unknown:  # order, casting and optimize do not change the values
        raise ArgumentError(
            f"np.einsum: got an unexpected keyword argument {unknown[0]!r}", user_location()
        )
    _einsum_check(spec, operands)
    ins, out_s = _einsum_parse(spec, len(operands))
    dtype = kwargs.get("dtype")
    ops = _promote_all(operands) if dtype is None else [astype(o, dtype) for o in operands]
    acc, s = ops[0], ins[0]
    for j in range(1, len(ops)):
        later = "".join(ins[j + 1 :]) + out_s
        acc, s = _einsum_pair(acc, s, ops[j], ins[j], later)
    acc, s = _einsum_one(acc, s, out_s)
    return transpose(acc, [s.index(c) for c in out_s]) if out_s else acc


def _einsum_prepare(spec: str, operands: Sequence[Any]) -> tuple[str, list[Any]]:
    """Rewrite an einsum with '...' or a repeated index within one operand into one that names
    every axis once per operand: '...' becomes fresh letters (operands broadcast against each
    other there), and each repeated index becomes a diagonal of the operand."""
    spec = spec.replace(" ", "")
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    ops = [_asarr(o) for o in operands]
    if len(ins) != len(ops):
        return spec, ops  # _einsum_parse reports the mismatch
    if not arrow:
        counts = {c: lhs.count(c) for c in lhs if c in string.ascii_letters}
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
        if "..." in lhs:
            out = "..." + out
    if "..." in spec:
        free = [c for c in string.ascii_letters if c not in spec]
        dims = []
        for s, x in zip(ins, ops, strict=True):
            named = len(s.replace("...", ""))
            if s.count("...") > 1 or ("..." in s and x.ndim < named):
                raise ShapeError(
                    f"einsum: operand {s!r} does not fit an array of shape {tuple(x.shape)}",
                    user_location(),
                )
            dims.append(x.ndim - named if "..." in s else 0)
        width = builtins.max(dims)
        try:
            common = np.broadcast_shapes(
                *[
                    tuple(x.shape[s.index("...") : s.index("...") + d])
                    for s, x, d in zip(ins, ops, dims, strict=True)
                    if "..." in s
                ]
            )
        except ValueError:
            raise ShapeError(
                "einsum: the axes under '...' do not broadcast together", user_location()
            ) from None
        letters = "".join(free[:width])
        for i, (s, x, d) in enumerate(zip(ins, ops, dims, strict=True)):
            if "..." not in s:
                continue
            at = s.index("...")
            want = tuple(x.shape[:at]) + tuple(common[width - d :]) + tuple(x.shape[at + d :])
            if want != tuple(x.shape):
                ops[i] = broadcast_to(x, want)
            ins[i] = s.replace("...", letters[width - d :])
        out = out.replace("...", letters)
    inputs = set("".join(ins))
    for c in out:
        if c not in inputs or out.count(c) > 1:
            raise ShapeError(
                f"einsum: output index {c!r} "
                + ("appears more than once" if c in inputs else "is not in any operand"),
                user_location(),
            )
    for i, (s, x) in enumerate(zip(ins, ops, strict=True)):
        if len(s) != x.ndim:
            raise ShapeError(
                f"einsum: operand {i} has {x.ndim} axes but {s!r} names {len(s)}",
                user_location(),
            )
        while len(set(s)) != len(s):
            c = next(c for c in s if s.count(c) > 1)
            a = s.index(c)
            b = s.index(c, a + 1)
            if x.shape[a] != x.shape[b]:
                raise ShapeError(
                    f"einsum: repeated index {c!r} of operand {i} has lengths {x.shape[a]} "
                    f"and {x.shape[b]}",
                    user_location(),
                )
            x = diagonal(x, 0, a, b)
            s = s[:a] + s[a + 1 : b] + s[b + 1 :] + c
        ins[i], ops[i] = s, x
    return ",".join(ins) + "->" + out, ops


def _einsum_broadcast_ones(spec: str, operands: Sequence[Any]) -> list[Any]:
    """Operands with each axis of length 1 broadcast to its index's length in the other
    operands (NumPy's einsum broadcasts such axes)."""
    lhs = spec.replace(" ", "").partition("->")[0]
    subs = lhs.split(",")
    if "." in lhs or len(subs) != len(operands):
        return list(operands)
    size: dict[str, int] = {}
    for sub, x in zip(subs, operands, strict=True):
        for c, d in zip(sub, np.shape(x), strict=True):
            size[c] = builtins.max(size.get(c, 1), d)
    out = []
    for sub, x in zip(subs, operands, strict=True):
        want = tuple(size[c] for c in sub)
        out.append(broadcast_to(_asarr(x), want) if want != tuple(np.shape(x)) else x)
    return out


def einsum(spec: str, *operands: Any, **kwargs: Any) -> Any:
    """Einstein summation as in np.einsum, including '...' and repeated indices within one
    operand (diagonals, traces: "ii->", "ii->i", "bii->bi"), lowered to diagonals,
    transposes, reshapes, reductions and batched matmuls.

    Example:
        >>> einsum("ii->", np.eye(3))
        np.float64(3.0)
    """
    _einsum_check(spec, operands)
    operands = _einsum_broadcast_ones(spec, operands)
    spec, ops = _einsum_prepare(spec, operands)
    if ops and builtins.all(o.dtype == np.bool_ for o in ops):
        # NumPy's boolean einsum: any of the ands, i.e. a count that is not zero
        counts = _einsum_named(spec, *[astype(o, np.int64) for o in ops], **kwargs)
        return not_equal(counts, 0)
    return _einsum_named(spec, *ops, **kwargs)


FUNCTIONS: dict[Callable, Callable] = {
    np.dot: dot,
    np.vdot: vdot,
    np.inner: inner,
    np.outer: outer,
    np.tensordot: tensordot,
    np.einsum: einsum,
    np.cross: cross,
    np.kron: kron,
    np.vecdot: vecdot,
    np.matvec: matvec,
    np.vecmat: vecmat,
}


UFUNCS: dict[np.ufunc, Callable] = {
    np.matmul: matmul,
    np.vecdot: vecdot,
    np.matvec: matvec,
    np.vecmat: vecmat,
}
