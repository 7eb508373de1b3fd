"""Fake (meta) kernels of the native ops, so torch.compile and torch.library.opcheck can trace them.

Imported by pyxai._native once pyxai._C has loaded. One function per op, named after it. Importing
this module also registers the ops' backward formulas (:mod:`pyxai.ops._autograd`).
"""

from __future__ import annotations

import torch


@torch.library.register_fake("pyxai::upsample_masks")
def _upsample_masks_fake(grids, offsets, size, canvas, mode):
    return grids.new_empty(grids.shape[0], size[0], size[1])


@torch.library.register_fake("pyxai::upsample_blend")
def _upsample_blend_fake(x, grids, offsets, baseline, canvas, mode):
    return x.new_empty(grids.shape[0] * x.shape[0], *x.shape[1:])


@torch.library.register_fake("pyxai::weighted_mask_sum")
def _weighted_mask_sum_fake(grids, offsets, weights, size, canvas, mode):
    return grids.new_empty(weights.shape[1], size[0], size[1])


@torch.library.register_fake("pyxai::upsample_masks_backward")
def _upsample_masks_backward_fake(grad, offsets, grid, canvas, mode):
    return grad.new_empty(grad.shape[0], grid[0], grid[1])


@torch.library.register_fake("pyxai::smooth_masks")
def _smooth_masks_fake(params, weight, pad, step):
    n, h, w = params.shape[0], weight.shape[1], weight.shape[2]
    return params.new_empty(n, h, w), params.new_empty(n, 2, h, w)


@torch.library.register_fake("pyxai::smooth_masks_backward")
def _smooth_masks_backward_fake(grad, params, weight, out, stats, pad, step):
    return params.new_empty(params.shape)


@torch.library.register_fake("pyxai::occlusion_perturb")
def _occlusion_perturb_fake(x, baseline, window, strides, first, count):
    return x.new_empty(count * x.shape[0], *x.shape[1:])


@torch.library.register_fake("pyxai::occlusion_accumulate")
def _occlusion_accumulate_fake(drops, shape, window, strides):
    return drops.new_empty(drops.shape[1], *shape)


@torch.library.register_fake("pyxai::reveal_by_rank")
def _reveal_by_rank_fake(start, finish, ranks, first, count, step_px):
    return start.new_empty(count, start.shape[1], start.shape[2])


@torch.library.register_fake("pyxai::sobol_design")
def _sobol_design_fake(A, B, first, count):
    return A.new_empty(count, A.shape[1])


@torch.library.register_fake("pyxai::sobol_indices")
def _sobol_indices_fake(yA, yB, yC, estimator):
    return yA.new_empty(2, yC.shape[0], yA.shape[1])


@torch.library.register_fake("pyxai::lrp_split_sign")
def _lrp_split_sign_fake(x, groups):
    return x.new_empty(x.shape[0], 2 * x.shape[1], *x.shape[2:])


@torch.library.register_fake("pyxai::lrp_stab_div")
def _lrp_stab_div_fake(grad, z, z0, groups, coef, mask, eps):
    return grad.new_empty(grad.shape[0], len(coef) * grad.shape[1], *grad.shape[2:])


@torch.library.register_fake("pyxai::lrp_combine")
def _lrp_combine_fake(xs, g, groups, coef):
    return xs.new_empty(g.shape[0], xs.shape[1] // len(coef), *xs.shape[2:])


from pyxai.ops import _autograd  # noqa: E402, F401  (backward formulas, once the ops exist)
