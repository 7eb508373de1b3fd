"""Bad input (errors naming the argument), batch invariance, seeds, the model left as found, and the
synthesis methods against direct loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

import pyxai.similarity as S
from pyxai.engine.view import same_state, state_fingerprint
from pyxai.similarity.synthesis import gaussian_filter1d, tv_l2, zoom_linear
from tests.gradient._models import randomise_bn


@pytest.fixture
def enc(rng):
    from pyxai.models.demo_ssl import SSLEncoder

    torch.manual_seed(int(torch.randint(1 << 30, (1,), generator=rng)))
    return randomise_bn(SSLEncoder()).eval()


class Tokens(nn.Module):
    """An encoder returning a feature map Tensor[N, D, h, w] (not a 2-D embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4)

    def forward(self, x):
        return self.conv(x)


def test_bad_input(enc):
    x = torch.rand(2, 3, 32, 32)
    co = S.ConditionalOcclusion(enc, window=8, stride=8)
    with pytest.raises(ValueError, match="same number"):
        co.attribute(x, x[:1])
    with pytest.raises(ValueError, match="window"):
        S.ConditionalOcclusion(enc, window=40).attribute(x, x)
    with pytest.raises(ValueError, match="window"):
        S.ConditionalOcclusion(enc, window=0)
    with pytest.raises(ValueError, match="img1 contains NaN"):
        co.attribute(x.clone().fill_(float("nan")), x)
    with pytest.raises(TypeError, match="img2"):
        co.attribute(x, x.double())
    with pytest.raises(ValueError, match="same image size"):
        S.AveragedTransforms(enc).attribute(x, torch.rand(2, 3, 24, 24))
    with pytest.raises(ValueError, match="pooling"):
        S.ConditionalOcclusion(Tokens().eval(), window=8, stride=8).attribute(x, x)
    with pytest.raises(ValueError, match="pooling"):
        S.PairwiseOcclusion(enc, pooling="sum")
    with pytest.raises(ValueError, match="zero-norm"):
        S.ConditionalOcclusion(lambda t: torch.zeros(t.shape[0], 4), window=8, stride=8).attribute(x, x)
    with pytest.raises(ValueError, match="num_erases"):
        S.PairwiseOcclusion(enc, num_erases=0)
    with pytest.raises(ValueError, match="erase_scale"):
        S.PairwiseOcclusion(enc, erase_scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="reduction"):
        S.InteractionCAM(enc, enc.backbone.layer3, reduction="sum")
    with pytest.raises(ValueError, match="target_layer"):
        S.InteractionCAM(enc, nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="grad_interact"):
        S.InteractionCAM(enc, enc.backbone.layer3, grad_interact=True).attribute(x, torch.rand(2, 3, 48, 48))
    with pytest.raises(ValueError, match="reshape_transform"):
        S.InteractionCAM(enc, enc.head[0]).attribute(x, x)
    with pytest.raises(ValueError, match="step"):
        S.AveragedTransforms(enc, step=1.5)
    with pytest.raises(ValueError, match="mode"):
        S.FeatureVisualization(enc, mode="dream")
    with pytest.raises(ValueError, match="epochs"):
        S.PixelInvariance(enc, epochs=0)
    with pytest.raises(ValueError, match="nmf_weight"):
        S.PixelInvariance(enc, nmf_weight=float("nan"))
    with pytest.raises(ValueError, match="n_components"):
        S.PixelInvariance(enc, nmf_weight=1.0, n_components=0)
    with pytest.raises(ValueError, match="nmf_targets"):
        img = torch.rand(1, 3, 16, 16)
        S.PixelInvariance(enc, nmf_weight=1.0).fit(img, img[:, None], torch.ones(1, 1))


def test_pooling_for_feature_map_encoders(rng):
    x1, x2 = torch.rand(2, 3, 32, 32, generator=rng), torch.rand(2, 3, 32, 32, generator=rng)
    enc = Tokens().eval()
    m1, _ = S.ConditionalOcclusion(enc, window=8, stride=8, pooling="avg").attribute(x1, x2, resize=False)
    m2, _ = S.ConditionalOcclusion(lambda t: enc(t).mean((2, 3)), window=8, stride=8).attribute(
        x1, x2, resize=False)
    torch.testing.assert_close(m1, m2)


