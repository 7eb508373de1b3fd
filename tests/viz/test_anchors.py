"""pyxai.viz equals the anchors' helpers: pytorch-grad-cam's show_cam_on_image, Captum's
visualize_image_attr(_multiple), Zennit's imgify / palettes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai import viz

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


# ------------------------------------------------------------------------------------------------
# pytorch-grad-cam


@pytest.mark.parametrize("use_rgb", [False, True])
@pytest.mark.parametrize("image_weight", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_show_cam_on_image_equals_grad_cam(rng, use_rgb, image_weight, dtype):
    cv2 = pytest.importorskip("cv2")
    image = pytest.importorskip("pytorch_grad_cam.utils.image")
    h, w = 23, 31
    img = torch.rand(h, w, 3, generator=rng).numpy().astype(dtype)
    mask = torch.rand(h, w, generator=rng).numpy().astype(np.float32)
    ref = image.show_cam_on_image(img, mask, use_rgb=use_rgb, image_weight=image_weight)
    ours = viz.show_cam_on_image(img, mask, use_rgb=use_rgb, image_weight=image_weight)
    assert ours.dtype == np.uint8 and ours.shape == (h, w, 3)
    np.testing.assert_array_equal(ours, ref)
    # tensors in pyxai's layout give the same pixels
    t = viz.show_cam_on_image(torch.from_numpy(img).permute(2, 0, 1), torch.from_numpy(mask)[None],
                              use_rgb=use_rgb, image_weight=image_weight)
    np.testing.assert_array_equal(t, ref)
    for code in (cv2.COLORMAP_VIRIDIS, cv2.COLORMAP_HOT):
        np.testing.assert_array_equal(viz.show_cam_on_image(img, mask, use_rgb, code),
                                      image.show_cam_on_image(img, mask, use_rgb, code))


def test_show_cam_on_image_errors_as_grad_cam(rng):
    image = pytest.importorskip("pytorch_grad_cam.utils.image")
    img = torch.rand(8, 8, 3, generator=rng).numpy()
    mask = torch.rand(8, 8, generator=rng).numpy()
    for bad_img, w, msg in [(img * 2, 0.5, "range \\[0, 1\\]"), (img, 1.5, "image_weight"),
                            (img, -0.1, "image_weight")]:
        with pytest.raises(Exception):  # noqa: B017 - pytorch-grad-cam raises a bare Exception
            image.show_cam_on_image(bad_img, mask, image_weight=w)
        with pytest.raises(ValueError, match=msg):
            viz.show_cam_on_image(bad_img, mask, image_weight=w)
    with pytest.raises(ValueError, match="mask"):
        viz.show_cam_on_image(img, np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="mask has shape"):
        viz.show_cam_on_image(img, mask[:4])
    with pytest.raises(TypeError, match="img"):
        viz.show_cam_on_image([[0.0]], mask)
    with pytest.raises(ValueError, match="not a matplotlib"):
        viz.show_cam_on_image(img, mask, colormap="no-such-map")


# ------------------------------------------------------------------------------------------------
# Captum


def _captum_viz():
    return pytest.importorskip("captum.attr._utils.visualization")


def _images(ax):
    return [(np.asarray(im.get_array(), dtype=np.float64), im.get_alpha(), im.get_clim(),
             im.get_cmap().name) for im in ax.get_images()]


def _assert_same_axes(ax_ours, ax_ref):
    ours, ref = _images(ax_ours), _images(ax_ref)
    assert len(ours) == len(ref) > 0
    for (a, alpha_a, clim_a, cm_a), (b, alpha_b, clim_b, cm_b) in zip(ours, ref):
        assert a.shape == b.shape
        # integer images may differ by one level where float32 and float64 truncation disagree
        tol = 1.0 if np.abs(b).max() > 1.5 else 1e-5
        np.testing.assert_allclose(a, b, atol=tol)
        assert np.mean(np.abs(a - b) > 1e-5) < 0.01
        assert alpha_a == alpha_b and clim_a == pytest.approx(clim_b) and cm_a == cm_b
    assert ax_ours.get_title() == ax_ref.get_title()


METHOD_SIGNS = [(m, s) for m in ["heat_map", "blended_heat_map", "original_image", "masked_image",
                                 "alpha_scaling"]
                for s in ["absolute_value", "positive", "negative", "all"]
                if not (m in ("masked_image", "alpha_scaling") and s == "all")]


@pytest.mark.parametrize("method,sign", METHOD_SIGNS)
def test_visualize_image_attr_equals_captum(rng, method, sign):
    cv = _captum_viz()
    attr = torch.randn(20, 24, 3, generator=rng).numpy().astype(np.float32)
    img = torch.rand(20, 24, 3, generator=rng).numpy().astype(np.float32)
    kw = dict(method=method, sign=sign, use_pyplot=False, show_colorbar=True, title="t",
              outlier_perc=float(torch.randint(0, 10, (1,), generator=rng)))
    fig_r, ax_r = cv.visualize_image_attr(attr, img, **kw)
    fig_o, ax_o = viz.visualize_image_attr(attr, img, **kw)
    _assert_same_axes(ax_o, ax_r)
    assert len(fig_o.axes) == len(fig_r.axes)  # the colour-bar axis
    # tensors in pyxai's layout: same picture
    _, ax_t = viz.visualize_image_attr(torch.from_numpy(attr).permute(2, 0, 1),
                                       torch.from_numpy(img).permute(2, 0, 1), **kw)
    _assert_same_axes(ax_t, ax_r)


def test_normalize_attr_equals_captum(rng):
    cv = _captum_viz()
    attr = (torch.randn(32, 40, generator=rng) ** 3).numpy()
    for sign in ["absolute_value", "positive", "negative", "all"]:
        for perc in [0, 2, 10]:
            np.testing.assert_allclose(viz.normalize_attr(torch.from_numpy(attr), sign, perc).numpy(),
                                       cv._normalize_attr(attr, sign, perc), rtol=1e-6, atol=1e-7)


def test_visualize_image_attr_multiple_equals_captum(rng):
    cv = _captum_viz()
    attr = torch.randn(16, 16, 3, generator=rng).numpy()
    img = (torch.rand(16, 16, 3, generator=rng) * 255).round().numpy()  # 0..255 images too
    methods = ["original_image", "heat_map", "blended_heat_map", "masked_image"]
    signs = ["all", "all", "positive", "absolute_value"]
    fr, ar = cv.visualize_image_attr_multiple(attr, img, methods, signs, titles=list("abcd"),
                                              use_pyplot=False, alpha_overlay=0.3)
    fo, ao = viz.visualize_image_attr_multiple(attr, img, methods, signs, titles=list("abcd"),
                                               use_pyplot=False, alpha_overlay=0.3)
    assert len(ao) == len(ar) == 4
    for a, b in zip(ao, ar):
        _assert_same_axes(a, b)
    assert fo.get_size_inches().tolist() == fr.get_size_inches().tolist()
    _, one = viz.visualize_image_attr_multiple(attr, img, ["heat_map"], ["all"], use_pyplot=False)
    _, one_r = cv.visualize_image_attr_multiple(attr, img, ["heat_map"], ["all"], use_pyplot=False)
    _assert_same_axes(one, one_r)


@pytest.mark.parametrize("call,msg", [
    (lambda f, a, i: f(a, i, method="nope", use_pyplot=False), "method must be one of"),
    (lambda f, a, i: f(a, i, sign="nope", use_pyplot=False), "sign must be one of"),
    (lambda f, a, i: f(a, None, method="blended_heat_map", use_pyplot=False), "Original Image"),
    (lambda f, a, i: f(a, i, method="masked_image", sign="all", use_pyplot=False), "cannot show both"),
    (lambda f, a, i: f(a, i, method="alpha_scaling", sign="all", use_pyplot=False), "cannot show both"),
    (lambda f, a, i: f(a, i, outlier_perc=150, use_pyplot=False), "outlier_perc"),
    (lambda f, a, i: f(a * 0, i, use_pyplot=False), "all zero"),
])
def test_visualize_image_attr_errors_as_captum(rng, call, msg):
    cv = _captum_viz()
    attr = torch.randn(8, 8, 3, generator=rng).numpy()
    img = torch.rand(8, 8, 3, generator=rng).numpy()
    with pytest.raises((AssertionError, KeyError, ValueError)):
        call(cv.visualize_image_attr, attr, img)
    with pytest.raises(ValueError, match=msg):
        call(viz.visualize_image_attr, attr, img)


def test_visualize_image_attr_multiple_errors(rng):
    cv = _captum_viz()
    attr = torch.randn(8, 8, 3, generator=rng).numpy()
    for methods, signs, titles in [(["heat_map"], ["all", "all"], None),
                                   (["heat_map"], ["all"], ["a", "b"])]:
        with pytest.raises(AssertionError):
            cv.visualize_image_attr_multiple(attr, None, methods, signs, titles, use_pyplot=False)
        with pytest.raises(ValueError, match="length"):
            viz.visualize_image_attr_multiple(attr, None, methods, signs, titles, use_pyplot=False)
    with pytest.raises(ValueError, match="attr contains NaN"):
        viz.visualize_image_attr(np.full((4, 4), np.nan), use_pyplot=False)
    with pytest.raises(ValueError, match="original_image is"):
        viz.visualize_image_attr(attr, np.zeros((4, 4, 3)), "blended_heat_map", use_pyplot=False)


# ------------------------------------------------------------------------------------------------
# Zennit


@pytest.mark.parametrize("cmap", sorted(viz.colormaps.ZENNIT_MAPS))
def test_palettes_equal_zennit(cmap):
    zimage = pytest.importorskip("zennit.image")
    for level in (1.0, 0.5, 2.0):
        np.testing.assert_array_equal(viz.palette(cmap, level).numpy(), zimage.palette(cmap, level))


def _zennit_rgb(zimage, array, cmap="bwr", level=1.0, **kw):
    """zennit.image.imgify as RGB pixels: its palette indices through its palette (Pillow 13 cannot
    apply the 2-D palette array zennit 0.4.6 passes to putpalette, so the palette is applied here)."""
    img = zimage.imgify(array, cmap=cmap, level=level, **kw)
    if img.mode != "P":
        return np.asarray(img)
    return zimage.palette(cmap, level)[np.asarray(img.im, dtype=np.uint8).reshape(img.height, img.width)]


@pytest.mark.parametrize("cmap", ["bwr", "coldnhot"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_imgify_equals_zennit(rng, cmap, symmetric):
    zimage = pytest.importorskip("zennit.image")
    rel = torch.randn(1, 18, 22, generator=rng) * 3
    ref = _zennit_rgb(zimage, rel.numpy(), cmap=cmap, symmetric=symmetric)
    ours = viz.imgify(rel, cmap=cmap, symmetric=symmetric)
    assert ours.dtype == np.uint8 and ours.shape == (18, 22, 3)
    np.testing.assert_array_equal(ours, ref)
    ref = _zennit_rgb(zimage, rel[0].numpy(), vmin=-1.0, vmax=2.0, cmap=cmap, level=1.5)
    np.testing.assert_array_equal(viz.imgify(rel[0], vmin=-1.0, vmax=2.0, cmap=cmap, level=1.5), ref)
    rgb = torch.rand(3, 5, 6, generator=rng)
    np.testing.assert_array_equal(viz.imgify(rgb), _zennit_rgb(zimage, rgb.numpy()))
    # signed relevance: zero is the centre of the map (white for bwr, black for coldnhot)
    z = viz.imgify(torch.tensor([[-1.0, 0.0, 1.0]]), symmetric=True, cmap=cmap)
    assert z[0, 1].tolist() == viz.palette(cmap)[127].tolist()


def test_imgify_errors():
    with pytest.raises(ValueError, match="cmap 'nope'"):
        viz.imgify(torch.ones(3, 3), cmap="nope")
    with pytest.raises(ValueError, match="2 or 3 axes"):
        viz.imgify(torch.ones(3))
    with pytest.raises(ValueError, match="colour channels"):
        viz.imgify(torch.ones(5, 4, 4))
