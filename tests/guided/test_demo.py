"""The Clever-Hans fine-tuning demo, small: occlusion_loss removes the shipped model's cue."""

from __future__ import annotations

import copy

import torch

from pyxai.data import shapes_cued
from pyxai.guided import fit
from pyxai.models import demo_cnn
from pyxai.models.train import evaluate


def test_occlusion_fine_tuning_closes_the_cue_gap():
    """1000 images of the training distribution, 100 with the tag annotated, 2 epochs (about 10 s):
    the gap between clean and cue-flipped accuracy (the cue's effect) shrinks well below the
    cross-entropy-only control's and the base model's. Measured (1 and 2 threads): base 0.280,
    cross-entropy only 0.417-0.420, occlusion 0.050; clean accuracy 0.84 -> 0.92."""
    base = demo_cnn(variant="clever_hans")
    x, y, _, cue = shapes_cued(1000, seed=50)
    annotated = torch.arange(1000) < 100
    clean = shapes_cued(300, seed=4242, cue_rate=0.0)[:2]
    flipped = shapes_cued(300, seed=4242, flip=True)[:2]

    def gap(model: torch.nn.Module) -> float:
        return evaluate(model, *clean) - evaluate(model, *flipped)

    gaps = {"base": gap(base)}
    for loss, weight in (("none", 0.0), ("occlusion", 3.0)):
        model = copy.deepcopy(base)
        fit(model, x, y, cue, annotated=annotated, loss=loss, weight=weight, epochs=2, lr=1e-3)
        gaps[loss] = gap(model)
        if loss == "occlusion":
            assert evaluate(model, *clean) >= evaluate(base, *clean) - 0.02
    print({k: round(v, 3) for k, v in gaps.items()})
    assert gaps["base"] > 0.2  # the shipped model reads the tag
    assert gaps["occlusion"] < 0.15 and gaps["occlusion"] < 0.5 * min(gaps["base"], gaps["none"])
