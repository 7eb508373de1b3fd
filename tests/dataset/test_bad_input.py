"""Bad input gives clear errors before any heavy work; an unreadable image is recorded, not fatal."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.dataset._models import broken_factory

zarr = pytest.importorskip("zarr")
pytest.importorskip("ray")

import pyxai.dataset  # noqa: E402
from pyxai.models import demo_cnn  # noqa: E402


def _tiny(n: int = 4) -> torch.utils.data.Dataset:
    return torch.utils.data.TensorDataset(torch.rand(n, 3, 64, 64), torch.zeros(n, dtype=torch.int64))


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"model": demo_cnn()}, TypeError, "not a live nn.Module"),
    ({"model": "resnet18"}, ValueError, "unknown model 'resnet18'"),
    ({"weights": "/nonexistent.pt"}, ValueError, "weights file not found"),
    ({"method": "nope"}, ValueError, "unknown method 'nope'"),
    ({"metrics": ["auc"]}, ValueError, "unknown metric 'auc'"),
    ({"metrics": ["pointing_game"]}, ValueError, "needs masks"),
    ({"target": [1, 2]}, ValueError, "per-sample target must be 4 ints"),
    ({"target": "cls"}, ValueError, "target must be"),
    ({"dtype": "float64"}, ValueError, "dtype"),
    ({"shard_size": 0}, ValueError, "shard_size"),
    ({"batch_size": 2.5}, ValueError, "batch_size"),
    ({"gpus_per_worker": -1}, ValueError, "gpus_per_worker"),
    ({"layer": torch.nn.Conv2d(1, 1, 1)}, TypeError, "dotted name"),
    ({"source": 3}, TypeError, "source must be"),
    ({"source": torch.utils.data.TensorDataset(torch.rand(0, 3, 8, 8))}, ValueError, "empty dataset"),
])
def test_bad_arguments(tmp_path, kwargs, exc, match):
    args = {"source": _tiny(), "model": "demo", "method": "saliency", "out": tmp_path / "x.zarr",
            "show_progress": False, **kwargs}
    with pytest.raises(exc, match=match):
        pyxai.dataset.attribute(**args)
    assert not (tmp_path / "x.zarr").exists()  # refused before anything was written


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="holds no image files"):
        pyxai.dataset.attribute(str(tmp_path / "empty"), "demo", "saliency", tmp_path / "o.zarr")
    with pytest.raises(ValueError, match="neither a folder, a glob nor an image"):
        pyxai.dataset.attribute(str(tmp_path / "missing"), "demo", "saliency", tmp_path / "o.zarr")


def test_missing_extra_names_it(monkeypatch, tmp_path):
    import subprocess

    code = ("import sys; sys.modules['ray'] = sys.modules['zarr'] = None; import pyxai.dataset, pyxai.cli; "
            "pyxai.cli.build_parser()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr  # importing works without the extra
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r"pyxai-attribution\[scale\]"):
        pyxai.dataset.attribute(_tiny(), "demo", "saliency", tmp_path / "o.zarr")


def test_unreadable_image_is_recorded(ray_address, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((np.random.rand(64, 64, 3) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    (folder / "1b.png").write_bytes(b"not a png")  # sorts between 1.png and 2.png
    with pytest.warns(UserWarning, match=r"1 sample\(s\) could not be read.*1b\.png"):
        out = pyxai.dataset.attribute(str(folder), "demo", "saliency", tmp_path / "u.zarr", num_workers=1,
                                      shard_size=2, batch_size=2, show_progress=False)
    g = zarr.open_group(out, mode="r")
    assert g["ok"][:].tolist() == [True, True, False, True]
    errors = g["error"][:].tolist()
    assert "1b.png" in errors[2] and errors[0] == ""
    maps = g["maps"][:]
    assert np.isnan(maps[2]).all() and np.isfinite(maps[[0, 1, 3]]).all()
    assert g["target"][2] == -1 and g["shard_done"][:].tolist() == [1, 1]


def test_store_of_other_parameters_is_refused(ray_address, tmp_path):
    ds, out = _tiny(), tmp_path / "s.zarr"
    run = dict(num_workers=1, shard_size=2, batch_size=2, show_progress=False)
    pyxai.dataset.attribute(ds, "demo", "saliency", out, **run)
    before = zarr.open_group(out, mode="r")["maps"][:]
    pyxai.dataset.attribute(ds, "demo", "saliency", out, **run)  # same: nothing to do
    g = zarr.open_group(out, mode="r")
    assert g.attrs["history"][-1]["skipped_shards"] == 2 and g.attrs["history"][-1]["computed_shards"] == 0
    with pytest.raises(ValueError, match="other parameters.*method"):
        pyxai.dataset.attribute(ds, "demo", "inputxgradient", out, **run)
    np.testing.assert_array_equal(zarr.open_group(out, mode="r")["maps"][:], before)  # untouched
    pyxai.dataset.attribute(ds, "demo", "inputxgradient", out, overwrite=True, **run)
    g = zarr.open_group(out, mode="r")
    assert g.attrs["params"]["method"] == "inputxgradient" and len(g.attrs["history"]) == 1
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "mine.txt").write_text("x")
    for other in ("file", "folder"):  # refused, and never deleted, even with overwrite=True
        with pytest.raises(ValueError, match="not a pyxai Zarr store"):
            pyxai.dataset.attribute(ds, "demo", "saliency", tmp_path / other, overwrite=True, **run)
    assert (tmp_path / "file").read_text() == "x" and (tmp_path / "folder" / "mine.txt").exists()


def test_workers_that_do_not_fit_the_cluster(ray_address, tmp_path):
    for kwargs, match in [({"num_workers": 3}, "num_workers=3 actors"), ({"gpus_per_worker": 1}, "GPU")]:
        with pytest.raises(ValueError, match=match):  # the session's Ray has 2 CPUs, no GPU
            pyxai.dataset.attribute(_tiny(), "demo", "saliency", tmp_path / "w.zarr", show_progress=False,
                                    **kwargs)


def test_model_that_cannot_be_built_on_a_worker(ray_address, tmp_path):
    with pytest.raises(ValueError, match="could not be built on a worker.*no such checkpoint"):
        pyxai.dataset.attribute(_tiny(), broken_factory, "saliency", tmp_path / "b.zarr", num_workers=1,
                                max_retries=0, show_progress=False)
