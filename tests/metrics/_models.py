"""Tiny random-weight models and explainers for the metric tests (nothing downloads)."""

from __future__ import annotations

import torch
from torch import nn


def small_cnn(in_ch: int = 3, n_classes: int = 5, seed: int = 0) -> nn.Module:
    """A small conv net with random weights (BatchNorm in eval mode with random statistics)."""
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(in_ch, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, n_classes),
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        m[1].running_mean.copy_(torch.randn(8, generator=g) * 0.1)
        m[1].running_var.copy_(torch.rand(8, generator=g) + 0.5)
    return m.eval()


class InputXGrad:
    """A minimal explainer with the pyxai interface: input x gradient of the target score."""

    def __init__(self, model: nn.Module) -> None:
        self.forward_func = model

    def attribute(self, inputs: torch.Tensor, target=None) -> torch.Tensor:
        x = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = self.forward_func(x)
            if target is None:
                target = out.argmax(1)
            t = torch.as_tensor(target).reshape(-1).expand(x.shape[0])
            grad, = torch.autograd.grad(out.gather(1, t[:, None]).sum(), x)
        return (grad * inputs).detach()
