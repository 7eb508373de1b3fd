"""CAM targets: pytorch-grad-cam's per-sample target objects, ints, and pyxai's target forms.

A :class:`Scorer` maps model outputs of rows belonging to samples ``rows_b`` to one score per row.
pytorch-grad-cam's ``ClassifierOutputTarget(c)`` (and plain ints) become class indices, so the
scores are gathered in one op; any other per-sample callable is applied row by row, as
pytorch-grad-cam does.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from pyxai.engine.targets import resolve_target


def _as_index(t: Any) -> int | None:
    if isinstance(t, bool):
        return None
    if isinstance(t, int):
        return t
    if isinstance(t, torch.Tensor) and t.numel() == 1 and not t.is_floating_point():
        return int(t.item())
    if type(t).__name__ == "ClassifierOutputTarget" and isinstance(getattr(t, "category", None),
                                                                   int):
        return t.category
    return None


class Scorer:
    """One score per output row. Build with :meth:`resolve`."""

    def __init__(self, index: torch.Tensor | None = None, per_sample: list | None = None,
                 batch: Callable | None = None) -> None:
        self.index, self.per_sample, self.batch = index, per_sample, batch

    @classmethod
    def resolve(cls, target: Any, outputs: torch.Tensor) -> Scorer:
        """``target`` against the clean ``outputs`` (Tensor[B, ...]) of a batch of B samples.

        Forms: None (argmax), int, sequence/Tensor of ints, a list of B pytorch-grad-cam target
        objects (callables on one sample's output) or ints, a callable ``outputs -> Tensor[B]``.
        """
        b = outputs.shape[0]
        if isinstance(target, (list, tuple)) and any(
            callable(t) and not isinstance(t, torch.Tensor) for t in target
        ):
            if len(target) != b:
                raise ValueError(f"targets has {len(target)} entries but the batch has {b} samples")
            idx = [_as_index(t) for t in target]
            if all(i is not None for i in idx):
                return cls(index=resolve_target(idx, outputs))
            return cls(per_sample=list(target))
        if isinstance(target, (list, tuple)):
            idx = [_as_index(t) for t in target]
            if any(i is None for i in idx):
                raise TypeError("targets must be ints, target objects (callables) or None")
            target = idx
        elif target is not None and not callable(target) and _as_index(target) is not None:
            target = _as_index(target)
        r = resolve_target(target, outputs)
        if isinstance(r, torch.Tensor):
            return cls(index=r)
        return cls(batch=r)

    def __call__(self, outputs: torch.Tensor, rows_b: torch.Tensor) -> torch.Tensor:
        """Scores Tensor[R] of ``outputs`` (R rows); row r belongs to sample ``rows_b[r]``."""
        if self.index is not None:
            idx = self.index.to(outputs.device)[rows_b.to(outputs.device)]
            return outputs.gather(1, idx[:, None]).squeeze(1)
        if self.per_sample is not None:
            scores = [self.per_sample[b](outputs[r]) for r, b in enumerate(rows_b.tolist())]
            return torch.stack([torch.as_tensor(s).reshape(()) for s in scores])
        s = self.batch(outputs)
        if not isinstance(s, torch.Tensor) or s.numel() != outputs.shape[0]:
            raise ValueError("a callable target must return one score per output row")
        return s.reshape(-1)
