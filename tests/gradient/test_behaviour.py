"""Batching, model state and bad input of the gradient explainers."""

from __future__ import annotations

import pytest
import torch

import pyxai
from tests.gradient._models import Boom, assert_unchanged, exploding, resnet18, snapshot


class SideBranch(torch.nn.Module):
    """A model whose output ignores one of its layers, and never runs another."""

    def __init__(self) -> None:
        super().__init__()
        self.side = torch.nn.Conv2d(3, 4, 3)
        self.never = torch.nn.Conv2d(3, 4, 3)
        self.main = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                        torch.nn.Flatten(), torch.nn.Linear(4, 5))

    def forward(self, x):
        self.side(x)
        return self.main(x)


class Counting(torch.nn.Module):
    """Records the batch size of every forward."""

    def __init__(self, m: torch.nn.Module) -> None:
        super().__init__()
        self.m = m
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return self.m(x)


def tiny() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(8, 10)).eval()


@pytest.fixture(scope="module")
def model():
    return resnet18()


def test_ig_batches_steps(model, rng):
    x = torch.randn(2, 3, 16, 16, generator=rng)
    c = Counting(model).eval()
    full = pyxai.IntegratedGradients(c).attribute(x, target=1, n_steps=10)
    assert c.sizes == [20]
    c.sizes.clear()
    chunked = pyxai.IntegratedGradients(c).attribute(x, target=1, n_steps=10, internal_batch_size=7)
    assert c.sizes == [6, 6, 6, 2]  # 3 steps x 2 images per forward, never all 20 rows
    assert torch.allclose(full, chunked, rtol=1e-4, atol=1e-6)
    # target None: the predicted class on the inputs (one extra forward), same as passing it
    c.sizes.clear()
    pred = model(x).argmax(1)
    auto = pyxai.IntegratedGradients(c).attribute(x, n_steps=10, internal_batch_size=7)
    assert c.sizes[0] == 2 and max(c.sizes[1:]) == 6
    assert torch.allclose(auto, pyxai.IntegratedGradients(model).attribute(x, target=pred,
                                                                          n_steps=10), atol=1e-6)


def test_ig_completeness(model, rng):
    x = torch.randn(2, 3, 16, 16, generator=rng).double()
    m = tiny().double()
    attr, delta = pyxai.IntegratedGradients(m).attribute(x, target=3, n_steps=64,
                                                         return_convergence_delta=True)
    with torch.no_grad():
        gap = m(x)[:, 3] - m(torch.zeros_like(x))[:, 3]
    assert attr.dtype == torch.float64
    assert float(delta.abs().max()) <= 0.05 * float(gap.abs().max()) + 1e-6


def test_noise_tunnel_batches(model, rng):
    x = torch.randn(2, 3, 16, 16, generator=rng)
    c = Counting(model).eval()
    pyxai.NoiseTunnel(pyxai.Saliency(c)).attribute(x, nt_samples=7, nt_samples_batch_size=3,
                                                   stdevs=0.1, target=0)
    assert c.sizes == [6, 6, 2]
    c.sizes.clear()
    pyxai.NoiseTunnel(pyxai.IntegratedGradients(c)).attribute(
        x, nt_samples=4, stdevs=0.1, target=0, n_steps=5, internal_batch_size=16)
    assert max(c.sizes) <= 16 and len(c.sizes) <= 4  # 8 noisy rows x 2 steps per forward


def test_model_left_as_found(rng):
    m = resnet18()
    m.layer1.requires_grad_(False)
    x = torch.randn(2, 3, 16, 16, generator=rng)
    snap = snapshot(m)
    layer = m.layer4[-1]
    calls = [
        lambda: pyxai.Saliency(m).attribute(x, target=1),
        lambda: pyxai.IntegratedGradients(m).attribute(x, target=1, n_steps=3),
        lambda: pyxai.NoiseTunnel(pyxai.Saliency(m)).attribute(x, nt_samples=2, target=1),
        lambda: pyxai.GuidedBackprop(m).attribute(x, target=1),
        lambda: pyxai.LayerGradCam(m, layer).attribute(x, target=1),
        lambda: pyxai.GuidedGradCam(m, layer).attribute(x, target=1),
    ]
    for call in calls:
        call()
        assert_unchanged(m, snap)
    assert not x.requires_grad and x.grad is None
    h = exploding(m.layer4)
    try:
        snap = snapshot(m)
        for call in calls:
            with pytest.raises(Boom):
                call()
            assert_unchanged(m, snap)
    finally:
        h.remove()


def test_bad_input(model, rng):
    x = torch.randn(2, 3, 16, 16, generator=rng)
    with pytest.raises(ValueError, match="out of range"):
        pyxai.Saliency(model).attribute(x, target=10)
    with pytest.raises(ValueError, match="entries"):
        pyxai.Saliency(model).attribute(x, target=[1, 2, 3])
    with pytest.raises(ValueError, match="method"):
        pyxai.IntegratedGradients(model).attribute(x, target=1, method="simpson")
    with pytest.raises(ValueError, match="n_steps"):
        pyxai.IntegratedGradients(model).attribute(x, target=1, n_steps=1, method="riemann_left")
    with pytest.raises(ValueError, match="nt_type"):
        pyxai.NoiseTunnel(pyxai.Saliency(model)).attribute(x, nt_type="blur", target=1)
    with pytest.raises(ValueError, match="not a module of the model"):
        pyxai.LayerGradCam(model, torch.nn.Conv2d(3, 3, 1))
    side = SideBranch()
    with pytest.raises(ValueError, match="does not depend"):
        pyxai.LayerGradCam(side, side.side).attribute(x, target=1)
    with pytest.raises(ValueError, match="did not run"):
        pyxai.LayerGradCam(side, side.never).attribute(x, target=1)
    with pytest.raises(ValueError, match="inputs are on meta but the model is on cpu"):
        pyxai.Saliency(model).attribute(x.to("meta"), target=1)
    with pytest.raises(TypeError, match="inputs"):
        pyxai.Saliency(model).attribute(x.long(), target=1)
    with pytest.raises(ValueError, match="baselines"):
        pyxai.IntegratedGradients(model).attribute(x, baselines=torch.zeros(3, 3, 16, 16), target=1)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            pyxai.Saliency(model).attribute(x.cuda(), target=1)


