"""Conditional occlusion and its context-agnostic variant (SPECS §9.1, §9.2).

A window of ``window`` pixels slides with ``stride`` over the image (``(H - wh) // sh + 1`` by
``(W - ww) // sw + 1`` positions, row-major: window ``k`` is row ``k // n_w``, column ``k % n_w``).

* :class:`ConditionalOcclusion`: ``map1[k] = cos(f(img1 with window k zeroed), f(img2))``,
  ``map2[k] = cos(f(img1), f(img2 with window k zeroed))``; the heat is the drop ``base - map``
  with ``base = cos(f(img1), f(img2))``, min-max normalised per map (explain-cl HEAD).
* :class:`ContextAgnosticConditionalOcclusion`: ``z = f(only window k kept) - f(window k zeroed)``
  and ``map1[k] = cos(z(img1), f(img2))`` (and symmetrically), min-max normalised.

The occluded copies are generated per chunk of windows on the perturbation runner (memory does not
grow with the number of windows), for all pairs of the batch at once, and the conditioning
embeddings ``f(img1)``, ``f(img2)`` are computed once per call.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import ResolvedTarget
from pyxai.similarity._common import (
    Pooling,
    check_nonzero,
    check_pair,
    check_pooling,
    check_window,
    cosine,
    embedder,
    minmax,
    out_dtype,
    resize_maps,
)
from pyxai.similarity.targets import cosine_to


def window_grid(size: tuple[int, int], window: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """Window positions (n_h, n_w) of the reference's grid: ``(H - wh) // sh + 1`` per axis."""
    return (size[0] - window[0]) // stride[0] + 1, (size[1] - window[1]) // stride[1] + 1


