import pytest

import graphc.codegen as cg


@pytest.fixture(params=["kernel", "tape"])
def path(request, monkeypatch):
    """Compile through fused kernels, or force the tape machine for every eligible graph."""
    if request.param == "tape":
        monkeypatch.setattr(cg, "VM_MIN_OPS", 0)
    return request.param
