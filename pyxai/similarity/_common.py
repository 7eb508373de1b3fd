"""Shared pieces of the similarity explainers: pair checks, embeddings, cosine, blur, resizing.

An *encoder* is any ``nn.Module`` (or callable) mapping images Tensor[N, C, H, W] to embeddings
Tensor[N, D]. Encoders returning something else (a feature map Tensor[N, D, h, w], ViT tokens
Tensor[N, T, D]) need a ``pooling`` argument: ``"avg"`` (mean over every dim after the first two),
``"flatten"``, ``"cls"`` (token 0 of Tensor[N, T, D]) or a callable ``Tensor -> Tensor[N, D]``.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from pyxai.engine.checks import check_inputs, check_same_device
from pyxai.engine.view import forward_view

Pooling = Union[None, str, Callable[[Tensor], Tensor]]
_POOLINGS = ("avg", "flatten", "cls")


def check_pooling(pooling: Pooling) -> Pooling:
    """Validate a ``pooling`` argument (None, "avg", "flatten", "cls" or a callable)."""
    if pooling is None or callable(pooling) or pooling in _POOLINGS:
        return pooling
    raise ValueError(f"pooling must be None, one of {_POOLINGS} or a callable, got {pooling!r}")


def pool(z: Tensor, pooling: Pooling) -> Tensor:
    """Tensor[N, ...] encoder output -> Tensor[N, D] embedding (see the module docstring)."""
    if not isinstance(z, Tensor):
        raise TypeError(f"the encoder must return a Tensor, got {type(z).__name__}")
    if pooling is None:
        if z.dim() != 2:
            raise ValueError(f"the encoder returned a Tensor of shape {tuple(z.shape)}, not a 2-D "
                             "embedding Tensor[N, D]; pass pooling='avg', 'flatten', 'cls' or a callable")
        return z
    if callable(pooling):
        out = pooling(z)
    elif pooling == "avg":
        out = z.flatten(2).mean(2) if z.dim() > 2 else z
    elif pooling == "flatten":
        out = z.flatten(1)
    else:  # cls
        if z.dim() != 3:
            raise ValueError(f"pooling='cls' needs tokens Tensor[N, T, D], got shape {tuple(z.shape)}")
        out = z[:, 0]
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != z.shape[0]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"pooling must give Tensor[N, D] embeddings, got {shape}")
    return out


def embedder(encoder: Callable, pooling: Pooling) -> Callable[[Tensor], Tensor]:
    """``x -> Tensor[N, D]``: the encoder (a view of it in training mode, BatchNorm statistics
    untouched) followed by ``pooling``."""
    f = forward_view(encoder)
    return lambda x: pool(f(x), pooling)


def check_pair(img1: Tensor, img2: Tensor, encoder: object = None, same_size: bool = False) -> None:
    """Validate a batch of pairs: two Tensor[B, C, H, W] with equal B, C, dtype and device (and equal
    H, W when ``same_size``), finite, on the encoder's device."""
    check_inputs(img1, "img1", ndims=(4,))
    check_inputs(img2, "img2", ndims=(4,))
    if img1.shape[0] != img2.shape[0]:
        raise ValueError(f"img1 and img2 must hold the same number of images (one pair per row), got "
                         f"{img1.shape[0]} and {img2.shape[0]}")
    if img1.shape[1] != img2.shape[1]:
        raise ValueError(f"img1 and img2 must have the same channels, got {img1.shape[1]} and "
                         f"{img2.shape[1]}")
    if img1.dtype != img2.dtype:
        raise TypeError(f"img1 ({img1.dtype}) and img2 ({img2.dtype}) must have the same dtype")
    if img1.device != img2.device:
        raise ValueError(f"img1 is on {img1.device} but img2 is on {img2.device}")
    if same_size and img1.shape[2:] != img2.shape[2:]:
        raise ValueError(f"img1 and img2 must have the same image size for this method, got "
                         f"{tuple(img1.shape[2:])} and {tuple(img2.shape[2:])}")
    if encoder is not None:
        check_same_device(encoder, img1)


