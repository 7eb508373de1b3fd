"""Standard sensitivity-analysis test functions with analytic Sobol' indices, and a model that
turns the Sobol explainer into a plain Sobol' analysis of such a function.

The "cell-mean" model reads the mean of each grid cell of its (single-channel) input: with an
all-ones image, the inpainting perturbation and nearest upsampling, these means are exactly the
design values of the mask, so the explainer's indices are those of ``f(cell values)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class CellMeanModel(torch.nn.Module):
    """Tensor[R, 1, g*s, g*s] -> Tensor[R, 1]: ``f`` of the g*g cell means (row-major)."""

    def __init__(self, grid_size: int, fn) -> None:
        super().__init__()
        self.g = grid_size
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.shape[-1] // self.g
        cells = F.avg_pool2d(x[:, :1], s).flatten(1)  # [R, g*g]
        return self.fn(cells)[:, None]


# Ishigami: x_i = -pi + 2 pi u_i, f = sin x1 + a sin^2 x2 + b x3^4 sin x1 (u_4.. unused)
ISHIGAMI_A, ISHIGAMI_B = 7.0, 0.1


def ishigami(u: torch.Tensor) -> torch.Tensor:
    x = -math.pi + 2 * math.pi * u.double()
    out = (torch.sin(x[:, 0]) + ISHIGAMI_A * torch.sin(x[:, 1]) ** 2
           + ISHIGAMI_B * x[:, 2] ** 4 * torch.sin(x[:, 0]))
    return out.to(u.dtype)


def ishigami_indices(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, total) analytic indices of :func:`ishigami` in ``d >= 3`` inputs."""
    a, b, p = ISHIGAMI_A, ISHIGAMI_B, math.pi
    v1 = 0.5 * (1 + b * p**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = 8 * b**2 * p**8 / 225
    v = v1 + v2 + v13
    first = torch.zeros(d, dtype=torch.float64)
    total = torch.zeros(d, dtype=torch.float64)
    first[:3] = torch.tensor([v1, v2, 0.0]) / v
    total[:3] = torch.tensor([v1 + v13, v2, v13]) / v
    return first, total


# Sobol' g-function: f = prod (|4 u_i - 2| + a_i) / (1 + a_i)
G_A = (0.0, 1.0, 4.5, 9.0, 99.0, 99.0, 99.0, 99.0, 99.0)


def g_function(u: torch.Tensor) -> torch.Tensor:
    a = torch.tensor(G_A[: u.shape[1]], dtype=torch.float64, device=u.device)
    return (((4 * u.double() - 2).abs() + a) / (1 + a)).prod(1).to(u.dtype)


def g_function_indices(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, total) analytic indices of :func:`g_function` in ``d`` inputs."""
    vi = torch.tensor([1 / (3 * (1 + a) ** 2) for a in G_A[:d]], dtype=torch.float64)
    v = torch.prod(1 + vi) - 1
    first = vi / v
    total = torch.stack([vi[i] * torch.prod(torch.cat([1 + vi[:i], 1 + vi[i + 1 :]])) for i in range(d)]) / v
    return first, total
