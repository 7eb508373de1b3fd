"""Faithfulness metrics: deletion and insertion (RISE's causal metrics) and MuFidelity.

Deletion / insertion follow ``eclique/RISE:evaluation.py`` ``CausalMetric`` (SPECS §1.6): pixels
are ordered by attribution (most important first); deletion starts from the image and replaces
``step_px`` pixels per step (all channels) with a substrate, insertion starts from the substrate
(RISE: a blurred copy) and puts the image's pixels back. The score of the target is recorded before
every step and once more at the end (``n_steps + 1`` scores), and the AUC is the trapezoid rule on
[0, 1]: ``(sum(s) - s[0]/2 - s[-1]/2) / n_steps``. The canvases come from
:func:`pyxai.ops.metrics.reveal_by_rank` (one sort, every step and image as items of the
perturbation runner), so the model runs on exactly ``(n_steps + 1) * B`` inputs in full batches.

Every metric here scores the unperturbed inputs first (where ``target`` is resolved by
:func:`pyxai.engine.targets.resolve_target`), then streams its perturbations through the runner
into an accumulator (:class:`CausalCurves`, :class:`FidelityScores`): disjoint shards of steps or
subsets merge into the single-run result. A model in training mode runs on a
:class:`pyxai.engine.view.ModelView` (batch statistics; its BatchNorm statistics never change).

The model's outputs are used as they are: RISE scores class *probabilities*, so pass a model that
ends with a softmax (e.g. ``lambda x: model(x).softmax(1)``) to reproduce its numbers.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Union

import torch
import torch.nn.functional as F

from pyxai.engine.accumulators import ItemScores
from pyxai.engine.checks import check_finite, check_inputs, check_int, expand_like
from pyxai.metrics._common import check_finite_tensor, clean_scores, pearson, pixel_saliency
from pyxai.ops.masks import check_grids, upsample_blend, upsample_masks
from pyxai.ops.metrics import pixel_ranks, reveal_by_rank

#: RISE's pixels per step for single images (``CausalMetric.single_run``).
RISE_STEP_PX = 224

Substrate = Union[str, float, torch.Tensor]  # not `|`: evaluated at import (Python 3.9)


def rise_blur_weights(klen: int = 11, sigma: float = 5.0, truncate: float = 4.0) -> torch.Tensor:
    """The 1-D weights of RISE's ``gkern(klen, sigma)`` (float64, sums to 1).

    RISE builds its kernel as ``scipy.ndimage.gaussian_filter`` applied to an 11x11 delta with
    scipy's default ``mode="reflect"`` (half-sample mirror): the Gaussian's tails are folded back
    into the window, giving a nearly flat kernel (not a truncated, renormalised Gaussian). It is
    separable: the 2-D kernel is ``outer(w, w)``. Computed here in torch; tests check it against
    scipy.
    """
    radius = int(truncate * sigma + 0.5)
    offs = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * offs.square() / sigma**2)
    g = g / g.sum()
    centre = klen // 2
    w = torch.zeros(klen, dtype=torch.float64)
    for i in range(klen):
        j = (i + offs.long()) % (2 * klen)  # scipy 'reflect': period 2n, d c b a | a b c d
        j = torch.where(j >= klen, 2 * klen - 1 - j, j)
        w[i] = g[j == centre].sum()
    return w


def rise_blur(inputs: torch.Tensor, klen: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """RISE's insertion substrate: each channel convolved with ``gkern(klen, sigma)``, zero padding.

    Args:
        inputs: Tensor[B, C, H, W].

    Returns:
        Tensor[B, C, H, W] of the inputs' dtype.
    """
    if inputs.dim() != 4:
        raise ValueError(f"substrate 'blur' needs Tensor[B, C, H, W] inputs, got {tuple(inputs.shape)}")
    w = rise_blur_weights(klen, sigma).to(dtype=inputs.dtype, device=inputs.device)
    k2 = torch.outer(w, w)[None, None].expand(inputs.shape[1], 1, klen, klen)
    return F.conv2d(inputs, k2, padding=klen // 2, groups=inputs.shape[1])


def make_substrate(inputs: torch.Tensor, substrate: Substrate) -> torch.Tensor:
    """The substrate canvas, a Tensor shaped like ``inputs`` (contiguous).

    ``"zeros"`` (0, RISE's deletion), ``"blur"`` (:func:`rise_blur`, RISE's insertion), ``"mean"``
    (each image's per-channel mean), a number, or a Tensor broadcastable to ``inputs``.
    """
    if isinstance(substrate, str):
        if substrate == "zeros":
            return torch.zeros_like(inputs)
        if substrate == "blur":
            return rise_blur(inputs)
        if substrate == "mean":
            dims = tuple(range(2, inputs.dim()))
            return inputs.mean(dims, keepdim=True).expand_as(inputs).contiguous()
        raise ValueError(f"substrate must be 'zeros', 'blur', 'mean', a number or a Tensor, "
                         f"got {substrate!r}")
    if isinstance(substrate, bool):
        raise TypeError("substrate must be 'zeros', 'blur', 'mean', a number or a Tensor")
    check_finite(substrate, "substrate")
    return expand_like(substrate, inputs, "substrate", "inputs").contiguous()


def steps_for(n_pixels: int, n_steps: int | None) -> tuple[int, int]:
    """(n_steps, step_px): RISE's 224 pixels per step when ``n_steps`` is None, else
    ``step_px = ceil(P / n_steps)`` (the last steps may already show every pixel)."""
    if n_steps is None:
        return math.ceil(n_pixels / RISE_STEP_PX), RISE_STEP_PX
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be an int >= 1 or None, got {n_steps!r}")
    return n_steps, math.ceil(n_pixels / n_steps)


def auc(curves: torch.Tensor) -> torch.Tensor:
    """Trapezoid area on [0, 1] of Tensor[B, n + 1] curves (RISE's ``auc``) -> Tensor[B]."""
    n = curves.shape[-1] - 1
    if n < 1:
        raise ValueError("a curve needs at least 2 points")
    return (curves.sum(-1) - curves[..., 0] / 2 - curves[..., -1] / 2) / n


class CausalCurves(ItemScores):
    """The deletion / insertion scores of a batch: item ``s - 1`` holds the scores after ``s``
    steps (``s = 1..n_steps``); the clean scores (step 0) are given.

    Args:
        clean: Tensor[B] float64 scores of the unperturbed inputs.
        n_steps: number of steps (items).
        insertion: the items are an insertion run backwards (see :func:`_causal`): flip the curves.
    """

    def __init__(self, clean: torch.Tensor, n_steps: int, insertion: bool) -> None:
        super().__init__(n_steps, clean)
        self.clean, self.insertion = clean, insertion

    def result(self) -> torch.Tensor:
        """Tensor[B, n_steps + 1] float64: the score after 0, 1, ..., n_steps steps."""
        curves = torch.cat([self.clean[None], self.sum_scores]).T
        return curves.flip(1) if self.insertion else curves


def _causal(
    forward_func: Callable, inputs: torch.Tensor, attributions: torch.Tensor, target: Any,
    n_steps: int | None, substrate: Substrate, insertion: bool, return_curves: bool,
    batch_size: int | None, show_progress: bool, backend: str | None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    check_inputs(inputs)
    sal = pixel_saliency(attributions, inputs)
    b, p = sal.shape
    n, step_px = steps_for(p, n_steps)
    sub = make_substrate(inputs, substrate)
    ranks = pixel_ranks(sal)
    if insertion:
        # Insertion run backwards is a deletion of the image by the substrate in reverse order:
        # step n - j shows the image where rank < (n - j) * step_px, i.e. the substrate where
        # n * step_px - 1 - rank < j * step_px. So step 0 is always the clean image.
        ranks = n * step_px - 1 - ranks
    x = inputs.contiguous()
    runner, resolved, clean = clean_scores(forward_func, x, target, batch_size, show_progress)
    acc = CausalCurves(clean, n, insertion)
    # item s (step s + 1) is canvas rows (s + 1) * B ... (s + 2) * B - 1 of reveal_by_rank
    runner.run(n, lambda s, e: reveal_by_rank(x, sub, ranks, (s + 1) * b, (e - s) * b, step_px,
                                              backend=backend),
               acc, rows_per_item=b, target=resolved, desc="insertion" if insertion else "deletion")
    dtype = inputs.dtype if inputs.dtype == torch.float64 else torch.float32
    curves = acc.result().to(dtype)
    area = auc(curves)
    return (area, curves) if return_curves else area


def deletion(
    forward_func: Callable,
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    target: Any = None,
    n_steps: int | None = None,
    substrate: Substrate = "zeros",
    return_curves: bool = False,
    batch_size: int | None = None,
    show_progress: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Deletion AUC (RISE): remove the most important pixels first; lower is better.

    Args:
        forward_func: model or callable, Tensor[R, C, H, W] -> Tensor[R, K] scores (RISE uses
            probabilities: wrap the model with a softmax to match its numbers).
        inputs: Tensor[B, C, H, W] (or Tensor[B, C, *S]; every spatial position is a "pixel").
        attributions: Tensor[B, 1, H, W], Tensor[B, C, H, W] or Tensor[B, H, W]; channels are
            summed to rank pixels. Ties keep the lower flat index first.
        target: any target of :mod:`pyxai.engine.targets` (int, sequence, Tensor[B], tuple,
            target objects, a callable ``(outputs)`` or ``(outputs, rows)`` with ``rows`` the
            sample of each output row) or None (the predicted class on the unperturbed inputs, as
            RISE). Default: None
        n_steps: number of steps; None = RISE's 224 pixels per step, ``ceil(H*W / 224)`` steps.
            Otherwise ``ceil(H*W / n_steps)`` pixels per step. Default: None
        substrate: what deleted pixels become: "zeros" (RISE), "blur", "mean" (per-image channel
            means), a number or a Tensor broadcastable to inputs. Default: "zeros"
        return_curves: also return the scores. Default: False
        batch_size: model inputs per forward, rounded down to whole steps of B inputs (at
            least one step); None: automatic, measured once per call. Default: None
        show_progress: progress bar. Default: False
        backend: backend of the canvas op ("auto" | "native" | "reference"). Default: None

    Returns:
        Tensor[B] AUCs; with ``return_curves``, ``(auc, curves)`` where curves is
        Tensor[B, n_steps + 1] (score after 0, 1, ..., n_steps steps).

    Examples::

        >>> probs = lambda x: model(x).softmax(1)
        >>> pyxai.metrics.deletion(probs, x, attr)          # Tensor[B]
    """
    return _causal(forward_func, inputs, attributions, target, n_steps, substrate, False,
                   return_curves, batch_size, show_progress, backend)


def insertion(
    forward_func: Callable,
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    target: Any = None,
    n_steps: int | None = None,
    substrate: Substrate = "blur",
    return_curves: bool = False,
    batch_size: int | None = None,
    show_progress: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Insertion AUC (RISE): start from the substrate and insert the most important pixels first;
    higher is better.

    Same arguments as :func:`deletion`; the default substrate is "blur": RISE's exact 11x11
    folded-Gaussian kernel (sigma 5, :func:`rise_blur_weights`) with zero padding. The curve's
    first score is on the substrate, its last on the unperturbed image.

    Returns:
        Tensor[B] AUCs (and Tensor[B, n_steps + 1] curves with ``return_curves``).
    """
    return _causal(forward_func, inputs, attributions, target, n_steps, substrate, True,
                   return_curves, batch_size, show_progress, backend)


def mu_fidelity(
    forward_func: Callable,
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    target: Any = None,
    grid_size: int | None = 9,
    subset_percent: float = 0.2,
    n_samples: int = 128,
    baseline: float | torch.Tensor = 0.0,
    seed: int = 0,
    masks: torch.Tensor | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
    backend: str | None = None,
) -> torch.Tensor:
    """MuFidelity (Bhatt et al. 2020): Pearson correlation, over random subsets S of the image,
    between the attribution mass of S and the output drop when S is set to the baseline.

    Semantics of Xplique's ``MuFidelity`` (per image instead of Xplique's mean over images): the
    subsets are cells of a ``grid_size x grid_size`` grid, each removed independently with
    probability ``subset_percent``, upsampled to the image with torch's ``nearest`` rule (Xplique
    resizes with TF's half-pixel nearest: cell borders may differ by one pixel); the same subsets
    are used for every image. ``grid_size=None`` removes single pixels (Quantus'
    ``FaithfulnessCorrelation`` works on pixels too, but removes exactly ``subset_size`` pixels,
    drawn per image; pass those subsets as ``masks`` to reproduce it exactly).
    ``drop = f(x)[t] - f(x_S)[t]``, ``mass = sum of attributions over S`` (channels summed).

    Args:
        forward_func: model or callable, Tensor[R, C, H, W] -> Tensor[R, K].
        inputs: Tensor[B, C, H, W].
        attributions: Tensor[B, 1 or C, H, W] or Tensor[B, H, W].
        target: as :func:`deletion`. Default: None
        grid_size: cells per side, or None for pixels. Default: 9
        subset_percent: probability that a cell is removed, in (0, 1). Default: 0.2
        n_samples: number of random subsets. Default: 128
        baseline: value of removed pixels: a number or a Tensor broadcastable to inputs.
            Default: 0.0
        seed: seed of the subsets (CPU generator; same seed, same subsets on every device).
            Default: 0
        masks: explicit subsets instead of random ones: Tensor[N, gh, gw] (bool or 0/1, 1 =
            removed), upsampled like the grid; overrides grid_size, subset_percent, n_samples
            and seed. Default: None
        batch_size: model inputs per forward, rounded down to whole subsets of B inputs (at
            least one subset); None: automatic, measured once per call. Default: None
        show_progress: progress bar. Default: False
        backend: backend of the mask ops. Default: None

    Returns:
        Tensor[B] correlations (NaN where the drops or the masses are constant).
    """
    check_inputs(inputs, ndims=(4,))
    sal = pixel_saliency(attributions, inputs)
    check_finite(baseline, "baseline")
    b, _, h, w = inputs.shape
    dt, dev = inputs.dtype, inputs.device
    if masks is None:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
        if not 0.0 < float(subset_percent) < 1.0:
            raise ValueError(f"subset_percent must lie in (0, 1), got {subset_percent!r}")
        if grid_size is None:
            g = (h, w)
        elif isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 1:
            raise ValueError(f"grid_size must be a positive int or None, got {grid_size!r}")
        else:
            g = (grid_size, grid_size)
        gen = torch.Generator().manual_seed(check_int(seed, "seed"))
        removed = torch.rand(n_samples, *g, generator=gen, dtype=torch.float64) <= subset_percent
    else:
        if not isinstance(masks, torch.Tensor) or masks.dim() != 3 or masks.shape[0] < 2:
            raise ValueError("masks must be a Tensor[N >= 2, gh, gw] of removed cells")
        removed = masks.detach().cpu()
        check_finite_tensor(removed, "masks")
        if not bool(((removed == 0) | (removed == 1)).all()):
            raise ValueError("masks must hold 0/1 (or bool) values: 1 = removed")
        removed = removed != 0
    keep_cpu = (~removed).to(dt)
    check_grids(keep_cpu, None, (h, w), mode="nearest")  # once, on the CPU: chunks skip it
    keep = keep_cpu.to(dev)
    n, gh, gw = keep.shape
    mass = subset_mass(sal, keep, (h, w), backend)
    x = inputs.contiguous()
    base = expand_like(baseline, x, "baseline")  # once: a number would become a tensor per chunk
    runner, resolved, clean = clean_scores(forward_func, x, target, batch_size, show_progress)
    acc = FidelityScores(clean, mass)
    runner.run(n, lambda s, e: upsample_blend(x, keep[s:e], baseline=base, mode="nearest",
                                              backend=backend, validate=False),
               acc, rows_per_item=b, target=resolved, desc="mu_fidelity")
    return acc.result().to(dt if dt == torch.float64 else torch.float32)


def subset_mass(saliency: torch.Tensor, keep: torch.Tensor, size: tuple[int, int],
                backend: str | None = None) -> torch.Tensor:
    """The attribution mass of every removed subset: Tensor[N, B].

    Args:
        saliency: Tensor[B, H * W] one score per pixel.
        keep: Tensor[N, gh, gw] cells kept (1) or removed (0), upsampled to ``size`` with the
            ``nearest`` rule as the perturbed inputs are.
        size: (H, W).
    """
    n, gh, gw = keep.shape
    cell_ids = torch.arange(gh * gw, dtype=keep.dtype, device=keep.device).reshape(1, gh, gw)
    cell = upsample_masks(cell_ids, size, mode="nearest", backend=backend,
                          validate=False).round().long()  # cell_ids is finite by construction
    mass_cell = saliency.new_zeros(saliency.shape[0], gh * gw).index_add_(1, cell.reshape(-1),
                                                                          saliency)
    return (1 - keep).reshape(n, -1).to(saliency.dtype) @ mass_cell.T


class FidelityScores(ItemScores):
    """MuFidelity's output drops ``f(x)[t] - f(x_S)[t]`` per subset (item) and image.

    Args:
        clean: Tensor[B] float64 clean scores.
        mass: Tensor[N, B] attribution mass of every subset (:func:`subset_mass`).
    """

    def __init__(self, clean: torch.Tensor, mass: torch.Tensor) -> None:
        super().__init__(mass.shape[0], clean, base=clean)
        self.mass = mass

    def result(self) -> torch.Tensor:
        """Tensor[B] float64: Pearson correlation of mass and drop over the subsets, per image."""
        return pearson(self.mass.T, self.sum_scores.T)
