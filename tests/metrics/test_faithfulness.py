"""Deletion / insertion against a slow copy of RISE's CausalMetric loop; MuFidelity against Quantus
(same subsets injected) and an exact linear-model oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyxai import metrics
from pyxai.metrics.faithfulness import make_substrate
from tests.metrics._models import small_cnn


def _rise_causal_metric(f, x, sal, finish_fn, start_fn, step, target):
    """RISE's CausalMetric.single_run, one image at a time, pixels copied step by step in numpy."""
    b, c, h, w = x.shape
    hw = h * w
    n = math.ceil(hw / step)
    curves = np.zeros((b, n + 1))
    for j in range(b):
        start = start_fn(x[j : j + 1]).numpy().copy()
        finish = finish_fn(x[j : j + 1]).numpy()
        order = np.flip(np.argsort(sal[j].reshape(-1).numpy()), -1)
        for i in range(n + 1):
            with torch.no_grad():
                p = f(torch.from_numpy(start))
            curves[j, i] = float(p[0, target[j]])
            if i < n:
                coords = order[step * i : step * (i + 1)]
                start.reshape(1, c, hw)[0, :, coords] = finish.reshape(1, c, hw)[0, :, coords]
    aucs = (curves.sum(1) - curves[:, 0] / 2 - curves[:, -1] / 2) / n
    return aucs, curves


def test_blur_weights_match_scipy():
    nd = pytest.importorskip("scipy.ndimage")
    delta = np.zeros((11, 11))
    delta[5, 5] = 1
    kern = nd.gaussian_filter(delta, 5)  # RISE's gkern(11, 5) (one channel)
    w = metrics.rise_blur_weights()
    np.testing.assert_allclose(np.outer(w, w), kern, rtol=0, atol=1e-15)
    spec = [0.087958, 0.088896, 0.090474, 0.092191, 0.093489, 0.093982]  # SPECS §1.6
    np.testing.assert_allclose(w[:6], spec, atol=1e-6)


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("substrate,n_steps", [("zeros", None), ("blur", None), ("mean", 7),
                                               ("blur", 3), ("tensor", 11)])
def test_causal_matches_rise_loop(rng, mode, substrate, n_steps):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    model = small_cnn(seed=int(torch.randint(0, 1000, (1,), generator=rng))).double()
    probs = lambda z: model(z).softmax(1)  # noqa: E731
    x = torch.rand(3, 3, 21, 23, generator=rng, dtype=torch.float64)
    attr = torch.randn(3, 1, 21, 23, generator=rng, dtype=torch.float64)
    sub = torch.rand(1, 3, 1, 1, generator=rng, dtype=torch.float64) if substrate == "tensor" \
        else substrate
    fn = metrics.deletion if mode == "deletion" else metrics.insertion
    auc, curves = fn(probs, x, attr, n_steps=n_steps, substrate=sub, return_curves=True,
                     batch_size=5)
    hw = 21 * 23
    step = 224 if n_steps is None else math.ceil(hw / n_steps)
    sub_fn = lambda z: make_substrate(z, sub)  # noqa: E731
    keep = lambda z: z  # noqa: E731
    target = probs(x).argmax(1)
    if mode == "deletion":
        ref_auc, ref_curves = _rise_causal_metric(probs, x, attr, sub_fn, keep, step, target)
    else:
        ref_auc, ref_curves = _rise_causal_metric(probs, x, attr, keep, sub_fn, step, target)
    assert curves.shape == (3, (n_steps or math.ceil(hw / 224)) + 1)
    # with n_steps given, steps past the full reveal repeat the final score
    np.testing.assert_allclose(curves[:, : ref_curves.shape[1]].numpy(), ref_curves, atol=1e-12)
    if ref_curves.shape[1] == curves.shape[1]:
        np.testing.assert_allclose(auc.numpy(), ref_auc, atol=1e-12)


def test_causal_float32_batching_and_backend_agree(rng):
    model = small_cnn()
    x = torch.rand(5, 3, 16, 16, generator=rng)
    attr = torch.rand(5, 3, 16, 16, generator=rng)  # channels summed
    target = torch.randint(0, 5, (5,), generator=rng)
    a = metrics.deletion(model, x, attr, target=target, n_steps=9, batch_size=7)
    b = metrics.deletion(model, x, attr, target=target.tolist(), n_steps=9, batch_size=64,
                         backend="reference")
    c = metrics.insertion(model, x, attr[:, 0:1].expand(-1, 3, -1, -1) * 0 + attr.sum(1, True),
                          target=target, n_steps=9)
    d = metrics.insertion(model, x, attr.sum(1), target=target, n_steps=9)
    assert a.dtype == torch.float32 and a.shape == (5,)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(c, d)


