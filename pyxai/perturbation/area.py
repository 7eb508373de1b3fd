"""The area term of extremal perturbation and STEP: ``mean((sort(m) - ref)^2)`` per mask, ``ref``
zeros then ones.

TorchRay sorts every full mask at every iteration. The gradient of the sorted values goes back to
the pixels through the sort's permutation, so a pixel's gradient is ``2 (m - r) / n`` times the
upstream gradient, with ``r`` = 1 for the pixels ranked among the top ``n - z`` (``z``: the number
of zeros of ``ref``) and 0 for the others. :func:`area_error` finds that split by selection
(``kthvalue``, linear time) instead of a full sort when it is unambiguous — no pixel equal to the
``z``-th smallest value ranks above it — and the gradient is then the sort's bit for bit (the
same float operations, element by element). In a row where the ``z``-th smallest value is tied
across the split, which of the tied pixels get ``r = 1`` is torch.sort's choice, so that row is
sorted (TorchRay's clamp makes such plateaus of exact 0 or 1 common). The value (it only
enters the energy history) is the same mean summed in another order: equal up to rounding.

On CUDA it always sorts: the tie check reads a flag back to the host, a sync every iteration.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyxai.ops._dispatch import resolve_backend

#: use the selection on CPU (tests turn it off to compare with the sorting path)
SELECTION = True


class _SplitSquaredError(torch.autograd.Function):
    """``mean((m - r)^2, dim=1)`` for Tensor[R, n] masks and their 0 / 1 ranks ``r``; the
    backward is autograd's for ``((sort(m) - ref) ** 2).mean(dim=1)``, operation by operation."""

    @staticmethod
    def forward(ctx, flat: Tensor, top: Tensor) -> Tensor:
        diff = flat - top.to(flat.dtype)
        ctx.save_for_backward(diff)
        return (diff**2).mean(dim=1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (diff,) = ctx.saved_tensors
        # MeanBackward (expand, / n), then PowBackward (grad * (2 * diff^1))
        return grad[:, None].expand_as(diff) / diff.shape[1] * (2.0 * diff), None


def _top(flat: Tensor, zeros: list[int], stable: bool = False) -> Tensor:
    """Bool Tensor[R, n]: the pixels that torch.sort ranks after the first ``zeros[r]`` of row
    ``r``. By selection where the ``zeros[r]``-th smallest value is not tied across the split;
    the rows where it is are sorted (torch.sort orders each row on its own: sorting a subset of
    the rows gives each of them the same permutation)."""
    n = flat.shape[1]
    top = torch.empty(flat.shape, dtype=torch.bool, device=flat.device)
    for z in sorted(set(zeros)):
        rows = torch.tensor([r for r, zr in enumerate(zeros) if zr == z], device=flat.device)
        if z <= 0 or z >= n:
            top[rows] = z <= 0
            continue
        x = flat[rows]
        kth = x.kthvalue(z, dim=1).values
        below = x <= kth[:, None]
        tied = below.sum(dim=1) != z
        if bool(tied.any()):
            order = x[tied].sort(dim=1, stable=stable)[1]
            below[tied] = torch.ones_like(order, dtype=torch.bool).scatter_(
                1, order[:, z:], False)
        top[rows] = ~below
    return top


def split_counts(ref: Tensor, backend: str | None) -> list[int] | None:
    """The ``zeros`` argument of :func:`area_error` for the targets Tensor[R, n] (their number of
    zeros per row), or None where the area term sorts: on CUDA, and on the reference backend
    (TorchRay's arithmetic, the history's values included). Read once, before the iterations."""
    if ref.device.type != "cpu" or resolve_backend(backend, ref.device) == "reference":
        return None
    return (ref == 0).sum(dim=1).tolist()


def area_error(flat: Tensor, ref: Tensor, zeros: list[int] | None = None,
               stable: bool = False) -> Tensor:
    """``((flat.sort(dim=1, stable=stable)[0] - ref) ** 2).mean(dim=1)``, differentiable w.r.t.
    ``flat``.

    Args:
        flat: Tensor[R, n] masks, one per row.
        ref: Tensor[R, n] the sorted target of each row: 0 on its first ``zeros[r]`` entries,
            1 on the rest.
        zeros: ``zeros[r]`` for every row, or None to sort (as on CUDA).
        stable: a stable sort (ties in index order) where one is needed.

    Returns:
        Tensor[R].
    """
    if zeros is not None and SELECTION and flat.device.type == "cpu":
        return _SplitSquaredError.apply(flat, _top(flat.detach(), zeros, stable))
    return ((flat.sort(dim=1, stable=stable)[0] - ref) ** 2).mean(dim=1)
