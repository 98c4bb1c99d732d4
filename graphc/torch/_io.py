"""`torch.save` and `torch.load`: state dicts (and nested dicts, lists and tuples of tensors,
numbers and strings) in one file, without pickle.

The file is a NumPy .npz archive: one array per tensor, and the structure as JSON. Loading
executes nothing from the file, so it is safe on files from elsewhere (PyTorch's
`weights_only=True`).

Example:
    >>> torch.save(model.state_dict(), "model.pt")
    >>> model.load_state_dict(torch.load("model.pt"))
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.torch._tensor import Tensor
from graphc.trace import user_location

__all__ = ["load", "save"]

_STRUCTURE = "__structure__"


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, Tensor):
        name = f"t{len(arrays)}"
        arrays[name] = obj.numpy()
        return {"tensor": name, "requires_grad": obj.requires_grad}
    if isinstance(obj, np.ndarray):
        name = f"t{len(arrays)}"
        arrays[name] = obj
        return {"array": name}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {type(obj).__name__: [_encode(v, arrays) for v in obj]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    if isinstance(obj, np.generic):
        return {"value": obj.item()}
    raise GraphcError(
        f"torch.save stores tensors, arrays, numbers, strings and dicts, lists and tuples of "
        f"them; not {type(obj).__name__}",
        user_location(),
    )


def _decode(obj: dict[str, Any], arrays: Any) -> Any:
    (kind, v), *_ = obj.items()
    if kind == "tensor":
        return Tensor._from_array(np.array(arrays[v]), obj.get("requires_grad", False))
    if kind == "array":
        return np.array(arrays[v])
    if kind == "dict":
        return {_decode(k, arrays): _decode(x, arrays) for k, x in v}
    if kind == "list":
        return [_decode(x, arrays) for x in v]
    if kind == "tuple":
        return tuple(_decode(x, arrays) for x in v)
    return v


def save(obj: Any, f: str | os.PathLike) -> None:
    """Write `obj` (a state dict, or nested containers of tensors and numbers) to file `f`."""
    arrays: dict[str, np.ndarray] = {}
    structure = _encode(obj, arrays)
    with open(os.fspath(f), "wb") as fh:
        np.savez(fh, **arrays, **{_STRUCTURE: np.array(json.dumps(structure))})


def load(f: str | os.PathLike, map_location: Any = None, weights_only: bool = True) -> Any:
    """Read what `save` wrote."""
    with np.load(os.fspath(f), allow_pickle=False) as z:
        if _STRUCTURE not in z.files:
            raise GraphcError(
                f"{os.fspath(f)} was not written by graphc.torch.save (PyTorch's own files "
                "cannot be read)",
                user_location(),
            )
        structure = json.loads(str(z[_STRUCTURE]))
        arrays = {k: z[k] for k in z.files if k != _STRUCTURE}
    return _decode(structure, arrays)
