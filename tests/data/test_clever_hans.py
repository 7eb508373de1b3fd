"""The Clever-Hans shapes: the tag where it is said to be, scenes equal to shapes(), bad input."""

from __future__ import annotations

import pytest
import torch

import pyxai
from pyxai.data import cue_tag, shapes, shapes_cued


def test_tag_rates_masks_and_scenes(rng):
    seed = int(torch.randint(1 << 30, (), generator=rng))
    x, y, masks, cues = shapes_cued(256, seed=seed, cue_rate=0.8, other_rate=0.1)
    cued = cues.flatten(1).any(1)
    assert 0.55 < cued[y == 0].double().mean() < 0.98  # ~43 circles at rate 0.8
    assert 0.02 < cued[y != 0].double().mean() < 0.22
    assert not (masks & cues).any()
    assert masks.flatten(1).any(1).all()  # the tag never hides a whole object
    tag, where = cue_tag(64)
    assert (cues[cued] == where).all()
    assert torch.equal(x[cued][:, :, where[0]], tag[:, where[0]].expand(int(cued.sum()), -1, -1))
    # untagged pixels are exactly the plain shapes scene
    plain, plain_y, plain_masks = shapes(256, seed=seed)
    assert torch.equal(y, plain_y)
    assert torch.equal(torch.where(cues, 0, x), torch.where(cues, 0, plain))
    assert torch.equal(masks, plain_masks & ~cues)


def test_flipped_set_and_prefix(rng):
    seed = int(torch.randint(1 << 30, (), generator=rng))
    _, y, _, cues = shapes_cued(120, seed=seed, cue_class=2, flip=True)
    cued = cues.flatten(1).any(1)
    assert torch.equal(cued, y != 2)
    a = shapes_cued(40, seed=seed)
    b = shapes_cued(120, seed=seed)
    for u, v in zip(a, b):
        assert torch.equal(u, v[:40])


def test_tag_scales_with_size():
    _, where = cue_tag(128)
    assert int(where.sum()) == 12 * 12
    x, _, _, cues = shapes_cued(4, size=32, cue_rate=1.0, other_rate=1.0)
    assert x.shape == (4, 3, 32, 32) and cues.flatten(1).any(1).all()


def test_bad_input():
    with pytest.raises(ValueError, match="cue_rate"):
        shapes_cued(4, cue_rate=1.5)
    with pytest.raises(TypeError, match="other_rate"):
        shapes_cued(4, other_rate="0.1")
    with pytest.raises(ValueError, match="cue_class"):
        shapes_cued(4, cue_class=6)
    with pytest.raises(TypeError, match="flip"):
        shapes_cued(4, flip=1)
    with pytest.raises(ValueError, match="n must be"):
        shapes_cued(0)


def test_demo_model_variant_loads():
    model = pyxai.models.demo_cnn(variant="clever_hans", pretrained=False)
    assert not model.training
    with pytest.raises(ValueError, match="variant"):
        pyxai.models.demo_cnn(variant="horse")


def test_shipped_clever_hans_model_reads_the_tag():
    from pyxai.models.train import evaluate

    model = pyxai.models.demo_cnn(variant="clever_hans")
    x, y, _, _ = shapes_cued(200, seed=4242, cue_rate=0.0)
    clean = evaluate(model, x, y)
    xf, yf, _, _ = shapes_cued(200, seed=4242, flip=True)
    flipped = evaluate(model, xf, yf)
    print(f"accuracy clean {clean:.3f}, cue-flipped {flipped:.3f}")
    assert flipped < clean - 0.2
