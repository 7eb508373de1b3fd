"""ModelView: what explainers hook, patch and rewrite is never the user's model."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from pyxai.engine.view import ModelView, forward_view, same_state, state_fingerprint


def randomised_resnet18(rng: torch.Generator) -> nn.Module:
    """ResNet-18 with random weights and randomised BatchNorm statistics (as trained models have)."""
    m = torchvision.models.resnet18(num_classes=10)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=rng) * 0.5)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=rng) * 1.5 + 0.5)
            mod.weight.data.copy_(torch.rand(mod.num_features, generator=rng) + 0.5)
            mod.bias.data.copy_(torch.randn(mod.num_features, generator=rng) * 0.1)
    return m.eval()


def test_view_computes_the_model_and_shares_parameters(rng):
    model = randomised_resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    view = ModelView(model)
    assert torch.equal(view(x), model(x))
    assert view[model.fc].weight is model.fc.weight  # shared, not copied
    assert view[model.layer1[0].bn1].running_mean is model.layer1[0].bn1.running_mean


def test_changes_to_the_view_stay_in_the_view(rng):
    model = randomised_resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    before, ref = state_fingerprint(model), model(x)
    view = ModelView(model)
    calls = []
    view[model.layer4].register_forward_hook(lambda m, i, o: calls.append(1))
    view[model.conv1].weight = nn.Parameter(torch.zeros_like(model.conv1.weight))
    view[model.layer1[0].relu].forward = lambda t: t
    view[model.layer2].add_module("extra", nn.Identity())
    view(x)
    assert calls == [1]
    assert same_state(before, state_fingerprint(model)) == []
    assert torch.equal(model(x), ref)


def test_user_hooks_still_run_on_the_view(rng):
    model = randomised_resnet18(rng)
    seen = []
    model.layer3.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    ModelView(model)(torch.randn(3, 3, 32, 32, generator=rng))
    assert seen == [3]


def test_train_mode_statistics_never_change(rng):
    model = randomised_resnet18(rng).train()
    before = state_fingerprint(model)
    with pytest.warns(UserWarning, match="training mode"):
        f = forward_view(model)
    f(torch.randn(4, 3, 32, 32, generator=rng))
    assert same_state(before, state_fingerprint(model)) == []
    assert forward_view(model.eval()) is model  # eval mode: nothing to protect, no copy


def test_shared_submodule_stays_shared(rng):
    act = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 4), act, nn.Linear(4, 4), act)
    view = ModelView(model)
    assert view.module[1] is view.module[3] is view[act]
    with pytest.raises(ValueError, match="not a module"):
        view[nn.ReLU()]


def test_fingerprint_sees_every_kind_of_change(rng):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    before = state_fingerprint(model)
    h = model[0].register_forward_hook(lambda *a: None)
    assert any("hooks" in k for k in same_state(before, state_fingerprint(model)))
    h.remove()
    model[1].running_mean += 1
    assert same_state(before, state_fingerprint(model)) == ["tensor:1.running_mean"]


def test_frozen_view_records_no_graph_before_a_captured_layer(rng):
    """``frozen=True``: the same outputs from the same storage, no parameter in the graph, and
    Grad-CAM (which uses it) equal to the gradient taken through the unfrozen model."""
    import pyxai

    model = randomised_resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    view = ModelView(model, frozen=True)
    assert torch.equal(view(x), model(x))
    w = view[model.fc].weight
    assert not w.requires_grad and w.data_ptr() == model.fc.weight.data_ptr()
    assert model.fc.weight.requires_grad  # the model's own parameters as they were
    with torch.enable_grad():
        assert not view(x).requires_grad  # nothing tracked: no graph was recorded
    (cam,) = pyxai.GradCAM(model, [model.layer4]).layer_cams(x, target=[1, 2])
    acts = {}
    handle = model.layer4.register_forward_hook(lambda m, i, o: acts.update(a=o))
    out = model(x)
    handle.remove()
    g = torch.autograd.grad(out[[0, 1], [1, 2]].sum(), acts["a"])[0]
    ref = torch.relu((g.mean((2, 3), keepdim=True) * acts["a"]).sum(1)).detach()
    torch.testing.assert_close(cam, ref, atol=1e-6, rtol=1e-5)
