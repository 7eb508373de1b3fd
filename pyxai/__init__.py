"""pyxai: fast, faithful attribution for PyTorch vision models.

Every explainer has a pure-PyTorch reference path and, where it pays, native C++/CUDA kernels
(``pyxai.native_status()`` says which are available). Optional libraries (PyAV for video, Ray and
Zarr for data sets, matplotlib for figures) are imported only when their feature is used.
"""

from pyxai import data, dataset, guided, metrics, models, rules, similarity, spray, video, viz
from pyxai._native import native_status
from pyxai.cam import (
    KPCA_CAM,
    SIDU,
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pyxai.gradient import (
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerActivation,
    LayerConductance,
    LayerGradCam,
    LayerIntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from pyxai.lrp import CRP, LRP
from pyxai.perturbation import (
    RISE,
    ExtremalPerturbation,
    FeatureAblation,
    KernelShap,
    Lime,
    LimeBase,
    MeaningfulPerturbation,
    Occlusion,
    ShapleyValues,
    ShapleyValueSampling,
)
from pyxai.sobol import SobolAttribution
from pyxai.video import STEP

__version__ = "0.1.0"

__all__ = ["native_status", "__version__", "SobolAttribution", "RISE", "Occlusion", "FeatureAblation"]
__all__ += ["Saliency", "InputXGradient", "IntegratedGradients", "NoiseTunnel", "GuidedBackprop",
            "LayerGradCam", "GuidedGradCam", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "SIDU"]
__all__ += ["LRP", "CRP", "rules", "data", "metrics", "models"]
__all__ += ["ExtremalPerturbation", "MeaningfulPerturbation"]
__all__ += ["STEP", "video", "dataset", "similarity", "spray", "guided", "viz"]
__all__ += ["Deconvolution", "LayerActivation", "GradientShap", "ShapleyValueSampling",
            "ShapleyValues", "LayerIntegratedGradients", "LayerConductance"]
__all__ += ["DeepLift", "DeepLiftShap"]
__all__ += ["XGradCAM", "HiResCAM", "GradCAMElementWise", "LayerCAM", "EigenCAM", "EigenGradCAM",
            "KPCA_CAM", "AblationCAM", "FullGrad"]
__all__ += ["Lime", "LimeBase", "KernelShap"]
