"""One target contract for the gradient and CAM explainers (pyxai.engine.targets).

A callable ``(outputs, rows)`` target must see, for every output row, the sample it came from —
also in expanded batches (IG steps, NoiseTunnel samples, Score-CAM / SIDU masked images) — so it
gives the same maps as the per-sample class target it computes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyxai
from tests.gradient._models import randomise_bn

pg_targets = pytest.importorskip("pytorch_grad_cam.utils.model_targets")


def tiny(g: torch.Generator) -> nn.Module:
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(12, 5))
    return randomise_bn(m, g).eval()


def methods(m: nn.Module) -> dict:
    """name -> f(x, target) for every explainer of the two families (small workloads)."""
    layer = m[4]
    return {
        "Saliency": lambda x, t: pyxai.Saliency(m).attribute(x, target=t, abs=False),
        "InputXGradient": lambda x, t: pyxai.InputXGradient(m).attribute(x, target=t),
        "IntegratedGradients": lambda x, t: pyxai.IntegratedGradients(m).attribute(
            x, target=t, n_steps=5, internal_batch_size=7, method="riemann_trapezoid"),
        "NoiseTunnel": lambda x, t: pyxai.NoiseTunnel(pyxai.Saliency(m), seed=1).attribute(
            x, nt_samples=4, nt_samples_batch_size=3, stdevs=0.3, target=t),
        "NoiseTunnel(IG)": lambda x, t: pyxai.NoiseTunnel(pyxai.IntegratedGradients(m),
                                                          seed=2).attribute(
            x, nt_samples=3, stdevs=0.3, target=t, n_steps=3, internal_batch_size=8),
        "GuidedBackprop": lambda x, t: pyxai.GuidedBackprop(m).attribute(x, target=t),
        "LayerGradCam": lambda x, t: pyxai.LayerGradCam(m, layer).attribute(x, target=t),
        "GuidedGradCam": lambda x, t: pyxai.GuidedGradCam(m, layer).attribute(x, target=t),
        "GradCAM": lambda x, t: pyxai.GradCAM(m, [layer]).attribute(x, t),
        "GradCAMPlusPlus": lambda x, t: pyxai.GradCAMPlusPlus(m, [m[2], layer]).attribute(x, t),
        "ScoreCAM": lambda x, t: pyxai.ScoreCAM(m, [layer], batch_size=5).attribute(x, t),
        "SIDU": lambda x, t: pyxai.SIDU(m, layer, batch_size=5).attribute(x, t),
    }


@pytest.fixture
def setup(rng):
    m = tiny(rng)
    x = torch.randn(3, 3, 12, 12, generator=rng)
    return m, x


def test_callable_targets_see_their_samples(setup, rng):
    m, x = setup
    cls = torch.tensor([4, 0, 2])
    ref = torch.randn(3, 5, generator=rng)  # a per-sample reference embedding
    by_rows = lambda out, rows: out.gather(1, cls[rows][:, None])[:, 0]  # noqa: E731
    similarity = lambda out, rows: F.cosine_similarity(out, ref[rows], dim=1)  # noqa: E731
    per_sample = [lambda o, r=ref[b]: F.cosine_similarity(o, r, dim=0) for b in range(3)]
    for name, f in methods(m).items():
        want = f(x, cls)
        assert torch.allclose(f(x, by_rows), want, rtol=1e-6, atol=1e-7), name
        # outputs-only callables and pytorch-grad-cam target objects are the same contract
        assert torch.allclose(f(x, lambda out: out[:, 1]), f(x, 1), rtol=1e-6, atol=1e-7), name
        objs = [pg_targets.ClassifierOutputTarget(int(c)) for c in cls]
        assert torch.allclose(f(x, objs), want, rtol=1e-6, atol=1e-7), name
        # a similarity score against each sample's own reference: one line with rows
        sim = f(x, similarity)
        assert torch.allclose(sim, f(x, per_sample), rtol=1e-5, atol=1e-6), name
        assert not torch.allclose(sim, want), name  # a different score, a different map


def test_captum_tuple_targets(setup):
    m, x = setup
    f = lambda z: m(z).view(-1, 5, 1)  # noqa: E731 - a 3-D output, indexed by tuples
    for cls in (pyxai.Saliency, pyxai.InputXGradient):
        assert torch.allclose(cls(f).attribute(x, target=(3, 0)), cls(m).attribute(x, target=3))
        assert torch.allclose(cls(f).attribute(x, target=[(3, 0), (1, 0), (0, 0)]),
                              cls(m).attribute(x, target=[3, 1, 0]))
    ig = pyxai.IntegratedGradients
    assert torch.allclose(ig(f).attribute(x, target=(2, 0), n_steps=4),
                          ig(m).attribute(x, target=2, n_steps=4))


def test_bad_targets(setup):
    m, x = setup
    for f in methods(m).values():
        with pytest.raises(ValueError, match="nested"):
            f(x, [[1, 2, 3]])
        with pytest.raises(ValueError, match="out of range"):
            f(x, 5)
        with pytest.raises(ValueError, match="entries"):
            f(x, [1, 2])
        with pytest.raises(ValueError, match="one score per row"):
            f(x, lambda out: out[:1, 0])


def test_cams_keep_no_state(setup):
    m, x = setup
    for cam in (pyxai.GradCAM(m, [m[4]]), pyxai.ScoreCAM(m, [m[4]], batch_size=8)):
        before = dict(vars(cam))
        a = cam.attribute(x, 1)
        b, out = cam.attribute(x, 1, return_outputs=True)
        assert vars(cam) == before
        assert torch.equal(a, b) and torch.equal(out, m(x).detach())
        with pytest.raises(AttributeError, match="return_outputs=True"):
            getattr(cam, "outputs")  # noqa: B009 - the attribute pytorch-grad-cam users read
