"""pyxai.LRP against Zennit itself: canonized VGG-11-BN, ResNet-18 and demo_cnn, every named composite.

Zennit's own rules, composite classes and canonizers are used. Two version differences are bridged
on Zennit's side with Zennit's own classes: BatchNorm gets Zennit's Pass rule (Zennit >= 0.5 does
this in every composite; 0.4 leaves a merged BatchNorm's 1/sqrt(1 + eps) gradient), and with Zennit
<= 0.4, whose Gamma rule is not yet the generalised one, pyxai is run with Gamma(generalized=False).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import pyxai
from pyxai import rules as R
from pyxai.lrp import Composite
from pyxai.lrp import types as T
from pyxai.lrp.composites import COMPOSITES, layer_map_base

zennit = pytest.importorskip("zennit")
torchvision = pytest.importorskip("torchvision")
from zennit import rules as zr  # noqa: E402
from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import AttributeCanonizer, SequentialMergeBatchNorm  # noqa: E402
from zennit.composites import LayerMapComposite, SpecialFirstLayerMapComposite  # noqa: E402
from zennit.layer import Sum as ZSum  # noqa: E402
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetCanonizer, VGGCanonizer  # noqa: E402
from zennit.types import Activation, AvgPool, BatchNorm, Convolution  # noqa: E402
from zennit.types import Linear as ZLinear  # noqa: E402

GENERALIZED_GAMMA = "stabilizer" in inspect.signature(zr.Gamma.__init__).parameters
LOW, HIGH = -3.0, 3.0
TOL = 2e-5  # float32; float64 runs agree to ~1e-15


def zennit_composite(name: str, canonizers: list):
    base = [(Activation, zr.Pass()), (ZSum, zr.Norm()), (AvgPool, zr.Norm()), (BatchNorm, zr.Pass())]
    dense = (nn.Linear, zr.Epsilon())
    if name == "epsilon_gamma_box":
        return SpecialFirstLayerMapComposite(
            base + [(Convolution, zr.Gamma(0.25)), dense], [(Convolution, zr.ZBox(LOW, HIGH))],
            canonizers=canonizers,
        )
    conv = zr.ZPlus() if "plus" in name else zr.AlphaBeta(2, 1)
    if name.endswith("_flat"):
        return SpecialFirstLayerMapComposite(base + [(Convolution, conv), dense], [(ZLinear, zr.Flat())],
                                             canonizers=canonizers)
    return LayerMapComposite(base + [(Convolution, conv), dense], canonizers=canonizers)


def pyxai_composite(name: str):
    if name == "epsilon_gamma_box" and not GENERALIZED_GAMMA:
        return Composite(
            layer_map=layer_map_base() + [(T.Convolution, R.Gamma(0.25, generalized=False)),
                                          (nn.Linear, R.Epsilon())],
            first_map=[(T.Convolution, R.ZBox(LOW, HIGH))], name=name,
        )
    return name


class DemoBlockCanonizer(AttributeCanonizer):
    """Zennit's own BasicBlock forward, attached to pyxai.models' BasicBlock (same attributes)."""

    def __init__(self):
        super().__init__(self._map)

    @staticmethod
    def _map(name, module):
        from pyxai.models import BasicBlock

        if isinstance(module, BasicBlock):
            return {"forward": ResNetBasicBlockCanonizer.forward.__get__(module), "canonizer_sum": ZSum()}
        return None


def _randomize_bn(model: nn.Module) -> nn.Module:
    # the global generator, which the ``rng`` fixture seeds: PYXAI_TEST_SEED replays the model too
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features) - 0.5)
    return model.eval()


def _vgg11_bn() -> nn.Module:
    """torchvision's VGG-11-BN with a narrow classifier (same layer types, 60x fewer weights)."""
    model = torchvision.models.vgg11_bn(weights=None, num_classes=10)
    model.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 64), nn.ReLU(True),
        nn.Dropout(), nn.Linear(64, 10),
    )
    return model


def _models():
    out = [
        ("vgg11_bn", _vgg11_bn, lambda: [VGGCanonizer()], 32),
        ("resnet18", lambda: torchvision.models.resnet18(weights=None), lambda: [ResNetCanonizer()], 32),
    ]
    try:
        from pyxai.models import demo_cnn

        out.append(("demo_cnn", lambda: demo_cnn(pretrained=False),
                    lambda: [SequentialMergeBatchNorm(), DemoBlockCanonizer()], 32))
    except ImportError:
        pass
    return out


MODELS = {name: spec for name, *spec in _models()}
_CACHE: dict = {}


def _setup(arch):
    if arch not in _CACHE:
        make, canon, size = MODELS[arch]
        model = _randomize_bn(make())
        _CACHE[arch] = (model, canon, size)
    return _CACHE[arch]


@pytest.mark.parametrize("arch", list(MODELS))
@pytest.mark.parametrize("name", COMPOSITES)
def test_lrp_equals_zennit(rng, arch, name):
    model, canon, size = _setup(arch)
    x = torch.randn(2, 3, size, size, generator=rng)
    with torch.no_grad():
        out = model(x)
    target = torch.randint(0, out.shape[1], (2,), generator=rng)
    onehot = torch.zeros_like(out)
    onehot[torch.arange(2), target] = 1
    composite = None if name == "gradient" else zennit_composite(name, canon())
    with Gradient(model, composite) as attributor:
        canon_out, want = attributor(x.clone().requires_grad_(True), onehot)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    lrp = pyxai.LRP(model, composite=pyxai_composite(name), low=LOW, high=HIGH, output_relevance="one_hot")
    got = lrp.attribute(x, target=target)
    torch.testing.assert_close(got, want, rtol=TOL, atol=TOL * want.abs().max().item())
    # the model is exactly as found
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert "forward" not in vars(model) and not any("canonizer_sum" in m._modules for m in model.modules())
    if name != "epsilon_plus_flat":
        return
    # relevance starting from the score = one-hot map scaled by the score (of the canonized model:
    # a merged BatchNorm keeps its eps, as in Zennit, so scores move by ~1e-5)
    got_score = pyxai.LRP(model, composite=pyxai_composite(name), low=LOW, high=HIGH).attribute(x, target)
    scale = canon_out.detach()[torch.arange(2), target].reshape(2, 1, 1, 1)
    want = want * scale
    torch.testing.assert_close(got_score, want, rtol=TOL, atol=TOL * want.abs().max().item())
