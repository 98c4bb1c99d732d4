"""How a tensor operation is recorded: operands to nodes, one template per operation and operand
signature (see `_engine`), results to tensors.

The template functions below are graphc.numpy code on tracers; their static arguments (the
NumPy function, the result dtype, axes, the layout of Python numbers among the operands) are
part of the template's key. Module-level functions keep a stable identity, which the key
relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc import numpy as gnp
from graphc.ir import Aval, GraphcError, Node
from graphc.torch._dtypes import get_default_dtype
from graphc.torch._engine import Storage, engine, is_grad_enabled
from graphc.trace import Tracer, user_location

__all__ = ["record", "record_into", "node_of", "wrap", "as_dtype_of", "SCALAR"]

SCALAR = Aval((), np.dtype(np.float64))  # the type of a Python number fed into a graph


def node_of(t: Any, grad: bool) -> Node:
    """The node tensor `t` stands for in a new operation.

    A parameter changed in place (under no_grad) and read again with gradients on is realized
    first: its gradient is taken with respect to its new value, a leaf, not through the update.
    A tensor without grad that shares its storage with one that has grad (`p.data`,
    `x.detach()`) reads a node that no gradient flows through.
    """
    s: Storage = t._s
    n = s.node
    if t._rg:
        if s.owner is not None:  # a leaf that requires grad
            if s.data is None and grad:
                engine.realize("a parameter changed in place is read with gradients on")
                n = s.node
            if n is None:
                n = s.node = engine.feed(s.data, s.aval, s, "t", t._name)
                engine.owners[n] = s.owner
        return n  # type: ignore[return-value]
    if s.owner is None and not s.history:
        if n is None:
            n = s.node = engine.feed(s.data, s.aval, s, "t", t._name)
        return n
    p = s.plain
    if p is None:
        if s.data is not None:
            p = engine.feed(s.data, s.aval, s, "t", t._name)
        else:
            sig = ((s.aval.shape, s.aval.dtype),)
            tpl = engine.template(_t_stop, [s], sig, (), ".detach()")
            p = engine.splice(tpl, [n], engine.meta(grad))[0]  # type: ignore[list-item]
        s.plain = p
    return p


def _t_stop(x: Any) -> Any:
    return gnp.stop_gradient(x)


def wrap(node: Node, requires_grad: bool) -> Any:
    """A tensor for a node a template produced."""
    op = node.op
    if op != "const" and op != "input":  # the common case: a recorded computation
        rg = requires_grad and node.aval.dtype.kind == "f"  # type: ignore[union-attr]
        s = Storage(None, node, node.aval, rg)  # type: ignore[arg-type]
        engine.pend(s)
        return _tensor_type()._from_storage(s, rg)
    if op == "const":
        s = Storage(np.array(node.attrs["value"].value), None, node.aval, False)  # type: ignore[arg-type]
    elif op == "input":
        f = engine.feeds.get(node)
        if f is None:  # a gradient placeholder: its value comes with the next realization
            s = Storage(None, node, node.aval, False)  # type: ignore[arg-type]
            engine.pend(s)
        else:
            s = Storage(np.asarray(f[0]), node, node.aval, False)  # type: ignore[arg-type]
            sref = f[1]
            src = sref() if sref is not None else None
            if src is not None and src.owner is not None:
                s.owner = src.owner  # the same leaf: gradients reach it through this tensor
    return _tensor_type()._from_storage(s, requires_grad and s.owner is not None)


def _tensor_type() -> type:
    # _tensor imports this module: the class is looked up when the first tensor is made
    global _TENSOR
    if _TENSOR is None:
        from graphc.torch._tensor import Tensor

        _TENSOR = Tensor
    return _TENSOR


_TENSOR: type | None = None


def record(
    fn: Callable,
    operands: Sequence[Any],
    static: tuple = (),
    *,
    name: str,
    raw: bool = False,
) -> Any:
    """Record `fn(*operands, *static)`: tensors and Python floats are its traced operands.
    Returns the result tensors (a list), or their nodes with `raw`. (Every tensor operation
    passes here: the loop is written for speed.)"""
    grad = is_grad_enabled()
    nodes: list[Node] = []
    sig: list[Any] = []
    stor: list[Any] = []
    rg = False
    for x in operands:
        if type(x) is float:
            nodes.append(engine.feed(x, SCALAR, None, "s", None))
            sig.append(float)
            stor.append(x)
            continue
        s = getattr(x, "_s", None)
        if s is None:
            raise GraphcError(f"internal: operand {x!r} of {name}", user_location())
        n = s.node
        if x._rg:
            rg = True
            n = node_of(x, grad)
        elif n is None or s.owner is not None or s.history:
            n = node_of(x, grad)
        nodes.append(n)
        a = s.aval
        sig.append((a.shape, a.dtype))
        stor.append(s)
    tpl = engine.template(fn, stor, tuple(sig), static, name)
    outs = engine.splice(tpl, nodes, engine.meta(grad))
    if raw:
        return outs
    rg = rg and grad
    return [wrap(n, rg) for n in outs]


def record_into(t: Any, fn: Callable, operands: Sequence[Any], static: tuple, name: str) -> Any:
    """An in-place operation: `t` takes the value `fn(*operands, *static)` (cast to t's dtype
    and of t's shape, as PyTorch requires), and keeps its identity. Returns `t`."""
    grad = is_grad_enabled()
    if grad and t._rg and t._s.owner is not None and t._s.owner() is t:
        raise GraphcError(
            f"{name}: a leaf tensor that requires grad cannot be changed in place while "
            "gradients are recorded; do it inside `with torch.no_grad():`",
            user_location(),
        )
    node = record(_t_into, operands, (fn, static, t.shape, t.dtype), name=name, raw=True)[0]
    rg = grad and (t._rg or any(getattr(x, "_rg", False) for x in operands))
    if rg and not t._rg:
        t._rg, t._leaf = True, False
    t._s.set_node(node, history=bool(rg) and not (t._s.owner is not None))
    return t


def _t_into(*args: Any) -> Any:
    *operands, fn, static, shape, dtype = args
    out = fn(*operands, *static)
    if tuple(np.shape(out)) != tuple(shape):
        if np.broadcast_shapes(np.shape(out), shape) != tuple(shape):
            raise GraphcError(
                f"an in-place result of shape {tuple(np.shape(out))} does not fit the tensor's "
                f"shape {tuple(shape)}"
            )
        out = np.broadcast_to(out, shape)
    if out.dtype != dtype:
        if not np.can_cast(out.dtype, dtype, "same_kind"):
            raise GraphcError(
                f"the result type {out.dtype} cannot be cast to the tensor's dtype {dtype} in place"
            )
        out = gnp.astype(out, dtype)
    return out


def as_dtype_of(x: Any, dt: np.dtype) -> Any:
    """`x` (a tracer or a Python number) in dtype `dt`: tracers are cast, Python numbers stay
    weak, so NEP 50 gives `dt` for them."""
    if isinstance(x, Tracer) and x.dtype != dt:
        return gnp.astype(x, dt)
    return x


def float_dtype(dt: np.dtype) -> np.dtype:
    """The dtype of a floating-point function of a `dt` tensor (ints and bools give the
    default float dtype, as in PyTorch)."""
    return dt if dt.kind == "f" else get_default_dtype()
