"""Mask ops: low-resolution grids expanded on the fly into full-size masks.

A mask ``n`` is ``grids[n]`` (``gh x gw``) upsampled to a ``canvas`` (``uh x uw``) and cropped at
``offsets[n] = (oy, ox)`` to the output size ``(H, W)``: output pixel ``(y, x)`` reads canvas pixel
``(y + oy, x + ox)``. Upsampling modes:

* ``"nearest"`` — ``F.interpolate(mode="nearest")``: source index ``floor(dst * in/out)``.
* ``"bilinear"`` — half-pixel bilinear with edge clamp (``F.interpolate(align_corners=False)``).
* ``"bilinear_reflect"`` — half-pixel bilinear with a mirror border: skimage's
  ``resize(order=1, mode="reflect", anti_aliasing=False)``, as RISE and SIDU use (SPECS §0.1).
* ``"bilinear_align_corners"`` — ``F.interpolate(align_corners=True)`` (``UpsamplingBilinear2d``).

The native kernels never materialise more than the chunk they are asked for; the reference
functions here are vectorised PyTorch with the kernels' exact arithmetic.

Every op is differentiable on both paths (the native ops' formulas are in ``pyxai.ops._autograd``;
:func:`upsample_masks_backward` is the adjoint kernel they use) and takes ``validate``: explainers
validate parameter values once per call with :func:`check_grids` and pass ``validate=False`` to the
per-chunk calls, which then read no tensor value (no host sync).
"""

from __future__ import annotations

from typing import Sequence, Union

import torch

from pyxai.engine.checks import check_float_tensor, check_matches, expand_like
from pyxai.ops._dispatch import resolve_backend

MODES = ("nearest", "bilinear", "bilinear_reflect", "bilinear_align_corners")
Size2 = Union[int, Sequence[int]]


# ----------------------------------------------------------------------------------------------
# argument checks (before any kernel runs)


def _pair(value: Size2, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) <= 0:
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value}")
    return value  # type: ignore[return-value]


