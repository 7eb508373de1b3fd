"""pytorch-grad-cam's target objects (``pytorch_grad_cam.utils.model_targets``), pyxai's own.

Each maps *one sample's* model output to a scalar score (or, for a batch, one score per row) with
pytorch-grad-cam's semantics; pass a list of them, one per sample, as ``targets=`` /
``target=`` to any pyxai explainer (:mod:`pyxai.engine.targets` resolves them; a list of
:class:`ClassifierOutputTarget` is gathered as class indices in one op). Everything stays on the
device; :class:`SemanticSegmentationTarget` accepts a NumPy mask as pytorch-grad-cam does, or a
Tensor.

    >>> from pyxai.cam.targets import ClassifierOutputTarget
    >>> cam(input_tensor=x, targets=[ClassifierOutputTarget(281), ClassifierOutputTarget(3)])
"""

from __future__ import annotations

from typing import Any

import torch


class ClassifierOutputTarget:
    """The score of class ``category``: ``output[category]`` (``output[:, category]`` for a batch)."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output[self.category] if model_output.dim() == 1 else \
            model_output[:, self.category]


class ClassifierOutputSoftmaxTarget:
    """The softmax probability of class ``category`` (softmax over the last dim)."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(model_output, dim=-1)
        return p[self.category] if model_output.dim() == 1 else p[:, self.category]


class BinaryClassifierOutputTarget:
    """A one-logit binary classifier: the logit for ``category == 1``, its negation otherwise."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output if self.category == 1 else -model_output


class RawScoresOutputTarget:
    """The model output itself (models that return one score per sample)."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output


class SemanticSegmentationTarget:
    """Segmentation: the sum of class ``category``'s scores over the pixels of ``mask``.

    Args:
        category: the class channel of the model's ``Tensor[K, H, W]`` per-sample output.
        mask: Tensor[H, W] or NumPy array (1 where the pixels count).
    """

    def __init__(self, category: int, mask: Any) -> None:
        self.category = category
        self.mask = torch.as_tensor(mask)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        mask = self.mask.to(model_output.device, model_output.dtype)
        return (model_output[self.category, :, :] * mask).sum()


__all__ = ["ClassifierOutputTarget", "ClassifierOutputSoftmaxTarget", "BinaryClassifierOutputTarget",
           "RawScoresOutputTarget", "SemanticSegmentationTarget"]
