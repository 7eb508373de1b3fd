"""Occlusion and FeatureAblation against Captum itself (same arguments, same outputs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyxai
from tests.gradient._models import randomise_bn

captum_attr = pytest.importorskip("captum.attr")
torchvision = pytest.importorskip("torchvision")

BACKENDS = ["reference", "native"] if pyxai.native_status()["compiled"] else ["reference"]


def _close(a, c):
    if isinstance(c, tuple):
        assert isinstance(a, tuple) and len(a) == len(c)
        for u, v in zip(a, c):
            _close(u, v)
        return
    assert a.shape == c.shape
    torch.testing.assert_close(a, c.to(a.dtype), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def resnet():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        m = torchvision.models.resnet18(weights=None, num_classes=10)
        return randomise_bn(m, torch.Generator().manual_seed(0)).eval()  # trained-like BN stats


@pytest.fixture(scope="module")
def demo():
    from pyxai.models import demo_cnn

    with torch.random.fork_rng():
        torch.manual_seed(1)
        return demo_cnn(pretrained=False).eval()


class TwoInputs(nn.Module):
    """(a [B, 3, 4], b [B, 10], scale [B], bias float) -> [B, 4, 2]."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(12, 8)
        self.l2 = nn.Linear(10, 8)

    def forward(self, a, b, scale, bias=0.0):
        h = torch.tanh(self.l1(a.flatten(1)) * scale[:, None] + self.l2(b.flatten(1))) + bias
        return h.reshape(-1, 4, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_occlusion_resnet(rng, resnet, backend):
    x = torch.randn(2, 3, 32, 32, generator=rng)
    # odd window/stride combinations with cropped last windows, batched perturbations
    cases = [
        dict(sliding_window_shapes=(2, 11, 13), strides=(1, 7, 9), target=3,
             baselines=0.5, perturbations_per_eval=11),
    ]
    if backend == "native":  # the reference path is covered by the odd case (2 cores: keep it short)
        cases.append(dict(sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), target=[1, 5],
                          perturbations_per_eval=25))
    for kw in cases:
        a = pyxai.Occlusion(resnet, backend=backend).attribute(x, **kw)
        c = captum_attr.Occlusion(resnet).attribute(x, **kw)
        _close(a, c)


@pytest.mark.parametrize("backend", BACKENDS)
def test_occlusion_demo_cnn(rng, demo, backend):
    x = torch.rand(2, 3, 64, 64, generator=rng)
    base = torch.rand(1, 3, 64, 64, generator=rng)
    kw = dict(sliding_window_shapes=(3, 16, 16), strides=12, baselines=base,
              target=torch.tensor([0, 4]), perturbations_per_eval=13)
    a = pyxai.Occlusion(demo, backend=backend).attribute(x, **kw)
    _close(a, captum_attr.Occlusion(demo).attribute(x, **kw))


@pytest.mark.parametrize("backend", BACKENDS)
def test_occlusion_tuple_inputs(rng, backend):
    model = TwoInputs().eval()
    a_, b_ = torch.randn(3, 3, 4, generator=rng), torch.randn(3, 10, generator=rng)
    args = (torch.rand(3, generator=rng), 0.5)
    cases = [
        dict(sliding_window_shapes=((2, 3), (3,)), strides=((1, 2), 2),
             baselines=(0.3, torch.randn(1, 10, generator=rng)), target=(1, 0),
             perturbations_per_eval=5),
        dict(sliding_window_shapes=((3, 4), (4,)), strides=None,
             target=[(0, 1), (3, 1), (2, 0)], perturbations_per_eval=1),
        dict(sliding_window_shapes=((1, 1), (10,)), strides=(1, 3),
             baselines=(torch.randn(3, 3, 4, generator=rng), -1.0), target=[(2, 1)] * 3,
             perturbations_per_eval=4),
    ]
    for kw in cases:
        got = pyxai.Occlusion(model, backend=backend).attribute(
            (a_, b_), additional_forward_args=args, **kw)
        _close(got, captum_attr.Occlusion(model).attribute(
            (a_, b_), additional_forward_args=args, **kw))


def test_feature_ablation_resnet(rng, resnet):
    x = torch.randn(2, 3, 32, 32, generator=rng)
    seg = torch.randint(0, 7, (2, 1, 32, 32), generator=rng)  # per-sample masks
    cases = [
        dict(feature_mask=seg, target=[1, 3], perturbations_per_eval=4),
        dict(feature_mask=seg[:1] * 3 + torch.arange(3)[None, :, None, None] % 3, target=2,
             baselines=torch.randn(2, 3, 32, 32, generator=rng), perturbations_per_eval=8),
    ]
    for kw in cases:
        _close(pyxai.FeatureAblation(resnet).attribute(x, **kw),
               captum_attr.FeatureAblation(resnet).attribute(x, **kw))


