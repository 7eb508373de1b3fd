"""pyxai.LRP: conservation, batched targets, the model never touched (threads, train mode), bad input."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

import pyxai
from pyxai import rules
from pyxai.engine.view import same_state, state_fingerprint
from pyxai.lrp import Composite, ResNetCanonizer, canonize


class TinyNet(nn.Module):
    """Bias-free conv net with average pooling and ReLUs: z+ / flat / epsilon conserve relevance."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6 * 4 * 4, 5, bias=False)

    def forward(self, x):
        h = self.relu(self.conv1(x))
        h = self.relu(self.conv2(h))
        return self.fc(self.flat(self.pool(h)))


def _state(model):
    return state_fingerprint(model)


def _same(model, snapshot) -> bool:
    return same_state(snapshot, state_fingerprint(model)) == []


def _random_bn(model: nn.Module, rng: torch.Generator) -> nn.Module:
    """Random BatchNorm statistics and affine weights (mean ~ N(0, 0.5), var ~ U(0.5, 2))."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=rng) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=rng) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=rng) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=rng) * 0.5)
    return model.eval()


@pytest.mark.parametrize("composite", ["epsilon_plus", "epsilon_plus_flat"])
def test_conservation_and_delta(rng, composite):
    model = TinyNet().eval()
    x = torch.rand(3, 3, 8, 8, generator=rng)
    rel, delta = pyxai.LRP(model, composite=composite).attribute(x, target=[0, 2, 4],
                                                                return_convergence_delta=True)
    assert rel.shape == x.shape and delta.shape == (3,)
    scores = model(x)[torch.arange(3), torch.tensor([0, 2, 4])]
    torch.testing.assert_close(rel.reshape(3, -1).sum(1), scores, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(delta, rel.reshape(3, -1).sum(1) - scores.detach(), rtol=1e-5, atol=1e-6)
    one = pyxai.LRP(model, composite=composite, output_relevance="one_hot").attribute(x, target=[0, 2, 4])
    torch.testing.assert_close(one * scores.detach().reshape(3, 1, 1, 1), rel, rtol=1e-5, atol=1e-7)


def test_batched_targets_equal_single(rng):
    model = TinyNet().eval()
    x = torch.rand(2, 3, 8, 8, generator=rng)
    lrp = pyxai.LRP(model)
    both = lrp.attribute(x, target=torch.tensor([1, 3]))
    torch.testing.assert_close(both[1:], lrp.attribute(x[1:], target=3))
    default = lrp.attribute(x)  # predicted class
    torch.testing.assert_close(default, lrp.attribute(x, target=model(x).argmax(1)))
    # callable target: the score of class 2
    torch.testing.assert_close(lrp.attribute(x, target=lambda o: o[:, 2]), lrp.attribute(x, target=2))
    # the one target contract: a callable (outputs, rows) knows each row's sample
    cls = torch.tensor([4, 0])
    by_rows = lrp.attribute(x, target=lambda out, rows: out[torch.arange(out.shape[0]), cls[rows]])
    torch.testing.assert_close(by_rows, lrp.attribute(x, target=cls))
    crp = pyxai.CRP(model)
    torch.testing.assert_close(
        crp.attribute(x, target=lambda out, rows: out[torch.arange(out.shape[0]), cls[rows]],
                      concepts={"conv2": [1]}),
        crp.attribute(x, target=cls, concepts={"conv2": [1]}))
    with pytest.raises(ValueError, match="nested"):
        lrp.attribute(x, target=[[1, 2]])


def test_model_left_as_found_also_after_exception(rng):
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(weights=None, num_classes=4)
    model.eval()
    model.layer1[0].conv1.weight.requires_grad_(False)
    snap = _state(model)
    x = torch.rand(1, 3, 32, 32, generator=rng)
    pyxai.LRP(model).attribute(x, target=1)
    assert _same(model, snap)
    with pytest.raises(ValueError, match="out of range"):
        pyxai.LRP(model).attribute(x, target=7)
    assert _same(model, snap)

    def boom(module, args, output):
        raise RuntimeError("boom")

    h = model.layer3[0].conv2.register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        pyxai.LRP(model).attribute(x, target=1)
    h.remove()
    assert _same(model, snap)
    view = canonize(model, [ResNetCanonizer()])
    assert "canonizer_sum" in view[model.layer1[0]]._modules
    assert view[model.layer1[0].conv1].weight is not model.layer1[0].conv1.weight
    assert _same(model, snap)


def test_demo_cnn_canonized_and_restored(rng):
    models = pytest.importorskip("pyxai.models")
    model = models.demo_cnn(pretrained=False)
    snap = _state(model)
    x = torch.rand(2, 3, 32, 32, generator=rng)
    rel = pyxai.LRP(model, composite="epsilon_plus_flat").attribute(x, target=0)
    assert rel.shape == x.shape and torch.isfinite(rel).all()
    assert _same(model, snap)


def test_bad_input(rng):
    model = TinyNet().eval()
    x = torch.rand(1, 3, 8, 8, generator=rng)
    with pytest.raises(ValueError, match="unknown composite 'epsilon_foo'"):
        pyxai.LRP(model, composite="epsilon_foo")
    with pytest.raises(ValueError, match="needs low= and high="):
        pyxai.LRP(model, composite="epsilon_gamma_box")
    with pytest.raises(ValueError, match="output_relevance"):
        pyxai.LRP(model, output_relevance="logit")
    with pytest.raises(ValueError, match="canonizers"):
        pyxai.LRP(model, canonizers="resnet")
    # a layer type no rule covers: the module and the rule map are named
    comp = Composite(layer_map={nn.Conv2d: rules.ZPlus(), nn.ReLU: rules.Pass()})
    with pytest.raises(ValueError, match=r"no rule for module 'fc' \(Linear\).*ZPlus"):
        pyxai.LRP(model, composite=comp).attribute(x, target=0)
    with pytest.raises(TypeError, match="rules"):
        Composite(layer_map={nn.Conv2d: "zplus"})
    with pytest.raises(ValueError, match="not in the model"):
        pyxai.LRP(model, composite=Composite(name_map={"conv9": rules.Flat()})).attribute(x, 0)
    with pytest.raises(ValueError, match="NaN"):
        pyxai.LRP(model).attribute(x * float("nan"), target=0)
    with pytest.raises(ValueError, match="out of range"):
        pyxai.LRP(model).attribute(x, target=9)
    snap = _state(model)
    assert _same(model, snap)


def test_custom_composite_and_transposed_conv(rng):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.ConvTranspose2d(4, 2, 3, stride=2),
                          nn.ReLU(), nn.Flatten(), nn.LazyLinear(3)).eval()
    with torch.no_grad():  # positive biases keep both ReLUs alive, so a zero map would be a real defect
        model[0].bias.uniform_(0.05, 0.2, generator=rng)
        model[2].bias.uniform_(0.05, 0.2, generator=rng)
    x = torch.rand(2, 3, 6, 6, generator=rng)
    model(x)
    comp = Composite(layer_map=[(nn.ReLU, rules.Pass()), ((nn.Conv2d, nn.ConvTranspose2d), rules.ZPlus()),
                                (nn.Linear, rules.Epsilon())], first_map=[(nn.Conv2d, rules.Flat())])
    ref = pyxai.LRP(model, composite=comp, backend="reference").attribute(x, target=1)
    nat = pyxai.LRP(model, composite=comp).attribute(x, target=1)
    torch.testing.assert_close(ref, nat, rtol=1e-5, atol=1e-7)
    assert ref.shape == x.shape and ref.abs().sum() > 0


def test_two_threads_share_one_model(rng):
    """LRP and CRP in two threads at once on one ResNet-18 give the single-thread results exactly;
    the model is never modified, not even during the calls (its plain logits never move)."""
    torchvision = pytest.importorskip("torchvision")
    model = _random_bn(torchvision.models.resnet18(weights=None, num_classes=10), rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    target = torch.randint(0, 10, (2,), generator=rng)
    concepts = {"layer3.0.conv2": [1, [2, 5]]}
    before = state_fingerprint(model)
    with torch.no_grad():
        logits = model(x)
    lrp, crp = pyxai.LRP(model), pyxai.CRP(model)
    want_lrp = lrp.attribute(x, target=target)
    want_crp = crp.attribute(x, target=target, concepts=concepts)
    assert same_state(before, state_fingerprint(model)) == []
    got, errors, drift = [], [], []
    done = threading.Event()

    def work():
        try:
            for _ in range(2):
                got.append((lrp.attribute(x, target=target),
                            crp.attribute(x, target=target, concepts=concepts)))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def watch():
        while not done.is_set():
            with torch.no_grad():
                drift.append(float((model(x) - logits).abs().max()))

    threads = [threading.Thread(target=work) for _ in range(2)]
    watcher = threading.Thread(target=watch)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert not errors, errors
    assert len(got) == 4 and drift and max(drift) == 0.0
    for a, c in got:
        assert torch.equal(a, want_lrp) and torch.equal(c, want_crp)
    assert same_state(before, state_fingerprint(model)) == []


def _resnet10(rng) -> nn.Module:
    from torchvision.models.resnet import BasicBlock, ResNet

    return _random_bn(ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10), rng)


def test_training_mode_needs_opt_in(rng):
    pytest.importorskip("torchvision")
    model = _resnet10(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    want_lrp = pyxai.LRP(model).attribute(x, target=3)
    want_crp = pyxai.CRP(model).attribute(x, target=3, concepts={"layer2.0.conv1": [4]})
    model.train()
    before = state_fingerprint(model)
    with pytest.raises(ValueError, match="training mode.*allow_training=True"):
        pyxai.LRP(model).attribute(x, target=3)
    with pytest.raises(ValueError, match="training mode.*allow_training=True"):
        pyxai.CRP(model).attribute(x, target=3, concepts={"layer2.0.conv1": [4]})
    got_lrp = pyxai.LRP(model, allow_training=True).attribute(x, target=3)
    got_crp = pyxai.CRP(model, allow_training=True).attribute(x, target=3, concepts={"layer2.0.conv1": [4]})
    torch.testing.assert_close(got_lrp, want_lrp, rtol=0, atol=0)
    torch.testing.assert_close(got_crp, want_crp, rtol=0, atol=0)
    assert same_state(before, state_fingerprint(model)) == []  # BatchNorm statistics, mode


class _GradNet(nn.Module):
    """conv -> BN -> ReLU -> conv -> ReLU -> avg pool -> linear: every kind of rule and a merge."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(3 * 2 * 2, 4)

    def forward(self, x):
        h = self.relu(self.bn(self.conv1(x)))
        h = self.pool(self.relu(self.conv2(h)))
        return self.fc(h.flatten(1))


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("composite", ["epsilon_plus", "epsilon_gamma_box"])
def test_create_graph_gradcheck_wrt_parameters(rng, backend, composite):
    """Relevances with create_graph=True are differentiable w.r.t. the parameters: finite
    differences (float64) agree, through the BatchNorm merge and every rule."""
    if backend == "native":
        from tests.conftest import native_or_skip

        native_or_skip()
    model = _random_bn(_GradNet(), rng).double()
    x = torch.randn(1, 2, 4, 4, generator=rng, dtype=torch.float64)
    slots = [(m, n) for m in model.modules() for n, p in m._parameters.items() if p is not None]
    params = [getattr(m, n).detach().clone().requires_grad_(True) for m, n in slots]
    lrp = pyxai.LRP(model, composite=composite, low=-3.0, high=3.0, backend=backend)

    def relevance(*ps):
        for (m, n), p in zip(slots, ps):
            m._parameters[n] = p  # the test's own model: parameters as gradcheck inputs
        return lrp.attribute(x, target=1, create_graph=True)

    # fast mode: finite differences along random directions of all 199 parameters at once
    assert torch.autograd.gradcheck(relevance, params, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_create_graph_native_equals_reference_and_model_untouched(rng):
    from tests.conftest import native_or_skip

    native_or_skip()
    model = _random_bn(_GradNet(), rng)
    x = torch.randn(3, 2, 4, 4, generator=rng)
    before = state_fingerprint(model)
    grads = {}
    for backend in ("reference", "native"):
        rel = pyxai.LRP(model, composite="epsilon_plus", backend=backend).attribute(
            x, target=[0, 1, 2], create_graph=True)
        assert rel.requires_grad
        loss = (rel * rel).sum()  # e.g. an explanation penalty
        grads[backend] = torch.autograd.grad(loss, list(model.parameters()))
        plain = pyxai.LRP(model, composite="epsilon_plus", backend=backend).attribute(x, [0, 1, 2])
        torch.testing.assert_close(rel.detach(), plain, rtol=1e-5, atol=1e-7)
    for a, b in zip(grads["reference"], grads["native"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * max(1.0, b.abs().max().item()))
    assert any(g.abs().sum() > 0 for g in grads["native"])
    assert same_state(before, state_fingerprint(model)) == []


class _Swish(nn.Module):
    """A parameter-free custom module with nonlinear arithmetic (no LRP rule exists for it)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class _Shuffle(nn.Module):
    """A parameter-free custom module of structural ops only: its plain gradient passes relevance."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2).transpose(1, 2).reshape(x.shape).flip(1).flip(1)


class _Attend(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h, _ = self.attn(x, x, x)
        return self.fc(h.mean(1))


def test_modules_without_a_rule_raise(rng):
    x = torch.rand(2, 3, 8, 8, generator=rng)
    swish = nn.Sequential(nn.Conv2d(3, 4, 3), _Swish(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    with pytest.raises(ValueError, match=r"no rule for module '1' \(_Swish\).*not piecewise linear "
                                         r"\(Sigmoid\).*layer_map=\[\(_Swish, rule\)\]"):
        pyxai.LRP(swish).attribute(x, target=0)
    with pytest.raises(ValueError, match="_Swish"):
        pyxai.CRP(swish).attribute(x, target=0, concepts={"0": [1]})
    # the user's composite covers it: no error, and the rule is used
    covered = pyxai.lrp.named_composite("epsilon_plus_flat", layer_map=[(_Swish, rules.Pass())])
    rel = pyxai.LRP(swish, composite=covered).attribute(x, target=0)
    assert torch.isfinite(rel).all() and rel.abs().sum() > 0
    # linear custom modules pass (their gradient is their relevance)
    shuffle = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), _Shuffle(), nn.Flatten(), nn.Linear(144, 3)).eval()
    plain = nn.Sequential(*[m for m in shuffle if not isinstance(m, _Shuffle)]).eval()
    torch.testing.assert_close(pyxai.LRP(shuffle).attribute(x, target=1),
                               pyxai.LRP(plain).attribute(x, target=1), rtol=0, atol=0)
    # attention had no rule (Zennit's Pass would silently pass a plain gradient)
    seq = torch.rand(2, 5, 4, generator=rng)
    with pytest.raises(ValueError, match=r"no rule for module 'attn' \(MultiheadAttention\)"):
        pyxai.LRP(_Attend().eval()).attribute(seq, target=0)


def test_model_must_return_a_tensor(rng):
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x), {"aux": x}

    x = torch.rand(2, 4, generator=rng)
    with pytest.raises(TypeError, match="forward_func must return a Tensor, got tuple"):
        pyxai.LRP(Pair().eval()).attribute(x, target=0)
    with pytest.raises(TypeError, match="forward_func must return a Tensor, got tuple"):
        pyxai.CRP(Pair().eval()).attribute(x, target=0, concepts={"fc": [1]})


def test_no_host_sync_per_layer_and_sign_known_from_the_graph(rng, monkeypatch):
    """Per-layer work (module forwards, rule backwards) never reads a tensor on the host, and the
    inputs of the convolutions after a ReLU are known to be >= 0 (z+ skips its x- half)."""
    pytest.importorskip("torchvision")
    from pyxai.lrp import core
    from pyxai.ops import lrp as lrp_ops

    model = _resnet10(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    want = pyxai.LRP(model).attribute(x, target=[1, 2])
    names = ("item", "tolist", "__bool__", "__float__", "__int__")
    originals = {n: getattr(torch.Tensor, n) for n in names}

    def guarded(fn):
        def run(*args, **kwargs):
            def sync(*a, **k):
                raise AssertionError("host sync in a per-layer step")

            for n in names:
                setattr(torch.Tensor, n, sync)
            try:
                return fn(*args, **kwargs)
            finally:
                for n, f in originals.items():
                    setattr(torch.Tensor, n, f)

        return run

    seen = []

    def execute(x, grad, weight, *args):
        seen.append((weight.shape, args[-2]))  # nonneg
        return execute_orig(x, grad, weight, *args)

    execute_orig = lrp_ops._execute
    monkeypatch.setattr(core._LayerState, "run", guarded(core._LayerState.run))
    monkeypatch.setattr(core._LayerState, "relevance", guarded(core._LayerState.relevance))
    monkeypatch.setattr(lrp_ops, "_execute", execute)
    got = pyxai.LRP(model).attribute(x, target=[1, 2])
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    convs = [(w, pos) for w, pos in seen if len(w) == 4]
    assert len(convs) == 12  # conv1 + 2 per block + 3 downsamples
    first = [pos for w, pos in convs if tuple(w) == (64, 3, 7, 7)]
    assert first == [False] and sum(pos for _, pos in convs) == 11
