"""Perturbation functions of the Sobol attribution method, each a blend ``x * m + base * (1 - m)``
done by :func:`pyxai.ops.upsample_blend` (nearest upsampling of the design grids, as the original
PyTorch reference):

* ``"inpainting"`` (default): ``x * m`` (baseline 0).
* ``"blur"``: ``x * m + blur(x) * (1 - m)``, ``blur`` = box filter of ``sigma x sigma`` pixels
  (default 10) with a mirror border, as ``cv2.blur(x, (sigma, sigma))`` in the references.
* ``"amplitude"``: ``x * (m - 0.5) * sigma`` (default sigma 1) — what the reference code computes
  (its docstring says ``x + (m - 0.5) * sigma``); as a blend: ``x' = x sigma / 2``,
  ``base = -x sigma / 2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PERTURBATIONS = ("inpainting", "blur", "amplitude")
DEFAULT_SIGMA = {"inpainting": None, "blur": 10, "amplitude": 1.0}


def box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """``cv2.blur(x, (k, k))`` per image plane: mean over the window ``[y - k//2, y + k - 1 - k//2]``
    (same in x) with a mirror (BORDER_REFLECT_101) border.

    Args:
        x: Tensor[B, ..., H, W].
        k: window size in pixels (>= 1).

    Returns:
        Tensor of ``x``'s shape.
    """
    if k <= 1:
        return x.clone()
    shape = x.shape
    h, w = shape[-2:]
    planes = x.reshape(-1, 1, h, w)
    lo, hi = k // 2, k - 1 - k // 2
    mode = "reflect" if max(lo, hi) < min(h, w) else "replicate"
    padded = F.pad(planes, (lo, hi, lo, hi), mode=mode)
    return F.avg_pool2d(padded, k, stride=1).reshape(shape)


def blend_terms(
    x: torch.Tensor, perturbation: str, sigma: float | None
) -> tuple[torch.Tensor, torch.Tensor | float]:
    """The ``(x', base)`` pair with ``perturbed = x' * m + base * (1 - m)``."""
    if perturbation == "inpainting":
        return x, 0.0
    if perturbation == "blur":
        return x, box_blur(x, int(sigma))
    half = x * (float(sigma) / 2)
    return half, -half
