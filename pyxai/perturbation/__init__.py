"""Perturbation explainers: RISE, Occlusion, FeatureAblation (Captum drop-ins for the last two)."""

from pyxai.perturbation.ablation import FeatureAblation, Occlusion
from pyxai.perturbation.rise import RISE

__all__ = ["FeatureAblation", "Occlusion", "RISE"]
