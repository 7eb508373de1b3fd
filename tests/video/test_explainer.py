"""VideoExplainer: per-frame maps equal the plain explainer's, clip windows equal a direct loop,
streaming RISE equals its running-sum formula, and the model is never modified."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

import pyxai
from pyxai import registry
from pyxai.engine.view import same_state, state_fingerprint
from pyxai.video import StreamingRISE, VideoExplainer
from pyxai.video.clips import window_starts
from tests.gradient._models import randomise_bn
from tests.video._helpers import clip_cnn, frame_cnn, frames


def _collect(vx: VideoExplainer, source) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
    out = list(vx.stream(source))
    idx = [o[0] for o in out]
    return idx, torch.stack([o[1] for o in out]), torch.stack([o[2] for o in out]), \
        torch.tensor([o[3] for o in out])


@pytest.mark.parametrize("method", ["gradcam", "saliency", "rise"])
def test_frame_maps_equal_the_plain_explainer(rng, method):
    model = frame_cnn(rng)
    x = frames(rng, n=11)
    kw = {"n_masks": 64, "batch_size": 32} if method == "rise" else {}
    layer = model[3] if registry.get(method).needs_layer else None
    vx = VideoExplainer(model, method, batch_frames=4, layer=layer, **kw)
    idx, got_frames, maps, scores = _collect(vx, x)
    assert idx == list(range(11))
    torch.testing.assert_close(got_frames, x)
    ref = registry.build(method, model, layer, **kw)(x, None)
    if ref.shape[1] != 1:
        ref = ref.sum(1, keepdim=True)
    torch.testing.assert_close(maps, ref.float(), atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(scores, logits.max(1).values, atol=1e-5, rtol=1e-5)


_FAST = {"rise": {"n_masks": 32}, "sobol": {"nb_design": 4}, "extremal": {"max_iter": 3},
         "meaningful": {"iterations": 3, "mask_size": 8}, "integrated_gradients": {}}


@pytest.mark.parametrize("method", registry.names(inputs="image"))
def test_every_registry_method_streams_its_own_maps(rng, method):
    model = frame_cnn(rng)
    x = frames(rng, n=3, size=32)
    kw = _FAST.get(method, {})
    layer = model[3] if registry.get(method).needs_layer else None
    torch.manual_seed(0)  # SmoothGrad's noise
    np.random.seed(0)  # GradientShap's baseline draws (Captum's NumPy RNG)
    _, _, maps, _ = _collect(VideoExplainer(model, method, batch_frames=3, layer=layer, **kw), x)
    torch.manual_seed(0)
    np.random.seed(0)
    ref = registry.build(method, model, layer, **kw)(x, None).detach().float()
    ref = ref.flatten(1, -3) if ref.dim() > 4 else ref
    torch.testing.assert_close(maps, ref.sum(1, keepdim=True), atol=1e-5, rtol=1e-4)


def test_frame_maps_resnet18_with_fixed_target(rng):
    model = randomise_bn(torchvision.models.resnet18(num_classes=7), rng).eval()
    x = frames(rng, n=5, size=32)
    vx = VideoExplainer(model, "gradcam", batch_frames=2, target=3, layer=model.layer3)
    _, _, maps, scores = _collect(vx, list(x))  # an iterable of Tensor[C, H, W]
    ref = pyxai.GradCAM(model, target_layers=[model.layer3]).attribute(x, target=3)
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(scores, model(x)[:, 3], atol=1e-5, rtol=1e-5)


def _direct_window_average(model, method_layer, x_frames, clip_len, stride, method="gradcam"):
    """The reference: every window explained alone, each frame the mean of its windows' maps."""
    n = x_frames.shape[0]
    total = torch.zeros(n, 1, *x_frames.shape[-2:])
    count = torch.zeros(n)
    score = torch.zeros(n)
    explain = registry.build(method, model, method_layer)
    for s in window_starts(n, clip_len, stride):
        clip = x_frames[s : s + clip_len].transpose(0, 1)[None]  # [1, C, T, H, W]
        m = explain(clip, None)[0]  # [1 or C, T, H, W]
        m = m.sum(0, keepdim=True) if m.shape[0] != 1 else m
        with torch.no_grad():
            sc = model(clip).max(1).values[0]
        total[s : s + clip_len] += m.transpose(0, 1)
        count[s : s + clip_len] += 1
        score[s : s + clip_len] += sc
    return total / count[:, None, None, None], score / count


@pytest.mark.parametrize("n, clip_len, stride, batch", [(13, 6, 3, 2), (9, 4, 1, 3), (8, 8, 2, 1)])
def test_clip_windows_equal_a_direct_loop(rng, n, clip_len, stride, batch):
    model = clip_cnn(rng)
    x = frames(rng, n=n, size=16)
    vx = VideoExplainer(model, "gradcam", clip_len=clip_len, stride=stride, batch_frames=batch,
                        layer=model[3])
    idx, _, maps, scores = _collect(vx, x)
    assert idx == list(range(n))
    ref, ref_scores = _direct_window_average(model, model[3], x, clip_len, stride)
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(scores, ref_scores, atol=1e-5, rtol=1e-5)


def test_clip_windows_saliency_r3d_18(rng):
    from torchvision.models.video import r3d_18

    model = randomise_bn(r3d_18(num_classes=5), rng).eval()
    x = frames(rng, n=5, size=16)
    vx = VideoExplainer(model, "saliency", clip_len=4, stride=2)  # windows [0, 4) and [1, 5)
    _, _, maps, scores = _collect(vx, x)
    ref, ref_scores = _direct_window_average(model, None, x, 4, 2, method="saliency")
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(scores, ref_scores, atol=1e-4, rtol=1e-5)


