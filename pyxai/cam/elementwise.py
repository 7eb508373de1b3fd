"""CAMs whose map is an element-wise product of gradients and activations, summed over channels
(pytorch-grad-cam's ``HiResCAM``, ``GradCAMElementWise``, ``LayerCAM``).

With ``eigen_smooth`` the channel sum is replaced by the first principal component of the
products (:func:`pyxai.cam.projection.project_2d`), as in pytorch-grad-cam.
"""

from __future__ import annotations

from typing import Callable

import torch

from pyxai.cam.base import BaseCAM
from pyxai.cam.projection import project_2d
from pyxai.engine.targets import ResolvedTarget


class _ElementWiseCAM(BaseCAM):
    """Map = channel sum (or principal component) of :meth:`products` Tensor[B, K, *spatial]."""

    def products(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_cam_image(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                      activations: torch.Tensor, grads: torch.Tensor | None,
                      forward: Callable, eigen_smooth: bool = False) -> torch.Tensor:
        assert grads is not None
        p = self.products(activations, grads)
        return project_2d(p) if eigen_smooth else p.sum(1)


class HiResCAM(_ElementWiseCAM):
    """HiResCAM (Draelos & Carin, 2020): ``sum_k G_k * A_k`` (element-wise, no spatial mean).

    Examples::

        >>> cam = pyxai.HiResCAM(model, target_layers=[model.layer4[-1]])
        >>> maps = cam(input_tensor=x, targets=None)     # np.ndarray[B, H, W] in [0, 1]
    """

    def products(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads * activations


class GradCAMElementWise(_ElementWiseCAM):
    """Grad-CAM element-wise (pytorch-grad-cam): ``sum_k relu(G_k * A_k)``."""

    def products(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return (grads * activations).clamp_min(0)


class LayerCAM(_ElementWiseCAM):
    """LayerCAM (Jiang et al., 2021): ``sum_k relu(G_k) * A_k``."""

    def products(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.clamp_min(0) * activations
