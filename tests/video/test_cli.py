"""``pyxai video``: the bundled demo, user videos with torchvision models, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from pyxai.cli import main
from pyxai.video.io import VideoWriter

av = pytest.importorskip("av")


def _n_frames(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_no_arguments_explains_the_bundled_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["video", "--n", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "16 frames" in out and "frames/s explained" in out and "demo_video.mp4" in out
    video = tmp_path / "pyxai_out" / "demo_video.mp4"
    assert _n_frames(video) == 16
    with av.open(str(video)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert frame.shape == (256, 256, 3)  # the 64x64 demo upscaled 4x for legible text
    assert frame[:10, :40].mean() < 80  # the dark text box of label / score / fps


def test_user_video_with_a_torchvision_frame_model(tmp_path, capsys, rng):
    src = tmp_path / "in.mp4"
    with VideoWriter(src, 10) as w:
        for _ in range(5):
            w.write(np.full((40, 48, 3), 120, np.uint8))
    out = tmp_path / "out.mp4"
    rc = main(["video", str(src), "--model", "torchvision:resnet18", "--size", "32",
               "--batch-frames", "2", "-o", str(out), "--maps", str(tmp_path / "m.npz"),
               "--no-progress", "--preset", "veryfast"])
    assert rc == 0, capsys.readouterr().err
    assert _n_frames(out) == 5
    with pytest.raises(SystemExit):  # argparse names the choices
        main(["video", str(src), "--preset", "quick"])
    assert "invalid choice: 'quick'" in capsys.readouterr().err
    assert np.load(tmp_path / "m.npz")["maps"].shape == (5, 1, 40, 48)


@pytest.mark.parametrize("method", ["scorecam", "sidu"])
def test_streaming_channel_methods(tmp_path, capsys, rng, method):
    src = tmp_path / "in.mp4"
    with VideoWriter(src, 10) as w:
        for i in range(4):
            w.write(np.full((32, 32, 3), 60 * i, np.uint8))
    out = tmp_path / "out.mp4"
    rc = main(["video", str(src), "--model", "demo", "--method", method, "--masks-per-frame", "8",
               "-o", str(out), "--maps", str(tmp_path / "m.npz"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert _n_frames(out) == 4
    maps = np.load(tmp_path / "m.npz")["maps"]
    assert maps.shape == (4, 1, 32, 32) and np.isfinite(maps).all()


@pytest.mark.parametrize("argv, message", [
    (["video", "missing.mp4"], "video source not found: missing.mp4"),
    (["video", "--method", "nope"], "unknown method 'nope'"),
    (["video", "BAD", "--model", "demo"], "cannot open as a video"),
    (["video", "--n", "1", "-o", "/nonexistent/dir/o.mp4"], "does not exist"),
])
def test_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD").write_bytes(b"not a video" * 50)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
