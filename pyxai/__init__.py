"""pyxai: fast, faithful attribution for PyTorch vision models.

Every explainer has a pure-PyTorch reference path and, where it pays, native C++/CUDA kernels
(``pyxai.native_status()`` says which are available).
"""

from pyxai import data, metrics, models, rules
from pyxai._native import native_status
from pyxai.cam import SIDU, GradCAM, GradCAMPlusPlus, ScoreCAM
from pyxai.gradient import (
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from pyxai.lrp import CRP, LRP
from pyxai.perturbation import (
    RISE,
    ExtremalPerturbation,
    FeatureAblation,
    MeaningfulPerturbation,
    Occlusion,
)
from pyxai.sobol import SobolAttribution

__version__ = "0.1.0"

__all__ = ["native_status", "__version__", "SobolAttribution", "RISE", "Occlusion", "FeatureAblation"]
__all__ += ["Saliency", "InputXGradient", "IntegratedGradients", "NoiseTunnel", "GuidedBackprop",
            "LayerGradCam", "GuidedGradCam", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "SIDU"]
__all__ += ["LRP", "CRP", "rules", "data", "metrics", "models"]
__all__ += ["ExtremalPerturbation", "MeaningfulPerturbation"]

from pyxai.cam import (  # noqa: E402  (pytorch-grad-cam drop-ins, issue 16)
    KPCA_CAM,
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    FullGrad,
    GradCAMElementWise,
    HiResCAM,
    LayerCAM,
    XGradCAM,
)

__all__ += ["XGradCAM", "HiResCAM", "GradCAMElementWise", "LayerCAM", "EigenCAM", "EigenGradCAM",
            "KPCA_CAM", "AblationCAM", "FullGrad"]
