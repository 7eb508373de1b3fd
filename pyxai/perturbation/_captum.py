"""Captum-compatible argument handling shared by Occlusion and FeatureAblation.

Inputs, baselines, targets and additional forward arguments are accepted in every form
``captum.attr`` accepts, and turned into the engine's forms (tuples of tensors, baselines expanded
to the inputs, the target resolved by :func:`pyxai.engine.targets.resolve_target`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from pyxai.engine.checks import check_finite, check_output_batch, expand_like
from pyxai.engine.targets import ResolvedTarget, resolve_target


class CaptumArgumentError(ValueError, AssertionError):
    """A bad argument where Captum asserts: a ValueError, and also an AssertionError (what Captum
    raises for it), so code catching Captum's error catches pyxai's."""


class CaptumTypeError(TypeError, AssertionError):
    """An argument of the wrong type where Captum asserts: a TypeError, and also an
    AssertionError (what Captum raises for it)."""


class AggregateOutputError(CaptumArgumentError):
    """The model's output does not grow with its batch (Captum's aggregated-output mode) where
    one row per input row is needed."""


class CaptumIndexError(ValueError, IndexError):
    """A target that does not index the model's output where Captum's indexing raises an
    IndexError: a ValueError, and also an IndexError, so code catching Captum's error catches
    pyxai's."""


def format_inputs(
    inputs: torch.Tensor | Sequence[torch.Tensor], same_batch: bool = True
) -> tuple[tuple[torch.Tensor, ...], bool]:
    """``(tuple of input tensors, was_tuple)``.

    As Captum: floating-point, integer or bool Tensors of any rank >= 1 (floats must be finite);
    with ``same_batch=False`` they may have different first dims or be empty (sparse inputs of a
    model that aggregates its batch), else all have inputs[0]'s non-empty batch.
    """
    was_tuple = isinstance(inputs, tuple)
    xs = tuple(inputs) if was_tuple else (inputs,)
    if not xs:
        raise ValueError("inputs is an empty tuple")
    names = [f"inputs[{i}]" if was_tuple else "inputs" for i in range(len(xs))]
    for x, name in zip(xs, names):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.is_complex():
            raise TypeError(f"{name} must be a real (float, integer or bool) tensor, got {x.dtype}")
        if x.dim() == 0:
            raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")
        if x.is_floating_point():
            check_finite(x, name)
    b = xs[0].shape[0]
    if same_batch:
        if b == 0:
            raise ValueError(f"{names[0]} is an empty batch (shape {tuple(xs[0].shape)})")
        for x, name in zip(xs, names):
            if x.shape[0] != b:
                raise ValueError(f"{name} has {x.shape[0]} samples but inputs[0] has {b}")
    return xs, was_tuple


