"""The procedural moving-shapes clips: shapes, determinism, masks, and a label that needs time."""

from __future__ import annotations

import pytest
import torch

from pyxai.data import MOTION_CLASSES, moving_shapes


def _centroids(masks: torch.Tensor) -> torch.Tensor:
    """Per-frame mask centroids (x, y): Tensor[n, T, 2]."""
    m = masks[:, 0].float()  # [n, T, H, W]
    h, w = m.shape[-2:]
    ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    area = m.sum((2, 3))
    return torch.stack([(m * xs).sum((2, 3)) / area, (m * ys).sum((2, 3)) / area], -1)


def test_shapes_ranges_and_masks(rng):
    seed = int(torch.randint(10_000, (), generator=rng))
    clips, labels, masks = moving_shapes(5, frames=6, size=32, seed=seed)
    assert clips.shape == (5, 3, 6, 32, 32) and clips.dtype == torch.float32
    assert labels.shape == (5,) and labels.dtype == torch.int64
    assert masks.shape == (5, 1, 6, 32, 32) and masks.dtype == torch.bool
    assert 0 <= clips.min() and clips.max() <= 1
    assert set(labels.tolist()) <= set(range(len(MOTION_CLASSES)))
    assert (masks.sum((1, 3, 4)) > 0).all()  # the object is in every frame


def test_same_seed_same_clips_and_prefix(rng):
    seed = int(torch.randint(10_000, (), generator=rng))
    a = moving_shapes(3, frames=2, size=16, seed=seed)
    b = moving_shapes(66, frames=2, size=16, seed=seed)  # crosses a block boundary
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y[:3], rtol=0, atol=0)
    c = moving_shapes(3, frames=2, size=16, seed=seed + 1)
    assert not torch.equal(a[0], c[0])


def test_the_object_moves_in_the_labelled_direction(rng):
    seed = int(torch.randint(10_000, (), generator=rng))
    clips, labels, masks = moving_shapes(40, frames=4, size=32, seed=seed)
    c = _centroids(masks)
    step = c[:, -1] - c[:, 0]  # displacement over the clip, pixels
    direction = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])[labels]
    along = (step * direction).sum(1)
    across = (step * direction.flip(1)).sum(1).abs()
    assert (along > 0.3 * 32).all() and (across < 1).all()
    # the label needs time: reversing the clip moves the object the opposite way
    c_rev = _centroids(masks.flip(2))
    assert ((c_rev[:, -1] - c_rev[:, 0]) * direction).sum(1).lt(0).all()
    # ... and single frames of different labels are alike: every label starts anywhere
    assert len(set(labels.tolist())) == 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be >= 1"):
        moving_shapes(0)
    with pytest.raises(ValueError, match="frames must be >= 2"):
        moving_shapes(1, frames=1)
    with pytest.raises(ValueError, match="size must be >= 16"):
        moving_shapes(1, size=8)
    with pytest.raises(TypeError, match="seed must be an int"):
        moving_shapes(1, seed=1.5)
