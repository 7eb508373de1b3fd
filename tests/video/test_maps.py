"""Raw maps of a video run: ``.npz`` and Zarr (appended per block, memory flat) hold the same maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai.video import VideoExplainer
from pyxai.video.maps import MapsWriter
from tests.video._helpers import frame_cnn, frames

zarr = pytest.importorskip("zarr")


def test_zarr_equals_npz_and_the_stream(tmp_path, rng):
    model = frame_cnn(rng)
    x = frames(rng, 11, size=16)
    vx = VideoExplainer(model, "gradcam", batch_frames=4, layer=model[3])
    vx.explain_file(x, maps=tmp_path / "m.npz", measure_model=False)
    stats = vx.explain_file(x, maps=tmp_path / "m.zarr", measure_model=False)
    assert stats["maps"] == str(tmp_path / "m.zarr")
    npz = np.load(tmp_path / "m.npz")
    g = zarr.open_group(str(tmp_path / "m.zarr"), mode="r")
    assert g["maps"].shape == (11, 1, 16, 16) and g["maps"].dtype == np.float16
    assert g.attrs["frames"] == 11
    np.testing.assert_array_equal(g["maps"][:], npz["maps"])
    np.testing.assert_array_equal(g["scores"][:], npz["scores"])
    streamed = list(vx.stream(x))
    np.testing.assert_allclose(g["maps"][:], torch.stack([s[2] for s in streamed]).numpy(), atol=1e-3)
    np.testing.assert_allclose(g["scores"][:], [s[3] for s in streamed], rtol=1e-6)


def test_zarr_appends_per_block_and_keeps_what_was_written(tmp_path, rng):
    w = MapsWriter(tmp_path / "m.zarr", block=4)
    heats = torch.rand(10, 1, 8, 8, generator=rng)
    for i in range(10):
        w.add(heats[i], float(i))
        if i == 5:  # two blocks: four frames written, two held (memory: at most one block)
            g = zarr.open_group(str(tmp_path / "m.zarr"), mode="r")
            assert g["maps"].shape == (4, 1, 8, 8) and len(w._maps) == 2
    w.close()
    g = zarr.open_group(str(tmp_path / "m.zarr"), mode="r")
    np.testing.assert_array_equal(g["maps"][:], heats.numpy().astype(np.float16))
    np.testing.assert_array_equal(g["scores"][:], np.arange(10, dtype=np.float32))
    w = MapsWriter(tmp_path / "m.zarr", block=2)  # an existing store is replaced
    w.add(heats[0], 1.0)
    with pytest.raises(ValueError, match="one store holds one map size"):
        w.add(torch.zeros(1, 4, 4), 2.0)


def test_bad_maps_paths(tmp_path, rng):
    with pytest.raises(ValueError, match=r"\.npz or \.zarr"):
        MapsWriter(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="does not exist"):
        MapsWriter(tmp_path / "no" / "m.zarr")
    (tmp_path / "file.zarr").write_text("mine")
    with pytest.raises(ValueError, match="not a Zarr store"):
        MapsWriter(tmp_path / "file.zarr")
    assert (tmp_path / "file.zarr").read_text() == "mine"  # never deleted
    model = frame_cnn(rng)
    with pytest.raises(ValueError, match="does not exist"):  # before any frame is explained
        VideoExplainer(model, "gradcam").explain_file(frames(rng, 2), maps=tmp_path / "x" / "m.npz")
