"""Perturbation explainers: RISE, Occlusion, FeatureAblation (Captum drop-ins for the last two),
ExtremalPerturbation (TorchRay semantics) and MeaningfulPerturbation (Fong & Vedaldi 2017), batched."""

from pyxai.perturbation.ablation import FeatureAblation, Occlusion
from pyxai.perturbation.extremal import ExtremalPerturbation
from pyxai.perturbation.meaningful import MeaningfulPerturbation
from pyxai.perturbation.rise import RISE
from pyxai.perturbation.shapley import ShapleyValueSampling

__all__ = ["ExtremalPerturbation", "FeatureAblation", "MeaningfulPerturbation", "Occlusion", "RISE",
           "ShapleyValueSampling"]
