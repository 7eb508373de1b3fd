"""Runs every native CUDA op once on small inputs; tests/gpu/run.sh runs this under
compute-sanitizer (memcheck, racecheck) to catch out-of-bounds accesses and races.

Families add their ops to OPS with a small, representative call.
"""

from __future__ import annotations

import torch

import pyxai  # noqa: F401  (loads the extension)
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


OPS = [masks]

if __name__ == "__main__":
    for fn in OPS:
        fn()
        torch.cuda.synchronize()
        print(f"sanitize: {fn.__name__} ok")
