"""DeepLift / DeepLiftShap on CUDA: equal to the CPU results and to Captum on CUDA (ResNet-18 with
randomised BatchNorm statistics; Captum on one module per ReLU use). Skipped without a GPU."""

from __future__ import annotations

import warnings

import pytest
import torch

import pyxai
from pyxai.benchmark.captum_methods import unshared
from tests.gradient._models import resnet18

captum_attr = pytest.importorskip("captum.attr")


@pytest.mark.parametrize("cls", ["DeepLift", "DeepLiftShap"])
def test_deeplift_cuda_equals_cpu_and_captum(rng, cls):
    m = resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    base = torch.randn(3 if cls == "DeepLiftShap" else 1, 3, 32, 32, generator=rng) * 0.3
    kw = dict(target=torch.tensor([2, 5]), return_convergence_delta=True)
    cpu, d_cpu = getattr(pyxai, cls)(m).attribute(x, base, **kw)
    mc, xc, bc = m.cuda(), x.cuda(), base.cuda()
    ours, d_ours = getattr(pyxai, cls)(mc).attribute(xc, bc, **kw)
    assert ours.device.type == "cuda"
    torch.testing.assert_close(ours.cpu(), cpu, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(d_ours.cpu(), d_cpu, atol=1e-3, rtol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(captum_attr, cls)(unshared(mc, xc)).attribute(xc, bc, target=kw["target"])
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
