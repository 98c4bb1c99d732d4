"""Trace -> verify -> print -> parse -> evaluate on the seed functions."""

import os

import numpy as np
import pytest
import seeds
from conftest import check_golden

import graphc
from graphc.verify import verify


def _concrete(args, rng):
    out = []
    for a in args:
        if isinstance(a, graphc.Spec):
            out.append(rng.standard_normal(a.shape).astype(a.dtype))
        else:
            out.append(a)
    return out


@pytest.mark.parametrize("name", ["poly", "sqdiff", "mlp", "convnet"])
def test_seed_golden_and_roundtrip(name, rng):
    fn = getattr(seeds, name)
    args = seeds.EXAMPLE_ARGS[name]
    if name == "convnet":  # keep the test small: same program, batch of 2
        args = (graphc.spec("f32[2,1,28,28]"),) + args[1:]
    g = verify(graphc.trace(fn, *args))
    check_golden(f"{name}.ir", str(g))
    g2 = graphc.parse(str(g))
    assert g2 == g and hash(g2) == hash(g)
    assert str(g2) == str(g)
    vals = _concrete(args, rng)
    got = graphc.evaluate(g, *vals)[0]
    want = fn(*vals)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(graphc.evaluate(g2, *vals)[0], want, rtol=1e-5, atol=1e-5)


def test_a_missing_golden_file_fails_and_is_not_written(monkeypatch):
    import conftest

    monkeypatch.delenv("GRAPHC_UPDATE_GOLDEN", raising=False)
    name = "no-such-golden-file.ir"
    with pytest.raises(AssertionError, match="is missing"):
        conftest.check_golden(name, "anything")
    assert not os.path.exists(os.path.join(conftest.GOLDEN, name))
