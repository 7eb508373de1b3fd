"""A small fine-tuning loop with an explanation loss on an annotated subset (the Clever-Hans demo)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyxai.guided.cam import cam_loss
from pyxai.guided.lrp import lrp_loss
from pyxai.guided.occlusion import occlusion_loss
from pyxai.guided.rrr import rrr_loss

__all__ = ["LOSSES", "fit"]

#: Loss name -> ``(model, x, target, mask) -> scalar``. RRR and occlusion take the *irrelevant* mask
#: (the cue), CAM and LRP the *relevant* one (the object).
LOSSES: dict[str, Callable[..., Tensor]] = {"rrr": rrr_loss, "cam": cam_loss, "lrp": lrp_loss,
                                            "occlusion": occlusion_loss}
#: Losses whose forward is an ordinary one (``return_outputs=True``): the step's cross-entropy reuses
#: it. LRP's forward runs through rule-wrapped layers, whose gradients are not the model's.
SHARED_FORWARD = ("rrr", "cam", "occlusion")


def fit(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    annotated: Tensor | None = None,
    loss: str = "rrr",
    weight: float = 1.0,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> list[float]:
    """Fine-tune ``model`` in place: cross-entropy on every image plus ``weight`` x the explanation
    loss on the annotated ones.

    The model runs in eval mode (BatchNorm statistics frozen, as usual when fine-tuning a small set),
    with Adam on all parameters. RRR, CAM and occlusion return the logits of their own forward, from which the
    cross-entropy of the annotated images is taken (one forward per image, not two).

    Args:
        model (nn.Module): the classifier to fine-tune (its parameters change).
        images (Tensor[N, C, H, W]), labels (Tensor[N] int64): training data.
        masks (Tensor[N, 1, H, W]): bool; for ``"rrr"`` and ``"occlusion"`` the irrelevant region
            (the cue), for ``"cam"`` and ``"lrp"`` the relevant one (the object).
        annotated (Tensor[N] bool, optional): which images have a mask; the explanation loss is
            computed on those only. Default: all
        loss (str, optional): ``"rrr"``, ``"cam"``, ``"lrp"``, ``"occlusion"`` or ``"none"``
            (cross-entropy only). Default: "rrr"
        weight (float, optional): factor of the explanation loss. Default: 1.0
        epochs (int, optional), lr (float, optional), batch_size (int, optional), seed (int,
            optional): optimisation settings (``seed`` orders the batches). Defaults: 1, 1e-3, 32, 0

    Returns:
        list of float: the total loss of every step.
    """
    if loss != "none" and loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES) + ['none']}, got {loss!r}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("images is empty (no training data)")
    if labels.shape != (n,) or masks.shape[0] != n:
        raise ValueError(f"labels must be Tensor[{n}] and masks Tensor[{n}, 1, H, W], got "
                         f"{tuple(labels.shape)} and {tuple(masks.shape)}")
    annotated = torch.ones(n, dtype=torch.bool) if annotated is None else annotated
    if annotated.shape != (n,) or annotated.dtype != torch.bool:
        raise ValueError(f"annotated must be a bool Tensor[{n}], got {annotated.dtype} "
                         f"{tuple(annotated.shape)}")
    explain = LOSSES.get(loss)
    model.eval()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            x, y = images[idx], labels[idx]
            sel = annotated[idx].to(x.device)
            if explain is None or not bool(sel.any()):
                total = F.cross_entropy(model(x), y)
            elif loss in SHARED_FORWARD:  # the cross-entropy of the annotated from the loss's forward
                penalty, logits = explain(model, x[sel], y[sel], masks[idx][sel], return_outputs=True)
                if not bool(sel.all()):
                    logits = torch.cat([logits, model(x[~sel])])
                total = F.cross_entropy(logits, torch.cat([y[sel], y[~sel]])) + weight * penalty
            else:
                penalty = explain(model, x[sel], y[sel], masks[idx][sel])
                total = F.cross_entropy(model(x), y) + weight * penalty
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            history.append(float(total.detach()))
    return history
