"""``pyxai.lrp.AttributeCanonizer`` (Zennit's): the attributes a user's map returns, set on the
per-call view (LRP equals Zennit with Zennit's own AttributeCanonizer), or in place by ``register``
until ``remove()`` restores every attribute."""

from __future__ import annotations

import types

import pytest
import torch

import pyxai
from pyxai.lrp import AttributeCanonizer, SequentialMergeBatchNorm, Sum
from pyxai.models import BasicBlock, demo_cnn
from tests.gradient._models import randomise_bn

zc = pytest.importorskip("zennit.canonizers")
from zennit.attribution import Gradient  # noqa: E402
from zennit.composites import EpsilonPlusFlat  # noqa: E402
from zennit.layer import Sum as ZSum  # noqa: E402


def _block_forward(self, x: torch.Tensor) -> torch.Tensor:
    """A BasicBlock whose residual addition is a Sum module over the stacked branches."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    return self.relu(self.canonizer_sum(torch.stack([identity, out], dim=-1)))


def _attribute_map(sum_cls):
    def attribute_map(name: str, module: torch.nn.Module):
        if isinstance(module, BasicBlock):
            return {"forward": types.MethodType(_block_forward, module), "canonizer_sum": sum_cls()}
        return None

    return attribute_map


def test_lrp_with_attribute_canonizer_equals_zennit(rng):
    model = randomise_bn(demo_cnn(pretrained=False), rng).eval()
    x = torch.rand(2, 3, 32, 32, generator=rng)
    with torch.no_grad():
        target = model(x).argmax(1)
    onehot = torch.nn.functional.one_hot(target, 6).float()
    composite = EpsilonPlusFlat(canonizers=[zc.SequentialMergeBatchNorm(),
                                            zc.AttributeCanonizer(_attribute_map(ZSum))])
    with Gradient(model, composite) as attributor:
        _, want = attributor(x.clone().requires_grad_(True), onehot)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    canonizers = [SequentialMergeBatchNorm(), AttributeCanonizer(_attribute_map(Sum))]
    got = pyxai.LRP(model, composite="epsilon_plus_flat", canonizers=canonizers,
                    output_relevance="one_hot").attribute(x, target=target)
    torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5 * want.abs().max().item())
    # the attributes went on the view: the model is as found
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any("forward" in vars(m) or "canonizer_sum" in m._modules for m in model.modules())
    # the Sum the map inserted got its rule (Norm): without the canonizer the result differs
    plain = pyxai.LRP(model, composite="epsilon_plus_flat", canonizers=[SequentialMergeBatchNorm()],
                      output_relevance="one_hot").attribute(x, target=target)
    assert not torch.allclose(plain, got, atol=1e-3)


def test_register_sets_in_place_and_remove_restores(rng):
    model = randomise_bn(demo_cnn(pretrained=False), rng).eval()
    x = torch.rand(2, 3, 32, 32, generator=rng)
    block = model.layer2[0]
    block.tag = "mine"  # an existing instance attribute the map overwrites
    with torch.no_grad():
        before = model(x)

    def attribute_map(name, module):
        if isinstance(module, BasicBlock):
            return {"forward": types.MethodType(_block_forward, module), "canonizer_sum": Sum(),
                    "tag": "canonized"}
        return None

    canonizer = AttributeCanonizer(attribute_map)
    handle = canonizer.register(model)
    assert block.tag == "canonized" and isinstance(block.canonizer_sum, Sum) and "forward" in vars(block)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-6, atol=1e-6)  # same function
    handle.remove()
    handle.remove()  # idempotent
    assert block.tag == "mine" and "canonizer_sum" not in block._modules and "forward" not in vars(block)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    # Zennit's per-module form, then canonizer.remove() undoes every registration
    canonizer.register(block, {"canonizer_sum": Sum(), "forward": types.MethodType(_block_forward, block)})
    canonizer.register(model)
    canonizer.remove()
    assert block.tag == "mine" and "canonizer_sum" not in block._modules and "forward" not in vars(block)


def test_bad_attribute_maps():
    with pytest.raises(TypeError, match="attribute_map must be a callable"):
        AttributeCanonizer({"forward": None})
    model = demo_cnn(pretrained=False)
    with pytest.raises(TypeError, match="must return None or a dict"):
        pyxai.LRP(model, canonizers=[AttributeCanonizer(lambda name, m: ["forward"])]).attribute(
            torch.rand(1, 3, 32, 32), target=0)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        AttributeCanonizer(lambda name, m: None).register("model")
