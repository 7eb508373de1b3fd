"""CAM explainers, drop-in for pytorch-grad-cam (``GradCAM``, ``GradCAMPlusPlus``, ``ScoreCAM``)
plus SIDU."""

from pyxai.cam.base import BaseCAM
from pyxai.cam.grad_cam import GradCAM, GradCAMPlusPlus
from pyxai.cam.score_cam import ScoreCAM
from pyxai.cam.sidu import SIDU

__all__ = ["BaseCAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "SIDU"]