def _check_grids(
    grids: torch.Tensor, offsets: torch.Tensor | None, size: Size2, canvas: Size2 | None, mode: str,
    validate: bool = True, name: str = "grids",
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """Metadata checks (type, shape, dtype, device, mode, sizes: no tensor value is read), then the
    value checks of :func:`check_grids` when ``validate``. ``name``: what ``grids`` is called in
    the messages. Returns (offsets, size, canvas)."""
    if not isinstance(grids, torch.Tensor):
        raise TypeError(f"{name} must be a Tensor[N, h, w], got {type(grids).__name__}")
    if grids.dim() != 3:
        raise ValueError(f"{name} must be a Tensor[N, h, w], got shape {tuple(grids.shape)}")
    check_float_tensor(grids, name)
    if grids.shape[0] == 0 or grids.shape[1] == 0 or grids.shape[2] == 0:
        raise ValueError(f"{name} must hold at least one non-empty plane, got {tuple(grids.shape)}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    size = _pair(size, "size")
    canvas = size if canvas is None else _pair(canvas, "canvas")
    if canvas[0] < size[0] or canvas[1] < size[1]:
        raise ValueError(f"canvas {canvas} must be at least the output size {size}")
    n = grids.shape[0]
    if offsets is None:
        offsets = torch.zeros(n, 2, dtype=torch.int64, device=grids.device)
    if not isinstance(offsets, torch.Tensor) or offsets.shape != (n, 2):
        shape = tuple(offsets.shape) if isinstance(offsets, torch.Tensor) else type(offsets)
        raise ValueError(f"offsets must be a Tensor[N={n}, 2] of (row, col) offsets, got {shape}")
    if offsets.dtype != torch.int64:
        raise TypeError(f"offsets must be int64, got {offsets.dtype}")
    check_matches(offsets, grids, "offsets", name, dtype=False)
    if validate:
        _check_grid_values(grids, offsets, size, canvas, name)
    return offsets, size, canvas


def _check_grid_values(
    grids: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int], canvas: tuple[int, int],
    name: str = "grids",
) -> None:
    """The value checks (one host sync each): finite grids, offsets inside the canvas."""
    if not torch.isfinite(grids).all():
        raise ValueError(f"{name} contains NaN or Inf")
    lo = offsets.min(0).values.tolist()
    hi = offsets.max(0).values.tolist()
    if min(lo) < 0 or hi[0] > canvas[0] - size[0] or hi[1] > canvas[1] - size[1]:
        raise ValueError(
            f"offsets must lie in [0, canvas - size] = [0, {canvas[0] - size[0]}] x "
            f"[0, {canvas[1] - size[1]}], got rows {lo[0]}..{hi[0]}, cols {lo[1]}..{hi[1]}"
        )


def check_grids(
    grids: torch.Tensor,
    offsets: torch.Tensor | None,
    size: Size2,
    canvas: Size2 | None = None,
    mode: str = "nearest",
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """Validate mask parameters once per call, metadata and values, before the chunks run.

    Explainers call this on the whole set of grids they drew (ideally on the CPU, where they drew
    them), then pass ``validate=False`` to the per-chunk ops, which then read no tensor value (no
    host sync). Reads values: one sync on a GPU tensor.

    Args:
        grids: Tensor[N, gh, gw] float32/float64, must be finite.
        offsets: Tensor[N, 2] int64 crop offsets, each in ``[0, canvas - size]``; None means zeros.
        size: output size (H, W) (an int means square).
        canvas: upsampled size (uh, uw) before cropping, at least ``size``. Default: ``size``.
        mode: one of ``MODES``.

    Returns:
        (offsets, size, canvas): offsets as a Tensor[N, 2] (zeros when None), size and canvas as
        int pairs.

    Raises:
        TypeError / ValueError naming the argument.
    """
    return _check_grids(grids, offsets, size, canvas, mode, validate=True)


# ----------------------------------------------------------------------------------------------
# reference implementation (same arithmetic as csrc/masks)


def _source_index(n_in: int, n_out: int, mode: str, device: torch.device):
    """Per canvas coordinate: grid indices (i0, i1) and the weight of i1 (float64), as the kernel."""
    dst = torch.arange(n_out, device=device)
    if mode == "nearest":
        # float32 product with the scale rounded to float32, as torch's nearest (no host copy)
        i0 = torch.floor(dst.float() * (n_in / n_out)).long().clamp_max(n_in - 1)
        return i0, i0, torch.zeros(n_out, dtype=torch.float64, device=device)
    dst = dst.double()
    if mode == "bilinear_align_corners":
        src = dst * (n_in - 1) / (n_out - 1) if n_out > 1 else torch.zeros_like(dst)
    else:
        src = (dst + 0.5) * n_in / n_out - 0.5
    if mode == "bilinear_reflect":
        i = torch.floor(src).long()
        w = src - i.double()
        return _reflect(i, n_in), _reflect(i + 1, n_in), w
    if mode == "bilinear":
        src = src.clamp_min(0.0)
    i = torch.floor(src).long().clamp_max(n_in - 1)
    return i, (i + 1).clamp_max(n_in - 1), src - i.double()


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(i)
    i = torch.where(i < 0, -i, i)
    return torch.where(i >= n, 2 * (n - 1) - i, i)


def _masks_reference(
    grids: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int], canvas: tuple[int, int],
    mode: str,
) -> torch.Tensor:
    n, gh, gw = grids.shape
    dev, dt = grids.device, grids.dtype
    r0, r1, rw = _source_index(gh, canvas[0], mode, dev)
    c0, c1, cw = _source_index(gw, canvas[1], mode, dev)
    # offsets clamped into [0, canvas - size] as the kernels do (unvalidated chunks stay in bounds)
    oy = offsets[:, :1].clamp(0, canvas[0] - size[0])
    ox = offsets[:, 1:].clamp(0, canvas[1] - size[1])
    rows = torch.arange(size[0], device=dev)[None, :] + oy  # [N, H]
    cols = torch.arange(size[1], device=dev)[None, :] + ox  # [N, W]
    ri0, ri1, wy = r0[rows], r1[rows], rw[rows].to(dt)[:, :, None]
    ci0, ci1, wx = c0[cols], c1[cols], cw[cols].to(dt)[:, None, :]
    flat = grids.reshape(n, gh * gw)

    def g(ri: torch.Tensor, ci: torch.Tensor) -> torch.Tensor:
        idx = ri[:, :, None] * gw + ci[:, None, :]
        return torch.gather(flat, 1, idx.reshape(n, -1)).reshape(n, size[0], size[1])

    top = (1 - wx) * g(ri0, ci0) + wx * g(ri0, ci1)
    bot = (1 - wx) * g(ri1, ci0) + wx * g(ri1, ci1)
    return (1 - wy) * top + wy * bot


def _axis_weights(
    n_in: int, size: int, canvas: int, offsets: torch.Tensor, mode: str, dtype: torch.dtype
) -> torch.Tensor:
    """Tensor[N, size, n_in]: the interpolation weights of one axis of every mask (the dense form
    of :func:`_source_index` after the crop): row ``y`` holds ``1 - w`` at ``i0`` and ``w`` at
    ``i1`` of canvas coordinate ``y + offset``."""
    i0, i1, w = _source_index(n_in, canvas, mode, offsets.device)
    pos = torch.arange(size, device=offsets.device)[None, :] + offsets.clamp(0, canvas - size)[:, None]
    w = w.to(dtype)[pos, None]  # [N, size, 1]
    cells = torch.arange(n_in, device=offsets.device)
    return (1 - w) * (i0[pos, None] == cells) + w * (i1[pos, None] == cells)


def _masks_backward_reference(
    grad: torch.Tensor, offsets: torch.Tensor, grid: tuple[int, int], canvas: tuple[int, int],
    mode: str,
) -> torch.Tensor:
    """Adjoint of :func:`_masks_reference` as the kernel computes it: columns, then rows."""
    _, h, w = grad.shape
    rows = _axis_weights(grid[0], h, canvas[0], offsets[:, 0], mode, grad.dtype)  # [N, H, gh]
    cols = _axis_weights(grid[1], w, canvas[1], offsets[:, 1], mode, grad.dtype)  # [N, W, gw]
    return rows.mT @ (grad @ cols)


# ----------------------------------------------------------------------------------------------
# public ops


def upsample_masks(
    grids: torch.Tensor,
    size: Size2,
    offsets: torch.Tensor | None = None,
    canvas: Size2 | None = None,
    mode: str = "nearest",
    backend: str | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Expand low-resolution grids into full-size masks.

    Args:
        grids: Tensor[N, gh, gw], float32/float64, finite.
        size: output size (H, W) (an int means square).
        offsets: Tensor[N, 2] int64 crop offsets (row, col) into the canvas. Default: zeros.
        canvas: size (uh, uw) the grid is upsampled to before cropping. Default: ``size``.
        mode: one of ``MODES``.
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``).
        validate: check the values too (finite grids, offsets in range: a host sync). False keeps
            the metadata checks only, for chunks of parameters already passed to
            :func:`check_grids`.

    Returns:
        Tensor[N, H, W] of the grids' dtype and device.
    """
    offsets, size, canvas = _check_grids(grids, offsets, size, canvas, mode, validate)
    if resolve_backend(backend, grids.device) == "native":
        return torch.ops.pyxai.upsample_masks(grids, offsets, list(size), list(canvas), mode)
    return _masks_reference(grids, offsets, size, canvas, mode)


def upsample_blend(
    x: torch.Tensor,
    grids: torch.Tensor,
    offsets: torch.Tensor | None = None,
    baseline: float | torch.Tensor = 0.0,
    canvas: Size2 | None = None,
    mode: str = "nearest",
    backend: str | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Perturb inputs with a chunk of masks: ``x * m + baseline * (1 - m)``.

    Masks are 2-D (the last two dims of ``x``) and broadcast over every other dim (channels,
    frames). Output rows are mask-major: row ``n * B + b`` is image ``b`` under mask ``n``.

    Args:
        x: Tensor[B, C, H, W] or Tensor[B, C, T, H, W] (any number of middle dims), float.
        grids: Tensor[N, gh, gw] of x's dtype and device.
        offsets: Tensor[N, 2] int64 crop offsets into the canvas. Default: zeros.
        baseline: scalar or tensor broadcastable to ``x`` (value where the mask is 0).
        canvas: upsampled size before cropping. Default: ``x.shape[-2:]``.
        mode: one of ``MODES``.
        backend: "auto" | "native" | "reference" | None.
        validate: as :func:`upsample_masks` (``x`` and ``baseline`` values are never read).

    Returns:
        Tensor[N * B, *x.shape[1:]].
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise ValueError("x must be a Tensor[B, ..., H, W] with at least 3 dims")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch")
    check_float_tensor(x, "x")
    check_matches(grids, x, "grids", "x")
    offsets, size, canvas = _check_grids(grids, offsets, tuple(x.shape[-2:]), canvas, mode,
                                         validate)
    if isinstance(baseline, (int, float)):
        baseline = x.new_full((), baseline)  # a fill, not a host-to-device copy (no sync)
    base = expand_like(baseline, x, "baseline")
    b, h, w = x.shape[0], size[0], size[1]
    x4, base4 = x.reshape(b, -1, h, w), base.reshape(b, -1, h, w)
    if resolve_backend(backend, x.device) == "native":
        out = torch.ops.pyxai.upsample_blend(x4, grids, offsets, base4, list(canvas), mode)
    else:
        m = _masks_reference(grids, offsets, size, canvas, mode)[:, None, None]  # [N,1,1,H,W]
        out = (x4[None] * m + base4[None] * (1 - m)).reshape(-1, *x4.shape[1:])
    return out.reshape(grids.shape[0] * b, *x.shape[1:])


def weighted_mask_sum(
    grids: torch.Tensor,
    weights: torch.Tensor,
    size: Size2,
    offsets: torch.Tensor | None = None,
    canvas: Size2 | None = None,
    mode: str = "nearest",
    backend: str | None = None,
    chunk: int = 256,
    validate: bool = True,
) -> torch.Tensor:
    """Weighted sum of masks regenerated on the fly: ``out[k] = sum_n weights[n, k] * m_n``.

    Memory is O(K * H * W) whatever N is (the reference path works in chunks of ``chunk`` masks).

    Args:
        grids: Tensor[N, gh, gw], float32/float64.
        weights: Tensor[N, K] of the grids' dtype and device.
        size: output size (H, W).
        offsets, canvas, mode, backend: as :func:`upsample_masks`.
        chunk: masks per step in the reference path.
        validate: as :func:`upsample_masks` (``weights`` values are never read).

    Returns:
        Tensor[K, H, W].
    """
    offsets, size, canvas = _check_grids(grids, offsets, size, canvas, mode, validate)
    if not isinstance(weights, torch.Tensor) or weights.dim() != 2:
        raise ValueError("weights must be a Tensor[N, K]")
    if weights.shape[0] != grids.shape[0]:
        raise ValueError(f"weights has {weights.shape[0]} rows but there are {grids.shape[0]} grids")
    check_matches(weights, grids, "weights", "grids")
    if resolve_backend(backend, grids.device) == "native":
        return torch.ops.pyxai.weighted_mask_sum(
            grids, offsets, weights, list(size), list(canvas), mode
        )
    out = grids.new_zeros(weights.shape[1], size[0] * size[1])
    for i in range(0, grids.shape[0], chunk):
        m = _masks_reference(grids[i : i + chunk], offsets[i : i + chunk], size, canvas, mode)
        out += weights[i : i + chunk].T @ m.reshape(m.shape[0], -1)
    return out.reshape(-1, size[0], size[1])


def upsample_masks_backward(
    grad: torch.Tensor,
    grid: Size2,
    offsets: torch.Tensor | None = None,
    canvas: Size2 | None = None,
    mode: str = "nearest",
    backend: str | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """The adjoint of :func:`upsample_masks` (its backward w.r.t. the grids).

    ``out[n] = U_n^T grad[n]``, where ``U_n`` is the (linear) map from grid ``n`` to mask ``n``:
    every output pixel sends its gradient back to the grid cells it interpolates, with the same
    weights. ``<upsample_masks(g), grad> == <g, upsample_masks_backward(grad)>``.

    Args:
        grad: Tensor[N, H, W] float32/float64, one plane per mask.
        grid: the grid size (gh, gw) (an int means square).
        offsets, canvas, mode, backend, validate: as :func:`upsample_masks` (``canvas`` defaults
            to ``(H, W)``).

    Returns:
        Tensor[N, gh, gw] of ``grad``'s dtype and device.
    """
    size = tuple(grad.shape[-2:]) if isinstance(grad, torch.Tensor) else (1, 1)
    offsets, size, canvas = _check_grids(grad, offsets, size, canvas, mode, validate, name="grad")
    grid = _pair(grid, "grid")
    if resolve_backend(backend, grad.device) == "native":
        return torch.ops.pyxai.upsample_masks_backward(grad, offsets, list(grid), list(canvas), mode)
    return _masks_backward_reference(grad, offsets, grid, canvas, mode)
