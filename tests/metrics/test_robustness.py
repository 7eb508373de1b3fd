"""Sensitivity and local Lipschitz against Quantus (same noise injected into both), the streaming
implementation against the all-at-once definition, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai import metrics
from pyxai.engine.view import same_state, state_fingerprint
from pyxai.metrics.robustness import NoiseRatios, NoiseStream, draw_noise
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


def _all_at_once(explainer, x, y, kind, radius, n, seed, lipschitz, normalise):
    """The metrics as they were before streaming: all noise, all copies, one explainer call."""
    b = x.shape[0]
    noise = draw_noise(kind, (n, *x.shape), radius, seed)
    xp = (x[None] + noise.to(x.dtype)).reshape(n * b, *x.shape[1:])
    a0 = explainer.attribute(x, target=y).reshape(b, -1).double()
    ap = explainer.attribute(xp, target=y.repeat(n)).reshape(n, b, -1).double()
    if normalise:
        a0 = a0 / a0.abs().amax(-1, keepdim=True)
        ap = ap / ap.abs().amax(-1, keepdim=True)
    num = (a0[None] - ap).norm(dim=-1)
    if lipschitz:
        return num / ((xp.reshape(n, b, -1) - x.reshape(1, b, -1)).double().norm(dim=-1) + 1e-10)
    return num / a0.norm(dim=-1)[None]


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


@pytest.mark.parametrize("kind", ["uniform", "gaussian"])
@pytest.mark.parametrize("shape", [(1, 1, 2, 3), (1, 1, 4, 4), (2, 3, 5, 7), (3, 1, 4, 4)])
def test_noise_stream_is_draw_noise_bit_for_bit(rng, kind, shape):
    """Chunks of whole samples, in any sizes, give exactly the noise drawn at once (also when the
    total is not a multiple of 16: torch.randn's overwritten tail, reached in any chunk)."""
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    for n in range(1, 9):
        ref = draw_noise(kind, (n, *shape), 0.3, seed)
        drawn, left = [], n
        while left:
            drawn.append(min(left, int(torch.randint(1, 4, (1,), generator=rng))))
            left -= drawn[-1]
        for sizes in ([1] * n, [n], drawn):
            stream = NoiseStream(kind, n, shape, 0.3, seed)
            got = torch.cat([stream.next(k) for k in sizes])
            assert torch.equal(got, ref), (n, sizes)
        with pytest.raises(ValueError, match="samples"):
            stream.next(1)


@pytest.mark.parametrize("metric", ["max_sensitivity", "avg_sensitivity", "local_lipschitz"])
def test_streaming_equals_all_at_once_for_any_batch_size(rng, metric):
    model = small_cnn(seed=int(torch.randint(0, 1000, (1,), generator=rng))).double()
    explainer = InputXGrad(model)
    x = torch.rand(3, 3, 6, 7, generator=rng, dtype=torch.float64)
    y = model(x).argmax(1)
    seed, n = int(torch.randint(0, 2**31, (1,), generator=rng)), 7
    lip = metric == "local_lipschitz"
    kind, radius = ("gaussian", 0.1) if lip else ("uniform", 0.05)
    ratios = _all_at_once(explainer, x, y, kind, radius, n, seed, lip, lip)
    ref = ratios.mean(0) if metric == "avg_sensitivity" else ratios.amax(0)
    fn = getattr(metrics, metric)
    outs = [fn(explainer, x, target=y, radius=radius, n_samples=n, seed=seed, batch_size=bs)
            for bs in (1, 12, None)]  # one sample per call, four per call, all seven in one
    for out in outs:
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=0)
        torch.testing.assert_close(out, outs[0], rtol=1e-14, atol=0)


