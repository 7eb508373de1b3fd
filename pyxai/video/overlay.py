"""Frame overlays: a heat map blended on a frame, with the label, score and live frames/s drawn on it.

Drawn with :mod:`pyxai.viz`: its colour maps (:func:`pyxai.viz.colorize`), uint8 conversion and
frame labelling (:func:`pyxai.viz.label_frame`: nearest upscaling, text on a dark band). The video
keeps its own map scaling: min-max to [0, 1] on the map's grid, then resized to the frame (viz's
:func:`~pyxai.viz.overlay` resizes first and scales by the maximum). Frames are Tensor[3, H, W]
(float in [0, 1] or uint8); the result is a uint8 array ``[H', W', 3]`` ready for the encoder.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pyxai.viz import colorize as viz_colorize
from pyxai.viz import label_frame, scale_map, to_uint8

__all__ = ["colorize", "normalize_map", "overlay_frame"]


def normalize_map(heat: Tensor) -> Tensor:
    """Min-max scale a map Tensor[1, H, W] (or [H, W]) to [0, 1] (all zeros if constant)."""
    h = heat.detach().float().reshape(heat.shape[-2:])
    return scale_map(h - h.min(), signed=False)[0]


def colorize(heat: Tensor, cmap: str = "jet") -> Tensor:
    """Map values Tensor[H, W] in [0, 1] to colours Tensor[3, H, W] in [0, 1] with the matplotlib
    colour map ``cmap`` (:func:`pyxai.viz.colorize`'s 256-entry uint8 table)."""
    return viz_colorize(heat, cmap, matplotlib=True).to(heat.device).permute(2, 0, 1)


def _as_float_rgb(frame: Tensor) -> Tensor:
    f = frame.detach()
    f = f.float() / 255 if f.dtype == torch.uint8 else f.float().clamp(0, 1)
    if f.shape[0] == 1:
        f = f.expand(3, -1, -1)
    return f[:3]


def overlay_frame(frame: Tensor, heat: Tensor | None, label: str | None = None,
                  score: float | None = None, fps: float | None = None, alpha: float = 0.5,
                  cmap: str = "jet", scale: int = 1) -> np.ndarray:
    """Blend the normalised ``heat`` on ``frame`` and write ``label``, ``score`` and ``fps`` on it.

    Args:
        frame: Tensor[C, H, W] float in [0, 1] or uint8 (C = 1 or 3; more: the first 3).
        heat: Tensor[1, h, w] map (any range; min-max normalised, resized to H x W), or None.
        label, score, fps: text drawn in the top-left corner (omitted when None).
        alpha: weight of the heat colours in the blend. Default: 0.5
        cmap: matplotlib colour map name. Default: "jet"
        scale: integer upscaling of the output (nearest), so text stays legible on small
            frames. Default: 1

    Returns:
        np.ndarray uint8 ``[H * scale, W * scale, 3]``.
    """
    rgb = _as_float_rgb(frame).cpu()
    h, w = rgb.shape[-2:]
    if heat is not None:
        m = normalize_map(heat.cpu())
        if m.shape != (h, w):
            m = F.interpolate(m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        rgb = (1 - alpha) * rgb + alpha * colorize(m, cmap)
    parts = [p for p in (label, None if score is None else f"{score:.2f}",
                         None if fps is None else f"{fps:.1f} fps") if p is not None]
    return label_frame(to_uint8(rgb.permute(1, 2, 0)), " ".join(parts), scale)
