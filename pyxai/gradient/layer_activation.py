"""LayerActivation, drop-in for ``captum.attr.LayerActivation``: a layer's activations."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from pyxai.engine.hooks import capture_layers, check_layers, model_view
from pyxai.gradient._common import GradientAttribution, format_call


class LayerActivation(GradientAttribution):
    """The output (or input) of one layer, or of a list of layers, for the inputs.

    The layers are captured on a view of the model (no hook on the user's modules).

    Args:
        forward_func: model or callable (the layers must run inside it).
        layer: a module of the model, or a list of modules.
        device_ids: accepted for Captum compatibility (unused).

    Examples::

        >>> la = pyxai.LayerActivation(model, model.layer3)
        >>> acts = la.attribute(x)            # Tensor[B, 256, 14, 14] for a ResNet-18
    """

    _multiply_by_inputs = True  # as Captum's LayerActivation

    def __init__(self, forward_func: Callable[..., Any], layer: nn.Module | list[nn.Module],
                 device_ids: Any = None) -> None:
        super().__init__(forward_func)
        self.is_list = isinstance(layer, list)
        self.layers = check_layers(forward_func, layer if self.is_list else [layer], "layer")
        self.layer = layer
        self.device_ids = device_ids

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
    ) -> Any:
        """The layer activations.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            additional_forward_args: extra forward arguments. Default: None
            attribute_to_layer_input: the layers' inputs instead of their outputs. Default: False

        Returns:
            Per layer: its Tensor (shaped as the layer's output), or a tuple of Tensors for a
            layer with several outputs (inputs); a list of those for a list of layers.
        """
        _, inp, args = format_call(self.forward_func, inputs, additional_forward_args)
        view = model_view(self.forward_func)
        forward = view.module if view is not None else self.forward_func
        with torch.no_grad(), capture_layers(self.layers, grad=False,
                                             inputs=attribute_to_layer_input, view=view,
                                             multi=True) as cap:
            forward(*inp, *args)
        acts = [a if len(a) > 1 else a[0] for a in cap.check(self.layers, "layer")]
        return acts if self.is_list else acts[0]