def test_batch_invariance_seed_and_model_untouched(enc, rng):
    x1, x2 = torch.rand(3, 3, 16, 16, generator=rng), torch.rand(3, 3, 16, 16, generator=rng)
    enc.train()  # a train-mode model: explained on a view, its BatchNorm statistics untouched
    before = state_fingerprint(enc)
    with pytest.warns(UserWarning, match="training mode"):
        S.PairwiseOcclusion(enc, num_erases=6).attribute(x1, x2)
    assert same_state(before, state_fingerprint(enc)) == []
    enc.eval()
    before = state_fingerprint(enc)
    po = S.PairwiseOcclusion(enc, num_erases=10, seed=4)
    a = po.attribute(x1, x2)
    b = S.PairwiseOcclusion(enc, num_erases=10, seed=4, batch_size=3).attribute(x1, x2)
    torch.testing.assert_close(a, b)
    c = S.PairwiseOcclusion(enc, num_erases=10, seed=5).attribute(x1, x2)
    assert not torch.equal(a[0], c[0])
    co = S.ConditionalOcclusion(enc, window=8, stride=8, batch_size=5, normalize=False)
    full = co.attribute(x1, x2, resize=False)
    one = co.attribute(x1[1:2], x2[1:2], resize=False)
    torch.testing.assert_close(full[0][1:2], one[0], atol=1e-6, rtol=1e-4)  # raw drops: no min-max
    S.InteractionCAM(enc, enc.backbone.layer3, reduction="attn", grad_interact=True).attribute(x1, x2)
    S.AveragedTransforms(enc, guided=True).attribute(x1, x2)
    assert same_state(before, state_fingerprint(enc)) == []


def test_different_image_sizes(enc, rng):
    """Methods that explain each image against the other's embedding accept different sizes."""
    x1, x2 = torch.rand(2, 3, 32, 32, generator=rng), torch.rand(2, 3, 40, 24, generator=rng)
    m1, m2 = S.ConditionalOcclusion(enc, window=8, stride=8).attribute(x1, x2)
    assert m1.shape == (2, 1, 32, 32) and m2.shape == (2, 1, 40, 24)
    p1, p2 = S.PairwiseOcclusion(enc, num_erases=5).attribute(x1, x2)
    assert p2.shape == (2, 1, 40, 24) and float(p1.max()) <= 1 and float(p2.max()) <= 1
    c1, c2 = S.InteractionCAM(enc, enc.backbone.layer3).attribute(x1, x2)
    assert c2.shape == (2, 1, 40, 24)


def test_scipy_helpers(rng):
    x = torch.randn(2, 3, 5, 7, generator=rng, dtype=torch.float64)
    for sigma in (0.6, 2.5):  # radius 10 > the 5-pixel side: the reflection wraps
        torch.testing.assert_close(gaussian_filter1d(x, sigma, 2),
                                   torch.from_numpy(ndimage.gaussian_filter1d(x.numpy(), sigma, axis=2)))
    z = ndimage.zoom(x.numpy(), (1, 1, 4 / 5, 5 / 7), order=1)
    torch.testing.assert_close(zoom_linear(x, (4, 5)), torch.from_numpy(z))


def _dream_direct(enc, ref_img, init, octaves, scale, iters, lr):
    """xai-self-supervision ``deepdream`` (score maximisation) for one image, NumPy/SciPy loops."""
    with torch.no_grad():
        ref = enc(ref_img)
    octs = [init[0].numpy()]
    for _ in range(octaves - 1):
        octs.append(ndimage.zoom(octs[-1], (1, 1 / scale, 1 / scale), order=1))
    detail = np.zeros_like(octs[-1])
    for k, base in enumerate(octs[::-1]):
        if k > 0:
            h, w = base.shape[-2:]
            detail = ndimage.zoom(detail, (1, h / detail.shape[1], w / detail.shape[2]), order=1)
        src = base + detail
        for i in range(iters):
            x = torch.from_numpy(src[None].copy()).requires_grad_()
            obj = torch.cosine_similarity(enc(x), ref) - 1e-3 * x.norm() - 1e-3 * tv_l2(x)
            obj.sum().backward()
            g = x.grad[0].numpy()
            sigma = 2 * (i + 1) / iters + 0.5
            g = ndimage.gaussian_filter1d(ndimage.gaussian_filter1d(g, sigma, axis=1), sigma, axis=2)
            src = np.clip(src + lr / np.abs(g).mean() * g, 0, 1)
        detail = src - base
    return torch.from_numpy(src)


