"""Fused node -> the Python source of one Numba kernel.

A fused body is elementwise work over an iteration space S, plus reductions of S-shaped values
over one set of axes R. The kernel is a loop nest over S after *collapsing*: adjacent axes that
every operand treats alike (all full, or all broadcast; all reduced or all kept) merge into one,
so `x + b` with x f32[64,512] and b f32[512] is a 2-deep nest whose inner loop is contiguous
(LLVM vectorizes it) and reads b[i1]. Each operand arrives flattened and is read at the linear
offset its own shape gives (stride 0 along broadcast axes).

Reductions accumulate in a local scalar over the innermost reduced loop (vectorized: the
accumulation alone carries the `reassoc` fast-math flag, see `accum`) and fold into their output
slot. No other instruction of a kernel has value-changing fast-math flags, so a value recomputed
in another loop or kernel has the same bits. The
outermost loop is split into chunks [lo, hi) that run on different threads; when the outermost
axis is reduced, chunk c accumulates into row c of a partial-result buffer that the driver
combines.

Long float sums accumulate in blocks (partial sums of SUM_BLOCK elements) so rounding error
grows with the block length, not the whole length.

Row kernels (`emit_row_kernel`): when a kernel reads its own reductions over trailing axes, it
loops over rows and makes one pass over each row per stage, recomputing what a pass needs.

Every kernel starts with the IR lines it implements, as comments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from graphc.ir import Aval, Node, dtype_name
from graphc.ops import REGISTRY
from graphc.ops.registry import Emitter, Fusion, MathCall, Template

_NP_TYPES = {
    "f32": "np.float32",
    "f64": "np.float64",
    "i8": "np.int8",
    "i16": "np.int16",
    "i32": "np.int32",
    "i64": "np.int64",
    "u8": "np.uint8",
    "u16": "np.uint16",
    "u32": "np.uint32",
    "u64": "np.uint64",
    "bool": "np.bool_",
}
SUPPORTED_DTYPES = frozenset(_NP_TYPES)
_NB_TYPES = {
    "bool": "_nb.boolean",
    **{
        n: f"_nb.{n}"
        for n in (
            "float32",
            "float64",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
        )
    },
}


def np_type(dt: np.dtype) -> str:
    return _NP_TYPES[dtype_name(dt)]


@dataclass
class LoopPlan:
    """The collapsed loop nest of one fused kernel."""

    dims: list[int]  # sizes of the collapsed axes
    red: list[bool]  # per collapsed axis: reduced?
    in_strides: list[list[int]]  # per operand, per collapsed axis (0: broadcast)
    out_strides: list[int]  # linear strides of a full-space result
    red_strides: list[int]  # linear strides of a reduction result (0 along reduced axes)
    red_size: int  # elements of a reduction result

    @property
    def outer_reduced(self) -> bool:
        return bool(self.dims) and self.red[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64)) if self.dims else 1


def _c_strides(shape: list[int]) -> list[int]:
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc if s != 1 else 0)
        acc *= s
    return out[::-1]


def plan_loops(
    space: tuple[int, ...], operand_shapes: list[tuple[int, ...]], red_axes: tuple[int, ...]
) -> LoopPlan:
    """Collapse the iteration space; see the module docstring."""
    nd = len(space)
    keys: list[tuple] = []
    sizes: list[int] = []
    for j in range(nd):
        if space[j] == 1:
            continue  # a unit axis changes no offset
        full = []
        for shp in operand_shapes:
            k = j - (nd - len(shp))
            full.append(k >= 0 and shp[k] == space[j])
        key = (tuple(full), j in red_axes)
        if keys and keys[-1] == key:
            sizes[-1] *= space[j]
        else:
            keys.append(key)
            sizes.append(space[j])
    red = [k[1] for k in keys]
    in_strides = []
    for i in range(len(operand_shapes)):
        eff = [s if k[0][i] else 1 for s, k in zip(sizes, keys, strict=True)]
        in_strides.append(_c_strides(eff))
    kept = [1 if r else s for s, r in zip(sizes, red, strict=True)]
    return LoopPlan(
        sizes,
        red,
        in_strides,
        _c_strides(sizes),
        _c_strides(kept),
        int(np.prod(kept, dtype=np.int64)) if kept else 1,
    )


_REDUCE_INIT = {"sum": 0, "prod": 1, "max": "-inf", "min": "inf"}
SUM_BLOCK = 4096  # elements per partial sum in long float reductions


def _combine(kind: str, acc: str, v: str) -> str:
    # sums and products may be reassociated (vectorized) only here, through accum's helpers
    if kind == "sum":
        return f"_acc_add({acc}, {v})"
    if kind == "prod":
        return f"_acc_mul({acc}, {v})"
    if kind == "max":  # NaN wins, as in np.max
        return f"{acc} if ({acc} >= {v} or {acc} != {acc}) else {v}"
    return f"{acc} if ({acc} <= {v} or {acc} != {acc}) else {v}"


# block results combine in a three-level cascade: level 1 sums up to CASCADE blocks, level 2 up
# to CASCADE level-1 sums, the accumulator the rest. With 4096-element blocks a sum of 1e8
# elements adds at most 64 values at each level and 6 in the accumulator, so its error bound is
# a few hundred ulps in the worst case and its typical error close to pairwise summation's.
CASCADE = 64
ROW_BLOCK_MIN = 32  # shorter innermost reduced loops are not worth a fold per pass


def _cascade_init(ind: str, sums: list[int], idents: dict[int, str]) -> list[str]:
    out = [f"{ind}nblk = 0"]
    for k in sums:
        out += [f"{ind}lv1_{k} = {idents[k]}", f"{ind}lv2_{k} = {idents[k]}"]
    return out


def _fold_block(ind: str, sums: list[int], kinds: dict[int, str], idents: dict) -> list[str]:
    """Lines folding each block result blk{k} into the cascade."""
    out = [f"{ind}lv1_{k} = {_combine(kinds[k], f'lv1_{k}', f'blk{k}')}" for k in sums]
    out.append(f"{ind}nblk += 1")
    out.append(f"{ind}if (nblk & {CASCADE - 1}) == 0:")
    for k in sums:
        out.append(f"{ind}    lv2_{k} = {_combine(kinds[k], f'lv2_{k}', f'lv1_{k}')}")
        out.append(f"{ind}    lv1_{k} = {idents[k]}")
    out.append(f"{ind}    if (nblk & {CASCADE * CASCADE - 1}) == 0:")
    for k in sums:
        out.append(f"{ind}        acc{k} = {_combine(kinds[k], f'acc{k}', f'lv2_{k}')}")
        out.append(f"{ind}        lv2_{k} = {idents[k]}")
    return out


def _cascade_finish(ind: str, sums: list[int], kinds: dict[int, str]) -> list[str]:
    out = []
    for k in sums:
        rest = _combine(kinds[k], f"lv2_{k}", f"lv1_{k}")
        out.append(f"{ind}acc{k} = {_combine(kinds[k], f'acc{k}', f'({rest})')}")
    return out


def reduce_identity(kind: str, dt: np.dtype):
    """The starting value of a reduction of dtype dt."""
    if kind in ("sum", "prod"):
        return dt.type(_REDUCE_INIT[kind])
    if dt.kind == "f":
        return dt.type(-np.inf if kind == "max" else np.inf)
    if dt == np.bool_:
        return np.bool_(kind == "min")
    info = np.iinfo(dt)
    return dt.type(info.min if kind == "max" else info.max)


# mathlib names whose NumPy function is spelled differently (Numba knows only NumPy's names)


@dataclass
class EmitContext:
    """What op emitters use to write scalar code: typed literals, math functions, casts."""

    consts: dict[str, str] = field(default_factory=dict)  # source text -> global name
    imports: set[str] = field(default_factory=set)
    prefix: str = "_c"

    def lit(self, value, dt: np.dtype) -> str:
        """A global name bound to a constant of dtype dt (numba types it exactly)."""
        dt = np.dtype(dt)
        if dt == np.bool_:
            return "True" if bool(value) else "False"
        v = dt.type(value)
        if dt.kind == "f":
            text = (
                "np.inf"
                if v == np.inf
                else "-np.inf"
                if v == -np.inf
                else "np.nan"
                if v != v
                else repr(float(v))
            )
        else:
            text = str(int(v))
        src = f"{np_type(dt)}({text})"
        if src not in self.consts:
            self.consts[src] = f"{self.prefix}{len(self.consts)}"
        return self.consts[src]

    def math(
        self, fn: str, dt: np.dtype, x: str, *more: str, fallback: str | Callable | None = None
    ) -> str:
        """A call of math function `fn`: graphc's vectorisable version where mathlib has one for
        `dt`, else the op entry's `fallback` (see ops.registry.MathCall), else np.<fn>."""
        from graphc.codegen import mathlib_name

        args = (x, *more)
        name = mathlib_name(fn, dt)
        if name is not None:
            self.imports.add(name)
            return f"{name}({', '.join(args)})"
        if isinstance(fallback, str):
            return fallback.format(*args)
        if fallback is not None:
            return fallback(self, dt, *args)
        return f"np.{fn}({', '.join(args)})"

    def scalar_type(self, dt: np.dtype) -> str:
        """The NumPy scalar type's name in generated code, e.g. np.float32."""
        return np_type(dt)

    def cast(self, x: str, src: np.dtype, dst: np.dtype) -> str:
        if src == dst:
            return x
        if dst == np.bool_:
            return f"({x} != 0)"
        return f"{np_type(dst)}({x})"

    def integer_pow(self, x: str, n: int, dt: np.dtype) -> str:
        if n == 0:
            return self.lit(1, dt)
        k = abs(n)
        # repeated squaring, written out: x**5 = (x*x)*(x*x)*x
        terms, p, sq = [], x, 1
        while k:
            if k & 1:
                terms.append(p)
            k >>= 1
            if k:
                p = f"({p} * {p})"
                sq += 1
        expr = " * ".join(terms)
        return f"({self.lit(1, dt)} / ({expr}))" if n < 0 else f"({expr})"


