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


def _probs_model(rng):
    model = small_cnn(seed=int(torch.randint(0, 1000, (1,), generator=rng))).double()
    return model, (lambda z: model(z).softmax(1))


@pytest.mark.parametrize("insertion", [False, True])
def test_causal_accumulators_split_and_merge_equal_one_run(rng, insertion):
    """Steps evaluated in two shards, each into its own CausalCurves, merge into the metric."""
    from pyxai.engine.targets import resolve_target
    from pyxai.metrics.faithfulness import CausalCurves
    from pyxai.ops.metrics import pixel_ranks, reveal_by_rank

    _, probs = _probs_model(rng)
    b, h, w, n = 3, 9, 10, 6
    x = torch.rand(b, 3, h, w, generator=rng, dtype=torch.float64)
    attr = torch.randn(b, 1, h, w, generator=rng, dtype=torch.float64)
    fn = metrics.insertion if insertion else metrics.deletion
    auc, curves = fn(probs, x, attr, n_steps=n, return_curves=True, batch_size=4)
    sub = make_substrate(x, "blur" if insertion else "zeros")
    step_px = math.ceil(h * w / n)
    ranks = pixel_ranks(attr.sum(1).reshape(b, -1))
    if insertion:
        ranks = n * step_px - 1 - ranks
    clean = probs(x)
    target = resolve_target(None, clean)
    shards = [CausalCurves(target(clean).double(), n, insertion) for _ in range(2)]
    for s in range(n):  # steps 0, 2, 4 to one worker, 1, 3, 5 to the other
        out = probs(reveal_by_rank(x, sub, ranks, (s + 1) * b, b, step_px))
        shards[s % 2].update(s, s + 1, target(out))
    merged = shards[0].merge(shards[1]).result()
    torch.testing.assert_close(merged, curves, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(metrics.auc(merged), auc, rtol=1e-12, atol=1e-14)


def test_mu_fidelity_accumulators_split_and_merge_equal_one_run(rng):
    from pyxai.engine.targets import resolve_target
    from pyxai.metrics.faithfulness import FidelityScores, subset_mass
    from pyxai.ops.masks import upsample_blend

    model, _ = _probs_model(rng)
    b, h, w, n = 2, 12, 12, 10
    x = torch.rand(b, 3, h, w, generator=rng, dtype=torch.float64)
    attr = torch.randn(b, 1, h, w, generator=rng, dtype=torch.float64)
    masks = torch.rand(n, 3, 3, generator=rng) < 0.3
    one = metrics.mu_fidelity(model, x, attr, masks=masks, baseline=0.5)
    keep = (~masks).double()
    mass = subset_mass(attr.sum(1).reshape(b, -1), keep, (h, w))
    clean = model(x)
    target = resolve_target(None, clean)
    a, c = FidelityScores(target(clean).double(), mass), FidelityScores(target(clean).double(), mass)
    with torch.no_grad():
        a.update(0, 4, target(model(upsample_blend(x, keep[:4], baseline=0.5))))
        c.update(4, n, target(model(upsample_blend(x, keep[4:], baseline=0.5))))
    torch.testing.assert_close(a.merge(c).result(), one, rtol=1e-12, atol=1e-14)


def test_callable_and_nested_targets(rng):
    model, probs = _probs_model(rng)
    x = torch.rand(3, 3, 10, 10, generator=rng, dtype=torch.float64)
    attr = torch.randn(3, 1, 10, 10, generator=rng, dtype=torch.float64)
    y = torch.randint(0, 5, (3,), generator=rng)
    by_rows = lambda out, rows: out.gather(1, y[rows][:, None]).squeeze(1)  # noqa: E731
    for fn in (metrics.deletion, metrics.insertion, metrics.mu_fidelity):
        kw = {"n_samples": 8} if fn is metrics.mu_fidelity else {"n_steps": 5}
        ref = fn(probs, x, attr, target=y, batch_size=4, **kw)
        torch.testing.assert_close(fn(probs, x, attr, target=by_rows, batch_size=4, **kw), ref)
        torch.testing.assert_close(fn(probs, x, attr, target=y.tolist(), **kw), ref)
        with pytest.raises(ValueError, match="target"):
            fn(probs, x, attr, target=[[1, 2, 3]], **kw)
        with pytest.raises(ValueError, match="target"):
            fn(probs, x, attr, target=7, **kw)


def test_faithfulness_bad_input(rng):
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8, generator=rng)
    attr = torch.rand(2, 1, 8, 8, generator=rng)
    nan_attr = attr.clone()
    nan_attr[0, 0, 3, 3] = float("nan")
    for fn in (metrics.deletion, metrics.insertion, metrics.mu_fidelity):
        with pytest.raises(ValueError, match="attributions contains NaN"):
            fn(model, x, nan_attr)
        with pytest.raises(ValueError, match="inputs are on cpu but the model is on meta"):
            fn(small_cnn().to("meta"), x, attr)
    with pytest.raises(ValueError, match="substrate"):
        metrics.deletion(model, x, attr, substrate=float("nan"))
    with pytest.raises(ValueError, match="substrate"):
        metrics.insertion(model, x, attr, substrate=torch.full((1, 3, 1, 1), float("inf")))
    with pytest.raises(ValueError, match="baseline"):
        metrics.mu_fidelity(model, x, attr, baseline=float("nan"))
    for seed in (0.5, "1", None, False):
        with pytest.raises(TypeError, match="seed"):
            metrics.mu_fidelity(model, x, attr, seed=seed)
    masks = torch.zeros(4, 2, 2)
    masks[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="masks contains NaN"):
        metrics.mu_fidelity(model, x, attr, masks=masks)
    with pytest.raises(ValueError, match="masks must hold 0/1"):
        metrics.mu_fidelity(model, x, attr, masks=torch.full((4, 2, 2), 0.5))


def test_train_mode_model_is_left_as_found(rng):
    """A train-mode model runs on a view (batch statistics, BN running stats unchanged): one
    warning per call, the model as found, and the numbers of the same train-mode forwards."""
    import copy

    from pyxai.engine.view import same_state, state_fingerprint

    model = small_cnn(seed=int(torch.randint(0, 1000, (1,), generator=rng))).train()
    before = state_fingerprint(model)
    x = torch.rand(3, 3, 10, 10, generator=rng)
    attr = torch.rand(3, 1, 10, 10, generator=rng)
    for fn, kw in ((metrics.deletion, {"n_steps": 4}), (metrics.insertion, {"n_steps": 4}),
                   (metrics.mu_fidelity, {"n_samples": 6})):
        with pytest.warns(UserWarning, match="training mode") as record:
            out = fn(model, x, attr, batch_size=3, **kw)
        assert sum("training mode" in str(w.message) for w in record) == 1
        assert same_state(before, state_fingerprint(model)) == []
        twin = copy.deepcopy(model)  # its statistics may change: the outputs do not depend on them
        with pytest.warns(UserWarning, match="training mode"):
            torch.testing.assert_close(out, fn(twin, x, attr, batch_size=3, **kw))
