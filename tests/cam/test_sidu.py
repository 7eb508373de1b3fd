"""SIDU against a slow, direct implementation of the formulas (SPECS §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import pyxai


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                         nn.Conv2d(12, 10, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(10, 6)).eval()


def slow_sidu(model, layer_index, x, target, softmax=True, sigma=0.25, threshold=0.1, p1=0.5):
    """One image at a time, one mask at a time, skimage resize + scipy cdist, in float64."""
    resize = pytest.importorskip("skimage.transform").resize
    cdist = pytest.importorskip("scipy.spatial.distance").cdist
    maps = []
    for b in range(x.shape[0]):
        xb = x[b : b + 1].double()
        m = model.double()

        def f(z, m=m):
            return torch.softmax(m(z), -1) if softmax else m(z)

        with torch.no_grad():
            act = m[: layer_index + 1](xb)[0].numpy()
            p0 = f(xb)[0].numpy()
            h, w = x.shape[2:]
            up = (8 * math.ceil(h / 8), 8 * math.ceil(w / 8))
            masks = np.stack([resize((a > threshold).astype(np.float64), up, order=1,
                                     mode="reflect", anti_aliasing=False)[:h, :w] for a in act])
            preds = np.stack([f(xb * torch.from_numpy(mk)[None, None])[0].numpy() for mk in masks])
        c = target[b]
        sd = np.sqrt(np.exp(-((p0[c] - preds[:, c]) ** 2) / sigma**2))
        u = cdist(preds, preds).sum(1)
        u = (u - u.min()) / (u.max() - u.min() + 1e-13)
        sal = (sd * u) @ masks.reshape(len(masks), -1)
        maps.append(sal.reshape(h, w) / len(masks) / p1)
    model.float()
    return np.stack(maps)[:, None]


@pytest.mark.parametrize("size", [32, 36])
def test_sidu_matches_formulas(rng, size):
    m = tiny()
    x = torch.rand(3, 3, size, size, generator=rng)
    target = [1, 4, 0]
    ours = pyxai.SIDU(m, m[1], softmax=True, batch_size=7).attribute(x, target=target)
    ref = slow_sidu(m, 1, x, target)
    assert ours.shape == (3, 1, size, size)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-4, atol=1e-6)
    # the reference backend gives the same maps, and target=None is the predicted class
    pred = m(x).argmax(1)
    auto = pyxai.SIDU(m, m[1], softmax=True, backend="reference").attribute(x)
    np.testing.assert_allclose(auto.numpy(), pyxai.SIDU(m, m[1], softmax=True).attribute(
        x, target=pred).numpy(), rtol=1e-4, atol=1e-6)


def test_uniqueness_blockwise(rng):
    from pyxai.cam.sidu import uniqueness

    p = torch.rand(300, 7, generator=rng)
    direct = (p[:, None] - p[None]).norm(dim=-1).sum(1)
    assert torch.allclose(uniqueness(p, block=64), direct, rtol=1e-5)


def test_sidu_arguments(rng):
    m = tiny()
    x = torch.rand(2, 3, 16, 16, generator=rng)
    # target_layers=[layer], as GradCAM's, is target_layer
    a = pyxai.SIDU(m, m[1], softmax=True).attribute(x, target=[2, 3])
    b = pyxai.SIDU(m, target_layers=[m[1]], softmax=True).attribute(x, target=[2, 3])
    assert torch.equal(a, b) and float(a.abs().max()) > 0
    with pytest.raises(ValueError, match="not both"):
        pyxai.SIDU(m, m[1], target_layers=[m[1]])
    with pytest.raises(ValueError, match="one layer"):
        pyxai.SIDU(m, target_layers=[m[1], m[4]])
    with pytest.raises(ValueError, match="needs a target_layer"):
        pyxai.SIDU(m)
    for arg, bad in (("sigma", float("nan")), ("sigma", float("inf")), ("p1", float("nan")),
                     ("threshold", float("nan"))):
        with pytest.raises(ValueError, match=arg):
            pyxai.SIDU(m, m[1], **{arg: bad})
    with pytest.raises(ValueError, match="p1"):
        pyxai.SIDU(m, m[1], p1=0)
    with pytest.raises(ValueError, match="sigma"):
        pyxai.SIDU(m, m[1], sigma=-1.0)
    with pytest.raises(ValueError, match="inputs contains NaN"):
        pyxai.SIDU(m, m[1]).attribute(x * float("nan"))
