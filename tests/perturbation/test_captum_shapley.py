"""ShapleyValueSampling: parity with Captum 0.9 (same ``torch.manual_seed`` before both: the
permutations are drawn as Captum draws them, so the numbers are equal, not only statistically),
on a torchvision ResNet-18 with random weights and randomised BatchNorm statistics and on tuple
inputs; exactness on an additive model (Shapley values of a linear model are exact)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import pyxai
from tests.gradient._models import randomise_bn

captum_attr = pytest.importorskip("captum.attr")


def _close(a, b, tol: float = 1e-5) -> None:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        torch.testing.assert_close(x, y, atol=tol, rtol=tol)


def test_shapley_equal_captum_resnet18(rng):
    m = randomise_bn(torchvision.models.resnet18(num_classes=5), rng).eval()
    x = torch.randn(2, 3, 16, 16, generator=rng)
    cells = torch.arange(16)[:, None] // 8 * 2 + torch.arange(16)[None] // 8
    mask = cells.expand(1, 3, 16, 16).contiguous()
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    kw = dict(target=torch.tensor([1, 3]), feature_mask=mask, n_samples=3, baselines=0.25)
    torch.manual_seed(seed)
    ours = pyxai.ShapleyValueSampling(m).attribute(x, perturbations_per_eval=5, **kw)
    torch.manual_seed(seed)
    ref = captum_attr.ShapleyValueSampling(m).attribute(x, **kw)
    _close(ours, ref, 1e-4)


def test_shapley_tuple_inputs_shared_and_per_sample_masks_equal_captum(rng):
    w1, w2 = torch.randn(4, 3, generator=rng), torch.randn(2, 3, generator=rng)

    def f(a, b, scale):
        return torch.tanh(a @ w1) * (b @ w2) * scale

    a, b = torch.randn(3, 4, generator=rng), torch.randn(3, 2, generator=rng)
    masks = (torch.tensor([[0, 1, 1, 2], [2, 2, 0, 1], [0, 0, 1, 1]]), torch.tensor([[3, 0]]))
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    kw = dict(target=2, feature_mask=masks, n_samples=4, additional_forward_args=(2.0,))
    torch.manual_seed(seed)
    ours = pyxai.ShapleyValueSampling(f).attribute((a, b), perturbations_per_eval=3, **kw)
    torch.manual_seed(seed)
    ref = captum_attr.ShapleyValueSampling(f).attribute((a, b), **kw)
    _close(ours, ref)


def test_shapley_exact_on_additive_model(rng):
    lin = nn.Linear(6, 2).eval()
    x = torch.randn(4, 6, generator=rng)
    attr = pyxai.ShapleyValueSampling(lin).attribute(x, target=1, n_samples=2,
                                                     perturbations_per_eval=4)
    # each feature's Shapley value of a linear score is w_i * (x_i - 0), whatever the order
    _close(attr, (lin.weight[1] * x).detach())


def test_shapley_bad_arguments(rng):
    lin = nn.Linear(3, 2)
    x = torch.randn(2, 3, generator=rng)
    svs = pyxai.ShapleyValueSampling(lin)
    with pytest.raises(ValueError, match="n_samples"):
        svs.attribute(x, target=0, n_samples=0)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        svs.attribute(x, target=0, perturbations_per_eval=0)
    with pytest.raises(ValueError, match=">= 0"):
        svs.attribute(x, target=0, feature_mask=torch.tensor([[0, -1, 1]]))
    with pytest.raises(ValueError, match="NaN"):
        svs.attribute(torch.full((2, 3), float("nan")), target=0)
