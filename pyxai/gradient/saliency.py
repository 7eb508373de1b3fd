"""Saliency and Input x Gradient, drop-in for ``captum.attr.Saliency`` / ``InputXGradient``."""

from __future__ import annotations

from typing import Any

import torch

from pyxai.engine.view import forward_view
from pyxai.gradient._common import GradientAttribution, format_call, format_output, input_gradients


class Saliency(GradientAttribution):
    """Gradient of the target score with respect to the inputs (Simonyan et al., 2013).

    Args:
        forward_func: model or callable mapping the inputs (and additional_forward_args) to
            outputs, one row per example.

    Examples::

        >>> sal = pyxai.Saliency(model)
        >>> attr = sal.attribute(x, target=3)      # Tensor shaped like x
    """

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        target: Any = None,
        abs: bool = True,
        additional_forward_args: Any = None,
        create_graph: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Gradients of the target scores.

        Args:
            inputs: Tensor[B, ...] or a tuple of them (batch first).
            target: int, tuple, Tensor[B], list (of ints, tuples or per-sample target objects),
                callable ``(outputs) -> Tensor[B]`` or ``(outputs, rows) -> Tensor[B]``, or None
                (the output itself if the model returns one value per example, else the predicted
                class). Default: None
            abs: return absolute gradients. Default: True
            additional_forward_args: extra forward arguments (not attributed). Default: None
            create_graph: return maps differentiable w.r.t. the model parameters (explanation-
                guided training). Default: False

        Returns:
            Tensor (or tuple) shaped like ``inputs``.
        """
        is_tuple, inp, args = format_call(self.forward_func, inputs, additional_forward_args)
        grads, _ = input_gradients(forward_view(self.forward_func), inp, target, args,
                                   create_graph)
        if abs:
            grads = tuple(g.abs() for g in grads)
        return format_output(is_tuple, grads)


class InputXGradient(GradientAttribution):
    """Input times the gradient of the target score (Shrikumar et al., 2016).

    Args:
        forward_func: model or callable mapping inputs to outputs, one row per example.
    """

    _multiply_by_inputs = True

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        create_graph: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``inputs * d score / d inputs``.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            target: as :meth:`Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments. Default: None
            create_graph: as :meth:`Saliency.attribute`. Default: False

        Returns:
            Tensor (or tuple) shaped like ``inputs``.
        """
        is_tuple, inp, args = format_call(self.forward_func, inputs, additional_forward_args)
        grads, _ = input_gradients(forward_view(self.forward_func), inp, target, args,
                                   create_graph)
        return format_output(is_tuple, tuple(g * x.detach() for g, x in zip(grads, inp)))
