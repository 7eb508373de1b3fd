"""Argument checks shared by the explanation-guided losses."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyxai.engine.checks import check_inputs, check_same_device


def check_loss_args(model: nn.Module, x: Tensor, mask: Tensor) -> Tensor:
    """Validate ``(model, x, mask)`` of a loss; return the mask as float Tensor[B, 1 or C, H, W].

    The mask must be bool or floating point with values in [0, 1], on ``x``'s device, shaped
    Tensor[B, 1, H, W] or Tensor[B, C, H, W] for ``x`` Tensor[B, C, H, W].
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_inputs(x, "x", ndims=(4,))
    check_same_device(model, x)
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a bool or float Tensor[B, 1, H, W], got {type(mask).__name__}")
    b, c, h, w = x.shape
    if mask.dim() != 4 or mask.shape[0] != b or mask.shape[1] not in (1, c) or mask.shape[2:] != (h, w):
        raise ValueError(f"mask must be Tensor[{b}, 1, {h}, {w}] or Tensor[{b}, {c}, {h}, {w}] for x of "
                         f"shape {tuple(x.shape)}, got shape {tuple(mask.shape)}")
    if mask.device != x.device:
        raise ValueError(f"mask is on {mask.device}, x on {x.device}")
    if mask.dtype == torch.bool:
        return mask.to(x.dtype)
    if not mask.is_floating_point():
        raise TypeError(f"mask must be a bool or floating point tensor, got {mask.dtype}")
    if not bool(torch.isfinite(mask).all()) or bool((mask < 0).any()) or bool((mask > 1).any()):
        raise ValueError("mask must hold values in [0, 1] (no NaN or Inf)")
    return mask.to(x.dtype)


def energy_outside(maps: Tensor, mask: Tensor, eps: float = 1e-12) -> Tensor:
    """Mean over the batch of the share of ``maps`` (>= 0, Tensor[B, 1, H, W]) outside ``mask``.

    ``mean_b sum((1 - m) * maps) / (sum(maps) + eps)``: a scalar in [0, 1].
    """
    mask = mask.amax(dim=1, keepdim=True) if mask.shape[1] != 1 else mask
    outside = ((1 - mask) * maps).flatten(1).sum(1)
    return (outside / (maps.flatten(1).sum(1) + eps)).mean()