def check_nonzero(z: Tensor, name: str) -> Tensor:
    """Embeddings Tensor[N, D] must be finite with non-zero norms (cosine is undefined otherwise)."""
    if not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    zero = (z.detach().norm(dim=-1) == 0).nonzero().flatten()
    if zero.numel():
        raise ValueError(f"{name} has zero-norm embeddings (rows {zero.tolist()[:8]}): cosine similarity "
                         "is undefined")
    return z


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity (``nn.CosineSimilarity(dim=-1)``, eps 1e-8) -> Tensor[...]."""
    return F.cosine_similarity(a, b, dim=-1)


def check_window(value: int | tuple, name: str, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """An int or (h, w) of positive ints; no larger than ``size`` when given."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of positive ints, got {value!r}")
    if size is not None and (value[0] > size[0] or value[1] > size[1]):
        raise ValueError(f"{name} {tuple(value)} is larger than the image {tuple(size)}")
    return int(value[0]), int(value[1])


def gaussian_blur(x: Tensor, kernel_size: int = 11, sigma: float = 5.0) -> Tensor:
    """torchvision's ``gaussian_blur(x, [k, k], [sigma, sigma])``: separable Gaussian on
    ``linspace(-(k-1)/2, (k-1)/2, k)``, normalised, reflect padding. Tensor[N, C, H, W] -> same."""
    half = (kernel_size - 1) * 0.5
    t = torch.linspace(-half, half, kernel_size, dtype=x.dtype, device=x.device)
    k1 = torch.exp(-0.5 * (t / sigma).pow(2))
    k1 = k1 / k1.sum()
    k2 = torch.outer(k1, k1).expand(x.shape[1], 1, kernel_size, kernel_size)
    p = kernel_size // 2
    return F.conv2d(F.pad(x, [p, p, p, p], mode="reflect"), k2, groups=x.shape[1])


def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Tensor[B, 1, h, w] -> Tensor[B, 1, *size], cv2 ``INTER_LINEAR`` (half-pixel bilinear,
    clamped borders), as the references display their maps."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def minmax(maps: Tensor) -> Tensor:
    """Per-map ``(m - min) / (max - min)`` over all dims after the first (no epsilon, as the
    references); a constant map gives zeros instead of NaN."""
    flat = maps.reshape(maps.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, 1), torch.zeros_like(flat))
    return out.reshape(maps.shape)


def out_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 inputs, else float32 (the result dtype of every explainer)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def erase_boxes(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                generator: torch.Generator) -> list[tuple[int, int, int, int]]:
    """``n`` draws of torchvision ``RandomErasing(p=1, scale, ratio).get_params`` from ``generator``.

    The draws consume the generator exactly as one ``RandomErasing`` call each (the ``p`` draw, then
    up to 10 area/aspect attempts, then the two corner draws), so a generator seeded like the global
    RNG gives the reference's boxes. Returns ``(top, left, h, w)`` per draw (the whole image when no
    attempt fits).
    """
    lr = torch.log(torch.tensor(ratio))  # float32, as torchvision
    log_ratio = (float(lr[0]), float(lr[1]))
    area = height * width
    boxes = []
    for _ in range(n):
        torch.rand(1, generator=generator)  # RandomErasing's `p` draw
        box = (0, 0, height, width)
        for _ in range(10):
            erase_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
            aspect = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator).item())
            h = int(round(math.sqrt(erase_area * aspect)))
            w = int(round(math.sqrt(erase_area / aspect)))
            if not (h < height and w < width):
                continue
            i = int(torch.randint(0, height - h + 1, size=(1,), generator=generator).item())
            j = int(torch.randint(0, width - w + 1, size=(1,), generator=generator).item())
            box = (i, j, h, w)
            break
        boxes.append(box)
    return boxes


def box_masks(boxes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Row and column indicators of boxes Tensor[N, 4] (top, left, h, w):
    (Tensor[N, H], Tensor[N, W]) bool; the box mask is their outer product."""
    r = torch.arange(height, device=boxes.device)
    c = torch.arange(width, device=boxes.device)
    rows = (r >= boxes[:, :1]) & (r < boxes[:, :1] + boxes[:, 2:3])
    cols = (c >= boxes[:, 1:2]) & (c < boxes[:, 1:2] + boxes[:, 3:4])
    return rows, cols
