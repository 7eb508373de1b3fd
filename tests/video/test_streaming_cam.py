"""Streaming Score-CAM and SIDU: with a budget of every channel each frame equals the full method;
with a smaller budget a still scene reaches the full map once every channel was evaluated, a change
of target reuses the kept outputs, and VideoExplainer's streaming mode is the same computation."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

import pyxai
from pyxai.engine.view import same_state, state_fingerprint
from pyxai.video import VideoExplainer
from pyxai.video.streaming_cam import ChannelBudget, StreamingScoreCAM, StreamingSIDU
from tests.gradient._models import randomise_bn
from tests.video._helpers import frame_cnn, frames

CHANNELS = 12  # frame_cnn's model[3]


def _full(method: str, model, layer, x, target=None):
    if method == "scorecam":
        return pyxai.ScoreCAM(model, [layer], batch_size=8).attribute(x, target)
    return pyxai.SIDU(model, layer, softmax=True, batch_size=8).attribute(x, target)


def _live(method: str, model, layer, k: int):
    if method == "scorecam":
        return StreamingScoreCAM(model, [layer], masks_per_frame=k, batch_size=8)
    return StreamingSIDU(model, layer, masks_per_frame=k, softmax=True, batch_size=8)


def _net_with_a_map(rng, method: str, target=None):
    """A random frame_cnn and frame whose full map is not all zero. A random net can give a
    target an all-zero Score-CAM map (the channel-weighted sum negative everywhere before the
    ReLU: seeds 1621992943, 1101850685), which no budget changes and no partial map can differ
    from; such a draw is replaced (at most 20 tries)."""
    for _ in range(20):
        model = frame_cnn(rng)
        x = frames(rng, n=1)
        full = _full(method, model, model[3], x, target)
        if full.abs().max() > 1e-3:
            return model, x, full
    pytest.fail(f"20 random nets all gave target {target} an all-zero map")


@pytest.mark.parametrize("method", ["scorecam", "sidu"])
def test_whole_budget_equals_the_full_method_on_every_frame(rng, method):
    model = frame_cnn(rng)
    x = frames(rng, n=4)
    live = _live(method, model, model[3], CHANNELS)
    for t in range(4):
        got = live.update(x[t : t + 1])
        torch.testing.assert_close(got, _full(method, model, model[3], x[t : t + 1]),
                                   atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["scorecam", "sidu"])
def test_still_scene_reaches_the_full_map_once_every_channel_is_evaluated(rng, method):
    model, x, full = _net_with_a_map(rng, method)
    k = 5
    rounds = math.ceil(CHANNELS / k)
    live = _live(method, model, model[3], k)
    maps = [live.update(x) for _ in range(rounds + 1)]
    assert not torch.allclose(maps[0], full, atol=1e-4)  # partial: 5 of 12 channels
    for m in maps[rounds - 1 :]:
        torch.testing.assert_close(m, full, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["scorecam", "sidu"])
def test_a_new_target_reuses_the_kept_outputs(rng, method):
    model, x, _ = _net_with_a_map(rng, method, 3)
    live = _live(method, model, model[3], 4)
    for _ in range(math.ceil(CHANNELS / 4)):
        live.update(x, 1)
    torch.testing.assert_close(live.update(x, 3), _full(method, model, model[3], x, 3),
                               atol=1e-6, rtol=1e-5)
    live.reset()
    assert not torch.allclose(live.update(x, 3), _full(method, model, model[3], x, 3), atol=1e-4)


def test_scorecam_resnet18_random_bn(rng):
    model = randomise_bn(torchvision.models.resnet18(num_classes=7), rng).eval()
    x = torch.rand(1, 3, 48, 48, generator=rng)
    layer = model.layer3[-1]  # 256 channels, 3 x 3
    before = state_fingerprint(model)
    live = StreamingScoreCAM(model, [layer], masks_per_frame=128, batch_size=64)
    live.update(x)
    got = live.update(x)
    assert same_state(before, state_fingerprint(model)) == []
    torch.testing.assert_close(got, pyxai.ScoreCAM(model, [layer], batch_size=64).attribute(x),
                               atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["scorecam", "sidu"])
def test_video_explainer_streaming_mode(rng, method):
    model = frame_cnn(rng)
    x = frames(rng, n=5)
    kw = {"batch_size": 8}
    vx = VideoExplainer(model, method, masks_per_frame=CHANNELS, layer=model[3], **kw)
    out = list(vx.stream(x))
    assert [o[0] for o in out] == list(range(5))
    for t, (_, frame, heat, score) in enumerate(out):
        torch.testing.assert_close(frame, x[t])
        ref = _full(method, model, model[3], x[t : t + 1])[0]
        torch.testing.assert_close(heat, ref.float(), atol=1e-6, rtol=1e-5)
        with torch.no_grad():
            best = float(model(x[t : t + 1]).max())
        assert score == pytest.approx(best, rel=1e-5)
    # a second stream starts afresh: its first frame equals the first frame of the first stream
    small = VideoExplainer(model, method, masks_per_frame=5, layer=model[3], **kw)
    first = [o[2] for o in small.stream(x[:3])]
    again = [o[2] for o in small.stream(x[:1])]
    torch.testing.assert_close(again[0], first[0])


def test_bad_input(rng):
    model = frame_cnn(rng)
    x = frames(rng, n=2)
    with pytest.raises(ValueError, match="masks_per_frame"):
        StreamingScoreCAM(model, [model[3]], masks_per_frame=0)
    with pytest.raises(ValueError, match="masks_per_frame"):
        StreamingSIDU(model, model[3], masks_per_frame=-2)
    with pytest.raises(ValueError, match="frame must be Tensor"):
        StreamingSIDU(model, model[3], masks_per_frame=4).update(x)
    with pytest.raises(ValueError, match="frame must be Tensor"):
        StreamingScoreCAM(model, [model[3]], masks_per_frame=4).update(x[0])
    with pytest.raises(ValueError, match="masks_per_frame .* 'scorecam'"):
        VideoExplainer(model, "gradcam", masks_per_frame=4)
    budget = ChannelBudget(3)
    budget.select(12)
    with pytest.raises(ValueError, match="reset"):
        budget.select(8)
