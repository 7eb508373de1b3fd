"""Streaming RISE: a per-frame budget of masks with the map carried across frames.

A full RISE map needs thousands of forwards per frame. In streaming mode each frame evaluates only
``masks_per_frame`` masks, the next slice of one fixed pool of ``n_masks`` masks (cycling), and adds
them to a running :class:`~pyxai.engine.accumulators.MaskSaliency` whose sums decay by ``decay``
per frame:

    S_t = decay * S_{t-1} + sum_{masks of frame t} w_i(frame t) m_i,   N_t = decay * N_{t-1} + K
    map_t = S_t / (N_t * p)

so the map is a weighted mean over the last ``~1 / (1 - decay)`` frames' masks: on a still scene it
converges to the full-pool RISE map, and it follows a moving scene with that lag.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pyxai.engine.accumulators import Accumulator

__all__ = ["StreamingRISE", "decay_merge"]


def decay_merge(running: Accumulator | None, new: Accumulator, decay: float) -> Accumulator:
    """``running * decay + new`` for accumulators of one problem (their ``sum_*`` and ``count``)."""
    if running is None:
        return new
    for name, value in vars(running).items():
        if name.startswith("sum_") or name == "count":
            setattr(running, name, value * decay)
    return running.merge(new)


class StreamingRISE:
    """Per-frame streaming RISE (see the module docstring).

    Args:
        model: frame model ``Tensor[B, C, H, W] -> Tensor[B, K]``.
        masks_per_frame: masks evaluated per frame (K). Default: 64
        decay: weight of the previous frames' sums, in [0, 1). Default: 0.9
        **rise_kwargs: :class:`pyxai.RISE` constructor keywords (``n_masks`` is the pool size,
            default 4000; ``grid_size``, ``p``, ``seed``, ``batch_size``...).

    Examples::

        >>> srise = StreamingRISE(model, masks_per_frame=64)
        >>> maps = [srise.update(frame[None]) for frame in frames]   # each Tensor[1, 1, H, W]
    """

    def __init__(self, model: Any, masks_per_frame: int = 64, decay: float = 0.9,
                 **rise_kwargs: Any) -> None:
        from pyxai.engine.checks import check_positive_int
        from pyxai.perturbation import RISE

        self.masks_per_frame = check_positive_int(masks_per_frame, "masks_per_frame")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        self.decay = float(decay)
        rise_kwargs.setdefault("n_masks", 4000)
        self.rise = RISE(model, **rise_kwargs)
        if self.masks_per_frame > self.rise.n_masks:
            raise ValueError(f"masks_per_frame={masks_per_frame} is more than the pool's "
                             f"n_masks={self.rise.n_masks}")
        self.reset()

    def reset(self) -> None:
        """Forget the running map (a new scene or stream)."""
        self._acc: Accumulator | None = None
        self._next = 0

    def update(self, frame: Tensor, target: Any = None) -> Tensor:
        """Add the next masks evaluated on ``frame`` Tensor[1, C, H, W]; the running map
        Tensor[1, 1, H, W]."""
        if frame.dim() != 4 or frame.shape[0] != 1:
            raise ValueError(f"frame must be Tensor[1, C, H, W], got shape {tuple(frame.shape)}")
        n, k = self.rise.n_masks, self.masks_per_frame
        start = self._next
        stop = min(n, start + k)
        acc = self.rise.accumulate(frame, target, masks=range(start, stop))
        if stop - start < k:  # wrap around the pool
            acc.merge(self.rise.accumulate(frame, target, masks=range(0, k - (stop - start))))
        self._next = (start + k) % n
        if self._acc is not None and self._acc.sum_maps.shape != acc.sum_maps.shape:
            raise ValueError(f"frame of size {tuple(frame.shape[-2:])} after frames of size "
                             f"{tuple(self._acc.sum_maps.shape[-2:])}; call reset() first")
        self._acc = decay_merge(self._acc, acc, self.decay)
        with torch.no_grad():
            return (self._acc.result() / self.rise.p).reshape(1, 1, *frame.shape[-2:])
