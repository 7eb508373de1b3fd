"""Parity with Captum 0.9 of the Captum methods pyxai added: Deconvolution, LayerActivation,
GradientShap, on torchvision models with random weights and randomised BatchNorm statistics
(small inputs). GradientShap draws its randomness as Captum does (NumPy for baseline rows and
coefficients, torch for the noise), so with the same seeds before both calls the numbers are
equal (exact parity of the sampled method, not statistical)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import pyxai
from pyxai.engine.view import same_state, state_fingerprint
from tests.gradient._models import randomise_bn

captum_attr = pytest.importorskip("captum.attr")


def _resnet(g: torch.Generator) -> nn.Module:
    return randomise_bn(torchvision.models.resnet18(num_classes=6), g).eval()


def _close(a, b, tol: float = 1e-5) -> None:
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape, (x.shape, y.shape)
        torch.testing.assert_close(x, y, atol=tol, rtol=tol)


class InplaceNet(nn.Module):
    """Conv-ReLU(inplace)-conv-ReLU-linear, ReLUs as modules (what Deconvolution changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.r1 = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True)
        self.c2, self.r2 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.r2(self.c2(self.r1(self.c1(x)))).flatten(1))


def test_deconvolution_equal_captum_resnet18(rng):
    m = _resnet(rng)
    x = torch.randn(2, 3, 16, 16, generator=rng)
    before = state_fingerprint(m)
    ours = pyxai.Deconvolution(m).attribute(x, target=torch.tensor([1, 4]))
    assert not same_state(before, state_fingerprint(m))  # the user's model is untouched
    assert not m._forward_hooks and all(not c._forward_pre_hooks for c in m.modules())
    ref = captum_attr.Deconvolution(m).attribute(x, target=torch.tensor([1, 4]))
    _close(ours, ref, 1e-4)


def test_deconvolution_inplace_relu_equal_captum(rng):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    m = InplaceNet().eval()
    x = torch.randn(3, 3, 8, 8, generator=rng)
    ours = pyxai.Deconvolution(m).attribute(x, target=2)
    ref = captum_attr.Deconvolution(m).attribute(x, target=2)
    _close(ours, ref)
    # the deconvnet rule differs from guided backprop (it ignores the ReLU input's sign)
    gb = pyxai.GuidedBackprop(m).attribute(x, target=2)
    assert not torch.allclose(ours, gb)


@pytest.mark.parametrize("to_input", [False, True])
def test_layer_activation_equal_captum(rng, to_input):
    m = _resnet(rng)
    x = torch.randn(1, 3, 16, 16, generator=rng)
    for layer in (m.layer2, [m.layer1[0].conv1, m.layer3]):
        ours = pyxai.LayerActivation(m, layer).attribute(x, attribute_to_layer_input=to_input)
        ref = captum_attr.LayerActivation(m, layer).attribute(
            x, attribute_to_layer_input=to_input)
        assert isinstance(ours, list) == isinstance(layer, list)
        _close(ours, ref)


@pytest.mark.parametrize("multiply", [True, False])
def test_gradient_shap_equal_captum_seeded(rng, multiply):
    m = _resnet(rng)
    x = torch.randn(2, 3, 16, 16, generator=rng)
    dist = torch.randn(5, 3, 16, 16, generator=rng)
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    kw = dict(baselines=dist, n_samples=3, stdevs=0.05, target=torch.tensor([0, 3]),
              return_convergence_delta=True)
    np.random.seed(seed)
    torch.manual_seed(seed)
    ours, d_ours = pyxai.GradientShap(m, multiply).attribute(x, **kw)
    np.random.seed(seed)
    torch.manual_seed(seed)
    ref, d_ref = captum_attr.GradientShap(m, multiply).attribute(x, **kw)
    _close(ours, ref, 1e-4)
    _close(d_ours, d_ref, 1e-3)
    assert pyxai.GradientShap(m, multiply).multiplies_by_inputs == multiply


def test_gradient_shap_tuple_inputs_callable_baselines(rng):
    w = torch.randn(3, 4, generator=rng)

    def f(a, b):
        return torch.tanh(a @ w) * b

    a, b = torch.randn(3, 3, generator=rng), torch.randn(3, 4, generator=rng)

    def dist(inputs):
        a, b = inputs
        return a * 0.5, b * 0 + 1

    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    np.random.seed(seed)
    torch.manual_seed(seed)
    ours = pyxai.GradientShap(f).attribute((a, b), baselines=dist, n_samples=6, target=1)
    np.random.seed(seed)
    torch.manual_seed(seed)
    ref = captum_attr.GradientShap(f).attribute((a, b), baselines=dist, n_samples=6, target=1)
    _close(ours, ref)


