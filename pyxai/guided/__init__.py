"""Explanation-guided training: losses that penalise attribution where the model should not look.

    >>> loss = F.cross_entropy(model(x), y) + pyxai.guided.rrr_loss(model, x, y, cue_mask)
    >>> loss = F.cross_entropy(model(x), y) + pyxai.guided.cam_loss(model, x, y, object_mask)
    >>> loss = F.cross_entropy(model(x), y) + pyxai.guided.lrp_loss(model, x, y, object_mask)
    >>> loss = F.cross_entropy(model(x), y) + pyxai.guided.occlusion_loss(model, x, y, cue_mask)
    >>> loss.backward()    # gradients reach the model's parameters through the explanation

Each loss is ``(model, x, target, mask) -> scalar Tensor`` and leaves the model untouched (CAM and
LRP run on parameter-sharing views). RRR, CAM and LRP penalise an explanation's map; a model that
already uses a cue can satisfy them by hiding the cue from the map while its prediction still
depends on it (README, "Model debugging"). ``occlusion_loss`` penalises the cue's effect on the
prediction itself.
"""

from pyxai.guided.cam import cam_loss
from pyxai.guided.fit import LOSSES, fit
from pyxai.guided.lrp import lrp_loss
from pyxai.guided.occlusion import occlusion_loss
from pyxai.guided.rrr import rrr_loss

__all__ = ["rrr_loss", "cam_loss", "lrp_loss", "occlusion_loss", "fit", "LOSSES"]
