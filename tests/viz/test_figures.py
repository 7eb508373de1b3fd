"""pyxai.viz's own pictures: overlays on the signed / unsigned map, frames, the method x image grid."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from pyxai import viz

pytest.importorskip("matplotlib")


def test_overlay_signed_and_unsigned(rng):
    img = torch.rand(3, 10, 12, generator=rng)
    cam = torch.rand(1, 5, 6, generator=rng)  # resized to the image
    out = viz.overlay(img, cam, alpha=0.5)
    up = viz.reduce_map(cam, (10, 12))
    expect = 0.5 * img.permute(1, 2, 0) + 0.5 * viz.colorize(up / up.max(), "jet")
    torch.testing.assert_close(out, expect)
    # signed: grey image + bwr centred on zero; a zero map is the grey image blended with white
    rel = torch.zeros(3, 10, 12)
    rel[0, 0, 0], rel[0, 9, 11] = -2.0, 1.0
    s = viz.overlay(img, rel, alpha=0.5)
    grey = img.mean(0)
    white = viz.colorize(torch.tensor(0.5), "bwr")
    torch.testing.assert_close(s[5, 5], 0.5 * grey[5, 5] + 0.5 * white)
    assert s[0, 0, 2] > s[0, 0, 0] and s[9, 11, 0] > s[9, 11, 2]  # blue where negative, red positive
    with pytest.raises(ValueError, match="un-normalised"):
        viz.overlay(img * 3 - 1, cam)
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(img, cam, alpha=2)


def test_frame_overlay_is_labelled_uint8(rng):
    frame = torch.rand(3, 16, 20, generator=rng)
    m = torch.rand(1, 16, 20, generator=rng)
    plain = viz.frame_overlay(frame, m)
    assert plain.dtype == np.uint8 and plain.shape == (16, 20, 3)
    np.testing.assert_array_equal(plain, viz.to_uint8(viz.overlay(frame, m)))
    big = viz.frame_overlay(frame, m, text="gradcam 0.91", scale=4)
    assert big.shape == (64, 80, 3)
    band = big[:8, :40]
    assert (band > 200).any() and (band == 0).any()  # white (antialiased) text on the black band
    np.testing.assert_array_equal(big[40:, :], np.repeat(np.repeat(plain, 4, 0), 4, 1)[40:, :])


def test_grid_layout_labels_and_colorbars(rng):
    from PIL import Image

    imgs = torch.rand(3, 3, 16, 16, generator=rng)
    maps = {"gradcam": torch.rand(3, 1, 4, 4, generator=rng),
            "lrp": torch.randn(3, 3, 16, 16, generator=rng)}
    fig = viz.grid(imgs, maps, labels=["a 0.9", "b 0.8", "c 0.7"])
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    assert len(image_axes) == 9
    assert [ax.get_title() for ax in image_axes[:3]] == ["a 0.9", "b 0.8", "c 0.7"]
    assert [ax.get_ylabel() for ax in image_axes[::3]] == ["input", "gradcam", "lrp"]
    bars = [ax for ax in fig.axes if ax not in image_axes and ax.axison]
    assert len(bars) == 2
    assert [t.get_text() for t in bars[1].get_yticklabels()] == ["-max", "0", "+max"]
    assert [t.get_text() for t in bars[0].get_yticklabels()] == ["low", "high"]
    # the input row shows the un-normalised image itself; the lrp row its signed overlay
    np.testing.assert_allclose(image_axes[0].get_images()[0].get_array(), imgs[0].permute(1, 2, 0))
    np.testing.assert_allclose(image_axes[7].get_images()[0].get_array(),
                               viz.overlay(imgs[1], maps["lrp"][1]).numpy(), atol=1e-6)
    png = Image.open(io.BytesIO(viz.figure_png(fig)))
    assert png.format == "PNG" and png.width > 300
    with pytest.raises(ValueError, match="labels has 2 entries"):
        viz.grid(imgs, maps, labels=["a", "b"])
    with pytest.raises(ValueError, match="3 maps"):
        viz.grid(imgs, {"x": torch.rand(2, 1, 4, 4)})


def test_scale_map_unsigned_with_negatives_and_grid_override(rng):
    m = torch.randn(6, 7, generator=rng)
    v, signed = viz.scale_map(m, signed=False)
    assert not signed and v.min() == 0 and v.max() == 1
    torch.testing.assert_close(v, (m - m.min()) / (m.max() - m.min()))
    pos = m.abs()
    torch.testing.assert_close(viz.scale_map(pos)[0], pos / pos.max())  # zero stays zero
    v, signed = viz.scale_map(m)
    assert signed and torch.allclose(v[m == 0], torch.tensor(0.5)) if (m == 0).any() else signed
    imgs = torch.rand(2, 3, 8, 8, generator=rng)
    rise_like = torch.randn(2, 1, 8, 8, generator=rng) - 5  # all negative scores: not evidence
    fig = viz.grid(imgs, {"rise": rise_like}, signed={"rise": False})
    cells = [ax for ax in fig.axes if ax.get_images()]
    np.testing.assert_allclose(cells[2].get_images()[0].get_array(),
                               viz.overlay(imgs[0], rise_like[0], signed=False).numpy(), atol=1e-6)


def test_matplotlib_tables_for_names_zennit_shares():
    import matplotlib

    for name in ("hot", "bwr", "seismic", "gray"):
        want = (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(viz.lookup_table(name, matplotlib=True).numpy(), want)
    assert not torch.equal(viz.lookup_table("hot", matplotlib=True), viz.lookup_table("hot"))
    with pytest.raises(ValueError, match="matplotlib"):
        viz.colorize(torch.zeros(2), "coldnhot", matplotlib=True)


def test_label_frame_scales_then_writes(rng):
    px = (torch.rand(6, 9, 3, generator=rng) * 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(viz.label_frame(px, None, 3), np.repeat(np.repeat(px, 3, 0), 3, 1))
    np.testing.assert_array_equal(viz.label_frame(px, ""), px)
    big = viz.label_frame(px, "x", 4)
    assert big.shape == (24, 36, 3) and (big[:6, :6] == 0).any() and (big[:12, :12] > 200).any()
    with pytest.raises(ValueError, match="scale"):
        viz.label_frame(px, "x", 0)
