"""The op table's gradient columns: every differentiable op's VJP and JVP rules checked against
central finite differences in float64, to first and second order, on the table's rows (several
shapes, broadcasting included); ops with derivative zero contribute exactly zero."""

import numpy as np
import pytest
from test_ops_table import CASES, OpCase

import graphc
from graphc.ops import REGISTRY, Kind

PER_OP = 3  # rows per op, to keep second-order checks affordable


def _is_float_array(a) -> bool:
    return isinstance(a, (np.ndarray, np.generic, float)) and np.asarray(a).dtype.kind == "f"


def _as_f64(a):
    return np.asarray(a, dtype=np.float64) if _is_float_array(a) else a


def _grad_rows() -> list[OpCase]:
    seen: dict[str, int] = {}
    rows = []
    for c in CASES:
        d = REGISTRY.get(c.op)
        if d is None or not d.differentiable or d.kind is Kind.SOURCE or not c.smooth:
            continue
        args = c.make_args()
        if not any(_is_float_array(a) and np.size(a) for a in args):
            continue
        if seen.get(c.op, 0) >= PER_OP:
            continue
        # finite differences are only meaningful when the result stays in float64
        outs = graphc.trace(c.fn, *[_as_f64(a) for a in args]).outputs
        if any(o.dtype != np.float64 for o in outs):
            continue
        seen[c.op] = seen.get(c.op, 0) + 1
        rows.append(c)
    return rows


GRAD_ROWS = _grad_rows()


def test_every_differentiable_op_has_gradient_rows():
    differentiable = {
        n
        for n, d in REGISTRY.items()
        if d.differentiable and d.kind is not Kind.SOURCE and n not in ("fused", "proj")
    }
    covered = {c.op for c in GRAD_ROWS}
    assert differentiable - covered == set(), "differentiable ops without a gradient row"
    for n in differentiable:
        d = REGISTRY[n]
        assert d.vjp is not None and d.jvp is not None, f"{n} lacks a VJP or JVP rule"


@pytest.mark.parametrize("case", GRAD_ROWS, ids=[c.id for c in GRAD_ROWS])
def test_op_gradients_first_and_second_order(case: OpCase):
    args = tuple(_as_f64(a) for a in case.make_args())
    if not case.modes:  # an op whose derivative is refused says so, never gives zero
        with pytest.raises(graphc.GraphcError, match="differentiable"):
            graphc.grad(lambda *a: np.sum(case.fn(*a)), backend="interpreter")(*args)
        return
    with np.errstate(all="ignore"):
        graphc.check_grads(case.fn, args, order=case.order, modes=case.modes, backend="interpreter")


ZERO_ROWS = [
    c
    for c in CASES
    if c.op in REGISTRY
    and not REGISTRY[c.op].differentiable
    and REGISTRY[c.op].kind is not Kind.SOURCE
    and any(_is_float_array(a) and np.size(a) for a in c.make_args())
]


@pytest.mark.parametrize("case", ZERO_ROWS, ids=[c.id for c in ZERO_ROWS])
def test_zero_derivative_ops_give_zero_gradients(case: OpCase):
    args = tuple(_as_f64(a) for a in case.make_args())
    floats = tuple(k for k, a in enumerate(args) if _is_float_array(a) and np.size(a))

    def total(*a):
        out = case.fn(*a)
        return np.sum(
            np.asarray(out, dtype=np.float64)
            if not hasattr(out, "node")
            else out.astype(np.float64)
        )

    grads = graphc.grad(total, argnums=floats, backend="interpreter")(*args)
    for g in grads:
        assert g is None or not np.any(np.asarray(g)), g
