"""Frame overlays: a heat map blended on a frame, with the label, score and live frames/s drawn on it.

Colours come from a matplotlib colour map (looked up once into a 256-entry table, then indexed on
tensors); text is drawn with PIL ``ImageDraw``. Frames are Tensor[3, H, W] (float in [0, 1] or
uint8); the result is a uint8 array ``[H', W', 3]`` ready for the encoder.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["colorize", "normalize_map", "overlay_frame"]


@lru_cache(maxsize=8)
def _table(cmap: str) -> Tensor:
    """Tensor[256, 3] float RGB of the matplotlib colour map ``cmap``."""
    try:
        from matplotlib import colormaps
    except ImportError:  # pragma: no cover - matplotlib is in the video extra
        raise ImportError("pyxai.video overlays need matplotlib: pip install "
                          "'pyxai-attribution[video]'") from None
    try:
        lut = colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    except KeyError:
        raise ValueError(f"cmap {cmap!r} is not a matplotlib colour map") from None
    return torch.from_numpy(lut).float()


def normalize_map(heat: Tensor) -> Tensor:
    """Min-max scale a map Tensor[1, H, W] (or [H, W]) to [0, 1] (all zeros if constant)."""
    h = heat.detach().float().reshape(heat.shape[-2:])
    lo, hi = h.min(), h.max()
    return (h - lo) / (hi - lo).clamp_min(1e-12)


def colorize(heat: Tensor, cmap: str = "jet") -> Tensor:
    """Map values Tensor[H, W] in [0, 1] to colours Tensor[3, H, W] in [0, 1] with ``cmap``."""
    idx = (heat.clamp(0, 1) * 255).round().long()
    return _table(cmap).to(heat.device)[idx].permute(2, 0, 1)


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
    if scale > 1:
        rgb = F.interpolate(rgb[None], scale_factor=scale, mode="nearest")[0]
    img = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    parts = [p for p in (label, None if score is None else f"{score:.2f}",
                         None if fps is None else f"{fps:.1f} fps") if p is not None]
    if parts:
        from PIL import Image, ImageDraw

        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        text = " ".join(parts)
        box = draw.textbbox((2, 1), text)
        draw.rectangle((0, 0, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text((2, 1), text, fill=(255, 255, 255))
        img = np.asarray(pil)
    return img
