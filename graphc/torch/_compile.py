"""`graphc.torch.compile(fn)`: capture a whole function (a training step) and replay its compiled
executables without running its Python again (the role of TinyJit and `torch.compile`).

Per argument signature (shapes and dtypes of tensor and array arguments, values of the
others): the first call runs as usual (lazily recorded, compiled and cached like any code);
the second call is captured: every realization it makes is kept with where each input comes
from (an argument, a tensor that existed before the call, a value an earlier realization of
the call produced, a constant made in the call, a random draw) and where each result goes (a
tensor that existed before the call, written in place). Later calls replay: they gather the
inputs, run the executables and write the results, and return the function's tensors.

What a replay repeats: the computations on tensors, in-place updates of tensors that existed
before the call (parameters, optimizer state, BatchNorm statistics), new `.grad` tensors of
parameters, the returned tensors, and random draws (dropout masks, `randn`). What it does not:
other Python effects (prints, appending to lists, Python numbers computed from tensor values).
Reading a value in Python inside the function (`.item()`, `if loss > 0`) is reported once
when the call is captured, since a replay cannot run that Python again.

Example:
    >>> @torch.compile
    ... def train_step(x, y):
    ...     opt.zero_grad()
    ...     loss = loss_fn(model(x), y)
    ...     loss.backward()
    ...     opt.step()
    ...     return loss
    >>> for x, y in batches:
    ...     loss = train_step(x, y)
"""

from __future__ import annotations

import sys
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc import tree_util
from graphc.api import log_compiles
from graphc.env import debug_level
from graphc.signature import SignatureError
from graphc.torch._engine import Plan, Storage, engine
from graphc.torch._tensor import Tensor
from graphc.trace import user_location

__all__ = ["Compiled", "compile"]


class CaptureWarning(UserWarning):
    """A captured function read a tensor's value in Python: replays skip that Python."""


class _Capture:
    """What one captured call realized, for replaying it."""

    def __init__(self, args: list[Any]):
        self.arg_storages = {id(a._s): k for k, a in enumerate(args) if isinstance(a, Tensor)}
        self.arg_arrays = {id(a): k for k, a in enumerate(args) if isinstance(a, np.ndarray)}
        engine.generation += 1
        self.generation = engine.generation
        self.segments: list[tuple[Plan, list[tuple], list[Any]]] = []
        self.produced: dict[int, tuple[int, int]] = {}
        self.keep: list[Any] = []  # the produced arrays, alive so that their ids stay theirs
        self.problems: list[str] = []
        self.python_reads: list[str] = []
        self.grad_leaves: dict[int, Any] = {}
        self._sources: list[tuple] = []

    def source_of(self, value: Any, s: Storage | None, born: int, random: Any) -> tuple:
        """Where a replay finds a value the captured call read: `s` is the storage it was
        read from (None when that storage is gone), `born` its generation, `random` how it
        was drawn."""
        pos = self.produced.get(id(value))
        if pos is not None:
            return ("out", *pos)
        if id(value) in self.arg_arrays:
            return ("array", self.arg_arrays[id(value)])
        if s is not None and id(s) in self.arg_storages:
            return ("arg", self.arg_storages[id(s)])
        if born < self.generation:  # a tensor from before the call
            # its value now, or (when this realization computes its new value) its value
            # before: what a replay reads from it when this executable starts
            if s is not None and (value is s.data or s.data is None):
                return ("storage", weakref.ref(s))
            self.problems.append(
                "it reads a value of a tensor from before the call that the call replaced "
                "(a replay could not find it)"
            )
            return ("const", value)
        if random is not None:
            return ("random", random)
        return ("const", value)  # made inside the call from Python data

    def before_run(self, plan: Plan, slots: list[Any], outs: list[Storage], why: str) -> None:
        sources = []
        for n in slots:
            value, sref, kind, born, random = engine.feeds[n]
            if kind == "s":
                sources.append(("const", value))
                continue
            s = sref() if sref is not None else None
            sources.append(self.source_of(value, s, born, random))
        self._sources = sources

    def after_run(
        self, plan: Plan, slots: list[Any], outs: list[Storage], results: list[Any]
    ) -> None:
        k = len(self.segments)
        dests = [weakref.ref(s) if s.born < self.generation else None for s in outs]
        for j, v in enumerate(results):
            self.produced[id(v)] = (k, j)
            self.keep.append(v)
        self.segments.append((plan, self._sources, dests))

    def python_value(self, why: str) -> None:
        loc = user_location()
        entry = f"{why} at {loc}" if loc else why
        if entry not in self.python_reads:
            self.python_reads.append(entry)

    def grad_leaf(self, p: Any) -> None:
        self.grad_leaves[id(p)] = p


