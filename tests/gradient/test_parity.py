"""Parity with Captum on torchvision architectures (random weights) and demo_cnn."""

from __future__ import annotations

import warnings

import pytest
import torch

import pyxai
from tests.conftest import fresh_seed
from tests.gradient._models import ARCHS, last_conv_layer

ca = pytest.importorskip("captum.attr")

B, SIZE = 2, 32


def close(a, b, tol=1e-5):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for u, v in zip(a, b):
            close(u, v, tol)
        return
    assert a.shape == b.shape and a.dtype == b.dtype
    err = float((a - b).abs().max() / (b.abs().max() + 1e-12))
    assert err <= tol, f"relative error {err:.2e} > {tol:.0e}"


@pytest.fixture(scope="module", params=list(ARCHS))
def arch(request):
    torch.manual_seed(fresh_seed())
    return request.param, ARCHS[request.param]()


@pytest.fixture
def batch(arch, rng):
    name, m = arch
    size = 64 if name == "demo_cnn" else SIZE
    x = torch.randn(B, 3, size, size, generator=rng)
    k = m(x[:1]).shape[1]
    target = torch.randint(0, k, (B,), generator=rng)
    return x, target.tolist()


def test_saliency_inputxgradient(arch, batch):
    _, m = arch
    x, t = batch
    close(pyxai.Saliency(m).attribute(x, target=t), ca.Saliency(m).attribute(x, target=t))
    close(pyxai.Saliency(m).attribute(x, target=t[0], abs=False),
          ca.Saliency(m).attribute(x, target=t[0], abs=False))
    close(pyxai.InputXGradient(m).attribute(x, target=torch.tensor(t)),
          ca.InputXGradient(m).attribute(x, target=torch.tensor(t)))


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right",
                                    "riemann_middle", "riemann_trapezoid"])
def test_integrated_gradients(arch, batch, method):
    name, m = arch
    if name != "resnet18" and method != "gausslegendre":
        pytest.skip("all quadratures on one architecture keep the suite fast")
    x, t = batch
    base = torch.rand_like(x) * 0.1
    a, da = pyxai.IntegratedGradients(m).attribute(
        x, baselines=base, target=t, n_steps=4, method=method, internal_batch_size=2 * B + 1,
        return_convergence_delta=True)
    b, db = ca.IntegratedGradients(m).attribute(
        x, baselines=base, target=t, n_steps=4, method=method, internal_batch_size=2 * B + 1,
        return_convergence_delta=True)
    close(a, b, 1e-5)
    # the delta is a small difference of large sums: compare on the scale of the sums
    scale = float(b.reshape(B, -1).sum(1).abs().max())
    assert float((da - db).abs().max()) <= 1e-4 * max(scale, 1.0)


def test_integrated_gradients_local(arch, batch):
    name, m = arch
    if name != "demo_cnn":
        pytest.skip("one architecture is enough")
    x, t = batch
    close(pyxai.IntegratedGradients(m, multiply_by_inputs=False).attribute(x, target=t, n_steps=4),
          ca.IntegratedGradients(m, multiply_by_inputs=False).attribute(x, target=t, n_steps=4))


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel(arch, batch, nt_type):
    name, m = arch
    if name not in ("resnet18", "mobilenet_v3_small"):
        pytest.skip("two architectures are enough")
    x, t = batch
    seed = int(torch.randint(2**31, ()))  # from the rng fixture's seed
    torch.manual_seed(seed)
    a = pyxai.NoiseTunnel(pyxai.Saliency(m)).attribute(
        x, nt_type=nt_type, nt_samples=5, nt_samples_batch_size=2, stdevs=0.3, target=t)
    torch.manual_seed(seed)
    b = ca.NoiseTunnel(ca.Saliency(m)).attribute(
        x, nt_type=nt_type, nt_samples=5, nt_samples_batch_size=2, stdevs=0.3, target=t)
    close(a, b, 1e-5)


def test_noise_tunnel_wraps_captum_methods(arch, batch):
    name, m = arch
    if name != "demo_cnn":
        pytest.skip("one architecture is enough")
    x, t = batch
    seed = int(torch.randint(2**31, ()))  # from the rng fixture's seed
    for target in (t, None):
        torch.manual_seed(seed)
        a = pyxai.NoiseTunnel(ca.Saliency(m)).attribute(x, nt_samples=3, stdevs=0.2,
                                                        target=target)
        torch.manual_seed(seed)
        b = ca.NoiseTunnel(ca.Saliency(m)).attribute(
            x, nt_samples=3, stdevs=0.2, target=m(x).argmax(1) if target is None else target)
        close(a, b, 1e-5)


