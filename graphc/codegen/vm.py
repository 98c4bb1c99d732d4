"""A precompiled tape machine for very large elementwise computations.

Compiling a kernel costs Numba/LLVM time roughly in proportion to its size: a 2,000-op chain and
its gradient (7,000 ops) would take a minute to compile as specialised kernels. Those graphs run
instead on a *tape machine*: one Numba function per dtype, generated from the op registry's
own emitters (`generate_source`), compiled once and kept in Numba's disk cache. A graph is
translated into a tape of register instructions; no per-graph compilation happens at all.

The machine walks the iteration space in blocks of `block` elements (`block_size`: enough
elements that a dependent chain keeps several vectors in flight, few enough that the register
file stays in cache); for each block it runs every instruction as a short loop over the block,
which LLVM vectorises. Several consecutive fused kernels over the same space run as one tape
("batch"), so values passed between them stay in registers instead of going through memory. The
sin and cos of one value run as one instruction ("sincos"), wherever they are in the batch.

Values of the group's float dtype and booleans (stored as 0/1) are supported; operands must be
full-size or single elements; reductions must be over the whole space (sum, max, min).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.ir import GraphcError, Node, TupleAval, dtype_name
from graphc.ops import REGISTRY, Fusion, Tape

# opcode numbers: 0..9 are structural, the ops the registry marks for the machine (Tape) follow
# from 10 in registration order, so an op registered later extends the table
LOAD, LOAD1, STORE, CONST, ACC_SUM, ACC_MAX, ACC_MIN, COPY_OP, SINCOS = 0, 1, 2, 3, 4, 5, 6, 7, 8
FIRST_OP = 10
# instructions written out here (Tape.OWN): the op's scalar expression on registers a, ub, c
# (and attribute b), and the instruction's a, b, c fields from the node and its operand registers
_OWN: dict[str, tuple[str, Callable[[Node, list[int]], list[int]]]] = {
    "integer_pow": ("R[a, i] ** b", lambda n, regs: [regs[0], n.attrs["n"], 0]),
    # the condition register holds 0 or 1
    "where": ("R[ub, i] if R[a, i] != 0 else R[c, i]", lambda n, regs: regs[:3]),
}
_TABLE: tuple[tuple[str, ...], dict[str, int]] = ((), {})


def tape_ops() -> tuple[str, ...]:
    """The ops the machine runs as instructions of their own, in opcode order."""
    return opcodes()[0]


def opcodes() -> tuple[tuple[str, ...], dict[str, int]]:
    """(ops, op -> opcode), derived from the registry (rebuilt when the registry changes)."""
    global _TABLE
    names = tuple(n for n, d in REGISTRY.items() if d.tape in (Tape.MATH, Tape.LOGIC, Tape.OWN))
    if names != _TABLE[0]:
        _TABLE = (names, {op: FIRST_OP + i for i, op in enumerate(names)})
    return _TABLE


# Block size (elements): a block runs each instruction as a loop over its elements, so a long
# dependent chain (x = tanh(x) ...) has only block / vector-width independent vector operations
# in flight at a time: below MIN_BLOCK the math functions' latency, not their throughput, sets
# the pace (measured, float32 tanh chain: 32 elements 0.83 ns/element, 64 0.45, 128 0.41).
# Above it, larger blocks only save per-instruction dispatch; the register file should stay in
# L2 (MAX_REG_BYTES per thread), but latency matters more than cache: registers are mostly
# written and read back in order, which the prefetchers follow.
MIN_BLOCK, MAX_BLOCK = 64, 512
MAX_REG_BYTES = 1 << 20


# ---------------------------------------------------------------------------------------------
# the machine's source, generated from the registry's emitters


def _expr(op: str, dt: np.dtype, args: list[str]) -> str:
    """The scalar expression for `op` on float-typed register values (booleans are 0/1)."""
    from graphc.codegen.kernels import emit_op, np_type
    from graphc.ir import Aval, make_input

    e = _CTX
    d = REGISTRY[op]
    logic = d.tape is Tape.LOGIC
    in_dt = np.dtype(np.bool_) if logic else dt
    fake_in = [make_input(Aval((), in_dt)) for _ in args]
    out = d.shape(*[i.aval for i in fake_in])
    node = Node(op, fake_in, {}, out)
    ops_args = [f"({a} != 0)" if logic else a for a in args]
    text = emit_op(e, node, ops_args)
    if out.dtype == np.bool_:
        text = f"{np_type(dt)}({text})"
    return text


_CTX = None


def generate_source() -> str:
    """The machine's module source (both dtypes)."""
    global _CTX
    from graphc.codegen.kernels import EmitContext, np_type

    parts = [_VM_HEADER, f"OPS = {tape_ops()!r}  # opcode {FIRST_OP} onwards, in order\n"]
    all_imports: set[str] = set()
    bodies = []
    for dt in (np.dtype(np.float32), np.dtype(np.float64)):
        _CTX = EmitContext(prefix=f"_c{dtype_name(dt)}_")
        t = np_type(dt)
        lines = []
        ops, code_of = opcodes()
        regs = ["R[a, i]", "R[ub, i]", "R[c, i]"]
        for op in ops:
            d = REGISTRY[op]
            if d.tape is Tape.OWN:
                expr = _OWN[op][0]
            else:
                if d.arity is None or d.arity > len(regs):
                    raise GraphcError(f"op {op!r}: the tape machine runs ops of 1 to 3 operands")
                expr = _expr(op, dt, regs[: d.arity])
            lines.append(
                f"            elif op == {code_of[op]}:  # {op}\n"
                f"                for i in range(m):\n"
                f"                    R[d, i] = {expr}"
            )
        lines.append(
            f"            elif op == {COPY_OP}:  # copies\n"
            f"                for i in range(m):\n"
            f"                    R[d, i] = R[a, i]"
        )
        # sin and cos of one value: LLVM merges the two inlined bodies' common range reduction
        # and polynomials, so both cost about one
        lines.append(
            f"            elif op == {SINCOS}:  # sin into d, cos into c\n"
            f"                for i in range(m):\n"
            f"                    v = R[a, i]\n"
            f"                    R[d, i] = {_expr('sin', dt, ['v'])}\n"
            f"                    R[c, i] = {_expr('cos', dt, ['v'])}"
        )
        consts = "".join(f"{name} = {src}\n" for src, name in _CTX.consts.items())
        all_imports |= _CTX.imports
        name = f"vm_{dtype_name(dt)}"
        body = _VM_FN.format(name=name, t=t, ptr=f"_ptr_{dtype_name(dt)}", ops="\n".join(lines))
        bodies.append(consts + "\n" + body)
    if all_imports:
        parts.append("from graphc.codegen.mathlib import " + ", ".join(sorted(all_imports)))
        # Numba's disk cache of this module is keyed on this file alone: naming the math
        # functions' source here makes a change to them a change to this file, so the cached
        # machine is rebuilt instead of keeping the old functions inlined.
        parts.append(f"# mathlib.py sha256: {_mathlib_digest()}")
    parts.append(_PTRS)
    parts += bodies
    return "\n".join(parts) + "\n"


