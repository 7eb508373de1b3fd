"""DeepLift and DeepLiftShap: parity with Captum 0.9 (torchvision models with random weights and
randomised BatchNorm statistics, the demo CNN, every nonlinearity Captum rescales), hand-computed
rescale multipliers, summation-to-delta, custom attribution functions, baseline distributions, the
user's model left as found, and clear errors.

Captum raises for a module called twice in one forward (torchvision's ResNet and the demo CNN call
one ``nn.ReLU`` per block twice); pyxai rescales every use. Captum's numbers for those models come
from :func:`pyxai.benchmark.captum_methods.unshared`, a copy of the model where each use has its
own module (the same function).
"""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
from torch import nn

import pyxai
from pyxai.benchmark.captum_methods import unshared
from pyxai.engine.view import same_state, state_fingerprint
from tests.gradient._models import randomise_bn, resnet18, vgg11

captum_attr = pytest.importorskip("captum.attr")
# Captum's notes on its own hooks and on inputs it makes require grad
pytestmark = [pytest.mark.filterwarnings("ignore:Setting forward, backward hooks"),
              pytest.mark.filterwarnings("ignore:Input Tensor")]


def _close(a, b, tol: float = 1e-5) -> None:
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape, (x.shape, y.shape)
        torch.testing.assert_close(x, y, atol=tol, rtol=tol)


def captum_deeplift(model: nn.Module, x: torch.Tensor, cls: str = "DeepLift", **kw):
    """Captum's DeepLift / DeepLiftShap on ``unshared(model)`` (its hook warning silenced)."""
    twin = unshared(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(captum_attr, cls)(twin, **kw)


class AllRules(nn.Module):
    """Every module type Captum rescales, in one net (1-D, 2-D, 3-D max-pooling), and a tensor
    consumed both by a ReLU and by an addition (the ReLU's rule replaces that tensor's whole
    gradient, as in Captum)."""

    def __init__(self, g: torch.Generator) -> None:
        super().__init__()
        self.c1, self.elu, self.p2 = nn.Conv2d(3, 6, 3, padding=1), nn.ELU(), nn.MaxPool2d(2)
        self.c2, self.leaky = nn.Conv2d(6, 4, 3, padding=1), nn.LeakyReLU(0.1)
        self.p3, self.p1 = nn.MaxPool3d((1, 2, 2)), nn.MaxPool1d(2)
        self.relu, self.fc = nn.ReLU(inplace=True), nn.Linear(16, 12)
        self.sig, self.tanh, self.soft = nn.Sigmoid(), nn.Tanh(), nn.Softplus()
        self.fc2, self.softmax = nn.Linear(12, 5), nn.Softmax(dim=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.p2(self.elu(self.c1(x)))                        # [B, 6, 4, 4]
        h = self.p3(self.leaky(self.c2(h)).unsqueeze(2))[:, :, 0]  # [B, 4, 2, 2]
        h = self.p1(h.flatten(2)).flatten(1)                     # [B, 8]
        h = torch.cat([h, h.flip(1)], 1)                         # [B, 16]
        h = self.relu(h.clone()) + 0.5 * h
        h = self.fc(h)
        h = torch.cat([self.sig(h[:, :4]), self.tanh(h[:, 4:8]), self.soft(h[:, 8:])], 1)
        return self.softmax(self.fc2(h))


# -- parity with Captum ----------------------------------------------------------------------------


@pytest.mark.parametrize("multiply", [True, False])
def test_resnet18_random_bn_equals_captum(rng, multiply):
    m = resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    base = torch.randn(1, 3, 32, 32, generator=rng) * 0.3
    kw = dict(baselines=base, target=torch.tensor([3, 7]), return_convergence_delta=True)
    before = state_fingerprint(m)
    ours, d_ours = pyxai.DeepLift(m, multiply_by_inputs=multiply).attribute(x, **kw)
    assert same_state(before, state_fingerprint(m)) == []
    ref, d_ref = captum_deeplift(m, x, multiply_by_inputs=multiply).attribute(x, **kw)
    _close(ours, ref, 1e-4)
    _close(d_ours, d_ref, 1e-3)


def test_vgg11_maxpool_and_all_rules_equal_captum(rng):
    m = vgg11()
    x = torch.randn(2, 3, 32, 32, generator=rng)
    ours = pyxai.DeepLift(m).attribute(x, baselines=0.1, target=[1, 4])
    ref = captum_deeplift(m, x).attribute(x, baselines=0.1, target=[1, 4])
    _close(ours, ref, 1e-4)
    net = AllRules(rng).eval()
    x = torch.randn(3, 3, 8, 8, generator=rng)
    base = torch.randn(3, 3, 8, 8, generator=rng)
    for target in (2, torch.tensor([0, 4, 1])):
        ours, d_ours = pyxai.DeepLift(net).attribute(x, base, target,
                                                     return_convergence_delta=True)
        ref, d_ref = captum_deeplift(net, x).attribute(x, base, target,
                                                       return_convergence_delta=True)
        _close(ours, ref)
        _close(d_ours, d_ref)


def test_demo_cnn_equals_captum_and_completes(rng):
    m = pyxai.models.demo_cnn()  # bundled weights
    x, labels, _ = pyxai.data.shapes(2, seed=int(torch.randint(0, 10**6, (1,), generator=rng)))
    ours, delta = pyxai.DeepLift(m).attribute(x, target=labels, return_convergence_delta=True)
    ref = captum_deeplift(m, x).attribute(x, target=labels)
    _close(ours, ref, 1e-4)
    with torch.no_grad():
        diff = m(x).gather(1, labels[:, None])[:, 0] - m(torch.zeros_like(x)).gather(1, labels[:, None])[:, 0]
    # summation-to-delta: the attributions add up to f(x) - f(baseline) (float32 rounding only)
    torch.testing.assert_close(ours.sum((1, 2, 3)), diff, atol=1e-3, rtol=1e-4)
    assert delta.abs().max() < 1e-3


def test_train_mode_equals_captum_and_keeps_bn_statistics(rng):
    m = randomise_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                   nn.Flatten(), nn.Linear(4 * 6 * 6, 3)), rng).train()
    x = torch.randn(3, 3, 8, 8, generator=rng)
    before = state_fingerprint(m)
    with pytest.warns(UserWarning, match="training mode"):
        ours = pyxai.DeepLift(m).attribute(x, target=1)
    assert same_state(before, state_fingerprint(m)) == []  # running statistics untouched
    ref = captum_deeplift(m, x).attribute(x, target=1)  # Captum's copy updates its own
    _close(ours, ref)


