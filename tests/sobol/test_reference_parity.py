"""Parity with the original Sobol attribution method's semantics, recomputed independently here:
unscrambled scipy Sobol' design, every mask materialised and upsampled with F.interpolate
('nearest'), inpainting, the reference's literal NumPy estimators, cv2 bicubic resize. Also the
blur/amplitude perturbations, native vs reference backends, batch-size invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pyxai
from pyxai.ops.sobol import ESTIMATORS
from pyxai.sobol.perturbations import box_blur
from tests.conftest import native_or_skip


def _model(rng, c=3, k=5):
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32, k),
    ).eval().double()


def _reference_estimator(name, a, c, n):
    """The original reference's total-order formulas, literally (NumPy float64)."""
    d = c.shape[0]
    f0 = np.mean(a)
    var = np.sum((a - f0) ** 2) / (len(a) - 1)
    if name == "jansen":
        return np.array([np.sum((a - c[i]) ** 2) / (2 * n * var) for i in range(d)])
    if name == "homma":
        return np.array([(var - np.sum(a * c[i]) / n + f0**2) / var for i in range(d)])
    if name == "saltelli":
        return np.array([1 - (np.sum(a * c[i]) / n - f0**2) / var for i in range(d)])
    if name == "janon":
        f0s = [np.sum(a + c[i]) / n / 2 for i in range(d)]
        vs = [np.sum(a**2 + c[i] ** 2) / (n - 1) / 2 - f0s[i] ** 2 for i in range(d)]
        return np.array([1 - (np.sum(a * c[i]) / n - f0s[i] ** 2) / vs[i] for i in range(d)])
    va = np.var(a)
    return np.array([1 - np.sum((a - a.mean()) * (c[i] - c[i].mean())) / (n - 1)
                     / np.sqrt(va * np.var(c[i])) for i in range(d)])


def _original(model, x, label, grid, nb_design, estimator):
    """Original algorithm for one image x [C, H, W]: returns (raw [g, g], resized [H, W])."""
    qmc = pytest.importorskip("scipy.stats.qmc")
    d = grid * grid
    pts = qmc.Sobol(2 * d, scramble=False).random(nb_design)
    a, b = pts[:, :d], pts[:, d:]
    cs = []
    for i in range(d):
        ci = a.copy()
        ci[:, i] = b[:, i]
        cs.append(ci)
    design = np.concatenate([a, b] + cs).reshape(-1, 1, grid, grid)
    masks = F.interpolate(torch.from_numpy(design), size=x.shape[-2:])  # 'nearest'
    with torch.no_grad():
        y = torch.cat([model(x[None] * m) for m in masks.split(64)])[:, label].numpy()
    ya, yc = y[:nb_design], y[2 * nb_design:].reshape(d, nb_design)
    raw = _reference_estimator(estimator, ya, yc, nb_design).reshape(grid, grid)
    return raw


@pytest.mark.parametrize("size", [(32, 32), (30, 30)])  # grid divides the size, or not
def test_original_semantics_jansen_resized(rng, size):
    cv2 = pytest.importorskip("cv2")
    model = _model(rng)
    x = torch.rand(2, 3, *size, generator=rng, dtype=torch.float64)
    labels = torch.randint(0, 5, (2,), generator=rng)
    grid, nb = 4, 16
    ours = pyxai.SobolAttribution(model, grid_size=grid, nb_design=nb, sampler="sobol",
                                  estimator="jansen", batch_size=40).attribute(x, labels)
    assert ours.shape == (2, 1, *size) and ours.dtype == torch.float64
    for j in range(2):
        raw = _original(model, x[j], int(labels[j]), grid, nb, "jansen")
        want = cv2.resize(raw.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(ours[j, 0].numpy(), want, rtol=0, atol=1e-5 * (1 + np.abs(want).max()))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_original_semantics_every_estimator_raw(rng, estimator):
    model = _model(rng)
    x = torch.rand(1, 3, 24, 24, generator=rng, dtype=torch.float64)
    grid, nb = 3, 32
    ours = pyxai.SobolAttribution(model, grid_size=grid, nb_design=nb, sampler="sobol",
                                  estimator=estimator).attribute(x, 1, resize=False)
    raw = _original(model, x[0], 1, grid, nb, estimator)
    np.testing.assert_allclose(ours[0, 0].numpy(), raw, rtol=1e-8, atol=1e-8)


def test_blur_matches_cv2():
    cv2 = pytest.importorskip("cv2")
    x = torch.rand(2, 3, 23, 31, dtype=torch.float64)
    for k in (1, 3, 10):
        ours = box_blur(x, k)
        for b in range(2):
            img = x[b].permute(1, 2, 0).numpy()
            want = cv2.blur(img, (k, k))
            np.testing.assert_allclose(ours[b].permute(1, 2, 0).numpy(), want, atol=1e-12)


@pytest.mark.parametrize("perturbation", ["blur", "amplitude"])
def test_blur_and_amplitude_perturbations(rng, perturbation):
    """A model that records its inputs sees exactly x*m + blur(x)*(1-m) / x*(m-0.5)*sigma."""
    seen = []

    def model(z):
        seen.append(z.clone())
        return z.flatten(1)[:, :3]

    x = torch.rand(1, 2, 12, 12, generator=rng, dtype=torch.float64)
    sigma = 4 if perturbation == "blur" else 2.5
    e = pyxai.SobolAttribution(model, grid_size=3, nb_design=4, perturbation=perturbation,
                               sigma=sigma, sampler="sobol", batch_size=1000)
    e.attribute(x, 0)
    got = torch.cat(seen[1:])  # seen[0]: the unperturbed forward for the target
    a, b = e.design(9)
    rows = [a, b] + [torch.where(torch.arange(9) == i, b, a) for i in range(9)]
    m = F.interpolate(torch.cat(rows).reshape(-1, 1, 3, 3), size=(12, 12))
    want = x * m + box_blur(x, 4) * (1 - m) if perturbation == "blur" else x * (m - 0.5) * sigma
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_channel", [False, True])
def test_native_equals_reference_and_batch_invariance(rng, dtype, per_channel):
    native_or_skip()
    model = _model(rng).to(dtype)
    x = torch.rand(3, 3, 20, 20, generator=rng, dtype=torch.float64).to(dtype)
    kw = dict(grid_size=3, nb_design=8, per_channel=per_channel, seed=int(torch.randint(0, 99, (1,),
              generator=rng)))
    nat = pyxai.SobolAttribution(model, backend="native", batch_size=64, **kw).attribute(x)
    ref = pyxai.SobolAttribution(model, backend="reference", batch_size=17, **kw).attribute(x)
    assert nat.shape == (3, 3 if per_channel else 1, 20, 20) and nat.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(nat, ref, rtol=tol, atol=tol)


def test_video_inputs_share_masks_over_frames(rng):
    model = lambda z: z.mean((2, 3, 4))  # noqa: E731  [R, C, T, H, W] -> [R, C]
    x = torch.rand(1, 2, 3, 8, 8, generator=rng)
    out = pyxai.SobolAttribution(model, grid_size=2, nb_design=8).attribute(x, 1)
    assert out.shape == (1, 1, 8, 8) and torch.isfinite(out).all()
