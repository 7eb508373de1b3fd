"""Resizing and normalisation of CAMs on the device, with pytorch-grad-cam's exact arithmetic.

* 2-D maps: pytorch-grad-cam calls ``cv2.resize(cam, (W, H))`` (INTER_LINEAR): half-pixel
  bilinear with clamped borders, i.e. ``F.interpolate(mode="bilinear", align_corners=False)``.
* 3-D maps (video): it calls ``scipy.ndimage.zoom(cam, factors)`` with the defaults: cubic
  B-spline (order 3) with the spline prefilter, ``mode="constant"``, ``grid_mode=False``. For
  points inside the input (all of them, since ``grid_mode=False`` maps the corner samples onto
  each other: ``src = dst * (n_in - 1) / (n_out - 1)``), scipy uses mirror boundaries for both the
  prefilter and the interpolation taps. The zoom is separable and linear, so it is one small
  matrix per axis (``W @ B^-1``: B-spline sampling matrix inverted = prefilter, then the cubic
  weights) applied with ``einsum``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def scale_cams(cam: torch.Tensor) -> torch.Tensor:
    """Per-map min-max as pytorch-grad-cam's ``scale_cam_image``: ``(c - min) / (1e-7 + max)``.

    Args:
        cam: Tensor[B, *spatial].
    """
    flat = cam.reshape(cam.shape[0], -1)
    flat = flat - flat.min(1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(1, keepdim=True).values)
    return flat.reshape(cam.shape)


def _mirror(k: torch.Tensor, n: int) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(k)
    period = 2 * (n - 1)
    k = k.remainder(period)
    return torch.where(k >= n, period - k, k)


@functools.lru_cache(maxsize=64)
def _zoom_matrix_cpu(n_in: int, n_out: int) -> torch.Tensor:
    d = torch.float64
    if n_in == 1:
        return torch.ones(n_out, 1, dtype=d)
    i = torch.arange(n_in)
    sampling = torch.zeros(n_in, n_in, dtype=d)  # B-spline at the integer points, mirror border
    for off, w in ((-1, 1 / 6), (0, 4 / 6), (1, 1 / 6)):
        sampling.index_put_((i, _mirror(i + off, n_in)), torch.full((n_in,), w, dtype=d),
                            accumulate=True)
    step = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
    x = torch.arange(n_out, dtype=d) * step
    base = torch.floor(x).long()
    weights = torch.zeros(n_out, n_in, dtype=d)
    rows = torch.arange(n_out)
    for off in (-1, 0, 1, 2):
        k = base + off
        t = (x - k).abs()
        w = torch.where(t < 1, 2 / 3 - t**2 + t**3 / 2,
                        torch.where(t < 2, (2 - t) ** 3 / 6, torch.zeros_like(t)))
        weights.index_put_((rows, _mirror(k, n_in)), w, accumulate=True)
    return weights @ torch.linalg.inv(sampling)


def zoom_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """Tensor[n_out, n_in] float64: scipy.ndimage.zoom (order 3, grid_mode=False) along one axis."""
    return _zoom_matrix_cpu(n_in, n_out).to(device)


def resize_cams(cam: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Resize Tensor[B, h, w] (bilinear, cv2 semantics) or Tensor[B, t, h, w] (scipy zoom).

    Returns:
        Tensor[B, *size] of cam's dtype.
    """
    if tuple(cam.shape[1:]) == tuple(size):
        return cam
    if cam.dim() == 3:
        return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    if cam.dim() == 4:
        mt, mh, mw = (zoom_matrix(n, m, cam.device) for n, m in zip(cam.shape[1:], size))
        out = torch.einsum("bijk,wk->bijw", cam.double(), mw)
        out = torch.einsum("bijw,hj->bihw", out, mh)
        return torch.einsum("bihw,ti->bthw", out, mt).to(cam.dtype)
    raise ValueError(f"cannot resize a CAM of shape {tuple(cam.shape)}")
