"""TorchRay's Gaussian smoothing and perturbation pyramid (SPECS.md section 6.2).

* :func:`gaussian_blur` — TorchRay's ``imsmooth``: a separable Gaussian with taps
  ``i in [-ceil(4 sigma), ceil(4 sigma)]``, weights ``exp(-(i / (sqrt(2) sigma + eps))^2)``
  normalised to sum 1 (float32 constants, as TorchRay), **zero** padding, vertical pass then
  horizontal. ``sigma = 0`` is the identity.
* :func:`perturbation_pyramid` — ``L`` increasingly perturbed copies of every image: level ``l`` is
  the image blurred with ``sigma_l = (1 - l / (L - 1)) * max_blur`` (``"blur"``) or multiplied by
  ``l / (L - 1)`` (``"fade"``); level ``L - 1`` is the image itself.
* :func:`apply_pyramid` — a mask ``m`` in [0, 1] reads, per pixel, the linear interpolation of the
  pyramid at level ``m * (L - 1)`` (0: maximally perturbed, 1: untouched).

Everything is float32 arithmetic in the order TorchRay uses, so pyramids and perturbed images equal
TorchRay's bit for bit on the same device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PERTURBATIONS = ("blur", "fade")
_SQRT2 = torch.tensor(math.sqrt(2), dtype=torch.float32)
_EPS = torch.tensor(1.19209290e-07, dtype=torch.float32)


def gaussian_blur(x: torch.Tensor, sigma: float | torch.Tensor, padding: str = "zeros"
                  ) -> torch.Tensor:
    """Separable Gaussian smoothing, zero padding by default (TorchRay's ``imsmooth``).

    Args:
        x: Tensor[N, C, H, W] float.
        sigma: standard deviation in pixels (>= 0): a number, or a 0-d float32 Tensor (the pyramid
            levels, as TorchRay computes them).
        padding: ``"zeros"`` (TorchRay) or ``"replicate"`` (edge pixels extended).

    Returns:
        Tensor[N, C, H, W].
    """
    width = math.ceil(4 * sigma)
    # the divisor is a 0-d CPU tensor, as in TorchRay: a scalar operand on any device (no copy)
    den = _SQRT2 * (sigma.cpu() if isinstance(sigma, torch.Tensor) else sigma) + _EPS
    taps = torch.arange(-width, width + 1, dtype=torch.float32, device=x.device) / den
    taps = torch.exp(-taps * taps)
    taps = (taps / taps.sum()).to(x.dtype)
    c = x.shape[1]
    pad = width
    if padding == "replicate":
        x, pad = F.pad(x, (width, width, width, width), mode="replicate"), 0
    elif padding != "zeros":
        raise ValueError(f"padding must be 'zeros' or 'replicate', got {padding!r}")
    y = F.conv2d(x, taps.reshape(1, 1, -1, 1).expand(c, -1, -1, -1), padding=(pad, 0), groups=c)
    return F.conv2d(y, taps.reshape(1, 1, 1, -1).expand(c, -1, -1, -1), padding=(0, pad), groups=c)


def perturbation_pyramid(
    x: torch.Tensor, num_levels: int = 8, kind: str = "blur", max_blur: float = 20.0
) -> torch.Tensor:
    """The perturbation pyramid of every image.

    Args:
        x: Tensor[B, C, H, W] float.
        num_levels: L >= 2.
        kind: ``"blur"`` or ``"fade"``.
        max_blur: sigma of the most blurred level (``"blur"``).

    Returns:
        Tensor[B, L, C, H, W]; level ``L - 1`` is ``x``.
    """
    levels = []
    with torch.no_grad():
        for t in torch.linspace(0, 1, num_levels):  # float32 levels, as TorchRay
            if kind == "blur":
                levels.append(gaussian_blur(x, (1 - t) * max_blur))
            elif kind == "fade":
                levels.append(x * t)  # a 0-d CPU tensor: a scalar operand, as TorchRay
            else:
                raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {kind!r}")
    return torch.stack(levels, dim=1)


def apply_pyramid(pyramid: torch.Tensor, masks: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """Perturb images with masks by reading the pyramid at level ``mask * (L - 1)``.

    Args:
        pyramid: Tensor[B, L, C, H, W] from :func:`perturbation_pyramid`.
        masks: Tensor[N, 1, H, W] in [0, 1], differentiable.
        sample: Tensor[N] int64, the image (row of ``pyramid``) each mask perturbs.

    Returns:
        Tensor[N, C, H, W]: ``(1 - f) * y_k + f * y_{min(k + 1, L - 1)}`` with
        ``k = floor(m (L - 1))`` and ``f = m (L - 1) - k``, ``y`` the pyramid of the mask's image.
    """
    b, n_levels, c, h, w = pyramid.shape
    n = masks.shape[0]
    level = masks[:, None] * (n_levels - 1)  # [N, 1, 1, H, W]
    k = level.floor()
    frac = level - k
    k = k.long()
    base = (sample * n_levels).reshape(n, 1, 1, 1, 1)
    y = pyramid.reshape(1, b * n_levels, c, h, w).expand(n, b * n_levels, c, h, w)  # a view
    y0 = torch.gather(y, 1, (base + k).expand(n, 1, c, h, w))
    y1 = torch.gather(y, 1, (base + torch.clamp(k + 1, max=n_levels - 1)).expand(n, 1, c, h, w))
    return ((1 - frac) * y0 + frac * y1).squeeze(1)
