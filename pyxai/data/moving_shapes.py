"""Procedural "moving shapes" video clips: one shape moving in a straight line; the label is its
direction of motion, so no single frame decides it.

Each clip reuses the scene of :func:`pyxai.data.shapes` (textured background, distractors, one
shaded object of a random :data:`~pyxai.data.SHAPE_CLASSES` kind) with a smaller object that travels
across the frame at constant speed. The distractors and the background stay still; per-frame sensor
noise is redrawn each frame. The mask of frame ``t`` is the moving object's pixels in frame ``t``.

Clips are produced in blocks of ``_BLOCK`` clips seeded from ``(seed, block index)`` (the same
splitmix64 scheme as :func:`~pyxai.data.shapes`), so the same seed gives the same clips on every
machine and ``moving_shapes(n, seed=s)`` is a prefix of ``moving_shapes(n + k, seed=s)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyxai.data.shapes import _block_seed, _check_int, _render, _sample_params, _uniform

__all__ = ["MOTION_CLASSES", "moving_shapes"]

#: Class names; a label is the index of its direction of motion in this tuple (image axes:
#: "right" is +x (width), "down" is +y (height)).
MOTION_CLASSES: tuple[str, ...] = ("right", "left", "down", "up")

_DIRECTIONS = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # (x, y) per label
_BLOCK = 64  # clips per independently seeded block
_RADIUS = (0.11, 0.17)  # object radius, fraction of the side
_TRAVEL = (0.35, 0.6)  # distance travelled over the clip, fraction of the side
_MARGIN = 0.02


def moving_shapes(n: int, frames: int = 16, size: int = 64, seed: int = 0
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Render ``n`` labelled clips of one shape moving right, left, down or up.

    Args:
        n (int): number of clips, ``>= 1``.
        frames (int, optional): frames per clip ``T``, ``>= 2``. The path is the same whatever
            ``T`` (only sampled more or less densely). Default: 16
        size (int, optional): height and width in pixels, ``>= 16``. Default: 64
        seed (int, optional): seed of the data set. Default: 0

    Returns:
        tuple(Tensor, Tensor, Tensor):
        - clips: Tensor[n, 3, T, size, size] float32 in [0, 1].
        - labels: Tensor[n] int64, indices into :data:`MOTION_CLASSES`.
        - masks: Tensor[n, 1, T, size, size] bool, the moving object's pixels in each frame.

    Examples::

        >>> clips, labels, masks = pyxai.data.moving_shapes(4, seed=3)
        >>> clips.shape, pyxai.data.MOTION_CLASSES[labels[0]]
    """
    n = _check_int("n", n, minimum=1)
    frames = _check_int("frames", frames, minimum=2)
    size = _check_int("size", size, minimum=16)
    seed = _check_int("seed", seed)
    clips = torch.empty(n, 3, frames, size, size)
    labels = torch.empty(n, dtype=torch.int64)
    masks = torch.empty(n, 1, frames, size, size, dtype=torch.bool)
    for block, start in enumerate(range(0, n, _BLOCK)):
        count = min(_BLOCK, n - start)
        gen = torch.Generator(device="cpu").manual_seed(_block_seed(seed, block) ^ 0x5A5A)
        params = _sample_params(gen, _BLOCK)
        label, begin, end = _motion(gen, params, _BLOCK)
        noise_gen = torch.Generator(device="cpu").manual_seed(int(torch.randint(2**62, (), generator=gen)))
        params = {key: value[:count] for key, value in params.items()}
        begin, end = begin[:count], end[:count]
        for t in range(frames):
            alpha = t / (frames - 1)
            params["center"] = begin + alpha * (end - begin)
            noise = torch.randn(_BLOCK, 3, size, size, generator=noise_gen)[:count]  # prefix-stable
            img, mask = _render(params, noise, size)
            clips[start : start + count, :, t] = img
            masks[start : start + count, :, t] = mask
        labels[start : start + count] = label[:count]
    return clips, labels, masks


def _motion(gen: torch.Generator, p: dict[str, Tensor], m: int) -> tuple[Tensor, Tensor, Tensor]:
    """Direction labels Tensor[m] and start / end centres Tensor[m, 2] (x, y) in [0, 1]; shrinks
    the object of ``p`` in place to the video radius range."""
    label = torch.randint(len(MOTION_CLASSES), (m,), generator=gen)
    r = _uniform(gen, (m,), *_RADIUS)
    p["radius"] = r
    lo, hi = r + _MARGIN, 1 - r - _MARGIN  # the centre's allowed range on both axes
    travel = torch.minimum(_uniform(gen, (m,), *_TRAVEL), hi - lo)
    u = torch.rand(m, 2, generator=gen)
    direction = _DIRECTIONS[label]  # [m, 2]
    moving = direction.abs()  # 1 on the axis of motion
    # along the axis: the segment [s, s + travel] inside [lo, hi]; across it: anywhere in [lo, hi]
    s = lo[:, None] + u * (hi - lo - travel * moving.amax(1))[:, None].expand(m, 2)
    s = torch.where(moving > 0, s, lo[:, None] + u * (hi - lo)[:, None])
    a, b = s, s + moving * travel[:, None]
    forward = direction.sum(1, keepdim=True) > 0  # right / down go from a to b
    begin = torch.where(forward, a, b)
    end = torch.where(forward, b, a)
    return label, begin, end
