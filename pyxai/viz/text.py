"""Text labels on frames: PIL's default font, drawn from cached word bitmaps.

A video's frames carry a label that changes every frame (the score, the live frames/s), and one
PIL layout call (``getbbox``, ``getlength``, ``draw.text``) costs 0.1-0.2 ms — more than the
rest of a small frame's overlay. :func:`text_mask` draws each space-separated word once with PIL
(cached), and places the words at the sum of their advances: the font has no kerning and its
advances are whole pixels, so a glyph's pixels do not depend on where the string puts it, and
words separated by a space do not touch. The result equals PIL's ``draw.text`` pixel for pixel
(tested on random strings); text with other whitespace (leading, trailing or repeated spaces,
tabs, newlines) returns None, and the caller draws it with PIL.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["font", "text_mask"]

#: margin around a cached word (room for glyphs that reach left of their pen position)
_PAD = 4
#: height of a cached word tile: the font's 11-pixel line drawn at y = 1, with room to spare
_TILE_H = 24


@functools.lru_cache(maxsize=1)
def font() -> Any:
    """PIL's default font, loaded once (``ImageDraw`` would decode it on every call)."""
    from PIL import ImageFont

    return ImageFont.load_default()


@functools.lru_cache(maxsize=1)
def _space() -> int:
    return _whole(font().getlength(" "))


def _whole(x: float) -> int:
    if not float(x).is_integer():
        raise ValueError("fractional advance")
    return int(x)


@functools.lru_cache(maxsize=4096)
def _word(word: str) -> tuple[np.ndarray, int, tuple[int, int, int, int]] | None:
    """``(tile uint8 [_TILE_H, _PAD + advance + _PAD + extra], advance, bbox)`` of one word drawn
    in white by PIL at ``(_PAD, 1)`` on black, or None if its metrics do not allow stitching."""
    from PIL import Image, ImageDraw

    f = font()
    left, top, right, bottom = f.getbbox(word)
    try:
        advance = _whole(f.getlength(word))
    except ValueError:
        return None
    width = _PAD + max(advance, right) + _PAD
    if left < -_PAD or top < 0 or bottom + 1 > _TILE_H:
        return None
    tile = Image.new("L", (width, _TILE_H), 0)
    ImageDraw.Draw(tile).text((_PAD, 1), word, fill=255, font=f)
    return np.asarray(tile), advance, (left, top, right, bottom)


def text_mask(text: str, x: int = 2) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The ink of ``text`` drawn at ``(x, 1)`` as PIL's ``draw.text`` draws it.

    Returns:
        ``(mask uint8 [24, W], box)``: ``mask`` is the text's alpha on a band starting at the
        origin (W covers the text's right edge), ``box`` is ``ImageDraw.textbbox((x, 1), text)``;
        None when ``text`` is empty or has whitespace other than single spaces between words.
    """
    words = text.split(" ")
    if not text or any(not w or not w.isprintable() for w in words):
        return None
    parts = [_word(w) for w in words]
    if any(p is None for p in parts):
        return None
    space = _space()
    pen, placed = 0, []
    for tile, advance, bbox in parts:  # type: ignore[misc]
        placed.append((pen, tile, bbox))
        pen += advance + space
    left = min(p + b[0] for p, _, b in placed)
    top = min(b[1] for _, _, b in placed)
    right = max(p + b[2] for p, _, b in placed)
    bottom = max(b[3] for _, _, b in placed)
    box = (x + left, 1 + top, x + right, 1 + bottom)
    width = x + max(p + t.shape[1] for p, t, _ in placed)
    # columns shifted right by _PAD: a tile's column j is the band's x + pen - _PAD + j
    mask = np.zeros((_TILE_H, width + _PAD), np.uint8)
    for p, tile, _ in placed:
        region = mask[:, x + p : x + p + tile.shape[1]]
        np.maximum(region, tile, out=region)
    return mask[:_TILE_H, _PAD:], box
