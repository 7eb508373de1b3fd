"""ShapleyValues (exact: every feature permutation) and Captum's multi-task output (``target=None``
on a per-sample output Tensor[B, *D]: attributions ``[B, *D, *input dims]``) of ShapleyValues and
ShapleyValueSampling, against Captum 0.9 on the same fresh random inputs. ShapleyValueSampling runs
from the same ``torch.manual_seed`` for both libraries (the permutations are drawn as Captum draws
them); ShapleyValues draws nothing."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

import pyxai
from pyxai.perturbation._captum import AggregateOutputError, CaptumArgumentError
from tests.perturbation.test_aggregated_targets import _lin, _same

captum_attr = pytest.importorskip("captum.attr")


def _both(cls: str, f, inputs, seed: int = 0, **kw):
    """(pyxai's, Captum's) ``cls`` attribution, or the exception each raised, from the same
    global seed."""
    out = []
    for lib in (pyxai, captum_attr):
        torch.manual_seed(seed)
        try:
            out.append(getattr(lib, cls)(f).attribute(inputs, **kw))
        except Exception as e:  # noqa: BLE001 - compared below
            out.append(e)
    return out


def _same_all(ours, ref, tol: float = 1e-6) -> None:
    if isinstance(ref, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(ref), (ours, ref)
        for o, r in zip(ours, ref):
            _same(o, r, tol)
    else:
        _same(ours, ref, tol)


@pytest.mark.parametrize("n_feat", [3, 4, 5])
@pytest.mark.parametrize("ppe", [1, 2, 7])
def test_shapley_values_equal_captum(rng, n_feat, ppe):
    model = _lin(rng)
    x = torch.randn(3, 6, generator=rng)
    mask = torch.randint(0, n_feat, (1, 6), generator=rng)
    mask[0, :n_feat] = torch.arange(n_feat)  # every id present
    base = torch.randn(1, 6, generator=rng)
    # ppe > 1: Captum batches the steps of one permutation, pyxai fills every batch across
    # permutations, and a float32 Linear's rows change in the last bits with the batch's size;
    # measured over 150 seeds x 3 features x ppe 7: max 1.9e-6 apart (median 9.5e-7), so 1e-5.
    tol = 1e-6 if ppe == 1 else 1e-5
    for target in (1, [0, 2, 1], torch.tensor([2, 0, 1]), None):
        for kw in (dict(baselines=base), dict(baselines=0.5), {}):
            ours, ref = _both("ShapleyValues", model, x, target=target, feature_mask=mask,
                              perturbations_per_eval=ppe, **kw)
            _same(ours, ref, tol)
    # exact: efficiency holds, sum of attributions = f(x) - f(baseline)
    attr = pyxai.ShapleyValues(model).attribute(x, base, target=1, feature_mask=mask)
    per_feat = torch.stack([attr[:, (mask[0] == i)][:, 0] for i in range(n_feat)], 1)
    with torch.no_grad():
        gap = model(x)[:, 1] - model(base.expand_as(x))[:, 1]
    torch.testing.assert_close(per_feat.sum(1), gap, atol=1e-5, rtol=1e-5)


def test_shapley_values_tuple_inputs_and_per_sample_masks_equal_captum(rng):
    w1, w2 = torch.randn(3, 4, generator=rng), torch.randn(2, 4, generator=rng)

    def f(a, b, scale):
        return torch.tanh(a.float() @ w1) * (b @ w2) * scale  # [B, 4]

    a = torch.randint(-5, 6, (2, 3), generator=rng)
    b = torch.randn(2, 2, generator=rng)
    shared = (torch.tensor([[0, 1, 1]]), torch.tensor([[2, 0]]))  # id 0 in both inputs
    per_sample = (torch.tensor([[0, 1, 2], [3, 3, 0]]), torch.tensor([[3, 1], [2, 1]]))
    bases = (1, torch.randn(1, 2, generator=rng))
    for masks, target, ppe in itertools.product((shared, per_sample), (2, [1, 3], None), (1, 3)):
        ours, ref = _both("ShapleyValues", f, (a, b), target=target, feature_mask=masks,
                          baselines=bases, additional_forward_args=(1.5,),
                          perturbations_per_eval=ppe)
        _same_all(ours, ref)
        assert ours[0].shape == ((2, 4, 3) if target is None else (2, 3))


@pytest.mark.parametrize("ret", ["tensor", "float", "1d", "expanded"])
def test_shapley_values_aggregated_outputs_equal_captum(rng, ret):
    model = _lin(rng)

    def f(x):
        s = model(x).sum()
        return {"tensor": s, "float": float(s), "1d": s.reshape(1),
                "expanded": torch.stack([s, s * 2, s - 1])}[ret]

    x = torch.randn(4, 6, generator=rng)
    mask = torch.tensor([[0, 0, 1, 2, 3, 3]])
    for target in (None, 1) if ret == "expanded" else (None,):
        ours, ref = _both("ShapleyValues", f, x, target=target, feature_mask=mask,
                          baselines=0.25)
        _same(ours, ref, 1e-6)
    with pytest.raises(AggregateOutputError):
        pyxai.ShapleyValues(f).attribute(x, feature_mask=mask, perturbations_per_eval=2)
    with pytest.raises(CaptumArgumentError):
        pyxai.ShapleyValues(f).attribute(x, feature_mask=mask.expand(4, 6))


@pytest.mark.parametrize("cls", ["ShapleyValues", "ShapleyValueSampling"])
@pytest.mark.parametrize("out_dims", [(4,), (1,), (2, 3)])
@pytest.mark.parametrize("ppe", [1, 3])
def test_multi_task_output_equal_captum(rng, cls, out_dims, ppe):
    """``target=None`` on a Tensor[B, *D] output: one attribution per output element
    ``[B, *D, *input dims]``, Captum's multi-task output (also for D = (1,))."""
    k = math.prod(out_dims)
    model = _lin(rng, k=k, d=8)

    def f(x):
        return model(x.reshape(x.shape[0], -1)).reshape(x.shape[0], *out_dims)

    x = torch.randn(3, 2, 4, generator=rng)
    masks = [None, torch.randint(0, 4, (1, 2, 4), generator=rng),
             torch.randint(0, 3, (3, 2, 4), generator=rng), torch.tensor([[0, 1, 1, 2]])]
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    kw = {} if cls == "ShapleyValues" else {"n_samples": 4}
    for mask in masks:
        if cls == "ShapleyValues" and mask is None:
            mask = torch.arange(8).reshape(2, 4) // 2  # 4 features, not 8
        ours, ref = _both(cls, f, x, seed, feature_mask=mask, baselines=-0.5,
                          perturbations_per_eval=ppe, **kw)
        _same(ours, ref, 1e-6)
        assert ours.shape == (3, *out_dims, 2, 4)


