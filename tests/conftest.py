import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
# every pass's result is verified in tests; compiled kernels are shared through the disk cache
os.environ.setdefault("GRAPHC_VERIFY", "1")
os.environ.setdefault("GRAPHC_CACHE_DIR", os.path.join(ROOT, ".graphc-cache"))

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def check_golden(name: str, text: str) -> None:
    """Compare `text` with tests/golden/<name>; GRAPHC_UPDATE_GOLDEN=1 rewrites the file."""
    path = os.path.join(GOLDEN, name)
    if os.environ.get("GRAPHC_UPDATE_GOLDEN") == "1" or not os.path.exists(path):
        if os.environ.get("CI") and not os.path.exists(path):
            raise AssertionError(f"golden file {name} is missing")
        with open(path, "w") as f:
            f.write(text + "\n")
    with open(path) as f:
        assert text + "\n" == f.read(), f"IR differs from golden file {name}"
