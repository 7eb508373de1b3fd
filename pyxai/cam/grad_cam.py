"""Grad-CAM and Grad-CAM++, drop-in for pytorch-grad-cam's ``GradCAM`` / ``GradCAMPlusPlus``."""

from __future__ import annotations

from typing import Callable

import torch

from pyxai.cam.base import BaseCAM
from pyxai.engine.targets import ResolvedTarget


class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al., 2017): channel weights = spatial mean of the gradients.

    Examples::

        >>> cam = pyxai.GradCAM(model, target_layers=[model.layer4[-1]])
        >>> maps = cam(input_tensor=x, targets=None)     # np.ndarray[B, H, W] in [0, 1]
        >>> maps = cam.attribute(x, target=3)            # Tensor[B, 1, H, W] on x's device
    """

    def get_cam_weights(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                        activations: torch.Tensor, grads: torch.Tensor | None,
                        forward: Callable) -> torch.Tensor:
        assert grads is not None
        return grads.mean(dim=tuple(range(2, grads.dim())))


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++ (Chattopadhyay et al., 2018), pytorch-grad-cam's closed form:
    ``a = G^2 / (2 G^2 + sum(A) G^3 + 1e-6)`` (0 where G == 0), ``w = sum relu(G) a``."""

    def get_cam_weights(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                        activations: torch.Tensor, grads: torch.Tensor | None,
                        forward: Callable) -> torch.Tensor:
        assert grads is not None
        spatial = tuple(range(2, grads.dim()))
        g2 = grads * grads
        g3 = g2 * grads
        sum_a = activations.sum(dim=spatial, keepdim=True)
        aij = g2 / (2 * g2 + sum_a * g3 + 1e-6)
        aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
        return (grads.clamp_min(0) * aij).sum(dim=spatial)