class _Replay:
    """A captured call, ready to replay."""

    def __init__(self, cap: _Capture, result: Any):
        self.segments = cap.segments
        leaves, self.tree = tree_util.flatten(result)
        self.result: list[tuple] = []
        for x in leaves:
            if isinstance(x, Tensor):
                src = cap.source_of(x._s.data, x._s, x._s.born, x._s.random)
                self.result.append(("tensor", src, x.requires_grad))
            else:
                self.result.append(("value", x))
        self.grads: list[tuple[Any, tuple | None]] = []
        for p in cap.grad_leaves.values():
            g = p.grad
            src = None if g is None else cap.source_of(g._s.data, g._s, g._s.born, g._s.random)
            self.grads.append((weakref.ref(p), src))

    def run(self, args: list[Any]) -> Any:
        if engine.pending or engine.requests:
            engine.realize("before a compiled function's replay")
        outs: list[list[Any]] = []

        def get(src: tuple) -> Any:
            kind = src[0]
            if kind == "out":
                return outs[src[1]][src[2]]
            if kind == "storage":
                s = src[1]()
                if s is None:
                    raise _Stale("a tensor it reads no longer exists")
                return s.data
            if kind == "arg":
                return args[src[1]].numpy()
            if kind == "array":
                return args[src[1]]
            if kind == "random":
                return src[1]()
            return src[1]

        for plan, sources, dests in self.segments:
            values = [get(src) for src in sources]
            try:
                results = plan.exe(values)
            except SignatureError as e:
                raise _Stale(f"an input no longer fits: {e.message}") from None
            plan.runs += 1
            for ref, v in zip(dests, results, strict=True):
                if ref is not None:
                    s = ref()
                    if s is not None:
                        s.set_data(v)
            outs.append(results)
        for ref, src in self.grads:
            p = ref()
            if p is None:
                continue
            if src is None:
                p.grad = None
            elif src[0] != "storage":  # an existing .grad tensor was updated in place already
                p.grad = Tensor._from_array(get(src))
        leaves = [
            (Tensor._from_array(get(r[1])) if r[0] == "tensor" else r[1]) for r in self.result
        ]
        return tree_util.unflatten(self.tree, leaves)


class _Stale(Exception):
    """A replay found the world changed under the capture: capture again."""


def _signature(x: Any) -> Any:
    if isinstance(x, Tensor):
        return ("tensor", tuple(x.shape), x.dtype, x.requires_grad)
    if isinstance(x, np.ndarray):
        return ("array", x.shape, x.dtype)
    try:
        hash(x)
    except TypeError:
        return ("object", id(x))
    return ("value", type(x), x)


def _describe(old: tuple | None, new: tuple) -> str:
    if old is None:
        return "first call"
    (t_old, s_old), (t_new, s_new) = old, new
    if t_old != t_new or len(s_old) != len(s_new):
        return "the arguments' structure changed"
    for k, (a, b) in enumerate(zip(s_old, s_new, strict=True)):
        if a != b:
            if a[0] == b[0] and a[0] in ("tensor", "array"):
                if a[1] != b[1]:
                    return f"argument {k} shape {a[1]} -> {b[1]}"
                return f"argument {k} dtype {a[2]} -> {b[2]}"
            return f"argument {k} changed: {a[-1]!r} -> {b[-1]!r}"
    return "new signature"


class _Entry:
    __slots__ = ("calls", "replay", "plain_reason")

    def __init__(self) -> None:
        self.calls = 0
        self.replay: _Replay | None = None
        self.plain_reason: str | None = None


class Compiled:
    """A function captured after its first call and replayed afterwards (see the module's
    documentation). `compiled.captures` lists what happened per argument signature.

    Example:
        >>> step = torch.compile(train_step)
        >>> loss = step(x, y)     # runs, records, compiles
        >>> loss = step(x, y)     # captured
        >>> loss = step(x, y)     # replayed: no Python of train_step runs
    """

    def __init__(self, fn: Callable):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "compiled")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.entries: dict[Any, _Entry] = {}
        self.captures: list[str] = []
        self._last: tuple | None = None

    def _log(self, text: str) -> None:
        self.captures.append(text)
        if debug_level() >= 1 or log_compiles():
            print(f"[graphc.torch] compile({self.__name__}): {text}", file=sys.stderr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves, tree = tree_util.flatten((args, kwargs))
        key = (tree, tuple(_signature(x) for x in leaves))
        e = self.entries.get(key)
        if e is None:
            e = self.entries[key] = _Entry()
            self._log(f"new signature ({_describe(self._last, key)}): running as recorded")
        self._last = key
        if e.replay is not None:
            try:
                return e.replay.run(leaves)
            except _Stale as why:
                self._log(f"captured again: {why}")
                e.replay, e.calls = None, 1
        e.calls += 1
        if e.calls == 1 or e.plain_reason is not None:
            out = self.fn(*args, **kwargs)
            engine.realize("end of a compiled function")
            return out
        return self._capture(e, leaves, args, kwargs)

    def _capture(self, e: _Entry, leaves: list[Any], args: tuple, kwargs: dict) -> Any:
        engine.realize("before a compiled function's capture")
        cap = _Capture(leaves)
        engine.capture = cap
        try:
            out = self.fn(*args, **kwargs)
            engine.realize("end of a compiled function")
        finally:
            engine.capture = None
        if cap.problems:
            e.plain_reason = cap.problems[0]
            self._log(f"not replayed, runs as recorded: {cap.problems[0]}")
            return out
        e.replay = _Replay(cap, out)
        self._log(f"captured {len(cap.segments)} executable(s)")
        if cap.python_reads:
            warnings.warn(
                f"graphc.torch.compile({self.__name__}): the function reads tensor values in "
                f"Python ({'; '.join(cap.python_reads)}); replays run its tensor computations "
                "only, not that Python",
                CaptureWarning,
                stacklevel=2,
            )
        return out


def compile(model: Any = None, **options: Any) -> Any:  # noqa: A001 (PyTorch's name)
    """Capture `fn` (a training step) after its first call and replay it afterwards; usable
    as a decorator. PyTorch's options (`mode`, `fullgraph`, `dynamic`, `backend`) are
    accepted and ignored. A Module is returned as it is: its calls are compiled and cached by
    the lazy engine already; compile the training step instead.

    Example:
        >>> step = torch.compile(train_step)
    """
    if model is None:
        return lambda f: compile(f, **options)
    from graphc.torch.nn.module import Module

    if isinstance(model, Module):
        return model
    return Compiled(model)
