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


def test_per_layer_register_equals_zennit(rng):
    """Zennit's per-layer ``MergeBatchNorm.register(linears, batch_norm)`` and a single residual
    block's ``register(block)``; ``remove()`` restores exactly."""
    zc = pytest.importorskip("zennit.canonizers")
    model = randomise_bn(torchvision.models.resnet18(num_classes=10), rng).eval()
    block = model.layer2[0]
    x = torch.randn(2, 64, 8, 8, generator=rng)
    with torch.no_grad():
        before = block(x)
    state = _state(model)
    # the downsample branch and conv1 share nothing: merge bn1 into conv1 (one), then into a list
    zennit_merge = zc.SequentialMergeBatchNorm()
    zennit_merge.register([block.conv1], block.bn1)
    with torch.no_grad():
        want_w, want_b = block.conv1.weight.clone(), block.conv1.bias.clone()
        want = block(x)
    zennit_merge.remove()
    block.conv1.bias = None  # Zennit's remove leaves a bias Parameter on a bias-free layer
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    ours = C.SequentialMergeBatchNorm()
    handle = ours.register([block.conv1], block.bn1)
    with torch.no_grad():
        torch.testing.assert_close(block.conv1.weight, want_w)
        torch.testing.assert_close(block.conv1.bias, want_b)
        torch.testing.assert_close(block(x), want, rtol=1e-5, atol=1e-5)
    handle.remove()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert block.conv1.bias is None and all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
    # one module (not a list), and a residual block on its own
    ours.register(block.downsample[0], block.downsample[1])
    res = C.ResidualBlockCanonizer()
    res.register(block)
    assert "canonizer_sum" in block._modules and "forward" in vars(block)
    with torch.no_grad():
        torch.testing.assert_close(block(x), before, rtol=1e-4, atol=1e-4)  # merged BN keeps eps
    res.remove()
    ours.remove()
    assert "canonizer_sum" not in block._modules and "forward" not in vars(block)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(TypeError, match="linears"):
        ours.register([block.bn1], block.bn1)
    with pytest.raises(TypeError, match="batch_norm"):
        ours.register(block.conv1, block.conv2)
    with pytest.raises(ValueError, match="batch_norm has 128 features"):
        ours.register(model.conv1, block.bn1)
