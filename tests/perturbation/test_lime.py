"""Lime and KernelShap: parity with Captum 0.9 (the same ``torch.manual_seed`` before both gives
the same samples, so the numbers are equal, not only statistically, and the global generator ends
in the same state), on a torchvision ResNet-18 with random weights and BatchNorm statistics, the
bundled demo model, tuple inputs, feature masks and batches; exact answers on linear models;
pyxai's closed-form regression against scikit-learn's; Captum's own surrogate objects; the
model left as found; clear errors."""

from __future__ import annotations

import sys

import pytest
import torch
import torchvision
from torch import nn

import pyxai
from pyxai.engine.view import same_state, state_fingerprint
from pyxai.perturbation import linear_model
from pyxai.perturbation.linear_model import LinearRegression
from pyxai.registry import _grid_mask
from tests.gradient._models import randomise_bn

captum_attr = pytest.importorskip("captum.attr")
pytest.importorskip("sklearn")
METHODS = ["Lime", "KernelShap"]


def _close(a, b, tol: float) -> None:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        torch.testing.assert_close(x, y, atol=tol * (1 + float(y.abs().max())), rtol=tol)


def _both(cls: str, model, *args, seed: int, init: dict | None = None, **kw):
    """pyxai's and Captum's attributions from the same seed, and the generator after each."""
    torch.manual_seed(seed)
    ours = getattr(pyxai, cls)(model, **(init or {})).attribute(*args, **kw)
    after_ours = torch.rand(2)
    torch.manual_seed(seed)
    ref = getattr(captum_attr, cls)(model, **(init or {})).attribute(*args, **kw)
    assert torch.equal(after_ours, torch.rand(2)), "the global generator ends elsewhere than Captum's"
    return ours, ref


# Lime's Lasso (scikit-learn, the same float32 data) is Captum's to the last bit; KernelShap's
# closed-form float64 regression equals scikit-learn's float32 one to float32 accuracy
TOL = {"Lime": 1e-5, "KernelShap": 1e-3}


@pytest.mark.parametrize("cls", METHODS)
def test_equal_captum_resnet18_batch(rng, cls):
    m = randomise_bn(torchvision.models.resnet18(num_classes=5), rng).eval()
    x = torch.randn(2, 3, 16, 16, generator=rng)
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    ours, ref = _both(cls, m, x, seed=seed, target=torch.tensor([1, 3]),
                      feature_mask=_grid_mask(x, 3), n_samples=14, baselines=0.25,
                      perturbations_per_eval=5)
    _close(ours, ref, TOL[cls])


@pytest.mark.parametrize("cls", METHODS)
def test_equal_captum_demo_model(rng, cls):
    m = pyxai.models.demo_cnn()
    x, labels, _ = pyxai.data.shapes(2, seed=int(torch.randint(0, 1000, (1,), generator=rng)))
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    ours, ref = _both(cls, m, x, seed=seed, target=labels, feature_mask=_grid_mask(x, 4),
                      n_samples=24, perturbations_per_eval=8)
    _close(ours, ref, TOL[cls])
    assert ours.abs().sum() > 0


@pytest.mark.parametrize("cls", METHODS)
def test_equal_captum_tuple_inputs_masks_and_args(rng, cls):
    w1, w2 = torch.randn(4, 3, generator=rng), torch.randn(2, 3, generator=rng)

    def f(a, b, scale):
        return torch.tanh(a @ w1) * (b @ w2) * scale

    a, b = torch.randn(3, 4, generator=rng), torch.randn(3, 2, generator=rng)
    # per-sample masks for a, one shared mask for b, ids shared across the inputs
    masks = (torch.tensor([[0, 1, 1, 2], [2, 2, 0, 1], [0, 0, 1, 1]]), torch.tensor([[3, 0]]))
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    kw = dict(target=2, additional_forward_args=(2.0,), n_samples=20, perturbations_per_eval=3,
              baselines=(0.5, torch.randn(1, 2, generator=rng)))
    ours, ref = _both(cls, f, (a, b), seed=seed, feature_mask=masks, **kw)
    _close(ours, ref, TOL[cls])
    coefs, ref_coefs = _both(cls, f, (a, b), seed=seed, feature_mask=masks,
                             return_input_shape=False, **kw)
    assert coefs.shape == (3, 4)
    _close(coefs, ref_coefs, TOL[cls])
    # default mask: one feature per scalar of both inputs, single example
    ours, ref = _both(cls, f, (a[:1], b[:1]), seed=seed, **kw)
    _close(ours, ref, TOL[cls])


