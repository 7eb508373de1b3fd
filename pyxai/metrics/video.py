"""Video causal metrics of the TCSVT STEP paper and their reliability check (SPECS.md section 10.4).

:func:`video_insertion` / :func:`video_deletion` follow
``Spatio-Temporal-Perturbations-for-Video-Attribution:utils/CausalMetric.py`` ``evaluate``: the
saliency volume (optionally average-pooled to ``new_size x new_size`` per frame) orders the
voxels ``T x h x w`` (most salient first, or least first); ``n_steps`` chunks of the order are given
by ``int(linspace(0, V, n_steps + 1))``; insertion starts from the removal baseline (``"fade"``:
zeros; ``"blur"``: every frame blurred with TorchRay's ``imsmooth(sigma=20)``) and puts the clip's
voxels back, deletion starts from the clip and removes them; masks are nearest-upsampled to the
frames. The score of the target is recorded at steps 0..n (``n_steps + 1`` scores) and the AUC is
the trapezoid rule on [0, 1]. ``keep_topk < 1`` shuffles the order after its first
``int(V keep_topk)`` voxels (0: a random order), from a CPU generator of ``seed``.

With ``superpixels`` (labels Tensor[B, T, H, W], e.g. from :func:`video_superpixels`, skimage's
SLIC supervoxels as the paper's scripts compute them), the order is over the (frame, segment)
pairs ranked by the saliency summed inside them (``evaluate_by_superpixel``), ``n_steps`` chunks
of the pairs.

All ``(n_steps + 1) x B`` canvases come from :func:`pyxai.ops.metrics.reveal_by_rank` (each voxel
holds the step it is revealed at) and run through the perturbation runner in full batches. As in
the paper, the model should return probabilities (wrap a logit model with a softmax).

:func:`metric_reliability` is the weighted rank-correlation ``alpha`` of
``test_code/metric_reliability*.py``: given the AUCs ``D[v, m]`` of V videos x M methods (method 0
the random baseline), every video is weighted by how far the random baseline is from the worst
rank, ``w_v = (M - 1 - rank_v(random)) / (M - 1)``, and
``alpha = sum_{u<v} w_u w_v (rho_uv + 1) / (sum_{u<v} w_u w_v + 1e-10) - 1`` with ``rho`` the
Spearman correlation between the videos' AUC vectors (``scipy.stats.spearmanr(D, axis=1)``).
:func:`rank_krippendorff_alpha` is the Krippendorff's alpha (nominal) of the same ranks that the
scripts print beside it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from pyxai.engine.accumulators import ItemScores
from pyxai.engine.checks import check_inputs, check_int
from pyxai.metrics._common import average_ranks, check_finite_tensor, clean_scores
from pyxai.metrics.faithfulness import auc
from pyxai.ops.metrics import reveal_by_rank
from pyxai.perturbation.pyramid import gaussian_blur

REMOVALS = ("fade", "blur")
ORDERS = ("most_first", "least_first")


def _saliency(attributions: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Tensor[B, T, H, W] from Tensor[B, 1, T, H, W] or Tensor[B, T, H, W]."""
    b, _, t, h, w = inputs.shape
    if not isinstance(attributions, torch.Tensor):
        raise TypeError(f"attributions must be a Tensor, got {type(attributions).__name__}")
    if tuple(attributions.shape) == (b, 1, t, h, w):
        attributions = attributions[:, 0]
    if tuple(attributions.shape) != (b, t, h, w):
        raise ValueError(f"attributions of shape {tuple(attributions.shape)} do not match the "
                         f"clips {tuple(inputs.shape)}: expected [B, 1, T, H, W] or [B, T, H, W]")
    check_finite_tensor(attributions, "attributions")
    return attributions.detach().to(device=inputs.device, dtype=inputs.dtype)


