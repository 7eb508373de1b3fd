"""Deconvolution, drop-in for ``captum.attr.Deconvolution`` (Zeiler & Fergus, 2014)."""

from __future__ import annotations

from typing import Any

import torch

from pyxai.engine.hooks import deconv_relus
from pyxai.gradient._common import ReLURuleAttribution


class Deconvolution(ReLURuleAttribution):
    """Gradients with every ``nn.ReLU`` passing back ``relu(grad_output)``: the deconvnet
    backward, which ignores the sign of the ReLU's input. The rule is applied on a view of the
    model (never on the user's ReLUs), for the call only.

    Args:
        model: an ``nn.Module`` (the ``nn.ReLU`` submodules of its view are changed).

    Examples::

        >>> deconv = pyxai.Deconvolution(model)
        >>> attr = deconv.attribute(x, target=3)      # Tensor shaped like x
    """

    _relu_rule = staticmethod(deconv_relus)

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
        return self._rule_gradients(inputs, target, additional_forward_args)