@pytest.mark.parametrize("cls", METHODS)
def test_equal_captum_model_aggregating_its_batch(rng, cls):
    lin = nn.Linear(5, 1)

    def total(x):
        return lin(x).sum()

    x = torch.randn(3, 5, generator=rng)
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    ours, ref = _both(cls, total, x, seed=seed, feature_mask=torch.tensor([[0, 0, 1, 2, 2]]),
                      n_samples=16)
    assert ours.shape == (1, 5)  # one example: Captum's leading dimension of one
    _close(ours, ref, TOL[cls])


def test_lime_with_captum_surrogate_kernel_and_sampler(rng):
    from captum._utils.models.linear_model import SkLearnLasso, SkLearnRidge

    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    x = torch.randn(2, 6, generator=rng)

    def coin_flips(original, **kwargs):  # a Captum-style perturb_func
        return torch.bernoulli(torch.full((1, kwargs["num_interp_features"]), 0.3))

    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    for model in (SkLearnLasso(alpha=0.05), SkLearnRidge(alpha=0.5)):
        init = dict(interpretable_model=model, perturb_func=coin_flips,
                    similarity_func=captum_attr._core.lime.get_exp_kernel_similarity_function(
                        "euclidean", 3.0))
        ours, ref = _both("Lime", net, x, seed=seed, init=init, target=1, n_samples=15,
                          perturbations_per_eval=4)
        _close(ours, ref, 1e-5)


def _input_space_sampler(original, **kw):
    """Perturbed model inputs (Captum's LimeBase in input space): features off with p = 0.4."""
    on = torch.bernoulli(torch.full((1, kw["num_interp_features"]), 0.6))[0][kw["feature_mask"]]
    return on * original + (1 - on) * kw["baselines"]


def _back_to_interp(sample, original, **kw):
    """Tensor[1, F]: which features of ``sample`` still equal the original's."""
    same = (sample == original).float()
    f = kw["num_interp_features"]
    hits = torch.zeros(f).index_add_(0, kw["feature_mask"].flatten(), same.flatten())
    return (hits == torch.bincount(kw["feature_mask"].flatten(), minlength=f)).float()[None]


def _finite_sampler(original, **kw):
    for _ in range(7):  # a generator that ends before n_samples
        yield torch.bernoulli(torch.full((1, kw["num_interp_features"]), 0.5))


@pytest.mark.parametrize("space", ["interpretable", "input"])
def test_lime_base_equals_captum(rng, space):
    from captum._utils.models.linear_model import SkLearnLasso

    net = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)).eval()
    x = torch.randn(1, 6, generator=rng)
    mask = torch.tensor([[0, 0, 1, 2, 2, 3]])
    kw = dict(target=2, n_samples=13, perturbations_per_eval=4, feature_mask=mask,
              baselines=0.5, num_interp_features=4)
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    sim = captum_attr._core.lime.get_exp_kernel_similarity_function("euclidean", 2.0)
    results = []
    for lib, funcs in ((pyxai, pyxai.perturbation.lime_base), (captum_attr, captum_attr._core.lime)):
        if space == "interpretable":
            args = (funcs.default_perturb_func, True, funcs.default_from_interp_rep_transform, None)
        else:
            args = (_input_space_sampler, False, None, _back_to_interp)
        torch.manual_seed(seed)
        results.append(lib.LimeBase(net, SkLearnLasso(alpha=0.05), sim, *args).attribute(x, **kw))
    _close(results[0], results[1], 1e-5)
    assert results[0].shape == (1, 4)
    with pytest.warns(UserWarning, match="Generator completed"):
        coefs = pyxai.LimeBase(net, LinearRegression(), sim, _finite_sampler, True,
                               pyxai.perturbation.lime_base.default_from_interp_rep_transform,
                               None).attribute(x, **kw)
    assert coefs.shape == (1, 4) and torch.isfinite(coefs).all()


def test_linear_model_attributions_are_exact(rng):
    lin = nn.Linear(4, 3).eval()
    x, base = torch.randn(2, 4, generator=rng), torch.randn(1, 4, generator=rng)
    expected = (lin.weight[2] * (x - base)).detach()  # the Shapley values of a linear score
    ks = pyxai.KernelShap(lin).attribute(x, baselines=base, target=2, n_samples=40,
                                         perturbations_per_eval=8)
    _close(ks, expected, 1e-4)
    lime = pyxai.Lime(lin, interpretable_model=LinearRegression())
    _close(lime.attribute(x, baselines=base, target=2, n_samples=40), expected, 1e-4)
    # grouped features: the group's weight is the sum of its members' contributions
    mask = torch.tensor([[0, 0, 1, 1]])
    coefs = pyxai.KernelShap(lin).attribute(x, baselines=base, target=2, feature_mask=mask,
                                            n_samples=10, return_input_shape=False)
    _close(coefs, torch.stack([expected[:, :2].sum(1), expected[:, 2:].sum(1)], 1), 1e-4)


