"""Perturbation explainers: RISE, Occlusion, FeatureAblation, ShapleyValueSampling, ShapleyValues,
Lime, LimeBase and KernelShap (Captum drop-ins), ExtremalPerturbation (TorchRay semantics) and
MeaningfulPerturbation (Fong & Vedaldi 2017), batched. Lime's surrogate models are in
:mod:`.linear_model`."""

from pyxai.perturbation.ablation import FeatureAblation, Occlusion
from pyxai.perturbation.extremal import ExtremalPerturbation
from pyxai.perturbation.kernel_shap import KernelShap
from pyxai.perturbation.lime import Lime
from pyxai.perturbation.lime_base import LimeBase
from pyxai.perturbation.meaningful import MeaningfulPerturbation
from pyxai.perturbation.rise import RISE
from pyxai.perturbation.shapley import ShapleyValues, ShapleyValueSampling

__all__ = ["ExtremalPerturbation", "FeatureAblation", "KernelShap", "Lime", "LimeBase",
           "MeaningfulPerturbation", "Occlusion", "RISE", "ShapleyValueSampling",
           "ShapleyValues"]
