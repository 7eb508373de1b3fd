"""Streaming Score-CAM and SIDU: a per-frame budget of channel masks, the weights carried over.

Score-CAM and SIDU mask the input with every channel of a layer (512 forwards a frame for a
ResNet's last block). In streaming mode each frame runs one forward (fresh activations, so the
masks follow the scene at once) and evaluates only ``masks_per_frame`` channel masks, the next
slice of a round-robin over the channels (:class:`ChannelBudget`). Each channel keeps the model
outputs of its latest evaluation; the map of frame t combines frame t's masks with those outputs:

* Score-CAM: ``w = softmax_k(s(P_k))`` over the channels evaluated so far, ``cam = relu(sum_k w_k
  A_k(t))`` (then pytorch-grad-cam's scaling);
* SIDU: similarity difference to frame t's clean output ``p0(t)`` and uniqueness among the
  evaluated channels' outputs, weighing frame t's binary masks.

A channel's outputs are at most ``ceil(N / masks_per_frame) - 1`` frames old, so on a still scene
the map equals the full method's from frame ``ceil(N / masks_per_frame) - 1`` on (and on every
frame when ``masks_per_frame >= N``); outputs are kept whole (not the target's score), so a
change of target class reuses them.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from pyxai.cam.score_cam import ScoreCAM
from pyxai.cam.sidu import SIDU, MaskedOutputs
from pyxai.engine.checks import check_positive_int
from pyxai.engine.targets import ResolvedTarget

__all__ = ["ChannelBudget", "StreamingSIDU", "StreamingScoreCAM"]


class ChannelBudget:
    """Round-robin schedule of ``per_frame`` channels a frame, and each channel's latest outputs.

    Args:
        per_frame: channels evaluated per frame.
    """

    def __init__(self, per_frame: int) -> None:
        self.per_frame = check_positive_int(per_frame, "masks_per_frame")
        self.reset()

    def reset(self) -> None:
        """Forget every channel's outputs (a new scene or stream)."""
        self._outputs: Tensor | None = None
        self._seen: Tensor | None = None
        self._channels: int | None = None
        self._next = 0

    def select(self, channels: int) -> Tensor:
        """The next ``min(per_frame, channels)`` channel indices, Tensor[K] int64 (CPU)."""
        if self._channels is not None and self._channels != channels:
            raise ValueError(f"the layer has {channels} channels after frames with "
                             f"{self._channels}; call reset() first")
        self._channels = channels
        k = min(self.per_frame, channels)
        idx = (torch.arange(k) + self._next) % channels
        self._next = (self._next + k) % channels
        return idx

    def store(self, idx: Tensor, outputs: Tensor, channels: int) -> tuple[Tensor, Tensor]:
        """Keep ``outputs`` Tensor[K, ...] of channels ``idx``; returns every channel's latest
        outputs Tensor[N, ...] (zeros where never evaluated) and which were, Tensor[N] bool."""
        if self._outputs is None or self._outputs.shape[1:] != outputs.shape[1:]:
            self._outputs = outputs.new_zeros(channels, *outputs.shape[1:])
            self._seen = torch.zeros(channels, dtype=torch.bool, device=outputs.device)
        idx = idx.to(outputs.device, non_blocking=True)
        self._outputs[idx] = outputs.to(self._outputs.dtype)
        self._seen[idx] = True
        return self._outputs, self._seen


def _check_frame(frame: Tensor) -> None:
    if not isinstance(frame, Tensor) or frame.dim() != 4 or frame.shape[0] != 1:
        shape = tuple(frame.shape) if isinstance(frame, Tensor) else type(frame).__name__
        raise ValueError(f"frame must be Tensor[1, C, H, W], got {shape}")


