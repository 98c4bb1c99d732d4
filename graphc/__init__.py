"""graphc: a symbolic computational-graph compiler for NumPy-style Python.

Trace a NumPy function into an explicit graph IR, differentiate it with compiler passes, look at
every stage, and run it.

Example:
    >>> import numpy as np, graphc
    >>> g = graphc.trace(lambda x: np.sum(np.tanh(x) ** 2), graphc.spec("f32[3]"))
    >>> graphc.evaluate(g, np.zeros(3, np.float32))
    [array(0., dtype=float32)]
"""

from graphc import numpy  # noqa: F401  (fills the tracer's dispatch tables)
from graphc.api import (
    GradCheckError,
    check_grads,
    destructure,
    grad,
    gradient,
    hessian,
    jacobian,
    jit,
    jvp,
    lower,
    value_and_grad,
    vjp,
    vmap,
    withgradient,
)
from graphc.control import ControlFlowError, cond, fori_loop, scan, switch, while_loop
from graphc.custom import (
    CustomDerivativeError,
    checkpoint,
    custom_jvp,
    custom_vjp,
    detach,
    remat,
    stop_gradient,
)
from graphc.ir import Aval, AxisError, DTypeError, Graph, GraphcError, Node, ShapeError
from graphc.ops.batching import BatchingError
from graphc.ops.interp import evaluate
from graphc.signature import SignatureError
from graphc.text import load, parse
from graphc.trace import (
    ArgumentError,
    ArgumentValueError,
    Spec,
    Tracer,
    TracerError,
    UnsupportedAttributeError,
    UnsupportedError,
    scope,
    spec,
    trace,
)
from graphc.tree_util import pytree, register_pytree, tree_map
from graphc.verify import VerifyError, verify
from graphc.version import __version__ as __version__

__all__ = [
    "CustomDerivativeError",
    "checkpoint",
    "custom_jvp",
    "custom_vjp",
    "detach",
    "remat",
    "stop_gradient",
    "ControlFlowError",
    "cond",
    "fori_loop",
    "scan",
    "switch",
    "while_loop",
    "GradCheckError",
    "check_grads",
    "destructure",
    "grad",
    "gradient",
    "hessian",
    "jacobian",
    "jit",
    "jvp",
    "lower",
    "value_and_grad",
    "vjp",
    "vmap",
    "withgradient",
    "ArgumentError",
    "ArgumentValueError",
    "Aval",
    "AxisError",
    "BatchingError",
    "DTypeError",
    "Graph",
    "GraphcError",
    "Node",
    "ShapeError",
    "SignatureError",
    "Spec",
    "Tracer",
    "TracerError",
    "UnsupportedAttributeError",
    "UnsupportedError",
    "VerifyError",
    "evaluate",
    "load",
    "numpy",
    "parse",
    "pytree",
    "register_pytree",
    "scope",
    "spec",
    "trace",
    "tree_map",
    "verify",
]


def __getattr__(name: str):
    # submodules with heavier imports load on first use: `graphc.nn`, `graphc.viz`, ...
    if name in ("nn", "data", "viz", "cli", "codegen"):
        import importlib

        return importlib.import_module(f"graphc.{name}")
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")
