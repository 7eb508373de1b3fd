"""``pyxai similarity``: the demo run writes overlays and a table; user pairs; errors are one line."""

from __future__ import annotations

import json

from PIL import Image

from pyxai.cli import main


def test_demo_run(tmp_path, capsys):
    js = tmp_path / "t.json"
    assert main(["similarity", "--method", "conditional_occlusion", "--method", "interaction_cam",
                 "--model", "demo_simclr", "--out", str(tmp_path), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "two augmentations" in out and "deletion" in out
    rows = json.loads(js.read_text())
    assert [r["method"] for r in rows] == ["conditional_occlusion", "interaction_cam"]
    for r in rows:
        img = Image.open(r["png"]).convert("RGB")  # a pyxai.viz.grid figure: 4 columns, 2 rows
        assert img.size[0] > 1.5 * img.size[1]
        assert len(set(img.getdata())) > 50  # images and colour-mapped overlays, not a blank page
        assert 0 <= r["deletion"] <= 1 and 0 <= r["insertion"] <= 1


def test_user_pairs_and_errors(tmp_path, capsys):
    paths = []
    for i, colour in enumerate(((200, 30, 30), (30, 200, 30))):
        p = tmp_path / f"{i}.png"
        img = Image.new("RGB", (50, 40), colour)
        img.paste((250, 250, 250), (10, 10, 30, 30))
        img.save(p)
        paths.append(str(p))
    assert main(["similarity", *paths, "--method", "pairwise_occlusion", "--out", str(tmp_path)]) == 0
    assert "demo_simclr" in capsys.readouterr().out
    assert main(["similarity", paths[0], "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pairs" in err[0]
    assert main(["similarity", "--method", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown similarity method" in capsys.readouterr().err
