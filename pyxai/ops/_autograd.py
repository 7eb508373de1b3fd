"""Backward formulas of the native ops, registered with ``torch.library.register_autograd``.

Imported by :mod:`pyxai.ops._fake` once ``pyxai._C`` has loaded, so every ``torch.ops.pyxai.*`` op of
the masks, smooth_masks, occlusion, sobol and metrics families is differentiable whatever device ran it. Each
backward is written with aten ops and ``torch.ops.pyxai`` ops that are differentiable themselves
(the masks ops and their adjoint ``upsample_masks_backward`` are each other's backward), so double
backward works: extremal perturbation and STEP optimise through ``upsample_blend``. The formulas
never read a tensor value on the host and give the reference path's gradients.

The integer inputs (offsets, ranks) and the sizes get no gradient.
"""

from __future__ import annotations

import math

import torch
from torch.library import register_autograd

from pyxai.ops.metrics import _revealed
from pyxai.ops.occlusion import _accumulate_adjoint, _window_masks
from pyxai.ops.sobol import _indices_reference, _takes_b

_ops = torch.ops.pyxai
CHUNK = 256  # masks per step where a backward would otherwise hold N full-size masks


def _needs(ctx, i: int) -> bool:
    return ctx.needs_input_grad[i]


# ----------------------------------------------------------------------------------------------
# masks: upsample_masks is linear in the grids, so its backward is the adjoint kernel
# upsample_masks_backward, whose backward is upsample_masks again (derivatives of every order).


def _upsample_masks_setup(ctx, inputs, output):
    grids, offsets, _, canvas, mode = inputs
    ctx.save_for_backward(offsets)
    ctx.grid, ctx.canvas, ctx.mode = list(grids.shape[1:]), canvas, mode


def _upsample_masks_backward(ctx, grad):
    (offsets,) = ctx.saved_tensors
    return _ops.upsample_masks_backward(grad, offsets, ctx.grid, ctx.canvas, ctx.mode), None, None, \
        None, None


def _masks_adjoint_setup(ctx, inputs, output):
    grad, offsets, _, canvas, mode = inputs
    ctx.save_for_backward(offsets)
    ctx.size, ctx.canvas, ctx.mode = list(grad.shape[1:]), canvas, mode


def _masks_adjoint_backward(ctx, grad_grids):
    (offsets,) = ctx.saved_tensors
    return _ops.upsample_masks(grad_grids, offsets, ctx.size, ctx.canvas, ctx.mode), None, None, \
        None, None


def _upsample_blend_setup(ctx, inputs, output):
    x, grids, offsets, baseline, canvas, mode = inputs
    ctx.save_for_backward(x, grids, offsets, baseline)
    ctx.canvas, ctx.mode = canvas, mode


def _upsample_blend_backward(ctx, grad):
    """out[n, b] = x[b] * m_n + baseline[b] * (1 - m_n) on rows n * B + b."""
    x, grids, offsets, baseline = ctx.saved_tensors
    b, p, h, w = x.shape
    g = grad.reshape(grids.shape[0], b, p, h, w)
    gx = ggrids = gbase = None
    if _needs(ctx, 0) or _needs(ctx, 3):
        m = _ops.upsample_masks(grids, offsets, [h, w], ctx.canvas, ctx.mode)[:, None, None]
        gx = (g * m).sum(0) if _needs(ctx, 0) else None
        gbase = (g * (1 - m)).sum(0) if _needs(ctx, 3) else None
    if _needs(ctx, 1):
        gm = (g * (x - baseline)[None]).sum((1, 2))  # [N, H, W]
        ggrids = _ops.upsample_masks_backward(gm, offsets, list(grids.shape[1:]), ctx.canvas,
                                              ctx.mode)
    return gx, ggrids, None, gbase, None, None


def _weighted_mask_sum_setup(ctx, inputs, output):
    grids, offsets, weights, size, canvas, mode = inputs
    ctx.save_for_backward(grids, offsets, weights)
    ctx.size, ctx.canvas, ctx.mode = size, canvas, mode


