"""Small models and a model-state snapshot shared by the gradient and CAM tests."""

from __future__ import annotations

import torch
import torchvision
from torch import nn


def randomise_bn(m: nn.Module, g: torch.Generator | None = None) -> nn.Module:
    """Random BatchNorm statistics and affine weights, as a trained model has them:
    running_mean ~ N(0, 0.5), running_var ~ U(0.5, 2), weight ~ U(0.5, 1.5), bias ~ N(0, 0.1)."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_mean is not None:
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                mod.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                if mod.weight is not None:
                    mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    mod.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return m


def resnet18(g: torch.Generator | None = None) -> nn.Module:
    return randomise_bn(torchvision.models.resnet18(num_classes=10), g).eval()


def vgg11() -> nn.Module:
    m = torchvision.models.vgg11(num_classes=10)
    # same VGG feature stack; a small head keeps the test fast (the 4096-wide head adds nothing)
    m.avgpool = nn.AdaptiveAvgPool2d(1)
    m.classifier = nn.Sequential(nn.Linear(512, 32), nn.ReLU(inplace=True), nn.Linear(32, 10))
    return m.eval()


def mobilenet() -> nn.Module:
    return randomise_bn(torchvision.models.mobilenet_v3_small(num_classes=10)).eval()


def demo() -> nn.Module:
    from pyxai.models import demo_cnn

    return randomise_bn(demo_cnn(pretrained=False)).eval()


ARCHS = {"resnet18": resnet18, "vgg11": vgg11, "mobilenet_v3_small": mobilenet, "demo_cnn": demo}


def last_conv_layer(name: str, m: nn.Module) -> nn.Module:
    if name == "resnet18":
        return m.layer4[-1]
    if name == "vgg11":
        return m.features[-2]  # last ReLU before the final max-pool
    if name == "mobilenet_v3_small":
        return m.features[-1]
    return _last_4d(m)


def mid_layer(name: str, m: nn.Module) -> nn.Module:
    if name == "resnet18":
        return m.layer3
    if name == "vgg11":
        return m.features[10]
    if name == "mobilenet_v3_small":
        return m.features[6]
    return _last_4d(m, skip=1)


def _last_4d(m: nn.Module, skip: int = 0) -> nn.Module:
    seen: list[nn.Module] = []
    hooks = [c.register_forward_hook(lambda mod, i, o: seen.append(mod) if
                                     isinstance(o, torch.Tensor) and o.dim() == 4 and
                                     o.shape[-1] > 1 else None)
             for c in m.children()]
    try:
        with torch.no_grad():
            m(torch.zeros(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    return seen[-1 - skip]


def snapshot(m: nn.Module) -> dict:
    """Everything an explainer must leave as found."""
    return {
        "training": [x.training for x in m.modules()],
        "hooks": [(len(x._forward_hooks), len(x._forward_pre_hooks), len(x._backward_hooks),
                   len(getattr(x, "_backward_pre_hooks", {}))) for x in m.modules()],
        "requires_grad": [p.requires_grad for p in m.parameters()],
        "grad": [p.grad is None for p in m.parameters()],
        "state": {k: v.clone() for k, v in m.state_dict().items()},
    }


def assert_unchanged(m: nn.Module, snap: dict) -> None:
    now = snapshot(m)
    for key in ("training", "hooks", "requires_grad", "grad"):
        assert now[key] == snap[key], f"model {key} changed"
    for k, v in snap["state"].items():
        assert torch.equal(now["state"][k], v), f"model state {k} changed"


class Boom(Exception):
    pass


def exploding(layer: nn.Module):
    """A forward hook that raises inside the model (after the explainer's hooks are set)."""

    def hook(mod, inp, out):
        raise Boom("inside the model")

    return layer.register_forward_hook(hook)