def test_feature_visualization_equals_direct_loop(enc, rng):
    enc = enc.double()
    ref = torch.rand(2, 3, 24, 24, generator=rng, dtype=torch.float64)
    fv = S.FeatureVisualization(enc, octaves=3, iterations=3, seed=int(rng.seed() % 1000))
    out = fv.attribute(ref)
    init = fv.init(ref.shape, ref.dtype)
    for b in range(2):
        torch.testing.assert_close(out[b], _dream_direct(enc, ref[b:b + 1], init[b:b + 1], 3, 1.4, 3, 0.01))
    feat = S.FeatureVisualization(enc, mode="feature", octaves=1, iterations=1).attribute(ref)
    assert feat.shape == ref.shape and not torch.equal(feat, out)


def _check_model_difference(phi_a: nn.Module, phi_b: nn.Module, x0: torch.Tensor) -> None:
    """ModelDifference == the reference's loop, one image at a time, for both directions."""
    md = S.ModelDifference(phi_a, phi_b, iterations=5, lr=1e3, decay_every=2)
    a, b = md.attribute(x0)
    for phi, out, decay in ((phi_a, a, True), (phi_b, b, False)):
        for i0 in range(x0.shape[0]):  # one image at a time, as the reference
            x = md.init(x0.shape, x0.dtype)[i0:i0 + 1].clone().requires_grad_()
            opt = torch.optim.SGD([x], lr=1e3, momentum=0.9)
            with torch.no_grad():
                t = phi(x0[i0:i0 + 1])
            for i in range(5):
                if decay and i % 2 == 0:
                    opt.param_groups[0]["lr"] *= 0.1
                x.data.clamp_(0, 1)
                loss = 0.1 * (phi(x) - t).pow(2).sum() / t.pow(2).sum() + 1e-7 * x.pow(6).sum() \
                    + 1e-8 * tv_l2(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            torch.testing.assert_close(out[i0], x.detach().clamp(0, 1)[0])


def test_model_difference_equals_direct_loop(enc, rng):
    enc = enc.double()
    phi_a = nn.Sequential(enc.backbone.stem, enc.backbone.layer1).eval()
    phi_b = nn.Sequential(enc.backbone.stem).eval()
    _check_model_difference(phi_a, phi_b, torch.rand(2, 3, 16, 16, generator=rng,
                                                      dtype=torch.float64))


@pytest.mark.parametrize("name", ["resnet50", "vit"])
def test_synthesis_on_torchvision_encoders(name, rng, encoders):
    """FeatureVisualization and ModelDifference on a random ResNet-50 (randomised BN) and a
    ViT-B/16 equal the direct loops, as on the demo encoder (the ViT takes one size only: one
    octave)."""
    model, _, _ = encoders(name)
    size, octaves = (32, 1) if name == "vit" else (24, 2)
    ref = torch.rand(1, 3, size, size, generator=rng, dtype=torch.float64)
    fv = S.FeatureVisualization(model, octaves=octaves, iterations=2,
                                seed=int(torch.randint(1000, (1,), generator=rng)))
    out = fv.attribute(ref)
    init = fv.init(ref.shape, ref.dtype)
    torch.testing.assert_close(out[0], _dream_direct(model, ref, init, octaves, 1.4, 2, 0.01))
    if name == "vit":  # the whole encoder against its patch embedding (Tensor[N, 768, 2, 2])
        phi_a, phi_b = model, model.conv_proj
    else:  # two depths of the backbone
        phi_a = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1)
        phi_b = nn.Sequential(model.conv1, model.bn1, model.relu)
    phi_a, phi_b = phi_a.eval(), phi_b.eval()
    before = [state_fingerprint(m) for m in (phi_a, phi_b)]
    _check_model_difference(phi_a, phi_b, ref)
    assert all(same_state(b, state_fingerprint(m)) == [] for b, m in zip(before, (phi_a, phi_b)))
