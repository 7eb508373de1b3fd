"""BatchNorm folding on a view: the same function, fewer passes, the user's model untouched."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
import torchvision
from torch import nn

import pyxai
from pyxai.engine.fold import _FoldedBatchNorm, _FoldedConv, fold_batch_norm
from pyxai.engine.view import same_state, state_fingerprint
from tests.gradient._models import randomise_bn


def _folded(f: nn.Module) -> int:
    return sum(isinstance(m, _FoldedConv) for m in f.modules())


def _value_and_grad(model, x):
    xi = x.clone().requires_grad_(True)
    out = model(xi)
    (g,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.shape[1], dtype=out.dtype)).sum(),
                               xi)
    return out.detach(), g


MODELS = {
    # name: (builder, input size, BatchNorms that follow a convolution alone)
    "demo_cnn": (lambda g: pyxai.models.demo_cnn(), 64, 9),
    "resnet18": (lambda g: randomise_bn(torchvision.models.resnet18(num_classes=10), g), 64, 20),
    "mobilenet_v3_small": (
        lambda g: randomise_bn(torchvision.models.mobilenet_v3_small(num_classes=10), g), 64, 34),
    # DenseNet's BatchNorms read concatenations (not a convolution) except its stem's
    "densenet121": (lambda g: randomise_bn(torchvision.models.densenet121(num_classes=10), g), 32,
                    None),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_folded_view_computes_the_model(rng, name):
    build, size, expected = MODELS[name]
    model = build(rng).double().eval()
    x = torch.randn(2, 3, size, size, generator=rng, dtype=torch.float64)
    before = state_fingerprint(model)
    f = fold_batch_norm(model, x[:1])
    assert f is not model
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    n = _folded(f)
    if expected is None:
        assert 0 < n < n_bn  # some fold, the ones after a concatenation do not
    else:
        assert n == expected
    assert sum(isinstance(m, _FoldedBatchNorm) for m in f.modules()) == n
    ref_out, ref_grad = _value_and_grad(model, x)
    out, grad = _value_and_grad(f, x)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10 * ref_out.abs().max().item())
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-9 * ref_grad.abs().max().item())
    assert same_state(before, state_fingerprint(model)) == []
    assert not any(p.requires_grad for p in f.parameters())  # input gradients only


class _ConvBn(nn.Module):
    """A 3-channel convolution and a BatchNorm; subclasses wire them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)


class _Residual(_ConvBn):
    """conv -> bn, but the conv's output is also added back (a second reader)."""

    def forward(self, x):
        y = self.conv(x)
        return (self.bn(y) + y).flatten(1)


class _Shared(_ConvBn):
    """One convolution called twice, once into the BatchNorm."""

    def forward(self, x):
        return (self.bn(self.conv(x)) + self.conv(x)).flatten(1)


class _BnFirst(_ConvBn):
    """BatchNorm before the convolution (nothing to fold into)."""

    def forward(self, x):
        return self.conv(self.bn(x)).flatten(1)


class _Routed(_ConvBn):
    """conv -> bn on positive inputs, conv -> neg -> bn otherwise: the wiring depends on x."""

    def forward(self, x):
        y = self.conv(x)
        if bool(x.sum() < 0):
            y = -y
        return self.bn(y).flatten(1)


def _plain(rng) -> nn.Sequential:
    return randomise_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.Flatten()), rng).eval()


@pytest.mark.parametrize("case", ["residual", "shared", "bn_first", "conv_hook", "bn_hook",
                                  "training", "no_running_stats", "callable", "no_bn", "script"])
def test_what_does_not_fold_is_left_as_it_is(rng, case):
    x = torch.randn(2, 3, 8, 8, generator=rng)
    model = {"residual": _Residual, "shared": _Shared, "bn_first": _BnFirst}.get(case)
    model = randomise_bn(model(), rng).eval() if model is not None else _plain(rng)
    if case == "conv_hook":
        model[0].register_forward_hook(lambda m, i, o: None)
    elif case == "bn_hook":
        model[1].register_forward_pre_hook(lambda m, i: None)
    elif case == "training":
        model.train()
    elif case == "no_running_stats":
        model[1] = nn.BatchNorm2d(4, track_running_stats=False).eval()
    elif case == "callable":
        fn = model.forward
        assert fold_batch_norm(fn, x[:1]) is fn
        return
    elif case == "no_bn":
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).eval()
    elif case == "script":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
            model = torch.jit.script(model)
    before = state_fingerprint(model)
    assert fold_batch_norm(model, x[:1]) is model
    assert same_state(before, state_fingerprint(model)) == []


def test_partial_folds_keep_the_rest(rng):
    """A model with one foldable pair and one residual pair folds the first only."""
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), _Residual())
    model = randomise_bn(model, rng).eval()
    x = torch.randn(2, 3, 8, 8, generator=rng)
    f = fold_batch_norm(model, x[:1])
    assert _folded(f) == 1 and isinstance(f[0], _FoldedConv) and isinstance(f[3].bn, nn.BatchNorm2d)
    torch.testing.assert_close(f(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_wiring_that_changes_with_the_input_raises(rng):
    model = randomise_bn(_Routed(), rng).eval()
    x = torch.rand(2, 3, 8, 8, generator=rng) + 0.1
    f = fold_batch_norm(model, x[:1])
    assert _folded(f) == 1
    torch.testing.assert_close(f(x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="fold_batch_norm"):
        f(-x)
    torch.testing.assert_close(f(x), model(x), rtol=1e-5, atol=1e-5)  # still usable


def test_probe_reads_nothing_outside_its_thread(rng):
    """The probe's TorchFunctionMode is the calling thread's: a thread running the model meanwhile
    computes the same values."""
    model = pyxai.models.demo_cnn()
    x = torch.randn(4, 3, 64, 64, generator=rng)
    ref = model(x)
    stop, bad = threading.Event(), []

    def run():
        while not stop.is_set():
            if not torch.equal(model(x), ref):
                bad.append(1)

    t = threading.Thread(target=run)
    t.start()
    try:
        for _ in range(5):
            assert _folded(fold_batch_norm(model, x[:1])) == 9
    finally:
        stop.set()
        t.join()
    assert not bad


@pytest.mark.parametrize("method", ["extremal", "meaningful"])
def test_explainers_with_folded_batch_norm(rng, method):
    """The option gives the default's masks up to float rounding (a few steps: the optimisation
    amplifies rounding), leaves the model as found and checks its argument."""
    model = pyxai.models.demo_cnn()
    x, labels, _ = pyxai.data.shapes(2, seed=int(torch.randint(0, 2**31, (1,), generator=rng)))

    def make(**kw):
        if method == "extremal":
            return pyxai.ExtremalPerturbation(model, areas=(0.1, 0.2), max_iter=3, **kw)
        return pyxai.MeaningfulPerturbation(model, mask_size=8, iterations=3, quantize=False, **kw)

    before = state_fingerprint(model)
    ref = make().attribute(x, labels)
    out = make(fold_batch_norm=True).attribute(x, labels)
    assert same_state(before, state_fingerprint(model)) == []
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
    with pytest.raises(TypeError, match="fold_batch_norm"):
        make(fold_batch_norm=1)

