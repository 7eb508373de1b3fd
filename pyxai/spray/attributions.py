"""Attribution maps for a class over a whole data set, batched, with any registry explainer."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pyxai import registry

__all__ = ["attributions"]


def attributions(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor,
    method: str = "lrp",
    layer: nn.Module | None = None,
    batch_size: int = 64,
    **overrides: Any,
) -> Tensor:
    """Maps of ``method`` (a :mod:`pyxai.registry` name) for every input, ``batch_size`` at a time.

    Args:
        model (nn.Module): the model.
        inputs (Tensor[N, C, H, W]): the data set (on the model's device), N >= 1.
        target (int or Tensor[N]): the class to explain, one for all or one per input.
        method (str, optional): registry name, e.g. "lrp", "gradcam", "saliency". Default: "lrp"
        layer (nn.Module, optional): target layer, for methods that need one. Default: None
        batch_size (int, optional): inputs per explainer call. Default: 64
        **overrides: constructor keywords of the explainer.

    Returns:
        Tensor[N, C', H', W'] detached, as the explainer returns them (e.g. [N, 3, H, W] for LRP,
        [N, 1, H, W] for Grad-CAM).
    """
    if not isinstance(inputs, Tensor) or inputs.dim() < 2:
        raise TypeError("inputs must be a Tensor[N, C, H, W]")
    if inputs.shape[0] == 0:
        raise ValueError("inputs is empty (no images): nothing to attribute")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    n = inputs.shape[0]
    if isinstance(target, Tensor) and target.dim() > 0 and target.shape[0] != n:
        raise ValueError(f"target must be an int or Tensor[{n}], got shape {tuple(target.shape)}")
    explain = registry.build(method, model, layer=layer, **overrides)
    out = []
    for start in range(0, n, batch_size):
        t = target[start : start + batch_size] if isinstance(target, Tensor) and target.dim() > 0 \
            else target
        out.append(explain(inputs[start : start + batch_size], t).detach())
    return torch.cat(out)
