"""RISE against a slow independent implementation of the formula, and against itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyxai
from tests.conftest import native_or_skip
from tests.perturbation.models import VideoNet, tiny_cnn

skimage_transform = pytest.importorskip("skimage.transform")


def _slow_rise(model, x, grids, offsets, canvas, p, target, baseline=0.0):
    """The original algorithm, one mask at a time: skimage resize, crop, x*m, sum f*m / (N p)."""
    n = grids.shape[0]
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    sal = torch.zeros(b, h, w, dtype=torch.float64)
    with torch.no_grad():
        for i in range(n):
            up = skimage_transform.resize(
                grids[i].double().numpy(), canvas, order=1, mode="reflect", anti_aliasing=False
            )
            oy, ox = offsets[i].tolist()
            m = torch.from_numpy(np.ascontiguousarray(up[oy : oy + h, ox : ox + w]))
            mx = m.to(x.dtype)
            scores = model(x * mx + baseline * (1 - mx))
            sel = scores.gather(1, target[:, None]).squeeze(1).double()
            sal += sel[:, None, None] * m[None]
    return (sal / (n * p))[:, None]


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_matches_slow_formula(rng, backend):
    if backend == "native":
        native_or_skip("cpu")
    model = tiny_cnn(classes=5, seed=int(torch.randint(0, 999, (1,), generator=rng)))
    h, w = 20, 17  # odd, non-square: different cells per axis
    x = torch.rand(2, 3, h, w, generator=rng, dtype=torch.float64)
    model = model.double()
    target = torch.tensor([1, 4])
    rise = pyxai.RISE(model, n_masks=40, grid_size=5, p=0.4, batch_size=12, seed=7,
                      backend=backend, baseline=0.25)
    sal = rise.attribute(x, target=target)
    grids, offsets, canvas = rise.sample_masks(h, w, torch.float64)
    assert canvas == (6 * 4, 6 * 4)
    expect = _slow_rise(model, x, grids, offsets, canvas, 0.4, target, baseline=0.25)
    assert sal.shape == (2, 1, h, w) and sal.dtype == torch.float64
    torch.testing.assert_close(sal, expect, rtol=1e-9, atol=1e-12)


def test_seeded_across_batch_sizes_and_backends(rng):
    model = tiny_cnn(classes=6)
    x = torch.rand(3, 3, 24, 24, generator=rng)
    maps = []
    backends = ["reference", "native"] if pyxai.native_status()["compiled"] else ["reference"]
    for backend in backends:
        for bs in (7, 32, None):
            maps.append(pyxai.RISE(model, n_masks=60, grid_size=4, batch_size=bs, seed=3,
                                   backend=backend).attribute(x, target=[0, 5, 2]))
    for m in maps[1:]:
        torch.testing.assert_close(m, maps[0], rtol=1e-5, atol=1e-6)
    other = pyxai.RISE(model, n_masks=60, grid_size=4, seed=4).attribute(x, target=[0, 5, 2])
    assert not torch.allclose(other, maps[0])


def test_all_classes_and_target_forms(rng):
    model = tiny_cnn(classes=4)
    x = torch.rand(2, 3, 16, 16, generator=rng)
    rise = pyxai.RISE(model, n_masks=30, grid_size=4, batch_size=16)
    every = rise.attribute(x, all_classes=True)
    assert every.shape == (2, 4, 16, 16)
    torch.testing.assert_close(rise.attribute(x, target=[2, 1])[:, 0],
                               torch.stack([every[0, 2], every[1, 1]]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rise.attribute(x, target=3)[:, 0], every[:, 3], rtol=1e-5,
                               atol=1e-6)
    pred = model(x).argmax(1)
    torch.testing.assert_close(rise.attribute(x)[:, 0], every[torch.arange(2), pred], rtol=1e-5,
                               atol=1e-6)
    by_callable = rise.attribute(x, target=lambda out: out[:, 1] - out[:, 0])
    torch.testing.assert_close(by_callable[:, 0], every[:, 1] - every[:, 0], rtol=1e-4,
                               atol=1e-6)


def test_video(rng):
    model = VideoNet().eval()
    x = torch.rand(2, 3, 4, 12, 12, generator=rng)
    rise = pyxai.RISE(model, n_masks=20, grid_size=3, batch_size=10)
    sal = rise.attribute(x, target=[0, 3])
    assert sal.shape == (2, 1, 12, 12)
    # one 2-D mask over all frames: equal to the slow formula with the mask broadcast over T
    grids, offsets, canvas = rise.sample_masks(12, 12)
    expect = _slow_rise(model, x, grids, offsets, canvas, 0.5, torch.tensor([0, 3]))
    torch.testing.assert_close(sal.double(), expect, rtol=1e-4, atol=1e-6)


def test_adaptive_stops_early_and_is_a_prefix(rng):
    model = tiny_cnn(classes=3)
    x = torch.rand(1, 3, 16, 16, generator=rng)
    ada = pyxai.RISE(model, n_masks=2000, grid_size=4, batch_size=50, adaptive=True, tol=0.05,
                     check_every=100)
    sal, used = ada.attribute(x, target=1, return_n_masks=True)
    assert 200 <= used < 2000 and used % 100 == 0
    fixed = pyxai.RISE(model, n_masks=used, grid_size=4, batch_size=64)
    torch.testing.assert_close(sal, fixed.attribute(x, target=1), rtol=1e-5, atol=1e-6)
    ada.batch_size = 33
    sal33, used33 = ada.attribute(x, target=1, return_n_masks=True)
    torch.testing.assert_close(sal33, sal, rtol=1e-5, atol=1e-6)
    assert used33 == used


def test_bad_input():
    model = tiny_cnn()
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="n_masks"):
        pyxai.RISE(model, n_masks=0)
    with pytest.raises(ValueError, match="n_masks"):
        pyxai.RISE(model, n_masks=-5)
    for p in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="p must"):
            pyxai.RISE(model, p=p)
    with pytest.raises(ValueError, match="grid_size"):
        pyxai.RISE(model, n_masks=4, grid_size=9).attribute(x)
    with pytest.raises(ValueError, match="target"):
        pyxai.RISE(model, n_masks=4).attribute(x, target=5)
    with pytest.raises(ValueError, match="target"):
        pyxai.RISE(model, n_masks=4).attribute(x, target=[0, 1, 2])
    bad = x.clone()
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pyxai.RISE(model, n_masks=4).attribute(bad)
    with pytest.raises(ValueError, match="forward_func"):
        pyxai.RISE(lambda t: model(t)[:1], n_masks=4).attribute(x)
    with pytest.raises(ValueError, match="inputs"):
        pyxai.RISE(model, n_masks=4).attribute(torch.rand(3, 8, 8))