def test_batch_is_each_example_explained_in_turn(rng):
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
    x = torch.randn(3, 5, generator=rng)
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    for cls in METHODS:
        torch.manual_seed(seed)
        batch = getattr(pyxai, cls)(net).attribute(x, target=1, n_samples=12,
                                                   perturbations_per_eval=4)
        torch.manual_seed(seed)
        one = getattr(pyxai, cls)(net)
        single = torch.cat([one.attribute(x[i:i + 1], target=1, n_samples=12) for i in range(3)])
        _close(batch, single, 1e-5)


def test_linear_regression_equals_sklearn(rng):
    from sklearn.linear_model import LinearRegression as SkLR

    for n, f in ((30, 5), (6, 9)):  # over- and under-determined (minimum-norm solution)
        x = (torch.rand(n, f, generator=rng) > 0.5).double()
        y = torch.randn(n, generator=rng, dtype=torch.float64) * 10
        w = torch.rand(n, generator=rng, dtype=torch.float64) + 0.1
        w[0] = 1e6
        ours = LinearRegression()
        ours.fit([(x, y, w)])
        ref = SkLR().fit(x.numpy(), y.numpy(), sample_weight=w.numpy())
        torch.testing.assert_close(ours.representation()[0].double(),
                                   torch.from_numpy(ref.coef_), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours.bias().double(), torch.tensor([ref.intercept_]),
                                   atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(ours(x.float())[:, 0].double(),
                                   torch.from_numpy(ref.predict(x.numpy())), atol=1e-3, rtol=1e-4)


def test_model_left_as_found(rng):
    m = randomise_bn(torchvision.models.resnet18(num_classes=4), rng).train()
    x = torch.randn(2, 3, 16, 16, generator=rng)
    before = state_fingerprint(m)
    with pytest.warns(UserWarning, match="training mode"):
        attr = pyxai.KernelShap(m).attribute(x, target=0, feature_mask=_grid_mask(x, 2),
                                             n_samples=6, perturbations_per_eval=6)
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    assert same_state(before, state_fingerprint(m)) == []


def test_progress_and_captum_surface(rng, capsys):
    lin = nn.Linear(3, 2).eval()
    x = torch.randn(1, 3, generator=rng)
    for cls, name in (("Lime", "Lime attribution"), ("KernelShap", "Kernel Shap attribution")):
        explainer = getattr(pyxai, cls)(lin)
        explainer.attribute(x, target=0, n_samples=5, show_progress=True)
        assert f"{name}: 100%" in capsys.readouterr().err
        assert not explainer.multiplies_by_inputs and not explainer.has_convergence_delta()
        with pytest.raises(NotImplementedError):
            explainer.attribute_future()


def test_default_lasso_needs_sklearn(monkeypatch):
    linear_model._sklearn.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    try:
        with pytest.raises(ImportError, match=r"pyxai-attribution\[lime\]"):
            pyxai.Lime(nn.Linear(3, 2))
        pyxai.KernelShap(nn.Linear(3, 2))  # its regression is pyxai's own
    finally:
        linear_model._sklearn.cache_clear()


@pytest.mark.parametrize("cls", METHODS)
def test_bad_arguments(rng, cls):
    lin = nn.Linear(3, 2).eval()
    x = torch.randn(2, 3, generator=rng)
    explainer = getattr(pyxai, cls)(lin)
    with pytest.raises(ValueError, match="NaN"):
        explainer.attribute(torch.full((2, 3), float("nan")), target=0)
    with pytest.raises(ValueError, match="n_samples"):
        explainer.attribute(x, target=0, n_samples=0)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        explainer.attribute(x, target=0, perturbations_per_eval=0)
    with pytest.raises(ValueError, match="feature_mask"):
        explainer.attribute(x, target=0, feature_mask=torch.tensor([[0, 1]]))
    with pytest.raises(TypeError, match="feature_mask"):
        explainer.attribute(x, target=0, feature_mask=torch.tensor([[0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="target"):
        explainer.attribute(x, target=5)
    with pytest.raises(ValueError, match="perturbations_per_eval=1"):  # one value per batch
        getattr(pyxai, cls)(lambda t: lin(t).sum()).attribute(x, perturbations_per_eval=2)
    with pytest.raises(TypeError, match="interpretable_model"):
        pyxai.Lime(lin, interpretable_model=object())
    if cls == "KernelShap":
        with pytest.raises(ValueError, match="at least 2"):
            explainer.attribute(x, target=0, feature_mask=torch.tensor([[0, 0, 0]]))
