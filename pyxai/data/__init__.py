"""Bundled demo data: the procedural shapes data set with ground-truth object masks, its
Clever-Hans variant (a spurious corner tag) and moving-shapes clips."""

from pyxai.data.clever_hans import cue_tag, shapes_cued
from pyxai.data.moving_shapes import MOTION_CLASSES, moving_shapes
from pyxai.data.shapes import SHAPE_CLASSES, shape_layers, shapes

__all__ = ["SHAPE_CLASSES", "shape_layers", "shapes"]
__all__ += ["MOTION_CLASSES", "moving_shapes"]
__all__ += ["shapes_cued", "cue_tag"]
