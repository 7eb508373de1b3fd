"""Integrated Gradients, drop-in for ``captum.attr.IntegratedGradients``.

The path points are evaluated as batches: all steps in one forward, or, with
``internal_batch_size``, ``internal_batch_size // B`` steps per forward (Captum's split), so no more
than one chunk of scaled inputs is ever held.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from pyxai.engine.targets import ResolvedTarget
from pyxai.engine.view import forward_view, is_nested
from pyxai.gradient._common import (
    GradientAttribution,
    Inputs,
    StraightPath,
    convergence_delta,
    expand_args,
    format_args,
    format_call,
    format_inputs,
    format_output,
    resolve,
    resolve_none,
    run_forward,
)


def path_start(bases: tuple, inputs: Inputs) -> Inputs:
    """The baselines of :func:`format_baselines` as Tensors shaped like ``inputs``."""
    return tuple(bl.expand_as(x) if isinstance(bl, torch.Tensor) else torch.full_like(x, bl)
                 for x, bl in zip(inputs, bases))


def format_baselines(baselines: Any, inputs: tuple[torch.Tensor, ...]) -> tuple:
    """Captum's baseline forms: None (zeros), a number, a Tensor, or a tuple of those; finite
    (checked once per call, not in a NoiseTunnel's calls)."""
    if baselines is None:
        return tuple(0 for _ in inputs)
    tup = baselines if isinstance(baselines, tuple) else (baselines,)
    if len(tup) != len(inputs):
        raise ValueError(f"baselines has {len(tup)} entries but there are {len(inputs)} inputs")
    for i, (b, x) in enumerate(zip(tup, inputs)):
        if isinstance(b, torch.Tensor):
            if b.device != x.device:
                raise ValueError(f"baselines[{i}] is on {b.device} but inputs[{i}] on {x.device}")
            if b.shape != x.shape and (b.shape[0] != 1 or b.shape[1:] != x.shape[1:]) and \
                    b.shape != x.shape[1:]:
                raise ValueError(
                    f"baselines[{i}] of shape {tuple(b.shape)} must match inputs[{i}] "
                    f"{tuple(x.shape)} or have batch size 1"
                )
        elif isinstance(b, bool) or not isinstance(b, (int, float)):
            raise TypeError(f"baselines[{i}] must be a Tensor or a number, got {type(b).__name__}")
        if not is_nested():
            finite = math.isfinite(b) if not isinstance(b, torch.Tensor) else \
                bool(torch.isfinite(b).all())
            if not finite:
                raise ValueError(f"baselines[{i}] contains NaN or Inf values")
    return tup


class IntegratedGradients(GradientAttribution):
    """Integrated Gradients (Sundararajan et al., 2017).

    Args:
        forward_func: model or callable mapping inputs to outputs, one row per example.
        multiply_by_inputs: multiply the path integral by ``inputs - baselines`` (global
            attribution) or not (local). Default: True

    Examples::

        >>> ig = pyxai.IntegratedGradients(model)
        >>> attr, delta = ig.attribute(x, target=3, n_steps=32, internal_batch_size=64,
        ...                            return_convergence_delta=True)
    """

    _convergence_delta = True

    def __init__(self, forward_func: Callable[..., torch.Tensor], multiply_by_inputs: bool = True
                 ) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        create_graph: bool = False,
    ) -> Any:
        """Path integral of the gradients from ``baselines`` to ``inputs``.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            baselines: None (zeros), number, Tensor (shaped like inputs, or batch 1) or tuple.
                Default: None
            target: as :meth:`pyxai.Saliency.attribute`; a callable ``(outputs, rows)`` gets the
                sample index of every step row. Default: None
            additional_forward_args: extra forward arguments; Tensors are repeated per step.
                Default: None
            n_steps: number of integration points. Default: 50
            method: ``riemann_left|right|middle|trapezoid`` or ``gausslegendre``.
                Default: "gausslegendre"
            internal_batch_size: model inputs per forward (steps per forward =
                ``internal_batch_size // B``, at least 1). None: all steps in one forward.
                Default: None
            return_convergence_delta: also return ``sum(attr) - (f(inputs) - f(baselines))``
                per example. Default: False
            create_graph: return attributions differentiable w.r.t. the model parameters.
                Default: False

        Returns:
            Attributions shaped like ``inputs`` (Tensor or tuple), and Tensor[B] deltas when
            ``return_convergence_delta``.
        """
        is_tuple, inp, args = format_call(self.forward_func, inputs, additional_forward_args)
        bases = format_baselines(baselines, inp)
        b = inp[0].shape[0]
        path = StraightPath(n_steps, method, internal_batch_size, b)
        forward = forward_view(self.forward_func)
        target = resolve_none(forward, inp, target, args)
        xs = tuple(x.detach() for x in inp)
        resolved: ResolvedTarget | None = None

        def score(scaled: Inputs, n: int) -> torch.Tensor:
            nonlocal resolved
            out = run_forward(forward, scaled, expand_args(args, n))
            if resolved is None:
                resolved = resolve(target, out[:b])  # shapes only: None was resolved above
            return resolved(out).sum()

        total = path.integrate(bases, xs, score, {"create_graph": create_graph})
        if self._multiply_by_inputs:
            attrs = tuple(t * (x - bl) for t, x, bl in zip(total, xs, bases))
        else:
            attrs = tuple(total)
        result = format_output(is_tuple, attrs)
        if not return_convergence_delta:
            return result
        return result, convergence_delta(forward, attrs, xs, path_start(bases, xs), resolved, args)

    def compute_convergence_delta(self, attributions: Any, start_point: Any, end_point: Any,
                                  target: Any = None, additional_forward_args: Any = None
                                  ) -> torch.Tensor:
        """``sum(attributions) - (f(end_point) - f(start_point))`` per example (as Captum)."""
        _, ends = format_inputs(end_point, "end_point")
        _, attrs = format_inputs(attributions, "attributions")
        bases = format_baselines(start_point, ends)
        args = format_args(additional_forward_args)
        return convergence_delta(forward_view(self.forward_func), attrs, ends,
                                 path_start(bases, ends), target, args)
