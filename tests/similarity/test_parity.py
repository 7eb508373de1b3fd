"""Each similarity explainer equals the reference algorithm run one pair at a time
(tests/similarity/_reference.py), on the bundled SSL encoders, a ResNet-50 and a ViT-B/16."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import pyxai.similarity as S
from pyxai.benchmark import _similarity_original as ref
from pyxai.data import shapes

DEMOS = ["simclr", "barlow_twins"]
ALL = DEMOS + ["resnet50", "vit"]
SIZE = {"simclr": 64, "barlow_twins": 64, "resnet50": 32, "vit": 32}


def pairs(name: str, rng: torch.Generator, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh pairs: two pairs of random demo images for the demo encoders; one pair of float64
    noise images (32 x 32 unless ``size``) for the big random networks, to keep the tests fast."""
    s = size or SIZE[name]
    if name in DEMOS:
        x, _, _ = shapes(4, seed=int(torch.randint(1 << 20, (1,), generator=rng)), size=s)
        return x[:2], x[2:]
    x = torch.rand(2, 3, s, s, generator=rng, dtype=torch.float64)
    return x[:1], x[1:]


@pytest.mark.parametrize("name", ALL)
def test_conditional_occlusion(name, rng, encoders):
    enc, _, _ = encoders(name)
    x1, x2 = pairs(name, rng)
    w, s = (24, 10) if name in DEMOS else (16, 16)
    m1, m2 = S.ConditionalOcclusion(enc, window=w, stride=s).attribute(x1, x2, resize=False)
    for b in range(x1.shape[0]):
        r1, r2 = ref.occlusion(x1[b:b + 1], x2[b:b + 1], enc, w, s)
        torch.testing.assert_close(m1[b, 0].double(), torch.from_numpy(r1), atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(m2[b, 0].double(), torch.from_numpy(r2), atol=2e-4, rtol=1e-4)
    if name in DEMOS:  # resize=True: the grid upsampled as the reference displays it (cv2 bilinear)
        full1, full2 = S.ConditionalOcclusion(enc, window=w, stride=s).attribute(x1, x2)
        torch.testing.assert_close(full1, F.interpolate(m1, size=x1.shape[2:], mode="bilinear",
                                                        align_corners=False))
        assert full2.shape == x2[:, :1].shape


def test_conditional_occlusion_raw_drop(rng, encoders):
    """normalize=False: the similarity drop base - cos itself (the older reference versions)."""
    enc, _, _ = encoders("simclr")
    x1, x2 = pairs("simclr", rng)
    co = S.ConditionalOcclusion(enc, window=24, stride=10, normalize=False)
    m1, m2 = co.attribute(x1, x2, resize=False)
    for b in range(x1.shape[0]):
        r1, r2 = ref.occlusion(x1[b:b + 1], x2[b:b + 1], enc, 24, 10, normalize=False)
        torch.testing.assert_close(m1[b, 0].double(), torch.from_numpy(r1), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m2[b, 0].double(), torch.from_numpy(r2), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["simclr", "resnet50"])
def test_context_agnostic_occlusion(name, rng, encoders):
    enc, _, _ = encoders(name)
    x1, x2 = pairs(name, rng)
    w, s = (32, 16) if name in DEMOS else (16, 16)
    m1, m2 = S.ContextAgnosticConditionalOcclusion(enc, window=w, stride=s).attribute(x1, x2, resize=False)
    for b in range(x1.shape[0]):
        r1, r2 = ref.occlusion_context_agnostic(x1[b:b + 1], x2[b:b + 1], enc, w, s)
        torch.testing.assert_close(m1[b, 0].double(), torch.from_numpy(r1), atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(m2[b, 0].double(), torch.from_numpy(r2), atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_pairwise_occlusion(name, rng, encoders):
    enc, _, _ = encoders(name)
    x1, x2 = pairs(name, rng)
    x1[:, :, :3, :3] = 0  # genuinely black pixels: counted as erased by the reference's detection
    seed = int(torch.randint(1 << 30, (1,), generator=rng))
    n = 8 if name in DEMOS else 4
    m1, m2 = S.PairwiseOcclusion(enc, num_erases=n, seed=seed, batch_size=7).attribute(x1, x2)
    torch.manual_seed(seed)
    for b in range(x1.shape[0]):
        r1, r2 = ref.pairwise_occlusion(x1[b:b + 1], x2[b:b + 1], enc, n)
        torch.testing.assert_close(m1[b, 0].double(), torch.from_numpy(r1), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m2[b, 0].double(), torch.from_numpy(r2), atol=1e-5, rtol=1e-4)


ICAM = [(n, r, i) for n in DEMOS for r, i in (("mean", False), ("max", True), ("attn", True))]
ICAM += [("resnet50", "attn", True), ("vit", "max", True), ("vit", "mean", False)]


@pytest.mark.parametrize("name,reduction,interact", ICAM)
def test_interaction_cam(name, reduction, interact, rng, encoders):
    enc, layer, reshape = encoders(name)
    x1, x2 = pairs(name, rng, size=64 if name == "resnet50" else None)  # layer4: 2 x 2
    cam = S.InteractionCAM(enc, layer, reduction=reduction, grad_interact=interact, reshape_transform=reshape)
    m1, m2 = cam.attribute(x1, x2, resize=False)
    for b in range(x1.shape[0]):
        r1, r2 = ref.interaction_cam(enc, layer, x1[b:b + 1], x2[b:b + 1], reduction, interact, reshape)
        scale = max(r1.abs().max(), r2.abs().max()).item() + 1e-30
        torch.testing.assert_close(m1[b, 0] / scale, r1 / scale, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m2[b, 0] / scale, r2 / scale, atol=1e-5, rtol=1e-4)
    if name in DEMOS:
        full, _ = cam.attribute(x1, x2)
        torch.testing.assert_close(full, F.interpolate(m1, size=x1.shape[2:], mode="bilinear",
                                                       align_corners=False))


@pytest.mark.parametrize("name,guided,blur", [("simclr", False, False), ("barlow_twins", True, True),
                                              ("resnet50", False, True)])
def test_averaged_transforms(name, guided, blur, rng, encoders):
    """In float64: the float32 gradients of a cosine close to 1 differ by up to 1 % of the map's
    maximum between batchings (measured on the demo encoders; float64 agrees to 1e-15)."""
    enc, _, _ = encoders(name)
    enc = copy.deepcopy(enc).double()
    x1, x2 = (x.double() for x in pairs(name, rng))
    step = {"simclr": 0.1, "barlow_twins": 0.2}.get(name, 0.3)  # shorter paths: fewer gradient pairs
    m1, m2 = S.AveragedTransforms(enc, step=step, guided=guided, blur_output=blur).attribute(x1, x2)
    for b in range(x1.shape[0]):
        r1, r2 = ref.averaged_transforms(enc, ref.mixed_images(x1[b:b + 1], x2[b:b + 1], step), guided, blur)
        scale = max(r1.abs().max(), r2.abs().max()).item()
        torch.testing.assert_close(m1[b] / scale, r1 / scale, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m2[b] / scale, r2 / scale, atol=1e-5, rtol=1e-4)


def test_averaged_transforms_noise(rng, encoders):
    """With add_noise the interior path images get N(0, sigma^2), sigma = 0.15 / (max - min) as
    coded; the saliency equals the reference run on that same path. In float64: with noise this
    large the float32 gradients of a cosine close to 1 differ by up to 1 % of the map's maximum
    between batchings (measured; float64 agrees to 1e-15)."""
    enc, _, _ = encoders("simclr")
    enc = copy.deepcopy(enc).double()
    x1, x2 = (x.double() for x in pairs("simclr", rng))
    x1 = x1 * 0.5  # max - min < 1: sigma = 0.15 / range is *larger* than 0.15
    at = S.AveragedTransforms(enc, add_noise=True, seed=3)
    path = at.path(x1, x2)
    clean = S.AveragedTransforms(enc).path(x1, x2)
    torch.testing.assert_close(path[[0, -1]], clean[[0, -1]])
    for b in range(x1.shape[0]):
        sigma = 0.15 / (x1[b].max() - x1[b].min()).item()
        noise = path[1:-1, b] - clean[1:-1, b]
        assert abs(noise.std().item() / sigma - 1) < 0.05
    m1, m2 = at.attribute(x1, x2)
    for b in range(x1.shape[0]):
        r1, r2 = ref.averaged_transforms(enc, [p[b:b + 1] for p in path])
        scale = max(r1.abs().max(), r2.abs().max()).item()
        torch.testing.assert_close(m1[b] / scale, r1 / scale, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m2[b] / scale, r2 / scale, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["simclr", "resnet50"])
def test_pixel_invariance(name, rng, encoders):
    enc, _, _ = encoders(name)
    x1, x2 = pairs(name, rng)
    pi = S.PixelInvariance(enc, n_augments=24 if name in DEMOS else 6, size=32, epochs=15, lr=0.05,
                           seed=int(rng.seed() % 1000))
    m1, m2 = pi.attribute(x1, x2)
    for img, maps in ((x1, m1), (x2, m2)):
        views, labels = pi.dataset(img)
        w, bias = pi.init_params(img.shape[0], img.shape[1], img.dtype)
        for b in range(img.shape[0]):
            with torch.no_grad():  # labels: cosine of each view to the pure image, as the reference
                direct = F.cosine_similarity(enc(img[b:b + 1]), enc(views[b]))
            torch.testing.assert_close(labels[b], direct, atol=1e-5, rtol=1e-4)
            pure = img[b:b + 1].expand(pi.n_augments, -1, -1, -1)
            heat = ref.pixel_invariance(pure, views[b], labels[b][:, None], 32, 15, 0.05, 0.2, w[b], bias[b])
            expect = F.interpolate(heat[None, None], size=img.shape[2:], mode="bilinear", align_corners=False)
            torch.testing.assert_close(maps[b:b + 1], expect, atol=2e-4, rtol=1e-3)


def test_pixel_invariance_nmf(rng, encoders):
    """The NMF (TIP) variant: targets from scikit-learn's NMF of relu(f(views)), the MSE term."""
    pytest.importorskip("sklearn")
    enc, _, _ = encoders("simclr")
    x1, x2 = pairs("simclr", rng)
    seed = int(torch.randint(1000, (), generator=rng))
    pi = S.PixelInvariance(enc, n_augments=24, size=32, epochs=15, lr=0.05, nmf_weight=0.5,
                           n_components=4, seed=seed)
    m1, m2 = pi.attribute(x1, x2)
    for img, maps in ((x1, m1), (x2, m2)):
        views, labels, embeddings = pi._dataset(img)
        targets = pi.nmf_targets(embeddings)
        w, bias = pi.init_params(img.shape[0], img.shape[1], img.dtype)
        for b in range(img.shape[0]):
            want = ref.nmf_invariance_labels(enc, views[b], 4, random_state=seed)
            torch.testing.assert_close(targets[b], want[:, 0].to(targets.dtype), atol=1e-5, rtol=1e-4)
            pure = img[b:b + 1].expand(pi.n_augments, -1, -1, -1)
            heat = ref.pixel_invariance(pure, views[b], labels[b][:, None], 32, 15, 0.05, 0.2, w[b], bias[b],
                                        labels_invariance=want.to(img.dtype), nmf_weight=0.5)
            expect = F.interpolate(heat[None, None], size=img.shape[2:], mode="bilinear", align_corners=False)
            torch.testing.assert_close(maps[b:b + 1], expect, atol=2e-4, rtol=1e-3)
    # the NMF term changes the map (it is not ignored)
    plain = S.PixelInvariance(enc, n_augments=24, size=32, epochs=15, lr=0.05, seed=seed).attribute(x1, x2)[0]
    assert not torch.allclose(plain, m1, atol=1e-4)