def test_gradient_shap_bad_arguments(rng):
    m = nn.Linear(4, 2)
    x = torch.randn(2, 4, generator=rng)
    gs = pyxai.GradientShap(m)
    with pytest.raises(TypeError, match="baselines"):
        gs.attribute(x, baselines=0.0)
    with pytest.raises(ValueError, match="baselines"):
        gs.attribute(x, baselines=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        gs.attribute(x, baselines=torch.full((3, 4), float("nan")))
    with pytest.raises(ValueError, match="n_samples"):
        gs.attribute(x, baselines=torch.zeros(3, 4), n_samples=0)


def test_layer_integrated_gradients_equal_captum(rng):
    m = _resnet(rng)
    x = torch.randn(2, 3, 16, 16, generator=rng)
    base = torch.randn(1, 3, 16, 16, generator=rng) * 0.1
    kw = dict(baselines=base, target=torch.tensor([2, 5]), n_steps=6, internal_batch_size=4,
              return_convergence_delta=True, method="riemann_trapezoid")
    ours, d_ours = pyxai.LayerIntegratedGradients(m, m.layer3[0]).attribute(x, **kw)
    ref, d_ref = captum_attr.LayerIntegratedGradients(m, m.layer3[0]).attribute(x, **kw)
    _close(ours, ref, 1e-4)
    _close(d_ours, d_ref, 1e-3)


def test_layer_integrated_gradients_tuple_layer_not_multiplied_equal_captum(rng):
    from tests.gradient.test_captum_behaviour import TwoBranch

    m = TwoBranch(rng).eval()
    x = torch.randn(3, 5, generator=rng)
    for mult, to_input in ((True, False), (False, False), (True, True)):
        kw = dict(target=1, n_steps=8, attribute_to_layer_input=to_input)
        ours = pyxai.LayerIntegratedGradients(m, m.pair, multiply_by_inputs=mult).attribute(
            x, **kw)
        ref = captum_attr.LayerIntegratedGradients(m, m.pair, multiply_by_inputs=mult).attribute(
            x, **kw)
        assert isinstance(ours, tuple) and len(ours) == 2
        _close(ours, ref)


def test_layer_conductance_equal_captum(rng):
    m = _resnet(rng)
    x = torch.randn(2, 3, 16, 16, generator=rng)
    kw = dict(baselines=0.1, target=torch.tensor([1, 4]), n_steps=5,
              return_convergence_delta=True)
    ref, d_ref = captum_attr.LayerConductance(m, m.layer2[1]).attribute(x, **kw)
    for ibs in (None, 6):  # chunks of 3 points (a step across chunks) equal all at once
        ours, d_ours = pyxai.LayerConductance(m, m.layer2[1]).attribute(
            x, internal_batch_size=ibs, **kw)
        _close(ours, ref, 1e-4)
        _close(d_ours, d_ref, 1e-3)


def test_layer_conductance_tuple_layer_and_layer_input_equal_captum(rng):
    from tests.gradient.test_captum_behaviour import TwoBranch

    m = TwoBranch(rng).eval()
    x = torch.randn(3, 5, generator=rng)
    for to_input in (False, True):
        kw = dict(target=2, n_steps=7, method="riemann_left", attribute_to_layer_input=to_input)
        ours = pyxai.LayerConductance(m, m.pair).attribute(x, **kw)
        ref = captum_attr.LayerConductance(m, m.pair).attribute(x, **kw)
        _close(ours, ref)


def test_gradient_shap_convergence_delta_and_captum_errors(rng):
    from pyxai.perturbation._captum import CaptumArgumentError, CaptumTypeError

    m = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).eval()
    x, start = torch.randn(3, 4, generator=rng), torch.randn(3, 4, generator=rng)
    attr = torch.randn(3, 4, generator=rng)
    ours, ref = pyxai.GradientShap(m), captum_attr.GradientShap(m)
    _close(ours.compute_convergence_delta(attr, start, x, target=1),
           ref.compute_convergence_delta(attr, start, x, target=1))
    with pytest.raises(CaptumArgumentError, match="rows"):  # also an AssertionError, as Captum
        ours.compute_convergence_delta(attr, start[:2], x, target=1)
    with pytest.raises(CaptumTypeError):
        ours.attribute(x, baselines=lambda inputs: inputs.numpy(), target=0)
    assert pyxai.LayerActivation(m, m[1]).multiplies_by_inputs == \
        captum_attr.LayerActivation(m, m[1]).multiplies_by_inputs


def test_layer_integrated_gradients_token_ids_embedding_equal_captum(rng):
    emb, head = nn.Embedding(10, 4), nn.Linear(4, 3)
    with torch.no_grad():
        for p in (*emb.parameters(), *head.parameters()):
            p.copy_(torch.randn(p.shape, generator=rng))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.head = emb, head

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(torch.tanh(self.emb(ids)).mean(1))

    net = Net().eval()
    ids = torch.randint(1, 10, (2, 5), generator=rng)  # integer inputs: token ids
    kw = dict(baselines=torch.zeros_like(ids), target=1, n_steps=10)
    ours = pyxai.LayerIntegratedGradients(net, net.emb).attribute(ids, **kw)
    ref = captum_attr.LayerIntegratedGradients(net, net.emb).attribute(ids, **kw)
    _close(ours, ref)
    with pytest.raises(TypeError, match="floating point"):  # input gradients need floats
        pyxai.Saliency(net).attribute(ids, target=1)


