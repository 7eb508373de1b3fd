"""Targets on models that aggregate their batch (Captum's aggregated-output mode): a scalar, or a
fixed-size output such as Tensor[1, K] or Tensor[K] for the whole batch, indexed with ``target``
as Captum's ``_select_targets`` does. FeatureAblation, Occlusion, Lime and KernelShap are compared
with Captum's classes on the same fresh random inputs: equal attributions, or errors of the class
Captum raises (AssertionError / IndexError), whose message names ``target``."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import pyxai
from pyxai.perturbation._captum import AggregateOutputError, CaptumIndexError, select_target
from tests.gradient._models import randomise_bn

captum_attr = pytest.importorskip("captum.attr")

K = 3


def _lin(g: torch.Generator, k: int = K, d: int = 6) -> nn.Module:
    m = nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, k)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return m


def _aggregate(m: nn.Module, kind: str):
    """The model wrapped to aggregate its batch: ``kind`` names the output's shape."""
    return {
        "0d": lambda x: m(x).sum(),
        "1xK": lambda x: m(x).sum(0, keepdim=True),
        "K": lambda x: m(x).amax(0),
        "1xKx2": lambda x: torch.stack([m(x), m(x) ** 2], -1).sum(0, keepdim=True),
        "2xK": lambda x: m(x)[:2] - m(x)[2:4],  # 2 rows for a batch of 4
        "flat": lambda x: m(x).reshape(-1),  # grows with the batch, but not one row per sample
    }[kind]


def _run(lib, cls: str, f, x: torch.Tensor, window: tuple = (2,), strides=1, **kw):
    """The attribution of ``lib``'s ``cls``, or the exception it raised."""
    try:
        if cls == "Occlusion":
            return getattr(lib, cls)(f).attribute(x, sliding_window_shapes=window,
                                                  strides=strides, **kw)
        return getattr(lib, cls)(f).attribute(x, **kw)
    except Exception as e:  # noqa: BLE001 - compared with Captum's below
        return e


def _same(ours, ref, tol: float = 1e-5) -> None:
    if isinstance(ref, Exception):
        assert isinstance(ours, Exception), f"Captum raised {ref!r}, pyxai returned a result"
        assert isinstance(ours, type(ref)), (ours, ref)
        return
    assert isinstance(ours, torch.Tensor), f"pyxai raised {ours!r}, Captum returned a result"
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, (ours.shape, ref.shape)
    # absolute rounding follows the map's scale: a small value summed from large output
    # differences carries their rounding (CI seed 1180082425: 1.07e-6 off on a Shapley map of
    # values up to 12 in float32)
    scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
    torch.testing.assert_close(ours, ref, atol=tol * scale, rtol=tol)


TARGETS = [None, 1, -1, (1,), (1, 0), (), [1], [(1,)], [(2, 1)], [1, 2], torch.tensor(2),
           torch.tensor([1]), torch.tensor([0, 2]), 7]


@pytest.mark.parametrize("cls", ["FeatureAblation", "Occlusion"])
@pytest.mark.parametrize("kind", ["0d", "1xK", "K", "1xKx2", "2xK", "flat"])
def test_targets_equal_captum(rng, cls, kind):
    f = _aggregate(_lin(rng), kind)
    x = torch.randn(4, 6, generator=rng)  # K != B: a Tensor[K] output is not one row per sample
    mask = torch.randint(0, 3, (1, 6), generator=rng)
    extra = {"feature_mask": mask} if cls == "FeatureAblation" else {}
    results = 0
    for target in TARGETS:
        for ppe in (1, 2, 5):
            kw = dict(target=target, perturbations_per_eval=ppe, **extra)
            ours, ref = _run(pyxai, cls, f, x, **kw), _run(captum_attr, cls, f, x, **kw)
            _same(ours, ref)
            results += isinstance(ours, torch.Tensor)
    assert results >= {"0d": 1, "K": 2, "flat": 6}.get(kind, 8)  # not only errors compared


def test_target_on_1xK_output_is_its_column(rng):
    """target=c on a Tensor[1, K] output: one attribution row, the ablation drop of column c."""
    m = _lin(rng)
    x = torch.randn(3, 6, generator=rng)
    c = int(torch.randint(0, K, (1,), generator=rng))
    ours = pyxai.FeatureAblation(lambda t: m(t).sum(0, keepdim=True)).attribute(x, target=c)
    col = pyxai.FeatureAblation(lambda t: m(t)[:, c].sum()).attribute(x)
    assert ours.shape == (1, 6)
    torch.testing.assert_close(ours, col.reshape(1, 6))
    ref = captum_attr.FeatureAblation(lambda t: m(t).sum(0, keepdim=True)).attribute(x, target=c)
    _same(ours, ref)