def step_ranks(saliency: torch.Tensor, n_steps: int, new_size: int | None, order: str,
               keep_topk: float, seed: int) -> torch.Tensor:
    """The step (0-based) at which each voxel is revealed, Tensor[B, T * H * W] int64.

    Args:
        saliency: Tensor[B, T, H, W].
        n_steps, new_size, order, keep_topk, seed: as :func:`video_insertion`.
    """
    b, t, h, w = saliency.shape
    small = saliency
    if new_size is not None and new_size != h:
        ks = h // new_size
        k = torch.ones(1, 1, ks, ks, dtype=saliency.dtype, device=saliency.device) / (ks * ks)
        small = F.conv2d(saliency.reshape(b * t, 1, h, w), k, stride=ks).reshape(
            b, t, new_size, new_size)
    volume = small[0].numel()
    order_idx = small.reshape(b, -1).argsort(dim=1, descending=order == "most_first", stable=True)
    if keep_topk < 1.0:
        gen = torch.Generator().manual_seed(seed)
        top = int(volume * keep_topk) if keep_topk > 0 else 0
        rest = torch.stack([torch.randperm(volume - top, generator=gen) for _ in range(b)])
        rest = rest.to(order_idx.device)
        # keep_topk = 0: the permutation itself is the order (the reference's random baseline)
        order_idx = rest if top == 0 else torch.cat(
            [order_idx[:, :top], order_idx[:, top:].gather(1, rest)], dim=1)
    ends = torch.as_tensor(np.linspace(0, volume, n_steps + 1).astype(int).tolist(),
                           device=saliency.device)
    pos = torch.arange(volume, device=saliency.device)
    step_of_pos = torch.searchsorted(ends, pos, right=True) - 1  # pos < ends[s] from s = this + 1
    ranks = torch.empty_like(order_idx).scatter_(1, order_idx, step_of_pos.expand(b, -1))
    ranks = ranks.reshape(b, *small.shape[1:]).to(torch.float64)
    if small.shape[-2:] != (h, w):
        ranks = F.interpolate(ranks, size=(h, w), mode="nearest")
    return ranks.round().long().reshape(b, -1)


def superpixel_step_ranks(saliency: torch.Tensor, superpixels: torch.Tensor, n_steps: int,
                          order: str) -> torch.Tensor:
    """The step (0-based) at which each voxel is revealed when whole (frame, segment) pairs are,
    Tensor[B, T * H * W] int64 (TCSVT ``evaluate_by_superpixel``).

    Pairs are listed frame by frame, segment ids ascending, ranked by the saliency summed inside
    them (stable: equal sums keep that order, as the reference's ``sorted``).
    """
    b, t = saliency.shape[:2]
    out = []
    frame = torch.arange(t, device=saliency.device)[:, None, None].expand(saliency.shape[1:])
    for i in range(b):
        lab = superpixels[i].long()
        key = frame * (int(lab.max()) + 1) + lab  # (frame, segment) -> key, sorted as the pairs
        keys, inv = torch.unique(key.reshape(-1), sorted=True, return_inverse=True)
        n_seg = keys.numel()
        if n_seg <= n_steps:
            raise ValueError(f"superpixels: clip {i} has {n_seg} (frame, segment) pairs, not more "
                             f"than n_steps={n_steps}")
        imp = torch.zeros(n_seg, dtype=torch.float64, device=saliency.device)
        imp.index_add_(0, inv, saliency[i].reshape(-1).double())
        pos = torch.empty(n_seg, dtype=torch.long, device=saliency.device)
        ranked = imp.argsort(descending=order == "most_first", stable=True)
        pos[ranked] = torch.arange(n_seg, device=saliency.device)
        ends = torch.as_tensor(np.linspace(0, n_seg, n_steps + 1).astype(int).tolist(),
                               device=saliency.device)
        out.append((torch.searchsorted(ends, pos, right=True) - 1)[inv])
    return torch.stack(out)


def video_superpixels(inputs: torch.Tensor, n_segments: int = 100) -> torch.Tensor:
    """SLIC supervoxels of every clip, as the paper's scripts segment them (skimage ``slic(frames,
    n_segments, sigma=1, slic_zero=True)`` on the ``T x H x W x C`` frames).

    Args:
        inputs: Tensor[B, C, T, H, W] clips with values in [0, 1].
        n_segments: approximate number of supervoxels per clip. Default: 100

    Returns:
        Tensor[B, T, H, W] int64 labels (needs scikit-image: ``pip install scikit-image``).
    """
    try:
        from skimage.segmentation import slic
    except ImportError:
        raise ImportError("video_superpixels needs scikit-image: pip install scikit-image") from None
    x = check_inputs(inputs, ndims=(5,))
    frames = x.detach().permute(0, 2, 3, 4, 1).double().cpu().numpy()
    labels = [slic(f, n_segments=n_segments, sigma=1, slic_zero=True, channel_axis=-1)
              for f in frames]
    return torch.from_numpy(np.stack(labels)).long().to(x.device)