def emit_op(e: EmitContext, n: Node, args: list[str]) -> str:
    """The scalar expression for node `n` from its operands' expressions, as its op entry's
    lowering says."""
    d = REGISTRY[n.op]
    low = d.lowering
    if d.fusion is Fusion.VIEW:
        return args[0]
    if isinstance(low, Template):
        return low.text.format(*args)
    if isinstance(low, MathCall):
        return e.math(low.name, n.dtype, *args, fallback=low.fallback)
    if isinstance(low, Emitter):
        return low.fn(e, n, *args)
    raise NotImplementedError(f"{n.op} has no scalar lowering")


def _operands(e: EmitContext, m: Node, names: dict[int, str]) -> list[str]:
    """Scalar expressions for m's operands: typed literals for constants, else their names."""
    return [
        e.lit(i.attrs["value"].value[()], i.dtype) if i.op == "const" else names[id(i)]
        for i in m.inputs
    ]


def _index(strides: list[int], idx: list[str], row: str = "") -> str:
    """A flat index expression, typed unsigned by `_ix`: Numba then omits NumPy's negative-index
    wraparound test, which would otherwise stop LLVM vectorising the loop (measured: 7-13x)."""
    terms = [row] if row else []
    for s, i in zip(strides, idx, strict=True):
        if s == 1:
            terms.append(i)
        elif s:
            terms.append(f"{i} * {s}")
    return f"_ix({' + '.join(terms)})" if terms else "0"


