"""LRP relevance outside the object mask, through pyxai's differentiable LRP."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pyxai.guided._checks import check_loss_args, energy_outside

__all__ = ["lrp_loss"]


def lrp_loss(model: nn.Module, x: Tensor, target: Any, mask: Tensor,
             composite: str = "epsilon_plus_flat") -> Tensor:
    """Share of the positive LRP relevance outside the object ``mask``, differentiable.

    ``pyxai.LRP(model, composite, allow_training=True).attribute(x, target, create_graph=True)``
    (canonized, rule-wrapped view: the model is untouched; the relevance graph reaches its
    parameters through every rule), summed over channels, ``relu``; the loss is
    ``mean_b sum((1 - mask) * R+) / sum(R+)``, in [0, 1]. A model in training mode is explained as
    in eval mode (BatchNorm merged with its running statistics).

    Args:
        model (nn.Module): the classifier.
        x (Tensor[B, C, H, W]): inputs.
        target: the class(es) to explain (int, Tensor[B], callable).
        mask (Tensor[B, 1 or C, H, W]): bool or float in [0, 1]; 1 on the object.
        composite (str, optional): LRP composite name. Default: "epsilon_plus_flat"

    Returns:
        Tensor: scalar loss.
    """
    import pyxai

    mask = check_loss_args(model, x, mask)
    rel = pyxai.LRP(model, composite=composite, allow_training=True).attribute(
        x, target=target, create_graph=True)
    return energy_outside(torch.relu(rel.sum(dim=1, keepdim=True)), mask)
