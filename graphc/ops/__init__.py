"""The op registry. Importing this package registers every op.

Example:
    >>> from graphc.ops import REGISTRY, Kind
    >>> sorted(n for n, d in REGISTRY.items() if d.kind is Kind.REDUCTION)[:3]
    ['argmax', 'argmin', 'reduce_max']
"""

from graphc.ir import Aval, Const
from graphc.ops import contract, elementwise, reduce, shape  # noqa: F401  (registers ops)
from graphc.ops.elementwise import Masked
from graphc.ops.registry import REGISTRY, Kind, OpDef, apply, bind, defop, get
from graphc.ops.shape import sum_to_shape


def _no_rule(*avals, **attrs):
    raise TypeError("source nodes have no shape rule")


def _const_rule(*, value: Const) -> Aval:
    return value.aval


defop("input", Kind.SOURCE, _no_rule, lambda: None, arity=0, differentiable=False,
      doc="a graph input")
defop("const", Kind.SOURCE, _const_rule, lambda *, value: value.value, arity=0,
      differentiable=False, doc="a constant array")

__all__ = ["REGISTRY", "Kind", "OpDef", "Masked", "apply", "bind", "defop", "get",
           "sum_to_shape"]
