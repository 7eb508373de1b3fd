"""Runs every native CUDA op once on small inputs; tests/gpu/run.sh runs this under
compute-sanitizer (memcheck, racecheck) to catch out-of-bounds accesses and races.

Families add their ops to OPS with a small, representative call.
"""

from __future__ import annotations

import torch

import pyxai  # noqa: F401  (loads the extension)
import pyxai.ops.metrics  # noqa: F401
import pyxai.ops.occlusion  # noqa: F401
import pyxai.ops.sobol  # noqa: F401
from pyxai import ops

D = "cuda"


def masks() -> None:
    g = torch.rand(5, 7, 6, device=D)
    off = torch.randint(0, 4, (5, 2), device=D)
    x = torch.randn(2, 3, 21, 19, device=D)
    for mode in ops.masks.MODES:
        ops.upsample_masks(g, (21, 19), off, (24, 22), mode, backend="native")
        ops.upsample_blend(x, g, off, 0.0, (24, 22), mode, backend="native")
        ops.weighted_mask_sum(g, torch.randn(5, 2, device=D), (21, 19), off, (24, 22), mode,
                              backend="native")


def occlusion() -> None:
    x = torch.randn(2, 3, 13, 11, device=D)
    out = ops.occlusion.occlusion_perturb(x, (3, 4, 4), (3, 3, 3), 0, 12, backend="native")
    ops.occlusion.occlusion_accumulate(torch.randn(16, 2, device=D), (3, 13, 11), (3, 4, 4),
                                       (3, 3, 3), backend="native")
    del out


def sobol() -> None:
    a, b = torch.rand(8, 16, device=D), torch.rand(8, 16, device=D)
    ops.sobol.sobol_design(a, b, 3, 100, backend="native")
    for est in ops.sobol.ESTIMATORS:
        ops.sobol.sobol_indices(torch.randn(8, 2, device=D), torch.randn(8, 2, device=D),
                                torch.randn(16, 8, 2, device=D), est, backend="native")


def metrics() -> None:
    s, f = torch.randn(2, 3, 9, 7, device=D), torch.zeros(2, 3, 9, 7, device=D)
    ranks = ops.metrics.pixel_ranks(torch.randn(2, 63, device=D))
    ops.metrics.reveal_by_rank(s, f, ranks, 0, 10, 13, backend="native")


OPS = [masks, occlusion, sobol, metrics]

if __name__ == "__main__":
    for fn in OPS:
        fn()
        torch.cuda.synchronize()
        print(f"sanitize: {fn.__name__} ok")
