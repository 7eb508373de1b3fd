"""Accumulators: what a method sums over perturbations, as small objects that merge.

The runner evaluates perturbations ``[0, n)`` chunk by chunk and hands each chunk's scores to an
accumulator's :meth:`Accumulator.update`. Because an accumulator only *adds* per-perturbation
contributions, the perturbations may be split in any way — chunks of one run, windows of a stream,
shards computed by different workers — and :meth:`Accumulator.merge` of the parts gives the
single-process :meth:`Accumulator.result` exactly (up to floating-point summation order).
"""

from __future__ import annotations

import torch


class Accumulator:
    """Base class. Subclasses hold tensors that are sums over perturbations.

    An accumulator is also the runner's ``consume`` callback: ``acc(start, stop, values)`` is
    ``acc.update(start, stop, values)``.
    """

    def update(self, start: int, stop: int, values: torch.Tensor) -> None:
        """Add the contributions of perturbations ``[start, stop)``.

        Args:
            start, stop: the perturbation indices of this chunk.
            values: Tensor[(stop - start) * rows_per_item] target scores (or the model outputs),
                item-major as the runner produces them.
        """
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        """The method's output from what was added so far."""
        raise NotImplementedError

    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s sums (disjoint perturbations of the same problem) into self; returns self."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for name, value in vars(self).items():
            if name.startswith("sum_") or name == "count":
                theirs = getattr(other, name)
                setattr(self, name, value + theirs.to(value.device) if isinstance(value, torch.Tensor)
                        else value + theirs)
        return self

    def __call__(self, start: int, stop: int, values: torch.Tensor) -> None:
        self.update(start, stop, values)


class ItemScores(Accumulator):
    """The target score of every perturbation and sample, or its drop ``base - score``.

    Sobol keeps the scores of its design rows; Occlusion and FeatureAblation keep the drops
    ``f(x) - f(x perturbed)`` and build their attributions from them at the end.

    Args:
        n_items: number of perturbations.
        like: Tensor[B] whose dtype and device the scores take (the clean scores).
        base: Tensor[B] clean scores to keep drops ``base - score`` instead of scores, or None.

    Attributes:
        sum_scores: Tensor[n_items, B], zero for perturbations not evaluated (yet).
    """

    def __init__(self, n_items: int, like: torch.Tensor, base: torch.Tensor | None = None) -> None:
        self.base = base
        self.sum_scores = like.new_zeros(n_items, like.shape[0])

    def update(self, start: int, stop: int, values: torch.Tensor) -> None:
        v = values.reshape(stop - start, self.sum_scores.shape[1]).to(self.sum_scores.dtype)
        self.sum_scores[start:stop] += v if self.base is None else self.base[None] - v

    def result(self) -> torch.Tensor:
        """Tensor[n_items, B] scores (or drops)."""
        return self.sum_scores


class MaskSaliency(Accumulator):
    """``sum_n w[n, k] * m_n``: masks weighted by the scores they produced (RISE; Score-CAM and
    SIDU weight masks the same way), regenerated on the fly by ``pyxai.ops.weighted_mask_sum``.

    Args:
        grids: Tensor[N, gh, gw] low-resolution masks (validated by the caller).
        offsets: Tensor[N, 2] int64 crop offsets.
        size: (H, W) of the maps.
        canvas: (uh, uw) upsampled size before cropping.
        mode: the masks' upsampling mode (``pyxai.ops.masks.MODES``).
        columns: K, scores per mask (e.g. B samples x classes).
        backend: ops backend.

    Attributes:
        sum_maps: Tensor[K, H, W] the weighted sum so far; ``sum_weights``: Tensor[K] the sum of
            the weights (scores) alone; ``count`` masks added.
    """

    def __init__(self, grids: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int],
                 canvas: tuple[int, int], mode: str, columns: int,
                 backend: str | None = None) -> None:
        self.grids, self.offsets = grids, offsets
        self.size, self.canvas, self.mode, self.backend = size, canvas, mode, backend
        self.columns = columns
        self.sum_maps = grids.new_zeros(columns, *size)
        self.sum_weights = grids.new_zeros(columns)
        self.count = 0

    def update(self, start: int, stop: int, values: torch.Tensor) -> None:
        from pyxai.ops.masks import weighted_mask_sum

        weights = values.reshape(stop - start, self.columns).to(self.grids.dtype)
        self.sum_maps += weighted_mask_sum(
            self.grids[start:stop], weights, self.size, self.offsets[start:stop], self.canvas,
            self.mode, backend=self.backend, validate=False,
        )
        self.sum_weights += weights.sum(0)
        self.count += stop - start

    def result(self) -> torch.Tensor:
        """Tensor[K, H, W]: the mean weighted mask ``sum_maps / count``."""
        return self.sum_maps / max(1, self.count)