def _weighted_mask_sum_backward(ctx, grad):
    """out[k] = sum_n weights[n, k] m_n, in chunks of CHUNK masks (never N full-size planes)."""
    grids, offsets, weights = ctx.saved_tensors
    n, (h, w) = grids.shape[0], ctx.size
    flat = grad.reshape(grad.shape[0], h * w)  # [K, HW]
    ggrids, gweights = [], []
    for i in range(0, n, CHUNK):
        j = min(i + CHUNK, n)
        if _needs(ctx, 0):
            gm = (weights[i:j] @ flat).reshape(j - i, h, w)
            ggrids.append(_ops.upsample_masks_backward(gm, offsets[i:j], list(grids.shape[1:]),
                                                       ctx.canvas, ctx.mode))
        if _needs(ctx, 2):
            m = _ops.upsample_masks(grids[i:j], offsets[i:j], ctx.size, ctx.canvas, ctx.mode)
            gweights.append(m.reshape(j - i, h * w) @ flat.T)
    return (torch.cat(ggrids) if ggrids else None), None, \
        (torch.cat(gweights) if gweights else None), None, None, None


# ----------------------------------------------------------------------------------------------
# occlusion


def _occlusion_perturb_setup(ctx, inputs, output):
    x, _, window, strides, first, count = inputs
    ctx.shape, ctx.device = tuple(x.shape), x.device
    ctx.window, ctx.strides, ctx.first, ctx.count = tuple(window), tuple(strides), first, count


def _occlusion_perturb_backward(ctx, grad):
    """Row j * B + b is x[b] with window first + j set to baseline[b]."""
    shape = ctx.shape
    inside = _window_masks(shape[1:], ctx.window, ctx.strides, ctx.first, ctx.count, ctx.device)
    inside = inside[:, None]  # [count, 1, *D]
    g = grad.reshape(ctx.count, *shape)
    gx = torch.where(inside, 0, g).sum(0) if _needs(ctx, 0) else None
    gbase = torch.where(inside, g, 0).sum(0) if _needs(ctx, 1) else None
    return gx, gbase, None, None, None, None


def _occlusion_accumulate_setup(ctx, inputs, output):
    _, shape, window, strides = inputs
    ctx.args = (tuple(shape), tuple(window), tuple(strides))


def _occlusion_accumulate_backward(ctx, grad):
    return _accumulate_adjoint(grad, *ctx.args), None, None, None


# ----------------------------------------------------------------------------------------------
# metrics and sobol: rows that sum back onto a period (images, design points)


def _periods(rows: torch.Tensor, first: int, period: int) -> torch.Tensor:
    """Rows ``first + i`` laid out by period: Tensor[blocks, period, *rest], ``out[q, r]`` is row
    ``q * period + r`` counted from ``(first // period) * period`` (zeros where there is none).

    Summing over dim 0 adds every row onto its ``(first + i) % period`` (fixed order, no atomics).
    """
    lead = first % period
    blocks = math.ceil((lead + rows.shape[0]) / period)
    tail = blocks * period - lead - rows.shape[0]
    pad = rows.new_zeros(lead, *rows.shape[1:]), rows, rows.new_zeros(tail, *rows.shape[1:])
    return torch.cat(pad).reshape(blocks, period, *rows.shape[1:])


def _reveal_by_rank_setup(ctx, inputs, output):
    start, _, ranks, first, count, step_px = inputs
    ctx.save_for_backward(ranks)
    ctx.first, ctx.count, ctx.step_px = first, count, step_px


def _reveal_by_rank_backward(ctx, grad):
    """out[i] = where(revealed_i, finish[b_i], start[b_i]), b_i = (first + i) % B."""
    (ranks,) = ctx.saved_tensors
    _, keep = _revealed(ranks, ctx.first, ctx.count, ctx.step_px)
    keep = keep[:, None, :]  # [count, 1, P]
    b = ranks.shape[0]
    gs = _periods(torch.where(keep, 0, grad), ctx.first, b).sum(0) if _needs(ctx, 0) else None
    gf = _periods(torch.where(keep, grad, 0), ctx.first, b).sum(0) if _needs(ctx, 1) else None
    return gs, gf, None, None, None, None


