"""Pointing game against a direct copy of TorchRay's test; energy pointing game; accuracy helper."""

from __future__ import annotations

import pytest
import torch

from pyxai import metrics


def _torchray_hit(saliency: torch.Tensor, mask: torch.Tensor, tolerance: int) -> bool:
    """TorchRay: point = flat argmax (u = idx % W, v = idx // W); hit if a mask pixel has
    (row - v)^2 + (col - u)^2 < tolerance^2 (checked pixel by pixel)."""
    h, w = saliency.shape
    idx = int(saliency.reshape(-1).argmax())
    u, v = idx % w, idx // w
    for r in range(h):
        for c in range(w):
            if mask[r, c] and (r - v) ** 2 + (c - u) ** 2 < tolerance**2:
                return True
    return False


@pytest.mark.parametrize("tolerance", [1, 3, 15])
def test_pointing_game_matches_torchray(rng, tolerance):
    b, h, w = 12, 19, 23
    sal = torch.rand(b, 1, h, w, generator=rng)
    masks = torch.zeros(b, 1, h, w, dtype=torch.bool)
    for j in range(b):  # random boxes, some far from the maximum
        y0, x0 = (int(v) for v in torch.randint(0, 15, (2,), generator=rng))
        masks[j, 0, y0 : y0 + 4, x0 : x0 + 5] = True
    hits = metrics.pointing_game(sal, masks, tolerance=tolerance)
    ref = [_torchray_hit(sal[j, 0], masks[j, 0], tolerance) for j in range(b)]
    assert hits.dtype == torch.bool and hits.tolist() == ref


def test_pointing_game_tolerance_zero_resize_and_channels(rng):
    sal = torch.zeros(2, 3, 8, 8)
    sal[0, 1, 2, 3] = 1.0  # channels are summed
    sal[1, :, 6, 6] = 1.0
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 2, 3] = True
    masks[1, 6, 5] = True  # one pixel away from the point
    assert metrics.pointing_game(sal, masks, tolerance=0).tolist() == [True, False]
    assert metrics.pointing_game(sal, masks, tolerance=1).tolist() == [True, False]  # strict <
    assert metrics.pointing_game(sal, masks, tolerance=1.01).tolist() == [True, True]
    # maps smaller than the masks are resized (bilinear) to the mask size first
    small = torch.zeros(1, 1, 4, 4)
    small[0, 0, 3, 3] = 1.0
    big = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    big[0, 0, 15, 15] = True
    assert metrics.pointing_game(small, big, tolerance=3).tolist() == [True]


def test_pointing_game_bad_input(rng):
    sal = torch.rand(3, 1, 8, 8, generator=rng)
    masks = torch.ones(3, 1, 8, 8, dtype=torch.bool)
    masks[1] = False
    with pytest.raises(ValueError, match=r"empty for image\(s\) \[1\]"):
        metrics.pointing_game(sal, masks)
    with pytest.warns(UserWarning, match="misses"):
        hits = metrics.pointing_game(sal, masks, on_empty="miss")
    assert hits.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="tolerance"):
        metrics.pointing_game(sal, torch.ones_like(masks), tolerance=-1)
    with pytest.raises(ValueError, match="masks"):
        metrics.pointing_game(sal, torch.ones(2, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        metrics.pointing_game(sal * float("nan"), torch.ones_like(masks))


def test_pointing_game_accuracy_like_torchray(rng):
    hits = torch.rand(40, generator=rng) > 0.4
    labels = torch.randint(0, 5, (40,), generator=rng)
    per_class, mean = metrics.pointing_game_accuracy(hits, labels, n_classes=6)
    for k in range(6):
        sel = labels == k
        n_hit, n_all = int(hits[sel].sum()), int(sel.sum())
        assert per_class[k].item() == pytest.approx(n_hit / max(1, n_all))
    assert mean.item() == pytest.approx(per_class.mean().item())  # class 5 absent: counts 0


def test_energy_pointing_game(rng):
    a = torch.randn(4, 1, 10, 12, generator=rng)
    m = torch.rand(4, 1, 10, 12, generator=rng) > 0.6
    m[3] = False
    e = metrics.energy_pointing_game(a, m)
    pos = a.clamp_min(0)
    ref = (pos * m).flatten(1).sum(1) / pos.flatten(1).sum(1)
    torch.testing.assert_close(e[:3], ref[:3])
    assert torch.isnan(e[3])  # empty mask: undefined, not 0
    assert metrics.energy_pointing_game(-a.abs(), m)[:3].tolist() == [0.0, 0.0, 0.0]


def test_nan_masks_are_rejected(rng):
    sal = torch.rand(2, 1, 6, 6, generator=rng)
    masks = (torch.rand(2, 1, 6, 6, generator=rng) > 0.5).float()
    masks[1, 0, 0, 0] = float("nan")  # NaN != 0 would silently count as inside the mask
    with pytest.raises(ValueError, match="masks contains NaN"):
        metrics.pointing_game(sal, masks)
    with pytest.raises(ValueError, match="masks contains NaN"):
        metrics.energy_pointing_game(sal, masks)
    with pytest.raises(ValueError, match="masks contains NaN"):
        metrics.pointing_game(sal, masks.masked_fill(masks.isnan(), float("inf")) * -1)