_VM_HEADER = '''"""graphc's tape machine, generated by graphc.codegen.vm.generate_source.

`make vm` (or graphc.codegen.vm.write_source()) regenerates it; a test checks it is current.
"""
# ruff: noqa
import math

import numpy as np
from numba import carray, njit, types, uint64
from numba.extending import intrinsic
'''

_PTRS = """

def _ptr_intrinsic(nbtype):
    @intrinsic
    def ptr(typingctx, addr):
        sig = types.CPointer(nbtype)(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(types.CPointer(nbtype)))

        return sig, codegen

    return ptr


_ptr_f32 = _ptr_intrinsic(types.float32)
_ptr_f64 = _ptr_intrinsic(types.float64)
"""

_VM_FN = '''

@njit(cache=True, nogil=True, error_model="numpy", fastmath={{"contract"}})
def {name}(code, consts, ins, outs, acc, n, nregs, block, blo, bhi, chunk):
    """Run tape `code` over blocks [blo, bhi) of an n-element space."""
    R = np.empty((nregs, block), {t})
    nacc = acc.shape[1]
    zero = {t}(0)
    lv1 = np.zeros(nacc, {t})
    lv2 = np.zeros(nacc, {t})
    summed = np.zeros(nacc, np.bool_)
    for blk in range(blo, bhi):
        s = blk * block
        m = min(block, n - s)
        for pc in range(code.shape[0]):
            op = code[pc, 0]
            # register numbers typed unsigned, as are the element indices below: Numba then
            # omits the negative-index wraparound test that would stop LLVM vectorising
            d = uint64(code[pc, 1])
            a = uint64(code[pc, 2])
            b = code[pc, 3]
            ub = uint64(b)
            c = uint64(code[pc, 4])
            if op == 0:  # load input a
                x = carray({ptr}(ins[a]), (n,))
                for i in range(m):
                    R[d, i] = x[uint64(s + i)]
            elif op == 1:  # load a one-element input, broadcast
                x = carray({ptr}(ins[a]), (1,))
                v = x[0]
                for i in range(m):
                    R[d, i] = v
            elif op == 2:  # store register a to output d
                y = carray({ptr}(outs[d]), (n,))
                for i in range(m):
                    y[uint64(s + i)] = R[a, i]
            elif op == 3:  # constant
                v = consts[a]
                for i in range(m):
                    R[d, i] = v
            elif op == 4:  # sum into accumulator d
                # eight interleaved partial sums per block, then a cascade over blocks: the
                # rounding error grows with a few levels of at most 64 terms, not with n
                t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = zero
                i8 = m - m % 8
                for i in range(0, i8, 8):
                    t0 += R[a, uint64(i)]
                    t1 += R[a, uint64(i + 1)]
                    t2 += R[a, uint64(i + 2)]
                    t3 += R[a, uint64(i + 3)]
                    t4 += R[a, uint64(i + 4)]
                    t5 += R[a, uint64(i + 5)]
                    t6 += R[a, uint64(i + 6)]
                    t7 += R[a, uint64(i + 7)]
                for i in range(i8, m):
                    t0 += R[a, uint64(i)]
                lv1[d] += ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7))
                summed[d] = True
                nb = blk - blo + 1
                if (nb & 63) == 0:
                    lv2[d] += lv1[d]
                    lv1[d] = zero
                    if (nb & 4095) == 0:
                        acc[chunk, d] += lv2[d]
                        lv2[d] = zero
            elif op == 5:  # max (NaN wins)
                t = acc[chunk, d]
                for i in range(m):
                    v = R[a, i]
                    t = t if (t >= v or t != t) else v
                acc[chunk, d] = t
            elif op == 6:  # min (NaN wins)
                t = acc[chunk, d]
                for i in range(m):
                    v = R[a, i]
                    t = t if (t <= v or t != t) else v
                acc[chunk, d] = t
{ops}
    for j in range(nacc):
        if summed[j]:
            acc[chunk, j] += lv2[j] + lv1[j]
    return nacc
'''


