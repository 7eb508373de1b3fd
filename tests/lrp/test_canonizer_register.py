"""Zennit's canonizer interface: ``handle = canonizer.register(model)`` canonizes the model in
place, equal to Zennit's canonizer applied to the same model, and ``remove()`` restores it."""

from __future__ import annotations

import pytest
import torch
import torchvision

from pyxai.lrp import canonizers as C
from tests.gradient._models import randomise_bn

ztv = pytest.importorskip("zennit.torchvision")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_register_equals_zennit_and_remove_restores(rng):
    model = randomise_bn(torchvision.models.resnet18(num_classes=10), rng).eval()
    x = torch.randn(2, 3, 32, 32, generator=rng)
    with torch.no_grad():
        before = model(x)
    state = _state(model)
    zc = ztv.ResNetCanonizer()
    handles = zc.apply(model)
    with torch.no_grad():
        want = model(x)
        want_bn = model.layer1[0].bn1.running_var.clone()
    for h in handles:
        h.remove()
    ours = C.ResNetCanonizer()
    handle = ours.register(model)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.layer1[0].bn1.running_var, want_bn)
    assert any("canonizer_sum" in m._modules or "forward" in vars(m) for m in model.modules())
    handle.remove()
    handle.remove()  # idempotent
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert "forward" not in vars(model.layer1[0])
    assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
    # canonizer.remove() undoes every registration of that canonizer
    ours.register(model)
    ours.remove()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(TypeError, match="model"):
        ours.register("resnet")
