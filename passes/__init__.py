"""Graph -> Graph transformations, registered by name, and the pass manager.

A pass is a function `Graph -> (Graph, PassReport)` with a one-line docstring, registered with
`@register(name, requires=..., produces=..., invalidates=...)`. It builds a new graph (with
`Graph.map`, the one rebuild walk, and `graphc.ops.apply` for new nodes) and never writes into
its input graph's `info`; what it has to say (why-not-fused reasons, a rewrite that did not
converge) goes into its report. The properties a pass declares (`fused`, `unfused`) let
`run_pipeline` check an order before running anything: `fuse` needs an unfused graph.

`run_pipeline(graph, names)` runs passes in order, verifies the graph (fused bodies included)
after each one when asked (`verify=True`, GRAPHC_VERIFY=1, which the tests set, or
GRAPHC_DEBUG >= 1), and records for each pass its node counts, time, notes and a diff of what
it removed and added. `GRAPHC_DEBUG=1` prints that record as the pipeline runs;
`GRAPHC_DEBUG=2` also prints the IR after each pass.

The default optimization pipeline is `DEFAULT_PIPELINE`, defined in `passes.manager` and
nowhere else.

Example:
    >>> from passes import run_pipeline
    >>> g2 = run_pipeline(g)           # the default pipeline
    >>> g2.info["pipeline"][0].name
    'fold'
"""

from __future__ import annotations

from passes import (  # noqa: F401  (importing a pass registers it)
    cse,
    dce,
    fold,
    fuse,
    inline,
    loops,
    simplify,
)
from passes.manager import (
    COMPILE_PIPELINE,
    DEFAULT_PIPELINE,
    PASSES,
    PROPERTIES,
    Pass,
    PassRecord,
    PassReport,
    RewriteNotConverged,
    check_order,
    debug_level,
    diff,
    graph_properties,
    register,
    rewrite,
    run_pipeline,
)

__all__ = [
    "COMPILE_PIPELINE",
    "DEFAULT_PIPELINE",
    "PASSES",
    "PROPERTIES",
    "Pass",
    "PassRecord",
    "PassReport",
    "RewriteNotConverged",
    "check_order",
    "debug_level",
    "diff",
    "graph_properties",
    "register",
    "rewrite",
    "run_pipeline",
]
