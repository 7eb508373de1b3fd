"""pyxai explain on folders, globs, targets, output folders; the ViT token layer; the HTML report."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

import pyxai
from pyxai.cli import _inputs, explain, main
from pyxai.viz import report
from tests.cli._helpers import write_png


def test_folders_and_globs_recursive_sorted(tmp_path, rng):
    for p in ["b/2.png", "b/sub/1.png", "a.png", "b/0.jpg", "b/notes.txt"]:
        if p.endswith("txt"):
            (tmp_path / p).write_text("x")
        else:
            write_png(tmp_path / p, rng)
    got = _inputs.image_paths([str(tmp_path / "b"), str(tmp_path / "a.png"), str(tmp_path / "**/*.png")])
    rel = [str(p.relative_to(tmp_path)) for p in got]
    assert rel == ["b/0.jpg", "b/2.png", "b/sub/1.png", "a.png"]


def test_load_image_keeps_aspect_ratio(tmp_path):
    from PIL import Image

    # 40 x 80 (h x w): left quarter red, middle half green, right quarter blue
    arr = torch.zeros(40, 80, 3, dtype=torch.uint8)
    arr[:, :20, 0], arr[:, 20:60, 1], arr[:, 60:, 2] = 255, 255, 255
    Image.fromarray(arr.numpy()).save(tmp_path / "wide.png")
    x = _inputs.load_image(tmp_path / "wide.png", size=20, resize=20)
    assert x.shape == (3, 20, 20)
    # short side 40 -> 20, width 80 -> 40, centre crop 20: the green middle only (squashing would
    # show red in the left 5 columns); the outermost columns blend a little (bilinear)
    inner = x[:, :, 1:-1]
    assert torch.allclose(inner[1], torch.ones(20, 18)) and inner[0].max() == 0 and inner[2].max() == 0
    assert x[0].max() < 0.2 and x[2].max() < 0.2
    y = _inputs.load_image(tmp_path / "wide.png", size=20, resize=40)  # resize 40 then crop 20
    assert torch.allclose(y[1], torch.ones(20, 20)) and y[0].max() == 0


def test_explain_folder_batches_target_and_outputs(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ["imgs/x.png", "imgs/y.png", "imgs/deep/z.png"]:
        write_png(tmp_path / name, rng, h=50, w=70)
    calls = []
    real_build = pyxai.registry.Method.build

    def counting_build(self, *a, **kw):
        fn = real_build(self, *a, **kw)

        def run(x, t):
            calls.append((self.name, x.shape[0], t.tolist()))
            return fn(x, t)
        return run

    monkeypatch.setattr(pyxai.registry.Method, "build", counting_build)
    argv = ["explain", "imgs", "--method", "gradcam", "--method", "saliency", "--batch-size", "2",
            "--target", "star", "--quiet", "--json", "t.json"]
    assert main(argv) == 0
    star = pyxai.data.SHAPE_CLASSES.index("star")
    assert calls == [("gradcam", 2, [star] * 2), ("gradcam", 1, [star]),
                     ("saliency", 2, [star] * 2), ("saliency", 1, [star])]
    runs = list((tmp_path / "pyxai_out").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("run-")
    files = sorted(str(p.relative_to(runs[0])) for p in runs[0].rglob("*.png"))
    assert files == ["grid.png", "images/x.png", "images/y.png", "images/z.png"]
    table = json.loads((tmp_path / "t.json").read_text())
    assert [r["method"] for r in table["methods"]] == ["gradcam", "saliency"]
    assert [Path(r["image"]).name for r in table["images"]] == ["z.png", "x.png", "y.png"]
    assert all(r["target"] == "star" and r["predicted"] in pyxai.data.SHAPE_CLASSES for r in table["images"])
    out = capsys.readouterr().out
    assert "predicted" in out and "star" in out
    # a second default run gets a fresh folder; an explicit non-empty --out needs --overwrite
    argv = ["explain", "imgs", "--method", "saliency", "--quiet"]
    assert main(argv) == 0
    assert len(list((tmp_path / "pyxai_out").iterdir())) == 2
    assert main(argv + ["--out", str(runs[0])]) == 2
    assert main(argv + ["--out", str(runs[0]), "--overwrite"]) == 0


def test_vit_cam_uses_the_token_layer_and_equals_grad_cam(rng):
    pytest.importorskip("torchvision")
    gradcam = pytest.importorskip("pytorch_grad_cam")
    from torchvision.models.vision_transformer import VisionTransformer

    from pyxai.cli._layers import target_layer

    # vit_b_16's class at a small size (the CLI's size check runs vit_b_16 itself, test_errors.py)
    model = VisionTransformer(image_size=64, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                              mlp_dim=64, num_classes=10).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.5)  # torchvision zero-inits the head
    x = torch.randn(2, 3, 64, 64, generator=rng)
    layer, reshape, desc = target_layer(model, x)
    assert layer is model.encoder.layers[-1].ln_1 and "class token dropped" in desc
    tokens = torch.randn(2, 65, 32, generator=rng)
    grid = reshape(tokens)
    assert grid.shape == (2, 32, 8, 8) and torch.equal(grid[:, :, 0, 1], tokens[:, 2])
    ours = pyxai.registry.build("gradcam", model, layer, reshape_transform=reshape)(x, 7)
    ref = gradcam.GradCAM(model, [layer], reshape_transform=reshape)(
        x, [gradcam.utils.model_targets.ClassifierOutputTarget(7)] * 2)
    assert ours.shape == (2, 1, 64, 64) and ours.abs().sum() > 0
    torch.testing.assert_close(ours[:, 0], torch.from_numpy(ref), atol=1e-4, rtol=1e-4)


def test_timm_vit_token_layer_size_and_normalisation(rng):
    timm = pytest.importorskip("timm")
    gradcam = pytest.importorskip("pytorch_grad_cam")
    from pyxai.cli._layers import target_layer
    from pyxai.cli._preprocess import input_spec

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                              num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32, generator=rng)
    layer, reshape, _ = target_layer(model, x)
    assert layer is model.blocks[-1].norm1
    ours = pyxai.registry.build("gradcam", model, layer, reshape_transform=reshape)(x, 3)
    ref = gradcam.GradCAM(model, [layer], reshape_transform=reshape)(
        x, [gradcam.utils.model_targets.ClassifierOutputTarget(3)] * 2)
    torch.testing.assert_close(ours[:, 0], torch.from_numpy(ref), atol=1e-4, rtol=1e-4)
    spec = input_spec("timm:vit_tiny_patch16_224", model, None)
    assert spec.size == 32 and spec.mean == tuple(model.pretrained_cfg["mean"])
    with pytest.raises(ValueError, match="needs 32x32 inputs"):
        input_spec("timm:vit_tiny_patch16_224", model, 64)


def test_cnn_and_swin_layers_are_4d_feature_maps(rng):
    torchvision = pytest.importorskip("torchvision")
    from pyxai.cli._layers import target_layer

    demo = pyxai.models.demo_cnn()
    layer, reshape, _ = target_layer(demo, torch.rand(1, 3, 64, 64, generator=rng))
    assert layer is demo.layer3 and reshape is None
    swin = torchvision.models.swin_t(weights=None).eval()
    layer, reshape, name = target_layer(swin, torch.rand(1, 3, 64, 64, generator=rng))
    assert layer is swin.permute and reshape is None and name == "permute"


# ------------------------------------------------------------------------------------------------
# the report


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.imgs: list[dict] = []
        self.rows: list[list[str]] = []
        self.style = ""
        self._cell: list[str] | None = None
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        self._in_style = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_style:
            self.style += data


def _check_page(html: str, methods: list[str]) -> _Page:
    from PIL import Image

    page = _Page()
    page.feed(html)
    page.close()
    assert page.tags[:2] == ["html", "head"] and "main" in page.tags
    width = int(re.search(r"main \{ max-width: (\d+)px", page.style).group(1))
    assert width == report.PAGE_WIDTH
    assert "figure img { max-width: 100%" in page.style
    assert page.imgs
    for img in page.imgs:
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        png = Image.open(io.BytesIO(base64.b64decode(data)))
        png.load()
        assert png.format == "PNG" and png.size == (int(img["width"]), int(img["height"]))
        assert int(img["width"]) <= width
    method_rows = [r for r in page.rows if r and r[0] in methods]
    assert [r[0] for r in method_rows] == methods
    return page


def test_report_is_self_contained_and_fits(tmp_path, capsys):
    methods = ["gradcam", "saliency"]
    assert main(["explain", "--n", "3", "--out", str(tmp_path), "--report", "--quiet"]
                + [a for m in methods for a in ("--method", m)]) == 0
    html = (tmp_path / "report.html").read_text()
    page = _check_page(html, methods)
    head = next(r for r in page.rows if r and r[0] == "method")
    assert head == ["method", "time ms", "pointing", "deletion", "insertion"]
    images = [r for r in page.rows if r and r[0].startswith("shapes[")]
    assert len(images) == 3 and all(r[1] in pyxai.data.SHAPE_CLASSES for r in images)
    assert "src=\"http" not in html and "<script" not in html  # nothing fetched
    for key in ("model", "CAM layer", "method gradcam", "batch size"):
        assert f"<dt>{key}</dt>" in html
    with pytest.raises(ValueError, match="wider than|more than the page"):
        report.render("t", {}, [], ["method"], [], ["image"],
                      [("big", _png(report.PAGE_WIDTH + 1, 4))])


def _png(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, format="PNG")
    return buf.getvalue()


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome",
                 "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_a_headless_browser(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on this system (chromium, chromium-headless-shell, google-chrome): the "
                    "report's browser check needs one; the structural test above still runs")
    playwright = pytest.importorskip("playwright.sync_api")
    assert main(["explain", "--n", "2", "--method", "gradcam", "--out", str(tmp_path), "--report",
                 "--quiet"]) == 0
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, headless=True)
        for width in (1280, 600):  # wide, and narrower than the page: images shrink, nothing overflows
            page = b.new_page(viewport={"width": width, "height": 900})
            page.goto((tmp_path / "report.html").as_uri())
            loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            assert len(loaded) == 1 and all(loaded)  # the grid of one chunk
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            outside = page.evaluate("""() => {
                const main = document.querySelector('main').getBoundingClientRect();
                return Array.from(document.querySelectorAll('main *'))
                    .filter(e => !e.closest('.scroll') || e.classList.contains('scroll'))
                    .filter(e => e.getBoundingClientRect().right > main.right + 0.5)
                    .map(e => e.tagName); }""")
            assert outside == []
            rows = page.evaluate("document.querySelectorAll('table')[0].rows.length")
            assert rows == 2  # header + the one method
            page.close()
        b.close()


def test_explain_module_keeps_the_loader_name():
    model = explain._load_user_model("demo", None)
    assert isinstance(model, torch.nn.Module) and not model.training


def test_input_spec_from_torchvision_weights_metadata():
    torchvision = pytest.importorskip("torchvision")
    from pyxai.cli._preprocess import input_spec, parse_target

    model = torchvision.models.resnet18(weights=None)
    spec = input_spec("torchvision:resnet18", model, None)
    meta = torchvision.models.ResNet18_Weights.DEFAULT
    t = meta.transforms()
    assert (spec.size, spec.resize) == (t.crop_size[0], t.resize_size[0])
    assert spec.mean == tuple(t.mean) and spec.classes == tuple(meta.meta["categories"])
    small = input_spec("torchvision:resnet18", model, 112)
    assert (small.size, small.resize) == (112, round(112 * t.resize_size[0] / t.crop_size[0]))
    assert parse_target("goldfish", spec.classes) == 1 and parse_target("7", spec.classes) == 7
    model.fc = torch.nn.Linear(512, 3)  # retrained head: the ImageNet names no longer apply
    assert input_spec("torchvision:resnet18", model, None).classes is None
    with pytest.raises(ValueError, match="has no class names"):
        parse_target("goldfish", None)
    demo = input_spec("demo", pyxai.models.demo_cnn(), None)
    assert (demo.size, demo.resize, demo.mean) == (64, 64, None)
    x = torch.rand(1, 3, 8, 8)
    assert demo.normalise(x) is x
    torch.testing.assert_close(spec.normalise(x), (x - torch.tensor(t.mean)[:, None, None])
                               / torch.tensor(t.std)[:, None, None])


def test_progress_bar_on_a_terminal_only(monkeypatch):
    import sys

    from pyxai.cli._progress import bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    on = bar(3, "explain")
    assert not on.disable
    on.close()
    assert bar(3, "explain", quiet=True).disable
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert bar(3, "explain").disable  # piped / redirected: no bar
