"""Video IO through PyAV: round trips, overlays in the written video, and every kind of bad input
(a ValueError naming the source, the output finalised up to the last good frame)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai.video import VideoExplainer
from pyxai.video.io import VideoWriter, iter_frames
from pyxai.video.overlay import colorize, normalize_map, overlay_frame
from tests.video._helpers import frame_cnn, frames

av = pytest.importorskip("av")


def _write(path, images: list[np.ndarray], fps: float = 10.0, codec=None) -> str:
    with VideoWriter(path, fps, codec=codec) as w:
        for img in images:
            w.write(img)
        return w.codec


def _read(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _smooth_frames(g: torch.Generator, n: int, size: int = 32) -> list[np.ndarray]:
    """Smooth random images (compress well, so a round trip is close)."""
    low = torch.rand(n, 3, 4, 4, generator=g)
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return [(f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for f in up]


@pytest.mark.parametrize("codec", [None, "mpeg4"])
def test_write_then_read_round_trip(tmp_path, rng, codec):
    imgs = _smooth_frames(rng, 6)
    used = _write(tmp_path / "a.mp4", imgs, codec=codec)
    assert used == (codec or "libx264")
    back = list(iter_frames(str(tmp_path / "a.mp4")))
    assert len(back) == 6 and back[0].shape == (3, 32, 32)
    for a, b in zip(imgs, back):
        err = np.abs(a.astype(float) / 255 - b.permute(1, 2, 0).numpy()).mean()
        # lossy 4:2:0 at 32 x 32: libx264 measured median 0.024, max 0.032 over 300 seeds x 6
        # frames (2 Dec 2026); a wrong frame or channel order is ~0.2
        assert err < 0.045


def test_directory_and_tensor_sources(tmp_path, rng):
    from PIL import Image

    imgs = _smooth_frames(rng, 3)
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(tmp_path / f"f{i:03d}.png")
    got = torch.stack(list(iter_frames(str(tmp_path))))
    want = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(got, want)
    t = frames(rng, 4)
    torch.testing.assert_close(torch.stack(list(iter_frames(t))), t)
    torch.testing.assert_close(torch.stack(list(iter_frames([t[:2], t[2], t[3:]]))), t)
    u8 = (t * 255).to(torch.uint8)
    torch.testing.assert_close(torch.stack(list(iter_frames(u8))), u8.float() / 255)


def test_overlay_draws_the_map_and_text():
    frame = torch.full((3, 32, 32), 0.5)
    heat = torch.zeros(1, 32, 32)
    heat[0, 20:28, 20:28] = 1.0
    img = overlay_frame(frame, heat, "right", 0.9, 25.0, alpha=0.5)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    hot, cold = img[24, 24].astype(int), img[24, 4].astype(int)  # jet: red peak, blue background
    assert hot[0] > hot[2] + 50 and cold[2] > cold[0] + 50
    plain = overlay_frame(frame, heat, None, None, None)
    assert (img[:8] != plain[:8]).any()  # the text box
    np.testing.assert_array_equal(img[16:], plain[16:])
    torch.testing.assert_close(colorize(normalize_map(heat))[:, 24, 24], torch.tensor([0.5, 0, 0]),
                               atol=0.01, rtol=0)


@pytest.mark.parametrize("kind", ["float", "uint8", "grey", "out_of_range"])
def test_overlay_frame_equals_the_torch_composition(rng, kind):
    """The NumPy overlay == normalize_map + colorize + blend + uint8 rounding in PyTorch."""
    from pyxai.viz import to_uint8

    frame = torch.rand(1 if kind == "grey" else 3, 24, 40, generator=rng)
    if kind == "uint8":
        frame = (frame * 255).to(torch.uint8)
    if kind == "out_of_range":
        frame = frame * 1.4 - 0.2
    rgb = frame.float() / 255 if frame.dtype == torch.uint8 else frame.clamp(0, 1)
    rgb = rgb.expand(3, -1, -1)
    for heat in (torch.randn(1, 24, 40, generator=rng), torch.randn(1, 6, 10, generator=rng) * 50):
        for alpha, cmap in ((0.5, "jet"), (0.35, "viridis")):
            m = normalize_map(heat)
            if m.shape != (24, 40):
                m = torch.nn.functional.interpolate(m[None, None], size=(24, 40), mode="bilinear",
                                                    align_corners=False)[0, 0]
            want = to_uint8(((1 - alpha) * rgb + alpha * colorize(m, cmap)).permute(1, 2, 0))
            np.testing.assert_array_equal(overlay_frame(frame, heat, None, alpha=alpha, cmap=cmap),
                                          want)
    np.testing.assert_array_equal(overlay_frame(frame, None), to_uint8(rgb.permute(1, 2, 0)))


def test_explain_file_writes_overlays_and_maps(tmp_path, rng):
    model = frame_cnn(rng)
    x = torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in _smooth_frames(rng, 7)]) / 255
    vx = VideoExplainer(model, "gradcam", batch_frames=3, layer=model[3])
    stats = vx.explain_file(x, out=tmp_path / "o.mp4", maps=tmp_path / "m.npz", fps=5, scale=4)
    assert stats["frames"] == 7 and stats["fps"] > 0 and stats["model_fps"] > 0
    assert stats["latency_p95_ms"] >= stats["latency_p50_ms"] > 0
    back = _read(tmp_path / "o.mp4")
    assert len(back) == 7
    saved = np.load(tmp_path / "m.npz")
    assert saved["maps"].shape == (7, 1, 32, 32) and saved["scores"].shape == (7,)
    streamed = list(vx.stream(x))
    for i in (0, 3, 6):  # the decoded frame is the overlay of that frame's map
        _, frame, heat, score = streamed[i]
        np.testing.assert_allclose(saved["maps"][i], heat.numpy(), atol=1e-3)
        want = overlay_frame(frame, heat, f"class {int(model(frame[None]).argmax())}", score,
                             None, scale=4).astype(float)
        plain = overlay_frame(frame, None, scale=4).astype(float)
        below = slice(16, None)  # under the text line
        err = np.abs(back[i][below].astype(float) - want[below]).mean()
        assert err < 8 and err < 0.5 * np.abs(back[i][below] - plain[below]).mean()


def test_missing_corrupt_and_streamless_files(tmp_path):
    with pytest.raises(ValueError, match="not found.*nope.mp4"):
        list(iter_frames(str(tmp_path / "nope.mp4")))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(ValueError, match="bad.mp4"):
        list(iter_frames(str(bad)))
    wav = tmp_path / "audio.wav"
    with av.open(str(wav), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(ValueError, match="audio.wav.*no video stream"):
        list(iter_frames(str(wav)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no frame images"):
        list(iter_frames(str(empty)))


def test_zero_frames_resolution_change_and_bad_frames(rng):
    with pytest.raises(ValueError, match="no frames"):
        list(iter_frames([]))
    with pytest.raises(ValueError, match="no frames"):
        list(iter_frames(torch.zeros(0, 3, 8, 8)))
    with pytest.raises(ValueError, match="frame 2 has shape .*resolution change"):
        list(iter_frames([torch.rand(3, 8, 8), torch.rand(3, 8, 8), torch.rand(3, 9, 8)]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        list(iter_frames(torch.full((2, 3, 4, 4), float("nan"))))
    with pytest.raises(TypeError, match="item 1 is a str"):
        list(iter_frames([torch.rand(3, 4, 4), "x"]))
    with pytest.raises(TypeError, match="must be a video path"):
        list(iter_frames(42))


def test_frames_that_do_not_fit_the_model(rng):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    vx = VideoExplainer(model, "saliency")
    with pytest.raises(ValueError, match=r"Tensor\[5, 3, 9, 9\].*frames of shape \(3, 9, 9\) do not fit"):
        list(vx.stream(torch.rand(5, 3, 9, 9)))
    clip_vx = VideoExplainer(model, "saliency", clip_len=6)
    with pytest.raises(ValueError, match="3 frames are fewer than clip_len=6"):
        list(clip_vx.stream(torch.rand(3, 3, 8, 8)))


def test_unwritable_output(tmp_path, rng):
    with pytest.raises(ValueError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "dir" / "o.mp4")
    with pytest.raises(ValueError, match="not writable"):
        VideoWriter(tmp_path)
    model = frame_cnn(rng)
    with pytest.raises(ValueError, match="output"):
        VideoExplainer(model, "gradcam").explain_file(frames(rng, 2), out=tmp_path / "x" / "o.mp4")


def _stopping_source(g: torch.Generator, good: int, exc: BaseException):
    x = frames(g, good, size=16)
    yield from x
    raise exc


@pytest.mark.parametrize("clip_len", [None, 3])
def test_a_stream_that_stops_keeps_every_explained_frame(tmp_path, rng, clip_len):
    model = frame_cnn(rng) if clip_len is None else _clip_model(rng)
    vx = VideoExplainer(model, "saliency", clip_len=clip_len, batch_frames=4)
    out = tmp_path / "o.mp4"
    with pytest.raises(ValueError, match="camera unplugged"):
        vx.explain_file(_stopping_source(rng, 6, ValueError("camera unplugged")), out=out)
    assert len(_read(out)) == 6  # the partial batch was explained too, the file finalised


def test_ctrl_c_finalises_the_output(tmp_path, rng):
    model = frame_cnn(rng)
    vx = VideoExplainer(model, "gradcam", batch_frames=2)
    out = tmp_path / "o.mp4"
    with pytest.raises(KeyboardInterrupt):
        vx.explain_file(_stopping_source(rng, 5, KeyboardInterrupt()), out=out)
    assert len(_read(out)) == 4  # the two full batches before the interrupt


def _clip_model(g):
    from tests.video._helpers import clip_cnn

    return clip_cnn(g)


def test_pipeline_errors_surface_in_the_caller():
    from pyxai.video.pipeline import BackgroundSink, prefetch

    seen = []
    sink = BackgroundSink(seen.append, depth=2)
    for i in range(10):
        sink.submit(i)
    sink.close()
    assert seen == list(range(10))

    def boom(item):
        raise RuntimeError("encoder broke")

    sink = BackgroundSink(boom)
    with pytest.raises(RuntimeError, match="encoder broke"):
        for i in range(100):
            sink.submit(i)
        sink.close()
    assert list(prefetch(iter(range(20)), depth=3)) == list(range(20))


def test_preset(tmp_path, rng):
    imgs = _smooth_frames(rng, 3)
    with VideoWriter(tmp_path / "slow.mp4", 10, preset="medium") as w:
        for img in imgs:
            w.write(img)
    assert len(list(iter_frames(str(tmp_path / "slow.mp4")))) == 3
    with VideoWriter(tmp_path / "threads.mp4", 10, threads=0) as w:  # the encoder's own choice
        for img in imgs:
            w.write(img)
    assert len(list(iter_frames(str(tmp_path / "threads.mp4")))) == 3
    with pytest.raises(ValueError, match="preset must be one of"):
        VideoWriter(tmp_path / "x.mp4", 10, preset="quick")
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be an int >= 0"):
            VideoWriter(tmp_path / "x.mp4", 10, threads=bad)
