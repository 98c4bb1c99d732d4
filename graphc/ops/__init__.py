"""The op registry. Importing this package registers every op.

Example:
    >>> from graphc.ops import REGISTRY, Kind
    >>> sorted(n for n, d in REGISTRY.items() if d.kind is Kind.REDUCTION)[:3]
    ['argmax', 'argmin', 'reduce_max']
"""

from graphc.ir import Aval, Const, Graph, GraphcError, TupleAval
from graphc.ops import (  # noqa: F401  (registers ops)
    contract,
    control,
    custom,
    decomp,
    elementwise,
    reduce,
    shape,
    sorting,
)
from graphc.ops.batching import front
from graphc.ops.elementwise import Masked
from graphc.ops.interp import evaluate
from graphc.ops.registry import (
    REGISTRY,
    Dedicated,
    Emitter,
    Facts,
    Fusion,
    Kind,
    MathCall,
    OpDef,
    Tape,
    Template,
    apply,
    bind,
    defop,
    get,
)
from graphc.ops.shape import sum_to_shape


def _no_rule(*avals, **attrs):
    raise TypeError("source nodes have no shape rule")


def _const_rule(*, value: Const) -> Aval:
    return value.aval


defop(
    "input", Kind.SOURCE, _no_rule, lambda: None, arity=0, differentiable=False, doc="a graph input"
)
defop(
    "const",
    Kind.SOURCE,
    _const_rule,
    lambda *, value: value.value,
    arity=0,
    differentiable=False,
    doc="a constant array",
)

__all__ = [
    "REGISTRY",
    "Dedicated",
    "Emitter",
    "Facts",
    "Fusion",
    "Kind",
    "MathCall",
    "OpDef",
    "Masked",
    "Tape",
    "Template",
    "apply",
    "bind",
    "defop",
    "get",
    "sum_to_shape",
]


# -- fused kernels ------------------------------------------------------------------------------
# A fused node runs its `body` graph (one loop in compiled code); with several results its type
# is a TupleAval and `proj` nodes read the results.


def _fused_rule(*avals, body):
    if len(avals) != len(body.inputs) or any(
        a != b.aval for a, b in zip(avals, body.inputs, strict=True)
    ):
        from graphc.ir import ShapeError

        raise ShapeError("fused: operand types do not match the body's inputs")
    outs = tuple(o.aval for o in body.outputs)
    return outs[0] if len(outs) == 1 else TupleAval(outs)


def _fused_impl(*args, body):
    outs = evaluate(body, *args)
    return outs[0] if len(outs) == 1 else tuple(outs)


def _proj_rule(t, *, index):
    if not isinstance(t, TupleAval) or not 0 <= index < len(t.avals):
        from graphc.ir import ShapeError

        raise ShapeError(f"proj: no result {index} in {t}")
    return t.avals[index]


def _fused_prune(n, used):
    if len(used) == len(n.aval.avals):
        return None
    keep = sorted(used)
    body = n.attrs["body"]
    b2 = Graph(body.inputs, [body.outputs[k] for k in keep], name=body.name)
    return apply("fused", list(n.inputs), {"body": b2}, n.meta), {k: j for j, k in enumerate(keep)}


def _fused_batch(bt, dims, *xs, body):
    # the body batched and spliced in: fusion runs again on the batched graph
    g, outs = bt.batch(body, [d is not None for d in dims])
    res = bt.inline(g, [front(x, d) for x, d in zip(xs, dims, strict=True)])
    out_dims = [0 if o else None for o in outs]
    return (res[0], out_dims[0]) if len(res) == 1 else (res, out_dims)


defop(
    "fused",
    Kind.OTHER,
    _fused_rule,
    _fused_impl,
    differentiable=False,
    prune=_fused_prune,
    batch=_fused_batch,
    doc="a fused kernel: its body graph computed in one pass over its iteration space",
)


def _proj_by_the_pass(*args, **kwargs):
    # a result's derivative is its multi-result node's: the autodiff pass routes it there
    raise GraphcError("internal: proj is differentiated with the node it reads")


defop(
    "proj",
    Kind.OTHER,
    _proj_rule,
    lambda t, *, index: t[index],
    arity=1,
    vjp=_proj_by_the_pass,
    jvp=_proj_by_the_pass,
    doc="result `index` of a multi-result fused kernel",
)
