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


def marker_line(path: str, marker: str) -> int:
    """The line of the file at `path` that ends with the comment `# <marker>`."""
    with open(path) as f:
        hits = [i for i, line in enumerate(f, 1) if line.rstrip().endswith("# " + marker)]
    assert len(hits) == 1, f"marker {marker!r} found {len(hits)} times"
    return hits[0]


def assert_same_leaves(got, want, tol: float = 1e-12) -> None:
    """Same number of leaves; each with NumPy's shape and dtype and its values (allclose
    within `tol` for floats, equal otherwise)."""

    def leaves(x):
        return list(x) if isinstance(x, (list, tuple)) else [x]

    got, want = leaves(got), leaves(want)
    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.shape, g.dtype) == (w.shape, w.dtype), (g.shape, g.dtype, w.shape, w.dtype)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
        else:
            np.testing.assert_array_equal(g, w)


def check_golden(name: str, text: str) -> None:
    """Compare `text` with tests/golden/<name>. A missing golden file is a failure: only
    GRAPHC_UPDATE_GOLDEN=1 writes (or rewrites) one, so a test never passes by writing the
    answer it then compares with."""
    path = os.path.join(GOLDEN, name)
    if os.environ.get("GRAPHC_UPDATE_GOLDEN") == "1":
        with open(path, "w") as f:
            f.write(text + "\n")
    if not os.path.exists(path):
        raise AssertionError(
            f"golden file {name} is missing (GRAPHC_UPDATE_GOLDEN=1 writes it from this run)"
        )
    with open(path) as f:
        assert text + "\n" == f.read(), f"IR differs from golden file {name}"


def random_program(seed: int, steps: int = 12):
    """A random elementwise/reduction program of two arrays (the same one on every trace):
    broadcasting, row and column reductions, where, transcendental functions."""
    from graphc import numpy as gnp

    def prog(x, y):
        rng = np.random.default_rng(seed)
        vals = [x, y]
        for _ in range(steps):
            a, b = vals[rng.integers(len(vals))], vals[rng.integers(len(vals))]
            k = rng.integers(10)
            if k == 0:
                v = np.tanh(a) + b
            elif k == 1:
                v = np.maximum(a, b) * 0.5
            elif k == 2:
                v = np.sum(a * b, axis=-1, keepdims=True) + a
            elif k == 3:
                v = np.where(a > b, np.exp(-np.abs(a)), b)
            elif k == 4:
                v = gnp.sigmoid(a - b)
            elif k == 5:
                v = np.max(a, axis=0) + b
            elif k == 6:
                v = a / (1 + b * b)
            elif k == 7:
                v = np.sum(a, axis=0, keepdims=True) * b
            elif k == 8:
                v = np.sum(a) * b - np.log1p(np.abs(b))
            else:
                v = np.max(a, axis=0) + gnp.sigmoid(b)
            vals.append(v)
        return tuple(vals[2:])

    return prog


def random_args(seed: int, shape: tuple[int, ...]) -> list:
    data = np.random.default_rng(100 + seed)
    return [data.standard_normal(shape).astype(np.float32) for _ in range(2)]
