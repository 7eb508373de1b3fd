"""Argument checks and the one place where tensors become NumPy arrays for display."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pyxai.engine.checks import all_finite


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """A CPU tensor from a Tensor or array-like; ValueError on NaN/Inf, TypeError on other types."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if not (t.is_floating_point() or t.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64)):
        raise TypeError(f"{name} must have a real dtype, got {t.dtype}")
    if t.is_floating_point() and not all_finite(t):
        raise ValueError(f"{name} contains NaN or Inf")
    return t


def image_hwc(x: Any, name: str) -> torch.Tensor:
    """An image as Tensor[H, W, C].

    Tensors use pyxai's layout ``Tensor[C, H, W]`` (or ``[H, W]``); NumPy arrays use the anchors'
    ``ndarray[H, W, C]`` (or ``[H, W]``). A leading batch axis of size 1 is dropped.
    """
    is_tensor = isinstance(x, torch.Tensor)
    t = as_tensor(x, name)
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 2:
        return t[:, :, None]
    if t.dim() != 3:
        raise ValueError(f"{name} must be Tensor[C, H, W] or ndarray[H, W, C], got shape "
                         f"{tuple(t.shape)}")
    return t.permute(1, 2, 0) if is_tensor else t


def map_hw(x: Any, name: str) -> torch.Tensor:
    """A single-channel map as Tensor[H, W] from [H, W], [1, H, W] or [1, 1, H, W]."""
    t = as_tensor(x, name)
    while t.dim() > 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 2:
        raise ValueError(f"{name} must be a map of shape [H, W] (or [1, H, W]), got {tuple(x.shape)}")
    return t


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """The display boundary: a CPU tensor as a NumPy array."""
    return x.detach().cpu().numpy()
