"""Small models shared by the perturbation tests (random weights, eval mode, fast on 2 cores)."""

from __future__ import annotations

import torch
from torch import nn


def tiny_cnn(classes: int = 5, channels: int = 3, seed: int = 0) -> nn.Module:
    """Conv-ReLU-pool-linear classifier for [B, C, H, W] inputs (any H, W >= 4)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(8 * 16, classes),
        )
    return m.eval()


class VideoNet(nn.Module):
    """[B, C, T, H, W] -> [B, K]: a 3-D conv then a linear layer."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.adaptive_avg_pool3d(torch.relu(self.conv(x)), (2, 2, 2))
        return self.fc(h.flatten(1))
