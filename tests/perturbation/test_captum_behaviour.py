"""FeatureAblation / Occlusion on the input forms and model kinds Captum accepts: integer and bool
inputs, models that aggregate their batch (a scalar or a fixed-size output), sparse and empty
inputs, progress bars, Captum's NoiseTunnel around pyxai's classes, Captum's assertion errors.
Each compares with Captum's class on the same random inputs (pyxai's own tests of the behaviours
Captum's test suite checks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyxai
from pyxai.perturbation._captum import AggregateOutputError, CaptumArgumentError

captum_attr = pytest.importorskip("captum.attr")


def _lin(g: torch.Generator, k: int = 4, d: int = 6) -> nn.Module:
    m = nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, k)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return m


def _close(a, b, tol: float = 1e-5) -> None:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape, (x.shape, y.shape)
        assert x.dtype == y.dtype, (x.dtype, y.dtype)
        torch.testing.assert_close(x, y, atol=tol, rtol=tol)


def test_integer_inputs_float_baseline_equal_captum(rng):
    m = _lin(rng)

    def f(a, b):  # integer inputs, float computation inside the model
        return m(torch.cat([a.float(), b], 1))

    a = torch.randint(-5, 5, (3, 2), generator=rng)
    b = torch.randint(-5, 5, (3, 4), generator=rng).float()
    kw = dict(target=1, baselines=(0.5, 1.25))
    ours = pyxai.FeatureAblation(f).attribute((a, b), perturbations_per_eval=2, **kw)
    ref = captum_attr.FeatureAblation(f).attribute((a, b), **kw)
    _close(ours, ref)
    assert ours[0].dtype == torch.float32  # attributions in the output's dtype, as Captum


@pytest.mark.parametrize("baseline", [None, 0.5, 2])
def test_occlusion_integer_inputs_equal_captum(rng, baseline):
    def f(a):
        return (a.float() ** 2).sum(1, keepdim=True) - a[:, :2].float()

    x = torch.randint(0, 5, (2, 6), generator=rng)
    ours = pyxai.Occlusion(f).attribute(x, sliding_window_shapes=(2,), baselines=baseline,
                                        target=1, perturbations_per_eval=3)
    ref = captum_attr.Occlusion(f).attribute(x, sliding_window_shapes=(2,), baselines=baseline,
                                             target=1)
    _close(ours, ref)


def test_bool_input_keeps_bool_with_default_baseline(rng):
    seen = []

    def f(x):
        seen.append(x.dtype)
        return x.float().sum(1, keepdim=True) * 3.0

    x = torch.rand(2, 5, generator=rng) > 0.5
    mask = torch.tensor([[0, 0, 1, 2, 2]])
    ours = pyxai.FeatureAblation(f).attribute(x, feature_mask=mask, perturbations_per_eval=2)
    ref = captum_attr.FeatureAblation(f).attribute(x, feature_mask=mask)
    assert set(seen) == {torch.bool}  # the default baseline of a bool input is False
    _close(ours, ref)


@pytest.mark.parametrize("kind", ["float", "0d", "1d", "1xK", "K"])
def test_aggregated_output_equal_captum(rng, kind):
    m = _lin(rng, k=3)
    agg = {
        "float": lambda x: float(m(x).sum()),
        "0d": lambda x: m(x).sum(),
        "1d": lambda x: m(x).sum().reshape(1),
        "1xK": lambda x: m(x).sum(0, keepdim=True),
        "K": lambda x: m(x).amax(0),
    }[kind]
    x = torch.randn(4, 6, generator=rng)
    mask = torch.randint(0, 3, (1, 6), generator=rng)
    for fm in (None, mask):
        ours = pyxai.FeatureAblation(agg).attribute(x, feature_mask=fm)
        ref = captum_attr.FeatureAblation(agg).attribute(x, feature_mask=fm)
        _close(ours, ref)
        n_out = {"float": 1, "0d": 1, "1d": 1, "1xK": 3, "K": 3}[kind]
        assert ours.shape == (n_out, 6)


def test_aggregated_output_errors(rng):
    m = _lin(rng)
    x = torch.randn(3, 6, generator=rng)
    fa = pyxai.FeatureAblation(lambda t: m(t).sum())
    with pytest.raises(AggregateOutputError, match="perturbations_per_eval=1"):
        fa.attribute(x, perturbations_per_eval=2)
    with pytest.raises(AssertionError):  # what Captum raises, for code written against Captum
        fa.attribute(x, perturbations_per_eval=3)
    with pytest.raises(IndexError, match="target=0 cannot index the 0-d output"):  # as Captum
        fa.attribute(x, target=0)
    with pytest.raises(ValueError, match="first dim of 1"):  # per-sample masks need rows
        pyxai.FeatureAblation(lambda t: m(t).sum(0)).attribute(
            x, feature_mask=torch.arange(6).repeat(3, 1))


def test_sparse_and_empty_inputs_equal_captum(rng):
    w = torch.randn(3, generator=rng)

    def f(dense, sparse):  # a model that sums over its batch and reads a list of ids
        return (dense @ w).sum() + sparse.float().sum()

    dense = torch.randn(2, 3, generator=rng)
    for sparse in (torch.randint(0, 9, (7,), generator=rng), torch.tensor([])):
        ours = pyxai.FeatureAblation(f).attribute((dense, sparse))
        ref = captum_attr.FeatureAblation(f).attribute((dense, sparse))
        _close(ours, ref)


@pytest.mark.parametrize("cls", ["FeatureAblation", "Occlusion"])
def test_show_progress_reaches_100_percent(rng, capsys, cls):
    m = _lin(rng)
    x = torch.randn(2, 6, generator=rng)
    for ppe in (1, 4):
        kw = {"sliding_window_shapes": (2,)} if cls == "Occlusion" else {}
        ours = getattr(pyxai, cls)(m).attribute(x, target=0, perturbations_per_eval=ppe,
                                                 show_progress=True, **kw)
        ref = getattr(captum_attr, cls)(m).attribute(x, target=0, **kw)
        _close(ours, ref)
        err = capsys.readouterr().err
        label = "Feature Ablation" if cls == "FeatureAblation" else "Occlusion"
        assert f"{label} attribution: 100%" in err


def test_noise_tunnel_expands_per_sample_feature_mask(rng):
    m = _lin(rng)
    x = torch.randn(3, 6, generator=rng)
    mask = torch.randint(0, 4, (3, 6), generator=rng)  # one mask per sample
    kw = dict(nt_samples=4, stdevs=0.1, target=2, feature_mask=mask)
    torch.manual_seed(7)
    ours = pyxai.NoiseTunnel(pyxai.FeatureAblation(m)).attribute(x, **kw)
    torch.manual_seed(7)  # same global RNG use as Captum: same noise
    ref = captum_attr.NoiseTunnel(captum_attr.FeatureAblation(m)).attribute(x, **kw)
    _close(ours, ref)


def test_captum_noise_tunnel_wraps_pyxai_methods(rng):
    m = _lin(rng)
    x = torch.randn(2, 6, generator=rng)
    for ours_m, ref_m in ((pyxai.FeatureAblation(m), captum_attr.FeatureAblation(m)),
                          (pyxai.Saliency(m), captum_attr.Saliency(m))):
        torch.manual_seed(3)
        ours = captum_attr.NoiseTunnel(ours_m).attribute(x, nt_samples=3, stdevs=0.1, target=1)
        torch.manual_seed(3)
        ref = captum_attr.NoiseTunnel(ref_m).attribute(x, nt_samples=3, stdevs=0.1, target=1)
        _close(ours, ref)


def test_occlusion_0d_windows_equal_captum(rng):
    def f(a, b):
        return torch.relu(a - 2 * b) * a

    a, b = torch.randn(5, generator=rng), torch.randn(5, generator=rng)
    ours = pyxai.Occlusion(f).attribute((a, b), sliding_window_shapes=((), ()))
    ref = captum_attr.Occlusion(f).attribute((a, b), sliding_window_shapes=((), ()))
    _close(ours, ref)


@pytest.mark.parametrize("windows,strides", [
    ((1, 2, 2), (1, 2)),            # too few stride dims
    (((1, 2),), None),              # too few window dims
    (((1, 1, 2),), 2),              # a stride larger than the window dim
    (((2, 1, 2),), 2),              # a window larger than the input dim
])
def test_occlusion_bad_windows_are_value_and_assertion_errors(rng, windows, strides):
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()).eval()
    x = torch.randn(1, 1, 4, 4, generator=rng)
    with pytest.raises(CaptumArgumentError):
        pyxai.Occlusion(conv).attribute(x, sliding_window_shapes=windows, strides=strides,
                                        target=0)
    with pytest.raises(AssertionError):  # Captum's error type for the same call
        captum_attr.Occlusion(conv).attribute(x, sliding_window_shapes=windows, strides=strides,
                                              target=0)


def test_captum_surface_of_the_perturbation_classes(rng):
    m = _lin(rng)
    for name in ("FeatureAblation", "Occlusion"):
        ours, ref = getattr(pyxai, name)(m), getattr(captum_attr, name)(m)
        assert ours.multiplies_by_inputs == ref.multiplies_by_inputs
        assert ours.has_convergence_delta() == ref.has_convergence_delta()
        with pytest.raises(NotImplementedError):
            ours.attribute_future(torch.randn(1, 6, generator=rng))