def test_multi_task_matches_one_target_at_a_time(rng):
    model = _lin(rng, k=3)
    x = torch.randn(2, 6, generator=rng)
    mask = torch.tensor([[0, 0, 1, 1, 2, 3]])
    sv = pyxai.ShapleyValues(model)
    every = sv.attribute(x, feature_mask=mask)
    for c in range(3):
        torch.testing.assert_close(every[:, c], sv.attribute(x, target=c, feature_mask=mask))


def test_shapley_values_permutations_and_warning(rng):
    perms = pyxai.ShapleyValues(lambda x: x)._permutations(4, 25)
    assert perms.tolist() == [list(p) for p in itertools.permutations(range(4))]
    # Captum's warning from 10 features (checked on the permutations, not run: 10 * 10! steps)
    with pytest.warns(UserWarning, match="at least 10 features"):
        perms = pyxai.ShapleyValues(lambda x: x)._permutations(10, 25)
    assert perms.shape == (math.factorial(10), 10)
    x = torch.randn(2, 4, generator=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none under 10 features
        out = pyxai.ShapleyValues(lambda x: x.sum(1)).attribute(x, perturbations_per_eval=5)
    torch.testing.assert_close(out, x)  # a linear model: its terms


def test_shapley_values_errors(rng):
    model = _lin(rng)
    x = torch.randn(2, 6, generator=rng)
    sv = pyxai.ShapleyValues(model)
    with pytest.raises(TypeError):
        sv.attribute(x, n_samples=3)  # no n_samples, as Captum
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError):
            sv.attribute(x, target=0, feature_mask=torch.tensor([[0, 0, 1, 1, 2, 2]]),
                         perturbations_per_eval=bad)
    with pytest.raises(ValueError, match=">= 0"):
        sv.attribute(x, target=0, feature_mask=torch.tensor([[0, -1, 1, 1, 2, 2]]))
    with pytest.raises(TypeError):
        sv.attribute(x, target=0, feature_mask=torch.zeros(1, 6))
    with pytest.raises(ValueError):
        sv.attribute(x, target=0, feature_mask=torch.zeros(1, 5, dtype=torch.long))
