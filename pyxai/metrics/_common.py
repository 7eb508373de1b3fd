"""Helpers shared by the metrics: attribution shapes, explainer calls, target gathering, statistics."""

from __future__ import annotations

from typing import Any, Callable

import torch

from pyxai.engine.targets import resolve_target


def pixel_saliency(attributions: torch.Tensor, inputs: torch.Tensor,
                   name: str = "attributions") -> torch.Tensor:
    """One score per pixel: Tensor[B, P] (P = product of the spatial dims of ``inputs``).

    ``attributions`` may be Tensor[B, *S] (no channel dim), Tensor[B, 1, *S] or Tensor[B, C, *S]
    with the channels of ``inputs`` ([B, C, *S]); channels are summed.
    """
    if not isinstance(attributions, torch.Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(attributions).__name__}")
    b, c, spatial = inputs.shape[0], inputs.shape[1], tuple(inputs.shape[2:])
    shape = tuple(attributions.shape)
    if shape == (b, *spatial):
        a = attributions[:, None]
    elif shape in ((b, 1, *spatial), (b, c, *spatial)):
        a = attributions
    else:
        raise ValueError(
            f"{name} of shape {shape} does not match inputs {tuple(inputs.shape)}: expected "
            f"[B, *S], [B, 1, *S] or [B, C, *S] with B={b}, C={c}, S={spatial}"
        )
    if not torch.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return a.to(inputs.device).sum(1).reshape(b, -1).to(inputs.dtype)


def explain(explainer: Any, inputs: torch.Tensor, target: Any) -> torch.Tensor:
    """Run a pyxai explainer (``.attribute(inputs, target=...)``) or a ``(inputs, target)`` callable."""
    if hasattr(explainer, "attribute"):
        out = explainer.attribute(inputs, target=target)
    elif callable(explainer):
        out = explainer(inputs, target)
    else:
        raise TypeError("explainer must have .attribute(inputs, target=...) or be a callable "
                        f"(inputs, target) -> attributions, got {type(explainer).__name__}")
    if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != inputs.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"explainer returned {got} for {inputs.shape[0]} inputs; it must return "
                         "a Tensor with one row per input")
    return out


def explainer_model(explainer: Any) -> Callable | None:
    """The model behind an explainer (``forward_func`` or ``model`` attribute), if it has one."""
    for attr in ("forward_func", "model"):
        m = getattr(explainer, attr, None)
        if callable(m):
            return m
    return None


def repeat_target(target: Any, times: int) -> Any:
    """Target for ``times`` stacked copies of the batch (block-major rows)."""
    if isinstance(target, torch.Tensor) and target.dim() == 1 and times > 1:
        return target.repeat(times)
    if isinstance(target, (list, tuple)) and times > 1:
        return list(target) * times
    return target


class ScoreGatherer:
    """Collects target scores of model outputs whose row ``i`` belongs to image ``i % B``.

    The first ``B`` rows must be the unperturbed images: with ``target=None`` their argmax is the
    target (so no extra forward is needed), and a per-image target is checked against them.
    """

    def __init__(self, target: Any, batch: int, n_rows: int, device: torch.device) -> None:
        self.raw_target = target
        self.target: torch.Tensor | Callable | None = None
        if callable(target) and not isinstance(target, torch.Tensor):
            self.target = target
        self.b = batch
        self.scores = torch.empty(n_rows, dtype=torch.float64, device=device)
        self.pending: list[tuple[int, torch.Tensor]] = []

    def _select(self, start: int, out: torch.Tensor) -> torch.Tensor:
        if callable(self.target) and not isinstance(self.target, torch.Tensor):
            s = self.target(out)
            if not isinstance(s, torch.Tensor) or s.numel() != out.shape[0]:
                raise ValueError("a callable target must return one score per output row")
            return s.reshape(-1)
        img = torch.arange(start, start + out.shape[0], device=out.device) % self.b
        return out.gather(1, self.target.to(out.device)[img][:, None]).squeeze(1)

    def __call__(self, start: int, stop: int, out: torch.Tensor) -> None:
        if self.target is None:
            self.pending.append((start, out))
            have = sum(o.shape[0] for _, o in self.pending)
            if have < self.b:
                return
            clean = torch.cat([o for _, o in self.pending])[: self.b]
            self.target = resolve_target(self.raw_target, clean)
            pending, self.pending = self.pending, []
            for s, o in pending:
                self.scores[s : s + o.shape[0]] = self._select(s, o).double()
            return
        self.scores[start:stop] = self._select(start, out).double()


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation of Tensor[R, N] pairs (float64; NaN where a row is constant)."""
    a = a.double() - a.double().mean(1, keepdim=True)
    b = b.double() - b.double().mean(1, keepdim=True)
    den = (a.square().sum(1) * b.square().sum(1)).sqrt()
    num = (a * b).sum(1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Row-wise ranks (1-based, ties get their average rank, as ``scipy.stats.rankdata``)."""
    out = torch.empty_like(x, dtype=torch.float64)
    for i, row in enumerate(x):
        vals, inv, counts = torch.unique(row, sorted=True, return_inverse=True, return_counts=True)
        end = counts.cumsum(0).double()
        out[i] = (end - (counts.double() - 1) / 2)[inv]
    return out


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Spearman rank correlation of Tensor[R, N] pairs (average ranks for ties)."""
    return pearson(average_ranks(a), average_ranks(b))
