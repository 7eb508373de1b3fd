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


class FasterRCNNBoxScoreTarget:
    """Detection: for each reference box, ``IoU + score`` of the best-overlapping detected box
    when that IoU exceeds ``iou_threshold`` and its label matches, summed (0 otherwise).

    Args:
        labels: reference labels, one per box.
        bounding_boxes: reference boxes ``[x1, y1, x2, y2]`` (NumPy arrays or Tensors).
        iou_threshold: minimal IoU. Default: 0.5

    Called on one image's detector output ``{"boxes": Tensor[N, 4], "labels": Tensor[N],
    "scores": Tensor[N]}``; returns Tensor[1] on the boxes' device and dtype.
    """

    def __init__(self, labels: Any, bounding_boxes: Any, iou_threshold: float = 0.5) -> None:
        self.labels = labels
        self.bounding_boxes = bounding_boxes
        self.iou_threshold = iou_threshold

    def __call__(self, model_outputs: dict) -> torch.Tensor:
        from torchvision.ops import box_iou

        boxes = model_outputs["boxes"]
        output = torch.zeros(1, device=boxes.device, dtype=boxes.dtype)
        if len(boxes) == 0:
            return output
        for box, label in zip(self.bounding_boxes, self.labels):
            ref = torch.as_tensor(box, device=boxes.device, dtype=boxes.dtype).reshape(1, 4)
            ious = box_iou(ref, boxes)[0]
            index = ious.argmax()
            hit = (ious[index] > self.iou_threshold) & (model_outputs["labels"][index] == label)
            output = output + torch.where(hit, ious[index] + model_outputs["scores"][index],
                                          torch.zeros_like(ious[index]))
        return output


__all__ = ["ClassifierOutputTarget", "ClassifierOutputSoftmaxTarget", "BinaryClassifierOutputTarget",
           "RawScoresOutputTarget", "SemanticSegmentationTarget", "FasterRCNNBoxScoreTarget"]
