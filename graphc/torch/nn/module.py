"""`nn.Module` and `nn.Parameter`, PyTorch style: modules hold their parameters, buffers and
sub-modules as attributes and are called like functions (`model(x)` runs `forward`).

Calls run under `graphc.scope(<attribute name>)`, so recorded nodes carry the module path
(`features.0`, `fc1`), which graphc's pictures group by.

Example:
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.fc(x)
    >>> [name for name, _ in Net().named_parameters()]
    ['fc.weight', 'fc.bias']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

import graphc
from graphc.ir import GraphcError
from graphc.torch._engine import no_grad
from graphc.torch._tensor import Tensor
from graphc.trace import user_location

__all__ = ["Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]


class Parameter(Tensor):
    """A tensor that is a module's parameter: it requires grad, and assigning it to a module
    attribute registers it.

    Example:
        >>> w = nn.Parameter(torch.randn(3, 2))
        >>> w.requires_grad
        True
    """

    def __new__(cls, data: Any = None, requires_grad: bool = True) -> Parameter:
        if data is None:
            data = Tensor._from_array(np.zeros(0, np.float32))
        elif not isinstance(data, Tensor):
            data = Tensor._from_array(np.asarray(data))
        p = Tensor._from_storage.__func__(cls, data._s, False)  # type: ignore[attr-defined]
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data: Any = None, requires_grad: bool = True):
        pass  # made in __new__, sharing data's storage as PyTorch's Parameter does

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class _Incompatible(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers and models: subclass it, create layers in `__init__` (after
    `super().__init__()`), compute in `forward`.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> sum(p.numel() for p in model.parameters())
        58
    """

    training: bool

    def __init__(self, *args: Any, **kwargs: Any):
        d = self.__dict__
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent"] = set()
        d["_modules"] = {}
        d["_scope"] = None
        d["training"] = True

    # -- attributes ------------------------------------------------------------------------------
    def _registry(self, what: str) -> dict:
        reg = self.__dict__.get(what)
        if reg is None:
            raise GraphcError(
                f"cannot assign a {'module' if what == '_modules' else 'parameter'} before "
                f"Module.__init__() ran: call super().__init__() first in "
                f"{type(self).__name__}.__init__",
                user_location(),
            )
        return reg

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._discard(name)
            self._registry("_parameters")[name] = value
            value._name = value._name or name
        elif isinstance(value, Module):
            self._discard(name)
            self._registry("_modules")[name] = value
            value.__dict__["_scope"] = name
        elif d.get("_parameters") is not None and name in d["_parameters"]:
            if value is not None and not isinstance(value, Tensor):
                raise GraphcError(
                    f"cannot assign a {type(value).__name__} to parameter {name!r} "
                    "(a Parameter or None is expected)",
                    user_location(),
                )
            d["_parameters"][name] = value
        elif d.get("_buffers") is not None and name in d["_buffers"]:
            d["_buffers"][name] = value
        elif d.get("_modules") is not None and name in d["_modules"] and value is None:
            d["_modules"][name] = None
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name: str) -> None:
        d = self.__dict__
        d.pop(name, None)
        for reg in ("_parameters", "_buffers", "_modules"):
            if d.get(reg) is not None:
                d[reg].pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for reg in ("_parameters", "_buffers", "_modules"):
            r = d.get(reg)
            if r is not None and name in r:
                return r[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        for reg in ("_parameters", "_buffers", "_modules"):
            if d.get(reg) is not None and name in d[reg]:
                del d[reg][name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self._discard(name)
        self._registry("_parameters")[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state, not a parameter (BatchNorm's running statistics): saved in
        the state dict (when persistent), never optimized."""
        self._discard(name)
        self._registry("_buffers")[name] = tensor
        if not persistent:
            self.__dict__["_non_persistent"].add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        self._discard(name)
        self._registry("_modules")[name] = module
        if module is not None:
            module.__dict__["_scope"] = name

    register_module = add_module

    # -- calling ---------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        scope = self.__dict__.get("_scope")
        if scope is None:
            return self.forward(*args, **kwargs)
        with graphc.scope(scope):
            return self.forward(*args, **kwargs)

    # -- walking ---------------------------------------------------------------------------------
    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(path, module) for this module and every sub-module, depth first."""
        seen: set[int] = set() if memo is None else memo
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            path, m = stack.pop()
            if remove_duplicate and id(m) in seen:
                continue
            seen.add(id(m))
            yield path, m
            kids = [
                (f"{path}.{k}" if path else k, c) for k, c in m._modules.items() if c is not None
            ]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for k, c in self._modules.items():
            if c is not None:
                yield k, c

    def children(self) -> Iterator[Module]:
        for _, c in self.named_children():
            yield c

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(path, parameter) pairs, e.g. ("fc1.weight", ...); each parameter once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix) if recurse else iter([(prefix, self)])
        for path, m in mods:
            for k, p in m._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                name = f"{path}.{k}" if path else k
                p._name = name  # pictures and graph inputs show the parameter's path
                yield name, p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        mods = self.named_modules(prefix=prefix) if recurse else iter([(prefix, self)])
        for path, m in mods:
            for k, b in m._buffers.items():
                if b is not None:
                    yield (f"{path}.{k}" if path else k), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self, destination: Any = None, prefix: str = "", keep_vars: bool = False):
        """Parameters and persistent buffers by path, as tensors without history."""
        out = OrderedDict() if destination is None else destination
        for path, m in self.named_modules(prefix=prefix.rstrip(".")):
            for k, p in m._parameters.items():
                if p is not None:
                    out[f"{path}.{k}" if path else k] = p if keep_vars else p.detach()
            for k, b in m._buffers.items():
                if b is not None and k not in m._non_persistent:
                    out[f"{path}.{k}" if path else k] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False):
        """Copy the values of `state_dict` into this model's parameters and buffers (in
        place). With `strict`, missing and unexpected keys are errors."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise GraphcError(
                "load_state_dict: "
                + "; ".join(
                    part
                    for part in (
                        f"missing keys {missing}" if missing else "",
                        f"unexpected keys {unexpected}" if unexpected else "",
                    )
                    if part
                ),
                user_location(),
            )
        with no_grad():
            for k, t in own.items():
                if k not in state_dict:
                    continue
                v = state_dict[k]
                src = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
                if tuple(src.shape) != tuple(t.shape):
                    raise GraphcError(
                        f"load_state_dict: {k} has shape {tuple(src.shape)} in the state dict "
                        f"and {tuple(t.shape)} in the model",
                        user_location(),
                    )
                t._s.set_data(np.array(src, dtype=t.dtype))
        return _Incompatible(missing, unexpected)

    # -- modes and conversions -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (Dropout active, BatchNorm with batch statistics), or evaluation
        mode with `mode=False`."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the parameters' gradients (set them to None, PyTorch's default)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.zero_()

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    def _convert(self, dtype: Any) -> Module:
        for t in list(self.parameters()) + list(self.buffers()):
            if t.dtype.kind == "f":
                with no_grad():
                    t._s.aval = t.type(dtype)._s.aval
                    t._s.set_data(t.numpy().astype(t._s.aval.dtype))
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """`to(dtype)` converts floating-point parameters and buffers; devices other than
        the CPU are not available."""
        from graphc.torch._tensor import _check_device, _is_device

        dtype = kwargs.get("dtype")
        for a in args:
            if _is_device(a):
                _check_device(a)
            else:
                dtype = a
        _check_device(kwargs.get("device", "cpu"))
        return self if dtype is None else self._convert(dtype)

    def cpu(self) -> Module:
        return self

    def cuda(self, *args: Any) -> Module:
        from graphc.torch._tensor import _check_device

        _check_device("cuda")
        return self

    def float(self) -> Module:
        return self._convert(np.float32)

    def double(self) -> Module:
        return self._convert(np.float64)

    # -- printing --------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for k, c in self._modules.items():
            inner = repr(c).replace("\n", "\n  ")
            lines.append(f"  ({k}): {inner}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._modules))


class Sequential(Module):
    """Modules applied in order (`Sequential(a, b, c)` or `Sequential(OrderedDict(...))`).

    Example:
        >>> nn.Sequential(nn.Linear(2, 3), nn.ReLU())[0]
        Linear(in_features=2, out_features=3, bias=True)
    """

    def __init__(self, *modules: Any):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            for k, m in modules[0].items():
                self.add_module(str(k), m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(i, slice):
            return Sequential(OrderedDict(items[i]))
        return items[i][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters the parent module sees.

    Example:
        >>> layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
    """

    def __init__(self, modules: Any = None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Any) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, module)
        self._modules.clear()
        for m in items:
            self.append(m)

    def __getitem__(self, i: int | slice) -> Any:
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __setitem__(self, i: int, module: Module) -> None:
        self.add_module(str(list(self._modules)[i]), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules whose parameters the parent module sees."""

    def __init__(self, modules: Any = None):
        super().__init__()
        for k, m in dict(modules or {}).items():
            self.add_module(str(k), m)

    def __getitem__(self, k: str) -> Module:
        return self._modules[k]

    def __setitem__(self, k: str, m: Module) -> None:
        self.add_module(k, m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> Any:
        return self._modules.keys()

    def values(self) -> Any:
        return self._modules.values()

    def items(self) -> Any:
        return self._modules.items()
