"""pyxai.video: video attribution. :class:`STEP` — spatio-temporal extremal perturbation masks of
clip models (and its 2-D / 3-D extremal-perturbation baselines)."""

from pyxai.video.step import STEP

__all__ = ["STEP"]