@dataclass
class Kernel:
    """One generated kernel and how the driver calls it."""

    name: str
    source: str
    plan: LoopPlan
    n_inputs: int
    full_outputs: list[int]  # body output positions computed at full size
    red_outputs: list[tuple[int, str]]  # (body output position, reduction kind)
    out_avals: list[Aval]
    work: int  # elements × ops: decides threading
    signature: str = ""  # Numba signature (source): compiled eagerly at import
    row_outputs: list[int] = field(default_factory=list)  # written once per row (row kernels)
    n0: int = 0  # iterations of the outermost (chunked) loop


def _signature(body, result_positions: list[int]) -> str:
    # operands are read-only (constants and broadcast views are), results writable
    ins = [f"_ro({_NB_TYPES[np.dtype(i.dtype).name]})" for i in body.inputs]
    outs = [f"_rw({_NB_TYPES[np.dtype(body.outputs[k].dtype).name]})" for k in result_positions]
    return "_nb.void(" + ", ".join(ins + outs + ["_nb.int64"] * 3) + ")"


def _is_red(m: Node) -> bool:
    return REGISTRY[m.op].fusion is Fusion.REDUCTION


def needs_rows(body) -> bool:
    """Does this kernel read reduction results (or row values) inside its own loop?"""
    reds = {id(m) for m in body.equations if _is_red(m)}
    if not reds:
        return False
    space = tuple(next(m for m in body.equations if _is_red(m)).inputs[0].shape)
    return any(id(i) in reds for m in body.equations for i in m.inputs) or any(
        not _is_red(m) and tuple(m.shape) != space for m in body.equations
    )


