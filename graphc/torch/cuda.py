"""`torch.cuda`: graphc.torch runs on the CPU, so no CUDA device is available.

Example:
    >>> torch.cuda.is_available()
    False
"""

from __future__ import annotations

__all__ = ["device_count", "is_available", "manual_seed", "manual_seed_all"]


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def manual_seed(seed: int) -> None:
    """Nothing to seed: there is no CUDA device."""


manual_seed_all = manual_seed
