"""Small modules that canonizers insert so that rules can be attached to functional operations."""

from __future__ import annotations

import torch
from torch import nn


class Sum(nn.Module):
    """Sum over one dimension (the residual addition of a canonized block: ``Sum()(stack([a, b], -1))``).

    Args:
        dim (int, optional): dimension to sum over. Default: -1
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[..., P] -> Tensor[...] (for ``dim=-1``)."""
        return torch.sum(x, dim=self.dim)
