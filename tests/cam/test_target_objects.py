"""pyxai.cam.targets equals pytorch-grad-cam's target objects, alone and inside a CAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyxai
from pyxai.cam import targets as T
from tests.engine.test_view import randomised_resnet18

mt = pytest.importorskip("pytorch_grad_cam.utils.model_targets")


def test_each_target_equals_pytorch_grad_cam(rng):
    out = torch.randn(3, 6, generator=rng)
    seg = torch.randn(4, 5, 7, generator=rng)
    mask = (np.random.default_rng(0).random((5, 7)) > 0.5).astype(np.float32)
    pairs = [
        (T.ClassifierOutputTarget(2), mt.ClassifierOutputTarget(2), out),
        (T.ClassifierOutputTarget(2), mt.ClassifierOutputTarget(2), out[0]),
        (T.ClassifierOutputSoftmaxTarget(4), mt.ClassifierOutputSoftmaxTarget(4), out),
        (T.ClassifierOutputSoftmaxTarget(4), mt.ClassifierOutputSoftmaxTarget(4), out[1]),
        (T.BinaryClassifierOutputTarget(0), mt.BinaryClassifierOutputTarget(0), out[:, 0]),
        (T.BinaryClassifierOutputTarget(1), mt.BinaryClassifierOutputTarget(1), out[:, 0]),
        (T.RawScoresOutputTarget(), mt.RawScoresOutputTarget(), out[:, 0]),
        (T.SemanticSegmentationTarget(3, mask), mt.SemanticSegmentationTarget(3, mask), seg),
    ]
    for ours, theirs, o in pairs:
        torch.testing.assert_close(ours(o), theirs(o), rtol=0, atol=0)


def test_gradcam_with_pyxai_targets_equals_pytorch_grad_cam(rng):
    gc = pytest.importorskip("pytorch_grad_cam")
    model = randomised_resnet18(rng)
    x = torch.randn(2, 3, 64, 64, generator=rng)
    layer = [model.layer4[-1]]
    ours = pyxai.GradCAM(model, target_layers=layer)(
        input_tensor=x, targets=[T.ClassifierOutputSoftmaxTarget(3), T.ClassifierOutputTarget(7)])
    with gc.GradCAM(model=model, target_layers=layer) as cam:
        theirs = cam(input_tensor=x, targets=[mt.ClassifierOutputSoftmaxTarget(3),
                                              mt.ClassifierOutputTarget(7)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_captum_surface_and_zennit_style_rule_import():
    captum = pytest.importorskip("captum.attr")
    from pyxai.rules import Epsilon, Gamma  # a module, as zennit.rules

    assert Epsilon is pyxai.lrp.rules.Epsilon and Gamma is pyxai.rules.Gamma
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU())
    for name in ("Saliency", "InputXGradient", "IntegratedGradients", "GuidedBackprop",
                 "FeatureAblation", "Occlusion"):
        ours, theirs = getattr(pyxai, name)(model), getattr(captum, name)(model)
        assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs, name
        assert ours.has_convergence_delta() == theirs.has_convergence_delta(), name
        with pytest.raises(NotImplementedError, match="attribute_future"):
            ours.attribute_future()
    for name in ("LayerGradCam", "GuidedGradCam"):
        ours, theirs = getattr(pyxai, name)(model, model[0]), getattr(captum, name)(model, model[0])
        assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs, name


def test_faster_rcnn_box_score_target_equals_pytorch_grad_cam(rng):
    boxes = torch.rand(6, 2, generator=rng) * 20
    boxes = torch.cat([boxes, boxes + 5 + torch.rand(6, 2, generator=rng) * 20], 1)
    out = {"boxes": boxes, "labels": torch.randint(0, 3, (6,), generator=rng),
           "scores": torch.rand(6, generator=rng)}
    refs = [boxes[i].numpy() + np.random.default_rng(i).normal(0, 2, 4).astype(np.float32)
            for i in (0, 2, 4)]
    labels = [int(out["labels"][i]) for i in (0, 2, 4)]
    for thr in (0.0, 0.5, 0.9):
        ours = T.FasterRCNNBoxScoreTarget(labels, refs, thr)(out)
        theirs = mt.FasterRCNNBoxScoreTarget(labels, refs, thr)(out)
        torch.testing.assert_close(ours, theirs)
    empty = {"boxes": torch.zeros(0, 4, dtype=torch.float64), "labels": torch.zeros(0),
             "scores": torch.zeros(0)}
    got = T.FasterRCNNBoxScoreTarget(labels, refs)(empty)
    assert got.dtype == torch.float64 and got.item() == 0
