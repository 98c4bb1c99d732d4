"""The boundary of a compiled graph: every argument is checked against the graph's input types.

A graph's inputs are its signature (shape and dtype each). Whatever reaches a compiled
executable, from `jit`, `vjp`'s pullback, `jvp`, `jacobian` or any other entry point, passes
through `InputCheck` first, so a kernel only ever sees arrays of exactly the shapes and dtypes
it was generated for and cannot read past the end of a buffer.

The rule, the one `np.copyto` applies by default:
- the shape must be the input's shape exactly (no broadcasting: a cotangent of the wrong shape
  is a mistake, not a request);
- the dtype is cast when NumPy's "same_kind" casting allows it (float64 -> float32, int ->
  float, bool -> anything), and refused otherwise (float -> int, complex -> float);
- Python scalars are weak (NEP 50): a Python float fits any floating input, a Python int any
  integer or floating input whose range holds it, a bool any numeric input.

Example:
    >>> check = InputCheck(graphc.trace(np.sin, graphc.spec("f32[3]")))
    >>> check([np.ones(3)])[0].dtype        # float64 -> float32: same kind, cast
    dtype('float32')
    >>> check([np.ones(2)])
    Traceback (most recent call last):
    SignatureError: input 0 (x) must be f32[3]; got an array of shape (2,) and dtype float64 ...
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.ir import Aval, Graph, Node
from graphc.trace import (
    UNSUPPORTED_SUBCLASSES,
    ArgumentError,
    ArgumentValueError,
    Tracer,
    unsupported_subclass_message,
    user_location,
)

# Python scalar type -> the dtype kinds it may be written into (NEP 50: the value, not a dtype)
_PY_KINDS = {bool: "biufc", int: "iufc", float: "fc", complex: "c"}


class SignatureError(ArgumentError, ArgumentValueError):
    """An argument does not fit the signature a graph was compiled for. It is graphc's
    ArgumentError (a TypeError) and ArgumentValueError (a ValueError) both: NumPy raises either
    for such a mismatch, and code written for either catches it."""


def describe(x: Any) -> str:
    """How an argument reads in an error message, e.g. "the Python float 0.1"."""
    if type(x) in _PY_KINDS:
        return f"the Python {type(x).__name__} {x!r}"
    if x is None:
        return "None"
    if isinstance(x, Tracer):
        return f"a traced {x.aval}"
    if isinstance(x, np.generic):
        return f"the NumPy {type(x).__name__} scalar {x!r}"
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    text = repr(x)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"the {type(x).__name__} {text}"


def _label(node: Node, k: int) -> str:
    name = node.meta.name
    return f"input {k} ({name})" if name else f"input {k}"


def coerce(x: Any, aval: Aval, what: str) -> Any:
    """`x` as a value of exactly `aval`'s shape and dtype (an array, or a tracer when `x` is
    traced), cast under the rule above; SignatureError naming `what` and the caller's line when
    it does not fit."""
    want = np.dtype(aval.dtype)

    def fail(why: str) -> SignatureError:
        return SignatureError(f"{what} must be {aval}; got {describe(x)}: {why}", user_location())

    if isinstance(x, Tracer):
        if x.shape != aval.shape:
            raise fail(f"the shape must be {aval.shape}")
        if x.dtype == want:
            return x
        if not (x.weak and is_weak_compatible(float, want)) and not np.can_cast(
            x.dtype, want, "same_kind"
        ):
            raise fail(f"{x.dtype} does not cast to {want} (same-kind casting)")
        return x.astype(want)
    py = type(x)
    if py in _PY_KINDS:
        if aval.shape != ():
            raise fail(f"a scalar fits only a 0-d input, this one has shape {aval.shape}")
        if not is_weak_compatible(py, want):
            raise fail(f"a Python {py.__name__} does not cast to {want}")
        try:
            return np.asarray(x, dtype=want)
        except (OverflowError, ValueError) as e:
            raise fail(f"out of range for {want} ({e})") from None
    if isinstance(x, UNSUPPORTED_SUBCLASSES):
        raise SignatureError(unsupported_subclass_message(x), user_location())
    try:
        arr = np.asarray(x)
    except Exception as e:  # a ragged list, an object whose __array__ fails
        raise fail(f"not convertible to an array ({e})") from None
    if arr.dtype.kind not in "biufc":
        raise fail(f"dtype {arr.dtype} is not numeric")
    if arr.shape != aval.shape:
        raise fail(f"the shape must be {aval.shape}")
    if arr.dtype != want:
        if not np.can_cast(arr.dtype, want, "same_kind"):
            raise fail(f"{arr.dtype} does not cast to {want} (same-kind casting)")
        arr = arr.astype(want)
    return arr


def is_weak_compatible(py: type, want: np.dtype) -> bool:
    """Whether a Python scalar of type `py` may be written into dtype `want` (NEP 50)."""
    return want.kind in _PY_KINDS.get(py, "")


class InputCheck:
    """Checks and converts a call's arguments for one graph's inputs; arrays that already fit
    exactly (the common case, e.g. a training loop) cost one comparison of shape and dtype."""

    __slots__ = ("avals", "fast", "name", "nodes")

    def __init__(self, graph: Graph):
        self.nodes = list(graph.inputs)
        self.avals = [n.aval for n in self.nodes]
        self.fast = [(a.shape, np.dtype(a.dtype)) for a in self.avals]
        self.name = graph.name

    def __call__(self, args: list) -> list:
        fast = self.fast
        if len(args) != len(fast):
            raise SignatureError(
                f"{self.name or 'the compiled function'} takes {len(fast)} array inputs, "
                f"got {len(args)}",
                user_location(),
            )
        ndarray = np.ndarray
        for a, (shape, dt) in zip(args, fast, strict=True):
            # builtin dtypes are singletons: identity settles nearly every call
            if type(a) is not ndarray or a.shape != shape or (a.dtype is not dt and a.dtype != dt):
                return self._convert(args)
        return args

    def _convert(self, args: list) -> list:
        out = list(args)
        for k, (a, (shape, dt)) in enumerate(zip(args, self.fast, strict=True)):
            if not (type(a) is np.ndarray and a.shape == shape and a.dtype == dt):
                out[k] = coerce(a, self.avals[k], _label(self.nodes[k], k))
        return out
