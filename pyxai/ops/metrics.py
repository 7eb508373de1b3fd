"""Metric ops: deletion/insertion canvases revealed in the order of an attribution ranking.

``reveal_by_rank`` builds the perturbed inputs of RISE's causal metrics (SPECS §1.6) for many steps
and images at once from a single sort. Each pixel of image ``b`` has a rank (its position in the
importance order, 0 = most important); the canvas of step ``s`` takes ``finish`` where
``rank < s * step_px`` and ``start`` elsewhere. Rows are *items* ``i = s * B + b`` (step-major), so
any range ``[first, first + count)`` of items is one chunk for the perturbation runner, whatever
the batch size.
"""

from __future__ import annotations

import torch

from pyxai.engine.checks import check_float_tensor, check_matches
from pyxai.ops._dispatch import resolve_backend


def pixel_ranks(saliency: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel in descending saliency order (0 = most important).

    Ties keep the lower flat index first (a stable descending sort), so the order is defined even
    for flat maps; RISE's ``np.argsort`` reversal orders ties by the higher index first.

    Args:
        saliency: Tensor[B, P] one score per pixel.

    Returns:
        Tensor[B, P] int64: ``ranks[b, order[b, k]] = k``.
    """
    if not isinstance(saliency, torch.Tensor) or saliency.dim() != 2:
        raise ValueError("saliency must be a Tensor[B, P]")
    order = torch.argsort(saliency, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    pos = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return ranks.scatter_(1, order, pos)


def _check(start: torch.Tensor, finish: torch.Tensor, ranks: torch.Tensor, first: int, count: int,
           step_px: int) -> None:
    if not isinstance(start, torch.Tensor) or start.dim() < 2:
        raise ValueError("start must be a Tensor[B, C, ...pixels]")
    check_float_tensor(start, "start")
    if start.shape[0] == 0:
        raise ValueError("start is an empty batch")
    if not isinstance(finish, torch.Tensor) or finish.shape != start.shape:
        shape = tuple(finish.shape) if isinstance(finish, torch.Tensor) else type(finish).__name__
        raise ValueError(f"finish must have the shape of start {tuple(start.shape)}, got {shape}")
    check_matches(finish, start, "finish", "start")
    pixels = start[0, 0].numel()
    if not isinstance(ranks, torch.Tensor) or ranks.shape != (start.shape[0], pixels):
        shape = tuple(ranks.shape) if isinstance(ranks, torch.Tensor) else type(ranks).__name__
        raise ValueError(f"ranks must be a Tensor[B, P] = [{start.shape[0]}, {pixels}], got {shape}")
    if ranks.dtype != torch.int64:
        raise TypeError(f"ranks must be int64, got {ranks.dtype}")
    check_matches(ranks, start, "ranks", "start", dtype=False)
    for name, v, lo in (("first", first, 0), ("count", count, 0), ("step_px", step_px, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")


def _revealed(ranks: torch.Tensor, first: int, count: int, step_px: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Items ``[first, first + count)``: their image index Tensor[count] and which pixels show
    ``finish``, Tensor[count, P] bool."""
    items = torch.arange(first, first + count, device=ranks.device)
    img, step = items % ranks.shape[0], items // ranks.shape[0]
    return img, ranks[img] < (step * step_px)[:, None]


def _reveal_by_rank_reference(start: torch.Tensor, finish: torch.Tensor, ranks: torch.Tensor,
                              first: int, count: int, step_px: int) -> torch.Tensor:
    b = start.shape[0]
    img, keep = _revealed(ranks, first, count, step_px)  # [count], [count, P]
    s3 = start.reshape(b, start.shape[1], -1)
    f3 = finish.reshape(b, start.shape[1], -1)
    return torch.where(keep[:, None, :], f3[img], s3[img])


def reveal_by_rank(
    start: torch.Tensor,
    finish: torch.Tensor,
    ranks: torch.Tensor,
    first: int,
    count: int,
    step_px: int,
    backend: str | None = None,
) -> torch.Tensor:
    """Deletion/insertion canvases for items ``[first, first + count)``.

    Item ``i`` is step ``s = i // B`` of image ``b = i % B``:
    ``out[i - first] = where(ranks[b] < s * step_px, finish[b], start[b])`` (pixels shared by all
    channels). Deletion: ``start = x``, ``finish = substrate``; insertion: the reverse.

    Args:
        start: Tensor[B, C, H, W] (or Tensor[B, C, *pixels]), float32/float64: step-0 canvas.
        finish: Tensor of the shape, dtype and device of ``start``: what revealed pixels show.
        ranks: Tensor[B, P] int64, P = number of pixels (e.g. H * W), from :func:`pixel_ranks`.
        first: first item (>= 0).
        count: number of items (>= 0).
        step_px: pixels revealed per step (>= 1).
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``).

    Returns:
        Tensor[count, *start.shape[1:]], step-major rows.
    """
    _check(start, finish, ranks, first, count, step_px)
    b, c = start.shape[0], start.shape[1]
    if resolve_backend(backend, start.device) == "native":
        out = torch.ops.pyxai.reveal_by_rank(
            start.reshape(b, c, -1), finish.reshape(b, c, -1), ranks, first, count, step_px
        )
    else:
        out = _reveal_by_rank_reference(start, finish, ranks, first, count, step_px)
    return out.reshape(count, *start.shape[1:])
