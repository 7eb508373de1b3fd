"""Occlusion ops: Captum's sliding-window occlusion, one chunk of windows at a time.

An input row (everything after the batch dim) has ``D`` dims. Along dim ``d`` the window of size
``window[d]`` starts at ``k_d * strides[d]`` for ``k_d in [0, counts[d])``, with
``counts[d] = ceil((shape[d] - window[d]) / strides[d]) + 1``; the last window is cropped at the
border, so every element is covered. Window index ``i`` -> ``(k_0, k_1, ...)`` is mixed radix with
the **first dim varying fastest** (Captum's enumeration).

* :func:`occlusion_perturb` writes a chunk of occluded inputs directly (no window masks).
* :func:`occlusion_accumulate` turns the output drop of every window into the attribution: for each
  element, the mean of the drops of the windows that cover it (Captum's ``total / count``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from pyxai.engine.checks import expand_like
from pyxai.ops._dispatch import resolve_backend

MAX_DIMS = 8


def window_counts(
    shape: Sequence[int], window: Sequence[int], strides: Sequence[int]
) -> tuple[int, ...]:
    """Window positions per dim: ``ceil((shape - window) / stride) + 1``."""
    return tuple(math.ceil((n - w) / s) + 1 for n, w, s in zip(shape, window, strides))


def check_windows(
    shape: Sequence[int], window: Sequence[int], strides: Sequence[int],
    name: str = "sliding_window_shapes",
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Validate window sizes and strides for an input row of ``shape``; return them as int tuples.

    Raises ValueError naming the argument (``name`` for the window, ``strides`` for the strides).
    """
    shape = tuple(int(v) for v in shape)
    if len(shape) == 0 or len(shape) > MAX_DIMS:
        raise ValueError(f"occlusion works on rows of 1 to {MAX_DIMS} dims, got shape {shape}")
    if len(window) != len(shape):
        raise ValueError(f"{name} {tuple(window)} must have one entry per input dim {shape}")
    if len(strides) != len(shape):
        raise ValueError(f"strides {tuple(strides)} must have one entry per input dim {shape}")
    window = tuple(int(v) for v in window)
    strides = tuple(int(v) for v in strides)
    for n, w, s in zip(shape, window, strides):
        if w <= 0 or w > n:
            raise ValueError(
                f"{name} {window} must be positive and fit in the input {shape} (window larger "
                "than the input)"
            )
        if s <= 0:
            raise ValueError(f"strides {strides} must be positive (got a stride of {s})")
        if n > w and s > w:
            raise ValueError(
                f"strides {strides} cannot be larger than {name} {window} where the window is "
                "smaller than the input: elements would be left uncovered"
            )
    return shape, window, strides


# ----------------------------------------------------------------------------------------------
# reference implementation (same semantics as csrc/occlusion)


def _axis_cover(n: int, w: int, s: int, count: int, device: torch.device) -> torch.Tensor:
    """Tensor[count, n] bool: window k along this axis covers coordinate c (cropped at n)."""
    start = torch.arange(count, device=device)[:, None] * s
    c = torch.arange(n, device=device)[None, :]
    return (c >= start) & (c < start + w)


def _window_masks(
    shape: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...], first: int,
    count: int, device: torch.device,
) -> torch.Tensor:
    """Tensor[count, *shape] bool: the occluded region of windows [first, first + count)."""
    counts = window_counts(shape, window, strides)
    idx = torch.arange(first, first + count, device=device)
    mask = torch.ones((count,) + (1,) * len(shape), dtype=torch.bool, device=device)
    for d, (n, w, s, c) in enumerate(zip(shape, window, strides, counts)):
        k = idx % c
        idx = idx // c
        cover = _axis_cover(n, w, s, c, device)[k]  # [count, n]
        view = [count] + [1] * len(shape)
        view[1 + d] = n
        mask = mask & cover.reshape(view)
    return mask


def _perturb_reference(x, baseline, window, strides, first, count):
    m = _window_masks(tuple(x.shape[1:]), window, strides, first, count, x.device)
    out = torch.where(m[:, None], baseline[None], x[None])  # [count, B, *shape]
    return out.reshape(count * x.shape[0], *x.shape[1:])


def _accumulate_reference(drops, shape, window, strides):
    """Separable form: sum_k drop[k] * prod_d cover_d[k_d, c_d], divided by the coverage count."""
    counts = window_counts(shape, window, strides)
    b = drops.shape[1]
    dev = drops.device
    # drops[k, b] with k = k_0 + c_0 * (k_1 + c_1 * ...): as a grid [c_{D-1}, ..., c_0, B]
    t = drops.double().reshape(*reversed(counts), b)
    cnt = torch.ones((), dtype=torch.float64, device=dev)
    for d in range(len(shape)):
        cover = _axis_cover(shape[d], window[d], strides[d], counts[d], dev).double()  # [c_d, n_d]
        # contract the window axis of dim d (currently at position D-1-d of t) with cover
        axis = len(shape) - 1 - d
        t = torch.tensordot(t, cover, dims=([axis], [0]))  # that axis moves to the end as n_d
        cnt = cnt[..., None] * cover.sum(0) if cnt.dim() else cover.sum(0)
    # t is now [B, n_0, n_1, ..., n_{D-1}]; cnt is [n_0, ..., n_{D-1}]
    return (t / cnt).to(drops.dtype)


