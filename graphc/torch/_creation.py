"""Creating tensors: from data (`tensor`, `from_numpy`), filled (`zeros`, `ones`, `full`,
`arange`, `linspace`, `eye`) and random (`randn`, `rand`, `randint`, `randperm`), and the
random generator `manual_seed` resets.

Created tensors are concrete: their arrays are made at once with NumPy (they are the leaves of
what is recorded later). Python floats make float32 tensors (the default dtype), Python ints
int64 and bools bool, as in PyTorch; NumPy arrays keep their dtype.

Example:
    >>> torch.manual_seed(0)
    >>> torch.randn(2, 3).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.torch._dtypes import get_default_dtype, to_dtype
from graphc.torch._tensor import Tensor, _check_device, _shape_args
from graphc.trace import user_location

__all__ = [
    "arange",
    "as_tensor",
    "device",
    "empty",
    "empty_like",
    "eye",
    "from_numpy",
    "full",
    "full_like",
    "generator",
    "initial_seed",
    "linspace",
    "manual_seed",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "random_tensor",
    "randperm",
    "seed",
    "tensor",
    "zeros",
    "zeros_like",
]

_gen = [np.random.default_rng(0)]
_seed = [0]


def manual_seed(s: int) -> Any:
    """Reseed the generator behind randn, rand, randint, randperm, layers' initial weights and
    dropout masks.

    Example:
        >>> torch.manual_seed(42)
    """
    _seed[0] = int(s)
    _gen[0] = np.random.default_rng(int(s))
    return _gen[0]


def seed() -> int:
    """Seed the generator from the operating system's entropy; returns the seed."""
    s = int(np.random.SeedSequence().entropy % (2**63))
    manual_seed(s)
    return s


def initial_seed() -> int:
    return _seed[0]


def generator() -> np.random.Generator:
    """The generator graphc.torch draws random numbers from."""
    return _gen[0]


class device:  # noqa: N801 (PyTorch's name)
    """A device name; graphc.torch runs on the CPU.

    Example:
        >>> dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    """

    def __init__(self, kind: str = "cpu", index: int | None = None):
        self.type = str(kind).split(":")[0]
        self.index = index

    def __str__(self) -> str:
        return self.type

    def __repr__(self) -> str:
        return f"device(type={self.type!r})"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(self.type)


def _dtype_of_data(data: Any) -> np.dtype:
    arr = np.asarray(data)
    if arr.dtype.kind == "f" and not isinstance(data, np.ndarray):
        return get_default_dtype()  # Python floats: the default dtype
    if arr.dtype.kind == "f":
        return arr.dtype
    if arr.dtype.kind in "iu":
        return arr.dtype if isinstance(data, np.ndarray) else np.dtype(np.int64)
    if arr.dtype.kind == "b":
        return arr.dtype
    raise GraphcError(f"cannot make a tensor from {type(data).__name__}", user_location())


def _unwrap(data: Any) -> Any:
    if isinstance(data, Tensor):
        return data.numpy()
    if isinstance(data, (list, tuple)):
        return [_unwrap(d) for d in data]
    return data


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, numbers, arrays, tensors).

    Example:
        >>> torch.tensor([[1.0, 2.0], [3.0, 4.0]]).dtype
        dtype('float32')
    """
    _check_device(device or "cpu")
    data = _unwrap(data)
    dt = to_dtype(dtype) if dtype is not None else _dtype_of_data(data)
    arr = np.array(data, dtype=dt)
    return Tensor._from_array(arr, requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """`data` as a tensor (a tensor of that dtype is returned as it is; arrays are shared)."""
    if isinstance(data, Tensor) and (dtype is None or to_dtype(dtype) == data.dtype):
        return data
    if isinstance(data, np.ndarray) and dtype is None:
        return from_numpy(data)
    return tensor(data, dtype, device)


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing `arr`'s memory (its dtype kept). The engine reads the array when a
    value is realized, so change it only after the values that read it are computed."""
    if not isinstance(arr, np.ndarray):
        raise GraphcError(
            f"from_numpy needs a NumPy array, got {type(arr).__name__}", user_location()
        )
    return Tensor._from_array(arr)


