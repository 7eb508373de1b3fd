"""Explanation-guided training: losses that penalise attribution where the model should not look.

    >>> loss = F.cross_entropy(model(x), y) + pyxai.guided.rrr_loss(model, x, y, cue_mask)
    >>> loss = F.cross_entropy(model(x), y) + pyxai.guided.cam_loss(model, x, y, object_mask)
    >>> loss = F.cross_entropy(model(x), y) + pyxai.guided.lrp_loss(model, x, y, object_mask)
    >>> loss.backward()    # gradients reach the model's parameters through the explanation

Each loss is ``(model, x, target, mask) -> scalar Tensor`` and leaves the model untouched (CAM and
LRP run on parameter-sharing views).
"""

from pyxai.guided.cam import cam_loss
from pyxai.guided.fit import LOSSES, fit
from pyxai.guided.lrp import lrp_loss
from pyxai.guided.rrr import rrr_loss

__all__ = ["rrr_loss", "cam_loss", "lrp_loss", "fit", "LOSSES"]