def emit_row_kernel(name: str, node: Node, e: EmitContext, ir_lines: list[str]) -> Kernel:
    """A kernel whose body reads its own reductions: for each row (the kept, outer axes) it
    makes one pass over the reduced axes per stage. Stage s computes the reductions that only
    need results of stages < s; values a stage needs are recomputed in it rather than stored.
    Per-row values (reduction results and what is computed from them) are scalars between
    passes.

    A pass or per-row value sits right inside the last kept loop it depends on, not in the
    innermost one: a value that is the same in every row is computed once, and no reduction
    loop is nested in a loop its loads do not depend on (LLVM's loop passes take time
    exponential in the length of a fully unrolled max/min select chain in such a nest:
    measured 68 s for a 16-element row, unbounded for 32)."""
    body = node.attrs["body"]
    members = body.equations
    reds = [m for m in members if _is_red(m)]
    space = tuple(reds[0].inputs[0].shape)
    axes = tuple(reds[0].attrs["axes"])
    plan = plan_loops(space, [tuple(i.shape) for i in body.inputs], axes)
    nk = len(plan.red) - sum(plan.red)  # collapsed kept axes come first: the rows
    nd = len(plan.dims)
    idx = [f"i{j}" for j in range(nd)]
    kidx = idx[:nk]
    full = {id(m) for m in members if not _is_red(m) and tuple(m.shape) == space}

    # stage bookkeeping: loop(m) for full values, done(m) for per-row values
    loop: dict[int, int] = {}
    done: dict[int, int] = {}
    for m in members:
        dep_loop = 1
        dep_done = 0
        for i in m.inputs:
            if id(i) in full:
                dep_loop = max(dep_loop, loop[id(i)])
            elif id(i) in done:
                dep_loop = max(dep_loop, done[id(i)] + 1)
                dep_done = max(dep_done, done[id(i)])
        if _is_red(m):
            done[id(m)] = loop.get(id(m.inputs[0]), 1)  # an operand: any pass can read it
        elif id(m) in full:
            loop[id(m)] = dep_loop
        else:
            done[id(m)] = dep_done
    stages = max(list(loop.values()) + list(done.values()) + [1])

    # the kept axes each value varies along, and so the loop depth it is computed at
    varies: dict[int, set[int]] = {}
    for k, i in enumerate(body.inputs):
        varies[id(i)] = {j for j in range(nk) if plan.in_strides[k][j]}
    for m in members:
        varies[id(m)] = set().union(*(varies.get(id(i), set()) for i in m.inputs))

    def depth(m: Node) -> int:
        return max(varies[id(m)], default=-1) + 1

    out_pos = {id(o): k for k, o in enumerate(body.outputs)}
    full_outputs = [k for k, o in enumerate(body.outputs) if id(o) in full]
    row_outputs = [k for k, o in enumerate(body.outputs) if id(o) not in full]
    params = (
        [f"x{k}" for k in range(len(body.inputs))]
        + [f"o{k}" for k in full_outputs]
        + [f"r{k}" for k in row_outputs]
    )
    in_name = {id(i): f"a{k}" for k, i in enumerate(body.inputs)}
    in_pos = {id(i): k for k, i in enumerate(body.inputs)}

    def value_line(m: Node, names: dict[int, str]) -> str:
        return emit_op(e, m, _operands(e, m, names))

    # code per loop depth (0: before the row loops), indented relative to its depth
    levels: list[list[str]] = [[] for _ in range(nk + 1)]
    stores: list[str] = []  # per-row results, in the innermost row loop
    # deterministic names (the module's file name is a hash of its source)
    accn = {id(m): f"acc{k}" for k, m in enumerate(members) if _is_red(m)}
    row_names: dict[int, str] = {}

    def row_values(stage: int) -> None:
        # per-row values whose inputs are complete after `stage` passes
        for m in members:
            if id(m) in done and not _is_red(m) and done[id(m)] == stage:
                code = levels[depth(m)]
                names = dict(row_names)
                for i in m.inputs:
                    if id(i) in in_pos and id(i) not in names:
                        k = in_pos[id(i)]
                        code.append(
                            f"{in_name[id(i)]}r = x{k}[{_index(plan.in_strides[k][:nk], kidx)}]"
                        )
                        names[id(i)] = in_name[id(i)] + "r"
                v = f"w{len(row_names)}"
                code.append(f"{v} = {value_line(m, names)}")
                row_names[id(m)] = v
        for m in members:
            if id(m) in out_pos and id(m) not in full and done.get(id(m)) == stage:
                k = out_pos[id(m)]
                stores.append(f"r{k}[{_index(plan.red_strides[:nk], kidx)}] = {row_names[id(m)]}")

    def emit_pass(sinks: list[Node], code: list[str]) -> None:
        """One pass over the reduced axes computing `sinks` (reductions, full outputs)."""
        need: set[int] = set()  # full values the pass needs: ancestors of its sinks
        stack = list(sinks)
        while stack:
            m = stack.pop()
            for i in m.inputs:
                if id(i) in full and id(i) not in need:
                    need.add(id(i))
                    stack.append(i)
            if id(m) in full:
                need.add(id(m))
        stage_reds = [m for m in sinks if _is_red(m)]
        kinds: dict[int, str] = {}
        idents: dict[int, str] = {}
        for m in stage_reds:
            kind = REGISTRY[m.op].reduction
            k = int(accn[id(m)][3:])
            kinds[k] = kind
            idents[k] = e.lit(reduce_identity(kind, m.dtype), m.dtype)
            code.append(f"{accn[id(m)]} = {idents[k]}")
        # long float sums: blocks and a cascade, as in emit_kernel
        sums = [
            int(accn[id(m)][3:])
            for m in stage_reds
            if kinds[int(accn[id(m)][3:])] in ("sum", "prod") and m.dtype.kind == "f"
        ]
        split = bool(sums) and nd > nk and plan.dims[-1] > SUM_BLOCK
        row_unit = bool(sums) and not split and nd - nk >= 2 and plan.dims[-1] >= ROW_BLOCK_MIN
        cascaded = split or row_unit
        if cascaded:
            code += _cascade_init("", sums, idents)
        inner = ""
        for j in range(nk, nd):
            if split and j == nd - 1:
                code.append(f"{inner}for b{j} in range(0, {plan.dims[j]}, {SUM_BLOCK}):")
                inner += "    "
                code += [f"{inner}blk{k} = {idents[k]}" for k in sums]
                code.append(
                    f"{inner}for i{j} in range(b{j}, min(b{j} + {SUM_BLOCK}, {plan.dims[j]})):"
                )
            else:
                if row_unit and j == nd - 1:
                    code += [f"{inner}blk{k} = {idents[k]}" for k in sums]
                code.append(f"{inner}for i{j} in range({plan.dims[j]}):")
            inner += "    "
        names = dict(row_names)
        used = {id(i) for m in members if id(m) in need for i in m.inputs if id(i) in in_pos}
        used |= {id(m.inputs[0]) for m in stage_reds if id(m.inputs[0]) in in_pos}
        for i in body.inputs:
            if id(i) in used:
                k = in_pos[id(i)]
                code.append(f"{inner}{in_name[id(i)]} = x{k}[{_index(plan.in_strides[k], idx)}]")
                names[id(i)] = in_name[id(i)]
        for m in members:
            if id(m) in need:
                v = f"v{len(names)}"
                code.append(f"{inner}{v} = {value_line(m, names)}")
                names[id(m)] = v
        for m in sinks:
            if id(m) in full:
                code.append(
                    f"{inner}o{out_pos[id(m)]}[{_index(plan.out_strides, idx)}] = {names[id(m)]}"
                )
        for m in stage_reds:
            kind = REGISTRY[m.op].reduction
            k = int(accn[id(m)][3:])
            acc = f"blk{k}" if cascaded and k in sums else accn[id(m)]
            code.append(f"{inner}{acc} = {_combine(kind, acc, names[id(m.inputs[0])])}")
        if cascaded:
            code += _fold_block(inner[:-4], sums, kinds, idents)
            code += _cascade_finish("", sums, kinds)

    row_values(0)
    for stage in range(1, stages + 1):
        sinks = [
            m
            for m in members
            if (_is_red(m) and done[id(m)] == stage)
            or (id(m) in full and id(m) in out_pos and loop[id(m)] == stage)
        ]
        # one pass per depth: full outputs are stored in the innermost row loop
        by_depth: dict[int, list[Node]] = {}
        for m in sinks:
            by_depth.setdefault(depth(m) if _is_red(m) else nk, []).append(m)
        for d in sorted(by_depth):
            emit_pass(by_depth[d], levels[d])
        for m in sinks:
            if _is_red(m):
                row_names[id(m)] = accn[id(m)]
        row_values(stage)

    src: list[str] = [f"def {name}({', '.join(params)}, lo, hi, chunk):"]
    src += [f"    # {line}" for line in ir_lines]
    ind = "    "
    if not nk or levels[0]:  # work outside the row loops: not for an empty chunk
        src += [f"{ind}if lo >= hi:", f"{ind}    return"]
    src += [ind + ln for ln in levels[0]]
    for j in range(nk):
        start, stop = ("lo", "hi") if j == 0 else ("0", str(plan.dims[j]))
        src.append(f"{ind}for i{j} in range({start}, {stop}):")
        ind += "    "
        src += [ind + ln for ln in levels[j + 1]]
    src += [ind + st for st in stores]
    sig = _signature(body, full_outputs + row_outputs)
    n0 = plan.dims[0] if nk else 1
    return Kernel(
        name,
        "\n".join(src),
        plan,
        len(body.inputs),
        full_outputs,
        [],
        [o.aval for o in body.outputs],
        plan.size * max(1, len(members)) * stages,
        sig,
        row_outputs,
        n0,
    )


