"""The bundled demo video model: a small (2+1)-D conv net trained on :func:`pyxai.data.moving_shapes`.

The label is the direction of motion, so the net starts with a motion-energy unit: the product of
learned appearance features of each frame and learned features of the frame difference (the
optical-flow constraint ``dI/dt = -v . grad I`` makes such products linear in the velocity). Then
spatial ``(1, k, k)`` / temporal ``(3, 1, 1)`` convolution stages (R(2+1)D factorisation), each with
BatchNorm3d and ReLU::

    pool        AvgPool3d((1, 2, 2))                                   -> [B,  3, T,   32, 32]
    appearance  Conv3d(3, 16, (1, 3, 3)) of the frames                 -> [B, 16, T,   32, 32]
    change      Conv3d(3, 16, (1, 3, 3)) of frame t minus frame t - 1  -> [B, 16, T,   32, 32]
    motion      Product: appearance * change                           -> [B, 16, T,   32, 32]
    stem        Conv3d(16, 24, (1, 3, 3), stride (1, 2, 2)) + BN + ReLU -> [B, 24, T,   16, 16]
    layer1      spatial 24 -> 32, temporal 32 -> 32                    -> [B, 32, T,   16, 16]
    layer2      spatial 32 -> 64 stride 2, temporal stride 2           -> [B, 64, T/2,  8,  8]
    fc          Linear(64 + 16) of the global means of layer2 and motion -> [B, 4]

``layer2`` is the Grad-CAM layer (a 5-D feature map). Input Tensor[B, 3, T, 64, 64] in [0, 1] with
``T >= 2`` (trained on T = 16); output logits over :data:`pyxai.data.MOTION_CLASSES`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyxai.data.moving_shapes import MOTION_CLASSES

__all__ = ["DemoVideoCNN", "Product", "demo_video_cnn", "VIDEO_WEIGHTS_PATH"]

#: Where the pretrained weights of :func:`demo_video_cnn` live inside the package.
VIDEO_WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "demo_video_cnn.pt"


def _unit(cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]
          ) -> list[nn.Module]:
    padding = tuple(k // 2 for k in kernel)
    return [nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm3d(cout), nn.ReLU()]


def _stage(cin: int, cout: int, spatial_stride: int, temporal_stride: int) -> nn.Sequential:
    return nn.Sequential(*_unit(cin, cout, (1, 3, 3), (1, spatial_stride, spatial_stride)),
                         *_unit(cout, cout, (3, 1, 1), (temporal_stride, 1, 1)))


class DemoVideoCNN(nn.Module):
    """(2+1)-D conv net for Tensor[B, 3, T, H, W] clips in [0, 1] (see the module docstring).

    Args:
        num_classes (int, optional): number of logits. Default: ``len(MOTION_CLASSES)``
    """

    def __init__(self, num_classes: int = len(MOTION_CLASSES)) -> None:
        super().__init__()
        self.pool = nn.AvgPool3d((1, 2, 2))
        self.appearance = nn.Conv3d(3, 16, (1, 3, 3), padding=(0, 1, 1))
        self.change = nn.Conv3d(3, 16, (1, 3, 3), padding=(0, 1, 1))
        self.motion = Product()
        self.stem = nn.Sequential(*_unit(16, 24, (1, 3, 3), (1, 2, 2)))
        self.layer1 = _stage(24, 32, 1, 1)
        self.layer2 = _stage(32, 64, 2, 2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64 + 16, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, 3, T, H, W] in [0, 1] -> logits Tensor[B, num_classes]."""
        x = self.pool(x)
        diff = F.pad(x[:, :, 1:] - x[:, :, :-1], (0, 0, 0, 0, 1, 0))  # frame t minus frame t-1
        m = self.motion(self.appearance(x), self.change(diff))
        x = self.layer2(self.layer1(self.stem(m)))
        pooled = torch.cat([self.flatten(self.avgpool(x)), self.flatten(self.avgpool(m))], 1)
        return self.fc(pooled)


class Product(nn.Module):
    """Elementwise product of two feature maps (the bilinear motion-energy unit)."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Two Tensor[B, C, T, H, W] -> their product Tensor[B, C, T, H, W]."""
        return a * b


def demo_video_cnn(pretrained: bool = True) -> DemoVideoCNN:
    """The bundled demo video model for :func:`pyxai.data.moving_shapes` clips, in eval mode.

    Args:
        pretrained (bool, optional): load the weights shipped in the package
            (``pyxai/models/weights/demo_video_cnn.pt``, trained by
            ``python -m pyxai.models.train_video``); ``False`` gives a random model. Default: True

    Returns:
        DemoVideoCNN: Tensor[B, 3, T, 64, 64] in [0, 1] -> logits Tensor[B, 4]
        (:data:`pyxai.data.MOTION_CLASSES`).

    Examples::

        >>> model = pyxai.models.demo_video_cnn()
        >>> clips, labels, masks = pyxai.data.moving_shapes(4, seed=12345)
        >>> model(clips).argmax(1)
    """
    model = DemoVideoCNN()
    if pretrained:
        if not VIDEO_WEIGHTS_PATH.is_file():
            raise FileNotFoundError(
                f"demo_video_cnn weights not found at {VIDEO_WEIGHTS_PATH}; reinstall pyxai or "
                "train them with `python -m pyxai.models.train_video`")
        state = torch.load(VIDEO_WEIGHTS_PATH, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()
