"""Real-time video attribution: streamed per-frame maps for frame and clip models, PyAV IO, and
:class:`STEP` — spatio-temporal extremal perturbation masks of clip models (with its 2-D / 3-D
extremal-perturbation baselines).

PyAV (``pip install 'pyxai-attribution[video]'``) is imported only when a file or stream is opened
or written; tensors and iterables of tensors work without it.
"""

from pyxai.video.explainer import VideoExplainer
from pyxai.video.step import STEP
from pyxai.video.streaming import StreamingRISE
from pyxai.video.streaming_cam import StreamingScoreCAM, StreamingSIDU

__all__ = ["STEP", "StreamingRISE", "StreamingSIDU", "StreamingScoreCAM", "VideoExplainer"]
