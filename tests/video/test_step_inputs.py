"""STEP: bad input fails early with errors naming the argument."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyxai


def _net(logits: bool = False) -> nn.Module:
    layers = [nn.Conv3d(3, 4, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 5)]
    return nn.Sequential(*layers, *([] if logits else [nn.Softmax(1)])).eval()


@pytest.mark.parametrize("kwargs, match", [
    (dict(areas=(0.1, 1.0)), "areas must lie in"),
    (dict(areas=0.0), "areas must lie in"),
    (dict(areas=()), "areas is empty"),
    (dict(areas="0.1"), "areas must be a number"),
    (dict(max_iter=0), "max_iter must be a positive int"),
    (dict(max_iter=-3), "max_iter must be a positive int"),
    (dict(variant="both"), "variant must be one of"),
    (dict(core_shape="cube"), "core_shape must be one of"),
    (dict(objective="4d"), "objective must be one of"),
    (dict(perturbation="noise"), "perturbation must be one of"),
    (dict(num_levels=1), "num_levels must be at least 2"),
    (dict(sigma=float("nan")), "sigma must be a positive number"),
    (dict(core_frames=0), "core_frames must be a positive int"),
    (dict(reward="linear"), "reward must be 'log' or a callable"),
    (dict(smooth=-1.0), "smooth must be a finite number"),
    (dict(seed=1.5), "seed must be an int"),
])
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        pyxai.STEP(_net(), **kwargs)


def test_bad_inputs_targets_and_rewards(rng):
    x = torch.rand(2, 3, 6, 24, 24, generator=rng)
    step = pyxai.STEP(_net(), max_iter=2, sigma=7.0, core_frames=3)
    with pytest.raises(ValueError, match=r"inputs must be a Tensor\[B, C, T, H, W\]"):
        step.attribute(x[:, :, 0], 0)
    bad = x.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="inputs contains NaN"):
        step.attribute(bad, 0)
    with pytest.raises(TypeError, match="inputs must be a floating-point"):
        step.attribute((x * 255).to(torch.uint8), 0)
    with pytest.raises(ValueError, match="target .* out of range"):
        step.attribute(x, 7)
    with pytest.raises(ValueError, match="target has 3 entries"):
        step.attribute(x, [0, 1, 2])
    with pytest.raises(ValueError, match="reward: .* one score per row"):
        pyxai.STEP(_net(), max_iter=2, sigma=7.0, core_frames=3,
                   reward=lambda out, rows: out[:, :2]).attribute(x)
    with pytest.raises(ValueError, match="either a reward callable or a target"):
        pyxai.STEP(_net(), max_iter=2, sigma=7.0, reward=lambda out: out[:, 0]).attribute(x, 1)
    with pytest.raises(ValueError, match="needs probabilities"):
        pyxai.STEP(lambda v: _net(logits=True)(v) + 2.0, max_iter=2, sigma=7.0,
                   core_frames=3).attribute(x, 0)
    with pytest.raises(ValueError, match="sigma=23.0 is larger than the frames"):
        pyxai.STEP(_net(), max_iter=2).attribute(x[..., :20, :20], 0)
    with pytest.raises(ValueError, match="core_frames=5 is longer than the clip"):
        pyxai.STEP(_net(), max_iter=2, sigma=7.0).attribute(x[:, :, :4], 0)
    with pytest.raises(ValueError, match="areas: 0.9 needs .* core responses"):
        pyxai.STEP(_net(), areas=(0.1, 0.9), max_iter=2, sigma=7.0, core_frames=3).attribute(x, 0)
    with pytest.raises(ValueError, match="one row per clip"):
        pyxai.STEP(lambda v: v.mean(), max_iter=2, sigma=7.0, core_frames=3).attribute(x, 0)


def test_registry_entry_is_clip_only(rng, capsys):
    from pyxai import registry
    from pyxai.cli import main

    assert "step" in registry.names(inputs="clip") and "step" not in registry.names(inputs="image")
    assert "step" in registry.names()
    net = _net(logits=True)
    x = torch.rand(2, 3, 6, 24, 24, generator=rng)
    explain = registry.build("step", net, max_iter=2, sigma=7.0, core_frames=3)
    masks = explain(x, torch.tensor([0, 3]))
    assert masks.shape == (2, 1, 1, 6, 24, 24) and 0 <= masks.min() and masks.max() <= 1
    assert main(["explain", "--method", "step"]) == 2
    assert "explains clip models" in capsys.readouterr().err
