"""Without PyAV: tensors still stream; files ask for the extra by name."""

from __future__ import annotations

import sys

import pytest
import torch

from pyxai.video import VideoExplainer
from pyxai.video.io import VideoWriter, iter_frames
from tests.video._helpers import frame_cnn, frames


def test_tensor_sources_work_and_files_name_the_extra(monkeypatch, tmp_path, rng):
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    x = frames(rng, 3, size=16)
    assert len(list(VideoExplainer(frame_cnn(rng), "saliency").stream(x))) == 3
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00" * 10)
    with pytest.raises(ImportError, match=r"pyxai-attribution\[video\]"):
        list(iter_frames(str(video)))
    with pytest.raises(ImportError, match=r"pyxai-attribution\[video\]"):
        VideoWriter(tmp_path / "o.mp4")
    torch.testing.assert_close(torch.stack(list(iter_frames(x))), x)
