"""Frame overlays: a heat map blended on a frame, with the label, score and live frames/s drawn on it.

The colours are :mod:`pyxai.viz`'s (:func:`pyxai.viz.colorize`'s 256-entry tables) and so is the
labelling (:func:`pyxai.viz.label_frame`: nearest upscaling, text on a dark band). The video keeps
its own map scaling: min-max to [0, 1] on the map's grid, then resized to the frame (viz's
:func:`~pyxai.viz.overlay` resizes first and scales by the maximum). :func:`overlay_frame` does its
pixel arithmetic in NumPy, equal to :func:`normalize_map` + :func:`colorize` + a blend in PyTorch
(tested), because the pipeline calls it in its encoder thread. Frames are Tensor[3, H, W] (float
in [0, 1] or uint8); the result is a uint8 array ``[H', W', 3]`` ready for the encoder.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pyxai.viz import colorize as viz_colorize
from pyxai.viz import label_frame, scale_map
from pyxai.viz.colormaps import lookup_table

__all__ = ["colorize", "normalize_map", "overlay_frame"]


def normalize_map(heat: Tensor) -> Tensor:
    """Min-max scale a map Tensor[1, H, W] (or [H, W]) to [0, 1] (all zeros if constant)."""
    h = heat.detach().float().reshape(heat.shape[-2:])
    return scale_map(h - h.min(), signed=False)[0]


def colorize(heat: Tensor, cmap: str = "jet") -> Tensor:
    """Map values Tensor[H, W] in [0, 1] to colours Tensor[3, H, W] in [0, 1] with the matplotlib
    colour map ``cmap`` (:func:`pyxai.viz.colorize`'s 256-entry uint8 table)."""
    return viz_colorize(heat, cmap, matplotlib=True).to(heat.device).permute(2, 0, 1)


@lru_cache(maxsize=16)
def _blend_table(cmap: str, alpha: float) -> np.ndarray:
    """``alpha`` x the colour map's 256 colours, float32 ndarray[256, 3] (as :func:`colorize`)."""
    table = np.divide(lookup_table(cmap, matplotlib=True).numpy(), np.float32(255), dtype=np.float32)
    return np.float32(alpha) * table


def _rgb_pixels(frame: Tensor) -> np.ndarray:
    """Tensor[C, H, W] (float in [0, 1] or uint8; C = 1, 3 or more) -> float32 ndarray[H, W, 3]."""
    f = frame.detach().cpu()
    if f.shape[0] == 1:
        f = f.expand(3, -1, -1)
    a = f[:3].permute(1, 2, 0).numpy()
    if a.dtype == np.uint8:
        return np.divide(a, np.float32(255), dtype=np.float32)
    return np.clip(a, 0, 1, dtype=np.float32)


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

    The pixel work is NumPy (single-threaded): the video pipeline calls this in its encoder
    thread, where PyTorch's intra-op thread pool would compete with the model for the cores.
    The arithmetic is the float32 of :func:`normalize_map` / :func:`colorize` / ``to_uint8``.
    """
    rgb = _rgb_pixels(frame)
    h, w = rgb.shape[:2]
    if heat is not None:
        m = heat.detach().cpu().float().reshape(heat.shape[-2:]).numpy()
        m = m - m.min()
        m = np.clip(m / max(m.max(), np.float32(1e-12)), 0, 1)
        if m.shape != (h, w):
            m = F.interpolate(torch.from_numpy(m)[None, None], size=(h, w), mode="bilinear",
                              align_corners=False)[0, 0].numpy()
        np.multiply(m, 255, out=m)
        index = np.rint(m, out=m).astype(np.uint8)
        rgb *= np.float32(1 - alpha)
        rgb += np.take(_blend_table(cmap, alpha), index, axis=0)
    np.clip(rgb, 0, 1, out=rgb)
    rgb *= 255
    pixels = np.rint(rgb, out=rgb).astype(np.uint8)
    parts = [p for p in (label, None if score is None else f"{score:.2f}",
                         None if fps is None else f"{fps:.1f} fps") if p is not None]
    return label_frame(pixels, " ".join(parts), scale)
