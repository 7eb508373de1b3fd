"""STEP's regularisers (SPECS.md section 10.3) and the random permutations they use.

* :func:`area_loss` — the area term of one mask volume per row: the (optionally shuffled, then
  sorted) padded mask voxels against the area's target (first ``int(V (1 - a))`` zeros, then ones),
  ``mean((sorted - ref)^2)``; per frame and averaged over frames for the 2-D baseline.
* :class:`CoreLoss` — the spatio-temporal smoothness ("core") term: the mask volume convolved with
  an ellipsoid (or cylinder) of ones of size ``(k_t, k_s, k_s)``, stride ``(1, k_s, k_s)``, divided
  by the kernel's sum; the responses (shuffled, sorted descending) should be 1 on the first
  ``topk_a = ceil(a T S_h S_w / int(k_t k_s^2 0.5236))`` and 0 on the rest:
  ``mean((r_top - 1)^2) + mean(r_rest^2)``.
* :func:`temporal_diff_loss` — TCSVT's optional ``with_diff`` term: the mean squared temporal
  finite differences of orders 1..3 of the padded mask volume, averaged over the orders.
* :class:`Permutations` — the TCSVT code shuffles the voxels before each sort (``torch.randperm``
  on the global generator: one permutation of the volume per iteration, shared by every mask, then
  one of the core responses per area). Here they are drawn in that order from a CPU generator of
  the explainer's seed and moved to the device without a host sync, so every device sees the same
  permutations.

The sorts are ``torch.sort`` as in the reference (``stable=False``: on the CPU bit-identical to
TCSVT's code, ties in the sort's implementation-defined order, which differs on CUDA) or, with
``stable=True``, stable: tied voxels are then ordered by the random permutation alone, the same on
every device.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pyxai.perturbation.area import area_error

#: the ellipsoid's share of its bounding box, as the reference rounds it (pi / 6)
ELLIPSOID_FILL = 0.5236
CORE_SHAPES = ("ellipsoid", "cylinder")


def area_loss(flat: torch.Tensor, ref: torch.Tensor, perm: torch.Tensor | None = None,
              frames: int = 1, stable: bool = False, zeros: list[int] | None = None
              ) -> torch.Tensor:
    """``mean((sort(m) - ref)^2)`` per row (per frame, then averaged over frames when ``frames > 1``).

    Args:
        flat: Tensor[R, V] padded mask voxels of each row, frame-major (``t * S_h * S_w + ...``).
        ref: Tensor[R, V / frames] the sorted target of each row.
        perm: Tensor[V] int64 applied to the voxels before sorting (TCSVT), or None.
        frames: 1 for the volume (STEP, 3-D EP); T for the per-frame area of the 2-D baseline.
        stable: a stable sort (ties in permutation order) instead of the reference's.
        zeros: the number of zeros of each row of ``ref`` (``frames == 1``): the rows are split
            by selection, with the sort's gradient (:func:`pyxai.perturbation.area.area_error`);
            None: sorted.

    Returns:
        Tensor[R].
    """
    if perm is not None:
        flat = flat[:, perm]
    if frames == 1:
        return area_error(flat, ref, zeros, stable)
    r = flat.shape[0]
    srt = flat.reshape(r * frames, -1).sort(dim=1, stable=stable)[0]
    err = (srt.reshape(r, frames, -1) - ref[:, None]) ** 2
    return err.mean(dim=2).mean(dim=1)


def temporal_diff_loss(volumes: torch.Tensor, orders: int = 3) -> torch.Tensor:
    """Tensor[R]: ``mean_o mean((d_t^o m)^2)`` for ``o = 1..orders`` of Tensor[R, T, S_h, S_w]."""
    d, means = volumes, []
    for _ in range(orders):
        d = d[:, 1:] - d[:, :-1]
        means.append((d.reshape(d.shape[0], -1) ** 2).mean(dim=1))
    return torch.stack(means).mean(dim=0)


def core_kernel(frames: int, size: int, shape: str = "ellipsoid") -> torch.Tensor:
    """Tensor[1, 1, frames, size, size] float32 of ones inside the unit ellipsoid (``"cylinder"``:
    the unit disc, whatever the time) on ``linspace(-1, 1)`` coordinates (float64, as numpy)."""
    if shape not in CORE_SHAPES:
        raise ValueError(f"core_shape must be one of {CORE_SHAPES}, got {shape!r}")
    t, y, x = np.meshgrid(np.linspace(-1, 1, frames), np.linspace(-1, 1, size),
                          np.linspace(-1, 1, size), indexing="ij")
    r2 = y ** 2 + x ** 2 if shape == "cylinder" else t ** 2 + y ** 2 + x ** 2
    return torch.from_numpy(np.sqrt(r2) <= 1).float()[None, None]


class CoreLoss:
    """The core term of STEP for masks of ``frames x out`` padded voxels.

    Args:
        frames: T, frames of the clip.
        out: ``(S_h, S_w)``, the padded mask size.
        areas: the target areas.
        core_frames: ``k_t``. core_size: ``k_s``. shape: ``"ellipsoid"`` or ``"cylinder"``.
        dtype, device: of the masks.
        stable: a stable sort of the responses (see the module docstring).

    Raises:
        ValueError naming the argument when the clip is shorter than ``core_frames``, the mask
        smaller than ``core_size``, or an area's ``topk`` leaves no response outside the core (the
        reference then averages an empty set: NaN).
    """

    def __init__(self, frames: int, out: tuple[int, int], areas: Sequence[float], core_frames: int,
                 core_size: int, shape: str, dtype: torch.dtype, device: torch.device,
                 stable: bool = False) -> None:
        if frames < core_frames:
            raise ValueError(f"core_frames={core_frames} is longer than the clip ({frames} frames)")
        if min(out) < core_size:
            raise ValueError(f"core_size={core_size} is larger than the padded mask {out}")
        kernel = core_kernel(core_frames, core_size, shape)
        self.kernel = kernel.to(device=device, dtype=dtype)
        self.kernel_sum = self.kernel.sum()
        self.stride = (1, core_size, core_size)
        self.stable = stable
        self.responses = (frames - core_frames + 1) * math.prod(
            (z - core_size) // core_size + 1 for z in out)
        ones = int(core_frames * core_size * core_size * ELLIPSOID_FILL)
        # the reference's float arithmetic, left to right
        self.topk = [math.ceil(a * frames * out[0] * out[1] / ones) for a in areas]
        for a, k in zip(areas, self.topk):
            if k >= self.responses:
                raise ValueError(
                    f"areas: {a} needs {k} core responses of the {self.responses} a "
                    f"{frames}-frame clip has (core_frames={core_frames}, core_size={core_size}); "
                    "use a smaller area, a longer clip or a smaller core")

    def __call__(self, volumes: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
        """The core term of every mask.

        Args:
            volumes: Tensor[A, N, T, S_h, S_w] padded masks (area-major).
            perms: Tensor[A, responses] int64, the permutation of each area's responses.

        Returns:
            Tensor[A, N].
        """
        a, n = volumes.shape[:2]
        r = F.conv3d(volumes.reshape(a * n, 1, *volumes.shape[2:]), self.kernel, stride=self.stride)
        r = r.reshape(a, n, -1)
        r = torch.gather(r, 2, perms[:, None, :].expand(a, n, -1))
        r = r.sort(dim=2, descending=True, stable=self.stable)[0]
        losses = []
        for i, k in enumerate(self.topk):  # A small slices: the reference's arithmetic per area
            ri = r[i]
            losses.append(((ri[:, :k] / self.kernel_sum - 1) ** 2).mean(dim=1)
                          + ((ri[:, k:] / self.kernel_sum - 0) ** 2).mean(dim=1))
        return torch.stack(losses)


class Permutations:
    """The shuffles of one STEP call, drawn per iteration in the reference's order.

    Args:
        seed: the explainer's seed (a CPU ``torch.Generator``).
        volume: voxels per mask volume (``T S_h S_w``), or 0 when the area term is not shuffled.
        responses: core responses per mask, or 0 without the core term.
        areas: number of areas (one core permutation each).
        device: where the permutations are used.
    """

    def __init__(self, seed: int, volume: int, responses: int, areas: int,
                 device: torch.device) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.volume, self.responses, self.areas = volume, responses, areas
        self.device = device

    def _move(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":  # pinned + non_blocking: no host sync
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def next(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(volume permutation Tensor[V] or None, core permutations Tensor[A, responses] or
        None)`` of the next iteration."""
        vol = torch.randperm(self.volume, generator=self.gen) if self.volume else None
        core = torch.stack([torch.randperm(self.responses, generator=self.gen)
                            for _ in range(self.areas)]) if self.responses else None
        return (None if vol is None else self._move(vol),
                None if core is None else self._move(core))