def emit_kernel(name: str, node: Node, e: EmitContext, ir_lines: list[str]) -> Kernel:
    """Generate the kernel for fused node `node` (its attrs["body"])."""
    body = node.attrs["body"]
    members = body.equations
    if needs_rows(body):
        return emit_row_kernel(name, node, e, ir_lines)
    reds = [m for m in members if _is_red(m)]
    space = tuple(reds[0].inputs[0].shape) if reds else None
    if space is None:
        space = tuple(body.outputs[0].shape)
        for m in members:
            if len(m.shape) > len(space) or (
                len(m.shape) == len(space) and m.aval.size > int(np.prod(space))
            ):
                space = tuple(m.shape)
    red_axes = tuple(reds[0].attrs["axes"]) if reds else ()
    plan = plan_loops(space, [tuple(i.shape) for i in body.inputs], red_axes)
    nd = len(plan.dims)
    idx = [f"i{j}" for j in range(nd)]

    out_pos = {id(o): k for k, o in enumerate(body.outputs)}
    full_outputs = [k for k, o in enumerate(body.outputs) if not _is_red(o)]
    red_outputs = [(out_pos[id(r)], REGISTRY[r.op].reduction) for r in reds if id(r) in out_pos]
    params = (
        [f"x{k}" for k in range(len(body.inputs))]
        + [f"o{k}" for k in full_outputs]
        + [f"r{k}" for k, _ in red_outputs]
    )

    # scalar code for the body, innermost
    names: dict[int, str] = {}
    lines: list[str] = []
    for k, i in enumerate(body.inputs):
        names[id(i)] = f"a{k}"
    loads = [f"a{k} = x{k}[{_index(plan.in_strides[k], idx)}]" for k in range(len(body.inputs))]
    red_vals: dict[int, str] = {}
    for m in members:
        if _is_red(m):
            red_vals[id(m)] = names[id(m.inputs[0])]
            continue
        args = _operands(e, m, names)
        v = f"v{len(names)}"
        names[id(m)] = v
        lines.append(f"{v} = {emit_op(e, m, args)}")
    stores = [
        f"o{k}[{_index(plan.out_strides, idx)}] = {names[id(body.outputs[k])]}"
        for k in full_outputs
    ]

    # reductions: local accumulators over the innermost reduced loops
    inner_red = 0
    for r in reversed(plan.red):
        if not r:
            break
        inner_red += 1
    acc_level = nd - inner_red  # loops >= acc_level accumulate into locals
    src: list[str] = [f"def {name}({', '.join(params)}, lo, hi, chunk):"]
    src += [f"    # {line}" for line in ir_lines]
    ind = "    "
    # long float sums and products accumulate block by block, and the block results combine
    # through a cascade (see _fold_block): rounding error then grows with the block length plus
    # a few levels, not with the whole length, as in NumPy's pairwise summation
    sums = [
        k
        for k, kind in red_outputs
        if kind in ("sum", "prod") and body.outputs[k].dtype.kind == "f"
    ]
    kinds = dict(red_outputs)
    split = bool(sums) and inner_red > 0 and plan.dims[-1] > SUM_BLOCK
    # several reduced axes, a long enough innermost one: each pass over it is one block
    row_unit = bool(sums) and not split and inner_red >= 2 and plan.dims[-1] >= ROW_BLOCK_MIN
    cascaded = split or row_unit
    idents = {
        k: e.lit(reduce_identity(kind, body.outputs[k].dtype), body.outputs[k].dtype)
        for k, kind in red_outputs
    }
    used_inputs = _used(lines + stores, len(body.inputs), red_vals)
    # kept axes no load depends on: each reduction is computed once and its result stored
    # along them (see _spread)
    spread = (
        _invariant_axes(plan, used_inputs, range(acc_level)) if red_outputs and inner_red else []
    )
    # a max or min over an axis no load varies along is the max or min of one element of it;
    # full-size results are stored along that axis
    skip = []
    if red_outputs and all(kind in ("max", "min") for _, kind in red_outputs):
        skip = _invariant_axes(plan, used_inputs, range(nd), reduced=True)
    if 0 in spread or 0 in skip:
        src.append(f"{ind}if lo >= hi:\n{ind}    return")
    for j in range(nd):
        if j == acc_level and red_outputs and inner_red:
            for k, _ in red_outputs:
                src.append(f"{ind}acc{k} = {idents[k]}")
            if cascaded:
                src += _cascade_init(ind, sums, idents)
        if j in spread or j in skip:
            continue
        start, stop = ("lo", "hi") if j == 0 else ("0", str(plan.dims[j]))
        if split and j == nd - 1:
            src.append(f"{ind}for b{j} in range({start}, {stop}, {SUM_BLOCK}):")
            ind += "    "
            src += [f"{ind}blk{k} = {idents[k]}" for k in sums]
            src.append(f"{ind}for i{j} in range(b{j}, min(b{j} + {SUM_BLOCK}, {stop})):")
        else:
            if row_unit and j == nd - 1:
                src += [f"{ind}blk{k} = {idents[k]}" for k in sums]
            src.append(f"{ind}for i{j} in range({start}, {stop}):")
        ind += "    "
    if nd == 0:
        src.append(f"{ind}if lo >= hi:\n{ind}    return")
        if red_outputs and inner_red:
            for k, _ in red_outputs:
                src.append(f"{ind}acc{k} = {idents[k]}")
    src += [ind + ld for k, ld in enumerate(loads) if k in used_inputs]
    src += [ind + ln for ln in lines]
    src += _spread(ind, sorted(spread + skip), plan.dims, stores)
    red_out_node = {out_pos[id(r)]: r for r in reds if id(r) in out_pos}
    row = f"chunk * {plan.red_size}" if plan.outer_reduced else ""
    if red_outputs and inner_red == 0:
        # the innermost axis is kept (e.g. a column sum): accumulate straight into the slot
        for k, kind in red_outputs:
            v = red_vals[id(red_out_node[k])]
            slot = f"r{k}[{_index(plan.red_strides, idx, row)}]"
            src.append(f"{ind}{slot} = {_combine(kind, slot, v)}")
    elif red_outputs:
        for k, kind in red_outputs:
            v = red_vals[id(red_out_node[k])]
            a = f"blk{k}" if cascaded and k in sums else f"acc{k}"
            src.append(f"{ind}{a} = {_combine(kind, a, v)}")
        if cascaded:
            src += _fold_block(ind[:-4], sums, kinds, idents)
        # close the accumulating loops and fold the locals into their slots
        ind = "    " * (acc_level - len(spread) - sum(j < acc_level for j in skip) + 1)
        if cascaded:
            src += _cascade_finish(ind, sums, kinds)
        ridx = _index(plan.red_strides[:acc_level], idx[:acc_level], row)
        folds = []
        for k, kind in red_outputs:
            slot = f"r{k}[{ridx}]"
            folds.append(f"{slot} = {_combine(kind, slot, f'acc{k}')}")
        src += _spread(ind, spread, plan.dims, folds)
    work = plan.size * max(1, len(members))
    sig = _signature(body, full_outputs + [k for k, _ in red_outputs])
    return Kernel(
        name,
        "\n".join(src),
        plan,
        len(body.inputs),
        full_outputs,
        red_outputs,
        [o.aval for o in body.outputs],
        work,
        sig,
        n0=plan.dims[0] if plan.dims else 1,
    )


