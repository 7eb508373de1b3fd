"""Pairwise occlusion (SPECS §9.3, explain-cl ``pairwise_occlusion``), seeded and batched over pairs.

For each pair, ``num_erases`` random erasings (torchvision ``RandomErasing(p=1, scale, ratio,
value=0)`` boxes, drawn from a generator seeded with ``seed`` in the reference's order: for each
draw, one box for img1 then one for img2) are applied to both images at once.
``s_n = cos(f(e1_n), f(e2_n))``, ``w = softmax_n(base - s_n)``; draw ``n`` adds ``w_n`` to map 1
when ``||f(e1_n)|| < ||f(e2_n)||`` and to map 2 otherwise, on the *erased pixels* — detected as
the reference does, by a channel sum of zero, so pixels of the image whose channels sum to zero count
too. Each map is divided by ``max + 1e-9``.

The erased copies are made per chunk of draws on the perturbation runner; the maps are assembled
afterwards from the boxes (a matrix product of row and column indicators), never from stored images.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from pyxai.engine.checks import check_int
from pyxai.engine.runner import PerturbationRunner
from pyxai.similarity._common import (
    Pooling,
    box_masks,
    check_nonzero,
    check_pair,
    check_pooling,
    cosine,
    embedder,
    erase_boxes,
    out_dtype,
)


def _check_range(value: tuple, name: str) -> tuple[float, float]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and 0 < value[0] <= value[1]):
        raise ValueError(f"{name} must be a pair (low, high) with 0 < low <= high, got {value!r}")
    return float(value[0]), float(value[1])


class PairwiseOcclusion:
    """Pairwise occlusion of two-image similarity (Sammani et al.).

    Args:
        encoder: ``nn.Module`` or callable, images Tensor[N, C, H, W] -> embeddings Tensor[N, D].
        num_erases (int, optional): random erasings per pair. Default: 100
        erase_scale (tuple, optional): erased area fraction range. Default: (0.1, 0.3)
        erase_ratio (tuple, optional): erased box aspect ratio range. Default: (1, 1.5)
        seed (int, optional): seed of the erasing boxes (a CPU ``torch.Generator``); the same seed
            gives the same maps whatever ``batch_size``. Default: 0
        pooling (optional): see :class:`ConditionalOcclusion`. Default: None
        batch_size (int, optional): encoder inputs per forward; None: automatic. Default: None
        show_progress (bool, optional): progress bar. Default: False
    """

    def __init__(self, encoder: Callable, num_erases: int = 100, erase_scale: tuple = (0.1, 0.3),
                 erase_ratio: tuple = (1, 1.5), seed: int = 0, pooling: Pooling = None,
                 batch_size: int | None = None, show_progress: bool = False) -> None:
        if isinstance(num_erases, bool) or not isinstance(num_erases, int) or num_erases < 1:
            raise ValueError(f"num_erases must be a positive int, got {num_erases!r}")
        self.encoder = encoder
        self.num_erases = num_erases
        self.erase_scale = _check_range(erase_scale, "erase_scale")
        if self.erase_scale[1] > 1:
            raise ValueError(f"erase_scale must lie in (0, 1], got {erase_scale!r}")
        self.erase_ratio = _check_range(erase_ratio, "erase_ratio")
        self.seed = check_int(seed, "seed")
        self.pooling = check_pooling(pooling)
        self.batch_size = batch_size
        self.show_progress = show_progress

    def boxes(self, batch: int, size1: tuple[int, int], size2: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The erasing boxes of a call: (Tensor[B, N, 4], Tensor[B, N, 4]) int64 (top, left, h, w)
        for img1 and img2, pair-major, each draw's img1 box drawn before its img2 box."""
        g = torch.Generator().manual_seed(self.seed)
        b1, b2 = [], []
        for _ in range(batch):
            for _ in range(self.num_erases):
                b1 += erase_boxes(1, *size1, self.erase_scale, self.erase_ratio, g)
                b2 += erase_boxes(1, *size2, self.erase_scale, self.erase_ratio, g)
        return (torch.tensor(b1, dtype=torch.int64).reshape(batch, self.num_erases, 4),
                torch.tensor(b2, dtype=torch.int64).reshape(batch, self.num_erases, 4))

    def attribute(self, img1: Tensor, img2: Tensor) -> tuple[Tensor, Tensor]:
        """Maps of both images of each pair.

        Args:
            img1: Tensor[B, C, H1, W1]; img2: Tensor[B, C, H2, W2] (pair ``b`` is row ``b``).

        Returns:
            (Tensor[B, 1, H1, W1], Tensor[B, 1, H2, W2]) in [0, 1], float32 (float64 inputs: float64).
        """
        check_pair(img1, img2, self.encoder)
        b, n = img1.shape[0], self.num_erases
        s1, s2 = tuple(img1.shape[2:]), tuple(img2.shape[2:])
        boxes1, boxes2 = self.boxes(b, s1, s2)
        boxes1, boxes2 = boxes1.to(img1.device), boxes2.to(img1.device)
        f = embedder(self.encoder, self.pooling)
        runner = PerturbationRunner(f, self.batch_size, self.show_progress)
        z1 = check_nonzero(runner.outputs(img1), "encoder(img1)")
        z2 = check_nonzero(runner.outputs(img2), "encoder(img2)")
        base = cosine(z1, z2).double()
        sims = torch.empty(n, b, dtype=torch.float64, device=img1.device)
        first = torch.empty(n, b, dtype=torch.bool, device=img1.device)
        same = s1 == s2

        def erased(img: Tensor, boxes: Tensor, s: int, e: int) -> Tensor:
            rows, cols = box_masks(boxes[:, s:e].transpose(0, 1).reshape(-1, 4), *img.shape[2:])
            m = (rows[:, :, None] & cols[:, None, :]).reshape(e - s, b, 1, *img.shape[2:])
            return torch.where(m, img.new_zeros(()), img[None])  # [e - s, B, C, H, W]

        def make(s: int, e: int) -> Tensor | tuple[Tensor, Tensor]:
            e1, e2 = erased(img1, boxes1, s, e), erased(img2, boxes2, s, e)
            if same:
                return torch.stack([e1, e2], 1).reshape((e - s) * 2 * b, *img1.shape[1:])
            return e1.reshape(-1, *img1.shape[1:]), e2.reshape(-1, *img2.shape[1:])

        def consume(s: int, e: int, v: Tensor) -> None:
            v = v.reshape(e - s, 2, b, -1)
            sims[s:e] = cosine(v[:, 0], v[:, 1]).double()
            first[s:e] = v[:, 0].norm(dim=-1) < v[:, 1].norm(dim=-1)

        if same:
            runner.run(n, make, consume, rows_per_item=2 * b, desc="pairwise occlusion", sample=img1[:1])
        else:  # two images of different sizes cannot share a forward: one forward per image
            def forward(s: int, e: int) -> Tensor:
                x1, x2 = make(s, e)
                return torch.stack([runner.forward(x1), runner.forward(x2)])

            per = max(1, runner.rows_per_forward(img1[:1]) // (2 * b))
            for s in range(0, n, per):
                consume(s, min(n, s + per), forward(s, min(n, s + per)))
        w = torch.softmax(base[None] - sims, dim=0)  # [N, B] over the draws
        maps = []
        for img, boxes, pick in ((img1, boxes1, first), (img2, boxes2, ~first)):
            wn = torch.where(pick, w, 0).T  # [B, N]
            h, wd = img.shape[2:]
            rows, cols = box_masks(boxes.reshape(-1, 4), h, wd)
            rows = rows.reshape(b, n, h).double()
            cols = cols.reshape(b, n, wd).double()
            box_sum = torch.einsum("bnh,bnw->bhw", rows * wn[:, :, None], cols)
            black = (img.sum(1) == 0).double()  # the reference's channel-sum-zero detection
            a = box_sum + black * (wn.sum(1)[:, None, None] - box_sum)
            a = a / (a.flatten(1).max(1).values[:, None, None] + 1e-9)
            maps.append(a[:, None].to(out_dtype(img)))
        return maps[0], maps[1]