def test_non_finite_input_is_refused_before_any_work(model, rng):
    x = torch.randn(2, 3, 16, 16, generator=rng)
    c = Counting(model).eval()
    layer = c.m.layer4
    calls = {
        "Saliency": lambda z, **kw: pyxai.Saliency(c).attribute(z, target=1, **kw),
        "InputXGradient": lambda z, **kw: pyxai.InputXGradient(c).attribute(z, target=1, **kw),
        "IntegratedGradients": lambda z, **kw: pyxai.IntegratedGradients(c).attribute(
            z, target=1, n_steps=2, **kw),
        "NoiseTunnel": lambda z, **kw: pyxai.NoiseTunnel(pyxai.Saliency(c)).attribute(
            z, nt_samples=2, target=1, **kw),
        "GuidedBackprop": lambda z, **kw: pyxai.GuidedBackprop(c).attribute(z, target=1, **kw),
        "LayerGradCam": lambda z, **kw: pyxai.LayerGradCam(c, layer).attribute(z, target=1, **kw),
        "GuidedGradCam": lambda z, **kw: pyxai.GuidedGradCam(c, layer).attribute(z, target=1,
                                                                              **kw),
    }
    for name, call in calls.items():
        for bad in (float("nan"), float("inf"), -float("inf")):
            z = x.clone()
            z[1, 2, 3, 4] = bad
            with pytest.raises(ValueError, match="inputs contains NaN or Inf"):
                call(z)
        assert c.sizes == [], name  # the model never ran
        out = call(x)  # finite inputs work (a ReLU'd Grad-CAM may be all zero: not checked)
        assert bool(torch.isfinite(out).all()) and (name == "GuidedGradCam" or
                                                    float(out.abs().max()) > 0), name
        c.sizes.clear()
    z = x.clone()
    z[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"inputs\[1\] contains NaN or Inf"):
        pyxai.Saliency(lambda a, b: c(a + b)).attribute((x, z), target=1)  # names the bad one
    ig = pyxai.IntegratedGradients(c)
    for bad in (float("nan"), torch.full_like(x, float("nan")), x[:1] * float("inf")):
        with pytest.raises(ValueError, match=r"baselines\[0\] contains NaN or Inf"):
            ig.attribute(x, baselines=bad, target=1)
    nt = pyxai.NoiseTunnel(pyxai.IntegratedGradients(c))
    with pytest.raises(ValueError, match=r"baselines\[0\]"):
        nt.attribute(x, baselines=x * float("nan"), target=1, nt_samples=2)
    for bad in (-0.1, float("nan"), float("inf"), (0.1,) * 2):
        with pytest.raises(ValueError, match="stdevs"):
            pyxai.NoiseTunnel(pyxai.Saliency(c)).attribute(x, stdevs=bad, target=1)
    with pytest.raises(TypeError, match="stdevs"):
        pyxai.NoiseTunnel(pyxai.Saliency(c)).attribute(x, stdevs="0.1", target=1)
    for bad in (1.5, "3", [1], True):
        with pytest.raises(TypeError, match="seed"):
            pyxai.NoiseTunnel(pyxai.Saliency(c), seed=bad)
    assert c.sizes == []


def test_noise_tunnel_seed(model, rng):
    """Same seed: same map, whatever nt_samples_batch_size is and whatever the global RNG does."""
    x = torch.randn(2, 3, 16, 16, generator=rng)
    kw = dict(nt_type="smoothgrad_sq", nt_samples=5, stdevs=0.3, target=[2, 5])
    nt = pyxai.NoiseTunnel(pyxai.Saliency(model), seed=11)
    a = nt.attribute(x, **kw)
    torch.manual_seed(0)
    b = nt.attribute(x, nt_samples_batch_size=2, **kw)
    torch.manual_seed(1)
    c = nt.attribute(x, nt_samples_batch_size=3, **kw)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-9) and torch.allclose(a, c, rtol=1e-5,
                                                                          atol=1e-9)
    other = pyxai.NoiseTunnel(pyxai.Saliency(model), seed=12).attribute(x, **kw)
    assert not torch.allclose(a, other)
    # seeded baselines drawn from a distribution too
    ig = pyxai.NoiseTunnel(pyxai.IntegratedGradients(model), seed=4)
    base = torch.randn(4, 3, 16, 16, generator=rng)
    kw = dict(nt_samples=3, stdevs=0.1, target=1, n_steps=2, baselines=base,
              draw_baseline_from_distrib=True)
    assert torch.allclose(ig.attribute(x, **kw), ig.attribute(x, nt_samples_batch_size=1, **kw),
                          rtol=1e-5, atol=1e-9)