@pytest.mark.parametrize("ppe", [1, 3])
def test_resnet_summed_over_batch_equal_captum(rng, ppe):
    """A torchvision model (random weights, randomised BatchNorm statistics) wrapped to sum its
    batch: target indexes the Tensor[1, K] total. ppe > 1 is Captum's error, except on an output
    that grows with the batch."""
    net = randomise_bn(torchvision.models.resnet18(num_classes=5), rng).eval()
    x = torch.randn(2, 3, 16, 16, generator=rng)
    mask = (torch.arange(16)[:, None] // 8 * 2 + torch.arange(16)[None] // 8).expand(1, 3, 16, 16)
    c = int(torch.randint(0, 5, (1,), generator=rng))
    occ = dict(window=(3, 6, 6), strides=(3, 5, 5))
    for f, target, grows in ((lambda t: net(t).sum(0, keepdim=True), c, False),
                             (lambda t: net(t).sum(0, keepdim=True), [(c,)], False),
                             (lambda t: net(t).reshape(-1), (), True)):
        kw = dict(target=target, perturbations_per_eval=ppe)
        for cls, extra in (("FeatureAblation", {"feature_mask": mask}), ("Occlusion", occ)):
            ours = _run(pyxai, cls, f, x, **extra, **kw)
            ref = _run(captum_attr, cls, f, x, **extra, **kw)
            _same(ours, ref, 1e-4)
            assert isinstance(ours, torch.Tensor) == (ppe == 1 or grows), ours


@pytest.mark.parametrize("cls", ["Lime", "KernelShap"])
@pytest.mark.parametrize("kind", ["0d", "1xK", "K"])
def test_lime_targets_equal_captum(rng, cls, kind):
    """Lime / KernelShap explain the one value the target selects in the batch's output."""
    f = _aggregate(_lin(rng, d=5), kind)
    x = torch.randn(4, 5, generator=rng)  # K != B: a Tensor[K] output is not one row per sample
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    for target in (None, 1, (2,), [1], torch.tensor(0), 9):
        for ppe in (1, 2):
            kw = dict(target=target, perturbations_per_eval=ppe, n_samples=12,
                      feature_mask=torch.tensor([[0, 0, 1, 2, 2]]))
            torch.manual_seed(seed)
            ours = _run(pyxai, cls, f, x, **kw)
            torch.manual_seed(seed)
            ref = _run(captum_attr, cls, f, x, **kw)
            _same(ours, ref, 1e-5 if cls == "Lime" else 1e-3)


def test_bad_targets_name_target(rng):
    m = _lin(rng)
    x = torch.randn(4, 6, generator=rng)
    fa = pyxai.FeatureAblation
    with pytest.raises(CaptumIndexError, match="target=1 cannot index the 0-d output"):
        fa(lambda t: m(t).sum()).attribute(x, target=1)
    with pytest.raises(IndexError, match="target=7 is out of range"):  # Captum: IndexError
        fa(lambda t: m(t).sum(0, keepdim=True)).attribute(x, target=7)
    with pytest.raises(AssertionError, match=r"target=1 indexes 1 dims but the output of shape \(3,\)"):
        fa(lambda t: m(t).sum(0)).attribute(x, target=1)
    with pytest.raises(AssertionError, match="target has 2 entries but the output"):
        fa(lambda t: m(t).sum(0, keepdim=True)).attribute(x, target=[1, 2])
    with pytest.raises(TypeError, match="target must hold integer indices"):
        fa(lambda t: m(t).sum(0, keepdim=True)).attribute(x, target=torch.tensor(1.0))
    with pytest.raises(TypeError, match="target must be an int, a tuple"):
        fa(lambda t: m(t).sum(0, keepdim=True)).attribute(x, target=True)
    with pytest.raises(AggregateOutputError, match="perturbations_per_eval=1"):
        fa(lambda t: m(t).sum(0, keepdim=True)).attribute(x, target=1, perturbations_per_eval=2)


def test_select_target_forms(rng):
    out = torch.randn(2, 3, 4, generator=rng)
    torch.testing.assert_close(select_target(out, 1), out[:, 1])
    torch.testing.assert_close(select_target(out, (1, 2)), out[:, 1, 2])
    torch.testing.assert_close(select_target(out, [(0, 1), (2, 3)]),
                               torch.stack([out[0, 0, 1], out[1, 2, 3]]))
    flat = out[:, :, 0]
    torch.testing.assert_close(select_target(flat, [2, 0]), flat[[0, 1], [2, 0]])
    torch.testing.assert_close(select_target(flat, torch.tensor([1, 2])), flat[[0, 1], [1, 2]])
    assert select_target(out, None) is out
