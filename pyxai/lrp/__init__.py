"""LRP and CRP: rules, composites, canonizers and the explainers that run them (Zennit's design).

    rules        pyxai.rules.Epsilon, Gamma, AlphaBeta, ZPlus, ZBox, Flat, WSquare, Pass, Norm; custom
                 rules in Zennit's form: BasicHook with ParamMod, NoMod, ClampMod, GammaMod, zero_bias
    composites   which rule on which module: named ones (Zennit's) or Composite(layer_map=...)
    canonizers   rewrites of a per-call model view: BatchNorm merging, residual sums (ResNet, VGG, demo_cnn)
    LRP, CRP     the explainers
"""

from pyxai.lrp import rules
from pyxai.lrp.canonizers import (
    AttributeCanonizer,
    Canonizer,
    CompositeCanonizer,
    ResidualBlockCanonizer,
    ResNetCanonizer,
    SequentialMergeBatchNorm,
    VGGCanonizer,
    canonize,
)
from pyxai.lrp.composites import COMPOSITES, Composite, named_composite
from pyxai.lrp.crp import CRP, ReferenceSamples
from pyxai.lrp.explainer import LRP
from pyxai.lrp.layers import Sum

__all__ = [
    "COMPOSITES", "CRP", "AttributeCanonizer", "Canonizer", "Composite", "CompositeCanonizer", "LRP",
    "ReferenceSamples",
    "ResNetCanonizer", "ResidualBlockCanonizer", "SequentialMergeBatchNorm", "Sum", "VGGCanonizer",
    "canonize", "named_composite", "rules",
]
