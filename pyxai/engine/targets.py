"""Target resolution shared by every explainer and metric.

A ``target`` is one of:

* ``int`` — the same class for every sample;
* a sequence of ``int`` or a ``Tensor[B]`` — one class per sample;
* a callable ``outputs -> Tensor[B]`` — any scalar score per sample (similarity models,
  detectors, custom scores); it receives the model outputs of a batch;
* ``None`` — the model's predicted class (argmax of the outputs on the unperturbed inputs).
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import torch

Target = Union[None, int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def resolve_target(target: Target, outputs: torch.Tensor) -> torch.Tensor | Callable:
    """Turn ``target`` into a ``Tensor[B]`` of class indices (or keep a callable).

    Args:
        target: see the module docstring.
        outputs: Tensor[B, K] model outputs on the unperturbed inputs.

    Returns:
        Tensor[B] int64 on ``outputs.device``, or the callable unchanged.

    Raises:
        ValueError: a class index outside ``[0, K)`` or a per-sample target of the wrong length.
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        return target
    if outputs.dim() != 2:
        raise ValueError(
            "target must be a callable when the model output is not Tensor[B, K] "
            f"(got output shape {tuple(outputs.shape)})"
        )
    b, k = outputs.shape
    if target is None:
        return outputs.argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError("target must be an int, a sequence of ints, a Tensor[B] or a callable")
    if isinstance(target, int):
        idx = torch.full((b,), target, dtype=torch.int64, device=outputs.device)
    else:
        try:
            idx = torch.as_tensor(target, device=outputs.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                "target must be an int, a sequence of ints, a Tensor[B] or a callable, "
                f"got {type(target).__name__}"
            ) from None
        if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got dtype {idx.dtype}")
        idx = idx.long().reshape(-1)
        if idx.numel() == 1:
            idx = idx.expand(b).clone()
        elif idx.numel() != b:
            raise ValueError(f"target has {idx.numel()} entries but the batch has {b} samples")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= k):
        raise ValueError(
            f"target {idx.tolist() if idx.numel() <= 16 else '...'} out of range for a model "
            f"with {k} outputs"
        )
    return idx


def select_scores(
    outputs: torch.Tensor, target: torch.Tensor | Callable, repeat: int = 1
) -> torch.Tensor:
    """Score of each row of ``outputs`` for its target.

    Args:
        outputs: Tensor[R, K] (or anything a callable target accepts), where R = repeat * B and
            the rows are in block-major order (row ``j * B + b`` belongs to sample ``b``).
        target: Tensor[B] int64 from :func:`resolve_target`, or a callable.
        repeat: how many blocks of B rows ``outputs`` holds.

    Returns:
        Tensor[R] scores (the callable's output, flattened).
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        scores = target(outputs)
        if not isinstance(scores, torch.Tensor):
            raise TypeError("a callable target must return a Tensor with one score per row")
        scores = scores.reshape(-1)
        if scores.shape[0] != outputs.shape[0]:
            raise ValueError(
                f"the callable target returned {scores.shape[0]} scores for "
                f"{outputs.shape[0]} rows"
            )
        return scores
    idx = target.repeat(repeat) if repeat > 1 else target
    return outputs.gather(1, idx[:, None].to(outputs.device)).squeeze(1)
