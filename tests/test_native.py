"""Native extension status and backend dispatch."""

from __future__ import annotations

import pytest
import torch

import pyxai
from pyxai import _native
from pyxai.ops import NativeUnavailableError, resolve_backend


def test_native_status_fields():
    s = pyxai.native_status()
    for key in ("compiled", "devices", "reason", "build", "ops", "torch", "cuda_available"):
        assert key in s
    if s["compiled"]:
        assert "cpu" in s["devices"] and s["reason"] == ""
        assert {"upsample_masks", "upsample_blend", "weighted_mask_sum"} <= set(s["ops"])
        assert s["build"]["torch_version"].split(".")[:2] == torch.__version__.split(".")[:2]
    else:
        assert s["reason"]


def test_resolve_backend(monkeypatch):
    monkeypatch.delenv("PYXAI_BACKEND", raising=False)
    assert resolve_backend("reference", "cpu") == "reference"
    expect = "native" if _native.available("cpu") else "reference"
    assert resolve_backend("auto", "cpu") == expect
    assert resolve_backend(None, "cpu") == expect
    monkeypatch.setenv("PYXAI_BACKEND", "reference")
    assert resolve_backend(None, "cpu") == "reference"
    monkeypatch.setenv("PYXAI_BACKEND", "bogus")
    with pytest.raises(ValueError, match="PYXAI_BACKEND"):
        resolve_backend(None, "cpu")
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("gpu", "cpu")


def test_native_unavailable_says_why(monkeypatch):
    monkeypatch.setattr(_native, "_load", lambda: (None, "pyxai._C could not be imported (test)"))
    with pytest.raises(NativeUnavailableError, match="could not be imported"):
        resolve_backend("native", "cpu")
    assert resolve_backend("auto", "cpu") == "reference"
    assert _native.native_status()["compiled"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_native_cuda_message():
    if _native.available("cpu") and not _native.available("cuda"):
        with pytest.raises(NativeUnavailableError, match="CUDA"):
            resolve_backend("native", "cuda")
