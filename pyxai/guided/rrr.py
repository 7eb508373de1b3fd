"""Right for the Right Reasons (Ross, Hughes & Doshi-Velez, IJCAI 2017): an input-gradient penalty."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyxai.engine.targets import resolve_target
from pyxai.guided._checks import check_loss_args

__all__ = ["rrr_loss"]


def rrr_loss(model: nn.Module, x: Tensor, target: Any, mask: Tensor, return_outputs: bool = False
             ) -> Tensor | tuple[Tensor, Tensor]:
    """RRR penalty: squared input gradients of the log-probabilities inside an "irrelevant" mask.

    ``mean_b sum_{c,h,w} (mask * d/dx sum_k log softmax(model(x))_k)^2`` with ``k`` the ``target``
    classes (Ross et al. sum over all classes: ``target=None`` does that). The gradient is taken with
    ``create_graph=True`` on the model itself (no hooks, no view: the forward is an ordinary one, in
    the model's mode), so ``loss.backward()`` reaches the parameters.

    Args:
        model (nn.Module): the classifier, logits Tensor[B, K].
        x (Tensor[B, C, H, W]): inputs.
        target: ``None`` (all classes, as Ross et al.), or any target of :mod:`pyxai.engine.targets`
            (int, Tensor[B], callable).
        mask (Tensor[B, 1 or C, H, W]): bool or float in [0, 1]; 1 where the model should NOT look
            (the annotated cue).
        return_outputs (bool, optional): also return the logits of the forward, so a training step
            takes its cross-entropy from the same forward. Default: False

    Returns:
        Tensor: scalar loss (and the logits Tensor[B, K] when asked).
    """
    mask = check_loss_args(model, x, mask)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        outputs = model(x)
        logp = F.log_softmax(outputs, dim=1)
        if target is None:
            score = logp.sum()
        else:
            score = resolve_target(target, outputs)(logp).sum()
        (grad,) = torch.autograd.grad(score, x, create_graph=True)
    loss = (mask * grad).pow(2).flatten(1).sum(1).mean()
    return (loss, outputs) if return_outputs else loss
