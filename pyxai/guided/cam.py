"""Grad-CAM energy outside the object mask (a CAM-based explanation loss)."""

from __future__ import annotations

import warnings
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from pyxai.guided._checks import check_loss_args, energy_outside

__all__ = ["cam_loss"]


def cam_loss(model: nn.Module, x: Tensor, target: Any, mask: Tensor, layer: nn.Module | None = None
             ) -> Tensor:
    """Share of the Grad-CAM map outside the object ``mask``, differentiable w.r.t. the parameters.

    The map is ``relu(sum_k alpha_k A_k)`` of ``pyxai.LayerGradCam(model, layer)`` with
    ``create_graph=True`` (run on a parameter-sharing view: the model is not touched, and the
    gradient reaches its parameters), upsampled bilinearly to the input size; the loss is
    ``mean_b sum((1 - mask) * cam) / sum(cam)``, in [0, 1].

    Args:
        model (nn.Module): the classifier.
        x (Tensor[B, C, H, W]): inputs.
        target: the class(es) to explain (int, Tensor[B], callable; :mod:`pyxai.engine.targets`).
        mask (Tensor[B, 1 or C, H, W]): bool or float in [0, 1]; 1 on the object (where the model
            SHOULD look).
        layer (nn.Module, optional): the Grad-CAM layer. Default: ``model.layer4``, else
            ``model.layer3`` (torchvision ResNets, the demo CNN); required for other models.

    Returns:
        Tensor: scalar loss.
    """
    import pyxai

    mask = check_loss_args(model, x, mask)
    if layer is None:
        layer = getattr(model, "layer4", None)
        layer = getattr(model, "layer3", None) if layer is None else layer
        if not isinstance(layer, nn.Module):
            raise ValueError("cam_loss needs layer=... (the model has no layer4 or layer3)")
    with warnings.catch_warnings():  # a model in training mode is explained as it trains
        warnings.simplefilter("ignore", UserWarning)
        cam = pyxai.LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True,
                                                         create_graph=True)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return energy_outside(cam, mask)
