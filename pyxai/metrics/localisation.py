"""Localisation metrics: the pointing game (TorchRay) and its energy-based variant (Score-CAM).

Pointing game (``facebookresearch/TorchRay:torchray/benchmark/pointing_game.py``, SPECS §1.7): the
point is the flat argmax of the saliency map (first maximum in row-major order); it is a hit when
some pixel of the ground-truth mask lies *strictly* within ``tolerance`` pixels of it
(``(v - y)^2 + (u - x)^2 < tolerance^2``). Per-class accuracy is ``hits / max(1, hits + misses)``
and the overall accuracy their mean over classes (:func:`pointing_game_accuracy`).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from pyxai.metrics._common import check_finite_tensor


def _maps(attributions: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions as Tensor[B, H, W] (channels summed, resized to the masks) and masks bool."""
    if not isinstance(masks, torch.Tensor) or masks.dim() not in (3, 4):
        raise ValueError("masks must be a Tensor[B, H, W] or Tensor[B, 1, H, W]")
    if masks.dim() == 4:
        if masks.shape[1] != 1:
            raise ValueError(f"masks must have one channel, got shape {tuple(masks.shape)}")
        masks = masks[:, 0]
    check_finite_tensor(masks, "masks")
    if not isinstance(attributions, torch.Tensor) or attributions.dim() not in (3, 4):
        raise ValueError("attributions must be a Tensor[B, H, W] or Tensor[B, C, H, W]")
    a = attributions.detach()
    a = a[:, None] if a.dim() == 3 else a
    if a.shape[0] != masks.shape[0]:
        raise ValueError(f"attributions hold {a.shape[0]} maps but masks hold {masks.shape[0]}")
    if a.shape[0] == 0:
        raise ValueError("attributions is an empty batch")
    check_finite_tensor(a, "attributions")
    a = a.float() if a.dtype not in (torch.float32, torch.float64) else a
    a = a.sum(1, keepdim=True)
    if a.shape[-2:] != masks.shape[-2:]:  # TorchRay resizes the saliency to the image size
        a = F.interpolate(a, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    return a[:, 0], masks.to(a.device) != 0


def _check_empty(masks: torch.Tensor, on_empty: str) -> torch.Tensor:
    if on_empty not in ("raise", "miss"):
        raise ValueError(f"on_empty must be 'raise' or 'miss', got {on_empty!r}")
    empty = ~masks.flatten(1).any(1)
    if bool(empty.any()):
        idx = empty.nonzero().flatten().tolist()
        msg = f"masks is empty for image(s) {idx}: the pointing game is undefined there"
        if on_empty == "raise":
            raise ValueError(msg + " (pass on_empty='miss' to count them as misses)")
        warnings.warn(msg + "; counted as misses (on_empty='miss')", stacklevel=3)
    return empty


def pointing_points(attributions: torch.Tensor) -> torch.Tensor:
    """The pointing-game point of each map: Tensor[B, 2] int64 (row y, column x) of the flat argmax.

    Args:
        attributions: Tensor[B, H, W] or Tensor[B, C, H, W] (channels summed).
    """
    a = attributions.detach()
    a = a.sum(1) if a.dim() == 4 else a
    idx = a.flatten(1).argmax(1)
    w = a.shape[-1]
    return torch.stack([idx // w, idx % w], 1)


def pointing_game(
    attributions: torch.Tensor,
    masks: torch.Tensor,
    tolerance: float = 15,
    on_empty: str = "raise",
) -> torch.Tensor:
    """Pointing game hits (TorchRay's definition).

    Args:
        attributions: Tensor[B, 1, H, W], Tensor[B, C, H, W] (channels summed) or Tensor[B, H, W];
            resized bilinearly to the masks' size when it differs (TorchRay resizes saliency
            to the image).
        masks: Tensor[B, 1, H, W] or Tensor[B, H, W], ground-truth regions (bool or 0/1).
        tolerance: pixels; a hit needs a mask pixel at distance ``< tolerance`` (strict, as
            TorchRay). ``tolerance=0`` (where TorchRay's strict test can never hit) means: the
            point itself lies in the mask. Must be >= 0. Default: 15
        on_empty: an image whose mask is empty has no answer: "raise" (default) raises a
            ValueError naming those images; "miss" warns and counts them as misses.

    Returns:
        Tensor[B] bool: hit or not.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    a, m = _maps(attributions, masks)
    empty = _check_empty(m, on_empty)
    pt = pointing_points(a)
    h, w = m.shape[-2:]
    ys = torch.arange(h, device=m.device, dtype=torch.float64)[None, :, None]
    xs = torch.arange(w, device=m.device, dtype=torch.float64)[None, None, :]
    d2 = (ys - pt[:, 0, None, None]) ** 2 + (xs - pt[:, 1, None, None]) ** 2
    accept = d2 < float(tolerance) ** 2 if tolerance > 0 else d2 == 0
    return (m & accept).flatten(1).any(1) & ~empty


def pointing_game_accuracy(
    hits: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class and mean accuracy of pointing-game hits, as TorchRay's ``PointingGame``.

    Args:
        hits: Tensor[N] bool, one per (image, class) evaluation.
        labels: Tensor[N] int64 class of each evaluation.
        n_classes: number of classes (default: ``labels.max() + 1``).

    Returns:
        ``(class_accuracies, accuracy)``: Tensor[K] float64 ``hits / max(1, hits + misses)``, and
        their mean over the K classes (a class never evaluated counts as 0, as in TorchRay).
    """
    hits = torch.as_tensor(hits).reshape(-1).bool()
    labels = torch.as_tensor(labels).reshape(-1).long().to(hits.device)
    if hits.shape != labels.shape:
        raise ValueError(f"hits ({hits.numel()}) and labels ({labels.numel()}) differ in length")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError("labels must be >= 0")
    k = int(labels.max()) + 1 if n_classes is None and labels.numel() else int(n_classes or 0)
    if labels.numel() and int(labels.max()) >= k:
        raise ValueError(f"labels go up to {int(labels.max())} but n_classes is {k}")
    n_hit = torch.zeros(k, dtype=torch.float64, device=hits.device).index_add_(
        0, labels, hits.double())
    n_all = torch.zeros(k, dtype=torch.float64, device=hits.device).index_add_(
        0, labels, torch.ones_like(hits, dtype=torch.float64))
    acc = n_hit / n_all.clamp(min=1)
    return acc, acc.mean()


def energy_pointing_game(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Energy-based pointing game (Wang et al., Score-CAM): the share of the positive attribution
    that falls inside the mask, ``sum(relu(a) * m) / sum(relu(a))`` (Quantus'
    ``AttributionLocalisation`` with ``positive_attributions=True``, unweighted).

    Args:
        attributions: Tensor[B, 1 or C, H, W] or Tensor[B, H, W] (channels summed first).
        masks: Tensor[B, 1, H, W] or Tensor[B, H, W].

    Returns:
        Tensor[B] in [0, 1]; NaN for an empty mask (undefined, never silently 0); 0 for a map
        with no positive attribution.
    """
    a, m = _maps(attributions, masks)
    pos = a.double().clamp_min(0).flatten(1)
    inside = (pos * m.flatten(1)).sum(1)
    total = pos.sum(1)
    out = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total))
    out = torch.where(m.flatten(1).any(1), out, torch.full_like(out, float("nan")))
    return out.to(torch.float64 if a.dtype == torch.float64 else torch.float32)
