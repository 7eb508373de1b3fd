"""Tests of the procedural shapes data set (pyxai.data.shapes)."""

from __future__ import annotations

import pytest
import torch

from pyxai.data import SHAPE_CLASSES, shape_layers, shapes


@pytest.fixture(scope="module")
def batch():
    return shapes(300, seed=7)  # spans two generator blocks


def test_types_shapes_ranges(batch):
    images, labels, masks = batch
    assert images.shape == (300, 3, 64, 64) and images.dtype == torch.float32
    assert labels.shape == (300,) and labels.dtype == torch.int64
    assert masks.shape == (300, 1, 64, 64) and masks.dtype == torch.bool
    assert images.is_contiguous() and masks.is_contiguous()
    assert images.min() >= 0 and images.max() <= 1
    assert labels.min() >= 0 and labels.max() < len(SHAPE_CLASSES)


def test_classes():
    assert len(SHAPE_CLASSES) >= 6 and len(set(SHAPE_CLASSES)) == len(SHAPE_CLASSES)
    assert all(isinstance(name, str) for name in SHAPE_CLASSES)


def test_every_class_appears(batch):
    counts = torch.bincount(batch[1], minlength=len(SHAPE_CLASSES))
    assert (counts >= 20).all(), counts


def test_masks_nonempty_and_inside(batch):
    _, _, masks = batch
    area = masks.flatten(1).sum(1)
    assert (area > 0).all()
    # objects are small but clearly visible, and never cut by the image border
    assert (area >= 0.01 * 64 * 64).all() and (area <= 0.3 * 64 * 64).all()
    border = masks[..., 0, :].any() | masks[..., -1, :].any()
    border = border | masks[..., :, 0].any() | masks[..., :, -1].any()
    assert not border


def test_object_stands_out(batch):
    """Inside the mask the image differs from its surroundings (the object is drawn there)."""
    images, _, masks = batch
    m = masks.float()
    ring = (torch.nn.functional.max_pool2d(m, 7, 1, 3) - m).clamp(min=0)
    inside = (images * m).sum((2, 3)) / m.sum((2, 3))
    around = (images * ring).sum((2, 3)) / ring.sum((2, 3))
    contrast = (inside - around).norm(dim=1)
    assert (contrast > 0.1).float().mean() > 0.9


@pytest.mark.parametrize("size", [16, 33])
def test_small_and_odd_sizes(size):
    images, labels, masks = shapes(40, seed=1, size=size)
    assert images.shape == (40, 3, size, size) and masks.shape == (40, 1, size, size)
    assert (masks.flatten(1).sum(1) > 0).all()
    # the scene does not depend on the resolution, only its rendering
    assert torch.equal(labels, shapes(40, seed=1)[1])


def test_deterministic():
    a = shapes(12, seed=3)
    b = shapes(12, seed=3)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    c = shapes(12, seed=4)
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[2], c[2])


def test_prefix_and_thread_independence(batch):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        small = shapes(5, seed=7)
    finally:
        torch.set_num_threads(threads)
    for x, y in zip(small, batch):
        assert torch.equal(x, y[:5])


def test_large_seeds():
    for seed in (-1, 2**40, 2**70):
        images, labels, masks = shapes(2, seed=seed)
        assert images.shape == (2, 3, 64, 64)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n": 0}, ValueError, "n must be >= 1"),
        ({"n": -3}, ValueError, "n must be >= 1"),
        ({"n": 2.5}, TypeError, "n must be an int"),
        ({"n": True}, TypeError, "n must be an int"),
        ({"n": 2, "size": 15}, ValueError, "size must be >= 16"),
        ({"n": 2, "size": "64"}, TypeError, "size must be an int"),
        ({"n": 2, "seed": None}, TypeError, "seed must be an int"),
        ({"n": 2, "seed": 1.0}, TypeError, "seed must be an int"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    for render in (shapes, shape_layers):
        with pytest.raises(error, match=match):
            render(**kwargs)


def test_integer_like_arguments():
    images, _, _ = shapes(torch.tensor(2), seed=torch.tensor(5), size=16)
    assert images.shape == (2, 3, 16, 16)


def test_layers_composite_to_the_images(batch):
    """alpha * fg + (1 - alpha) * bg is the image but for the object's pixel noise (sigma <=
    0.04, so within 5 sigma); off the object it is the image exactly."""
    images, labels, masks = batch
    bg, fg, alpha, lab = shape_layers(300, seed=7)
    assert torch.equal(lab, labels)
    for t in (bg, fg, alpha):
        assert t.dtype == torch.float32 and t.min() >= 0 and t.max() <= 1
    assert bg.shape == fg.shape == images.shape and alpha.shape == masks.shape
    assert torch.equal(alpha >= 0.5, masks & (alpha >= 0.5))  # coverage >= 0.5 is object
    composite = alpha * fg + (1 - alpha) * bg
    assert (composite - images).abs().max() <= 0.2
    off = (alpha == 0).expand_as(images)
    assert torch.equal(composite[off], images[off])
    # a swapped background keeps the object and changes the rest
    swapped = alpha * fg + (1 - alpha) * bg.roll(1, 0)
    assert torch.equal(swapped[(alpha == 1).expand_as(images)],
                       composite[(alpha == 1).expand_as(images)])
    assert (swapped - composite)[off].abs().mean() > 0.05
