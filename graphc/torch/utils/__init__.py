"""`torch.utils`: `data` (Dataset, TensorDataset, DataLoader)."""

from graphc.torch.utils import data

__all__ = ["data"]