def _mathlib_digest() -> str:
    import hashlib

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "mathlib.py"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def source_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_vm_generated.py")


def write_source() -> None:
    with open(source_path(), "w") as f:
        f.write(generate_source())


_MACHINES: dict[tuple[str, ...], Any] = {}


def machine() -> Any:
    """The machine for the registry's current op table: the module shipped with graphc
    (_vm_generated.py) or, when ops were registered after it was generated, one generated now
    and kept in the kernel cache like any generated module."""
    ops = tape_ops()
    m = _MACHINES.get(ops)
    if m is None:
        from graphc.codegen import _vm_generated

        if getattr(_vm_generated, "OPS", None) == ops:
            m = _vm_generated
        else:
            import hashlib

            from graphc.codegen import cache

            source = generate_source()
            name = "graphc_vm_" + hashlib.sha256(source.encode()).hexdigest()[:20]
            m, _ = cache.load_module(name, source, cache.disk_dir())
        _MACHINES[ops] = m
    return m


# ---------------------------------------------------------------------------------------------
# eligibility and translation


def eligible(n: Node) -> bool:
    """Can fused node n run on the machine?"""
    if n.op != "fused":
        return False
    body = n.attrs["body"]
    # one walk over the body for its float dtypes, its space and its reductions
    floats = set()
    space: tuple[int, ...] = ()
    biggest = 1
    reds: set[int] = set()
    red_space = None
    for v in body.nodes:
        if isinstance(v.aval, TupleAval):
            continue
        if v.dtype.kind == "f":
            floats.add(v.dtype)
        shape = v.shape
        if v.op != "input" and v.op != "const" and REGISTRY[v.op].fusion is Fusion.REDUCTION:
            shape = v.inputs[0].shape
            reds.add(id(v))
            if red_space is None:
                red_space = tuple(shape)
        size = math.prod(shape)
        if size > biggest:
            biggest, space = size, tuple(shape)
    if reds:  # reading its own reductions makes a row kernel (kernels.needs_rows)
        for v in body.equations:
            if any(id(i) in reds for i in v.inputs) or (
                id(v) not in reds and tuple(v.shape) != red_space
            ):
                return False
    if len(floats) != 1 or next(iter(floats)) not in (np.float32, np.float64):
        return False
    (dt,) = floats
    size = int(np.prod(space, dtype=np.int64))
    for i in body.inputs:
        if i.aval.size not in (1, size) or (i.aval.size == size and tuple(i.shape) != space):
            return False
    for v in body.equations:
        d = REGISTRY[v.op]
        if v.dtype not in (dt, np.bool_):
            return False
        red = d.reduction if d.fusion is Fusion.REDUCTION else None
        if red:
            if (
                red not in ("sum", "max", "min")
                or v.aval.size != 1
                or tuple(v.inputs[0].shape) != space
            ):
                return False
            continue
        if d.tape is Tape.NONE or d.fusion not in (Fusion.ELEMENTWISE, Fusion.VIEW):
            return False
        # a copy keeps the value: booleans are 0/1 in registers of either type, but a float
        # made boolean is not a copy
        if d.tape is Tape.COPY and v.inputs[0].dtype not in (v.dtype, np.bool_):
            return False
        if tuple(v.shape) != space and v.aval.size != 1:
            return False
    return True