def _invariant_axes(
    plan: LoopPlan, inputs: Iterable[int], axes: Iterable[int], *, reduced: bool = False
) -> list[int]:
    """Kept (or, with `reduced`, reduced) axes among `axes` along which none of `inputs` varies.

    A reduction nested in a loop its loads do not depend on is computed once and stored along
    that loop instead: besides saving the repeated work, LLVM's loop passes take time
    exponential in the length of a fully unrolled max/min select chain inside such a loop
    (measured: 68 s for a 16-element row, unbounded for 32)."""
    ins = list(inputs)
    return [
        j for j in axes if plan.red[j] == reduced and all(plan.in_strides[k][j] == 0 for k in ins)
    ]


def _spread(ind: str, axes: list[int], dims: list[int], stmts: list[str]) -> list[str]:
    """`stmts` (stores) inside loops over the invariant kept `axes`, at indentation `ind`."""
    if not stmts:
        return []
    out = []
    for j in axes:
        start, stop = ("lo", "hi") if j == 0 else ("0", str(dims[j]))
        out.append(f"{ind}for i{j} in range({start}, {stop}):")
        ind += "    "
    return out + [ind + st for st in stmts]


def _used(lines: list[str], n: int, red_vals: dict[int, str]) -> set[int]:
    text = "\n".join(lines) + " " + " ".join(red_vals.values())
    import re

    return {k for k in range(n) if re.search(rf"\ba{k}\b", text)}
