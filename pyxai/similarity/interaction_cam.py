"""Interaction-CAM (SPECS §9.4, explain-cl ``get_interactioncam``), batched over pairs.

With ``F_i`` the target layer's activations for image i (Tensor[B, D, h, w]; ViT tokens through
``reshape_transform``), ``score = cos(f(img1), f(img2))`` and ``G_i = dscore / dF_i``:

* joint channel weight ``J_d = pool(F_1)_d * pool(F_2)_d`` with ``pooling`` = ``"mean"`` (spatial
  mean), ``"max"`` (global max) or ``"attn"`` (attention pooling: ``q`` = the mean feature vector,
  ``a = softmax_positions(q . F_pos)``, pooled ``= sum_pos a F_pos``);
* ``grad_interact``: ``Gamma = G_1^T G_2`` over positions (Tensor[B, D, D], needs equal feature
  sizes), ``G_1 <- max_e Gamma[:, :, e]``, ``G_2 <- max_d Gamma[:, d, :]`` (per-channel scalars);
* ``cam_i = sum_d (F_i,d * J_d) * relu(G_i,d)`` (no output ReLU, no normalisation), upsampled to the
  image (bilinear) unless ``resize=False``.

The forwards and the backward run on a :class:`~pyxai.engine.view.ModelView` of the encoder with the
layer captured by hooks on the view (the user's model is never hooked).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from pyxai.engine.hooks import capture_layers, check_layers, model_view
from pyxai.similarity._common import (
    Pooling,
    check_nonzero,
    check_pair,
    check_pooling,
    cosine,
    out_dtype,
    pool,
    resize_maps,
)

_REDUCTIONS = ("mean", "max", "attn")


def joint_weight(f1: Tensor, f2: Tensor, reduction: str) -> Tensor:
    """``J = pool(F1) * pool(F2)``: Tensor[B, D] from two Tensor[B, D, h, w] feature maps."""

    def pooled(f: Tensor) -> Tensor:
        flat = f.flatten(2)  # [B, D, P]
        if reduction == "mean":
            return flat.mean(2)
        if reduction == "max":
            return flat.max(2).values
        q = flat.mean(2, keepdim=True)  # [B, D, 1]
        attn = (q.transpose(1, 2) @ flat).softmax(-1)  # [B, 1, P]
        return (attn @ flat.transpose(1, 2))[:, 0]

    return pooled(f1) * pooled(f2)


class InteractionCAM:
    """Interaction-CAM of two-image similarity.

    Args:
        encoder (nn.Module): images Tensor[N, C, H, W] -> embeddings Tensor[N, D].
        target_layer (nn.Module): the layer whose activations are weighted (the last conv block,
            e.g. ``encoder.backbone.layer3`` of the demo encoders, ``model.layer4`` of a ResNet).
        reduction (str, optional): joint-weight pooling "mean", "max" or "attn". Default: "mean"
        grad_interact (bool, optional): replace the gradients by their channel interaction
            maxima. Default: False
        reshape_transform (callable, optional): activations (and gradients) -> Tensor[N, D, h, w]
            (pytorch-grad-cam's convention, e.g. ViT tokens Tensor[N, 1 + h*w, D]). Default: None
        pooling (optional): turns non-2-D encoder outputs into embeddings. Default: None

    Examples::

        >>> enc = pyxai.models.demo_simclr()
        >>> cam = pyxai.similarity.InteractionCAM(enc, enc.backbone.layer3, reduction="max",
        ...                                        grad_interact=True)
        >>> m1, m2 = cam.attribute(x1, x2)        # Tensor[B, 1, H, W] each
    """

    def __init__(self, encoder: nn.Module, target_layer: nn.Module, reduction: str = "mean",
                 grad_interact: bool = False, reshape_transform: Callable | None = None,
                 pooling: Pooling = None) -> None:
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be an nn.Module (its layer is captured), got "
                            f"{type(encoder).__name__}")
        self.encoder = encoder
        self.target_layer = check_layers(encoder, [target_layer], "target_layer")[0]
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.grad_interact = bool(grad_interact)
        if reshape_transform is not None and not callable(reshape_transform):
            raise TypeError("reshape_transform must be a callable or None")
        self.reshape_transform = reshape_transform
        self.pooling = check_pooling(pooling)

    def _maps(self, a: Tensor, name: str) -> Tensor:
        if self.reshape_transform is not None:
            a = self.reshape_transform(a)
        if a.dim() != 4:
            raise ValueError(f"target_layer gives {name} of shape {tuple(a.shape)}; a Tensor[N, D, h, w] "
                             "is needed (pass reshape_transform for ViT tokens)")
        return a

    def attribute(self, img1: Tensor, img2: Tensor, resize: bool = True) -> tuple[Tensor, Tensor]:
        """Interaction-CAMs of both images of each pair.

        Args:
            img1, img2: Tensor[B, C, H, W] (sizes may differ unless ``grad_interact``).
            resize: upsample to the image sizes (bilinear); False: the layer's resolution.

        Returns:
            (Tensor[B, 1, H1, W1], Tensor[B, 1, H2, W2]) float32 (float64 for float64 inputs).
        """
        check_pair(img1, img2, self.encoder)
        view = model_view(self.encoder)
        layers = [self.target_layer]
        acts, embs = [], []
        with torch.enable_grad():
            for img in (img1, img2):
                with capture_layers(layers, grad=True, view=view) as cap:
                    z = pool(view.module(img.detach()), self.pooling)
                acts.append(cap.check(layers, "target_layer")[0])
                embs.append(z)
            check_nonzero(embs[0], "encoder(img1)")
            check_nonzero(embs[1], "encoder(img2)")
            score = cosine(embs[0], embs[1]).sum()  # pairs are independent: one backward for all
            grads = torch.autograd.grad(score, acts)
        f1, f2 = (self._maps(a.detach(), "activations") for a in acts)
        g1, g2 = (self._maps(g, "gradients") for g in grads)
        if f1.shape[1] != f2.shape[1]:
            raise ValueError("the target layer gives different channel counts for img1 and img2")
        if self.grad_interact:
            if g1.shape != g2.shape:
                raise ValueError(f"grad_interact needs equal feature sizes for img1 and img2, got "
                                 f"{tuple(g1.shape[2:])} and {tuple(g2.shape[2:])} (use equal image sizes)")
            gamma = g1.flatten(2) @ g2.flatten(2).transpose(1, 2)  # [B, D, D]
            g1 = gamma.max(-1).values[:, :, None, None]
            g2 = gamma.max(1).values[:, :, None, None]
        j = joint_weight(f1, f2, self.reduction)[:, :, None, None]
        maps = []
        for f, g, img in ((f1, g1, img1), (f2, g2, img2)):
            cam = (f * j * torch.relu(g)).sum(1, keepdim=True).to(out_dtype(img))
            maps.append(resize_maps(cam, tuple(img.shape[2:])) if resize else cam)
        return maps[0], maps[1]
