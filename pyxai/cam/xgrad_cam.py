"""XGrad-CAM (Fu et al., 2020), drop-in for pytorch-grad-cam's ``XGradCAM``."""

from __future__ import annotations

from typing import Callable

import torch

from pyxai.cam.base import BaseCAM
from pyxai.engine.targets import ResolvedTarget


class XGradCAM(BaseCAM):
    """XGrad-CAM: channel weights ``w_k = sum_ij G_kij A_kij / (sum_ij A_kij + 1e-7)``."""

    def get_cam_weights(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                        activations: torch.Tensor, grads: torch.Tensor | None,
                        forward: Callable) -> torch.Tensor:
        assert grads is not None
        spatial = tuple(range(2, activations.dim()))
        total = activations.sum(dim=spatial, keepdim=True)
        return (grads * activations / (total + 1e-7)).sum(dim=spatial)