def _space(body) -> tuple[int, ...]:
    best: tuple[int, ...] = ()
    for v in body.nodes:
        if isinstance(v.aval, TupleAval):
            continue
        shape = (
            tuple(v.inputs[0].shape)
            if REGISTRY[v.op].fusion is Fusion.REDUCTION
            else tuple(v.shape)
        )
        if math.prod(shape) > math.prod(best):
            best = shape
    return best


def space_of(n: Node) -> tuple[int, ...]:
    return _space(n.attrs["body"])


@dataclass
class Program:
    """A tape for one batch of fused nodes."""

    dtype: np.dtype
    size: int
    code: np.ndarray
    consts: np.ndarray
    inputs: list[tuple[Node, int]]  # (outside node, -1) or (fused node, result index) read
    outputs: list[tuple[Node, int]]  # (fused node, result index) written to memory
    accs: list[tuple[Node, int, str]]  # (fused node, result index, kind)
    nregs: int
    block: int
    ops: int = 0
    listing: list[str] = field(default_factory=list)


def block_size(size: int, nregs: int, itemsize: int) -> int:
    """Elements per block for a program over `size` elements with `nregs` registers."""
    from graphc.codegen.runtime import N_THREADS

    block = MAX_BLOCK
    while block > MIN_BLOCK and nregs * block * itemsize > MAX_REG_BYTES:
        block //= 2
    # no larger than one thread's share, so that every thread has blocks to run
    share = -(-size // N_THREADS)
    return max(16, min(block, -(-share // 16) * 16))


def translate(batch: list[Node], needed: set[tuple[int, int]]) -> Program:
    """Translate consecutive eligible fused nodes (one space, one dtype) into a tape.

    `needed` holds (id(fused node), result index) pairs read outside the batch: those are
    stored to memory; everything else stays in registers.
    """
    first = batch[0].attrs["body"]
    dt = next(
        v.dtype for v in first.nodes if not isinstance(v.aval, TupleAval) and v.dtype.kind == "f"
    )
    size = int(np.prod(space_of(batch[0]), dtype=np.int64))
    code: list[list[int]] = []
    listing: list[str] = []
    consts: list[float] = []
    inputs: list[tuple[Node, int]] = []
    input_slot: dict[tuple[int, int], int] = {}
    outputs: list[tuple[Node, int]] = []
    accs: list[tuple[Node, int, str]] = []
    # value keys: ("batch", id(fused), k) for kernel results, ("body", id(node)) inside bodies
    reg_of: dict[tuple, int] = {}
    free: list[int] = []
    nregs = 0

    def alloc() -> int:
        nonlocal nregs
        if free:
            return free.pop()
        nregs += 1
        return nregs - 1

    # last use of every value, in tape order, for register reuse
    steps: list[tuple[Node, Node]] = [(f, v) for f in batch for v in f.attrs["body"].equations]
    result_key = {}
    for f in batch:
        body = f.attrs["body"]
        for k, o in enumerate(body.outputs):
            result_key[id(o)] = ("batch", id(f), k)
    last: dict[tuple, int] = {}

    # the key of each body input, found once per fused node: inputs are looked up at every use
    in_batch = {id(f) for f in batch}
    input_key: dict[int, dict[int, tuple]] = {}
    for f in batch:
        keys = input_key[id(f)] = {}
        for bi, src in zip(f.attrs["body"].inputs, f.inputs, strict=True):
            if src.op == "proj" and id(src.inputs[0]) in in_batch:
                keys.setdefault(id(bi), ("batch", id(src.inputs[0]), src.attrs["index"]))
            elif src.op == "fused" and id(src) in in_batch:
                keys.setdefault(id(bi), ("batch", id(src), 0))
            else:
                keys.setdefault(id(bi), ("ext", id(src)))

    def key_of(f: Node, v: Node) -> tuple:
        if v.op == "input":
            return input_key[id(f)][id(v)]
        return result_key.get(id(v)) or ("body", id(v))

    # the value key each step writes, found once
    out_keys = [key_of(f, v) for f, v in steps]

    # sin and cos of one value run as one instruction at the first of the two: the second's
    # result waits in a register (partner: position of the first -> position of the second)
    first_trig: dict[tuple, int] = {}
    partner: dict[int, int] = {}
    for pos, (f, v) in enumerate(steps):
        if v.op in ("sin", "cos") and v.inputs[0].op != "const":
            k = (key_of(f, v.inputs[0]), v.dtype)
            if k not in first_trig:
                first_trig[k] = pos
            elif first_trig[k] >= 0 and steps[first_trig[k]][1].op != v.op:
                partner[first_trig[k]] = pos
                first_trig[k] = -1  # paired
    merged = set(partner.values())

    # the value keys each step reads (constants apart), found once
    read_keys = [[key_of(f, i) for i in v.inputs if i.op != "const"] for f, v in steps]
    for pos, keys in enumerate(read_keys):
        if pos in merged:  # computed earlier: its operand is not read here
            continue
        for k in keys:
            last[k] = pos

    ext_nodes: dict[tuple, Node] = {}
    for f in batch:
        body = f.attrs["body"]
        for bi, src in zip(body.inputs, f.inputs, strict=True):
            ext_nodes.setdefault(key_of(f, bi), src)

    # each distinct constant gets a register of its own, reserved before anything else and
    # filled once per block by the prologue
    const_reg: dict[object, int] = {}
    reg_of_const: dict[int, int] = {}  # id(const node) -> its register
    prologue: list[list[int]] = []
    for _, v in steps:
        for i in v.inputs:
            if i.op == "const" and id(i) not in reg_of_const:
                c = float(i.attrs["value"].value)
                key = np.float64(c).tobytes()  # keeps -0.0 apart from 0.0
                if key not in const_reg:
                    const_reg[key] = alloc()
                    consts.append(c)
                    prologue.append([CONST, const_reg[key], len(consts) - 1, 0, 0])
                    listing.append(f"r{const_reg[key]} = {c!r}")
                reg_of_const[id(i)] = const_reg[key]

    def reg_for(f: Node, v: Node, k: tuple | None) -> int:
        if k is None:  # a constant
            return reg_of_const[id(v)]
        if k in reg_of:
            return reg_of[k]
        # an outside operand: load it on first use
        src = ext_nodes[k]
        if k not in input_slot:
            input_slot[k] = len(inputs)
            inputs.append((src, -1))
        r = alloc()
        one = src.aval.size == 1
        code.append([LOAD1 if one else LOAD, r, input_slot[k], 0, 0])
        listing.append(f"r{r} = load in{input_slot[k]}")
        reg_of[k] = r
        return r

    def release(pos: int, k: tuple) -> None:
        if last.get(k, -1) <= pos and k in reg_of and k[0] != "batch_keep":
            free.append(reg_of.pop(k))

    def store(f: Node, k: tuple, r: int) -> None:
        if k[0] == "batch" and (k[1], k[2]) in needed:
            outputs.append((f, k[2]))
            code.append([STORE, len(outputs) - 1, r, 0, 0])
            listing.append(f"out{len(outputs) - 1} = r{r}")

    ops = 0
    code_of = opcodes()[1]
    # each step's operands: (node, value key), the key None for constants
    operand_keys: list[list[tuple[Node, tuple | None]]] = []
    for (_, v), keys in zip(steps, read_keys, strict=True):
        it = iter(keys)
        operand_keys.append([(i, None if i.op == "const" else next(it)) for i in v.inputs])
    for pos, (f, v) in enumerate(steps):
        d = REGISTRY[v.op]
        args = [] if pos in merged else [reg_for(f, i, k) for i, k in operand_keys[pos]]
        red = d.reduction if d.fusion is Fusion.REDUCTION else None
        k_out = out_keys[pos]
        if red:
            body = f.attrs["body"]
            idx = [id(o) for o in body.outputs].index(id(v))
            accs.append((f, idx, red))
            code.append(
                [
                    {"sum": ACC_SUM, "max": ACC_MAX, "min": ACC_MIN}[red],
                    len(accs) - 1,
                    args[0],
                    0,
                    0,
                ]
            )
            listing.append(f"acc{len(accs) - 1} {red}= r{args[0]}")
        elif pos in merged:  # its value came with its partner's
            pass
        else:
            r = alloc()
            if pos in partner:
                f2, v2 = steps[partner[pos]]
                r2 = alloc()
                rs, rc = (r, r2) if v.op == "sin" else (r2, r)
                code.append([SINCOS, rs, args[0], 0, rc])
                listing.append(f"r{rs}, r{rc} = sincos r{args[0]}")
                reg_of[out_keys[partner[pos]]] = r2
                ops += 1  # (two ops of the graph)
                store(f, k_out, r)
                store(f2, out_keys[partner[pos]], r2)
            else:
                if d.tape is Tape.OWN:
                    code.append([code_of[v.op], r, *_OWN[v.op][1](v, args)])
                elif d.tape is Tape.COPY:
                    code.append([COPY_OP, r, args[0], 0, 0])
                else:
                    code.append([code_of[v.op], r] + (args + [0, 0, 0])[:3])
                listing.append(f"r{r} = {v.op} " + " ".join(f"r{a}" for a in args))
                store(f, k_out, r)
            reg_of[k_out] = r
            ops += 1
        for k in read_keys[pos]:
            release(pos, k)
        release(pos, k_out)
    nregs = max(nregs, 1)
    block = block_size(size, nregs, dt.itemsize)
    code = prologue + code
    return Program(
        dt,
        size,
        np.array(code, np.int64).reshape(-1, 5),
        np.array(consts, dt),
        inputs,
        outputs,
        accs,
        nregs,
        block,
        ops,
        listing,
    )
