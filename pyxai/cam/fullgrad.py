"""FullGrad (Srinivas & Fleuret, 2019), drop-in for pytorch-grad-cam's ``FullGrad``.

The map is the sum of ``|x * dy/dx|`` (per input channel) and, for every ``Conv2d`` /
``BatchNorm2d`` with a bias, ``|b * dy/dz|`` (``z`` the layer's output, ``b`` its bias; for
BatchNorm the effective bias ``beta - mean * gamma / sqrt(var + eps)``), each channel min-max
normalised (``(c - min) / (1e-7 + max)``) and resized to the input, then normalised once more; no
ReLU. As in pytorch-grad-cam, ``target_layers`` is ignored (all bias layers are used). One
forward and one backward on a view of the model, everything on the device. Channels are summed
at layer resolution before the (linear) resize: equal to resizing each one, K times cheaper.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pyxai.cam._resize import resize_cams, scale_cams
from pyxai.cam.base import BaseCAM
from pyxai.cam.projection import project_2d
from pyxai.engine.hooks import model_view


def bias_layers(model: nn.Module) -> list[nn.Module]:
    """pytorch-grad-cam's FullGrad layers: every ``Conv2d`` / ``BatchNorm2d`` (exact type) with a
    bias, in depth-first registration order."""
    return [m for m in model.modules()
            if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None]


def effective_bias(layer: nn.Module) -> torch.Tensor:
    """Tensor[K]: the layer's bias (BatchNorm: the bias of its eval-mode affine map)."""
    if isinstance(layer, nn.BatchNorm2d):
        return layer.bias - layer.running_mean * layer.weight / torch.sqrt(
            layer.running_var + layer.eps)
    return layer.bias


def _scale_channels(t: torch.Tensor) -> torch.Tensor:
    """Per (sample, channel) min-max of Tensor[B, K, h, w]."""
    b, k = t.shape[:2]
    return scale_cams(t.reshape(b * k, *t.shape[2:])).reshape(t.shape)


class FullGrad(BaseCAM):
    """FullGrad with pytorch-grad-cam's semantics (image models).

    Args:
        model: the model (never modified).
        target_layers: ignored, as in pytorch-grad-cam (a warning when non-empty).
        reshape_transform: as :class:`~pyxai.cam.base.BaseCAM`.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module] = (),
                 reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 backend: str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if target_layers is not None and len(target_layers) > 0:
            warnings.warn("target_layers is ignored in FullGrad: all bias layers are used",
                          stacklevel=2)
        layers = bias_layers(model)
        if not layers:
            raise ValueError("FullGrad needs a model with Conv2d or BatchNorm2d layers with bias")
        super().__init__(model, layers, reshape_transform, backend=backend)

    def _maps(self, inputs: torch.Tensor, target: Any, create_graph: bool, name: str,
              eigen_smooth: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._check_call(inputs, create_graph)
        if x.dim() != 4:
            raise ValueError("FullGrad supports image inputs Tensor[B, C, H, W] only")
        view = model_view(self.model)
        assert view is not None
        _, grads, _, outputs, x_grad = self._capture(view, x, target, create_graph, name,
                                                     input_grad=True)
        size = (x.shape[2], x.shape[3])
        parts = [_scale_channels((x * x_grad).abs())]  # [B, C, H, W]
        for layer, g in zip(self.target_layers, grads):
            bias = effective_bias(layer)
            bias = bias if create_graph else bias.detach()
            contrib = (bias.to(g.dtype)[None, :, None, None] * g).abs()
            parts.append(resize_cams(_scale_channels(contrib).sum(1), size)[:, None])
        maps = torch.cat(parts, 1)  # [B, C + L, H, W]
        if eigen_smooth:
            small = (max(1, size[0] // 8), max(1, size[1] // 8))
            maps = F.interpolate(_scale_channels(maps), size=small, mode="bilinear",
                                 align_corners=False)
            maps = resize_cams(scale_cams(project_2d(maps)), size)
        else:
            maps = maps.sum(1)
        return scale_cams(maps), outputs