def test_window_starts_cover_every_frame():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 5) == [0]
    with pytest.raises(ValueError, match="fewer than clip_len"):
        window_starts(3, 4, 1)


@pytest.mark.parametrize("center", [False, True])
def test_streaming_rise_is_the_decayed_running_mean(rng, center):
    model = frame_cnn(rng)
    x = frames(rng, n=5, size=16)
    k, pool, decay = 24, 60, 0.7
    vx = VideoExplainer(model, "rise", masks_per_frame=k, decay=decay, n_masks=pool, seed=3,
                        batch_size=16, center=center)
    _, _, maps, _ = _collect(vx, x)
    # reference: per frame, the masks [t*k, t*k + k) mod pool of one RISE pool; S, N (and B, the
    # centred run's mean scores) decayed sums
    rise = pyxai.RISE(model, n_masks=pool, seed=3, batch_size=16)
    grids, offsets, canvas = rise.sample_masks(16, 16)
    from pyxai.ops.masks import upsample_masks

    all_masks = upsample_masks(grids, (16, 16), offsets, canvas, "bilinear_reflect")
    all_masks = all_masks.reshape(pool, 1, 16, 16)
    s_run, n_run, b_run = torch.zeros(1, 16, 16), 0.0, 0.0
    for t in range(5):
        ids = [(t * k + i) % pool for i in range(k)]
        with torch.no_grad():
            cls = int(model(x[t : t + 1]).argmax(1))
            scores = model(x[t : t + 1] * all_masks[ids])[:, cls]
        b = float(scores.mean()) if center else 0.0
        s_run = decay * s_run + ((scores[:, None, None] - b) * all_masks[ids, 0]).sum(0)
        n_run = decay * n_run + k
        b_run = decay * b_run + k * b
        torch.testing.assert_close(maps[t], s_run / n_run / rise.p + b_run / n_run, atol=1e-5,
                                   rtol=1e-4)


def test_streaming_rise_converges_on_a_still_scene(rng):
    model = frame_cnn(rng)
    x = frames(rng, n=1, size=16)
    full = pyxai.RISE(model, n_masks=400, seed=0, batch_size=100).attribute(x)
    maps = {}
    for center in (False, True):
        srise = StreamingRISE(model, masks_per_frame=50, decay=0.999, n_masks=400, seed=0,
                              batch_size=100, center=center)
        for _ in range(8):  # the whole pool once, almost undecayed
            maps[center] = srise.update(x)
    corr = torch.corrcoef(torch.stack([maps[False].flatten(), full.flatten()]))[0, 1]
    assert corr > 0.999
    # centred: the same expectation; the pool's mask pattern times the mean score is left out.
    # Not exactly: each slice of 50 masks is centred on its own mean score b_t, not the pool's
    # b, which leaves -sum_t (b_t - b) (P_t - 1/8) (P_t: slice t's mask pattern), of the order
    # of the scores' spread: measured max|error| / std(scores) 0.010-0.017 over 31 seeds (seed
    # 2057917268: 0.013, where the map itself is 50x smaller than that spread), so 0.05.
    scores = []

    def recorded(z: torch.Tensor) -> torch.Tensor:
        out = model(z)
        scores.append(out.detach())
        return out

    acc = pyxai.RISE(recorded, n_masks=400, seed=0, batch_size=100).accumulate(x)
    with torch.no_grad():
        predicted = int(model(x).argmax())
    spread = float(torch.cat(scores)[-400:, predicted].std())  # the 400 masks' scores
    ones = pyxai.RISE(lambda z: z.new_ones(z.shape[0], 1), n_masks=400, seed=0, batch_size=100)
    pattern = ones.attribute(x, target=0)  # sum_i m_i / (N p)
    mean_score = acc.sum_weights / acc.count
    want = full + mean_score * (1 - pattern)
    torch.testing.assert_close(maps[True], want, atol=0.05 * spread, rtol=0)


def test_streaming_rise_center_is_checked(rng):
    model = frame_cnn(rng)
    with pytest.raises(TypeError, match="center must be a bool"):
        StreamingRISE(model, masks_per_frame=4, n_masks=8, center=1)


def test_the_model_is_not_modified(rng):
    model = frame_cnn(rng).train()  # train mode: BatchNorm statistics must not move
    before = state_fingerprint(model)
    x = frames(rng, n=6, size=16)
    with pytest.warns(UserWarning):
        list(VideoExplainer(model, "gradcam", batch_frames=3).stream(x))
    with pytest.warns(UserWarning):
        list(VideoExplainer(model, "rise", masks_per_frame=8, n_masks=16).stream(x[:2]))
    clip = clip_cnn(rng)
    before_clip = state_fingerprint(clip)
    list(VideoExplainer(clip, "gradcam", clip_len=4, stride=2).stream(x))
    assert same_state(before, state_fingerprint(model)) == []
    assert same_state(before_clip, state_fingerprint(clip)) == []
    assert model.training and not clip.training


def test_transform_and_map_resized_to_the_frame(rng):
    model = frame_cnn(rng)
    x = frames(rng, n=3, size=20)

    def up(f: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(f, size=(32, 32), mode="bilinear", align_corners=False)

    _, _, maps, _ = _collect(VideoExplainer(model, "gradcam", transform=up), x)  # default layer
    ref = pyxai.GradCAM(model, target_layers=[model[5]]).attribute(up(x))
    ref = torch.nn.functional.interpolate(ref, size=(20, 20), mode="bilinear", align_corners=False)
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)


def test_a_clip_only_method_on_a_frame_model_is_refused():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    with pytest.raises(ValueError, match="clip_len"):
        VideoExplainer(model, "step")
