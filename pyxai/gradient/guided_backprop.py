"""Guided backprop and Guided Grad-CAM, drop-in for Captum's ``GuidedBackprop`` /
``GuidedGradCam``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pyxai.engine.hooks import guided_relus
from pyxai.gradient._common import (
    GradientAttribution,
    format_args,
    format_call,
    format_inputs,
    format_output,
    input_gradients,
)
from pyxai.gradient.layer_grad_cam import LayerGradCam


class GuidedBackprop(GradientAttribution):
    """Gradients with every ``nn.ReLU`` passing back only positive gradients (Springenberg et
    al., 2015). Hooks are set for the call only and always removed.

    Args:
        model: an ``nn.Module`` (its ``nn.ReLU`` submodules are hooked).
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError("GuidedBackprop needs an nn.Module to hook its ReLU layers")
        super().__init__(model)
        self.model = model

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Guided gradients of the target scores.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments. Default: None

        Returns:
            Tensor (or tuple) shaped like ``inputs``.
        """
        is_tuple, inp, args = format_call(self.model, inputs, additional_forward_args)
        with guided_relus(self.model):
            grads, _ = input_gradients(self.model, inp, target, args)
        return format_output(is_tuple, grads)


class GuidedGradCam:
    """Guided backprop times the (ReLU'd) layer Grad-CAM upsampled to the input size.

    Args:
        model: an ``nn.Module``.
        layer: the layer for Grad-CAM (a module of ``model``).
        device_ids: accepted for Captum compatibility (unused).
    """

    def __init__(self, model: nn.Module, layer: nn.Module, device_ids: Any = None) -> None:
        self.model = model
        self.forward_func = model
        self.grad_cam = LayerGradCam(model, layer, device_ids)
        self.guided_backprop = GuidedBackprop(model)

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        interpolate_mode: str = "nearest",
        attribute_to_layer_input: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``GuidedBackprop * interpolate(relu(LayerGradCam))``.

        Args:
            inputs: Tensor[B, C, H, W] or a tuple of them.
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments. Default: None
            interpolate_mode: ``F.interpolate`` mode for the Grad-CAM map. Default: "nearest"
            attribute_to_layer_input: Grad-CAM on the layer's input. Default: False

        Returns:
            Tensor (or tuple) shaped like ``inputs``.
        """
        is_tuple, inp = format_inputs(inputs)
        if target is None:
            from pyxai.gradient._common import resolve_none_target

            target = resolve_none_target(self.model, inp, None, format_args(additional_forward_args))
        cam = self.grad_cam.attribute(inp, target=target,
                                      additional_forward_args=additional_forward_args,
                                      attribute_to_layer_input=attribute_to_layer_input,
                                      relu_attributions=True)
        gb = self.guided_backprop.attribute(inp, target=target,
                                            additional_forward_args=additional_forward_args)
        out = []
        for g, x in zip(gb, inp):
            if x.dim() - 2 != cam.dim() - 2:
                raise ValueError(
                    f"cannot interpolate a Grad-CAM map of shape {tuple(cam.shape)} to an input "
                    f"of shape {tuple(x.shape)}"
                )
            out.append(g * F.interpolate(cam, tuple(x.shape[2:]), mode=interpolate_mode))
        return format_output(is_tuple, tuple(out))
