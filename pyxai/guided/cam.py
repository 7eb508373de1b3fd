"""Grad-CAM energy outside the object mask (a CAM-based explanation loss)."""

from __future__ import annotations

import warnings
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from pyxai.engine.hooks import check_layers, model_view
from pyxai.gradient.layer_grad_cam import layer_grad_cam
from pyxai.guided._checks import check_loss_args, energy_outside

__all__ = ["cam_loss"]


def cam_loss(model: nn.Module, x: Tensor, target: Any, mask: Tensor, layer: nn.Module | None = None,
             return_outputs: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Share of the Grad-CAM map outside the object ``mask``, differentiable w.r.t. the parameters.

    The map is ``relu(sum_k alpha_k A_k)``, ``pyxai.LayerGradCam(model, layer)``'s map, with
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
        return_outputs (bool, optional): also return the logits of the Grad-CAM forward (attached
            to the graph), so a training step takes its cross-entropy from the same forward.
            Default: False

    Returns:
        Tensor: scalar loss (and the logits Tensor[B, K] when asked).
    """
    mask = check_loss_args(model, x, mask)
    if layer is None:
        layer = getattr(model, "layer4", None)
        layer = getattr(model, "layer3", None) if layer is None else layer
        if not isinstance(layer, nn.Module):
            raise ValueError("cam_loss needs layer=... (the model has no layer4 or layer3)")
    layer = check_layers(model, [layer], "layer")[0]
    with warnings.catch_warnings():  # a model in training mode is explained as it trains
        warnings.simplefilter("ignore", UserWarning)
        view = model_view(model)
        (cam,), _, outputs = layer_grad_cam(view.module, view, layer, (x,), target, (),
                                            grad_kwargs={"create_graph": True})
    cam = F.interpolate(F.relu(cam), size=x.shape[-2:], mode="bilinear", align_corners=False)
    loss = energy_outside(cam, mask)
    return (loss, outputs) if return_outputs else loss
