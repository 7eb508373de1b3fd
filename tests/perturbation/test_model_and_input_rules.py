"""Perturbation explainers: the model is left as found (train mode too) and bad input is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyxai
from pyxai.engine.view import same_state, state_fingerprint


def bn_model(rng: torch.Generator) -> nn.Module:
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    m[1].running_mean.copy_(torch.randn(4, generator=rng) * 0.5)
    m[1].running_var.copy_(torch.rand(4, generator=rng) + 0.5)
    return m


def run_all(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    cells = torch.arange(16).view(4, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)[None, None]
    return [
        pyxai.RISE(model, n_masks=40, grid_size=4, batch_size=16).attribute(x, target=1),
        pyxai.SobolAttribution(model, grid_size=4, nb_design=4).attribute(x, target=1),
        pyxai.Occlusion(model).attribute(x, sliding_window_shapes=(3, 4, 4), strides=(3, 4, 4),
                                         target=1),
        pyxai.FeatureAblation(model).attribute(x, target=1, feature_mask=cells),
    ]


def test_train_mode_model_is_explained_as_is_and_left_as_found(rng):
    model = bn_model(rng).train()
    x = torch.rand(2, 3, 16, 16, generator=rng)
    before = state_fingerprint(model)
    with pytest.warns(UserWarning, match="training mode"):
        maps = run_all(model, x)
    assert same_state(before, state_fingerprint(model)) == []  # BatchNorm statistics unchanged
    assert all(torch.isfinite(m).all() and m.abs().sum() > 0 for m in maps)


def test_eval_mode_model_left_as_found(rng):
    model = bn_model(rng).eval()
    x = torch.rand(2, 3, 16, 16, generator=rng)
    before = state_fingerprint(model)
    run_all(model, x)
    assert same_state(before, state_fingerprint(model)) == []


def test_bad_arguments_are_named(rng):
    model = bn_model(rng).eval()
    x = torch.rand(2, 3, 16, 16, generator=rng)
    with pytest.raises(ValueError, match="baseline"):
        pyxai.RISE(model, n_masks=8, grid_size=4, baseline=float("nan")).attribute(x)
    with pytest.raises(ValueError, match="baseline"):
        pyxai.RISE(model, n_masks=8, grid_size=4,
                   baseline=torch.full((1, 3, 1, 1), float("inf"))).attribute(x)
    with pytest.raises(ValueError, match="baselines"):
        pyxai.Occlusion(model).attribute(x, sliding_window_shapes=(3, 4, 4), baselines=float("nan"))
    with pytest.raises(ValueError, match="baselines"):
        pyxai.FeatureAblation(model).attribute(x, baselines=torch.full_like(x, float("nan")))
    with pytest.raises(TypeError, match="seed"):
        pyxai.RISE(model, seed=1.5)
    with pytest.raises(TypeError, match="seed"):
        pyxai.SobolAttribution(model, seed=2.0)
    with pytest.raises(ValueError, match="sigma"):
        pyxai.SobolAttribution(model, perturbation="amplitude", sigma=float("nan"))
    meta = bn_model(rng).to("meta")  # a model on another device than the inputs
    for call in (lambda: pyxai.RISE(meta, n_masks=8, grid_size=4).attribute(x),
                 lambda: pyxai.Occlusion(meta).attribute(x, sliding_window_shapes=(3, 4, 4)),
                 lambda: pyxai.FeatureAblation(meta).attribute(x),
                 lambda: pyxai.SobolAttribution(meta, grid_size=4, nb_design=4).attribute(x)):
        with pytest.raises(ValueError, match="model is on meta"):
            call()
