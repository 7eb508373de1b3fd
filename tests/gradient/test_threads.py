"""Two threads explaining one shared model at once get the single-thread results, and the model
is left as found (eval and train mode): the gradient and CAM explainers never touch the model."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch

import pyxai
from pyxai.engine.view import same_state, state_fingerprint
from tests.gradient._models import resnet18

GUIDED = ("GuidedBackprop", "GuidedGradCam")


def explainers(m: torch.nn.Module) -> dict:
    """Every gradient and CAM explainer, on a small workload (targets differ per sample)."""
    layer = m.layer3  # 2 x 2 maps at 32 x 32 inputs
    t = [1, 7]
    return {
        "Saliency": lambda x: pyxai.Saliency(m).attribute(x, target=t),
        "GuidedBackprop": lambda x: pyxai.GuidedBackprop(m).attribute(x, target=t),
        "InputXGradient": lambda x: pyxai.InputXGradient(m).attribute(x, target=t),
        "IntegratedGradients": lambda x: pyxai.IntegratedGradients(m).attribute(
            x, target=t, n_steps=3, internal_batch_size=4),
        "NoiseTunnel": lambda x: pyxai.NoiseTunnel(pyxai.Saliency(m), seed=5).attribute(
            x, nt_samples=3, stdevs=0.2, target=t),
        "LayerGradCam": lambda x: pyxai.LayerGradCam(m, layer).attribute(x, target=t),
        "GuidedGradCam": lambda x: pyxai.GuidedGradCam(m, layer).attribute(x, target=t),
        "GradCAM": lambda x: pyxai.GradCAM(m, [layer]).attribute(x, t),
        "GradCAMPlusPlus": lambda x: pyxai.GradCAMPlusPlus(m, [m.layer2, layer]).attribute(x, t),
        "ScoreCAM": lambda x: pyxai.ScoreCAM(m, [m.layer1], batch_size=48).attribute(x, t),
        "SIDU": lambda x: pyxai.SIDU(m, target_layers=[m.layer1], softmax=True,
                                     batch_size=48).attribute(x, t),
    }


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_two_threads_one_model(rng, mode):
    m = resnet18(rng).train(mode == "train")
    x = torch.randn(2, 3, 32, 32, generator=rng)
    calls = explainers(m)
    names = list(calls)
    # thread 0 runs the methods in order, thread 1 one step ahead: every guided method runs next to
    # a non-guided one (and every method next to another), both started at the same moment
    order = [names, names[1:] + names[:1]]
    assert all((a in GUIDED) != (b in GUIDED) for a, b in zip(*order) if a in GUIDED or b in GUIDED)
    before = state_fingerprint(m)
    single = {}
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:  # no other thread runs yet
            warnings.simplefilter("always")
            single[name] = call(x)
        n = sum("training mode" in str(w.message) for w in caught)
        assert n == (mode == "train"), f"{name} warned {n} times"  # once per call in train mode
        assert same_state(before, state_fingerprint(m)) == [], name
    results: list[dict] = [{}, {}]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(k: int) -> None:
        try:
            for name in order[k]:
                barrier.wait()
                results[k][name] = calls[name](x)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set before the threads start, restored after
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    if errors:
        raise errors[0]
    assert same_state(before, state_fingerprint(m)) == []
    for k in range(2):
        for name in names:
            got, want = results[k][name], single[name]
            assert got.shape == want.shape and torch.equal(got, want), (name, k)
    # real maps (not all zero: a ReLU'd CAM may legitimately be), and the guided ones differ
    for name in ("Saliency", "InputXGradient", "IntegratedGradients", "NoiseTunnel",
                 "GuidedBackprop", "LayerGradCam", "ScoreCAM", "SIDU"):
        assert float(single[name].abs().max()) > 0, name
    assert not torch.allclose(single["Saliency"], single["GuidedBackprop"].abs())


def test_train_mode_explains_the_train_mode_function(rng):
    """Batch statistics, as the user runs the model; the model's statistics do not move."""
    import copy

    m = resnet18(rng).train()
    x = torch.randn(2, 3, 32, 32, generator=rng)
    before = state_fingerprint(m)
    twin = copy.deepcopy(m)
    z = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(twin(z)[:, 1].sum(), z)
    with pytest.warns(UserWarning, match="training mode"):
        ours = pyxai.Saliency(m).attribute(x, target=1, abs=False)
    assert torch.allclose(ours, g, rtol=1e-5, atol=1e-7)
    assert not torch.equal(twin.bn1.running_mean, m.bn1.running_mean)  # the twin's did change
    assert same_state(before, state_fingerprint(m)) == []


def test_plain_callable_layer_capture_in_threads(rng):
    """A plain callable has nothing to view: its layer is hooked for the call, and each thread's
    capture sees only its own forwards."""
    m = resnet18(rng)
    f = lambda z: m(z) * 2.0  # noqa: E731
    x = torch.randn(2, 3, 32, 32, generator=rng)
    cam = pyxai.LayerGradCam(f, m.layer4[-1])
    want = cam.attribute(x, target=[3, 4])
    before = state_fingerprint(m)
    out: list = [None, None]
    barrier = threading.Barrier(2)

    def work(k: int) -> None:
        barrier.wait()
        out[k] = [cam.attribute(x, target=[3, 4]) for _ in range(3)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(torch.equal(r, want) for rs in out for r in rs)
    assert same_state(before, state_fingerprint(m)) == []
