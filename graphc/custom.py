"""Derivatives of your own, derivatives switched off, and recomputation instead of storage.

`custom_jvp` and `custom_vjp` take JAX's decorator API; the rules are traced into IR like the
built-in ones, so what they produce fuses, compiles, prints and differentiates. `stop_gradient`
(alias `detach`) passes a value with derivative zero; `checkpoint` (alias `remat`) marks a
function whose intermediate values the backward pass recomputes instead of keeping.

Example:
    >>> @graphc.custom_jvp
    ... def log1pexp(x):
    ...     return np.log1p(np.exp(x))
    >>> @log1pexp.defjvp
    ... def _(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return log1pexp(x), t / (1 + np.exp(-x))     # stable for large x
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.control import (
    _flatten_operands,
    _results,
    _trace_region,
    _where,
    free_union,
    with_free,
)
from graphc.ir import Graph, Node
from graphc.ops.custom import CustomDerivativeError
from graphc.trace import Tracer, bind, user_location
from graphc.tree_util import TreeDef, flatten, leaf_paths, unflatten

__all__ = [
    "CustomDerivativeError",
    "checkpoint",
    "custom_jvp",
    "custom_vjp",
    "detach",
    "remat",
    "stop_gradient",
]


def stop_gradient(x: Any) -> Any:
    """`x`, with derivative zero: gradients do not flow through it (JAX's `stop_gradient`,
    PyTorch's `detach`). Pytrees are handled leaf by leaf.

    Example:
        >>> graphc.grad(lambda x: x * graphc.stop_gradient(x))(3.0)
        3.0
    """
    leaves, tree = flatten(x)
    return unflatten(
        tree,
        [bind("stop_gradient", np.asarray(v) if not isinstance(v, Tracer) else v) for v in leaves],
    )


detach = stop_gradient


def _args(
    args: tuple, what: str, loc: str | None
) -> tuple[list[Node], list[bool], TreeDef, list[str]]:
    nodes, weak, tree = _flatten_operands(args, what, loc)
    return nodes, weak, tree, leaf_paths(tree, what)


def _types(nodes: Any) -> str:
    return "(" + ", ".join(str(n.aval) for n in nodes) + ")"


class custom_jvp:  # noqa: N801 (JAX's name)
    """A function with a forward-mode rule of its own, which also serves reverse mode and
    higher orders (JAX's `jax.custom_jvp`). `defjvp(rule)`: `rule(primals, tangents) ->
    (primal_out, tangent_out)`, both tuples of the function's arguments.

    Example:
        >>> f = graphc.custom_jvp(lambda x: np.sin(x))
        >>> f.defjvp(lambda p, t: (np.sin(p[0]), np.cos(p[0]) * t[0]))
        >>> graphc.grad(f)(0.0)
        1.0
    """

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.jvp: Callable | None = None
        self._in_rule = False

    def defjvp(self, jvp: Callable) -> Callable:
        """Give the rule; returns it, so it can be used as a decorator."""
        self.jvp = jvp
        return jvp

    def __call__(self, *args: Any) -> Any:
        if self._in_rule:
            # the rule calling the function for its primal output (the usual way to write
            # one): that call is the plain function, traced on its own
            return self.fun(*args)
        loc = user_location()
        if self.jvp is None:
            raise CustomDerivativeError(
                f"custom_jvp function {_where(self.fun)} has no rule: call .defjvp(rule) first", loc
            )
        nodes, weak, tree, paths = _args(args, "args", loc)
        avals = [n.aval for n in nodes]
        n = len(nodes)
        fun_r = _trace_region(
            self.fun,
            avals,
            weak,
            paths,
            lambda ts: self.fun(*unflatten(tree, ts)),
            "custom_jvp: the function",
            loc,
        )
        rule = self.jvp

        def call_rule(ts: list[Tracer]) -> Any:
            prim = tuple(unflatten(tree, ts[:n]))
            tan = tuple(unflatten(tree, ts[n:]))
            res = rule(prim, tan)
            if not isinstance(res, (tuple, list)) or len(res) != 2:
                raise CustomDerivativeError(
                    f"custom_jvp: the rule {_where(rule)} must return (primal_out, "
                    f"tangent_out), got {type(res).__name__}",
                    loc,
                )
            return (res[0], res[1])

        self._in_rule = True
        try:
            rule_r = _trace_region(
                rule,
                avals + avals,
                weak + weak,
                paths + [f"tangent {p}" for p in paths],
                call_rule,
                "custom_jvp: the rule",
                loc,
            )
        finally:
            self._in_rule = False
        outs = list(fun_r.graph.outputs)
        r_outs = list(rule_r.graph.outputs)
        if (
            rule_r.out_tree
            != flatten((unflatten(fun_r.out_tree, outs), unflatten(fun_r.out_tree, outs)))[1]
        ):
            raise CustomDerivativeError(
                f"custom_jvp: the rule {_where(rule)} returns {rule_r.out_tree}; the function "
                f"returns {fun_r.out_tree}, so the rule must return a pair of that",
                loc,
            )
        m = len(outs)
        for what, got in (("primal_out", r_outs[:m]), ("tangent_out", r_outs[m:])):
            if [o.aval for o in got] != [o.aval for o in outs]:
                raise CustomDerivativeError(
                    f"custom_jvp: the rule {_where(rule)} returns a {what} of types "
                    f"{_types(got)}, the function's outputs are {_types(outs)}",
                    loc,
                )
        free = free_union([fun_r, rule_r])
        g_fun = with_free(fun_r, free)
        g_rule = with_free(rule_r, free)
        attrs = {"fun": g_fun, "jvp": g_rule, "n_args": n}
        res = _results("custom_jvp_call", nodes + free, attrs, m, loc)
        return unflatten(fun_r.out_tree, res)


class custom_vjp:  # noqa: N801 (JAX's name)
    """A function with reverse-mode rules of its own (JAX's `jax.custom_vjp`):
    `defvjp(fwd, bwd)` with `fwd(*args) -> (out, residuals)` and `bwd(residuals, out_cotangent)
    -> one cotangent per argument` (None for zero). Differentiable once, in reverse mode.

    Example:
        >>> @graphc.custom_vjp
        ... def clip_grad(x):
        ...     return x
        >>> clip_grad.defvjp(lambda x: (x, None), lambda _, g: (np.clip(g, -1, 1),))
    """

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None
        self._in_rule = False

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """Give the forward rule (outputs and residuals) and the backward rule."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any) -> Any:
        if self._in_rule:  # the forward rule computing its output with the function itself
            return self.fun(*args)
        loc = user_location()
        if self.fwd is None or self.bwd is None:
            raise CustomDerivativeError(
                f"custom_vjp function {_where(self.fun)} has no rules: call .defvjp(fwd, bwd) "
                "first",
                loc,
            )
        nodes, weak, tree, paths = _args(args, "args", loc)
        avals = [n.aval for n in nodes]
        fun_r = _trace_region(
            self.fun,
            avals,
            weak,
            paths,
            lambda ts: self.fun(*unflatten(tree, ts)),
            "custom_vjp: the function",
            loc,
        )
        fwd, bwd = self.fwd, self.bwd
        holder: dict[str, Any] = {}

        def call_fwd(ts: list[Tracer]) -> Any:
            res = fwd(*unflatten(tree, ts))
            if not isinstance(res, (tuple, list)) or len(res) != 2:
                raise CustomDerivativeError(
                    f"custom_vjp: the forward rule {_where(fwd)} must return (output, "
                    f"residuals), got {type(res).__name__}",
                    loc,
                )
            holder["res_tree"] = flatten(res[1])[1]
            return (res[0], res[1])

        self._in_rule = True
        try:
            fwd_r = _trace_region(
                fwd, avals, weak, paths, call_fwd, "custom_vjp: the forward rule", loc
            )
        finally:
            self._in_rule = False
        outs = list(fun_r.graph.outputs)
        m = len(outs)
        f_outs = list(fwd_r.graph.outputs)
        if [o.aval for o in f_outs[:m]] != [o.aval for o in outs]:
            raise CustomDerivativeError(
                f"custom_vjp: the forward rule {_where(fwd)} returns an output of types "
                f"{_types(f_outs[:m])}, the function's are {_types(outs)}",
                loc,
            )
        res_nodes = f_outs[m:]
        res_tree = holder["res_tree"]
        floats = [k for k, a in enumerate(avals) if a.dtype.kind == "f"]  # type: ignore[union-attr]

        def call_bwd(ts: list[Tracer]) -> Any:
            r = unflatten(res_tree, ts[: len(res_nodes)])
            g = unflatten(fun_r.out_tree, ts[len(res_nodes) :])
            cts = bwd(r, g)
            if not isinstance(cts, (tuple, list)):
                raise CustomDerivativeError(
                    f"custom_vjp: the backward rule {_where(bwd)} must return a tuple with one "
                    f"cotangent per argument, got {type(cts).__name__}",
                    loc,
                )
            if len(cts) != len(args):
                raise CustomDerivativeError(
                    f"custom_vjp: the backward rule {_where(bwd)} returns {len(cts)} "
                    f"cotangents for {len(args)} arguments",
                    loc,
                )
            out = []
            for k, (p, a) in enumerate(zip(paths, avals, strict=True)):
                leaf = _leaf_of(cts, tree, k)
                if k not in floats:
                    continue
                if leaf is None:
                    out.append(np.zeros(a.shape, a.dtype))
                    continue
                shape = tuple(np.shape(leaf))
                if shape != a.shape:
                    raise CustomDerivativeError(
                        f"custom_vjp: the backward rule {_where(bwd)} returns a cotangent of "
                        f"shape {shape} for {p}, which is {a}",
                        loc,
                    )
                if isinstance(leaf, Tracer):
                    out.append(leaf if leaf.dtype == a.dtype else leaf.astype(a.dtype))
                else:
                    out.append(np.asarray(leaf, a.dtype))
            return out

        bwd_avals = [r.aval for r in res_nodes] + [o.aval for o in outs]
        bwd_r = _trace_region(
            bwd,
            bwd_avals,
            [False] * len(bwd_avals),
            [f"res{k}" for k in range(len(res_nodes))] + [f"ct{k}" for k in range(m)],
            call_bwd,
            "custom_vjp: the backward rule",
            loc,
        )
        free = free_union([fun_r, fwd_r, bwd_r])
        g_fun = with_free(fun_r, free)
        g_fwd = with_free(fwd_r, free)
        g_bwd = with_free(bwd_r, free)
        attrs = {
            "fun": g_fun,
            "fwd": g_fwd,
            "bwd": g_bwd,
            "n_args": len(nodes),
            "n_res": len(res_nodes),
        }
        res = _results("custom_vjp_call", nodes + free, attrs, m, loc)
        return unflatten(fun_r.out_tree, res)


def _leaf_of(cts: Any, tree: TreeDef, k: int) -> Any:
    """The cotangent the rule gives for flat argument k (None inside a None subtree)."""
    leaves, ct_tree = flatten(tuple(cts))
    if ct_tree == tree:
        return leaves[k]
    # None where a whole argument has no cotangent: expand to the argument's structure
    full = []
    for c, a in zip(cts, unflatten(tree, list(range(len(leaf_paths(tree))))), strict=True):
        n_leaves = len(flatten(a)[0])
        if c is None:
            full += [None] * n_leaves
        else:
            got = flatten(c)[0]
            if len(got) != n_leaves:
                raise CustomDerivativeError(
                    f"custom_vjp: a cotangent has {len(got)} leaves for an argument of {n_leaves}"
                )
            full += got
    return full[k]


def checkpoint(fun: Callable) -> Callable:
    """`fun`, whose intermediate values reverse mode recomputes in the backward pass instead
    of storing them (JAX's `jax.checkpoint`, alias `remat`): less memory for more compute. The
    values and derivatives are the same.

    Example:
        >>> layer = graphc.checkpoint(lambda W, x: np.tanh(W @ x))
    """

    @functools.wraps(fun)
    def wrapped(*args: Any) -> Any:
        loc = user_location()
        nodes, weak, tree, paths = _args(args, "args", loc)
        avals = [n.aval for n in nodes]
        r = _trace_region(
            fun, avals, weak, paths, lambda ts: fun(*unflatten(tree, ts)), "checkpoint", loc
        )
        g = r.graph
        body = Graph(list(g.inputs[len(r.free) :]) + list(g.inputs[: len(r.free)]), g.outputs)
        res = _results("checkpoint", nodes + r.free, {"body": body}, len(g.outputs), loc)
        return unflatten(r.out_tree, res)

    return wrapped


remat = checkpoint
