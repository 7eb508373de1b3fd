"""Synthetic attribution maps with known groups, for the SpRAy tests."""

from __future__ import annotations

import torch


def grouped_maps(gen: torch.Generator, n: int = 240, groups: int = 3, amp: float = 0.1,
                 size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor[n, 3, size, size] float64 maps in ``groups`` groups (a hot block per group, in a
    different place), and the group of each: Tensor[n]. A small ``amp`` keeps the k-NN graph
    connected; a large one splits it into one component per group."""
    maps = torch.rand(n, 3, size, size, generator=gen, dtype=torch.float64)
    group = torch.randint(groups, (n,), generator=gen)
    weight = torch.rand(n, 1, 1, 1, generator=gen, dtype=torch.float64)
    half = size // 2
    for c in range(groups):
        i, j = divmod(c % 4, 2)
        sel = group == c
        maps[sel, :, half * i : half * i + 6, half * j : half * j + 6] += amp * (1 + weight[sel])
    return maps, group
