"""Explanation-guided losses: gradients against finite differences (float64), the model untouched,
each loss against a direct re-implementation, and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyxai
from pyxai.engine.view import same_state, state_fingerprint
from pyxai.guided import cam_loss, fit, lrp_loss, occlusion_loss, rrr_loss


class Tiny(nn.Module):
    """Conv -> ReLU -> layer3 (conv, ReLU) -> global average -> linear; LRP- and CAM-ready."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.layer3 = nn.Sequential(nn.Conv2d(4, 5, 3, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(self.layer3(self.relu(self.conv1(x))))))


def _setup(rng):
    """A float64 Tiny model, inputs and per-sample targets where every loss has a gradient: the class
    whose Grad-CAM map and positive LRP relevance outside the mask have the most mass (a random net
    can give all-zero maps; then inputs and weights are drawn again, at most 20 times)."""
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, 2:6, 1:5] = True
    for _ in range(20):
        model = Tiny().double().eval()
        x = torch.rand(2, 3, 8, 8, generator=rng, dtype=torch.float64)
        cams = torch.stack([pyxai.LayerGradCam(model, model.layer3).attribute(x, c, relu_attributions=True)
                            .sum((1, 2, 3)) for c in range(3)], dim=1)
        rel = torch.stack([(pyxai.LRP(model).attribute(x, c).sum(1, keepdim=True).relu() * ~mask)
                           .sum((1, 2, 3)) for c in range(3)], dim=1)
        score = cams * rel
        if bool((score.amax(1) > 1e-6).all()):
            break
    return model, x, score.argmax(1), mask


LOSS_CASES = [
    ("rrr", lambda m, x, y, mask: rrr_loss(m, x, y, ~mask)),
    ("rrr-all", lambda m, x, y, mask: rrr_loss(m, x, None, ~mask)),
    ("cam", lambda m, x, y, mask: cam_loss(m, x, y, mask, layer=m.layer3)),
    ("lrp", lambda m, x, y, mask: lrp_loss(m, x, y, mask)),
    ("occlusion", lambda m, x, y, mask: occlusion_loss(m, x, y, ~mask)),
    ("occlusion-all", lambda m, x, y, mask: occlusion_loss(m, x, None, ~mask, baseline=x.mean(0))),
]