# -- the rescale rule by hand -----------------------------------------------------------------------


def test_rescale_rule_by_hand_on_a_relu_net():
    # f(x) = relu(x1 - x2 + 1) - relu(x2 - 3); x = (4, 1), baseline (0, 0)
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 1.0]]))
        lin.bias.copy_(torch.tensor([1.0, -3.0]))
    out = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        out.weight.copy_(torch.tensor([[1.0, -1.0]]))
    m = nn.Sequential(lin, nn.ReLU(), out).eval()
    x = torch.tensor([[4.0, 1.0]])
    # unit 1: z = 4 vs 1, relu 4 vs 1: multiplier 3/3 = 1 -> contributions (4, -1)
    # unit 2: z = -2 vs -3, relu 0 vs 0: multiplier 0/1 = 0
    attr, delta = pyxai.DeepLift(m).attribute(x, return_convergence_delta=True)
    torch.testing.assert_close(attr, torch.tensor([[4.0, -1.0]]))
    assert delta.abs().max() == 0
    # a ReLU that switches on: z = 2 vs -1, relu 2 vs 0 -> multiplier 2/3 (the gradient says 1)
    m2 = nn.Sequential(nn.Linear(1, 1), nn.ReLU()).eval()
    with torch.no_grad():
        m2[0].weight.fill_(1.0)
        m2[0].bias.fill_(-1.0)
    mult = pyxai.DeepLift(m2, multiply_by_inputs=False).attribute(torch.tensor([[3.0]]))
    torch.testing.assert_close(mult, torch.tensor([[2.0 / 3.0]]))
    # |dx| < eps: the plain gradient (here 1) instead of 0/0
    same = pyxai.DeepLift(m2, multiply_by_inputs=False).attribute(torch.tensor([[3.0]]),
                                                                    baselines=3.0)
    torch.testing.assert_close(same, torch.tensor([[1.0]]))


