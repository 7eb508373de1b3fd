"""pyxai: fast, faithful attribution for PyTorch vision models.

Every explainer has a pure-PyTorch reference path and, where it pays, native C++/CUDA kernels
(``pyxai.native_status()`` says which are available).
"""

from pyxai import data, guided, metrics, models, rules, spray
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
from pyxai.video import STEP

__version__ = "0.1.0"

__all__ = ["native_status", "__version__", "SobolAttribution", "RISE", "Occlusion", "FeatureAblation"]
__all__ += ["Saliency", "InputXGradient", "IntegratedGradients", "NoiseTunnel", "GuidedBackprop",
            "LayerGradCam", "GuidedGradCam", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "SIDU"]
__all__ += ["LRP", "CRP", "rules", "data", "metrics", "models"]
__all__ += ["ExtremalPerturbation", "MeaningfulPerturbation"]
__all__ += ["STEP"]

from pyxai import video  # noqa: E402  (PyAV is imported only when a file or stream is opened)

__all__ += ["video"]

from pyxai import dataset  # noqa: E402  (Ray and Zarr are imported only when a run starts)

__all__ += ["dataset"]
from pyxai import similarity  # noqa: E402  (two-image explainers: pyxai.similarity.*)

__all__ += ["similarity"]

from pyxai.gradient import (  # noqa: E402
    Deconvolution,
    GradientShap,
    LayerActivation,
    LayerConductance,
    LayerIntegratedGradients,
)
from pyxai.perturbation import ShapleyValueSampling  # noqa: E402

__all__ += ["Deconvolution", "LayerActivation", "GradientShap", "ShapleyValueSampling",
            "LayerIntegratedGradients", "LayerConductance"]
__all__ += ["spray", "guided"]
