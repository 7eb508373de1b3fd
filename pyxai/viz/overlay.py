"""Heat-map overlays on images and video frames (tensors in, float or uint8 RGB out).

One rule for every picture pyxai draws: a *signed* map (by default: one with negative values; the
CLI uses the registry's ``Method.signed``) is drawn on Zennit's ``bwr`` map centred at zero (red:
evidence for the target, blue: against), scaled by ``max|map|``; an unsigned map is scaled to
[0, 1] (by its maximum when it is non-negative) and drawn on ``jet``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pyxai.viz._arrays import as_tensor, to_numpy
from pyxai.viz.colormaps import colorize
from pyxai.viz.text import font as text_font
from pyxai.viz.text import text_mask

SIGNED_CMAP = "bwr"
UNSIGNED_CMAP = "jet"


def reduce_map(attr: Any, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An attribution as one Tensor[H, W]: channels summed (sign kept), time averaged, resized.

    ``attr``: Tensor[H, W], [C, H, W] or [C, T, H, W]; ``size``: (H, W) to resize to (bilinear).
    """
    a = as_tensor(attr, "map").float()
    if a.dim() == 4:
        a = a.mean(1)
    if a.dim() == 3:
        a = a.sum(0)
    if a.dim() != 2:
        raise ValueError(f"map must be [H, W], [C, H, W] or [C, T, H, W]; got {tuple(a.shape)}")
    if size is not None and tuple(a.shape) != tuple(size):
        a = F.interpolate(a[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return a


def is_signed(m: torch.Tensor) -> bool:
    """True when the map has negative values (shown on the signed colour map)."""
    return bool((m < 0).any())


def scale_map(m: torch.Tensor, signed: bool | None = None) -> tuple[torch.Tensor, bool]:
    """Tensor[H, W] -> (values in [0, 1] for the colour map, signed?).

    Signed: ``0.5 + 0.5 * m / max|m|`` (0 lands on the centre); unsigned: ``m / max(m)`` for a
    non-negative map, ``(m - min) / (max - min)`` otherwise (only the ranking is shown).
    """
    signed = is_signed(m) if signed is None else signed
    if signed:
        return 0.5 + 0.5 * m / m.abs().max().clamp_min(1e-12), True
    lo = m.min().clamp_max(0)
    return ((m - lo) / (m.max() - lo).clamp_min(1e-12)).clamp(0, 1), False


def overlay(image: Any, attr: Any, alpha: float = 0.5, signed: bool | None = None,
            colormap: str | None = None) -> torch.Tensor:
    """Blend a map on an image: Tensor[C, H, W] in [0, 1] + map -> Tensor[H, W, 3] float in [0, 1].

    Args:
        image: the un-normalised image, Tensor[C, H, W] in [0, 1] (C = 1 or 3).
        attr: the map (any layout :func:`reduce_map` takes); resized to the image.
        alpha: weight of the colour map. Default: 0.5.
        signed: force the signed / unsigned colour map. Default: from the map's values.
        colormap: colour map name. Default: ``bwr`` for signed maps, ``jet`` otherwise.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = as_tensor(image, "image").float()
    if img.dim() != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"image must be Tensor[C, H, W] with C = 1 or 3, got {tuple(img.shape)}")
    if img.min() < 0 or img.max() > 1:
        raise ValueError("image must lie in [0, 1] (pass the un-normalised image)")
    rgb = img.expand(3, -1, -1).permute(1, 2, 0)
    m = reduce_map(attr, tuple(img.shape[-2:]))
    v, signed = scale_map(m, signed)
    cmap = colormap or (SIGNED_CMAP if signed else UNSIGNED_CMAP)
    if signed:  # colours on the grey image, so white (zero) stays neutral
        rgb = rgb.mean(2, keepdim=True).expand(-1, -1, 3)
    return (1 - alpha) * rgb + alpha * colorize(v, cmap)


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """Tensor[H, W, 3] float in [0, 1] -> ndarray[H, W, 3] uint8."""
    return to_numpy((rgb.clamp(0, 1) * 255).round().to(torch.uint8))


def label_frame(pixels: np.ndarray, text: str | None = None, scale: int = 1) -> np.ndarray:
    """ndarray[H, W, 3] uint8 -> ndarray[H*s, W*s, 3] uint8: enlarged ``scale`` times (nearest),
    then ``text`` written top-left in white on a black band (nothing written for None or "").

    The text is PIL's default font as ``ImageDraw.text`` draws it, stitched from cached word
    bitmaps (:func:`pyxai.viz.text.text_mask`: a video's label changes every frame, and a PIL
    layout call costs more than the rest of a small frame's overlay); other text (tabs, repeated
    spaces) is drawn by PIL on the band only.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    # columns first: the second repeat then copies whole rows (4x faster at 64 x 64 x 4)
    out = np.repeat(np.repeat(pixels, scale, 1), scale, 0) if scale > 1 else np.array(pixels)
    if not text:
        return out
    stitched = text_mask(text)
    if stitched is None:
        return _label_with_pil(out, text)
    mask, box = stitched
    rows = min(out.shape[0], box[3] + 3)
    out[:rows, : box[2] + 3] = 0  # PIL's rectangle (0, 0, box[2] + 2, box[3] + 2), inclusive
    cols = min(out.shape[1], mask.shape[1])
    # white text on the black band: PIL's blend of ink 255 over 0 at alpha m is m itself
    np.maximum(out[:rows, :cols], mask[:rows, :cols, None], out=out[:rows, :cols])
    return out


def _label_with_pil(out: np.ndarray, text: str) -> np.ndarray:
    """``label_frame``'s text drawn by PIL (in place on ``out``'s band)."""
    from PIL import Image, ImageDraw

    font = text_font()
    left, top, right, bottom = font.getbbox(text)
    box = (2 + left, 1 + top, 2 + right, 1 + bottom)  # ImageDraw.textbbox((2, 1), text)
    rows = min(out.shape[0], box[3] + 3)
    band = Image.fromarray(np.ascontiguousarray(out[:rows]))
    draw = ImageDraw.Draw(band)
    draw.rectangle((0, 0, min(band.width, box[2] + 2), box[3] + 2), fill=(0, 0, 0))
    draw.text((2, 1), text, fill=(255, 255, 255), font=font)
    out[:rows] = np.asarray(band)
    return out


def frame_overlay(frame: Any, attr: Any, text: str | None = None, alpha: float = 0.5,
                  signed: bool | None = None, scale: int = 1) -> np.ndarray:
    """One labelled video frame: Tensor[C, H, W] in [0, 1] + map + text -> ndarray[H*s, W*s, 3] uint8.

    ``text`` (e.g. ``"gradcam  class 3  0.91"``) is written top-left on a dark band; ``scale``
    enlarges the frame (nearest) before writing so small frames stay legible (:func:`label_frame`).
    """
    return label_frame(to_uint8(overlay(frame, attr, alpha=alpha, signed=signed)), text, scale)
