"""Gradient explainers, drop-in for Captum: same class names, constructors, ``attribute()``
signatures, defaults and outputs."""

from pyxai.gradient.deconvolution import Deconvolution
from pyxai.gradient.deeplift import DeepLift, DeepLiftShap
from pyxai.gradient.gradient_shap import GradientShap
from pyxai.gradient.guided_backprop import GuidedBackprop, GuidedGradCam
from pyxai.gradient.integrated_gradients import IntegratedGradients
from pyxai.gradient.layer_activation import LayerActivation
from pyxai.gradient.layer_conductance import LayerConductance
from pyxai.gradient.layer_grad_cam import LayerGradCam
from pyxai.gradient.layer_integrated_gradients import LayerIntegratedGradients
from pyxai.gradient.noise_tunnel import NoiseTunnel
from pyxai.gradient.saliency import InputXGradient, Saliency

__all__ = ["Saliency", "InputXGradient", "IntegratedGradients", "NoiseTunnel", "GuidedBackprop",
           "LayerGradCam", "GuidedGradCam", "Deconvolution", "LayerActivation", "GradientShap",
           "LayerIntegratedGradients", "LayerConductance", "DeepLift", "DeepLiftShap"]