def _sobol_design_setup(ctx, inputs, output):
    a, _, first, count = inputs
    ctx.n, ctx.first = a.shape[0], first


def _sobol_design_backward(ctx, grad):
    """Row k = first + r is A[k % N] with the columns _takes_b(k // N) from B[k % N]."""
    n, d = ctx.n, grad.shape[1]
    rows = _periods(grad, ctx.first, n)  # [blocks, N, d]
    blocks = torch.arange(ctx.first // n, ctx.first // n + rows.shape[0], device=grad.device)
    take_b = _takes_b(blocks, d)[:, None, :]  # [blocks, 1, d]
    ga = torch.where(take_b, 0, rows).sum(0) if _needs(ctx, 0) else None
    gb = torch.where(take_b, rows, 0).sum(0) if _needs(ctx, 1) else None
    return ga, gb, None, None


def _sobol_indices_setup(ctx, inputs, output):
    ya, yb, yc, estimator = inputs
    ctx.save_for_backward(ya, yb, yc)
    ctx.estimator = estimator


def _sobol_indices_backward(ctx, grad):
    """The vector-Jacobian product of the reference estimator (differentiable again)."""
    ya, yb, yc = ctx.saved_tensors
    _, vjp = torch.func.vjp(lambda a, b, c: _indices_reference(a, b, c, ctx.estimator), ya, yb, yc)
    ga, gb, gc = vjp(grad)
    return ga, gb, gc, None


# ----------------------------------------------------------------------------------------------
# smooth_masks: the backward is its own kernel, from the forward's output and per-pixel stats (no
# double backward; the stats get no gradient).


def _smooth_masks_setup(ctx, inputs, output):
    params, weight, pad, step = inputs
    out, stats = output
    ctx.mark_non_differentiable(stats)
    ctx.save_for_backward(params, weight, out, stats)
    ctx.pad, ctx.step = pad, step


def _smooth_masks_backward(ctx, grad, _grad_stats):
    params, weight, out, stats = ctx.saved_tensors
    g = _ops.smooth_masks_backward(grad.contiguous(), params, weight, out, stats, ctx.pad,
                                   ctx.step) if _needs(ctx, 0) else None
    return g, None, None, None


def _smooth_masks_adjoint_setup(ctx, inputs, output):
    pass


def _smooth_masks_adjoint_backward(ctx, grad):
    raise NotImplementedError("pyxai: smooth_masks has no second derivative (double backward)")


# ----------------------------------------------------------------------------------------------

FORMULAS = {
    "upsample_masks": (_upsample_masks_backward, _upsample_masks_setup),
    "upsample_masks_backward": (_masks_adjoint_backward, _masks_adjoint_setup),
    "upsample_blend": (_upsample_blend_backward, _upsample_blend_setup),
    "weighted_mask_sum": (_weighted_mask_sum_backward, _weighted_mask_sum_setup),
    "smooth_masks": (_smooth_masks_backward, _smooth_masks_setup),
    "smooth_masks_backward": (_smooth_masks_adjoint_backward, _smooth_masks_adjoint_setup),
    "occlusion_perturb": (_occlusion_perturb_backward, _occlusion_perturb_setup),
    "occlusion_accumulate": (_occlusion_accumulate_backward, _occlusion_accumulate_setup),
    "reveal_by_rank": (_reveal_by_rank_backward, _reveal_by_rank_setup),
    "sobol_design": (_sobol_design_backward, _sobol_design_setup),
    "sobol_indices": (_sobol_indices_backward, _sobol_indices_setup),
}

for _name, (_backward, _setup) in FORMULAS.items():
    register_autograd(f"pyxai::{_name}", _backward, setup_context=_setup)
