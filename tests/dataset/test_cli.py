"""``pyxai explain-dataset``: the demo set by default; user errors are one line, exit status 2."""

from __future__ import annotations

import pytest

from pyxai.cli import main

zarr = pytest.importorskip("zarr")
pytest.importorskip("ray")


def test_demo_run(ray_address, tmp_path, capsys):
    out = str(tmp_path / "demo.zarr")
    rc = main(["explain-dataset", "--n", "20", "--workers", "1", "--shard-size", "8",
               "--metrics", "pointing_game", "--out", out])
    assert rc == 0
    text = capsys.readouterr().out
    assert "20 images of pyxai.data.shapes" in text and "pointing_game: mean" in text
    g = zarr.open_group(out, mode="r")
    assert g["maps"].shape == (20, 1, 64, 64) and g["shard_done"][:].tolist() == [1, 1, 1]
    assert g.attrs["params"]["method"] == "gradcam" and g.attrs["params"]["pointing_tolerance"] == 4.0
    assert g["pointing_game"][:].mean() > 0.5  # the trained demo model's Grad-CAM points at the object
    assert (g["target"][:] == g["label"][:]).mean() >= 0.9  # the demo model is 99.7 % accurate


@pytest.mark.parametrize("argv,match", [
    (["--metrics", "auc"], "unknown metric 'auc'"),
    (["--method", "nope"], "unknown method 'nope'"),
    (["--target", "cat"], "--target must be an int or 'label'"),
    (["/nonexistent/folder"], "neither a folder, a glob nor an image file"),
])
def test_user_errors_are_one_line(tmp_path, capsys, argv, match):
    assert main(["explain-dataset", *argv, "--out", str(tmp_path / "x.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1 and err.startswith("pyxai explain-dataset: error:")
