"""Constant folding: evaluate, at compile time, every node whose operands are all constants.

A node qualifies when every operand is a `const` node, it yields one array (not a fused
kernel's tuple), and its result has at most `FOLD_MAX_ELEMENTS` elements. The size limit keeps
cheap-to-describe values cheap: `broadcast_to(0.0, (4096, 4096))` stays a broadcast of a scalar
instead of becoming a 64 MiB constant in the graph. The limit is checked on the node's type,
before anything is evaluated.

Values are computed with each op's NumPy `impl` (the reference interpreter's code), under the
same floating-point error settings as `graphc.evaluate`, and converted to the node's exact dtype
just as the interpreter converts them, so a folded graph evaluates bit-for-bit like the original.
A node whose evaluation raises (e.g. an out-of-range gather index) is left alone: the error then
happens at run time, where it belongs, rather than in the compiler.

Example:
    >>> g = run_pipeline(g, ["fold"])  # reshape(1.0, (1, 1)) -> const [[1.0]]
"""

from __future__ import annotations

import numpy as np

from graphc.ir import Aval, Graph, Node, make_const
from graphc.ops import REGISTRY, Kind
from passes.manager import PassReport, register

FOLD_MAX_ELEMENTS = 4096
"""Largest result (in elements) that folding materialises as a constant."""


def fold_node(node: Node) -> Node | None:
    """The constant `node` evaluates to, or None when it must not or cannot be folded."""
    if not node.inputs:
        return None
    for i in node.inputs:
        if i.op != "const":
            return None
    op = REGISTRY.get(node.op)
    if op is None or op.kind is Kind.SOURCE or not isinstance(node.aval, Aval):
        return None
    if node.aval.size > FOLD_MAX_ELEMENTS:
        return None
    args = [i.attrs["value"].value for i in node.inputs]
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(op.impl(*args, **node.attrs))
    except Exception:  # bad constant data: leave the failure to run time
        return None
    if out.shape != node.aval.shape:
        return None  # an impl that disagrees with its shape rule; the interpreter reports it
    if out.dtype != node.aval.dtype:
        out = out.astype(node.aval.dtype)
    return make_const(out, node.aval.dtype, meta=node.meta)


@register("fold")
def fold(graph: Graph) -> tuple[Graph, PassReport]:
    """Replace nodes whose operands are all constants by their (small) constant values."""
    return graph.map(lambda n, orig: fold_node(n) if n.op != "const" else None), PassReport()