def _accumulate_adjoint(grad, shape, window, strides):
    """Adjoint of :func:`_accumulate_reference` (its backward): Tensor[B, *D] -> Tensor[N, B].

    ``out[k, b] = sum_c cover_k(c) * grad[b, c] / count(c)``, contracted one dim at a time.
    """
    counts = window_counts(shape, window, strides)
    dev = grad.device
    covers = [
        _axis_cover(shape[d], window[d], strides[d], counts[d], dev).double()  # [c_d, n_d]
        for d in range(len(shape))
    ]
    cnt = covers[0].sum(0)
    for cover in covers[1:]:
        cnt = cnt[..., None] * cover.sum(0)
    t = grad.double() / cnt  # [B, n_0, ..., n_{D-1}]
    for cover in covers:
        t = torch.tensordot(t, cover, dims=([1], [1]))  # n_d (always at 1) -> c_d at the end
    # t is [B, c_0, ..., c_{D-1}]; window k = k_0 + c_0 * (k_1 + ...) has k_0 fastest
    t = t.permute(*range(len(shape), 0, -1), 0)
    return t.reshape(-1, grad.shape[0]).to(grad.dtype)


# ----------------------------------------------------------------------------------------------
# public ops


def occlusion_perturb(
    x: torch.Tensor,
    window: Sequence[int],
    strides: Sequence[int],
    first: int,
    count: int,
    baseline: float | torch.Tensor = 0.0,
    backend: str | None = None,
) -> torch.Tensor:
    """Occluded copies of ``x`` for windows ``[first, first + count)``.

    Args:
        x: Tensor[B, *D] (1 to 8 dims per row), float32/float64 for the native path.
        window: window size per dim of D (cropped at the border for the last position).
        strides: window stride per dim of D.
        first, count: the chunk of window indices (first dim of D fastest).
        baseline: scalar or Tensor broadcastable to ``x``: the value written inside the window.
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``).

    Returns:
        Tensor[count * B, *D]: row ``j * B + b`` is ``x[b]`` with window ``first + j`` set to the
        baseline (window-major rows, as Captum's ``perturbations_per_eval`` batches).
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError("x must be a Tensor[B, ...] with at least one dim per row")
    shape, window, strides = check_windows(x.shape[1:], window, strides)
    n = math.prod(window_counts(shape, window, strides))
    if first < 0 or count < 0 or first + count > n:
        raise ValueError(f"windows [{first}, {first + count}) out of range [0, {n})")
    if isinstance(baseline, (int, float)):
        baseline = x.new_full((), baseline)  # a fill, not a host-to-device copy (no sync)
    base = expand_like(baseline, x, "baseline")
    native = x.dtype in (torch.float32, torch.float64) and resolve_backend(backend, x.device)
    if native == "native":
        return torch.ops.pyxai.occlusion_perturb(
            x, base.contiguous(), list(window), list(strides), int(first), int(count)
        )
    return _perturb_reference(x, base, window, strides, int(first), int(count))


def occlusion_accumulate(
    drops: torch.Tensor,
    shape: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    backend: str | None = None,
) -> torch.Tensor:
    """Attribution from the output drop of every window: per element, the mean over covering windows.

    Args:
        drops: Tensor[N, B], N = number of windows: ``f(x) - f(x occluded by window k)``.
        shape: the input row shape D.
        window, strides: as :func:`occlusion_perturb`.
        backend: "auto" | "native" | "reference" | None.

    Returns:
        Tensor[B, *D] of ``drops.dtype``.
    """
    shape, window, strides = check_windows(shape, window, strides)
    n = math.prod(window_counts(shape, window, strides))
    if not isinstance(drops, torch.Tensor) or drops.dim() != 2 or drops.shape[0] != n:
        got = tuple(drops.shape) if isinstance(drops, torch.Tensor) else type(drops).__name__
        raise ValueError(f"drops must be a Tensor[N={n}, B] (one row per window), got {got}")
    native = drops.dtype in (torch.float32, torch.float64) and resolve_backend(
        backend, drops.device
    )
    if native == "native":
        return torch.ops.pyxai.occlusion_accumulate(
            drops, list(shape), list(window), list(strides)
        )
    return _accumulate_reference(drops, shape, window, strides)