def test_explainer_called_in_bounded_chunks(rng):
    model = small_cnn()
    exp = InputXGrad(model)
    x = torch.rand(2, 3, 8, 8, generator=rng)
    y = model(x).argmax(1)
    calls = []

    def counting(i, t):
        calls.append(i.shape[0])
        assert torch.equal(t, y.repeat(i.shape[0] // 2))  # the fixed target, tiled
        return exp.attribute(i, target=t)

    metrics.avg_sensitivity(counting, x, target=y, n_samples=5)
    assert calls == [2, 10]  # the clean batch, then all perturbations in one call (10 <= 64 rows)
    calls.clear()
    metrics.max_sensitivity(counting, x, target=y, n_samples=7, batch_size=5)
    assert calls == [2, 4, 4, 4, 2]  # whole samples of 2 rows, at most 5 rows per call
    calls.clear()
    metrics.local_lipschitz(counting, x, target=y, n_samples=40)
    assert calls == [2, 64, 16]  # automatic: 64 rows per call whatever n_samples


def test_noise_ratios_split_and_merge_equal_one_run(rng):
    r = torch.rand(9, 4, generator=rng, dtype=torch.float64)
    r[3, 1] = float("inf")
    one = NoiseRatios(4)
    one.update(0, 9, r)
    a, b = NoiseRatios(4), NoiseRatios(4)
    a.update(0, 2, r[:2])
    a.update(2, 5, r[2:5])
    b.update(5, 9, r[5:])
    merged = a.merge(b).result()
    assert torch.equal(merged[0], one.result()[0])
    assert torch.equal(merged[0], r.amax(0))
    torch.testing.assert_close(merged[1], one.result()[1], rtol=1e-15, atol=0)
    torch.testing.assert_close(one.result()[1], r.mean(0), rtol=1e-15, atol=0)
    with pytest.raises(TypeError, match="merge"):
        a.merge(object())


def test_callable_target_sees_its_own_sample(rng):
    """A callable (outputs, rows) target gets the sample index of every stacked row."""
    model = small_cnn()
    exp = InputXGrad(model)
    x = torch.rand(3, 3, 8, 8, generator=rng)
    y = model(x).argmax(1)
    checked = []

    def explainer(inputs, target):
        with torch.no_grad():
            out = model(inputs)
        rows = torch.arange(inputs.shape[0])  # the explainer's own rows: its batch of k * B
        copies = inputs.shape[0] // 3
        assert torch.equal(target(out, rows), out.gather(1, y.repeat(copies)[:, None]).squeeze(1))
        checked.append(copies)
        return exp.attribute(inputs, target=y.repeat(copies))

    def score(out, rows):
        return out.gather(1, y[rows][:, None]).squeeze(1)

    a = metrics.max_sensitivity(explainer, x, target=score, n_samples=4, seed=2, batch_size=6)
    b = metrics.max_sensitivity(exp, x, target=y, n_samples=4, seed=2, batch_size=6)
    assert checked == [1, 2, 2]
    torch.testing.assert_close(a, b)


def test_robustness_explainer_forms_and_bad_input(rng):
    model = small_cnn()
    exp = InputXGrad(model)
    x = torch.rand(2, 3, 8, 8, generator=rng)
    y = model(x).argmax(1)
    a = metrics.max_sensitivity(exp, x, target=y, n_samples=4, seed=1)
    b = metrics.max_sensitivity(lambda i, t: exp.attribute(i, target=t), x, target=y,
                                n_samples=4, seed=1, batch_size=2)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="radius"):
        metrics.max_sensitivity(exp, x, radius=0)
    with pytest.raises(ValueError, match="radius"):
        metrics.max_sensitivity(exp, x, radius=float("nan"))
    with pytest.raises(ValueError, match="n_samples"):
        metrics.local_lipschitz(exp, x, n_samples=0)
    with pytest.raises(ValueError, match="batch_size"):
        metrics.local_lipschitz(exp, x, batch_size=0)
    with pytest.raises(ValueError, match="one row per input"):
        metrics.max_sensitivity(lambda i, t: torch.zeros(1, 3), x)
    with pytest.raises(TypeError, match="explainer"):
        metrics.max_sensitivity(object(), x)
    with pytest.raises(ValueError, match="target"):
        metrics.max_sensitivity(exp, x, target=[[1, 2]])  # nested lists: the engine's error
    with pytest.raises(ValueError, match="target"):
        metrics.avg_sensitivity(exp, x, target=99)  # out of range, before any explainer call


@pytest.mark.parametrize("metric", ["max_sensitivity", "avg_sensitivity", "local_lipschitz"])
def test_robustness_rejects_nan_attributions_seeds_and_devices(rng, metric):
    model = small_cnn()
    exp = InputXGrad(model)
    fn = getattr(metrics, metric)
    x = torch.rand(2, 3, 8, 8, generator=rng)
    attr = exp.attribute(x)
    bad = attr.clone()
    bad[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="attributions contains NaN"):
        fn(exp, x, attributions=bad)
    with pytest.raises(ValueError, match="attributions contains NaN"):
        fn(exp, x, attributions=attr * float("inf"))
    with pytest.raises(ValueError, match="explainer's attributions of inputs contains NaN"):
        fn(lambda i, t: exp.attribute(i) * float("nan"), x)
    for seed in (1.5, "3", True, None):
        with pytest.raises(TypeError, match="seed"):
            fn(exp, x, seed=seed)
    with pytest.raises(ValueError, match="inputs are on cpu but the model is on meta"):
        fn(InputXGrad(small_cnn().to("meta")), x)


def test_train_mode_model_is_left_as_found(rng):
    model = small_cnn().train()
    before = state_fingerprint(model)
    x = torch.rand(2, 3, 8, 8, generator=rng)

    class ViewedInputXGrad(InputXGrad):  # an explainer that runs its model as pyxai's do
        def attribute(self, inputs, target=None):
            from pyxai.engine.view import ModelView
            return InputXGrad(ModelView(self.forward_func).module).attribute(inputs, target)

    with pytest.warns(UserWarning, match="training mode") as record:
        out = metrics.max_sensitivity(ViewedInputXGrad(model), x, n_samples=3)
    assert sum("training mode" in str(w.message) for w in record) == 1  # the target forward
    assert same_state(before, state_fingerprint(model)) == []
    assert torch.isfinite(out).all() and (out > 0).all()
