"""The smooth mask generator of extremal perturbation and STEP (TorchRay's), as one op.

Parameters ``params[n]`` (``gh x gw``) are zero-padded by ``pad``, unfolded into ``t x t`` taps
(tap ``k = ky * t + kx``), each tap plane nearest-upsampled by ``step`` to the canvas, and pooled
per output pixel with a softmax of coldness 20 over the weighted taps::

    a_k = weight[k, y, x] * params[n, r(y) + ky - pad, c(x) + kx - pad]     (0 outside the grid)
    out[n, y, x] = sum_k a_k softmax_k(20 a)

``r`` / ``c``: torch's nearest source index from the canvas (``step * (g + 2 pad - t + 1)``) to the
unfolded grid; the output is the canvas cropped at 0 to the weight's ``H x W``. The native kernels
(``csrc/smooth_masks``) recompute the taps instead of storing them (memory O(N H W) instead of
O(N K H W)): the native forward also returns each pixel's softmax maximum and denominator, from
which its backward recomputes every tap's exponential once; the reference is TorchRay's
arithmetic in vectorised PyTorch (unfold, nearest upsampling, softmax, sum). Differentiable
w.r.t. ``params`` on both paths (the native backward is ``smooth_masks_backward``); ``weight``
gets no gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pyxai.engine.checks import check_float_tensor, check_matches
from pyxai.ops._dispatch import resolve_backend
from pyxai.ops.masks import _masks_reference

COLDNESS = 20.0


def smooth_geometry(grid: tuple[int, int], taps: int, pad: int, step: int
                    ) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(mid, canvas)``: the unfolded grid ``g + 2 pad - t + 1`` and the canvas ``step * mid``."""
    mid = tuple(g + 2 * pad - taps + 1 for g in grid)
    return mid, tuple(step * m for m in mid)  # type: ignore[return-value]


def _check(params: torch.Tensor, weight: torch.Tensor, pad: int, step: int) -> int:
    """Metadata checks (no tensor value read); returns the number of taps per side ``t``."""
    if not isinstance(params, torch.Tensor) or params.dim() != 3 or 0 in params.shape[1:]:
        shape = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
        raise ValueError(f"params must be a Tensor[N, gh, gw] with a non-empty grid, got {shape}")
    check_float_tensor(params, "params")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 3:
        raise ValueError("weight must be a Tensor[t * t, H, W]")
    check_matches(weight, params, "weight", "params")
    for name, value, low in (("pad", pad, 0), ("step", step, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    taps = math.isqrt(weight.shape[0])
    if taps < 1 or taps * taps != weight.shape[0]:
        raise ValueError(f"weight must hold t * t tap planes, got {weight.shape[0]}")
    mid, canvas = smooth_geometry(tuple(params.shape[1:]), taps, pad, step)
    if min(mid) < 1:
        raise ValueError(f"{taps} x {taps} taps do not fit the {tuple(params.shape[1:])} grid "
                         f"padded by {pad}")
    if 0 in weight.shape[1:] or weight.shape[1] > canvas[0] or weight.shape[2] > canvas[1]:
        raise ValueError(f"weight planes {tuple(weight.shape[1:])} must be non-empty and fit the "
                         f"canvas {canvas}")
    return taps


class _SoftmaxPool(torch.autograd.Function):
    """``m = sum_k a_k softmax_k(20 a)`` with ``a = weight * v``, pooled over dim 1.

    The forward is TorchRay's arithmetic (same ops, same order); the backward is the closed form
    ``dm/da_k = s_k (1 + 20 (a_k - m))`` computed in place in one buffer, which saves most of the
    K-sized temporaries autograd would keep.
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        a = weight * v  # [N, K, H, W]
        s = F.softmax(COLDNESS * a, dim=1)
        m = (a * s).sum(dim=1, keepdim=True)
        ctx.save_for_backward(a, s, m, weight)
        return m

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        a, s, m, weight = ctx.saved_tensors
        g = (a - m).mul_(COLDNESS).add_(1).mul_(s).mul_(grad).mul_(weight)  # one K-sized buffer
        return g, None


def _smooth_masks_reference(params: torch.Tensor, weight: torch.Tensor, pad: int, step: int,
                            taps: int) -> torch.Tensor:
    n, k, (h, w) = params.shape[0], weight.shape[0], weight.shape[1:]
    mid, canvas = smooth_geometry(tuple(params.shape[1:]), taps, pad, step)
    v = F.unfold(params[:, None], (taps, taps), padding=(pad, pad)).reshape(n * k, *mid)
    zeros = torch.zeros(n * k, 2, dtype=torch.int64, device=params.device)
    v = _masks_reference(v, zeros, (h, w), canvas, "nearest")
    return _SoftmaxPool.apply(v.reshape(n, k, h, w), weight.detach())[:, 0]


def smooth_masks(params: torch.Tensor, weight: torch.Tensor, pad: int, step: int,
                 backend: str | None = None) -> torch.Tensor:
    """Smooth masks from parameter grids (TorchRay's mask generator, before its clamp).

    Args:
        params: Tensor[N, gh, gw] float32/float64 (differentiable).
        weight: Tensor[t * t, H, W] of params' dtype and device: the weight of every tap at every
            output pixel; ``H x W`` at most the canvas ``step * (g + 2 pad - t + 1)``.
        pad: zero padding of the grid before unfolding (>= 0).
        step: nearest-upsampling factor (>= 1).
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``).

    Returns:
        Tensor[N, H, W].
    """
    taps = _check(params, weight, pad, step)
    if resolve_backend(backend, params.device) == "native":
        return torch.ops.pyxai.smooth_masks(params, weight.detach(), pad, step)[0]
    return _smooth_masks_reference(params, weight, pad, step, taps)


def smooth_masks_backward(grad: torch.Tensor, params: torch.Tensor, weight: torch.Tensor,
                          pad: int, step: int, backend: str | None = None) -> torch.Tensor:
    """The gradient of :func:`smooth_masks` w.r.t. ``params`` (the native path first runs the
    forward for the per-pixel statistics its backward kernel reads; autograd keeps the forward's).

    Args:
        grad: Tensor[N, H, W], the gradient of the output.
        params, weight, pad, step, backend: as :func:`smooth_masks`.

    Returns:
        Tensor[N, gh, gw].
    """
    taps = _check(params, weight, pad, step)
    if not isinstance(grad, torch.Tensor) or grad.shape != (params.shape[0], *weight.shape[1:]):
        shape = tuple(grad.shape) if isinstance(grad, torch.Tensor) else type(grad).__name__
        raise ValueError(f"grad must be a Tensor[{params.shape[0]}, {weight.shape[1]}, "
                         f"{weight.shape[2]}], got {shape}")
    check_matches(grad, params, "grad", "params")
    if resolve_backend(backend, params.device) == "native":
        out, stats = torch.ops.pyxai.smooth_masks(params.detach(), weight.detach(), pad, step)
        return torch.ops.pyxai.smooth_masks_backward(grad, params.detach(), weight.detach(), out,
                                                     stats, pad, step)
    with torch.enable_grad():
        p = params.detach().requires_grad_(True)
        out = _smooth_masks_reference(p, weight, pad, step, taps)
        (g,) = torch.autograd.grad(out, p, grad)
    return g