@pytest.mark.parametrize("name,loss_fn", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_parameter_gradient_matches_finite_differences(rng, name, loss_fn):
    model, x, y, mask = _setup(rng)
    before = state_fingerprint(model)
    loss = loss_fn(model, x, y, mask)
    assert loss.dim() == 0 and loss.requires_grad
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    assert same_state(before, state_fingerprint(model)) == []
    direction = [torch.randn(p.shape, generator=rng, dtype=p.dtype) for p in params]
    analytic = sum(float((g * v).sum()) for g, v in zip(grads, direction) if g is not None)
    eps = 1e-7
    centre = float(loss)
    with torch.no_grad():
        for p, v in zip(params, direction):
            p.add_(eps * v)
    up = float(loss_fn(model, x, y, mask))
    with torch.no_grad():
        for p, v in zip(params, direction):
            p.sub_(2 * eps * v)
    down = float(loss_fn(model, x, y, mask))
    # the central difference, or a one-sided one: the losses have ReLU kinks, and a kink within
    # eps of the parameters bends one side (seed 305153097: the central difference was 0.7 %
    # off), so the gradient is the slope of the side without one; where there is no kink but
    # the curvature is large, the two sides straddle the gradient and only the central
    # difference is close (seed 992710967, lrp: sides 1e-4 off, central 7e-8)
    sides = ((up - centre) / eps, (centre - down) / eps)
    central = (up - down) / (2 * eps)
    print(f"{name}: analytic {analytic:.8e}, one-sided differences {sides[0]:.8e} {sides[1]:.8e}")
    assert any(analytic == pytest.approx(s, rel=1e-4, abs=1e-9) for s in (central, *sides))
    assert abs(analytic) > 1e-8  # a real gradient, not a zero one


def test_rrr_equals_direct_formula(rng):
    model, x, y, mask = _setup(rng)
    xr = x.clone().requires_grad_(True)
    logp = F.log_softmax(model(xr), 1)
    (g,) = torch.autograd.grad(logp.sum(), xr)
    expected = ((~mask) * g).pow(2).sum((1, 2, 3)).mean()
    torch.testing.assert_close(rrr_loss(model, x, None, ~mask), expected)


def test_cam_and_lrp_losses_equal_their_maps_energy(rng):
    model, x, y, mask = _setup(rng)
    cam = pyxai.LayerGradCam(model, model.layer3).attribute(x, y, relu_attributions=True)
    cam = F.interpolate(cam, size=(8, 8), mode="bilinear", align_corners=False)
    share = (cam * (~mask)).sum((1, 2, 3)) / (cam.sum((1, 2, 3)) + 1e-12)  # an all-zero map: 0
    torch.testing.assert_close(cam_loss(model, x, y, mask, layer=model.layer3).detach(), share.mean())
    rel = pyxai.LRP(model).attribute(x, y).sum(1, keepdim=True).relu()
    share = (rel * (~mask)).sum((1, 2, 3)) / (rel.sum((1, 2, 3)) + 1e-12)
    torch.testing.assert_close(lrp_loss(model, x, y, mask).detach(), share.mean())


@pytest.mark.parametrize("loss", ["rrr", "cam", "lrp", "occlusion"])
def test_fit_step_is_cross_entropy_plus_weighted_loss_on_the_annotated(rng, loss):
    """One fit step equals one Adam step on CE(all) + weight * loss(annotated) done by hand."""
    model, x, y, mask = _setup(rng)
    x, y, mask = x.repeat(2, 1, 1, 1), y.repeat(2), mask.repeat(2, 1, 1, 1)
    annotated = torch.tensor([True, False, False, True])
    manual = Tiny().double().eval()
    manual.load_state_dict(model.state_dict())
    history = fit(model, x, y, mask, annotated=annotated, loss=loss, weight=3.0, epochs=1, lr=1e-2,
                  batch_size=4)
    opt = torch.optim.Adam(manual.parameters(), lr=1e-2)
    extra = {"rrr": rrr_loss, "cam": cam_loss, "lrp": lrp_loss, "occlusion": occlusion_loss}[loss]
    total = F.cross_entropy(manual(x), y) + 3.0 * extra(manual, x[annotated], y[annotated], mask[annotated])
    total.backward()
    opt.step()
    assert history == [pytest.approx(float(total.detach()))]
    for (name, p), q in zip(model.named_parameters(), manual.parameters()):
        torch.testing.assert_close(p, q, msg=name)


@pytest.mark.parametrize("loss", [rrr_loss, cam_loss, lrp_loss, occlusion_loss])
def test_bad_masks(rng, loss):
    model, x, y, mask = _setup(rng)
    with pytest.raises(ValueError, match="mask must be Tensor"):
        loss(model, x, y, mask[:, :, :4])
    with pytest.raises(ValueError, match="mask must be Tensor"):
        loss(model, x, y, mask[:1])
    with pytest.raises(TypeError, match="mask must be a bool or floating"):
        loss(model, x, y, mask.to(torch.int64))
    with pytest.raises(ValueError, match="mask must hold values in"):
        loss(model, x, y, mask.double() * 2)
    with pytest.raises(TypeError, match="mask must be"):
        loss(model, x, y, mask.numpy())
    with pytest.raises(ValueError, match="x contains NaN"):
        loss(model, x * float("nan"), y, mask)
    with pytest.raises(ValueError, match="x is an empty batch"):
        loss(model, x[:0], y[:0], mask[:0])


def test_fit_bad_input(rng):
    model, x, y, mask = _setup(rng)
    with pytest.raises(ValueError, match="loss must be one of"):
        fit(model, x, y, mask, loss="gradnorm")
    with pytest.raises(ValueError, match="images is empty"):
        fit(model, x[:0], y[:0], mask[:0])
    with pytest.raises(ValueError, match="annotated must be"):
        fit(model, x, y, mask, annotated=torch.ones(2))


@pytest.mark.parametrize("loss", [rrr_loss, cam_loss, occlusion_loss], ids=["rrr", "cam", "occlusion"])
def test_returned_outputs_are_the_models_with_its_gradients(rng, loss):
    """``return_outputs=True``: the logits equal ``model(x)``, and a cross-entropy taken from them has
    the parameter gradients of one taken from an ordinary forward."""
    model, x, y, mask = _setup(rng)
    penalty, logits = loss(model, x, y, mask, return_outputs=True)
    torch.testing.assert_close(penalty, loss(model, x, y, mask))
    torch.testing.assert_close(logits, model(x))
    params = list(model.parameters())
    shared = torch.autograd.grad(F.cross_entropy(logits, y), params, retain_graph=True)
    plain = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    for name_p, a, b in zip(model.named_parameters(), shared, plain):
        torch.testing.assert_close(a, b, msg=name_p[0])


def test_occlusion_equals_feature_ablation_of_the_region(rng):
    """Per class, the log-probability change is Captum's FeatureAblation attribution of the region
    as one feature (baseline 0.5) on a log-softmax model; the loss sums their squares."""
    model, x, y, mask = _setup(rng)
    irrelevant = ~mask
    logsoftmax = nn.Sequential(model, nn.LogSoftmax(dim=1)).eval()
    ablation = pyxai.FeatureAblation(logsoftmax)
    per_class = torch.stack([
        ablation.attribute(x, target=k, baselines=0.5, feature_mask=irrelevant.long().expand_as(x))
        .flatten(1)[torch.arange(2), irrelevant.expand_as(x).flatten(1).int().argmax(1)]
        for k in range(3)], dim=1)  # Tensor[B, K]: the value of one pixel inside the region
    torch.testing.assert_close(occlusion_loss(model, x, None, irrelevant).detach(),
                               per_class.pow(2).sum(1).mean())
    own = per_class.gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(occlusion_loss(model, x, y, irrelevant).detach(), own.pow(2).mean())


def test_occlusion_bad_baseline(rng):
    model, x, y, mask = _setup(rng)
    with pytest.raises(ValueError, match="baseline of shape"):
        occlusion_loss(model, x, y, mask, baseline=torch.zeros(5, 5, dtype=x.dtype))
    with pytest.raises(ValueError, match="baseline must be finite"):
        occlusion_loss(model, x, y, mask, baseline=float("nan"))
    with pytest.raises(ValueError, match="baseline must be a finite"):
        occlusion_loss(model, x, y, mask, baseline=torch.full((1,), float("inf"), dtype=x.dtype))
    with pytest.raises(TypeError, match="baseline must be a float"):
        occlusion_loss(model, x, y, mask, baseline="grey")