class _BudgetScoreCAM(ScoreCAM):
    """ScoreCAM whose channel weights come from a :class:`ChannelBudget` per target layer."""

    def __init__(self, *args: Any, per_frame: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budgets = [ChannelBudget(per_frame) for _ in self.target_layers]

    def get_cam_weights(self, inputs: Tensor, layer_index: int, target: ResolvedTarget,
                        activations: Tensor, grads: Tensor | None, forward: Callable) -> Tensor:
        n = activations.shape[1]
        budget = self.budgets[layer_index]
        idx = budget.select(n)
        grids = self.channel_grids(inputs, activations[:, idx.to(activations.device)])
        acc = MaskedOutputs(grids.shape[0], None, softmax=False)
        self.run_masks(inputs, grids, forward, acc)
        outs, seen = budget.store(idx, acc.result(), n)
        rows = torch.zeros(n, dtype=torch.int64, device=outs.device)
        scores = target(outs, rows).to(inputs.dtype).masked_fill(~seen, -torch.inf)
        return torch.softmax(scores, dim=-1)[None]


class StreamingScoreCAM:
    """Per-frame streaming Score-CAM (see the module docstring).

    Args:
        model: frame model ``Tensor[B, C, H, W] -> Tensor[B, K]``. Never modified.
        target_layers: as :class:`pyxai.ScoreCAM`.
        masks_per_frame: channel masks evaluated per frame (per layer). Default: 32
        **scorecam_kwargs: :class:`pyxai.ScoreCAM` keywords (``reshape_transform``,
            ``batch_size``, ``backend``).

    Examples::

        >>> live = StreamingScoreCAM(model, [model.layer4[-1]], masks_per_frame=32)
        >>> maps = [live.update(frame[None]) for frame in frames]   # each Tensor[1, 1, H, W]
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 masks_per_frame: int = 32, **scorecam_kwargs: Any) -> None:
        self.cam = _BudgetScoreCAM(model, target_layers, per_frame=masks_per_frame,
                                   **scorecam_kwargs)

    def reset(self) -> None:
        """Forget the channels' outputs (a new scene or stream)."""
        for b in self.cam.budgets:
            b.reset()

    def update(self, frame: Tensor, target: Any = None) -> Tensor:
        """Explain the next ``frame`` Tensor[1, C, H, W]: the map Tensor[1, 1, H, W] in [0, 1]."""
        _check_frame(frame)
        return self.cam.attribute(frame, target)


class StreamingSIDU:
    """Per-frame streaming SIDU (see the module docstring).

    Args:
        model: frame model ``Tensor[B, C, H, W] -> Tensor[B, K]``. Never modified.
        target_layer: as :class:`pyxai.SIDU`.
        masks_per_frame: channel masks evaluated per frame. Default: 32
        **sidu_kwargs: :class:`pyxai.SIDU` keywords (``threshold``, ``sigma``, ``p1``,
            ``softmax``, ``batch_size``, ``backend``...).

    Examples::

        >>> live = StreamingSIDU(model, model.layer4[-1], masks_per_frame=32, softmax=True)
        >>> maps = [live.update(frame[None]) for frame in frames]   # each Tensor[1, 1, H, W]
    """

    def __init__(self, model: nn.Module, target_layer: nn.Module | Sequence[nn.Module] | None = None,
                 masks_per_frame: int = 32, **sidu_kwargs: Any) -> None:
        self.sidu = SIDU(model, target_layer, **sidu_kwargs)
        self.budget = ChannelBudget(masks_per_frame)

    def reset(self) -> None:
        """Forget the channels' outputs (a new scene or stream)."""
        self.budget.reset()

    def update(self, frame: Tensor, target: Any = None) -> Tensor:
        """Explain the next ``frame`` Tensor[1, C, H, W]: the raw SIDU map Tensor[1, 1, H, W]."""
        _check_frame(frame)
        f = self.sidu.features(frame, target)
        n = f.grids.shape[1]
        idx = self.budget.select(n)
        outs = self.sidu.masked_outputs(f, f.grids[0, idx.to(f.grids.device)], len(idx))
        outs, seen = self.budget.store(idx, outs, n)
        return self.sidu.saliency(f, outs[None], seen[None])
