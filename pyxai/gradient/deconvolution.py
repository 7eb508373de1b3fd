"""Deconvolution, drop-in for ``captum.attr.Deconvolution`` (Zeiler & Fergus, 2014)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pyxai.engine.hooks import deconv_relus, model_view
from pyxai.gradient._common import GradientAttribution, format_call, format_output, input_gradients


class Deconvolution(GradientAttribution):
    """Gradients with every ``nn.ReLU`` passing back ``relu(grad_output)``: the deconvnet
    backward, which ignores the sign of the ReLU's input. The rule is applied on a view of the
    model (never on the user's ReLUs), for the call only.

    Args:
        model: an ``nn.Module`` (the ``nn.ReLU`` submodules of its view are changed).

    Examples::

        >>> deconv = pyxai.Deconvolution(model)
        >>> attr = deconv.attribute(x, target=3)      # Tensor shaped like x
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError("Deconvolution needs an nn.Module to change its ReLU layers")
        super().__init__(model)
        self.model = model

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Deconvnet gradients of the target scores.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments. Default: None

        Returns:
            Tensor (or tuple) shaped like ``inputs``.
        """
        is_tuple, inp, args = format_call(self.model, inputs, additional_forward_args)
        view = model_view(self.model)
        assert view is not None
        with deconv_relus(view):
            grads, _ = input_gradients(view.module, inp, target, args)
        return format_output(is_tuple, grads)