def _causal_metric(insertion: bool, doc: str
                   ) -> Callable[..., torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """:func:`video_insertion` (``insertion``) or :func:`video_deletion`, documented by ``doc``:
    one signature and one body for both modes."""

    def metric(
        forward_func: Callable,
        inputs: torch.Tensor,
        attributions: torch.Tensor,
        target: Any = None,
        n_steps: int = 256,
        substrate: str = "fade",
        new_size: int | None = None,
        order: str = "most_first",
        keep_topk: float = 1.0,
        seed: int = 0,
        superpixels: torch.Tensor | None = None,
        return_curves: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        backend: str | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = check_inputs(inputs, ndims=(5,)).contiguous()
        sal = _saliency(attributions, x)
        b, _, t, h, w = x.shape
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise ValueError(f"n_steps must be an int >= 1, got {n_steps!r}")
        if substrate not in REMOVALS:
            raise ValueError(f"substrate must be one of {REMOVALS}, got {substrate!r}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        if isinstance(keep_topk, bool) or not isinstance(keep_topk, (int, float)) \
                or not 0.0 <= keep_topk <= 1.0:
            raise ValueError(f"keep_topk must be a number in [0, 1], got {keep_topk!r}")
        if new_size is not None:
            check_int(new_size, "new_size")
            if new_size < 1 or h != w or h % new_size:
                raise ValueError(f"new_size={new_size} must divide the frame size, and the frames be "
                                 f"square (got {h} x {w})")
        seed = check_int(seed, "seed")
        if superpixels is None:
            ranks = step_ranks(sal, n_steps, new_size, order, float(keep_topk), seed)
        else:
            if not isinstance(superpixels, torch.Tensor) or tuple(superpixels.shape) != (b, t, h, w) \
                    or superpixels.is_floating_point() or superpixels.dtype == torch.bool:
                got = tuple(superpixels.shape) if isinstance(superpixels, torch.Tensor) else \
                    type(superpixels).__name__
                raise ValueError(f"superpixels must be an integer Tensor[B, T, H, W] = [{b}, {t}, {h}, "
                                 f"{w}] of labels, got {got}")
            if new_size is not None or keep_topk != 1.0:
                raise ValueError("superpixels orders whole segments: new_size and keep_topk do not "
                                 "apply")
            ranks = superpixel_step_ranks(sal, superpixels.to(x.device), n_steps, order)
        if substrate == "fade":
            base = torch.zeros_like(x)
        else:
            frames = x.transpose(1, 2).reshape(b * t, x.shape[1], h, w)
            base = gaussian_blur(frames, 20.0).reshape(b, t, x.shape[1], h, w).transpose(1, 2)
            base = base.contiguous()
        start, finish = (base, x) if insertion else (x, base)
        runner, resolved, clean = clean_scores(forward_func, x, target, batch_size, show_progress)
        acc = ItemScores(n_steps + 1, clean)
        runner.run(n_steps + 1, lambda s, e: reveal_by_rank(start, finish, ranks, s * b, (e - s) * b,
                                                            1, backend=backend),
                   acc, rows_per_item=b, target=resolved,
                   desc="video insertion" if insertion else "video deletion")
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32
        curves = acc.result().T.to(dtype)  # [B, n_steps + 1]
        area = auc(curves)
        return (area, curves) if return_curves else area

    metric.__name__ = metric.__qualname__ = "video_insertion" if insertion else "video_deletion"
    metric.__doc__ = inspect.cleandoc(doc)
    return metric


video_insertion = _causal_metric(True, """
    Insertion AUC of clip attributions (TCSVT ``CausalMetric.evaluate(mode="ins")``); higher is
    better.

    Args:
        forward_func: clip model or callable ``Tensor[R, C, T, H, W] -> Tensor[R, K]`` (the paper
            scores softmax probabilities).
        inputs: Tensor[B, C, T, H, W] clips.
        attributions: Tensor[B, 1, T, H, W] or Tensor[B, T, H, W] saliency volumes.
        target: any target of :mod:`pyxai.engine.targets` (None: the predicted class).
        n_steps: number of steps. Default: 256
        substrate: removal baseline, ``"fade"`` (zeros, the paper's scripts) or ``"blur"``.
        new_size: average-pool the saliency to ``new_size x new_size`` per frame before ranking
            (the paper's ``cm_16``); None: full resolution. Default: None
        order: ``"most_first"`` or ``"least_first"``. Default: "most_first"
        keep_topk: keep the order of the first ``int(V keep_topk)`` voxels, shuffle the rest.
        seed: seed of that shuffle. Default: 0
        superpixels: Tensor[B, T, H, W] integer labels: reveal whole (frame, segment) pairs in the
            order of their summed saliency (the paper's superpixel metric, n_steps = 100 there);
            None: voxels. Default: None
        return_curves: also return the scores. Default: False
        batch_size: model inputs per forward (None: automatic). show_progress: progress bar.
        backend: backend of the canvas op.

    Returns:
        Tensor[B] AUCs; with ``return_curves``, ``(auc, curves Tensor[B, n_steps + 1])``.
    """)

video_deletion = _causal_metric(False, """
    Deletion AUC of clip attributions (TCSVT ``CausalMetric.evaluate(mode="del")``); lower is
    better. Same arguments as :func:`video_insertion`.
    """)


def _check_scores(scores: torch.Tensor) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        raise ValueError("scores must be a Tensor[V, M] (videos x methods)")
    if scores.shape[0] < 3 or scores.shape[1] < 2:
        raise ValueError(f"scores needs at least 3 videos and 2 methods, got {tuple(scores.shape)}")
    check_finite_tensor(scores, "scores")
    return scores.detach().double().cpu()


def method_ranks(scores: torch.Tensor, higher_is_better: bool = True) -> torch.Tensor:
    """Tensor[V, M] int64: each method's rank within its video, 0 = worst (the reference's
    ``sorted(row).index(value)``, ascending for ``higher_is_better``, else descending; ties take
    the first shared rank)."""
    d = _check_scores(scores)
    before = d[:, :, None] < d[:, None, :] if higher_is_better else d[:, :, None] > d[:, None, :]
    return before.sum(1)  # entries sorted before each entry


def rank_krippendorff_alpha(scores: torch.Tensor, higher_is_better: bool = True) -> torch.Tensor:
    """Krippendorff's alpha (nominal metric) of the methods' ranks, videos as coders and methods
    as units, as ``test_code/metric_reliability{2,3}.py`` print it (``KrippendorffAlpha.py``,
    complete data): ``1 - D_o / D_e`` (1 when either is 0).

    Args:
        scores: Tensor[V, M] of a metric's values (V >= 3 videos, M >= 2 methods).
        higher_is_better: the rank direction (see :func:`method_ranks`).

    Returns:
        0-d Tensor float64.
    """
    r = method_ranks(scores, higher_is_better)
    v, m = r.shape
    n = v * m
    vals = torch.unique(r)
    per_unit = (r[:, :, None] == vals).sum(0).double()  # [M, values]: counts in each unit
    d_o = ((v * v - per_unit.square().sum(1)) / (v - 1)).sum() / n
    d_e = (n * n - per_unit.sum(0).square().sum()) / (n * (n - 1))
    if d_o == 0 or d_e == 0:
        return torch.tensor(1.0, dtype=torch.float64)
    return 1 - d_o / d_e


def metric_reliability(scores: torch.Tensor, higher_is_better: bool = True) -> torch.Tensor:
    """TCSVT's reliability ``alpha`` of a metric from the scores of V videos x M methods.

    Args:
        scores: Tensor[V, M] (V >= 3, M >= 2) of a metric's values (e.g. insertion AUCs), column 0
            the random baseline.
        higher_is_better: True for insertion (and insertion minus deletion): methods are ranked
            ascending; False for deletion: descending. Ties take the best shared rank (the
            reference's ``sorted(row).index(value)``).

    Returns:
        0-d Tensor float64 ``alpha`` in [-1, 1] (1: every video ranks the methods alike).
    """
    d = _check_scores(scores)
    v, m = d.shape
    rank = method_ranks(d, higher_is_better)
    weight = (m - 1 - rank[:, 0]).double() / (m - 1)
    r = average_ranks(d)
    r = r - r.mean(1, keepdim=True)
    norm = r.norm(dim=1)
    rho = (r @ r.T) / (norm[:, None] * norm[None, :])  # NaN for a constant row, as scipy
    cross = weight[:, None] * weight[None, :]
    num = torch.triu(cross * (rho + 1), diagonal=1).sum()  # zeroes the lower triangle (NaNs too)
    return num / (torch.triu(cross, diagonal=1).sum() + 1e-10) - 1
