"""ShapleyValueSampling on models that aggregate their batch (Captum's aggregated-output mode: a
scalar, a Python number or a fixed-size Tensor for the whole batch), against Captum 0.9 on the
same fresh random inputs, with the same ``torch.manual_seed`` before both (the permutations are
drawn as Captum draws them, so the numbers are equal, not only statistically): equal
attributions ``[*selected output shape, *input dims]``, or errors of the class Captum raises.
``perturbations_per_eval > 1`` is always an error there (Captum asserts on a scalar and reshapes
garbage, or fails, on a fixed-size output)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import pyxai
from pyxai.perturbation._captum import AggregateOutputError, CaptumArgumentError, CaptumIndexError
from tests.gradient._models import randomise_bn
from tests.perturbation.test_aggregated_targets import TARGETS, _aggregate, _lin, _same

captum_attr = pytest.importorskip("captum.attr")


def _both(f, inputs, seed: int, **kw):
    """(pyxai's, Captum's) ShapleyValueSampling attribution, or the exception each raised, from
    the same global seed."""
    out = []
    for lib in (pyxai, captum_attr):
        torch.manual_seed(seed)
        try:
            out.append(lib.ShapleyValueSampling(f).attribute(inputs, **kw))
        except Exception as e:  # noqa: BLE001 - compared below
            out.append(e)
    return out


@pytest.mark.parametrize("kind", ["0d", "1xK", "K", "1xKx2", "2xK", "flat"])
def test_shapley_targets_equal_captum(rng, kind):
    f = _aggregate(_lin(rng), kind)
    x = torch.randn(4, 6, generator=rng)  # K != B: a Tensor[K] output is not one row per sample
    mask = torch.randint(0, 3, (1, 6), generator=rng)
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    results = 0
    for target in TARGETS:
        kw = dict(target=target, feature_mask=mask, n_samples=3, baselines=0.5)
        ours, ref = _both(f, x, seed, **kw)
        _same(ours, ref, 1e-6)
        results += isinstance(ours, torch.Tensor)
        for ppe in (2, 5):  # never one row per sample: always an error
            ours, ref = _both(f, x, seed, perturbations_per_eval=ppe, **kw)
            assert isinstance(ours, Exception), ours
            if isinstance(ref, Exception) and not isinstance(ref, RuntimeError):
                _same(ours, ref)  # a bad target (first), or Captum's assertion on a scalar
            else:  # Captum reshapes the rows of several perturbations wrongly (or fails)
                assert isinstance(ours, AggregateOutputError), ours
    assert results >= {"0d": 1, "K": 2, "flat": 2}.get(kind, 8)  # not only errors compared


@pytest.mark.parametrize("ret", ["tensor", "float", "int", "int_tensor", "1d", "expanded"])
def test_shapley_tuple_inputs_scalar_outputs_equal_captum(rng, ret):
    """Tuple inputs (int and float), baselines, masks shared across inputs, an additional
    forward argument, and every form Captum's tests return for the batch."""
    w1, w2 = torch.randn(3, 2, generator=rng), torch.randn(2, 2, generator=rng)

    def f(a, b, scale):
        s = (torch.tanh(a.float() @ w1) * (b @ w2)).sum() * scale
        return {"tensor": s, "float": float(s), "int": int(s * 100),
                "int_tensor": (s * 100).long(), "1d": s.reshape(1),
                "expanded": torch.stack([s, s + 2, s * 3])}[ret]

    a = torch.randint(-5, 6, (3, 3), generator=rng)
    b = torch.randn(3, 2, generator=rng)
    masks = (torch.tensor([[0, 1, 1]]), torch.tensor([[2, 0]]))
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    for kw in (dict(feature_mask=masks, baselines=(1, torch.randn(1, 2, generator=rng))), {}):
        ours, ref = _both(f, (a, b), seed, additional_forward_args=(1.5,), n_samples=4, **kw)
        assert isinstance(ours, tuple) and isinstance(ref, tuple), (ours, ref)
        for o, r in zip(ours, ref):
            _same(o, r, 1e-6)
        assert ours[0].shape == (3 if ret == "expanded" else 1, 3)


def test_shapley_resnet_summed_over_batch_equal_captum(rng):
    """A torchvision model (random weights, randomised BatchNorm statistics) wrapped to sum its
    batch: the total, and target indexing the Tensor[1, K] / Tensor[K] totals."""
    net = randomise_bn(torchvision.models.resnet18(num_classes=5), rng).eval()
    x = torch.randn(2, 3, 16, 16, generator=rng)
    cells = torch.arange(16)[:, None] // 8 * 2 + torch.arange(16)[None] // 8
    mask = cells.expand(1, 3, 16, 16).contiguous()  # Captum views the mask flat
    c = int(torch.randint(0, 5, (1,), generator=rng))
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    for f, target, shape in ((lambda t: net(t).sum(), None, (1,)),
                             (lambda t: net(t).sum(0, keepdim=True), c, (1,)),
                             (lambda t: net(t).sum(0), None, (5,))):
        ours, ref = _both(f, x, seed, target=target, feature_mask=mask, n_samples=2,
                          baselines=0.25)
        _same(ours, ref, 1e-6)
        assert ours.shape == (*shape, 3, 16, 16)


def test_shapley_aggregated_exact_on_additive_model(rng):
    """The Shapley value of a feature for a batch-summed linear score is its summed
    ``w_i * (x_i - baseline)``, in any order: the attributions are exact."""
    lin = nn.Linear(6, 2).eval()
    x = torch.randn(4, 6, generator=rng)
    attr = pyxai.ShapleyValueSampling(lambda t: lin(t).sum(0)).attribute(x, n_samples=2,
                                                                         baselines=1.0)
    torch.testing.assert_close(attr, (lin.weight[:, None] * (x - 1.0)).sum(1).detach())


def test_shapley_aggregated_errors(rng):
    m = _lin(rng)
    x = torch.randn(4, 6, generator=rng)
    svs = pyxai.ShapleyValueSampling(lambda t: m(t).sum())
    with pytest.raises(AggregateOutputError, match="perturbations_per_eval must be 1, got 2"):
        svs.attribute(x, perturbations_per_eval=2)
    with pytest.raises(AssertionError):  # as Captum
        svs.attribute(x, perturbations_per_eval=3)
    with pytest.raises(AssertionError):
        captum_attr.ShapleyValueSampling(lambda t: m(t).sum()).attribute(x,
                                                                        perturbations_per_eval=3)
    per_sample = torch.randint(0, 3, (4, 6), generator=rng)
    with pytest.raises(CaptumArgumentError, match="first dim of 1"):
        svs.attribute(x, feature_mask=per_sample)
    with pytest.raises(AssertionError, match="different masks"):  # Captum's
        captum_attr.ShapleyValueSampling(lambda t: m(t).sum()).attribute(
            x, feature_mask=per_sample)
    with pytest.raises(CaptumIndexError, match="target=1 cannot index the 0-d output"):
        svs.attribute(x, target=1)
    with pytest.raises(AggregateOutputError):  # a fixed-size output too
        pyxai.ShapleyValueSampling(lambda t: m(t).sum(0)).attribute(x, perturbations_per_eval=4)
