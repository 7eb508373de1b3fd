"""LayerGradCam, drop-in for ``captum.attr.LayerGradCam``: the backward stops at the layer."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from pyxai.engine.hooks import capture_layers, check_layers
from pyxai.gradient._common import format_call, run_forward, select


class LayerGradCam:
    """Grad-CAM at a layer, Captum semantics: ``sum_k mean(dS/dA_k) * A_k`` at the layer's
    resolution, no ReLU unless asked, no normalisation.

    Args:
        forward_func: model or callable (the layer must run inside it).
        layer: module whose output (or input) is explained.
        device_ids: accepted for Captum compatibility (unused).

    Examples::

        >>> cam = pyxai.LayerGradCam(model, model.layer4[-1])
        >>> attr = cam.attribute(x, target=3)            # Tensor[B, 1, h, w]
    """

    def __init__(self, forward_func: Callable[..., torch.Tensor], layer: nn.Module,
                 device_ids: Any = None) -> None:
        self.forward_func = forward_func
        self.layer = check_layers(forward_func, [layer], "layer")[0]
        self.device_ids = device_ids

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict | None = None,
    ) -> torch.Tensor:
        """Layer Grad-CAM.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments. Default: None
            attribute_to_layer_input: use the layer's input instead of its output. Default: False
            relu_attributions: apply a ReLU to the result. Default: False
            attr_dim_summation: sum over channels (False: per-channel ``alpha_k * A_k``).
                Default: True
            grad_kwargs: extra keywords for ``torch.autograd.grad`` (e.g. create_graph).

        Returns:
            Tensor[B, 1, *layer spatial dims] (Tensor[B, K, ...] without summation).
        """
        _, inp, args = format_call(self.forward_func, inputs, additional_forward_args)
        leaves = tuple(x.detach() for x in inp)
        with torch.enable_grad(), capture_layers([self.layer], grad=True,
                                                  inputs=attribute_to_layer_input) as cap:
            out = run_forward(self.forward_func, leaves, args)
            (act,) = cap.check([self.layer], "layer")
            scores = select(out, target)
            if not scores.requires_grad:
                raise ValueError("the model output does not depend on the layer")
            (grad,) = torch.autograd.grad(scores.sum(), [act], allow_unused=True,
                                          **(grad_kwargs or {}))
        if grad is None:
            raise ValueError("the model output does not depend on the layer's output")
        if not (grad_kwargs or {}).get("create_graph", False):
            act = act.detach()
        alpha = grad.mean(dim=tuple(range(2, grad.dim())), keepdim=True) if grad.dim() > 2 \
            else grad
        attr = (alpha * act).sum(1, keepdim=True) if attr_dim_summation else alpha * act
        return F.relu(attr) if relu_attributions else attr
