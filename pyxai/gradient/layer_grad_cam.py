"""LayerGradCam, drop-in for ``captum.attr.LayerGradCam``: the backward stops at the layer.

The layer is captured on a :class:`~pyxai.engine.view.ModelView` of the model (hooks on the
view's copy of the layer, never on the user's module).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from pyxai.engine.hooks import capture_layers, check_layers, model_view
from pyxai.engine.targets import ResolvedTarget
from pyxai.engine.view import ModelView
from pyxai.gradient._common import GradientAttribution, Inputs, format_call, resolve, run_forward


def layer_grad_cam(
    forward_func: Callable, view: ModelView | None, layer: nn.Module, inputs: Inputs,
    target: Any, args: tuple, to_layer_input: bool = False, summation: bool = True,
    grad_kwargs: dict | None = None,
) -> tuple[tuple[torch.Tensor, ...], ResolvedTarget, torch.Tensor]:
    """Captum's Grad-CAM at ``layer`` (no ReLU): ``sum_k mean(dS/dA_k) * A_k``, for each Tensor
    the layer outputs (or, ``to_layer_input``, receives): one map per Tensor, as Captum.

    Args:
        forward_func: what runs the forward (``view.module`` for a module, else the callable).
        view: the view of the model (None for plain callables).
        layer: the user's layer.
        inputs: the (checked) inputs, Tensor[B, ...] each.
        target: the call's target (resolved here on the clean outputs).
        args: additional forward arguments.
        to_layer_input: the layer's inputs instead of its outputs.
        summation: sum over channels (False: per-channel ``alpha_k * A_k``).
        grad_kwargs: keywords of ``torch.autograd.grad`` (``create_graph=True``: the map is
            differentiable w.r.t. the model parameters).

    Returns:
        (per layer Tensor: Tensor[B, 1, *its dims] (Tensor[B, K, ...] without summation),
        the resolved target, the model outputs (attached to the graph with ``create_graph``, so a
        training step can take its cross-entropy from the same forward; detached otherwise)).
    """
    grad_kwargs = dict(grad_kwargs or {})
    create_graph = bool(grad_kwargs.get("create_graph", False))
    leaves = tuple(x.detach() for x in inputs)
    with torch.enable_grad(), capture_layers([layer], grad=True, inputs=to_layer_input,
                                              view=view, multi=True) as cap:
        out = run_forward(forward_func, leaves, args)
        (acts,) = cap.check([layer], "layer")
        resolved = resolve(target, out)
        scores = resolved(out)
        if not scores.requires_grad:
            raise ValueError("the model output does not depend on the layer")
        grads = torch.autograd.grad(scores.sum(), list(acts), allow_unused=True, **grad_kwargs)
    if all(g is None for g in grads):
        raise ValueError("the model output does not depend on the layer's output")
    attrs = []
    for act, grad in zip(acts, grads):
        grad = torch.zeros_like(act) if grad is None else grad
        if not create_graph:
            act = act.detach()
        alpha = grad.mean(dim=tuple(range(2, grad.dim())), keepdim=True) if grad.dim() > 2 \
            else grad
        attrs.append((alpha * act).sum(1, keepdim=True) if summation else alpha * act)
    return tuple(attrs), resolved, out if create_graph else out.detach()


class LayerGradCam(GradientAttribution):
    """Grad-CAM at a layer, Captum semantics: ``sum_k mean(dS/dA_k) * A_k`` at the layer's
    resolution, no ReLU unless asked, no normalisation.

    Args:
        forward_func: model or callable (the layer must run inside it). A model is never hooked:
            the layer is captured on a view of it. A plain callable has no module tree to view:
            its layer is hooked for the length of the call (this thread's forwards only).
        layer: module whose output (or input) is explained.
        device_ids: accepted for Captum compatibility (unused).

    Examples::

        >>> cam = pyxai.LayerGradCam(model, model.layer4[-1])
        >>> attr = cam.attribute(x, target=3)            # Tensor[B, 1, h, w]
    """

    def __init__(self, forward_func: Callable[..., torch.Tensor], layer: nn.Module,
                 device_ids: Any = None) -> None:
        super().__init__(forward_func)
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
        create_graph: bool = False,
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
            grad_kwargs: extra keywords for ``torch.autograd.grad``. Default: None
            create_graph: return a map differentiable w.r.t. the model parameters (same as
                ``grad_kwargs={"create_graph": True}``). Default: False

        Returns:
            Tensor[B, 1, *layer spatial dims] (Tensor[B, K, ...] without summation); a tuple
            of them, one per Tensor, for a layer with several outputs (or inputs).
        """
        _, inp, args = format_call(self.forward_func, inputs, additional_forward_args)
        kw = dict(grad_kwargs or {})
        if create_graph:
            kw["create_graph"] = True
        view = model_view(self.forward_func)
        forward = view.module if view is not None else self.forward_func
        attrs, _, _ = layer_grad_cam(forward, view, self.layer, inp, target, args,
                                  attribute_to_layer_input, attr_dim_summation, kw)
        if relu_attributions:
            attrs = tuple(F.relu(a) for a in attrs)
        return attrs if len(attrs) > 1 else attrs[0]
