"""Explanation-guided training: one training step with each loss vs a plain cross-entropy step.

Workload: the demo CNN (Clever-Hans variant's architecture, random weights), a batch of 32 (quick: 8)
64x64 images of :func:`pyxai.data.shapes_cued`, eval mode; one step = zero the gradients, the loss,
``backward()`` (no optimizer update, so every run sees the same parameters).
``floor`` = cross-entropy alone; ``rrr`` / ``cam`` / ``lrp`` / ``occlusion`` = cross-entropy + the
loss on the whole batch (RRR, CAM and occlusion take the cross-entropy from their own forward).
The x-floor column is the cost of the explanation term (the goal is <= 2x for RRR and CAM).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from pyxai.benchmark.core import Case, register


@register("guided")
def guided_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    from pyxai.data import shapes_cued
    from pyxai.guided import cam_loss, lrp_loss, occlusion_loss, rrr_loss
    from pyxai.models import demo_cnn

    torch.manual_seed(0)
    model = demo_cnn(pretrained=False).to(device)
    b = 8 if quick else 32
    x, y, obj, cue = (t.to(device) for t in shapes_cued(b, seed=5, cue_rate=1.0))

    def step(extra: Callable[[], torch.Tensor] | None) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y) if extra is None else extra()
            loss.backward()

        return run

    def rrr() -> torch.Tensor:
        penalty, logits = rrr_loss(model, x, y, cue, return_outputs=True)
        return F.cross_entropy(logits, y) + penalty

    def cam() -> torch.Tensor:
        penalty, logits = cam_loss(model, x, y, obj, layer=model.layer3, return_outputs=True)
        return F.cross_entropy(logits, y) + penalty

    def occlusion() -> torch.Tensor:
        penalty, logits = occlusion_loss(model, x, y, cue, return_outputs=True)
        return F.cross_entropy(logits, y) + penalty

    def lrp() -> torch.Tensor:
        return F.cross_entropy(model(x), y) + lrp_loss(model, x, y, obj)

    return [Case(
        name=f"demo_cnn 64x64 b={b} training step",
        impls={"floor": step(None), "rrr": step(rrr), "cam": step(cam), "lrp": step(lrp),
               "occlusion": step(occlusion)},
        device=device,
        notes="floor = cross-entropy step (forward + backward); others add the explanation loss",
    )]