def test_reused_module_is_rescaled_at_each_use(rng):
    class Reused(nn.Module):  # Captum's BasicModelWithReusedModules: Captum raises
        def __init__(self) -> None:
            super().__init__()
            self.lin1, self.relu, self.lin2 = nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(self.lin2(self.relu(self.lin1(x))))

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    m = Reused().eval()
    x = torch.randn(4, 3, generator=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError):
            captum_attr.DeepLift(m).attribute(x, target=0)
    ours, delta = pyxai.DeepLift(m).attribute(x, target=1, return_convergence_delta=True)
    _close(ours, captum_deeplift(m, x).attribute(x, target=1))
    assert delta.abs().max() < 1e-5


def test_pool_with_indices_and_in_place_writes(rng):
    class Pool(nn.Module):
        def __init__(self, keep: bool) -> None:
            super().__init__()
            self.conv, self.relu = nn.Conv2d(2, 3, 3, padding=1), nn.ReLU()
            self.pool, self.keep = nn.MaxPool2d(2, return_indices=keep), keep

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.pool(self.relu(self.conv(x)))
            return (h[0] if self.keep else h).flatten(1)[:, :4]

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    plain = Pool(False).eval()
    keep = Pool(True).eval()
    keep.load_state_dict(plain.state_dict())
    x = torch.randn(2, 2, 6, 6, generator=rng)
    ref = _captum(plain).attribute(x, target=1)
    _close(pyxai.DeepLift(plain).attribute(x, target=1), ref)
    _close(pyxai.DeepLift(keep).attribute(x, target=1), ref)  # Captum asserts on the tuple

    class Writes(nn.Module):  # writes into the ReLU's input after the ReLU read it
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.relu = nn.Linear(3, 3), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.lin(x)
            a = self.relu(h)
            h.mul_(2)
            return a + h

    with pytest.raises(RuntimeError, match="ReLU was modified in place"):
        pyxai.DeepLift(Writes().eval()).attribute(torch.randn(2, 3, generator=rng), target=0)


# -- Captum's call forms ---------------------------------------------------------------------------


class TwoInputs(nn.Module):
    def __init__(self, g: torch.Generator) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(3, 6)
        self.act, self.out = nn.Tanh(), nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, scale: torch.Tensor, k: int
                ) -> torch.Tensor:
        return self.out(self.act(self.a(x1) + k * self.b(x2) * scale))


def test_tuple_inputs_baseline_forms_and_args_equal_captum(rng):
    m = TwoInputs(rng).eval()
    x = (torch.randn(3, 4, generator=rng), torch.randn(3, 3, generator=rng))
    args = (torch.rand(3, 1, generator=rng), 2)
    for bases in (None, (0.5, -1), (torch.randn(1, 4, generator=rng), 0.0),
                  (torch.randn(3, 4, generator=rng), torch.randn(3, 3, generator=rng))):
        kw = dict(baselines=bases, target=2, additional_forward_args=args,
                  return_convergence_delta=True)
        ours, d_ours = pyxai.DeepLift(m).attribute(x, **kw)
        ref, d_ref = _captum(m).attribute(x, **kw)
        assert isinstance(ours, tuple) and len(ours) == 2
        _close(ours, ref)
        _close(d_ours, d_ref)
        # Captum's own delta formula from the outside gives the returned delta
        ext = pyxai.DeepLift(m).compute_convergence_delta(ours, bases, x, target=2,
                                                          additional_forward_args=args)
        _close(ext, d_ours)


