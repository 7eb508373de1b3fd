"""Sensitivity and local Lipschitz against Quantus, with the same noise injected into both."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai import metrics
from pyxai.metrics.robustness import draw_noise
from tests.metrics._models import InputXGrad, small_cnn


def _quantus_run(quantus_cls, model, explainer, x, y, noise, **kw):
    """Run a Quantus robustness metric with ``noise[step, image]`` as its perturbation.

    Quantus (batch_size = B) perturbs the whole batch once per step: our perturb_func returns
    ``x + noise[step]`` for consecutive calls.
    """
    calls = iter(range(noise.shape[0]))

    def perturb(arr, indices, **_):
        return arr + noise[next(calls)].reshape(arr.shape).numpy()

    def explain_func(model, inputs, targets, **_):
        t = torch.as_tensor(np.asarray(targets)).long()
        return explainer.attribute(torch.as_tensor(inputs).float(), target=t).numpy()

    metric = quantus_cls(nr_samples=noise.shape[0], perturb_func=perturb, disable_warnings=True,
                         return_aggregate=False, **kw)
    return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
                             explain_func=explain_func, device="cpu", batch_size=x.shape[0]))


@pytest.mark.parametrize("name", ["MaxSensitivity", "AvgSensitivity"])
def test_sensitivity_matches_quantus(rng, name):
    quantus = pytest.importorskip("quantus")
    model = small_cnn(seed=int(torch.randint(0, 1000, (1,), generator=rng)))
    explainer = InputXGrad(model)
    x = torch.rand(3, 3, 12, 12, generator=rng)
    y = model(x).argmax(1)
    seed, n, radius = int(torch.randint(0, 2**31, (1,), generator=rng)), 6, 0.05
    fn = metrics.max_sensitivity if name == "MaxSensitivity" else metrics.avg_sensitivity
    ours = fn(explainer, x, target=y, radius=radius, n_samples=n, seed=seed)
    noise = draw_noise("uniform", (n, *x.shape), radius, seed)
    ref = _quantus_run(getattr(quantus, name), model, explainer, x, y, noise, lower_bound=radius)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=2e-4)
    # target None resolves to the predicted class through the explainer's model
    torch.testing.assert_close(fn(explainer, x, radius=radius, n_samples=n, seed=seed), ours)


@pytest.mark.parametrize("batch", [1, 3])
def test_local_lipschitz_matches_quantus(rng, batch):
    quantus = pytest.importorskip("quantus")
    model = small_cnn(seed=int(torch.randint(0, 1000, (1,), generator=rng)))
    explainer = InputXGrad(model)
    x = torch.rand(batch, 3, 10, 10, generator=rng)
    y = model(x).argmax(1)
    seed, n, radius = int(torch.randint(0, 2**31, (1,), generator=rng)), 5, 0.1
    noise = draw_noise("gaussian", (n, *x.shape), radius, seed)
    # Quantus max-normalises over the whole batch: identical to ours (per image) for batch 1
    normalise = batch == 1
    ours = metrics.local_lipschitz(explainer, x, target=y, radius=radius, n_samples=n, seed=seed,
                                   normalise=normalise, batch_size=2 * batch)
    ref = _quantus_run(quantus.LocalLipschitzEstimate, model, explainer, x, y, noise,
                       perturb_std=radius, normalise=normalise)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=2e-4)


def test_robustness_explainer_forms_and_bad_input(rng):
    model = small_cnn()
    exp = InputXGrad(model)
    x = torch.rand(2, 3, 8, 8, generator=rng)
    y = model(x).argmax(1)
    a = metrics.max_sensitivity(exp, x, target=y, n_samples=4, seed=1)
    b = metrics.max_sensitivity(lambda i, t: exp.attribute(i, target=t), x, target=y,
                                n_samples=4, seed=1, batch_size=2)
    torch.testing.assert_close(a, b)
    calls = []

    def counting(i, t):
        calls.append(i.shape[0])
        return exp.attribute(i, target=t)

    metrics.avg_sensitivity(counting, x, target=y, n_samples=5)
    assert calls == [2, 10]  # the clean batch, then all perturbations in one call
    with pytest.raises(ValueError, match="radius"):
        metrics.max_sensitivity(exp, x, radius=0)
    with pytest.raises(ValueError, match="n_samples"):
        metrics.local_lipschitz(exp, x, n_samples=0)
    with pytest.raises(ValueError, match="one row per input"):
        metrics.max_sensitivity(lambda i, t: torch.zeros(1, 3), x)
    with pytest.raises(TypeError, match="explainer"):
        metrics.max_sensitivity(object(), x)
