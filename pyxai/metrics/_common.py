"""Helpers shared by the metrics: attribution shapes, explainer calls, targets, statistics."""

from __future__ import annotations

from typing import Any, Callable

import torch

from pyxai.engine.checks import all_finite, check_same_device
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import ResolvedTarget, resolve_target, takes_rows
from pyxai.engine.view import forward_view


def pixel_saliency(attributions: torch.Tensor, inputs: torch.Tensor,
                   name: str = "attributions") -> torch.Tensor:
    """One score per pixel: Tensor[B, P] (P = product of the spatial dims of ``inputs``).

    ``attributions`` may be Tensor[B, *S] (no channel dim), Tensor[B, 1, *S] or Tensor[B, C, *S]
    with the channels of ``inputs`` ([B, C, *S]); channels are summed. Raises ValueError naming
    ``name`` for another shape or NaN/Inf values (reads the values: once per call).
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
    check_finite_tensor(a, name)
    return a.detach().to(inputs.device).sum(1).reshape(b, -1).to(inputs.dtype)


def check_finite_tensor(t: torch.Tensor, name: str) -> None:
    """``t`` must hold no NaN or Inf (integer and bool tensors always pass). One host sync."""
    if (t.is_floating_point() or t.is_complex()) and not all_finite(t):
        raise ValueError(f"{name} contains NaN or Inf values")


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


def clean_scores(
    forward_func: Callable, inputs: torch.Tensor, target: Any, batch_size: int | None,
    show_progress: bool,
) -> tuple[PerturbationRunner, ResolvedTarget, torch.Tensor]:
    """What every model-scoring metric starts with, once per call.

    Checks that ``inputs`` are on the model's device, runs a train-mode model through
    :func:`pyxai.engine.view.forward_view` (its BatchNorm statistics never change; one warning),
    fixes the runner's batch size (measured once), and scores the unperturbed inputs.

    Returns:
        (runner, resolved target of the B samples, clean scores Tensor[B] float64).
    """
    check_same_device(forward_func, inputs)
    runner = PerturbationRunner(forward_view(forward_func), batch_size=batch_size,
                                show_progress=show_progress)
    runner.batch_size = runner.rows_per_forward(inputs[:1])  # measured once per call
    outputs = runner.outputs(inputs)
    resolved = resolve_target(target, outputs)
    return runner, resolved, resolved(outputs).double()


def fixed_target(model: Callable | None, inputs: torch.Tensor, target: Any) -> Any:
    """The target held fixed while an explainer is called on perturbed copies of ``inputs``.

    With the explainer's model known, ``target`` is resolved on its outputs for the unperturbed
    inputs (``None`` becomes the predicted class; bad targets raise here, naming ``target``) and a
    class target is returned as Tensor[B] int64; other forms (scalar outputs, tuples, callables,
    per-sample objects) are returned as given. Without a model, ``target`` is returned as given.
    """
    if model is None:
        return target
    check_same_device(model, inputs)
    with torch.no_grad():
        outputs = forward_view(model)(inputs)
    resolved = resolve_target(target, outputs)
    return resolved.classes if resolved.classes is not None else target


def tile_target(target: Any, copies: int, batch: int) -> Any:
    """``target`` of ``batch`` samples for ``copies`` stacked copies of the batch (row
    ``j * batch + b`` is sample ``b``).

    Per-sample forms (a Tensor[B], a list of B entries, a tuple of B tuples) are repeated; a callable
    ``(outputs, rows)`` gets each row's sample ``rows % batch``; forms shared by every sample (None,
    an int, a tuple of ints, a callable on the outputs only) are returned as they are.
    """
    if copies == 1 or target is None or isinstance(target, int):
        return target
    if isinstance(target, torch.Tensor):
        return target.repeat(copies) if target.dim() == 1 and target.numel() > 1 else target
    if isinstance(target, tuple) and all(isinstance(t, int) for t in target):
        return target
    if isinstance(target, (list, tuple)):
        return list(target) * copies
    if callable(target) and takes_rows(target):
        return _SampleRows(target, batch)
    return target


class _SampleRows:
    """A callable target ``(outputs, rows)`` of ``batch`` samples seen through stacked copies."""

    def __init__(self, fn: Callable, batch: int) -> None:
        self.fn, self.batch = fn, batch

    def __call__(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.fn(outputs, rows % self.batch)


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
