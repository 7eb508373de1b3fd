"""``attribute(..., create_graph=True)``: maps differentiable w.r.t. the model parameters
(explanation-guided training), checked in float64 with ``torch.autograd.gradcheck`` on a tiny
model whose parameters are the gradcheck inputs."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

import pyxai


class Functional(nn.Module):
    """``base`` evaluated with the given parameter tensors (what gradcheck perturbs)."""

    def __init__(self, base: nn.Module, params: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.base = base
        self.params = params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.base, self.params, (x,))


def tiny() -> nn.Module:
    """ReLUs for the guided rule, and a tanh after them: the first-order map depends smoothly on
    the activations, so its derivative also flows back through the forward graph (where the
    guided rule must not act)."""
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(4, 4, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3)).double().eval()


T = [2, 0]
MAPS: dict[str, Callable] = {
    "Saliency": lambda m, x, **kw: pyxai.Saliency(m).attribute(x, target=T, **kw),
    "InputXGradient": lambda m, x, **kw: pyxai.InputXGradient(m).attribute(x, target=T, **kw),
    "IntegratedGradients": lambda m, x, **kw: pyxai.IntegratedGradients(m).attribute(
        x, target=T, n_steps=3, internal_batch_size=4, **kw),
    "NoiseTunnel": lambda m, x, **kw: pyxai.NoiseTunnel(pyxai.Saliency(m), seed=0).attribute(
        x, nt_samples=2, stdevs=0.1, target=T, abs=False, **kw),
    "GuidedBackprop": lambda m, x, **kw: pyxai.GuidedBackprop(m).attribute(x, target=T, **kw),
    "LayerGradCam": lambda m, x, **kw: pyxai.LayerGradCam(m, m.base[2]).attribute(
        x, target=T, **kw),
    "GuidedGradCam": lambda m, x, **kw: pyxai.GuidedGradCam(m, m.base[2]).attribute(
        x, target=T, **kw),
    "GradCAM": lambda m, x, **kw: pyxai.GradCAM(m, [m.base[2]]).attribute(x, T, **kw),
    "GradCAMPlusPlus": lambda m, x, **kw: pyxai.GradCAMPlusPlus(m, [m.base[1], m.base[2]])
    .attribute(x, T, **kw),
}


def _tiny_with_a_map(rng: torch.Generator, explain: Callable, x: torch.Tensor) -> nn.Module:
    """``tiny()`` with weights drawn from ``rng``, redrawn (at most 20 times) while its map of
    ``x`` is all zero: a ReLU can leave no positive CAM evidence (CI seed 1533455496), and a zero
    map has nothing to check."""
    for _ in range(20):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
        base = tiny()
        if float(explain(base, x).abs().max()) > 0:
            return base
    raise AssertionError("20 tiny models gave all-zero maps")


@pytest.mark.parametrize("name", list(MAPS))
def test_maps_are_differentiable_wrt_parameters(rng, name):
    x = torch.randn(2, 2, 6, 6, generator=rng, dtype=torch.float64)
    explain = MAPS[name]
    base = _tiny_with_a_map(
        rng, lambda m, x: explain(Functional(m, dict(m.named_parameters())).eval(), x), x)
    names = [n for n, _ in base.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in base.parameters())

    def f(*ps: torch.Tensor) -> torch.Tensor:
        return explain(Functional(base, dict(zip(names, ps))).eval(), x, create_graph=True)

    out = f(*params)
    assert out.requires_grad and float(out.abs().max()) > 0
    plain = explain(Functional(base, dict(zip(names, params))).eval(), x)
    assert not plain.requires_grad and torch.allclose(plain, out.detach(), rtol=1e-10)
    # eps 1e-8, not 1e-6: the ReLU of a CAM is a kink, and a CAM value 2e-9 from it (CI seed
    # 1964516979) was crossed by the 1e-6 finite difference; float64 keeps 1e-8 exact enough
    assert torch.autograd.gradcheck(f, params, eps=1e-8, fast_mode=True, atol=1e-6, rtol=1e-4)
    # a loss on the map trains the parameters: its gradient reaches every layer before the
    # explained one (an explanation-guided training step)
    grads = torch.autograd.grad(out.pow(2).sum(), params, allow_unused=True)
    assert grads[0] is not None and float(grads[0].abs().max()) > 0


def test_score_cam_and_sidu_say_no(rng):
    m = tiny()
    x = torch.randn(1, 2, 6, 6, generator=rng, dtype=torch.float64)
    with pytest.raises(ValueError, match="create_graph"):
        pyxai.ScoreCAM(m, [m[1]]).attribute(x, create_graph=True)
