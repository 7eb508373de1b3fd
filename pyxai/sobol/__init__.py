"""The Sobol attribution method: replicated designs, samplers, perturbations, estimators."""

from pyxai.sobol.explainer import SobolAttribution
from pyxai.sobol.samplers import SAMPLERS, draw_design

__all__ = ["SAMPLERS", "SobolAttribution", "draw_design"]
