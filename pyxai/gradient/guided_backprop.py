"""Guided backprop and Guided Grad-CAM, drop-in for Captum's ``GuidedBackprop`` /
``GuidedGradCam``."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pyxai.engine.hooks import guided_relus, model_view
from pyxai.gradient._common import (
    ReLURuleAttribution,
    format_call,
    format_output,
    input_gradients,
)
from pyxai.gradient.layer_grad_cam import LayerGradCam, layer_grad_cam

INTERPOLATE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area",
                     "nearest-exact")
#: spatial dims each ``F.interpolate`` mode resizes (None: any)
_MODE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _interpolates(cam: torch.Tensor, x: torch.Tensor, mode: str) -> bool:
    """Whether ``F.interpolate`` resizes the map Tensor[B, 1, *d] to ``x``'s dims after (B, C)
    with ``mode`` (same number of spatial dims, 1 to 3 of them, the mode's rank)."""
    nd = cam.dim() - 2
    if mode not in INTERPOLATE_MODES:
        return False
    return x.dim() - 2 == nd and 1 <= nd <= 3 and _MODE_DIMS.get(mode, nd) == nd


class GuidedBackprop(ReLURuleAttribution):
    """Gradients with every ``nn.ReLU`` passing back only positive gradients (Springenberg et
    al., 2015). The hooks are on a view of the model (never on the user's ReLUs), for the call
    only.

    Args:
        model: an ``nn.Module`` (the ``nn.ReLU`` submodules of its view are hooked).
    """

    _relu_rule = staticmethod(guided_relus)

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        create_graph: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Guided gradients of the target scores.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments. Default: None
            create_graph: return maps differentiable w.r.t. the model parameters. Default: False

        Returns:
            Tensor (or tuple) shaped like ``inputs``.
        """
        return self._rule_gradients(inputs, target, additional_forward_args, create_graph)


class GuidedGradCam(ReLURuleAttribution):
    """Guided backprop times the (ReLU'd) layer Grad-CAM upsampled to the input size.

    Args:
        model: an ``nn.Module``.
        layer: the layer for Grad-CAM (a module of ``model``).
        device_ids: accepted for Captum compatibility (unused).
    """

    _relu_rule = staticmethod(guided_relus)

    def __init__(self, model: nn.Module, layer: nn.Module, device_ids: Any = None) -> None:
        super().__init__(model)
        self.grad_cam = LayerGradCam(model, layer, device_ids)
        self.guided_backprop = GuidedBackprop(model)

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        interpolate_mode: str = "nearest",
        attribute_to_layer_input: bool = False,
        create_graph: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``GuidedBackprop * interpolate(relu(LayerGradCam))``.

        Both passes run on one view of the model; the target is resolved once, on the outputs
        of the Grad-CAM forward.

        Args:
            inputs: Tensor[B, C, H, W] or a tuple of them.
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments. Default: None
            interpolate_mode: ``F.interpolate`` mode for the Grad-CAM map. As Captum, an input
                the map cannot be resized to (other rank, unknown mode) gets an empty Tensor and
                a warning. Default: "nearest"
            attribute_to_layer_input: Grad-CAM on the layer's input. Default: False
            create_graph: return maps differentiable w.r.t. the model parameters. Default: False

        Returns:
            Tensor (or tuple) shaped like ``inputs``.
        """
        is_tuple, inp, args = format_call(self.model, inputs, additional_forward_args)
        view = model_view(self.model)
        assert view is not None
        cams, resolved, _ = layer_grad_cam(view.module, view, self.grad_cam.layer, inp, target,
                                        args, attribute_to_layer_input,
                                        grad_kwargs={"create_graph": create_graph})
        if len(cams) != 1:
            raise ValueError("GuidedGradCam needs a layer with one output (or input) Tensor; "
                             f"{type(self.grad_cam.layer).__name__} has {len(cams)}")
        cam = F.relu(cams[0])
        with self._relu_rule(view):
            gb, _ = input_gradients(view.module, inp, resolved, args, create_graph)
        out = []
        for g, x in zip(gb, inp):
            if not _interpolates(cam, x, interpolate_mode):
                # as Captum: an input the map cannot be resized to gets an empty attribution
                warnings.warn(f"cannot interpolate the Grad-CAM map of shape {tuple(cam.shape)} "
                              f"to an input of shape {tuple(x.shape)} with mode "
                              f"{interpolate_mode!r}; returning an empty tensor for it (as "
                              "Captum)", stacklevel=2)
                out.append(torch.empty(0))
                continue
            out.append(g * F.interpolate(cam, tuple(x.shape[2:]), mode=interpolate_mode))
        return format_output(is_tuple, tuple(out))
