"""Model state, hooks, and bad input of the CAM explainers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyxai
from tests.gradient._models import Boom, assert_unchanged, exploding, resnet18, snapshot


@pytest.fixture(scope="module")
def model():
    return resnet18()


def explainers(m):
    layer = m.layer4[-1]
    return {
        "gradcam": lambda x: pyxai.GradCAM(m, [layer]).attribute(x, 1),
        "gradcampp": lambda x: pyxai.GradCAMPlusPlus(m, [m.layer3, layer])(x, [1, 2]),
        "scorecam": lambda x: pyxai.ScoreCAM(m, [m.layer1], batch_size=64).attribute(x, 1),
        "sidu": lambda x: pyxai.SIDU(m, m.layer1, softmax=True).attribute(x, 1),
    }


def test_model_left_as_found(rng):
    m = resnet18()
    m.conv1.requires_grad_(False)
    m.fc.train()  # a mixed mode must be kept, not switched to eval
    x = torch.randn(2, 3, 16, 16, generator=rng)
    snap = snapshot(m)
    for call in explainers(m).values():
        call(x)
        assert_unchanged(m, snap)
    h = exploding(m.layer4)
    try:
        snap = snapshot(m)
        for call in explainers(m).values():
            with pytest.raises(Boom):
                call(x)
            assert_unchanged(m, snap)
    finally:
        h.remove()


class SideBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.side = nn.Conv2d(3, 4, 3)
        self.flat = nn.Flatten()
        self.main = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(4, 5))

    def forward(self, x):
        self.side(x)
        return self.main(x)


def test_bad_input(model, rng):
    x = torch.randn(2, 3, 16, 16, generator=rng)
    with pytest.raises(ValueError, match="not a module of the model"):
        pyxai.GradCAM(model, [nn.Conv2d(3, 3, 1)])
    with pytest.raises(ValueError, match="not a module of the model"):
        pyxai.SIDU(model, nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="not a 4-D/5-D feature map"):
        pyxai.GradCAM(model, [model.fc]).attribute(x)
    with pytest.raises(ValueError, match="not a 4-D"):
        pyxai.SIDU(model, model.fc).attribute(x)
    with pytest.raises(ValueError, match="out of range"):
        pyxai.GradCAM(model, [model.layer4]).attribute(x, target=10)
    with pytest.raises(ValueError, match="out of range"):
        pyxai.ScoreCAM(model, [model.layer4])(x, [0, 12])
    with pytest.raises(ValueError, match="entries"):
        pyxai.GradCAMPlusPlus(model, [model.layer4])(x, [0, 1, 2])
    with pytest.raises(ValueError, match="inputs are on meta but the model is on cpu"):
        pyxai.GradCAM(model, [model.layer4]).attribute(x.to("meta"))
    side = SideBranch()
    with pytest.raises(ValueError, match="does not depend"):
        pyxai.GradCAM(side, [side.side]).attribute(x, target=1)
    with pytest.raises(ValueError, match="did not run"):
        pyxai.GradCAM(side, [side.flat]).attribute(x, target=1)
    with pytest.raises(ValueError, match="input_tensor"):
        pyxai.GradCAM(model, [model.layer4]).attribute(x[0])
    with pytest.raises(ValueError, match="input_tensor"):  # checked before the augmentation
        pyxai.GradCAM(model, [model.layer4])(x[0], None, aug_smooth=True)


def test_frozen_backbone(model, rng):
    """The backward reaches the layer even when nothing before it requires grad."""
    m = resnet18()
    m.requires_grad_(False)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    a = pyxai.GradCAM(m, [m.layer4[-1]]).attribute(x, 1)
    m.requires_grad_(True)
    b = pyxai.GradCAM(m, [m.layer4[-1]]).attribute(x, 1)
    assert torch.allclose(a, b, atol=1e-6)
