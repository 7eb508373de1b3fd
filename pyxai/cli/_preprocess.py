"""What a model expects: input size, resize, normalisation and class names (no download).

For ``torchvision:<name>`` these come from the metadata of the model's default weights enum
(``crop_size``, ``resize_size``, ``mean``, ``std``, ``categories``), which ships with torchvision;
for ``timm:<name>`` from the model's ``pretrained_cfg`` (``input_size``, ``crop_pct``, ``mean``,
``std``); a ViT's fixed image size is enforced. The demo model takes 64 x 64 images in [0, 1], unnormalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """How images become model inputs.

    Attributes:
        size: side of the centre crop (the model input is size x size).
        resize: the short side is resized to this before the crop.
        mean, std: per-channel normalisation (None: the model takes [0, 1] pixels).
        classes: class names by index, or None.
    """

    size: int
    resize: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    classes: tuple[str, ...] | None

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[B, 3, H, W] in [0, 1] -> the model's input."""
        if self.mean is None:
            return x
        mean = torch.tensor(self.mean, dtype=x.dtype)[:, None, None]
        std = torch.tensor(self.std, dtype=x.dtype)[:, None, None]
        return (x - mean) / std


def input_spec(spec: str, model: torch.nn.Module, size: int | None) -> InputSpec:
    """The :class:`InputSpec` of model ``spec`` for ``--size size`` (None: the model's own).

    ValueError when the model needs another size (a ViT's ``image_size``) or ``size`` < 8.
    """
    if size is not None and size < 8:
        raise ValueError(f"--size must be at least 8, got {size}")
    if spec == "demo":
        from pyxai.data import SHAPE_CLASSES

        s = size or 64
        return InputSpec(s, s, None, None, tuple(SHAPE_CLASSES))
    need = getattr(model, "image_size", None)  # torchvision ViT
    if need is None and hasattr(model, "patch_embed"):  # timm ViT
        need = getattr(model.patch_embed, "img_size", None)
        need = need[0] if isinstance(need, (tuple, list)) else need
        if getattr(model.patch_embed, "dynamic_img_size", False):
            need = None
    if need is not None and size is not None and size != need:
        raise ValueError(f"{spec} needs {need}x{need} inputs (it has a fixed number of position "
                         f"embeddings): use --size {need} or leave --size out")
    crop, resize, classes = 224, 256, None
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if spec.startswith("torchvision:"):
        import torchvision

        try:
            meta = torchvision.models.get_model_weights(spec.split(":", 1)[1]).DEFAULT
            t = meta.transforms()
            crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
            mean, std = tuple(t.mean), tuple(t.std)
            classes = tuple(meta.meta.get("categories") or ()) or None
        except (ValueError, AttributeError, TypeError, IndexError):
            pass
    elif spec.startswith("timm:"):
        cfg = getattr(model, "pretrained_cfg", None) or {}
        mean, std = tuple(cfg.get("mean", mean)), tuple(cfg.get("std", std))
        crop = int(cfg.get("input_size", (3, crop, crop))[-1])
        resize = round(crop / float(cfg.get("crop_pct", crop / resize)))
    s = size or need or crop
    out_features = _num_classes(model)
    if classes is not None and out_features is not None and out_features != len(classes):
        classes = None
    return InputSpec(s, max(s, round(s * resize / crop)), mean, std, classes)


def _num_classes(model: torch.nn.Module) -> int | None:
    """The out_features of the model's last Linear layer, if any."""
    last = None
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            last = m
    return last.out_features if last is not None else None


def parse_target(value: str | None, classes: tuple[str, ...] | None) -> int | None:
    """``--target``: an int, or a class name of the model (case-insensitive); None: predicted class."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    if classes:
        low = [c.lower() for c in classes]
        if value.lower() in low:
            return low.index(value.lower())
        shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
        raise ValueError(f"--target {value!r} is not a class of this model ({shown})")
    raise ValueError(f"--target {value!r}: this model has no class names; give a class index")