def test_causal_bad_input(rng):
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8, generator=rng)
    with pytest.raises(ValueError, match="attributions"):
        metrics.deletion(model, x, torch.rand(2, 1, 8, 9))
    with pytest.raises(ValueError, match="attributions"):
        metrics.deletion(model, x, torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match="n_steps"):
        metrics.insertion(model, x, torch.rand(2, 1, 8, 8), n_steps=0)
    with pytest.raises(ValueError, match="substrate"):
        metrics.insertion(model, x, torch.rand(2, 1, 8, 8), substrate="noise")
    with pytest.raises(ValueError, match="target"):
        metrics.deletion(model, x, torch.rand(2, 1, 8, 8), target=[1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        metrics.deletion(model, x, torch.full((2, 1, 8, 8), float("nan")))


def test_mu_fidelity_linear_model_is_one(rng):
    """f(x) = <w, x>: dropping S to 0 lowers f by exactly the input x gradient mass of S."""
    c, h, w = 2, 12, 10
    weight = torch.randn(1, c * h * w, generator=rng, dtype=torch.float64)
    model = lambda z: z.reshape(z.shape[0], -1) @ weight.T  # noqa: E731
    x = torch.randn(4, c, h, w, generator=rng, dtype=torch.float64)
    attr = x * weight.reshape(1, c, h, w)
    seed = int(torch.randint(0, 1000, (1,), generator=rng))
    r = metrics.mu_fidelity(model, x, attr, target=0, grid_size=4, n_samples=32, seed=seed)
    torch.testing.assert_close(r, torch.ones(4, dtype=torch.float64))
    r2 = metrics.mu_fidelity(model, x, attr, target=0, grid_size=None, n_samples=16, seed=seed,
                             batch_size=3)
    torch.testing.assert_close(r2, torch.ones(4, dtype=torch.float64))
    # a shuffled attribution is far less faithful
    bad = attr.flatten(1)[:, torch.randperm(c * h * w, generator=rng)].reshape_as(attr)
    assert (metrics.mu_fidelity(model, x, bad, target=0, grid_size=4, seed=seed) < 0.9).all()


def test_mu_fidelity_seed_and_batching(rng):
    model = small_cnn()
    x = torch.rand(3, 3, 18, 18, generator=rng)
    attr = torch.randn(3, 1, 18, 18, generator=rng)
    a = metrics.mu_fidelity(model, x, attr, n_samples=20, seed=3, batch_size=4)
    b = metrics.mu_fidelity(model, x, attr, n_samples=20, seed=3, batch_size=64,
                            backend="reference")
    c = metrics.mu_fidelity(model, x, attr, n_samples=20, seed=4)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, c)
    with pytest.raises(ValueError, match="subset_percent"):
        metrics.mu_fidelity(model, x, attr, subset_percent=1.5)
    with pytest.raises(ValueError, match="attributions"):
        metrics.mu_fidelity(model, x, attr[:, :, :5])


def test_mu_fidelity_matches_quantus_faithfulness_correlation(rng):
    """Quantus' FaithfulnessCorrelation draws per image; we inject the same subsets as masks.

    Single-channel inputs: Quantus indexes attribution features into the flattened input, which
    only lines up with pixels when the attribution has the input's channels.
    """
    quantus = pytest.importorskip("quantus")
    model = small_cnn(in_ch=1)  # Quantus feeds float32
    b, h, w, n, k = 3, 12, 12, 24, 30
    x = torch.rand(b, 1, h, w, generator=rng)
    a = torch.randn(b, 1, h, w, generator=rng)
    y = model(x).argmax(1)
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    np.random.seed(seed)  # replay Quantus' draws: run by run, image by image within a run
    masks = np.zeros((b, n, h * w), dtype=bool)
    for i in range(n):
        for j in range(b):
            masks[j, i, np.random.choice(h * w, k, replace=False)] = True
    np.random.seed(seed)
    metric = quantus.FaithfulnessCorrelation(nr_runs=n, subset_size=k, perturb_baseline=0.0,
                                             normalise=False, abs=False, return_aggregate=False,
                                             disable_warnings=True)
    ref = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                 device="cpu", batch_size=b)
    ours = torch.cat([
        metrics.mu_fidelity(model, x[j : j + 1], a[j : j + 1], target=y[j : j + 1],
                            masks=torch.from_numpy(masks[j]).reshape(n, h, w))
        for j in range(b)
    ])
    np.testing.assert_allclose(ours.numpy(), np.asarray(ref), atol=2e-5)