def format_baselines(baselines: Any, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """One baseline per input, expanded (a view) to the input's shape, in the dtype Captum's
    ``x * (1 - mask) + baseline * mask`` gives: ``torch.result_type(x, baseline)`` (an integer
    input with a float baseline ablates to float, a bool input with the default 0 to int64).

    Accepts Captum's forms: None (0), a scalar or tensor (single input), or a tuple of scalars and
    tensors; a tensor has the input's shape, or a first dim of 1, or any shape broadcastable to it.
    """
    if baselines is None:  # as Captum: 0, False for a bool input
        baselines = tuple(False if x.dtype == torch.bool else 0 for x in xs)
    if not isinstance(baselines, tuple):
        baselines = (baselines,)
    if len(baselines) != len(xs):
        raise ValueError(
            f"baselines has {len(baselines)} entries but there are {len(xs)} inputs"
        )
    out = []
    for i, (b, x) in enumerate(zip(baselines, xs)):
        if not isinstance(b, (bool, int, float, torch.Tensor)) or (
                isinstance(b, bool) and x.dtype != torch.bool):
            raise TypeError(f"baselines[{i}] must be a number or a Tensor, got {type(b).__name__}")
        if not isinstance(b, bool):
            check_finite(b, f"baselines[{i}]")  # once per call, not per chunk
        dtype = torch.result_type(x, b)
        if isinstance(b, torch.Tensor):
            b = b.to(dtype)
        out.append(expand_like(b, x.to(dtype) if dtype != x.dtype else x, f"baselines[{i}]",
                               "the input of shape"))
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


def as_output(outputs: Any) -> torch.Tensor:
    """The model's output as a Tensor: an int or float is a 0-d Tensor of int64 / float64
    (Captum's conversion of Python numbers)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, (int, float)) and not isinstance(outputs, bool):
        return torch.tensor(outputs, dtype=torch.int64 if isinstance(outputs, int)
                            else torch.float64)
    raise TypeError(f"forward_func must return a Tensor, an int or a float, got "
                    f"{type(outputs).__name__}")


def is_aggregated(outputs: torch.Tensor, batch: int) -> bool:
    """Captum's aggregated-output mode: the output is not one row per sample (a scalar, or a
    fixed-size Tensor for the whole batch)."""
    return outputs.dim() == 0 or outputs.shape[0] != batch


def select_target(outputs: torch.Tensor, target: Any) -> torch.Tensor:
    """The part of a whole model output that ``target`` selects, as Captum's ``_select_targets``
    (used in its aggregated-output mode, where the output is not one row per sample).

    ``outputs`` is Tensor[N, *D] (N need not be the batch): an int, a one-element integer Tensor
    or a tuple (ints or slices) indexes the dims after the first, ``outputs[:, *target]``; a
    Tensor[N] or a list of N ints picks one class per row of a Tensor[N, K]; a list of N tuples
    indexes row ``i`` with ``(i, *target[i])``. None selects everything.

    Raises:
        CaptumArgumentError / CaptumTypeError (AssertionErrors, as Captum) or CaptumIndexError
        (an IndexError, as Captum) naming ``target``: a form Captum rejects, a list or Tensor of
        the wrong length, a 0-d output, an index out of range.
    """
    if target is None:
        return outputs
    shape = tuple(outputs.shape)
    if outputs.dim() == 0:
        raise CaptumIndexError(f"target={target!r} cannot index the 0-d output of forward_func "
                               "(one scalar for the whole batch): pass target=None")
    n = shape[0]
    if isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise CaptumTypeError(f"target must hold integer indices, got dtype {target.dtype}")
        if target.numel() == 1:
            target = int(target.item())
        elif target.dim() == 1 and target.numel() == n:
            if outputs.dim() != 2:
                raise CaptumArgumentError(f"a Tensor target of {n} classes needs an output of "
                                          f"shape [{n}, K], got {shape}")
            return _index(lambda: outputs.gather(1, target.to(outputs.device).long()[:, None])
                          .squeeze(1), target, shape)
        else:
            raise CaptumArgumentError(f"target of shape {tuple(target.shape)} does not fit the "
                                      f"output of shape {shape}: give one element, or one class "
                                      f"per output row ({n})")
    if isinstance(target, bool):
        raise CaptumTypeError("target must be an int, a tuple, a list or a Tensor, got a bool")
    if isinstance(target, (int, tuple)):
        cols = (target,) if isinstance(target, int) else target
        if len(cols) > outputs.dim() - 1:
            raise CaptumArgumentError(f"target={target!r} indexes {len(cols)} dims but the output "
                                      f"of shape {shape} has {outputs.dim() - 1} after the first")
        return _index(lambda: outputs[(slice(None), *cols)], target, shape)
    if not isinstance(target, list):
        raise CaptumTypeError(f"target must be an int, a tuple, a list or a Tensor, got "
                              f"{type(target).__name__}")
    if len(target) != n:
        raise CaptumArgumentError(f"target has {len(target)} entries but the output of shape "
                                  f"{shape} has {n} rows")
    if all(isinstance(t, int) and not isinstance(t, bool) for t in target):
        if outputs.dim() != 2:
            raise CaptumArgumentError(f"a list of {n} int targets needs an output of shape "
                                      f"[{n}, K], got {shape}")
        idx = torch.tensor(target, device=outputs.device)[:, None]
        return _index(lambda: outputs.gather(1, idx).squeeze(1), target, shape)
    if all(isinstance(t, tuple) for t in target):
        return _index(lambda: torch.stack([outputs[(i, *t)] for i, t in enumerate(target)]),
                      target, shape)
    raise CaptumTypeError(f"target must be a list of ints or a list of tuples, got {target[:4]!r}")


def _index(select: Callable[[], torch.Tensor], target: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """``select()``, an IndexError (also from ``gather``) turned into one naming ``target``."""
    try:
        return select()
    except (IndexError, RuntimeError) as e:
        raise CaptumIndexError(f"target={target!r} is out of range for the output of shape "
                               f"{shape}: {e}") from None


def expand_target(target: Any, n: int) -> Any:
    """The target of ``n`` perturbations evaluated together, as Captum's ``_expand_target``: a
    list is repeated ``n`` times, a Tensor of more than one element concatenated ``n`` times."""
    if isinstance(target, list):
        return target * n
    if isinstance(target, torch.Tensor) and target.numel() > 1:
        return torch.cat([target] * n)
    return target


def initial_scores(
    forward: Callable, xs: tuple[torch.Tensor, ...], target: Any
) -> tuple[torch.Tensor, ResolvedTarget]:
    """Model scores Tensor[B] on the unperturbed inputs (one forward, as Captum) and the target
    resolved on them (any Captum form, see :mod:`pyxai.engine.targets`)."""
    with torch.inference_mode():
        outputs = as_output(forward(*xs))
    check_output_batch(outputs, xs[0].shape[0])
    resolved = resolve_target(target, outputs)
    return resolved(outputs), resolved