def _layer_attrs(attrs) -> list:
    """A list of layers' attributions (each a Tensor or a tuple) as one flat list of Tensors."""
    return [t for a in attrs for t in (a if isinstance(a, tuple) else (a,))]


@pytest.mark.parametrize("to_input", [False, True])
def test_layer_integrated_gradients_list_of_layers_equal_captum(rng, to_input):
    # two branches of one block: neither computes its values from the other's (Captum's rule);
    # as layer inputs both receive layer2's output (a shared input)
    m = _resnet(rng)
    x = torch.randn(2, 3, 16, 16, generator=rng)
    layers = [m.layer3[0].conv1, m.layer3[0].downsample]
    kw = dict(baselines=torch.randn(1, 3, 16, 16, generator=rng) * 0.1, target=torch.tensor([1, 4]),
              n_steps=6, internal_batch_size=4, return_convergence_delta=True,
              attribute_to_layer_input=to_input)
    ours, d_ours = pyxai.LayerIntegratedGradients(m, layers).attribute(x, **kw)
    ref, d_ref = captum_attr.LayerIntegratedGradients(m, layers).attribute(x, **kw)
    assert isinstance(ours, list) and len(ours) == 2
    assert all(isinstance(a, torch.Tensor) for a in ours)
    _close(ours, ref, 1e-4)
    _close(d_ours, d_ref, 1e-3)
    # one layer in a list: a list of one, the single layer's numbers
    one = pyxai.LayerIntegratedGradients(m, layers[:1]).attribute(x, **kw)[0]
    alone = pyxai.LayerIntegratedGradients(m, layers[0]).attribute(x, **kw)[0]
    assert isinstance(one, list) and len(one) == 1
    torch.testing.assert_close(one[0], alone, atol=0, rtol=0)


def test_layer_integrated_gradients_list_with_a_tuple_layer_equal_captum(rng):
    from tests.gradient.test_captum_behaviour import TwoBranch

    m = TwoBranch(rng).eval()
    x = torch.randn(3, 5, generator=rng)
    for mult, to_input in ((True, False), (False, False), (True, True)):
        kw = dict(target=1, n_steps=8, attribute_to_layer_input=to_input)
        for layers in ([m.l1, m.l2], [m.pair]):  # two parallel layers; one with two Tensors
            ours = pyxai.LayerIntegratedGradients(m, layers, multiply_by_inputs=mult).attribute(
                x, **kw)
            ref = captum_attr.LayerIntegratedGradients(m, layers, multiply_by_inputs=mult
                                                       ).attribute(x, **kw)
            assert isinstance(ours, list) and [type(a) for a in ours] == [type(a) for a in ref]
            _close(_layer_attrs(ours), _layer_attrs(ref))


class _WithUnusedLayer(nn.Module):
    """A torchvision ResNet whose forward also runs a layer whose output it drops."""

    def __init__(self, g: torch.Generator) -> None:
        super().__init__()
        self.net, self.unused = _resnet(g), nn.Conv2d(3, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.unused(x)
        return self.net(x)


def test_layer_integrated_gradients_unused_layer_in_list_equal_captum(rng):
    m = _WithUnusedLayer(rng).eval()
    x = torch.randn(2, 3, 16, 16, generator=rng)
    layers = [m.net.layer2, m.unused]
    kw = dict(target=3, n_steps=4, grad_kwargs={"materialize_grads": True})
    ours = pyxai.LayerIntegratedGradients(m, layers).attribute(x, **kw)
    ref = captum_attr.LayerIntegratedGradients(m, layers).attribute(x, **kw)
    _close(ours, ref, 1e-4)
    assert not ours[1].any()
    # pyxai also without materialize_grads (Captum raises there): zeros for the unused layer
    plain = pyxai.LayerIntegratedGradients(m, layers).attribute(x, target=3, n_steps=4)
    torch.testing.assert_close(plain[0], ours[0], atol=0, rtol=0)
    assert not plain[1].any()


def test_layer_integrated_gradients_list_of_layers_errors(rng):
    m = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).eval()
    with pytest.raises(ValueError, match="layer"):
        pyxai.LayerIntegratedGradients(m, [])
    with pytest.raises(TypeError, match=r"layer\[1\]"):
        pyxai.LayerIntegratedGradients(m, [m[0], "m[2]"])
    with pytest.raises(ValueError, match=r"layer\[1\].*not a module of the model"):
        pyxai.LayerIntegratedGradients(m, [m[0], nn.Linear(6, 3)])