def window_masks(first: int, count: int, size: tuple[int, int], window: tuple[int, int],
                 stride: tuple[int, int], n_w: int, device: torch.device) -> Tensor:
    """Tensor[count, H, W] bool: the pixels of windows ``[first, first + count)``."""
    k = torch.arange(first, first + count, device=device)
    top, left = (k // n_w) * stride[0], (k % n_w) * stride[1]
    r = torch.arange(size[0], device=device)
    c = torch.arange(size[1], device=device)
    rows = (r >= top[:, None]) & (r < top[:, None] + window[0])
    cols = (c >= left[:, None]) & (c < left[:, None] + window[1])
    return rows[:, :, None] & cols[:, None, :]


class _WindowOcclusion:
    """Shared constructor, checks and the per-image run of the two occlusion methods."""

    def __init__(self, encoder: Callable, window: int | tuple[int, int] = 64,
                 stride: int | tuple[int, int] = 8,
                 baseline: float = 0.0, normalize: bool = True, pooling: Pooling = None,
                 batch_size: int | None = None, show_progress: bool = False) -> None:
        self.encoder = encoder
        self.window = check_window(window, "window")
        self.stride = check_window(stride, "stride")
        if isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
            raise TypeError(f"baseline must be a number, got {type(baseline).__name__}")
        self.baseline = float(baseline)
        self.normalize = bool(normalize)
        self.pooling = check_pooling(pooling)
        self.batch_size = batch_size
        self.show_progress = show_progress

    def attribute(self, img1: Tensor, img2: Tensor, resize: bool = True) -> tuple[Tensor, Tensor]:
        """Maps of both images of each pair.

        Args:
            img1: Tensor[B, C, H1, W1] first images.
            img2: Tensor[B, C, H2, W2] second images (pair ``b`` is ``img1[b], img2[b]``).
            resize: upsample the window grids to the image sizes (bilinear, as the references
                display them); False returns the raw grids Tensor[B, 1, n_h, n_w]. Default: True

        Returns:
            (Tensor[B, 1, H1, W1], Tensor[B, 1, H2, W2]), float32 (float64 for float64 inputs).
        """
        check_pair(img1, img2, self.encoder)
        for img in (img1, img2):
            check_window(self.window, "window", tuple(img.shape[2:]))
        f = embedder(self.encoder, self.pooling)
        runner = PerturbationRunner(f, self.batch_size, self.show_progress)
        z1 = check_nonzero(runner.outputs(img1), "encoder(img1)")
        z2 = check_nonzero(runner.outputs(img2), "encoder(img2)")
        base = cosine(z1, z2).double()
        maps = []
        for img, cond in ((img1, z2), (img2, z1)):
            grid = self._grid(runner, img, cond, base)  # [B, n_h, n_w] float64
            if self.normalize:
                grid = minmax(grid)
            grid = grid[:, None].to(out_dtype(img))
            maps.append(resize_maps(grid, tuple(img.shape[2:])) if resize else grid)
        return maps[0], maps[1]

    def _grid(self, runner: PerturbationRunner, img: Tensor, cond: Tensor, base: Tensor) -> Tensor:
        raise NotImplementedError


class ConditionalOcclusion(_WindowOcclusion):
    """Conditional occlusion of two-image similarity (Sammani et al., explain-cl ``occlusion``).

    Args:
        encoder: ``nn.Module`` or callable, images Tensor[N, C, H, W] -> embeddings Tensor[N, D].
        window (int or (h, w), optional): occlusion window. Default: 64
        stride (int or (h, w), optional): window stride. Default: 8
        baseline (float, optional): value written in the window (0: black for [0, 1] inputs, as the
            reference). Default: 0.0
        normalize (bool, optional): min-max normalise each map (explain-cl HEAD); False returns the
            raw similarity drop. Default: True
        pooling (optional): how to turn a non-2-D encoder output into Tensor[N, D] ("avg",
            "flatten", "cls" or a callable). Default: None (the encoder must return Tensor[N, D])
        batch_size (int, optional): encoder inputs per forward; None: automatic. Default: None
        show_progress (bool, optional): progress bar. Default: False

    Examples::

        >>> enc = pyxai.models.demo_simclr()
        >>> m1, m2 = pyxai.similarity.ConditionalOcclusion(enc, window=16, stride=4).attribute(x1, x2)
    """

    def _grid(self, runner: PerturbationRunner, img: Tensor, cond: Tensor, base: Tensor) -> Tensor:
        b, size = img.shape[0], tuple(img.shape[2:])
        n_h, n_w = window_grid(size, self.window, self.stride)
        n = n_h * n_w
        scores = torch.empty(n, b, dtype=torch.float64, device=img.device)
        fill = img.new_full((), self.baseline)

        def make(s: int, e: int) -> Tensor:
            m = window_masks(s, e - s, size, self.window, self.stride, n_w, img.device)
            out = torch.where(m[:, None, None], fill, img[None])  # [e - s, B, C, H, W]
            return out.reshape((e - s) * b, *img.shape[1:])

        def consume(s: int, e: int, v: Tensor) -> None:
            scores[s:e] = v.reshape(e - s, b).double()

        target = ResolvedTarget(b, fn=cosine_to(cond))
        runner.run(n, make, consume, rows_per_item=b, target=target, desc="conditional occlusion",
                   sample=img[:1])
        return (base[:, None] - scores.T).reshape(b, n_h, n_w)


class ContextAgnosticConditionalOcclusion(_WindowOcclusion):
    """Context-agnostic conditional occlusion (explain-cl ``occlusion_context_agnositc``).

    For each window, ``z = f(image with everything zeroed except the window) - f(image with the
    window zeroed)``; ``map1 = cos(z(img1), f(img2))``, ``map2 = cos(f(img1), z(img2))``, min-max
    normalised (no baseline subtraction). Arguments as :class:`ConditionalOcclusion`.
    """

    def _grid(self, runner: PerturbationRunner, img: Tensor, cond: Tensor, base: Tensor) -> Tensor:
        b, size = img.shape[0], tuple(img.shape[2:])
        n_h, n_w = window_grid(size, self.window, self.stride)
        n = n_h * n_w
        scores = torch.empty(n, b, dtype=torch.float64, device=img.device)
        fill = img.new_full((), self.baseline)

        def make(s: int, e: int) -> Tensor:
            m = window_masks(s, e - s, size, self.window, self.stride, n_w, img.device)[:, None, None]
            masked = torch.where(m, fill, img[None])  # window zeroed
            kept = torch.where(m, img[None], fill)  # everything zeroed except the window
            out = torch.stack([masked, kept], 1)  # [e - s, 2, B, C, H, W]
            return out.reshape((e - s) * 2 * b, *img.shape[1:])

        def consume(s: int, e: int, v: Tensor) -> None:
            v = v.reshape(e - s, 2, b, -1)
            scores[s:e] = cosine(v[:, 1] - v[:, 0], cond[None]).double()

        runner.run(n, make, consume, rows_per_item=2 * b, desc="context-agnostic occlusion",
                   sample=img[:1])
        return scores.T.reshape(b, n_h, n_w)
