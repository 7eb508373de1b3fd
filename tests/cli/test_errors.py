"""Every user mistake of issue 17 is one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import pytest
import torch

import pyxai
from pyxai.cli import main
from tests.cli._helpers import write_gif, write_png


def _fails(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith(f"pyxai {argv[0]}: error: ")
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_weights_of_another_architecture(tmp_path, rng, capsys):
    import torchvision

    img = write_png(tmp_path / "a.png", rng)
    w = tmp_path / "squeeze.pt"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), w)
    _fails(capsys, ["explain", str(img), "--weights", str(w), "--out", str(tmp_path / "o")],
           "does not fit demo", "missing keys", "unexpected keys")
    torch.save(pyxai.models.demo_cnn().state_dict(), w)
    _fails(capsys, ["explain", str(img), "--model", "torchvision:squeezenet1_1", "--weights", str(w),
                    "--out", str(tmp_path / "o")], "does not fit torchvision:squeezenet1_1")
    state = pyxai.models.demo_cnn().state_dict()
    key = next(k for k, v in state.items() if v.dim() == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    torch.save(state, w)
    _fails(capsys, ["explain", str(img), "--weights", str(w), "--out", str(tmp_path / "o")],
           f"shape of {key}")


def test_whole_model_and_text_file_as_weights(tmp_path, rng, capsys):
    img = write_png(tmp_path / "a.png", rng)
    whole = tmp_path / "whole.pt"
    torch.save(pyxai.models.demo_cnn(), whole)
    _fails(capsys, ["explain", str(img), "--weights", str(whole), "--out", str(tmp_path / "o")],
           "whole pickled model", "state_dict()")
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    _fails(capsys, ["explain", str(img), "--weights", str(text), "--out", str(tmp_path / "o")],
           "is not a PyTorch weights file")
    _fails(capsys, ["explain", str(img), "--weights", str(tmp_path / "none.pt")], "weights file not found")
    torch.save({"a": 1}, tmp_path / "dict.pt")
    _fails(capsys, ["explain", str(img), "--weights", str(tmp_path / "dict.pt")],
           "does not hold a state_dict")


def test_models_that_explain_does_not_take(tmp_path, rng, capsys):
    img = write_png(tmp_path / "a.png", rng)
    _fails(capsys, ["explain", str(img), "--model", "torchvision:r3d_18"], "video model", "pyxai video")
    _fails(capsys, ["explain", str(img), "--model", "torchvision:fasterrcnn_resnet50_fpn"], "detection")
    _fails(capsys, ["explain", str(img), "--model", "torchvision:nope"], "unknown torchvision model")
    _fails(capsys, ["explain", str(img), "--model", "keras:x"], "unknown model 'keras:x'")
    _fails(capsys, ["explain", str(img), "--model", "torchvision:vit_b_16", "--size", "112"],
           "needs 224x224 inputs", "--size 224")
    _fails(capsys, ["explain", str(img), "--model", "torchvision:alexnet", "--size", "16"],
           "fails on 16x16 inputs", "another --size")
    assert not (tmp_path / "pyxai_out").exists()


def test_bad_inputs_and_arguments(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    img = write_png(tmp_path / "a.png", rng)
    gif = write_gif(tmp_path / "anim.gif")
    _fails(capsys, ["explain", str(gif)], "animated (3 frames)", "pyxai video")
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 10)
    _fails(capsys, ["explain", str(tmp_path / "clip.mp4")], "is a video", "pyxai video")
    (tmp_path / "bad.png").write_text("not a png")
    _fails(capsys, ["explain", str(tmp_path / "bad.png")], "cannot read image")
    _fails(capsys, ["explain", str(tmp_path / "missing.png")], "image file not found")
    _fails(capsys, ["explain", str(tmp_path / "*.jpeg")], "no image matches")
    (tmp_path / "empty").mkdir()
    _fails(capsys, ["explain", str(tmp_path / "empty")], "no image file")
    _fails(capsys, ["explain", str(img), "--target", "dog"], "--target 'dog' is not a class", "circle")
    _fails(capsys, ["explain", str(img), "--target", "99"], "--target 99 is out of range")
    _fails(capsys, ["explain", "--batch-size", "0"], "--batch-size must be at least 1")
    _fails(capsys, ["explain", "--size", "4"], "--size must be at least 8")
    _fails(capsys, ["explain", "--method", "nope"], "unknown method 'nope'")
    _fails(capsys, ["explain", "--device", "tpu"], "--device")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("x")
    _fails(capsys, ["explain", "--out", str(full)], "exists and is not empty", "--overwrite")
    _fails(capsys, ["explain", "--out", str(full / "x.txt")], "is a file")
    assert not (tmp_path / "pyxai_out").exists()  # nothing written by a failed run


def test_bench_device_without_gpu(capsys):
    if torch.cuda.is_available():
        _fails(capsys, ["bench", "rise", "--quick", "--device", f"cuda:{torch.cuda.device_count()}"],
               "CUDA device")
    else:
        _fails(capsys, ["bench", "rise", "--quick", "--device", "cuda"], "no CUDA GPU is available")
    _fails(capsys, ["bench", "nope"], "unknown benchmark")
    _fails(capsys, ["bench", "rise", "--repeat", "0"], "--repeat must be at least 1")


@pytest.mark.parametrize("argv", [["explain", "--help"], ["bench", "--help"]])
def test_help_lists_methods_and_defaults(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in pyxai.registry.names():
        assert name in out
    assert "n_masks=1000" in out


def test_explain_leaves_out_methods_whose_optional_package_is_missing(monkeypatch, capsys):
    """The README's first command installs no extra: with scikit-learn missing, ``pyxai explain``
    runs every other method and says which it left out and how to get it."""
    from pyxai import registry
    from pyxai.cli import build_parser
    from pyxai.cli.explain import _check_args

    monkeypatch.setattr(registry.Method, "missing",
                        property(lambda self: ["sklearn"] if "sklearn" in self.needs else []))
    args = build_parser().parse_args(["explain"])
    wanted = _check_args(args)
    assert "lime" not in wanted and "kernel_shap" in wanted and "gradcam" in wanted
    printed = capsys.readouterr().out
    assert "leaving out lime (needs sklearn: pip install 'pyxai-attribution[lime]')" in printed
    assert _check_args(build_parser().parse_args(["explain", "--method", "lime"])) == ["lime"]
