"""Module type groups used by composites and canonizers (Zennit's ``types``)."""

from __future__ import annotations

from torch import nn

from pyxai.lrp.layers import Sum

ConvolutionStandard = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
ConvolutionTranspose = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
Convolution = ConvolutionStandard + ConvolutionTranspose
Linear = Convolution + (nn.Linear,)
BatchNorm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
AvgPool = (
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
)
MaxPool = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
Activation = (
    nn.ELU, nn.Hardshrink, nn.Hardsigmoid, nn.Hardtanh, nn.Hardswish, nn.LeakyReLU, nn.LogSigmoid,
    nn.PReLU, nn.ReLU, nn.ReLU6, nn.RReLU, nn.SELU, nn.CELU, nn.GELU,
    nn.Sigmoid, nn.SiLU, nn.Softplus, nn.Softshrink, nn.Softsign, nn.Tanh, nn.Tanhshrink,
    nn.Threshold,
)
SumLayer = (Sum,)
# Zennit counts nn.MultiheadAttention among the activations (so it gets Pass, a plain gradient
# through attention); pyxai does not: it has no rule unless a composite gives it one.
