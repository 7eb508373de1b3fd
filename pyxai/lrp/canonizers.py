"""Canonizers: reversible model rewrites that make LRP rules applicable (SPECS §7.4).

* :class:`SequentialMergeBatchNorm` folds every BatchNorm that directly follows a Linear-type leaf
  (in registration order) into that layer: ``W' = W s``, ``b' = (b - mean) s + beta`` with
  ``s = gamma / sqrt(var + eps)``; the BatchNorm becomes the identity (mean 0, var 1, weight 1,
  bias 0; ``eps`` is kept, as Zennit does).
* :class:`ResidualBlockCanonizer` rewrites torchvision ResNet ``BasicBlock``/``Bottleneck`` (and any
  block with their attributes, such as ``pyxai.models.demo_cnn``'s) so the residual addition is a
  :class:`~pyxai.lrp.layers.Sum` module over ``stack([identity, out], -1)``, which composites give
  the Norm rule.
* ``VGGCanonizer`` = merge; ``ResNetCanonizer`` = merge + residual blocks; ``"auto"`` picks by
  looking at the model.

Every change is undone by :func:`canonized` on exit, also after an exception: the parameter objects
are the same and hold their original tensors again.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence, Union

import torch
from torch import nn

from pyxai.lrp import types
from pyxai.lrp.layers import Sum


class Canonizer:
    """Base class: :meth:`apply` changes a model and returns undo callables."""

    def apply(self, model: nn.Module) -> list:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    children = list(module.children())
    if not children:
        yield module
    for child in children:
        yield from _leaves(child)


class SequentialMergeBatchNorm(Canonizer):
    """Merge each BatchNorm that directly follows a Linear-type leaf module into it."""

    def apply(self, model: nn.Module) -> list:
        undo = []
        last = None
        try:
            for leaf in _leaves(model):
                if isinstance(last, types.Linear) and isinstance(leaf, types.BatchNorm):
                    undo.append(self._merge(last, leaf))
                last = leaf
        except BaseException:
            for u in reversed(undo):
                u()
            raise
        return undo

    @staticmethod
    def _merge(linear: nn.Module, bn: nn.Module):
        if bn.running_mean is None or bn.running_var is None or bn.weight is None or bn.bias is None:
            raise ValueError(
                f"cannot merge {type(bn).__name__} without running statistics and affine parameters; "
                "pass canonizers=None"
            )
        saved_w = linear.weight.data
        had_bias = linear.bias is not None
        saved_b = linear.bias.data if had_bias else None
        bn_saved = {k: getattr(bn, k).data for k in ("weight", "bias", "running_mean", "running_var")}

        def undo() -> None:
            linear.weight.data = saved_w
            if had_bias:
                linear.bias.data = saved_b
            else:
                linear.bias = None
            for k, v in bn_saved.items():
                getattr(bn, k).data = v

        try:
            with torch.no_grad():
                scale = bn.weight / (bn.running_var + bn.eps) ** 0.5
                if not had_bias:
                    linear.bias = nn.Parameter(torch.zeros(1, dtype=saved_w.dtype, device=saved_w.device))
                if isinstance(linear, types.ConvolutionTranspose):
                    index = (None, slice(None), *((None,) * (saved_w.dim() - 2)))
                else:
                    index = (slice(None), *((None,) * (saved_w.dim() - 1)))
                bias = linear.bias.data
                linear.weight.data = saved_w * scale[index]
                linear.bias.data = (bias - bn.running_mean) * scale + bn.bias
                bn.running_mean.data = torch.zeros_like(bn.running_mean)
                bn.running_var.data = torch.ones_like(bn.running_var)
                bn.bias.data = torch.zeros_like(bn.bias)
                bn.weight.data = torch.ones_like(bn.weight)
        except BaseException:
            undo()
            raise
        return undo


def _is_block(module: nn.Module) -> str | None:
    """'basic' / 'bottleneck' for torchvision-style residual blocks, else None."""
    name = type(module).__name__
    need = ("conv1", "bn1", "conv2", "bn2", "relu", "downsample")
    if not all(hasattr(module, a) for a in need):
        return None
    if name == "Bottleneck" and hasattr(module, "conv3") and hasattr(module, "bn3"):
        return "bottleneck"
    if name == "BasicBlock":
        return "basic"
    return None


def _basic_forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    if self.downsample is not None:
        identity = self.downsample(x)
    out = self.canonizer_sum(torch.stack([identity, out], dim=-1))
    return self.relu(out)


def _bottleneck_forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    if self.downsample is not None:
        identity = self.downsample(x)
    out = self.canonizer_sum(torch.stack([identity, out], dim=-1))
    return self.relu(out)


class ResidualBlockCanonizer(Canonizer):
    """Make the residual addition of ResNet BasicBlock/Bottleneck blocks a ``Sum`` module."""

    def apply(self, model: nn.Module) -> list:
        undo = []
        for module in model.modules():
            kind = _is_block(module)
            if kind is None or "canonizer_sum" in module._modules:
                continue
            fwd = _basic_forward if kind == "basic" else _bottleneck_forward
            had = "forward" in module.__dict__
            prev = module.__dict__.get("forward")

            def restore(module=module, had=had, prev=prev) -> None:
                module._modules.pop("canonizer_sum", None)
                if had:
                    module.__dict__["forward"] = prev
                else:
                    module.__dict__.pop("forward", None)

            module.canonizer_sum = Sum()
            module.forward = fwd.__get__(module)
            undo.append(restore)
        return undo


class CompositeCanonizer(Canonizer):
    """Several canonizers applied in order."""

    def __init__(self, canonizers: Sequence[Canonizer]) -> None:
        self.canonizers = list(canonizers)

    def apply(self, model: nn.Module) -> list:
        undo: list = []
        try:
            for c in self.canonizers:
                undo += c.apply(model)
        except BaseException:
            for u in reversed(undo):
                u()
            raise
        return undo

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.canonizers!r})"


class VGGCanonizer(SequentialMergeBatchNorm):
    """Canonizer for VGG-style models: BatchNorm merging."""


class ResNetCanonizer(CompositeCanonizer):
    """Canonizer for ResNet-style models: BatchNorm merging, then residual sums as modules."""

    def __init__(self) -> None:
        super().__init__([SequentialMergeBatchNorm(), ResidualBlockCanonizer()])

    def __repr__(self) -> str:
        return "ResNetCanonizer()"


CanonizerSpec = Union[str, None, Canonizer, Sequence[Canonizer]]


def resolve_canonizers(spec: CanonizerSpec, model: nn.Module) -> list[Canonizer]:
    """``"auto"`` (ResNet blocks -> ResNetCanonizer, BatchNorm -> merge, else none), None, one
    canonizer or a list of them."""
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec != "auto":
            raise ValueError(f"canonizers must be 'auto', None, a Canonizer or a list of them, got {spec!r}")
        if any(_is_block(m) for m in model.modules()):
            return [ResNetCanonizer()]
        if any(isinstance(m, types.BatchNorm) for m in model.modules()):
            return [SequentialMergeBatchNorm()]
        return []
    if isinstance(spec, Canonizer):
        return [spec]
    spec = list(spec)
    bad = [c for c in spec if not isinstance(c, Canonizer)]
    if bad:
        raise TypeError(f"canonizers must be pyxai.lrp canonizers, got {bad[0]!r}")
    return spec


@contextmanager
def canonized(model: nn.Module, canonizers: Sequence[Canonizer]) -> Iterator[nn.Module]:
    """Apply ``canonizers`` to ``model`` for the duration of the context; undone on any exit."""
    undo: list = []
    try:
        for c in canonizers:
            undo += c.apply(model)
        yield model
    finally:
        for u in reversed(undo):
            u()
