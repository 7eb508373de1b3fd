"""Runs every native CUDA op once on small inputs; tests/gpu/run.sh runs this under
compute-sanitizer (memcheck, racecheck) to catch out-of-bounds accesses and races.

Families add their ops to OPS with a small, representative call; each also runs its op's backward
(and, for the masks ops, the adjoint kernel upsample_masks_backward directly).
"""

from __future__ import annotations

import torch

import pyxai  # noqa: F401  (loads the extension)
import pyxai.ops.metrics  # noqa: F401
import pyxai.ops.occlusion  # noqa: F401
import pyxai.ops.sobol  # noqa: F401
from pyxai import ops

D = "cuda"


def _backward(out: torch.Tensor, *inputs: torch.Tensor) -> None:
    torch.autograd.grad(out, inputs, torch.randn_like(out))


def _leaf(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, device=D, requires_grad=True)


def masks() -> None:
    off = torch.randint(0, 4, (5, 2), device=D)
    for mode in ops.masks.MODES:
        g, x, w = _leaf(5, 7, 6), _leaf(2, 3, 21, 19), _leaf(5, 2)
        out = ops.upsample_masks(g, (21, 19), off, (24, 22), mode, backend="native")
        _backward(out, g)
        out = ops.upsample_blend(x, g, off, 0.0, (24, 22), mode, backend="native")
        _backward(out, x, g)
        out = ops.weighted_mask_sum(g, w, (21, 19), off, (24, 22), mode, backend="native")
        _backward(out, g, w)
        ops.upsample_masks_backward(torch.randn(5, 21, 19, device=D), (7, 6), off, (24, 22), mode,
                                    backend="native")
        # tall and wide grids, a 1-cell axis, no crop
        ops.upsample_masks_backward(torch.randn(3, 9, 40, device=D), (1, 13),
                                    torch.zeros(3, 2, dtype=torch.long, device=D), (9, 40), mode,
                                    backend="native")


def occlusion() -> None:
    x, base = _leaf(2, 3, 13, 11), _leaf(2, 3, 13, 11)
    out = ops.occlusion.occlusion_perturb(x, (3, 4, 4), (3, 3, 3), 0, 12, base, backend="native")
    _backward(out, x, base)
    drops = _leaf(16, 2)
    out = ops.occlusion.occlusion_accumulate(drops, (3, 13, 11), (3, 4, 4), (3, 3, 3),
                                             backend="native")
    _backward(out, drops)


def sobol() -> None:
    a, b = _leaf(8, 16), _leaf(8, 16)
    _backward(ops.sobol.sobol_design(a, b, 3, 100, backend="native"), a, b)
    for est in ops.sobol.ESTIMATORS:
        ya, yb, yc = _leaf(8, 2), _leaf(8, 2), _leaf(16, 8, 2)
        _backward(ops.sobol.sobol_indices(ya, yb, yc, est, backend="native"), ya, yb, yc)


def metrics() -> None:
    s, f = _leaf(2, 3, 9, 7), _leaf(2, 3, 9, 7)
    ranks = ops.metrics.pixel_ranks(torch.randn(2, 63, device=D))
    _backward(ops.metrics.reveal_by_rank(s, f, ranks, 0, 10, 13, backend="native"), s, f)


def smooth_masks() -> None:
    from pyxai.perturbation.extremal import MaskGenerator

    for size, step, sigma in [((37, 50), 5, 9.5), ((12, 10), 3, 2.5)]:
        gen = MaskGenerator(size, step, sigma, torch.device(D))
        p = _leaf(3, *gen.shape_in)
        _backward(ops.smooth_masks(p, gen.weight, gen.padding, step, backend="native"), p)


OPS = [masks, smooth_masks, occlusion, sobol, metrics]

if __name__ == "__main__":
    for fn in OPS:
        fn()
        torch.cuda.synchronize()
        print(f"sanitize: {fn.__name__} ok")