def _captum(m: nn.Module, cls: str = "DeepLift", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(captum_attr, cls)(m, **kw)


def test_custom_attribution_func_equals_captum(rng):
    m = TwoInputs(rng).eval()
    x = (torch.randn(2, 4, generator=rng), torch.randn(2, 3, generator=rng))
    args = (torch.ones(2, 1), 1)
    funcs = [lambda mult: tuple(t * 2 for t in mult),
             lambda mult, inp: tuple(t * i for t, i in zip(mult, inp)),
             lambda mult, inp, base: tuple(t * (i - b) ** 2 for t, i, b in zip(mult, inp, base))]
    for f in funcs:
        kw = dict(baselines=(0.2, 0.1), target=0, additional_forward_args=args,
                  custom_attribution_func=f)
        _close(pyxai.DeepLift(m).attribute(x, **kw), _captum(m).attribute(x, **kw))
    dist = (torch.randn(3, 4, generator=rng), torch.randn(3, 3, generator=rng))
    kw = dict(baselines=dist, target=1, additional_forward_args=args,
              custom_attribution_func=funcs[2])
    _close(pyxai.DeepLiftShap(m).attribute(x, **kw), _captum(m, "DeepLiftShap").attribute(x, **kw))
    with pytest.raises(TypeError, match="custom_attribution_func"):
        pyxai.DeepLift(m).attribute(x, target=0, additional_forward_args=args,
                                    custom_attribution_func=lambda mult: mult[0])
    with pytest.raises(ValueError, match="custom_attribution_func"):
        pyxai.DeepLift(m).attribute(x, target=0, additional_forward_args=args,
                                    custom_attribution_func=lambda a, b, c, d: a)


@pytest.mark.parametrize("multiply", [True, False])
def test_deeplift_shap_distribution_equals_captum(rng, multiply):
    m = resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    dist = torch.randn(3, 3, 32, 32, generator=rng) * 0.5
    kw = dict(baselines=dist, target=torch.tensor([2, 5]), return_convergence_delta=True)
    ours, d_ours = pyxai.DeepLiftShap(m, multiply_by_inputs=multiply).attribute(x, **kw)
    ref, d_ref = captum_deeplift(m, x, "DeepLiftShap", multiply_by_inputs=multiply).attribute(
        x, **kw)
    _close(ours, ref, 1e-4)
    assert d_ours.shape == (6,)  # one per (input, baseline) pair, input-major
    _close(d_ours, d_ref, 1e-3)
    # the mean of DeepLift against each baseline
    each = torch.stack([pyxai.DeepLift(m, multiply_by_inputs=multiply).attribute(
        x, baselines=d[None], target=torch.tensor([2, 5])) for d in dist])
    _close(ours, each.mean(0), 1e-4)


def test_deeplift_shap_callable_baselines_and_target_none(rng):
    net = AllRules(rng).eval()
    x = torch.randn(2, 3, 8, 8, generator=rng)
    dist = torch.randn(4, 3, 8, 8, generator=rng)
    ours = pyxai.DeepLiftShap(net).attribute(x, baselines=lambda: dist, target=3)
    _close(ours, pyxai.DeepLiftShap(net).attribute(x, baselines=dist, target=3))
    _close(ours, captum_deeplift(net, x, "DeepLiftShap").attribute(x, dist, target=3))
    half = pyxai.DeepLiftShap(net).attribute(x, baselines=lambda inp: torch.cat([inp, inp * 0.5]),
                                             target=3)
    _close(half, captum_deeplift(net, x, "DeepLiftShap").attribute(
        x, lambda inp: torch.cat([inp, inp * 0.5]), target=3))
    # target=None: each sample's predicted class (Captum needs a target for 5 outputs)
    pred = net(x).argmax(1)
    _close(pyxai.DeepLiftShap(net).attribute(x, dist), pyxai.DeepLiftShap(net).attribute(
        x, dist, target=pred))
    _close(pyxai.DeepLift(net).attribute(x), pyxai.DeepLift(net).attribute(x, target=pred))


def test_noise_tunnel_wraps_deeplift_as_captum(rng):
    net = AllRules(rng).eval()
    x = torch.randn(2, 3, 8, 8, generator=rng)
    base = torch.randn(2, 3, 8, 8, generator=rng) * 0.1
    kw = dict(nt_samples=3, stdevs=0.1, target=1, baselines=base, return_convergence_delta=True)
    seed = int(torch.randint(0, 2**31, (1,), generator=rng))
    torch.manual_seed(seed)
    ours, d_ours = pyxai.NoiseTunnel(pyxai.DeepLift(net)).attribute(x, **kw)
    torch.manual_seed(seed)
    ref, d_ref = captum_attr.NoiseTunnel(_captum(net)).attribute(x, **kw)
    _close(ours, ref)
    _close(d_ours, d_ref)


def test_captum_surface():
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU()).eval()
    dl, dls = pyxai.DeepLift(m, multiply_by_inputs=False, eps=1e-6), pyxai.DeepLiftShap(m)
    assert dl.eps == 1e-6 and not dl.multiplies_by_inputs and dls.multiplies_by_inputs
    assert dl.has_convergence_delta() and dls.has_convergence_delta()
    with pytest.raises(NotImplementedError):
        dl.attribute_future()
    import inspect

    for ours, ref in ((pyxai.DeepLift, captum_attr.DeepLift),
                      (pyxai.DeepLiftShap, captum_attr.DeepLiftShap)):
        for fn in ("__init__", "attribute"):
            a = inspect.signature(getattr(ours, fn)).parameters
            b = inspect.signature(getattr(ref, fn)).parameters
            assert [(p.name, p.default) for p in a.values()] == \
                [(p.name, p.default) for p in b.values()], (ours, fn)


