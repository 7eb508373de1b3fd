"""The area term by selection (pyxai.perturbation.area) == TorchRay's sorted form: the same
gradient bit for bit, the value to rounding, and the sort kept where ties straddle the split."""

from __future__ import annotations

import pytest
import torch

import pyxai
from pyxai.perturbation import area
from pyxai.perturbation.extremal import ExtremalPerturbation, area_targets


def _sorted_form(flat: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return ((flat.sort(dim=1)[0] - ref) ** 2).mean(dim=1)


def _value_and_grad(fn, flat: torch.Tensor, upstream: torch.Tensor):
    x = flat.clone().requires_grad_(True)
    value = fn(x)
    (g,) = torch.autograd.grad((value * upstream).sum(), x)
    return value.detach(), g


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["smooth", "clamped", "quantised"])
def test_selection_has_the_sorts_gradient_bit_for_bit(rng, dtype, kind):
    areas = (0.05, 0.1, 0.2)
    n = 1111
    flat = torch.rand(6, n, generator=rng, dtype=torch.float64)
    if kind == "clamped":  # many exact 0 and 1 (TorchRay's clamp), none at the split
        flat = (flat * 1.06 - 0.05).clamp(0, 1)  # about 1 % ones (fewer than the top 5 %)
    elif kind == "quantised":  # ties everywhere, also across the split: the sort is kept
        flat = (flat * 16).floor() / 16
    flat = flat.to(dtype)
    ref = area_targets(n, areas, dtype, flat.device).repeat(2, 1)
    zeros = (ref == 0).sum(dim=1).tolist()
    upstream = torch.randn(6, generator=rng, dtype=dtype) * 300
    want_v, want_g = _value_and_grad(lambda x: _sorted_form(x, ref), flat, upstream)
    got_v, got_g = _value_and_grad(lambda x: area.area_error(x, ref, zeros), flat, upstream)
    assert torch.equal(got_g, want_g)
    torch.testing.assert_close(got_v, want_v, rtol=1e-5 if dtype == torch.float32 else 1e-12,
                               atol=0)
    assert area._top(flat, zeros).sum(dim=1).tolist() == [n - z for z in zeros]


def test_ties_across_the_split_take_the_sorts_order(rng):
    flat = torch.rand(3, 100, generator=rng)
    flat[1, :30] = 0.5  # row 1: the 0.5 run straddles sorted positions 89 / 90
    flat[1, 30:] = torch.linspace(0.0, 0.49, 70)
    order = flat.sort(dim=1)[1]
    want = torch.zeros(3, 100, dtype=torch.bool).scatter_(1, order[:, 90:], True)
    assert torch.equal(area._top(flat, [90, 90, 90]), want)
    assert not area._top(flat, [100] * 3).any() and area._top(flat, [0] * 3).all()


def test_extremal_masks_are_the_same_with_the_sort(rng, monkeypatch):
    model = pyxai.models.demo_cnn()
    x, labels, _ = pyxai.data.shapes(2, seed=int(torch.randint(1000, (1,), generator=rng)))
    ep = ExtremalPerturbation(model, areas=(0.05, 0.2), max_iter=12)
    masks, hist = ep.attribute(x, labels, return_history=True)
    monkeypatch.setattr(area, "SELECTION", False)
    want_masks, want_hist = ep.attribute(x, labels, return_history=True)
    assert torch.equal(masks, want_masks)
    assert torch.equal(hist[:, :, 0], want_hist[:, :, 0])  # the rewards
    torch.testing.assert_close(hist, want_hist, rtol=1e-5, atol=1e-6)  # regul: summed otherwise
