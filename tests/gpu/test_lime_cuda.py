"""Lime and KernelShap on CUDA: the samples are drawn on the CPU (Captum's draws), so CUDA equals
CPU under the same seed, and Captum on CUDA. Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

import pyxai
from pyxai.registry import _grid_mask
from tests.engine.test_view import randomised_resnet18

captum_attr = pytest.importorskip("captum.attr")
pytest.importorskip("sklearn")
DEV = "cuda"


@pytest.mark.parametrize("cls", ["Lime", "KernelShap"])
def test_cuda_equals_cpu_and_captum(rng, cls):
    model = randomised_resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    kw = dict(target=[1, 7], feature_mask=_grid_mask(x, 4), n_samples=24,
              perturbations_per_eval=8)
    torch.manual_seed(0)
    cpu = getattr(pyxai, cls)(model).attribute(x, **kw)
    model, x = model.to(DEV), x.to(DEV)
    kw["feature_mask"] = kw["feature_mask"].to(DEV)
    torch.manual_seed(0)
    gpu = getattr(pyxai, cls)(model).attribute(x, **kw)
    torch.manual_seed(0)
    ref = getattr(captum_attr, cls)(model).attribute(x, **kw)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(gpu, ref, atol=1e-3, rtol=1e-3)
