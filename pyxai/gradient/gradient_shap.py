"""GradientShap, drop-in for ``captum.attr.GradientShap`` (Lundberg & Lee, 2017).

SHAP values approximated as the expected gradient at random points between the (noised) inputs
and baselines drawn from a baseline distribution, times ``inputs - baselines``. All
``B * n_samples`` points are evaluated in one forward/backward, as Captum does.

Randomness is drawn exactly as Captum draws it — baseline rows with ``numpy.random.choice``, the
noise with ``torch.normal``, the interpolation coefficients with ``numpy.random.uniform``, same
calls, order and shapes — so with the same NumPy and torch seeds the results equal Captum's.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
import torch

from pyxai.engine.view import forward_view
from pyxai.gradient._common import (
    GradientAttribution,
    RepeatedTarget,
    convergence_delta,
    expand_args,
    format_args,
    format_call,
    format_inputs,
    format_output,
    input_gradients,
    resolve_none,
)
from pyxai.gradient.noise_tunnel import _stdevs
from pyxai.perturbation._captum import CaptumArgumentError, CaptumTypeError


def format_distribution(baselines: Any, inputs: tuple[torch.Tensor, ...], given: Any) -> tuple:
    """Baseline distributions: one Tensor[R, ...] per input (same dims after the batch, any
    number of rows R >= 1), or a callable returning them (as Captum: called with no argument,
    or with the inputs as the user gave them, ``given``); finite."""
    if callable(baselines) and not isinstance(baselines, torch.Tensor):
        baselines = baselines() if not inspect.signature(baselines).parameters \
            else baselines(given)
    tup = baselines if isinstance(baselines, tuple) else (baselines,)
    if len(tup) != len(inputs):
        raise ValueError(f"baselines has {len(tup)} entries but there are {len(inputs)} inputs")
    for i, (b, x) in enumerate(zip(tup, inputs)):
        if not isinstance(b, torch.Tensor):
            raise CaptumTypeError(f"baselines[{i}] must be a Tensor (a distribution of baselines), got "
                            f"{type(b).__name__}")
        if b.dim() != x.dim() or b.shape[1:] != x.shape[1:] or b.shape[0] == 0:
            raise ValueError(f"baselines[{i}] of shape {tuple(b.shape)} must be Tensor[R, "
                             f"{', '.join(map(str, x.shape[1:]))}] (R >= 1 baseline rows)")
        if b.device != x.device:
            raise ValueError(f"baselines[{i}] is on {b.device} but inputs[{i}] on {x.device}")
        if b.is_floating_point() and not bool(torch.isfinite(b).all()):
            raise ValueError(f"baselines[{i}] contains NaN or Inf values")
    return tup


class GradientShap(GradientAttribution):
    """Expected gradients between inputs and random baselines (GradientSHAP).

    Args:
        forward_func: model or callable mapping inputs to outputs, one row per example.
        multiply_by_inputs: multiply the gradients by ``inputs - baselines`` (global
            attribution) or not. Default: True

    Examples::

        >>> gs = pyxai.GradientShap(model)
        >>> attr = gs.attribute(x, baselines=torch.zeros(4, 3, 32, 32), n_samples=16, target=3)
    """

    _convergence_delta = True

    def __init__(self, forward_func: Callable[..., torch.Tensor], multiply_by_inputs: bool = True
                 ) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
    ) -> Any:
        """GradientSHAP attributions.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            baselines: Tensor[R, ...] per input (the baseline distribution), or a callable
                returning them from the inputs.
            n_samples: random points per example. Default: 5
            stdevs: standard deviation of the Gaussian noise added to the inputs (one float or
                one per input). Default: 0.0
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments (Tensors repeated per sample).
                Default: None
            return_convergence_delta: also return Tensor[B * n_samples] deltas
                ``sum(attr) - (f(x_noisy) - f(baseline))`` per random point (as Captum).
                Default: False

        Returns:
            Attributions shaped like ``inputs`` (and the deltas).
        """
        is_tuple, inp, args = format_call(self.forward_func, inputs, additional_forward_args)
        dist = format_distribution(baselines, inp, inputs)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples <= 0:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        sds = _stdevs(stdevs, len(inp))
        forward = forward_view(self.forward_func)
        target = resolve_none(forward, inp, target, args)
        b, n = inp[0].shape[0], n_samples
        # Captum's draws, in Captum's order: baseline rows, noise per input, coefficients
        bases = tuple(d[torch.as_tensor(np.random.choice(d.shape[0], n * b), device=d.device)]
                      for d in dist)
        noisy = tuple(
            x.detach().repeat_interleave(n, dim=0)
            + torch.normal(0, torch.tensor(sd, device=x.device).repeat((b * n, *x.shape[1:])))
            for x, sd in zip(inp, sds)
        )
        coef = torch.tensor(np.random.uniform(0.0, 1.0, b * n), device=inp[0].device,
                            dtype=inp[0].dtype)
        scaled = tuple(coef.view(-1, *([1] * (x.dim() - 1))) * x + (1.0 - coef.view(
            -1, *([1] * (x.dim() - 1)))) * bl for x, bl in zip(noisy, bases))
        rows_args = expand_args(args, n, interleave=True)
        repeated = RepeatedTarget(target, n)
        grads, resolved = input_gradients(forward, scaled, repeated, rows_args)
        if self._multiply_by_inputs:
            per_row = tuple(g * (x - bl) for g, x, bl in zip(grads, noisy, bases))
        else:
            per_row = grads
        attrs = tuple(a.reshape(b, n, *a.shape[1:]).mean(1) for a in per_row)
        result = format_output(is_tuple, attrs)
        if not return_convergence_delta:
            return result
        return result, convergence_delta(forward, per_row, noisy, bases, resolved, rows_args)

    def compute_convergence_delta(self, attributions: Any, start_point: Any, end_point: Any,
                                  target: Any = None, additional_forward_args: Any = None
                                  ) -> torch.Tensor:
        """``sum(attributions) - (f(end_point) - f(start_point))`` per row (as Captum); start and
        end points need the same number of rows."""
        _, ends = format_inputs(end_point, "end_point")
        _, starts = format_inputs(start_point, "start_point")
        _, attrs = format_inputs(attributions, "attributions")
        if starts[0].shape[0] != ends[0].shape[0]:
            raise CaptumArgumentError(
                f"start_point has {starts[0].shape[0]} rows but end_point has "
                f"{ends[0].shape[0]}: they must match (one baseline per attributed row)")
        return convergence_delta(forward_view(self.forward_func), attrs, ends, starts, target,
                                 format_args(additional_forward_args))
