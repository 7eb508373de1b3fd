"""masks ops on CUDA: native CUDA == reference on CUDA == native CPU."""

from __future__ import annotations

import math

import pytest
import torch

from pyxai import ops
from pyxai.ops.masks import MODES
from tests.conftest import native_or_skip

DEV = "cuda"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masks_cuda_parity(rng, mode, dtype):
    native_or_skip(DEV)
    n, b, c, size, canvas = 301, 3, 3, (57, 43), (64, 50)
    grids = torch.rand(n, 7, 6, generator=rng, dtype=dtype)
    off = torch.stack([torch.randint(0, canvas[0] - size[0] + 1, (n,), generator=rng),
                       torch.randint(0, canvas[1] - size[1] + 1, (n,), generator=rng)], 1)
    x = torch.randn(b, c, *size, generator=rng, dtype=dtype)
    w = torch.randn(n, b, generator=rng, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for fn, args in [
        (ops.upsample_masks, lambda d: (grids.to(d), size, off.to(d), canvas, mode)),
        (ops.upsample_blend, lambda d: (x.to(d), grids.to(d), off.to(d), 0.25, canvas, mode)),
    ]:
        cpu = fn(*args("cpu"), backend="native")
        gpu = fn(*args(DEV), backend="native")
        ref = fn(*args(DEV), backend="reference")
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol, atol=tol)
        torch.testing.assert_close(gpu, ref, rtol=tol, atol=tol)
    cpu = ops.weighted_mask_sum(grids, w, size, off, canvas, mode, backend="native")
    gpu = ops.weighted_mask_sum(grids.to(DEV), w.to(DEV), size, off.to(DEV), canvas, mode,
                                backend="native")
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol * 10, atol=tol * 10 * math.sqrt(n))


def test_masks_cuda_opcheck():
    native_or_skip(DEV)
    g = torch.rand(3, 4, 5, device=DEV)
    off = torch.tensor([[0, 1], [2, 0], [1, 1]], device=DEV)
    torch.library.opcheck(torch.ops.pyxai.upsample_masks.default,
                          (g, off, [10, 12], [12, 13], "bilinear_reflect"))
