"""Pairwise deletion and insertion of two-image similarity (SPECS §9.9, explain-cl ``evaluation.py``).

RISE's causal metrics (:mod:`pyxai.metrics.faithfulness`) with the score
``cos(f(canvas1), f(canvas2))``: pixels are removed (deletion, substrate 0) or inserted
(insertion, from torchvision's ``gaussian_blur(11, sigma=5)`` of the image) in the order of the
attribution, ``step_px`` per step (RISE's 224 when ``n_steps`` is None). Two modes:

* ``attributions`` a Tensor[B, 1, H, W]: img1 is modified against the fixed condition ``f(img2)``;
* ``attributions`` a pair ``(attr1, attr2)``: both images are modified simultaneously, step by
  step (equal image sizes).

The canvases of every step and pair come from :func:`pyxai.ops.metrics.reveal_by_rank` as items of
the perturbation runner (no step is stored). The curve holds ``n_steps + 1`` scores (after 0 .. n
steps) and the AUC is RISE's trapezoid rule.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from pyxai.engine.runner import PerturbationRunner
from pyxai.metrics._common import pixel_saliency
from pyxai.metrics.faithfulness import Substrate, auc, make_substrate, steps_for
from pyxai.ops.metrics import pixel_ranks, reveal_by_rank
from pyxai.similarity._common import (
    Pooling,
    check_nonzero,
    check_pair,
    check_pooling,
    cosine,
    embedder,
    gaussian_blur,
    out_dtype,
)

__all__ = ["pairwise_deletion", "pairwise_insertion"]


def _substrate(x: Tensor, substrate: Substrate) -> Tensor:
    if isinstance(substrate, str) and substrate == "blur":
        return gaussian_blur(x).contiguous()  # torchvision's gaussian_blur(11, 5), as explain-cl
    return make_substrate(x, substrate)


def _pairwise(encoder: Callable, img1: Tensor, img2: Tensor, attributions, insertion: bool,
              n_steps: int | None, substrate: Substrate, pooling: Pooling, return_curves: bool,
              batch_size: int | None, show_progress: bool) -> Tensor | tuple[Tensor, Tensor]:
    both = isinstance(attributions, (tuple, list))
    check_pair(img1, img2, encoder, same_size=both)
    pooling = check_pooling(pooling)
    if both:
        if len(attributions) != 2:
            raise ValueError("attributions must be a Tensor (img1 against the fixed img2) or a pair "
                             f"(attr1, attr2), got a sequence of {len(attributions)}")
        sals = [pixel_saliency(attributions[0], img1, "attributions[0]"),
                pixel_saliency(attributions[1], img2, "attributions[1]")]
        imgs = [img1, img2]
    else:
        sals, imgs = [pixel_saliency(attributions, img1)], [img1]
    b = img1.shape[0]
    n, step_px = steps_for(sals[0].shape[1], n_steps)
    f = embedder(encoder, pooling)
    runner = PerturbationRunner(f, batch_size, show_progress)
    cond = None if both else check_nonzero(runner.outputs(img2), "encoder(img2)")
    starts, finishes, ranks = [], [], []
    for x, s in zip(imgs, sals):
        x = x.contiguous()
        sub = _substrate(x, substrate)
        starts.append(sub if insertion else x)
        finishes.append(x if insertion else sub)
        ranks.append(pixel_ranks(s))
    k = len(imgs)
    curves = torch.empty(n + 1, b, dtype=torch.float64, device=img1.device)

    def make(s: int, e: int) -> Tensor:
        c = [reveal_by_rank(st, fi, r, s * b, (e - s) * b, step_px).reshape(e - s, 1, b, *st.shape[1:])
             for st, fi, r in zip(starts, finishes, ranks)]
        return torch.cat(c, 1).reshape((e - s) * k * b, *img1.shape[1:])

    def consume(s: int, e: int, v: Tensor) -> None:
        v = v.reshape(e - s, k, b, -1)
        other = v[:, 1] if both else cond[None]
        curves[s:e] = cosine(v[:, 0], other).double()

    runner.run(n + 1, make, consume, rows_per_item=k * b, desc="pairwise " +
               ("insertion" if insertion else "deletion"), sample=img1[:1])
    curves = curves.T.to(out_dtype(img1))
    area = auc(curves)
    return (area, curves) if return_curves else area


def pairwise_deletion(encoder: Callable, img1: Tensor, img2: Tensor, attributions: Tensor | tuple,
                      n_steps: int | None = None, substrate: Substrate = "zeros", pooling: Pooling = None,
                      return_curves: bool = False, batch_size: int | None = None,
                      show_progress: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Pairwise deletion AUC: remove the most important pixels first; lower is better.

    Args:
        encoder: ``nn.Module`` or callable, images Tensor[N, C, H, W] -> embeddings Tensor[N, D].
        img1, img2: Tensor[B, C, H, W] pairs.
        attributions: Tensor[B, 1, H, W] (or [B, C, H, W] / [B, H, W]) map of img1 — img1 is
            modified against the fixed condition img2 — or a pair ``(attr1, attr2)`` — both
            modified at once (equal image sizes).
        n_steps: steps; None = RISE's 224 pixels per step. Default: None
        substrate: what deleted pixels become ("zeros", "blur", "mean", a number, a Tensor).
            Default: "zeros"
        pooling: see :mod:`pyxai.similarity`. Default: None
        return_curves: also return Tensor[B, n_steps + 1] scores. Default: False
        batch_size: encoder inputs per forward. Default: None
        show_progress: progress bar. Default: False

    Returns:
        Tensor[B] AUCs (and the curves with ``return_curves``).

    Examples::

        >>> m1, m2 = pyxai.similarity.ConditionalOcclusion(enc).attribute(x1, x2)
        >>> pyxai.metrics.pairwise_deletion(enc, x1, x2, (m1, m2))       # Tensor[B]
    """
    return _pairwise(encoder, img1, img2, attributions, False, n_steps, substrate, pooling,
                     return_curves, batch_size, show_progress)


def pairwise_insertion(encoder: Callable, img1: Tensor, img2: Tensor, attributions: Tensor | tuple,
                       n_steps: int | None = None, substrate: Substrate = "blur", pooling: Pooling = None,
                       return_curves: bool = False, batch_size: int | None = None,
                       show_progress: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Pairwise insertion AUC: start from the substrate (default torchvision's
    ``gaussian_blur(11, 5)`` of each image) and insert the most important pixels first; higher is
    better. Arguments as :func:`pairwise_deletion`."""
    return _pairwise(encoder, img1, img2, attributions, True, n_steps, substrate, pooling,
                     return_curves, batch_size, show_progress)
