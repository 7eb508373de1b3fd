"""LayerGradCam / GuidedGradCam on the layers and inputs Captum's test suite uses: layers with
several inputs or a tuple output, inputs a Grad-CAM map cannot be resized to, unknown
interpolation modes; Captum's attribution surface (``multiplies_by_inputs``,
``has_convergence_delta``, ``attribute_future``) on every gradient class. Compared with Captum on
the same random inputs and weights."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import pyxai

captum_attr = pytest.importorskip("captum.attr")


class TwoRelu(nn.Module):
    """A module with two inputs and a tuple output."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.relu(a), torch.relu(b)


class TwoBranch(nn.Module):
    def __init__(self, g: torch.Generator) -> None:
        super().__init__()
        self.l1, self.l2, self.head = nn.Linear(5, 6), nn.Linear(5, 6), nn.Linear(6, 3)
        self.pair = TwoRelu()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.pair(self.l1(x), self.l2(x))
        return self.head(a * b + a)


def _close(a, b) -> None:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("summation", [True, False])
def test_layer_grad_cam_multi_tensor_layer_equal_captum(rng, to_input, summation):
    m = TwoBranch(rng).eval()
    x = torch.randn(4, 5, generator=rng)
    kw = dict(target=1, attribute_to_layer_input=to_input, attr_dim_summation=summation,
              relu_attributions=True)
    ours = pyxai.LayerGradCam(m, m.pair).attribute(x, **kw)
    ref = captum_attr.LayerGradCam(m, m.pair).attribute(x, **kw)
    assert isinstance(ours, tuple) and len(ours) == 2  # one map per Tensor, as Captum
    _close(ours, ref)


class ConvAndVector(nn.Module):
    def __init__(self, g: torch.Generator) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 16, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, img: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(img)).flatten(1)) + vec.sum(1, keepdim=True)


def test_guided_grad_cam_empty_for_inputs_it_cannot_resize(rng):
    m = ConvAndVector(rng).eval()
    img, vec = torch.randn(2, 1, 4, 4, generator=rng), torch.randn(2, 3, generator=rng)
    ours_gc = pyxai.GuidedGradCam(m, m.conv)
    with pytest.warns(UserWarning, match="empty tensor"):
        ours = ours_gc.attribute((img, vec), target=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = captum_attr.GuidedGradCam(m, m.conv).attribute((img, vec), target=2)
    _close(ours[0], ref[0])
    assert ours[1].numel() == 0 and ref[1].numel() == 0
    with pytest.warns(UserWarning):  # an unknown mode: every input empty, as Captum
        bad = ours_gc.attribute((img, vec), target=2, interpolate_mode="made_up")
    assert all(t.numel() == 0 for t in bad)


def test_guided_grad_cam_rejects_multi_tensor_layer(rng):
    m = TwoBranch(rng).eval()
    with pytest.raises(ValueError, match="one output"):
        pyxai.GuidedGradCam(m, m.pair).attribute(torch.randn(2, 5, generator=rng), target=0)


def _captum_pair(name: str, m: nn.Module):
    if name in ("LayerGradCam", "GuidedGradCam"):
        return getattr(pyxai, name)(m, m.conv), getattr(captum_attr, name)(m, m.conv)
    if name == "NoiseTunnel":
        return pyxai.NoiseTunnel(pyxai.Saliency(m)), captum_attr.NoiseTunnel(
            captum_attr.Saliency(m))
    return getattr(pyxai, name)(m), getattr(captum_attr, name)(m)


@pytest.mark.parametrize("name", ["Saliency", "InputXGradient", "IntegratedGradients",
                                  "GuidedBackprop", "LayerGradCam", "GuidedGradCam",
                                  "NoiseTunnel"])
def test_captum_surface_of_the_gradient_classes(rng, name):
    m = ConvAndVector(rng).eval()
    ours, ref = _captum_pair(name, m)
    assert ours.multiplies_by_inputs == ref.multiplies_by_inputs
    assert ours.has_convergence_delta() == ref.has_convergence_delta()
    with pytest.raises(NotImplementedError):
        ours.attribute_future(torch.randn(1, 1, 4, 4, generator=rng))
