"""Saving and loading model state as .npz files (one array per parameter path).

Example:
    >>> nn.save(model, "model.npz")
    >>> model = nn.load(model, "model.npz")          # or nn.load("model.npz", into=model)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.nn.module import Module
from graphc.nn.tree import StateError, load_state, state

__all__ = ["load", "save"]


def _npz_path(path: str | os.PathLike) -> str:
    p = os.fspath(path)
    return p if p.endswith(".npz") else p + ".npz"


def save(model: Any, path: str | os.PathLike) -> str:
    """Write every array of `model` (trainable and not, by path: `layers.0.weight`, ...) to
    the .npz file `path` (".npz" is appended when missing); returns the path written.

    Example:
        >>> nn.save(nn.Dense(2, 3), "/tmp/dense.npz")
        '/tmp/dense.npz'
    """
    p = _npz_path(path)
    np.savez(p, **state(model))
    return p


def load(model_or_path: Any, path: str | os.PathLike | None = None, *, into: Any = None) -> Any:
    """Load a file written by `save` into a model of the same structure: `load(model, path)`
    or `load(path, into=model)`. A Module is updated in place and returned; any other pytree
    is returned as a new tree. Raises StateError naming the first path that is missing, extra
    or of another shape.

    Example:
        >>> m = nn.load(nn.Dense(2, 3), "/tmp/dense.npz")
    """
    if into is not None:
        model, path = into, model_or_path
    else:
        model = model_or_path
    if path is None:
        raise GraphcError(
            "load needs a model and a path: load(model, path) or load(path, into=model)"
        )
    p = os.fspath(path)
    if not os.path.exists(p) and os.path.exists(_npz_path(p)):
        p = _npz_path(p)
    with np.load(p) as f:
        st = {k: f[k] for k in f.files}
    try:
        if isinstance(model, Module):
            return model.load_state(st)
        return load_state(model, st)
    except StateError as e:
        raise StateError(f"{e.message} (loading {p})") from None
