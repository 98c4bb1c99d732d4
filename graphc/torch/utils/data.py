"""`torch.utils.data`: `Dataset`, `TensorDataset`, `random_split` and `DataLoader` (batches as
stacked tensors, optionally shuffled by graphc.torch's generator).

Batches of a `TensorDataset` are cut from its arrays with one NumPy indexing per tensor; any
other dataset's items are stacked.

Example:
    >>> ds = TensorDataset(torch.randn(100, 4), torch.randint(0, 2, (100,)))
    >>> for xb, yb in DataLoader(ds, batch_size=32, shuffle=True):
    ...     pass
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from graphc.ir import GraphcError
from graphc.torch._creation import generator
from graphc.torch._tensor import Tensor
from graphc.trace import user_location

__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "random_split"]


class Dataset:
    """Base class: define `__getitem__(i)` and `__len__()`."""

    def __getitem__(self, i: int) -> Any:  # pragma: no cover
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the i-th rows of tensors of equal length."""

    def __init__(self, *tensors: Tensor):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise GraphcError("TensorDataset needs tensors of equal length", user_location())
        self.tensors = tensors

    def __getitem__(self, i: Any) -> tuple[Tensor, ...]:
        return tuple(t[i] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


class Subset(Dataset):
    """The samples of `dataset` at `indices`."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset, lengths: Sequence[Any], generator_: Any = None) -> list[Subset]:
    """Split into non-overlapping subsets of the given lengths (or fractions)."""
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths):
        sizes = [int(np.floor(n * f)) for f in lengths]
        for k in range(n - sum(sizes)):
            sizes[k % len(sizes)] += 1
    else:
        sizes = [int(x) for x in lengths]
    perm = generator().permutation(n)
    out, start = [], 0
    for s in sizes:
        out.append(Subset(dataset, perm[start : start + s].tolist()))
        start += s
    return out


class DataLoader:
    """Batches of a dataset: tuples of stacked tensors of `batch_size` samples.

    Example:
        >>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        **kwargs: Any,
    ):
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        order = generator().permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        for i in range(0, stop, self.batch_size):
            yield self._batch(order[i : i + self.batch_size])

    def _batch(self, idx: np.ndarray) -> Any:
        ds = self.dataset
        if isinstance(ds, Subset) and isinstance(ds.dataset, TensorDataset):
            idx, ds = np.asarray(ds.indices)[idx], ds.dataset
        if isinstance(ds, TensorDataset):
            return [Tensor._from_array(t.numpy()[idx]) for t in ds.tensors]
        items = [ds[int(i)] for i in idx]
        return _collate(items)


def _collate(items: list[Any]) -> Any:
    first = items[0]
    if isinstance(first, (tuple, list)):
        return [_collate([it[k] for it in items]) for k in range(len(first))]
    if isinstance(first, Tensor):
        return Tensor._from_array(np.stack([it.numpy() for it in items]))
    arr = np.asarray(items)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32) if not isinstance(first, np.ndarray) else arr
    return Tensor._from_array(arr)
