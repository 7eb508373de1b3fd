"""LRP / CRP on CUDA: native == reference == CPU, differentiable relevances, and no host sync in any
per-layer step (``torch.cuda.set_sync_debug_mode("error")``). Skipped without a GPU."""

from __future__ import annotations

import copy

import pytest
import torch

import pyxai
from pyxai.lrp import core
from tests.conftest import native_or_skip
from tests.lrp.test_lrp import _GradNet, _random_bn, _resnet10

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _guarded(fn):
    def run(*args, **kwargs):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return fn(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    return run


def test_lrp_crp_cuda_parity_without_syncs(rng, monkeypatch):
    native_or_skip("cuda")
    pytest.importorskip("torchvision")
    model = _resnet10(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    target, concepts = [1, 2], {"layer3.0.conv2": [1, [2, 5]]}
    want = pyxai.LRP(model, backend="reference").attribute(x, target=target)
    want_crp = pyxai.CRP(model, backend="reference").attribute(x, target=target, concepts=concepts)
    gpu, xg = copy.deepcopy(model).cuda(), x.cuda()
    ref = pyxai.LRP(gpu, backend="reference").attribute(xg, target=target)
    monkeypatch.setattr(core._LayerState, "run", _guarded(core._LayerState.run))
    monkeypatch.setattr(core._LayerState, "relevance", _guarded(core._LayerState.relevance))
    nat = pyxai.LRP(gpu, backend="native").attribute(xg, target=target)
    crp = pyxai.CRP(gpu, backend="native").attribute(xg, target=target, concepts=concepts)
    for got, exp in ((nat, ref), (nat.cpu(), want), (crp.cpu(), want_crp)):
        torch.testing.assert_close(got, exp, rtol=1e-4, atol=1e-4 * exp.abs().max().item())


def test_create_graph_cuda_native_equals_reference(rng):
    native_or_skip("cuda")
    model = _random_bn(_GradNet(), rng).cuda()
    x = torch.randn(3, 2, 4, 4, generator=rng).cuda()
    grads = {}
    for backend in ("reference", "native"):
        rel = pyxai.LRP(model, composite="epsilon_plus", backend=backend).attribute(
            x, target=[0, 1, 2], create_graph=True)
        grads[backend] = torch.autograd.grad((rel * rel).sum(), list(model.parameters()))
    for a, b in zip(grads["reference"], grads["native"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * max(1.0, b.abs().max().item()))
