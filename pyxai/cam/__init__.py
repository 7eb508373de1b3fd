"""CAM explainers, drop-in for pytorch-grad-cam (``GradCAM``, ``GradCAMPlusPlus``, ``ScoreCAM``,
``XGradCAM``, ``HiResCAM``, ``GradCAMElementWise``, ``LayerCAM``, ``EigenCAM``, ``EigenGradCAM``,
``KPCA_CAM``, ``AblationCAM``, ``FullGrad``) plus SIDU."""

from pyxai.cam.ablation_cam import AblationCAM
from pyxai.cam.base import BaseCAM
from pyxai.cam.eigen_cam import KPCA_CAM, EigenCAM, EigenGradCAM
from pyxai.cam.elementwise import GradCAMElementWise, HiResCAM, LayerCAM
from pyxai.cam.fullgrad import FullGrad
from pyxai.cam.grad_cam import GradCAM, GradCAMPlusPlus
from pyxai.cam.score_cam import ScoreCAM
from pyxai.cam.sidu import SIDU
from pyxai.cam.xgrad_cam import XGradCAM

__all__ = ["BaseCAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "SIDU", "XGradCAM", "HiResCAM",
           "GradCAMElementWise", "LayerCAM", "EigenCAM", "EigenGradCAM", "KPCA_CAM",
           "AblationCAM", "FullGrad"]
