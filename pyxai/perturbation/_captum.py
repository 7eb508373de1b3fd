"""Captum-compatible argument handling shared by Occlusion and FeatureAblation.

Inputs, baselines, targets and additional forward arguments are accepted in every form
``captum.attr`` accepts, and turned into the engine's forms (tuples of tensors, baselines expanded
to the inputs, the target resolved by :func:`pyxai.engine.targets.resolve_target`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from pyxai.engine.checks import check_finite, check_inputs, check_output_batch, expand_like
from pyxai.engine.targets import ResolvedTarget, resolve_target


def format_inputs(inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[tuple[torch.Tensor, ...], bool]:
    """``(tuple of input tensors, was_tuple)``; every tensor is validated (float, finite, same B)."""
    was_tuple = isinstance(inputs, tuple)
    xs = tuple(inputs) if was_tuple else (inputs,)
    if not xs:
        raise ValueError("inputs is an empty tuple")
    names = [f"inputs[{i}]" if was_tuple else "inputs" for i in range(len(xs))]
    for x, name in zip(xs, names):
        check_inputs(x, name=name, ndims=tuple(range(2, 11)))
    b = xs[0].shape[0]
    for x, name in zip(xs, names):
        if x.shape[0] != b:
            raise ValueError(f"{name} has {x.shape[0]} samples but inputs[0] has {b}")
    return xs, was_tuple


def format_baselines(baselines: Any, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """One baseline per input, expanded (a view) to the input's shape.

    Accepts Captum's forms: None (0), a scalar or tensor (single input), or a tuple of scalars and
    tensors; a tensor has the input's shape, or a first dim of 1, or any shape broadcastable to it.
    """
    if baselines is None:
        baselines = (0.0,) * len(xs)
    if not isinstance(baselines, tuple):
        baselines = (baselines,)
    if len(baselines) != len(xs):
        raise ValueError(
            f"baselines has {len(baselines)} entries but there are {len(xs)} inputs"
        )
    out = []
    for i, (b, x) in enumerate(zip(baselines, xs)):
        if isinstance(b, bool) or not isinstance(b, (int, float, torch.Tensor)):
            raise TypeError(f"baselines[{i}] must be a number or a Tensor, got {type(b).__name__}")
        check_finite(b, f"baselines[{i}]")  # once per call, not per chunk
        out.append(expand_like(b, x, f"baselines[{i}]", "the input of shape"))
    return tuple(out)


def format_args(additional_forward_args: Any) -> tuple:
    """Captum's rule: None -> (), a non-tuple -> (arg,)."""
    if additional_forward_args is None:
        return ()
    if not isinstance(additional_forward_args, tuple):
        return (additional_forward_args,)
    return additional_forward_args


class ExpandingForward:
    """Calls ``forward_func(*inputs, *args)``, repeating tensor args to the rows of the chunk.

    As Captum: a chunk of ``n * B`` rows (n perturbations of B samples) gets every tensor argument
    with at least one dim concatenated ``n`` times along dim 0; other arguments pass unchanged.
    """

    def __init__(self, forward_func: Callable, args: tuple, batch: int) -> None:
        self.forward_func = forward_func
        self.args = args
        self.batch = batch
        self._cache: dict[int, tuple] = {1: args}

    def __call__(self, *xs: torch.Tensor) -> Any:
        n = max(1, xs[0].shape[0] // self.batch)
        if n not in self._cache:
            self._cache = {1: self.args, n: tuple(
                torch.cat([a] * n, dim=0) if isinstance(a, torch.Tensor) and a.dim() > 0 else a
                for a in self.args
            )}
        return self.forward_func(*xs, *self._cache[n])


def initial_scores(
    forward: Callable, xs: tuple[torch.Tensor, ...], target: Any
) -> tuple[torch.Tensor, ResolvedTarget]:
    """Model scores Tensor[B] on the unperturbed inputs (one forward, as Captum) and the target
    resolved on them (any Captum form, see :mod:`pyxai.engine.targets`)."""
    with torch.inference_mode():
        outputs = forward(*xs)
    if isinstance(outputs, (int, float)):
        outputs = torch.tensor([outputs])
    check_output_batch(outputs, xs[0].shape[0])
    resolved = resolve_target(target, outputs)
    return resolved(outputs), resolved