def _make(shape: tuple, dtype: Any, requires_grad: bool, fill: Any) -> Tensor:
    dt = to_dtype(dtype) if dtype is not None else get_default_dtype()
    arr = np.full(_shape_args(shape), fill, dt)
    return Tensor._from_array(arr, requires_grad)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (float32 unless `dtype`)."""
    return _make(size, dtype, requires_grad, 0)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (float32 unless `dtype`)."""
    return _make(size, dtype, requires_grad, 1)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor (of zeros: graphc.torch has no uninitialised memory)."""
    return _make(size, dtype, requires_grad, 0)


def full(
    size: Sequence[int],
    fill_value: Any,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """A tensor filled with `fill_value` (its dtype from the value unless `dtype`)."""
    if dtype is None:
        dtype = _dtype_of_data(fill_value)
    return _make(tuple(size), dtype, requires_grad, fill_value)


def _like(t: Tensor, dtype: Any) -> tuple[tuple, Any]:
    return tuple(t.shape), (dtype if dtype is not None else t.dtype)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(t, dtype)
    return _make(shape, dt, requires_grad, 0)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(t, dtype)
    return _make(shape, dt, requires_grad, 1)


def empty_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros_like(t, dtype, requires_grad)


def full_like(t: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(t, dtype)
    return _make(shape, dt, requires_grad, fill_value)


def random_tensor(draw: Callable[[], np.ndarray], requires_grad: bool = False) -> Tensor:
    """A tensor of `draw()`, which draws from the generator: a compiled function replaying a
    call draws anew with it (see `graphc.torch.compile`)."""
    t = Tensor._from_array(draw(), requires_grad)
    t._s.random = draw
    return t


def _draw(fn: Callable, shape: tuple, dtype: Any) -> Callable[[], np.ndarray]:
    dt = to_dtype(dtype) if dtype is not None else get_default_dtype()
    return lambda: fn(generator(), shape).astype(dt)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Samples of the standard normal distribution."""
    draw = _draw(np.random.Generator.standard_normal, _shape_args(size), dtype)
    return random_tensor(draw, requires_grad)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Samples of the uniform distribution on [0, 1)."""
    return random_tensor(_draw(np.random.Generator.random, _shape_args(size), dtype), requires_grad)


def randn_like(t: Tensor, dtype: Any = None) -> Tensor:
    return randn(*t.shape, dtype=dtype or t.dtype)


def rand_like(t: Tensor, dtype: Any = None) -> Tensor:
    return rand(*t.shape, dtype=dtype or t.dtype)


def randint(
    low: int,
    high: int | None = None,
    size: Sequence[int] = (),
    dtype: Any = None,
    device: Any = None,
) -> Tensor:
    """Random integers in [low, high) (int64); `randint(high, size)` starts at 0."""
    if high is None:
        low, high = 0, low
    dt = to_dtype(dtype) if dtype is not None else np.dtype(np.int64)
    shape = tuple(size)
    return random_tensor(lambda: generator().integers(low, high, shape).astype(dt))


def randperm(n: int, dtype: Any = None, device: Any = None) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    dt = to_dtype(dtype) if dtype is not None else np.dtype(np.int64)
    return random_tensor(lambda: generator().permutation(int(n)).astype(dt))


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Evenly spaced values in [start, end): int64 for integer arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else get_default_dtype()
    return Tensor._from_array(np.arange(start, end, step).astype(to_dtype(dtype)), requires_grad)


def linspace(
    start: float,
    end: float,
    steps: int,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """`steps` values from start to end inclusive."""
    dt = to_dtype(dtype) if dtype is not None else get_default_dtype()
    return Tensor._from_array(np.linspace(start, end, int(steps)).astype(dt), requires_grad)


def eye(
    n: int,
    m: int | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """The identity matrix (n x m)."""
    dt = to_dtype(dtype) if dtype is not None else get_default_dtype()
    return Tensor._from_array(
        np.eye(int(n), None if m is None else int(m), dtype=dt), requires_grad
    )
