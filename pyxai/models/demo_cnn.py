"""The bundled demo CNN: a small torchvision-style ResNet trained on :func:`pyxai.data.shapes`.

Its layout mirrors ``torchvision.models.ResNet`` (``stem`` instead of ``conv1/bn1/relu/maxpool``), so
layer names, BasicBlock attributes and residual structure are what Grad-CAM targets and LRP
canonizers expect::

    stem     Conv2d(3, 24, 3) + BatchNorm2d + ReLU + MaxPool2d(2)      -> [B, 24, 32, 32]
    layer1   BasicBlock(24 -> 24)                                     -> [B, 24, 32, 32]
    layer2   BasicBlock(24 -> 48, stride 2, downsample conv1x1 + bn)  -> [B, 48, 16, 16]
    layer3   BasicBlock(48 -> 96, stride 2, downsample conv1x1 + bn)  -> [B, 96, 8, 8]
    avgpool  AdaptiveAvgPool2d(1), flatten Flatten, fc Linear(96, 6)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from pyxai.data import SHAPE_CLASSES

__all__ = ["BasicBlock", "DemoCNN", "demo_cnn", "WEIGHTS_PATH"]

#: Where the pretrained weights of :func:`demo_cnn` live inside the package.
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "demo_cnn.pt"

#: Weights of each :func:`demo_cnn` variant and the command that trains them.
VARIANTS = {
    "default": (WEIGHTS_PATH, "python -m pyxai.models.train"),
    "clever_hans": (
        WEIGHTS_PATH.parent / "demo_cnn_clever_hans.pt",
        "python -m pyxai.models.train_clever_hans",
    ),
}

WIDTHS = (24, 48, 96)


class BasicBlock(nn.Module):
    """Residual block with the attributes and forward of torchvision's ``BasicBlock``.

    ``out = relu(bn1(conv1(x))); out = bn2(conv2(out)); out += downsample(x) or x; relu(out)``

    Args:
        in_channels (int): channels of the input.
        channels (int): channels of the output.
        stride (int, optional): stride of ``conv1`` (and of ``downsample``). Default: 1
        downsample (nn.Module, optional): projection of the identity branch, ``None`` when
            shapes already match. Default: None
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, in_channels, H, W] -> Tensor[B, channels, H / stride, W / stride]."""
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


def _block(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_channels != channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(channels),
        )
    return nn.Sequential(BasicBlock(in_channels, channels, stride, downsample))


class DemoCNN(nn.Module):
    """Small ResNet for Tensor[B, 3, 64, 64] images in [0, 1] (see the module docstring).

    Args:
        num_classes (int, optional): number of logits. Default: ``len(SHAPE_CLASSES)``
        widths (tuple of int, optional): channels of ``layer1``, ``layer2``, ``layer3``.
            Default: ``(24, 48, 96)``
    """

    def __init__(self, num_classes: int = len(SHAPE_CLASSES), widths: tuple = WIDTHS) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(
            nn.Conv2d(3, w1, 3, padding=1, bias=False),
            nn.BatchNorm2d(w1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.layer1 = _block(w1, w1, 1)
        self.layer2 = _block(w1, w2, 2)
        self.layer3 = _block(w2, w3, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w3, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, 3, H, W] in [0, 1] -> logits Tensor[B, num_classes]."""
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.avgpool(x)
        x = self.flatten(x)
        return self.fc(x)


def demo_cnn(pretrained: bool = True, variant: str = "default") -> DemoCNN:
    """The bundled demo CNN for :func:`pyxai.data.shapes` images, in eval mode.

    Args:
        pretrained (bool, optional): load the weights shipped in the package
            (``pyxai/models/weights/demo_cnn.pt``, trained by ``python -m pyxai.models.train``);
            ``False`` gives a randomly initialised model. Default: True
        variant (str, optional): ``"default"``, or ``"clever_hans"``: the same architecture trained
            on :func:`pyxai.data.shapes_cued` (circles mostly carry a corner tag), which reads the
            tag (``weights/demo_cnn_clever_hans.pt``, ``python -m pyxai.models.train_clever_hans``).
            Default: "default"

    Returns:
        DemoCNN: Tensor[B, 3, 64, 64] in [0, 1] -> logits Tensor[B, len(SHAPE_CLASSES)].

    Examples::

        >>> model = pyxai.models.demo_cnn()
        >>> images, labels, masks = pyxai.data.shapes(4, seed=12345)
        >>> model(images).argmax(1)
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    weights, command = VARIANTS[variant]
    model = DemoCNN()
    if pretrained:
        if not weights.is_file():
            raise FileNotFoundError(
                f"demo_cnn weights not found at {weights}; reinstall pyxai or train them with "
                f"`{command}`"
            )
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()
