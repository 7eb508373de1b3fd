"""The target layer of the CAM methods for a model: a CNN's last feature map, a ViT's last block tokens.

* torchvision ``VisionTransformer``: ``encoder.layers[-1].ln_1`` (the tokens entering the last block;
  its *output* patch tokens do not reach the class token, so their gradient is zero), reshaped by
  dropping the class token: Tensor[B, 1 + h*w, D] -> Tensor[B, D, h, w];
* timm ViTs (``blocks`` + ``cls_token``): ``blocks[-1].norm1``, ``num_prefix_tokens`` dropped;
* everything else (CNNs, torchvision Swin whose ``permute`` gives Tensor[B, C, h, w]): the outermost
  module producing the last 4-D feature map in execution order.

The probing hooks go on a :class:`~pyxai.engine.view.ModelView`, never on the model.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from pyxai.engine.view import ModelView

ReshapeTransform = Callable[[torch.Tensor], torch.Tensor]


def tokens_to_map(prefix_tokens: int) -> ReshapeTransform:
    """Tensor[B, prefix + h*w, D] -> Tensor[B, D, h, w] (square grid; prefix tokens dropped)."""

    def reshape(t: torch.Tensor) -> torch.Tensor:
        patches = t[:, prefix_tokens:]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"{patches.shape[1]} patch tokens do not form a square grid")
        return patches.reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    return reshape


def _probe(model: torch.nn.Module, x: torch.Tensor) -> tuple[list[torch.nn.Module], bool]:
    """Modules with a 4-D/5-D output in execution order, and whether 3-D token outputs follow them."""
    order: list[torch.nn.Module] = []
    tokens_after = [False]
    view = ModelView(model)
    for mod in model.modules():
        if mod is model:
            continue

        def hook(m: torch.nn.Module, inp: tuple, out: object, orig: torch.nn.Module = mod) -> None:
            if isinstance(out, torch.Tensor) and out.dim() in (4, 5) and out.shape[-1] > 1:
                order.append(orig)
                tokens_after[0] = False
            elif isinstance(out, torch.Tensor) and out.dim() == 3 and order:
                tokens_after[0] = True

        view[mod].register_forward_hook(hook)  # dropped with the view
    with torch.no_grad():
        view(x[:1])
    return order, tokens_after[0]


def target_layer(model: torch.nn.Module, x: torch.Tensor
                 ) -> tuple[torch.nn.Module, ReshapeTransform | None, str]:
    """(layer, reshape_transform or None, a description) for the CAM methods on ``model``.

    ``x``: Tensor[B, C, H, W], one sample is run to find the layer. ValueError when no layer fits.
    """
    encoder = getattr(model, "encoder", None)
    if hasattr(model, "class_token") and hasattr(encoder, "layers"):
        return (encoder.layers[-1].ln_1, tokens_to_map(1),
                "encoder.layers[-1].ln_1 (ViT tokens, class token dropped)")
    blocks = getattr(model, "blocks", None)
    if getattr(model, "cls_token", None) is not None and isinstance(blocks, torch.nn.Sequential):
        prefix = int(getattr(model, "num_prefix_tokens", 1))
        return blocks[-1].norm1, tokens_to_map(prefix), f"blocks[-1].norm1 (ViT tokens, {prefix} dropped)"
    order, tokens_after = _probe(model, x)
    if not order:
        raise ValueError("the model has no module with a 4-D/5-D output to use as target layer")
    if tokens_after:
        raise ValueError("the model turns its feature maps into tokens (a transformer pyxai explain "
                         "does not know); use the API with target_layers=[...] and reshape_transform")
    last = order[-1]
    # prefer the outermost module that produced that output (e.g. a residual block, not its ReLU)
    for m in reversed(order):
        if any(c is last for c in m.modules()):
            last = m
    name = next((n for n, m in model.named_modules() if m is last), type(last).__name__)
    return last, None, name
