"""Bundled self-supervised encoders: SimCLR and Barlow Twins trained on :func:`pyxai.data.shapes`.

Both share one layout, a small ResNet backbone (the stem and blocks of :class:`DemoCNN`, narrower)
and a two-layer projection head::

    backbone.stem     Conv2d(3, 16, 3) + BatchNorm2d + ReLU + MaxPool2d(2)  -> [B, 16, H/2, W/2]
    backbone.layer1   BasicBlock(16 -> 16)                                -> [B, 16, H/2, W/2]
    backbone.layer2   BasicBlock(16 -> 32, stride 2)                      -> [B, 32, H/4, W/4]
    backbone.layer3   BasicBlock(32 -> 64, stride 2)                      -> [B, 64, H/8, W/8]
    backbone.avgpool  AdaptiveAvgPool2d(1) + Flatten                      -> features [B, 64]
    head              Linear(64, 128) + BatchNorm1d + ReLU + Linear(128, 64) -> embedding [B, 64]

``forward`` returns the **projection** (``head(features)``, Tensor[B, 64]): the embedding the
self-supervised loss compared during training and the one the explainers of
:mod:`pyxai.similarity` compare (as the reference code does with SimCLRv2's contrastive head).
``features(x)`` returns the backbone's pooled features Tensor[B, 64] (what a linear probe reads);
``model.backbone.layer3`` is the last convolutional map (the ``target_layer`` of Interaction-CAM).
Inputs are Tensor[B, 3, H, W] in [0, 1] (unnormalised, as SimCLRv2), any H, W >= 8.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from pyxai.models.demo_cnn import _block

__all__ = ["SSLEncoder", "demo_simclr", "demo_barlow_twins", "SSL_WEIGHTS"]

_WEIGHTS = Path(__file__).resolve().parent / "weights"
#: Weights shipped for each method, trained by ``python -m pyxai.models.train_ssl --method <name>``.
SSL_WEIGHTS = {"simclr": _WEIGHTS / "demo_simclr.pt", "barlow_twins": _WEIGHTS / "demo_barlow_twins.pt"}

WIDTHS = (16, 32, 64)
HIDDEN, EMBED = 128, 64


class _Backbone(nn.Module):
    """Tensor[B, 3, H, W] -> pooled features Tensor[B, widths[-1]]."""

    def __init__(self, widths: tuple = WIDTHS) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(nn.Conv2d(3, w1, 3, padding=1, bias=False), nn.BatchNorm2d(w1),
                                  nn.ReLU(), nn.MaxPool2d(2))
        self.layer1 = _block(w1, w1, 1)
        self.layer2 = _block(w1, w2, 2)
        self.layer3 = _block(w2, w3, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.flatten(self.avgpool(x))


class SSLEncoder(nn.Module):
    """Backbone + projection head (see the module docstring); ``forward`` returns the projection.

    Args:
        widths (tuple of int, optional): channels of ``layer1..3``. Default: ``(16, 32, 64)``
        hidden (int, optional): hidden width of the head. Default: 128
        embed (int, optional): size of the projection. Default: 64
    """

    def __init__(self, widths: tuple = WIDTHS, hidden: int = HIDDEN, embed: int = EMBED) -> None:
        super().__init__()
        self.backbone = _Backbone(widths)
        self.head = nn.Sequential(nn.Linear(widths[-1], hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Linear(hidden, embed))

    def features(self, x: Tensor) -> Tensor:
        """Tensor[B, 3, H, W] in [0, 1] -> backbone features Tensor[B, widths[-1]]."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, 3, H, W] in [0, 1] -> projection Tensor[B, embed]."""
        return self.head(self.backbone(x))


def _load(method: str, pretrained: bool) -> SSLEncoder:
    model = SSLEncoder()
    if pretrained:
        path = SSL_WEIGHTS[method]
        if not path.is_file():
            raise FileNotFoundError(f"demo_{method} weights not found at {path}; reinstall pyxai or "
                                    f"train them with `python -m pyxai.models.train_ssl --method {method}`")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def demo_simclr(pretrained: bool = True) -> SSLEncoder:
    """The bundled SimCLR encoder (NT-Xent loss, two augmented views of :func:`pyxai.data.shapes`).

    Args:
        pretrained (bool, optional): load ``pyxai/models/weights/demo_simclr.pt``; ``False`` gives a
            randomly initialised encoder. Default: True

    Returns:
        SSLEncoder in eval mode: Tensor[B, 3, H, W] in [0, 1] -> projection Tensor[B, 64].

    Examples::

        >>> enc = pyxai.models.demo_simclr()
        >>> x, _, _ = pyxai.data.shapes(2, seed=1)
        >>> torch.nn.functional.cosine_similarity(enc(x[:1]), enc(x[1:]))
    """
    return _load("simclr", pretrained)


def demo_barlow_twins(pretrained: bool = True) -> SSLEncoder:
    """The bundled Barlow Twins encoder (cross-correlation loss, two augmented views).

    Args:
        pretrained (bool, optional): load ``pyxai/models/weights/demo_barlow_twins.pt``. Default: True

    Returns:
        SSLEncoder in eval mode: Tensor[B, 3, H, W] in [0, 1] -> projection Tensor[B, 64].
    """
    return _load("barlow_twins", pretrained)
