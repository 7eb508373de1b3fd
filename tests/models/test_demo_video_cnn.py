"""The bundled demo video model: shapes, shipped weights, held-out accuracy on an unseen seed."""

from __future__ import annotations

import torch

from pyxai.data import moving_shapes
from pyxai.models import demo_video_cnn
from pyxai.models.demo_video_cnn import VIDEO_WEIGHTS_PATH
from pyxai.models.train_video import EVAL_SEED, augment


def test_random_model_shapes(rng):
    model = demo_video_cnn(pretrained=False)
    assert not model.training
    x = torch.rand(2, 3, 8, 64, 64, generator=rng)
    with torch.no_grad():
        assert model(x).shape == (2, 4)


def test_shipped_weights_small_and_accurate_on_an_unseen_seed():
    assert VIDEO_WEIGHTS_PATH.stat().st_size < 2e6
    model = demo_video_cnn()
    clips, labels, _ = moving_shapes(32, seed=EVAL_SEED + 1)  # neither training nor README seed
    with torch.no_grad():
        acc = (model(clips).argmax(1) == labels).float().mean()
    assert acc >= 0.9


def test_augmentations_relabel_consistently(rng):
    clips, labels, masks = moving_shapes(16, frames=4, size=16, seed=3)
    torch.manual_seed(int(torch.randint(1000, (), generator=rng)))
    for _ in range(4):
        x, y = augment(masks.float(), labels)
        c = x[:, 0]
        w = torch.arange(16.0)
        cx = (c.sum(2) * w).sum(-1) / c.sum((2, 3))  # [n, T]
        cy = (c.sum(3) * w).sum(-1) / c.sum((2, 3))
        dx, dy = cx[:, -1] - cx[:, 0], cy[:, -1] - cy[:, 0]
        want = torch.where(dx.abs() > dy.abs(), torch.where(dx > 0, 0, 1), torch.where(dy > 0, 2, 3))
        assert torch.equal(want, y)
