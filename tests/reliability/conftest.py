import pytest

from graphc.codegen import driver


@pytest.fixture(params=["kernel", "tape"])
def path(request, monkeypatch):
    """Compile through fused kernels, or force the tape machine for every eligible graph."""
    if request.param == "tape":
        monkeypatch.setattr(driver, "VM_MIN_OPS", 0)
    return request.param
