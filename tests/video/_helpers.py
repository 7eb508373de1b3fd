"""Small models and frame sources shared by the video tests."""

from __future__ import annotations

import torch
from torch import nn

from tests.gradient._models import randomise_bn


def frame_cnn(g: torch.Generator) -> nn.Module:
    """A small random image CNN with BatchNorm (randomised statistics): Tensor[B, 3, H, W] -> [B, 5]."""
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1, stride=2), nn.BatchNorm2d(12), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5),
    )
    return randomise_bn(m, g).eval()


def clip_cnn(g: torch.Generator) -> nn.Module:
    """A small random 3-D CNN with BatchNorm3d: Tensor[B, 3, T, H, W] -> Tensor[B, 4]."""
    m = nn.Sequential(
        nn.Conv3d(3, 6, 3, padding=1), nn.BatchNorm3d(6), nn.ReLU(),
        nn.Conv3d(6, 8, 3, padding=1, stride=(1, 2, 2)), nn.BatchNorm3d(8), nn.ReLU(),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 4),
    )
    return randomise_bn(m, g).eval()


def frames(g: torch.Generator, n: int = 10, size: int = 24) -> torch.Tensor:
    """Random frames Tensor[n, 3, size, size] in [0, 1]."""
    return torch.rand(n, 3, size, size, generator=g)
