"""``show_cam_on_image``: a CAM blended on its image, as pytorch-grad-cam's helper of that name."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pyxai.viz._arrays import image_hwc, map_hw, to_numpy
from pyxai.viz.colormaps import lookup_table

#: OpenCV's code of its JET colour map (``cv2.COLORMAP_JET``), pytorch-grad-cam's default
COLORMAP_JET = 2


def show_cam_on_image(img: Any, mask: Any, use_rgb: bool = False, colormap: int | str = COLORMAP_JET,
                      image_weight: float = 0.5) -> np.ndarray:
    """Overlay a CAM on an image, exactly as ``pytorch_grad_cam.utils.image.show_cam_on_image``.

    ``heat = colormap(uint8(255 * mask)) / 255``; ``cam = (1 - w) * heat + w * img``; the result is
    ``uint8(255 * cam / max(cam))``. The heat map is BGR unless ``use_rgb`` (OpenCV's convention).

    Args:
        img: the image in [0, 1]: ``Tensor[C, H, W]`` or ``ndarray[H, W, C]`` (float).
        mask: the map in [0, 1]: ``Tensor[H, W]`` / ``[1, H, W]`` or an ndarray of those shapes.
        use_rgb: return RGB (True) or BGR (False, OpenCV's and pytorch-grad-cam's default).
        colormap: an OpenCV colour-map code (``cv2.COLORMAP_*``; needs opencv-python) or a
            matplotlib colour-map name. Default: ``cv2.COLORMAP_JET``.
        image_weight: weight of the image in the blend, in [0, 1]. Default: 0.5.

    Returns:
        ``np.ndarray[H, W, 3]`` uint8.
    """
    image = image_hwc(img, "img")
    heat_mask = map_hw(mask, "mask")
    if heat_mask.shape != image.shape[:2]:
        raise ValueError(f"mask has shape {tuple(heat_mask.shape)} but img is {tuple(image.shape[:2])}")
    if heat_mask.is_floating_point() and (heat_mask.min() < 0 or heat_mask.max() > 1):
        raise ValueError("mask must lie in [0, 1] (normalise it first)")
    lut = lookup_table(colormap, bgr=not use_rgb)                      # Tensor[256, 3] uint8
    index = (255 * heat_mask).to(torch.uint8).long()                   # truncation, as np.uint8
    heatmap = lut[index].to(torch.float32) / 255
    if float(image.max()) > 1:
        raise ValueError("img: the input image should np.float32 in the range [0, 1]")
    if image_weight < 0 or image_weight > 1:
        raise ValueError(f"image_weight should be in the range [0, 1]. Got: {image_weight}")
    if not image.is_floating_point():
        image = image.to(torch.float64)
    cam = (1 - image_weight) * heatmap + image_weight * image
    cam = cam / cam.max()
    return to_numpy((255 * cam).to(torch.uint8))
