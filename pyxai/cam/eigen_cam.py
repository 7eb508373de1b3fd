"""EigenCAM (Muhammad & Yeasin, 2020), EigenGradCAM and KPCA-CAM (Karmani et al., 2024):
first principal components of a layer's maps, drop-in for pytorch-grad-cam's classes.

The sign convention of the projection is in :mod:`pyxai.cam.projection`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from pyxai.cam.base import BaseCAM
from pyxai.cam.projection import KERNELS, project_2d, project_2d_kernel
from pyxai.engine.targets import ResolvedTarget


class EigenCAM(BaseCAM):
    """EigenCAM: the first principal component of the activations (no gradients, no target:
    the map is class-agnostic). ``eigen_smooth`` changes nothing (it is already a projection)."""

    uses_gradients = False

    def get_cam_image(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                      activations: torch.Tensor, grads: torch.Tensor | None,
                      forward: Callable, eigen_smooth: bool = False) -> torch.Tensor:
        return project_2d(activations)


class EigenGradCAM(BaseCAM):
    """EigenGradCAM: the first principal component of ``G * A`` (class-specific)."""

    def get_cam_image(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                      activations: torch.Tensor, grads: torch.Tensor | None,
                      forward: Callable, eigen_smooth: bool = False) -> torch.Tensor:
        assert grads is not None
        return project_2d(grads * activations)


class KPCA_CAM(BaseCAM):  # noqa: N801 (pytorch-grad-cam's name)
    """KPCA-CAM: the first kernel principal component of the activations (scikit-learn's
    ``KernelPCA(n_components=1, kernel=kernel, gamma=gamma)``, computed with torch).

    Args:
        model, target_layers, reshape_transform: as :class:`~pyxai.cam.base.BaseCAM`.
        kernel: ``"sigmoid"`` (default), ``"rbf"``, ``"poly"``, ``"linear"`` or ``"cosine"``.
        gamma: kernel coefficient; None = 1 / channels.
    """

    uses_gradients = False

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 kernel: str = "sigmoid", gamma: float | None = None,
                 backend: str | None = None) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float))
                                  or not gamma == gamma or abs(gamma) == float("inf")):
            raise ValueError(f"gamma must be a finite number or None, got {gamma!r}")
        super().__init__(model, target_layers, reshape_transform, backend=backend)
        self.kernel, self.gamma = kernel, gamma

    def get_cam_image(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                      activations: torch.Tensor, grads: torch.Tensor | None,
                      forward: Callable, eigen_smooth: bool = False) -> torch.Tensor:
        return project_2d_kernel(activations, self.kernel, self.gamma)
