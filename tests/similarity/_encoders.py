"""Encoders of the similarity tests: the bundled SSL encoders, a ResNet-50 and a small ViT-B/16
(random weights, randomised BatchNorm statistics), each with its last feature layer.

The random networks run in float64: their embeddings of different images are nearly parallel
(cosines ~0.9999), so similarity drops are ~1e-5 and float32 rounding (which depends on the batch
composition) would dominate a min-max normalised map."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from tests.gradient._models import randomise_bn


class _Reshape:
    """ViT tokens Tensor[N, 1 + h*w, D] -> Tensor[N, D, h, w] (the class token dropped)."""

    def __init__(self, side: int) -> None:
        self.side = side

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t[:, 1:].reshape(t.shape[0], self.side, self.side, t.shape[2]).permute(0, 3, 1, 2)


def demo(name: str) -> tuple[nn.Module, nn.Module, None]:
    from pyxai.models import demo_barlow_twins, demo_simclr

    enc = demo_simclr() if name == "simclr" else demo_barlow_twins()
    return enc, enc.backbone.layer3, None


def resnet50(g: torch.Generator) -> tuple[nn.Module, nn.Module, None]:
    m = torchvision.models.resnet50()
    m.fc = nn.Identity()  # the 2048-d pooled features are the embedding
    return randomise_bn(m, g).eval().double(), m.layer4, None


def vit(size: int = 32) -> tuple[nn.Module, nn.Module, _Reshape]:
    m = torchvision.models.vit_b_16(image_size=size)
    m.heads = nn.Identity()  # the class token is the embedding
    return m.eval().double(), m.encoder.layers[-1], _Reshape(size // 16)


def encoder(name: str, g: torch.Generator):
    if name in ("simclr", "barlow_twins"):
        return demo(name)
    if name == "resnet50":
        return resnet50(g)
    return vit()
