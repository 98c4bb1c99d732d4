"""How `graphc.nn` models print: one line per layer with its parameter count, containers
indented, and totals (trainable arrays, parameters, non-trainable numbers, bytes) under the
model, like Flux. `Module.__repr__` and `Module.summary` print with `show`; it takes any
module or pytree.

Example:
    >>> from graphc import nn
    >>> from graphc.nn.summary import show
    >>> print("\\n".join(show(nn.Chain(nn.Dense(2, 3), nn.Dense(3, 1)), "", True)))
    Chain(
      Dense(2 => 3),                        # 9 parameters
      Dense(3 => 1),                        # 4 parameters
    )                   # Total: 4 trainable arrays, 13 parameters, 52 bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.nn.tree import (
    ModuleBase,
    _children,
    _describe,
    _is_array,
    _is_dynamic,
    _is_traceable,
    _size,
    _walk,
    modules,
)

__all__ = ["default_extra_repr", "show"]


def default_extra_repr(m: Any) -> str:
    """The text between the parentheses of a module's one-line form, from its attributes:
    arrays by dtype and shape, static configuration by value (`Module.extra_repr`)."""
    parts = []
    for k, v in vars(m).items():
        if k.startswith("_"):
            continue
        if _is_array(v):
            parts.append(f"{k}={_describe(v)}")
        elif not _is_dynamic(v):
            parts.append(f"{k}={_short(v)}")
    return ", ".join(parts)


def _nbytes(x: Any) -> int:
    return 8 if isinstance(x, float) else _size(x) * np.dtype(x.dtype).itemsize


def _short(v: Any) -> str:
    if callable(v) and hasattr(v, "__name__"):
        return v.__name__
    return repr(v)


def _fmt_int(n: int) -> str:
    return f"{n:_}"


def _fmt_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3f} {unit}"
    return f"{n} bytes"


def _counts(v: Any) -> tuple[int, int, int, int, int]:
    """(trainable arrays, trainable numbers, non-trainable arrays, their numbers, bytes)."""
    ta = tn = na = nn_ = b = 0
    for _, x, t in _walk(v):
        if not _is_traceable(x):
            continue
        b += _nbytes(x)
        if t:
            ta, tn = ta + 1, tn + _size(x)
        else:
            na, nn_ = na + 1, nn_ + _size(x)
    return ta, tn, na, nn_, b


def _one_line(v: Any) -> str:
    if isinstance(v, ModuleBase):
        try:
            inner = v.extra_repr()
        except Exception:  # e.g. a partitioned module holding None where arrays were
            inner = default_extra_repr(v)
        return f"{type(v).__name__}({inner})"
    if _is_array(v):
        return _describe(v)
    kids = _children(v)
    if kids is None:
        return _short(v)
    inner = ", ".join(f"{k}={_describe(c) if _is_array(c) else _short(c)}" for k, c in kids)
    return f"{type(v).__name__}({inner})"


def _is_container(v: Any) -> bool:
    if not isinstance(v, ModuleBase) or getattr(v, "_leaf_display", False):
        return False
    return any(isinstance(m, ModuleBase) for m in modules(v)[1:])


def _comment(v: Any) -> str:
    ta, tn, na, nn_, _ = _counts(v)
    if ta == 0 and na == 0:
        return ""
    s = f"# {_fmt_int(tn)} parameter{'' if tn == 1 else 's'}"
    if na:
        s += f", plus {_fmt_int(nn_)} non-trainable"
    return s


def show(v: Any, indent: str, top: bool, label: str = "") -> list[str]:
    """The printed lines of `v` (a module, array or pytree) at `indent`; `top` adds the totals
    line, `label` prefixes the first line (`weight=`)."""
    if not _is_container(v):
        line = indent + label + _one_line(v) + ("" if top else ",")
        c = _comment(v)
        return [f"{line:<38}  {c}" if c else line]
    lines = [indent + label + type(v).__name__ + "("]
    for k, c in v._display_children():
        lines += show(c, indent + "  ", False, f"{k}=" if _is_array(c) else "")
    close = indent + ")" + ("" if top else ",")
    if top:
        ta, tn, na, nn_, b = _counts(v)
        tot = f"# Total: {ta} trainable arrays, {_fmt_int(tn)} parameters"
        if na:
            tot += f", plus {na} non-trainable, {_fmt_int(nn_)} numbers"
        tot += f", {_fmt_bytes(b)}."
        lines.append(f"{close:<20}{tot}")
    else:
        lines.append(close)
    return lines
