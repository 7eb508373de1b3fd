"""LRP and CRP benchmarks: pyxai (native / reference) vs Zennit / zennit-crp vs a plain input gradient.

Workloads (CPU; quick=True shrinks them):

* ``lrp``: torchvision ResNet-18 (random weights, random BatchNorm statistics), batch 8, 112x112,
  ``epsilon_plus_flat`` with the ResNet canonizer, relevance from the one-hot target. Floor: the
  plain input gradient of the same model on the same batch with its parameters frozen (one
  forward + one backward, no parameter gradients).
* ``crp``: the same model, 32 concepts (channels 0..31) of ``layer3.1.conv2``, batch 8, 64x64
  (quick: 8 concepts, batch 2). zennit-crp: ``CondAttribution`` with ``exclude_parallel=True``
  (its default) on the same conditions. Floor: one plain input gradient on the 32 x 8 rows.

Parity before timing: pyxai ~ reference backend ~ Zennit (Zennit's composite gets its own Pass rule
on BatchNorm, as Zennit >= 0.5 does; see tests/lrp/test_zennit_parity.py).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from pyxai.benchmark.core import Case, register


def _model() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def _zennit_composite(canonizers: list):
    """Zennit's EpsilonPlusFlat with BatchNorm -> Pass (Zennit >= 0.5's base map)."""
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Epsilon, Flat, Norm, Pass, ZPlus
    from zennit.types import Activation, AvgPool, BatchNorm, Convolution, Linear

    layer_map = [(Activation, Pass()), (Sum, Norm()), (AvgPool, Norm()), (BatchNorm, Pass()),
                 (Convolution, ZPlus()), (nn.Linear, Epsilon())]
    return SpecialFirstLayerMapComposite(layer_map, [(Linear, Flat())], canonizers=canonizers)


def _onehot(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model(x)
    target = out.argmax(1)
    onehot = torch.zeros_like(out)
    onehot[torch.arange(x.shape[0]), target] = 1
    return target, onehot


def _input_gradient(model: nn.Module, x: torch.Tensor, onehot: torch.Tensor) -> Callable:
    def run() -> torch.Tensor:
        flags = [p.requires_grad for p in model.parameters()]
        model.requires_grad_(False)
        try:
            xx = x.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                (g,) = torch.autograd.grad(model(xx), xx, onehot)
        finally:
            for p, f in zip(model.parameters(), flags):
                p.requires_grad_(f)
        return g

    return run


@register("lrp")
def lrp_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    import pyxai

    model = _model().to(device)
    b, size = (2, 64) if quick else (8, 112)
    x = torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    target, onehot = _onehot(model, x)

    def explainer(backend: str | None) -> Callable:
        lrp = pyxai.LRP(model, composite="epsilon_plus_flat", output_relevance="one_hot", backend=backend)
        return lambda: lrp.attribute(x, target=target)

    def zennit() -> torch.Tensor:
        from zennit.attribution import Gradient
        from zennit.torchvision import ResNetCanonizer

        with Gradient(model, _zennit_composite([ResNetCanonizer()])) as attributor:
            _, rel = attributor(x.clone().requires_grad_(True), onehot)
        return rel

    return [Case(
        name=f"resnet18 {size}x{size} b={b} eps+flat",
        impls={"pyxai": explainer(None), "reference": explainer("reference"),
               "floor": _input_gradient(model, x, onehot), "zennit": zennit},
        parity=[("pyxai", "reference", 1e-4), ("pyxai", "zennit", 1e-4)],
        device=device,
        notes="floor = plain input gradient (forward + backward, parameters frozen)",
    )]


@register("crp")
def crp_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    import pyxai

    model = _model().to(device)
    b, size, k = (2, 32, 8) if quick else (8, 64, 32)
    layer = "layer3.1.conv2"
    x = torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(2)).to(device)
    target, _ = _onehot(model, x)
    concepts = list(range(k))

    def explainer(backend: str | None) -> Callable:
        crp = pyxai.CRP(model, composite="epsilon_plus_flat", backend=backend)
        return lambda: crp.attribute(x, target=target, concepts={layer: concepts}).sum(2)

    def zennit_crp() -> torch.Tensor:
        from crp.attribution import CondAttribution
        from zennit.torchvision import ResNetCanonizer

        attr = CondAttribution(model, no_param_grad=False)
        maps = []
        for i in range(b):  # conditions carry the sample's own target
            conds = [{layer: [c], "y": [int(target[i])]} for c in concepts]
            res = attr(x[i : i + 1].clone().requires_grad_(True), conds,
                       _zennit_composite([ResNetCanonizer()]))
            maps.append(res.heatmap)
        return torch.stack(maps)

    rows = x.repeat(k, 1, 1, 1)
    onehot_rows = _onehot(model, rows)[1]
    return [Case(
        name=f"resnet18 {size}x{size} b={b} {k} concepts",
        impls={"pyxai": explainer(None), "reference": explainer("reference"),
               "floor": _input_gradient(model, rows, onehot_rows), "zennit-crp": zennit_crp},
        parity=[("pyxai", "reference", 1e-4), ("pyxai", "zennit-crp", 1e-4)],
        device=device,
        notes=f"floor = one plain input gradient on the {k} x {b} rows; concepts of {layer}",
    )]