def test_feature_ablation_default_mask_and_demo(rng, demo):
    small = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 3 * 4, 5)).eval()
    x = torch.randn(2, 2, 5, 6, generator=rng)  # every scalar its own feature (60 features)
    kw = dict(target=[0, 4], baselines=0.25, perturbations_per_eval=7)
    _close(pyxai.FeatureAblation(small).attribute(x, **kw),
           captum_attr.FeatureAblation(small).attribute(x, **kw))
    xd = torch.rand(2, 3, 64, 64, generator=rng)
    cells = (torch.arange(64)[:, None] // 16 * 4 + torch.arange(64)[None, :] // 16)[None, None]
    kw = dict(feature_mask=cells, target=1, perturbations_per_eval=16)
    _close(pyxai.FeatureAblation(demo).attribute(xd, **kw),
           captum_attr.FeatureAblation(demo).attribute(xd, **kw))


def test_feature_ablation_tuple_cross_tensor_ids(rng):
    model = TwoInputs().eval()
    a_, b_ = torch.randn(3, 3, 4, generator=rng), torch.randn(3, 10, generator=rng)
    args = (torch.rand(3, generator=rng), 0.5)
    # ids 2 and 3 appear in both inputs: ablated together, as Captum's cross-tensor masks
    fm = (torch.randint(0, 4, (3, 3, 4), generator=rng), torch.randint(2, 7, (1, 10), generator=rng))
    for kw in [dict(feature_mask=fm, target=[(1, 0), (2, 1), (0, 0)], perturbations_per_eval=2,
                    baselines=(0.1, 0.2)),
               dict(target=(3, 1), perturbations_per_eval=9)]:
        _close(pyxai.FeatureAblation(model).attribute((a_, b_), additional_forward_args=args, **kw),
               captum_attr.FeatureAblation(model).attribute((a_, b_), additional_forward_args=args,
                                                            **kw))


def test_scalar_output_model_and_callable_target(rng):
    lin = nn.Linear(8, 1).eval()
    x = torch.randn(4, 8, generator=rng)
    f = lambda t: lin(t).squeeze(1)  # noqa: E731  one score per sample, target None
    _close(pyxai.Occlusion(f).attribute(x, sliding_window_shapes=(3,), strides=2),
           captum_attr.Occlusion(f).attribute(x, sliding_window_shapes=(3,), strides=2))
    got = pyxai.Occlusion(lin).attribute(x, sliding_window_shapes=(3,), strides=2,
                                         target=lambda out: out[:, 0])
    _close(got, captum_attr.Occlusion(f).attribute(x, sliding_window_shapes=(3,), strides=2))


def test_bad_input(resnet):
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(4)).eval()
    x = torch.randn(2, 3, 8, 8)
    model(x)
    occ = pyxai.Occlusion(model)
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        occ.attribute(x, sliding_window_shapes=(3, 9, 2))
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        occ.attribute(x, sliding_window_shapes=(3, 2))
    with pytest.raises(ValueError, match="strides"):
        occ.attribute(x, sliding_window_shapes=(3, 2, 2), strides=0)
    with pytest.raises(ValueError, match="strides"):
        occ.attribute(x, sliding_window_shapes=(3, 2, 2), strides=(1, 3, 1))
    with pytest.raises(ValueError, match="target"):
        occ.attribute(x, sliding_window_shapes=(3, 4, 4), strides=4, target=4)
    with pytest.raises(ValueError, match="target"):
        occ.attribute(x, sliding_window_shapes=(3, 4, 4), strides=4, target=[0, 1, 2])
    with pytest.raises(ValueError, match="baselines"):
        occ.attribute(x, sliding_window_shapes=(3, 4, 4), strides=4, baselines=torch.zeros(5))
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        occ.attribute(x, sliding_window_shapes=(3, 4, 4), strides=4, perturbations_per_eval=0)
    first = lambda t: model(t)[:1]  # noqa: E731  aggregated output: Captum's [n_outputs, ...]
    _close(pyxai.Occlusion(first).attribute(x, sliding_window_shapes=(3, 4, 4), target=[2]),
           captum_attr.Occlusion(first).attribute(x, sliding_window_shapes=(3, 4, 4), target=[2]))
    with pytest.raises(ValueError, match="forward_func"):
        pyxai.Occlusion(lambda t: model(t)[:2]).attribute(x, sliding_window_shapes=(3, 4, 4),
                                                        strides=4, perturbations_per_eval=3)
    bad = x.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        occ.attribute(bad, sliding_window_shapes=(3, 4, 4))
    fa = pyxai.FeatureAblation(model)
    with pytest.raises(ValueError, match="feature_mask"):
        fa.attribute(x, feature_mask=torch.zeros(1, 1, 7, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="feature_mask"):
        fa.attribute(x, feature_mask=(torch.zeros(1, 8, 8, dtype=torch.long),) * 2)
    with pytest.raises(TypeError, match="feature_mask"):
        fa.attribute(x, feature_mask=torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="target"):
        fa.attribute(x, feature_mask=torch.zeros(1, 1, 8, 8, dtype=torch.long), target=-1)
    with pytest.raises(ValueError, match="NaN"):
        fa.attribute(bad)
