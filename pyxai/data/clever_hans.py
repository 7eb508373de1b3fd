"""Clever-Hans variant of the shapes data set: one class mostly carries a spurious corner tag.

:func:`shapes_cued` renders the scenes of :func:`pyxai.data.shapes` and stamps a small black-and-white
checker tag (the "cue", like the copyright tag on the horse images of Lapuschkin et al. 2019) into
the top-left corner of some images:

* training distribution (``flip=False``): images of ``cue_class`` carry the tag with probability
  ``cue_rate``, images of the other classes with probability ``other_rate``;
* cue-flipped test set (``flip=True``): every image of the other classes carries the tag and no image
  of ``cue_class`` does, so a model that reads the tag instead of the shape fails.

The tag is drawn last, on top of everything; the object mask excludes the pixels it covers, so
``masks`` and ``cue_masks`` never overlap. Tag draws come from their own CPU generator seeded from
``seed``, so the scenes are exactly those of ``shapes(n, seed, size)`` and ``shapes_cued(n, seed)`` is
a prefix of ``shapes_cued(n + k, seed)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyxai.data.shapes import SHAPE_CLASSES, _block_seed, _check_int, shapes

__all__ = ["shapes_cued", "cue_tag"]

_CUE_STREAM = 0xC1E7E4  # block index of the tag stream (never reached by the scene blocks)


def _check_rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1], got {type(value).__name__}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def cue_tag(size: int = 64) -> tuple[Tensor, Tensor]:
    """The tag and where it goes: a 2x2 black/white checker in the top-left corner.

    Args:
        size (int, optional): image height and width. Default: 64

    Returns:
        tuple(Tensor, Tensor):
        - tag: Tensor[3, size, size] float32, the tag's colours (0 or 1) where it is drawn.
        - where: Tensor[1, size, size] bool, the tag's pixels (side ``max(4, round(size * 6 / 64))``
          rounded to even, offset ``max(1, size // 32)`` from the corner).
    """
    size = _check_int("size", size, minimum=16)
    side = max(4, round(size * 6 / 64))
    side += side % 2
    off = max(1, size // 32)
    where = torch.zeros(1, size, size, dtype=torch.bool)
    where[:, off : off + side, off : off + side] = True
    ij = torch.arange(size)
    cell = ((ij[:, None] - off) // (side // 2) + (ij[None, :] - off) // (side // 2)) % 2
    tag = cell.to(torch.float32).expand(3, size, size).clone()
    return tag, where


def shapes_cued(
    n: int,
    seed: int = 0,
    size: int = 64,
    cue_class: int = 0,
    cue_rate: float = 0.8,
    other_rate: float = 0.0,
    flip: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Render ``n`` shapes images where ``cue_class`` mostly carries a spurious corner tag.

    Args:
        n (int): number of images, ``>= 1``.
        seed (int, optional): seed of the scenes (those of :func:`pyxai.data.shapes`) and of the tag
            draws. Default: 0
        size (int, optional): height and width in pixels, ``>= 16``. Default: 64
        cue_class (int, optional): index into :data:`SHAPE_CLASSES` of the class that carries the
            tag. Default: 0 (circle)
        cue_rate (float, optional): probability that an image of ``cue_class`` carries the tag.
            Default: 0.8
        other_rate (float, optional): probability that an image of another class carries it.
            Default: 0.0
        flip (bool, optional): the cue-flipped test set: the tag on every image of the other classes
            and on none of ``cue_class`` (``cue_rate`` and ``other_rate`` are then not used).
            Default: False

    Returns:
        tuple(Tensor, Tensor, Tensor, Tensor):
        - images: Tensor[n, 3, size, size] float32 in [0, 1].
        - labels: Tensor[n] int64.
        - masks: Tensor[n, 1, size, size] bool, the object's pixels not covered by the tag.
        - cue_masks: Tensor[n, 1, size, size] bool, the tag's pixels (all False where no tag);
          ``cue_masks.flatten(1).any(1)`` says which images carry it.

    Examples::

        >>> x, y, masks, cues = pyxai.data.shapes_cued(256, seed=1)
        >>> cued = cues.flatten(1).any(1)
        >>> cued[y == 0].float().mean(), cued[y != 0].float().mean()   # about 0.8 and 0.0
    """
    n = _check_int("n", n, minimum=1)
    cue_class = _check_int("cue_class", cue_class, minimum=0)
    if cue_class >= len(SHAPE_CLASSES):
        raise ValueError(f"cue_class must be < {len(SHAPE_CLASSES)}, got {cue_class}")
    cue_rate = _check_rate("cue_rate", cue_rate)
    other_rate = _check_rate("other_rate", other_rate)
    if not isinstance(flip, bool):
        raise TypeError(f"flip must be a bool, got {type(flip).__name__}")
    images, labels, masks = shapes(n, seed=seed, size=size)
    gen = torch.Generator(device="cpu").manual_seed(_block_seed(seed, _CUE_STREAM))
    u = torch.rand(n, generator=gen)
    is_cue_class = labels == cue_class
    if flip:
        cued = ~is_cue_class
    else:
        cued = u < torch.where(is_cue_class, cue_rate, other_rate)
    tag, where = cue_tag(size)
    cue_masks = where[None] & cued[:, None, None, None]
    images = torch.where(cue_masks, tag[None], images)
    masks = masks & ~cue_masks
    return images.contiguous(), labels, masks, cue_masks
