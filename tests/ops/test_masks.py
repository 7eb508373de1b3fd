"""masks ops: native kernels vs the pure-PyTorch reference, and the reference vs independent oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyxai import ops
from pyxai.ops.masks import MODES
from tests.conftest import native_or_skip

DTYPES = [torch.float32, torch.float64]


def _case(rng, n, g, size, canvas, dtype):
    gh, gw = g
    grids = torch.rand(n, gh, gw, generator=rng, dtype=torch.float64).to(dtype)
    oy = torch.randint(0, canvas[0] - size[0] + 1, (n,), generator=rng)
    ox = torch.randint(0, canvas[1] - size[1] + 1, (n,), generator=rng)
    return grids, torch.stack([oy, ox], 1)


SHAPES = [  # (n, grid, size, canvas)
    (1, (7, 7), (64, 64), (80, 80)),         # batch 1, RISE-like
    (37, (5, 3), (33, 47), (40, 61)),        # odd everything
    (300, (8, 8), (24, 24), (27, 27)),       # many masks
    (4, (1, 6), (9, 13), (9, 13)),           # a 1-row grid, no crop
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_upsample_masks_native_equals_reference(rng, mode, dtype, shape):
    native_or_skip()
    n, g, size, canvas = shape
    grids, off = _case(rng, n, g, size, canvas, dtype)
    a = ops.upsample_masks(grids, size, off, canvas, mode, backend="native")
    b = ops.upsample_masks(grids, size, off, canvas, mode, backend="reference")
    assert a.shape == (n, *size) and a.dtype == dtype
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # same arithmetic: bit-identical


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_upsample_blend_native_equals_reference(rng, mode, dtype):
    native_or_skip()
    n, b, c = 11, 3, 4
    size, canvas = (29, 35), (36, 40)
    grids, off = _case(rng, n, (6, 5), size, canvas, dtype)
    x = torch.randn(b, c, *size, generator=rng, dtype=torch.float64).to(dtype)
    base = torch.randn(1, c, 1, 1, generator=rng, dtype=torch.float64).to(dtype)
    a = ops.upsample_blend(x, grids, off, base, canvas, mode, backend="native")
    r = ops.upsample_blend(x, grids, off, base, canvas, mode, backend="reference")
    assert a.shape == (n * b, c, *size)
    torch.testing.assert_close(a, r, rtol=0, atol=0)
    # mask-major rows: row n*B + b is image b under mask n
    m = ops.upsample_masks(grids, size, off, canvas, mode, backend="reference")
    k, j = n - 1, b - 1
    expect = x[j] * m[k] + base[0] * (1 - m[k])
    torch.testing.assert_close(a[k * b + j], expect)


def test_upsample_blend_video_and_noncontiguous(rng):
    native_or_skip()
    x = torch.randn(2, 3, 5, 20, 24, generator=rng).transpose(-1, -2).contiguous().transpose(-1, -2)
    x = x[:, :, ::2]  # non-contiguous, [2, 3, 3, 20, 24]
    assert not x.is_contiguous()
    grids, off = _case(rng, 6, (4, 4), (20, 24), (25, 30), torch.float32)
    a = ops.upsample_blend(x, grids, off, 0.5, (25, 30), "bilinear_reflect", backend="native")
    r = ops.upsample_blend(x, grids, off, 0.5, (25, 30), "bilinear_reflect", backend="reference")
    assert a.shape == (12, 3, 3, 20, 24)
    torch.testing.assert_close(a, r, rtol=0, atol=0)
    m = ops.upsample_masks(grids, (20, 24), off, (25, 30), "bilinear_reflect")
    torch.testing.assert_close(a[7], x[1] * m[3] + 0.5 * (1 - m[3]))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_weighted_mask_sum_native_equals_reference(rng, mode, dtype):
    native_or_skip()
    n, k = 517, 3
    size, canvas = (31, 26), (38, 30)
    grids, off = _case(rng, n, (7, 5), size, canvas, dtype)
    w = torch.randn(n, k, generator=rng, dtype=torch.float64).to(dtype)
    a = ops.weighted_mask_sum(grids, w, size, off, canvas, mode, backend="native")
    r = ops.weighted_mask_sum(grids, w, size, off, canvas, mode, backend="reference")
    assert a.shape == (k, *size)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(a, r, rtol=tol, atol=tol * math.sqrt(n))
    # against the explicit definition in float64
    m = ops.upsample_masks(grids.double(), size, off, canvas, mode, backend="reference")
    expect = torch.einsum("nk,nhw->khw", w.double(), m)
    torch.testing.assert_close(a.double(), expect, rtol=tol, atol=tol * math.sqrt(n))


@pytest.mark.parametrize(
    "mode,kw", [("nearest", {}), ("bilinear", {"align_corners": False}),
                ("bilinear_align_corners", {"align_corners": True})]
)
def test_modes_match_f_interpolate(rng, mode, kw):
    grids = torch.rand(5, 7, 4, generator=rng)
    for size in [(7, 4), (14, 8), (61, 33), (224, 224), (3, 2)]:
        tmode = "nearest" if mode == "nearest" else "bilinear"
        expect = F.interpolate(grids[:, None], size=size, mode=tmode, **kw)[:, 0]
        for backend in ("reference", "auto"):
            got = ops.upsample_masks(grids, size, mode=mode, backend=backend)
            torch.testing.assert_close(got, expect, rtol=0, atol=1e-6)


def test_bilinear_reflect_matches_skimage(rng):
    transform = pytest.importorskip("skimage.transform")
    s, h = 7, 50
    cell = math.ceil(h / s)
    up = (s + 1) * cell
    grids = (torch.rand(4, s, s, generator=rng, dtype=torch.float64) < 0.5).double()
    off = torch.randint(0, cell, (4, 2), generator=rng)
    got = ops.upsample_masks(grids, h, off, up, "bilinear_reflect")
    for i in range(4):
        big = transform.resize(grids[i].numpy(), (up, up), order=1, mode="reflect",
                               anti_aliasing=False)
        dy, dx = off[i].tolist()
        np.testing.assert_allclose(got[i].numpy(), big[dy:dy + h, dx:dx + h], atol=1e-7)
    # not the same as F.interpolate's edge clamp
    clamp = ops.upsample_masks(grids, h, off, up, "bilinear")
    assert (clamp - got).abs().max() > 1e-3


def test_opcheck():
    native_or_skip()
    g = torch.rand(3, 4, 5)
    off = torch.tensor([[0, 1], [2, 0], [1, 1]])
    x = torch.randn(2, 3, 10, 12)
    w = torch.randn(3, 2)
    base = torch.zeros_like(x)
    for mode in MODES:
        torch.library.opcheck(torch.ops.pyxai.upsample_masks.default, (g, off, [10, 12], [12, 13], mode))
        torch.library.opcheck(torch.ops.pyxai.upsample_blend.default, (x, g, off, base, [12, 13], mode))
        torch.library.opcheck(torch.ops.pyxai.weighted_mask_sum.default,
                              (g, off, w, [10, 12], [12, 13], mode))


def test_compile_traces_native_op():
    native_or_skip()
    g = torch.rand(3, 4, 4)

    @torch.compile(backend="eager", fullgraph=True)
    def f(grids):
        return torch.ops.pyxai.upsample_masks(grids, torch.zeros(3, 2, dtype=torch.long),
                                              [8, 8], [8, 8], "nearest") * 2

    torch.testing.assert_close(f(g), 2 * ops.upsample_masks(g, 8))


# ------------------------------------------------------------------------------------------------
# bad input: clear errors before any kernel


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_bad_input(backend):
    g = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="grids"):
        ops.upsample_masks(torch.rand(4, 4), 8, backend=backend)
    with pytest.raises(TypeError, match="grids"):
        ops.upsample_masks(torch.ones(2, 4, 4, dtype=torch.int64), 8, backend=backend)
    with pytest.raises(ValueError, match="NaN"):
        ops.upsample_masks(torch.full((2, 4, 4), float("nan")), 8, backend=backend)
    with pytest.raises(ValueError, match="grids"):
        ops.upsample_masks(torch.rand(0, 4, 4), 8, backend=backend)
    with pytest.raises(ValueError, match="size"):
        ops.upsample_masks(g, 0, backend=backend)
    with pytest.raises(ValueError, match="canvas"):
        ops.upsample_masks(g, 8, canvas=6, backend=backend)
    with pytest.raises(ValueError, match="offsets"):
        ops.upsample_masks(g, 8, torch.tensor([[0, 0], [0, 3]]), canvas=10, backend=backend)
    with pytest.raises(ValueError, match="offsets"):
        ops.upsample_masks(g, 8, torch.tensor([[0, 0], [-1, 0]]), canvas=10, backend=backend)
    with pytest.raises(TypeError, match="offsets"):
        ops.upsample_masks(g, 8, torch.zeros(2, 2), canvas=10, backend=backend)
    with pytest.raises(ValueError, match="mode"):
        ops.upsample_masks(g, 8, mode="cubic", backend=backend)
    with pytest.raises(ValueError, match="empty batch"):
        ops.upsample_blend(torch.rand(0, 3, 8, 8), g, backend=backend)
    with pytest.raises(TypeError, match="dtype"):
        ops.upsample_blend(torch.rand(1, 3, 8, 8, dtype=torch.float64), g, backend=backend)
    with pytest.raises(ValueError, match="baseline"):
        ops.upsample_blend(torch.rand(1, 3, 8, 8), g, baseline=torch.zeros(2, 8, 8), backend=backend)
    with pytest.raises(ValueError, match="weights"):
        ops.weighted_mask_sum(g, torch.rand(3, 1), 8, backend=backend)
    with pytest.raises(ValueError, match="backend"):
        ops.upsample_masks(g, 8, backend="fast")


def test_raw_op_checks_arguments():
    """torch.ops.pyxai.* called directly still refuses bad arguments instead of crashing."""
    native_or_skip()
    g = torch.rand(2, 4, 4)
    with pytest.raises(RuntimeError, match="offsets"):
        torch.ops.pyxai.upsample_masks(g, torch.zeros(3, 2, dtype=torch.long), [8, 8], [8, 8], "nearest")
    with pytest.raises(RuntimeError, match="mode"):
        torch.ops.pyxai.upsample_masks(g, torch.zeros(2, 2, dtype=torch.long), [8, 8], [8, 8], "x")
    with pytest.raises(RuntimeError, match="canvas"):
        torch.ops.pyxai.upsample_masks(g, torch.zeros(2, 2, dtype=torch.long), [8, 8], [4, 4], "nearest")
    # out-of-range offsets are clamped inside the canvas, never read out of bounds
    big = torch.full((2, 2), 1000, dtype=torch.long)
    out = torch.ops.pyxai.upsample_masks(g, big, [8, 8], [10, 10], "bilinear")
    assert torch.isfinite(out).all()
