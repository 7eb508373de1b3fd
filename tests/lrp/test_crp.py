"""pyxai.CRP against zennit-crp itself: conditional heatmaps, relevance maximization, reference heatmaps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyxai

crp_attribution = pytest.importorskip("crp.attribution")
crp_concepts = pytest.importorskip("crp.concepts")
torchvision = pytest.importorskip("torchvision")
from zennit.torchvision import ResNetCanonizer, VGGCanonizer  # noqa: E402

from tests.lrp.test_zennit_parity import _randomize_bn, _vgg11_bn, zennit_composite  # noqa: E402

TOL = 2e-5


def _resnet10() -> nn.Module:
    from torchvision.models.resnet import BasicBlock, ResNet

    return _randomize_bn(ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10))


MODELS = {
    "vgg11_bn": (lambda: _randomize_bn(_vgg11_bn()), VGGCanonizer, "features.18"),
    "resnet10": (_resnet10, ResNetCanonizer, "layer3.0.conv2"),  # a layer inside a residual block
}


@pytest.mark.parametrize("arch", list(MODELS))
def test_crp_equals_zennit_crp(rng, arch):
    make, canon, layer = MODELS[arch]
    model = make()
    x = torch.randn(2, 3, 32, 32, generator=rng)
    targets = torch.randint(0, 10, (2,), generator=rng).tolist()
    concepts = [17, [5, 40]]  # one channel; a concept made of two channels
    got = pyxai.CRP(model, composite="epsilon_plus_flat").attribute(x, target=targets,
                                                                   concepts={layer: concepts})
    assert got.shape == (2, 2, 3, 32, 32)
    attr = crp_attribution.CondAttribution(model, no_param_grad=False)
    want = []
    for b in range(2):
        conds = [{layer: c if isinstance(c, list) else [c], "y": [targets[b]]} for c in concepts]
        composite = zennit_composite("epsilon_plus_flat", [canon()])
        res = attr(x[b : b + 1].clone().requires_grad_(True), conds, composite)
        want.append(res.heatmap)
    want = torch.stack(want)
    torch.testing.assert_close(got.sum(2), want, rtol=TOL, atol=TOL * want.abs().max().item())
    # chunked backward (batch_size) gives the same maps
    again = pyxai.CRP(model).attribute(x, target=targets, concepts={layer: concepts}, batch_size=2)
    torch.testing.assert_close(again, got, rtol=1e-5, atol=1e-6 * got.abs().max().item())


def test_relevance_maximization_and_reference_heatmaps(rng):
    # float64: a neuron's heatmap can be a small difference of large terms, and in float32 the
    # thread-dependent summation order alone moves it by 3e-4 of its maximum (CI seed 745090491)
    model = _resnet10().double()
    layer = "layer2.0.conv1"
    data = [(torch.randn(3, 3, 32, 32, generator=rng, dtype=torch.float64),
             torch.randint(0, 10, (3,), generator=rng)) for _ in range(2)]
    crp = pyxai.CRP(model, composite="epsilon_plus_flat")
    refs = crp.relevance_maximization(data, layer, k=4)[layer]
    assert refs.n_samples == 6 and refs.relevance.indices.shape == (4, 128)
    # zennit-crp on the whole data set at once: relevances and activations recorded at the layer
    attr = crp_attribution.CondAttribution(model, no_param_grad=False)
    xs = torch.cat([d[0] for d in data]).requires_grad_(True)
    ys = torch.cat([d[1] for d in data]).tolist()
    res = attr(xs, [{"y": [y]} for y in ys], zennit_composite("epsilon_plus_flat", [ResNetCanonizer()]),
               record_layer=[layer], exclude_parallel=False)
    concept = crp_concepts.ChannelConcept()
    for mode, t in (("relevance", res.relevances[layer]), ("activation", res.activations[layer])):
        d_sorted, v_sorted, rf_sorted = concept.reference_sampling(t, layer, "sum", True)
        top = refs.relevance if mode == "relevance" else refs.activation
        torch.testing.assert_close(top.scores, v_sorted[:4], rtol=1e-4, atol=1e-6)
        same = top.indices == d_sorted[:4]
        assert same.float().mean() > 0.98  # ties aside
        assert torch.equal(top.neurons[same], rf_sorted[:4][same])
    # reference heatmaps: start at the layer with the activation, one neuron, as zennit-crp
    c = 7
    maps = crp.reference_heatmaps(data, refs, c, r_range=(0, 2), crop=False)[c]
    for rank, (img, heat) in enumerate(maps):
        i, n = int(refs.relevance.indices[rank, c]), int(refs.relevance.neurons[rank, c])
        want = attr(xs[i : i + 1].detach().clone().requires_grad_(True), [{layer: {c: [n]}}],
                    zennit_composite("epsilon_plus_flat", [ResNetCanonizer()]),
                    mask_map=crp_concepts.ChannelConcept.mask_rf, start_layer=layer,
                    exclude_parallel=False).heatmap[0]
        torch.testing.assert_close(heat, want, rtol=TOL, atol=TOL * want.abs().max().item())
        assert torch.equal(img, xs[i].detach())
    cropped = crp.reference_heatmaps(data, refs, [c], r_range=(0, 2))[c]
    assert all(h.shape == im.shape[1:] and h.numel() <= 32 * 32 for im, h in cropped)


def test_channel_relevances(rng):
    model = _resnet10()
    x = torch.randn(2, 3, 32, 32, generator=rng)
    crp = pyxai.CRP(model)
    rel = crp.channel_relevances(x, target=1, layers=["layer4", "layer4.0.conv1"], abs_norm=False)
    assert rel["layer4"].shape == (2, 512)
    attr = crp_attribution.CondAttribution(model, no_param_grad=False)
    composite = zennit_composite("epsilon_plus_flat", [ResNetCanonizer()])
    res = attr(x.clone().requires_grad_(True), [{"y": [1]}], composite,
               record_layer=["layer4", "layer4.0.conv1"], exclude_parallel=False)
    for name in rel:
        want = crp_concepts.ChannelConcept().attribute(res.relevances[name], abs_norm=False)
        torch.testing.assert_close(rel[name], want, rtol=1e-4, atol=1e-5 * want.abs().max().item())
    normed = crp.channel_relevances(x, target=1, layers="layer4")["layer4"]
    torch.testing.assert_close(normed.abs().sum(1), torch.ones(2), rtol=1e-5, atol=1e-6)


def test_crp_bad_input(rng):
    model = _resnet10()
    x = torch.randn(1, 3, 32, 32, generator=rng)
    crp = pyxai.CRP(model)
    with pytest.raises(ValueError, match="not in the model"):
        crp.attribute(x, concepts={"layer9.conv": [1]})
    with pytest.raises(ValueError, match="out of range for layer 'layer1.0.conv1' with 64 channels"):
        crp.attribute(x, concepts={"layer1.0.conv1": [3, 64]})
    with pytest.raises(ValueError, match="non-empty dict"):
        crp.attribute(x, concepts={})
    with pytest.raises(ValueError, match="not in the model"):
        crp.channel_relevances(x, layers=["nope"])