def test_noise_tunnel_ig_delta(arch, batch):
    name, m = arch
    if name != "resnet18":
        pytest.skip("one architecture is enough")
    x, t = batch
    seed = int(torch.randint(2**31, ()))  # from the rng fixture's seed
    torch.manual_seed(seed)
    a, da = pyxai.NoiseTunnel(pyxai.IntegratedGradients(m)).attribute(
        x, nt_samples=3, stdevs=0.2, target=t, n_steps=4, return_convergence_delta=True)
    torch.manual_seed(seed)
    b, db = ca.NoiseTunnel(ca.IntegratedGradients(m)).attribute(
        x, nt_samples=3, stdevs=0.2, target=t, n_steps=4, return_convergence_delta=True)
    close(a, b, 1e-5)
    assert da.shape == db.shape == (B * 3,)


def test_guided_backprop_and_grad_cams(arch, batch):
    name, m = arch
    x, t = batch
    layer = last_conv_layer(name, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close(pyxai.GuidedBackprop(m).attribute(x, target=t),
              ca.GuidedBackprop(m).attribute(x, target=t))
        close(pyxai.LayerGradCam(m, layer).attribute(x, target=t),
              ca.LayerGradCam(m, layer).attribute(x, target=t))
        close(pyxai.LayerGradCam(m, layer).attribute(x, target=t, relu_attributions=True,
                                                     attribute_to_layer_input=True),
              ca.LayerGradCam(m, layer).attribute(x, target=t, relu_attributions=True,
                                                  attribute_to_layer_input=True))
        close(pyxai.LayerGradCam(m, layer).attribute(x, target=t, attr_dim_summation=False),
              ca.LayerGradCam(m, layer).attribute(x, target=t, attr_dim_summation=False))
        close(pyxai.GuidedGradCam(m, layer).attribute(x, target=t),
              ca.GuidedGradCam(m, layer).attribute(x, target=t))


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 5)
        self.relu = torch.nn.ReLU()

    def forward(self, a, b, scale, use_b=True):
        z = a * b if use_b else a
        return self.lin(self.relu(torch.tanh(z) * scale))


def test_tuple_inputs_and_additional_args(rng):
    m = TwoInputs()
    a, b = torch.randn(4, 8, generator=rng), torch.randn(4, 8, generator=rng)
    scale = torch.rand(4, 1, generator=rng) + 0.5
    args = (scale, True)
    for cls in ("Saliency", "InputXGradient", "GuidedBackprop"):
        close(getattr(pyxai, cls)(m).attribute((a, b), target=2, additional_forward_args=args),
              getattr(ca, cls)(m).attribute((a, b), target=2, additional_forward_args=args))
    kw = dict(baselines=(0.1, b * 0), target=[0, 1, 2, 3], additional_forward_args=args,
              internal_batch_size=9, n_steps=7)
    close(pyxai.IntegratedGradients(m).attribute((a, b), **kw),
          ca.IntegratedGradients(m).attribute((a, b), **kw))
    seed = int(torch.randint(2**31, ()))  # from the rng fixture's seed
    kw = dict(nt_samples=4, stdevs=(0.1, 0.3), baselines=(a * 0, b * 0 + 0.5), target=[0, 1, 2, 3],
              additional_forward_args=args, n_steps=5, nt_samples_batch_size=3)
    torch.manual_seed(seed)
    r1 = pyxai.NoiseTunnel(pyxai.IntegratedGradients(m)).attribute((a, b), **kw)
    torch.manual_seed(seed)
    r2 = ca.NoiseTunnel(ca.IntegratedGradients(m)).attribute((a, b), **kw)
    close(r1, r2)
    # a tuple target on a 3-D output
    m3 = lambda a, b: torch.stack([a * b, a + b], 1)[:, :, :3]  # noqa: E731
    close(pyxai.Saliency(m3).attribute((a, b), target=(1, 2)),
          ca.Saliency(m3).attribute((a, b), target=(1, 2)))
    close(pyxai.Saliency(m3).attribute((a, b), target=[(0, 1), (1, 2), (0, 0), (1, 1)]),
          ca.Saliency(m3).attribute((a, b), target=[(0, 1), (1, 2), (0, 0), (1, 1)]))


def test_scalar_output_target_none(rng):
    m = TwoInputs()
    f = lambda a, b: m(a, b, 1.0)[:, 1]  # noqa: E731
    a, b = torch.randn(3, 8, generator=rng), torch.randn(3, 8, generator=rng)
    close(pyxai.IntegratedGradients(f).attribute((a, b), n_steps=5),
          ca.IntegratedGradients(f).attribute((a, b), n_steps=5))
