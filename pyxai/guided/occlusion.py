"""Occlusion attribution of the annotated region: what the prediction loses when the region goes."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyxai.engine.targets import resolve_target
from pyxai.guided._checks import check_loss_args

__all__ = ["occlusion_loss"]


def occlusion_loss(model: nn.Module, x: Tensor, target: Any, mask: Tensor,
                   baseline: float | Tensor = 0.5, return_outputs: bool = False
                   ) -> Tensor | tuple[Tensor, Tensor]:
    """Squared occlusion attribution of an "irrelevant" region: the change of the log-probabilities
    when the region is replaced by ``baseline``.

    ``x~ = (1 - mask) * x + mask * baseline``;
    ``loss = mean_b sum_k (log softmax(model(x))_k - log softmax(model(x~))_k)^2`` over the
    ``target`` classes ``k`` (all classes for ``None``, as :func:`rrr_loss`). Per class, that
    difference is the attribution Captum's ``FeatureAblation`` gives the region as one feature
    (``feature_mask`` = the region, ``baselines`` = ``baseline``), on log-probabilities; by
    completeness it is also the sum over the region of the integrated gradients from ``x~`` to
    ``x``. Unlike an input-gradient penalty (:func:`rrr_loss`), which is local and which a model
    can meet by flattening its response around the cue (saturated units) while still using it, or
    a map-energy loss (:func:`cam_loss`, :func:`lrp_loss`), whose map a model can move off the cue
    while its prediction still depends on it, this measures the cue's whole effect. Two ordinary
    forwards of the model itself, in its mode (no hooks, no double backward): in training mode
    both update its BatchNorm statistics, as any training forward does (the occluded copies'
    too); :func:`pyxai.guided.fit` runs the model in eval mode.

    Args:
        model (nn.Module): the classifier, logits Tensor[B, K].
        x (Tensor[B, C, H, W]): inputs.
        target: ``None`` (all classes), or any target of :mod:`pyxai.engine.targets`
            (int, Tensor[B], callable on the log-probabilities).
        mask (Tensor[B, 1 or C, H, W]): bool or float in [0, 1]; 1 where the model should NOT look
            (the annotated cue).
        baseline (float or Tensor, optional): what replaces the region: a value, or a Tensor
            broadcastable to ``x`` (e.g. a blurred copy). Default: 0.5 (mid-grey for [0, 1] images)
        return_outputs (bool, optional): also return the logits of ``model(x)`` (attached to the
            graph), so a training step takes its cross-entropy from the same forward.
            Default: False

    Returns:
        Tensor: scalar loss (and the logits Tensor[B, K] when asked).

    Examples::

        >>> loss = F.cross_entropy(model(x), y) + pyxai.guided.occlusion_loss(model, x, y, cue_mask)
    """
    mask = check_loss_args(model, x, mask)
    if isinstance(baseline, Tensor):
        if not baseline.is_floating_point() or not bool(torch.isfinite(baseline).all()):
            raise ValueError(f"baseline must be a finite floating-point Tensor, got {baseline.dtype}"
                             " (or NaN/Inf values)")
        if baseline.device != x.device:
            raise ValueError(f"baseline is on {baseline.device}, x on {x.device}")
        try:
            torch.broadcast_shapes(baseline.shape, x.shape)
        except RuntimeError:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to x of "
                             f"shape {tuple(x.shape)}") from None
        baseline = baseline.detach().to(x.dtype)
    elif isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
        raise TypeError(f"baseline must be a float or a Tensor, got {type(baseline).__name__}")
    elif not math.isfinite(baseline):
        raise ValueError(f"baseline must be finite, got {baseline}")
    x = x.detach()
    occluded = x * (1 - mask) + baseline * mask
    with torch.enable_grad():
        outputs = model(x)
        logp = F.log_softmax(outputs, dim=1)
        logq = F.log_softmax(model(occluded), dim=1)
    if target is None:
        diff = logp - logq
    else:
        resolved = resolve_target(target, outputs)
        diff = resolved(logp) - resolved(logq)
    loss = diff.pow(2).reshape(x.shape[0], -1).sum(1).mean()
    return (loss, outputs) if return_outputs else loss
