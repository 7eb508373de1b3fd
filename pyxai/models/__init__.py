"""Bundled demo models, trained on :mod:`pyxai.data` with their weights inside the package."""

from pyxai.models.demo_cnn import BasicBlock, DemoCNN, demo_cnn
from pyxai.models.demo_ssl import SSLEncoder, demo_barlow_twins, demo_simclr
from pyxai.models.demo_video_cnn import DemoVideoCNN, demo_video_cnn

__all__ = ["BasicBlock", "DemoCNN", "demo_cnn"]
__all__ += ["DemoVideoCNN", "demo_video_cnn"]
__all__ += ["SSLEncoder", "demo_simclr", "demo_barlow_twins"]