# -- the model as found, threads, errors -----------------------------------------------------------


def test_model_untouched_during_the_call_and_threads(rng):
    m = resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    seen = []
    # a user hook on a ReLU of the model: it still runs on the view, and during the call the
    # model's own ReLU has only it (pyxai's hooks are on the view's copy)
    handle = m.relu.register_forward_hook(
        lambda mod, i, o: seen.append((len(m.relu._forward_hooks), len(m.relu._forward_pre_hooks))))
    before = state_fingerprint(m)
    single = pyxai.DeepLift(m).attribute(x, target=[1, 2])
    assert seen and all(s == (1, 0) for s in seen)
    assert same_state(before, state_fingerprint(m)) == []
    handle.remove()
    out: list = [None, None]

    def run(i: int) -> None:
        out[i] = pyxai.DeepLift(m).attribute(x, target=[1, 2])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in out:
        torch.testing.assert_close(o, single)


def test_bad_input_names_the_argument(rng):
    net = AllRules(rng).eval()
    x = torch.randn(2, 3, 8, 8, generator=rng)
    dl = pyxai.DeepLift(net)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="inputs contains NaN"):
        dl.attribute(bad, target=0)
    with pytest.raises(ValueError, match=r"baselines\[0\] of shape \(2, 3, 4, 4\)"):
        dl.attribute(x, baselines=torch.zeros(2, 3, 4, 4), target=0)
    with pytest.raises(ValueError, match=r"baselines\[0\] contains NaN"):
        dl.attribute(x, baselines=float("nan"), target=0)
    with pytest.raises(ValueError, match="target"):
        dl.attribute(x, target=9)
    with pytest.raises(ValueError, match="target"):
        dl.attribute(x, target=[0, 1, 2])
    with pytest.raises(TypeError, match="nn.Module"):
        pyxai.DeepLift(lambda t: t)
    dls = pyxai.DeepLiftShap(net)
    with pytest.raises(AssertionError, match="baselines"):  # Captum asserts: one baseline
        dls.attribute(x, baselines=torch.zeros(1, 3, 8, 8), target=0)
    with pytest.raises(AssertionError, match="baselines"):  # a number is not a distribution
        dls.attribute(x, baselines=0.0, target=0)
    with pytest.raises(ValueError, match="baselines"):
        dls.attribute(x, baselines=torch.zeros(3, 3, 8, 7), target=0)
