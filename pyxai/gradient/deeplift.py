"""DeepLift and DeepLiftShap, drop-in for ``captum.attr.DeepLift`` / ``DeepLiftShap``.

One forward of ``cat([inputs, baselines])`` and one backward on a view of the model whose
nonlinear modules pass back DeepLIFT's rescaled multipliers (:mod:`pyxai.gradient.deeplift_rules`),
so the numbers are Captum's; the user's model never gets a hook. DeepLiftShap runs DeepLift on
every (input, baseline) pair of a baseline distribution in one batch and averages.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from pyxai.engine.hooks import model_view
from pyxai.engine.targets import ResolvedTarget
from pyxai.engine.view import ModelView
from pyxai.gradient._common import (
    GradientAttribution,
    Inputs,
    RepeatedTarget,
    convergence_delta,
    expand_args,
    format_call,
    format_output,
    resolve,
    run_forward,
)
from pyxai.gradient.deeplift_rules import deeplift_rules
from pyxai.gradient.gradient_shap import format_distribution
from pyxai.gradient.integrated_gradients import IntegratedGradients, format_baselines, path_start
from pyxai.perturbation._captum import CaptumArgumentError, CaptumTypeError

CustomAttribution = Callable[..., tuple[torch.Tensor, ...]]


def tensorize_baselines(baselines: tuple, inputs: Inputs) -> Inputs:
    """Baselines (numbers, Tensors shaped like the inputs, with batch 1 or without a batch dim)
    as Tensors shaped like the inputs, in their dtypes, detached (views where no copy is needed).
    """
    out = []
    for b, x in zip(baselines, inputs):
        if isinstance(b, torch.Tensor):
            out.append(b.detach().to(x.dtype).expand_as(x))
        else:
            out.append(torch.full_like(x, b))
    return tuple(out)


def multipliers(view: ModelView, inputs: Inputs, baselines: Inputs, target: Any, args: tuple,
                eps: float) -> tuple[Inputs, ResolvedTarget]:
    """DeepLIFT's multipliers of the target scores w.r.t. each input, and the resolved target.

    Args:
        view: a view of the model (its nonlinear modules get the rescale rule for the call).
        inputs: Tensor[B, ...] per input.
        baselines: Tensor[B, ...] per input (shaped like the inputs).
        target: the user's target (or a resolved / repeated one); None: the predicted class of
            each input (the output itself for one output per sample).
        args: additional forward arguments; Tensors are repeated for the references.
        eps: the rescale rule's threshold on ``|x - x_ref|``.

    Returns:
        (Tensor[B, ...] per input, the target resolved for the B samples). The scores of the
        inputs and of the references are both differentiated (Captum's sum over the 2B rows).
    """
    b = inputs[0].shape[0]
    leaves = tuple(x.detach().requires_grad_() for x in inputs)
    with torch.enable_grad(), deeplift_rules(view, eps):
        both = tuple(torch.cat([x, r]) for x, r in zip(leaves, baselines))
        out = run_forward(view.module, both, expand_args(args, 2))
        resolved = resolve(target, out[:b])
        grads = torch.autograd.grad(resolved(out).sum(), leaves, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves)), resolved


def call_custom(fn: CustomAttribution, mults: Inputs, inputs: Inputs, baselines: Inputs
                ) -> Inputs:
    """Captum's ``custom_attribution_func``: called with (multipliers), (multipliers, inputs) or
    (multipliers, inputs, baselines) by its number of parameters; returns one Tensor per input."""
    if not callable(fn):
        raise CaptumTypeError(f"custom_attribution_func must be callable, got {type(fn).__name__}")
    n = len(inspect.signature(fn).parameters)
    if not 1 <= n <= 3:
        raise CaptumArgumentError("custom_attribution_func must take at least one and at most 3 "
                                  f"arguments, it takes {n}")
    out = fn(*(mults, inputs, baselines)[:n])
    if not isinstance(out, (tuple, list)) or len(out) != len(inputs) or \
            not all(isinstance(a, torch.Tensor) for a in out):
        raise TypeError(f"custom_attribution_func must return a tuple of {len(inputs)} Tensor(s) "
                        f"(one per input), got {type(out).__name__}")
    return tuple(out)


class DeepLift(GradientAttribution):
    """DeepLIFT with the rescale rule (Shrikumar et al., 2017), as Captum computes it.

    Nonlinear modules (``nn.ReLU``, ``ELU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Softplus``,
    ``Softmax``, ``MaxPool1d/2d/3d``) pass back ``grad * dy / dx`` between each input and its
    baseline; every other operation its gradient. Functional nonlinearities (``F.relu``) keep
    their gradient, as in Captum. A module used several times in one forward is rescaled at
    each use (Captum raises for it). The rule reads each module's input and output in the
    backward without copying them: a model that writes into one of them in place after the
    module ran gets a RuntimeError saying so (Captum keeps copies).

    Args:
        model: an ``nn.Module`` (its nonlinear submodules are found by type).
        multiply_by_inputs: multiply the multipliers by ``inputs - baselines`` (global
            attribution) or return them (local). Default: True
        eps: below this ``|x - x_ref|`` a module keeps its plain gradient. Default: 1e-10

    Examples::

        >>> dl = pyxai.DeepLift(model)
        >>> attr, delta = dl.attribute(x, baselines=0.0, target=3, return_convergence_delta=True)
    """

    _convergence_delta = True

    def __init__(self, model: nn.Module, multiply_by_inputs: bool = True, eps: float = 1e-10
                 ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} needs an nn.Module (its nonlinear modules get "
                            f"the rescale rule), got {type(model).__name__}")
        super().__init__(model)
        self.model = model
        self.eps = eps
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: CustomAttribution | None = None,
    ) -> Any:
        """DeepLIFT attributions of the target scores relative to ``baselines``.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            baselines: None (zeros), a number, a Tensor shaped like the inputs (or batch 1), or a
                tuple of those, one per input. Default: None
            target: as :meth:`pyxai.Saliency.attribute`; the baseline of sample ``b`` is scored
                for sample ``b``'s target. Default: None
            additional_forward_args: extra forward arguments (Tensors repeated for the
                baselines). Default: None
            return_convergence_delta: also return ``sum(attr) - (f(inputs) - f(baselines))`` per
                example. Default: False
            custom_attribution_func: ``f(multipliers[, inputs[, baselines]])`` -> tuple of
                Tensors, used instead of ``(inputs - baselines) * multipliers``. Default: None

        Returns:
            Attributions shaped like ``inputs`` (Tensor or tuple), and Tensor[B] deltas when
            ``return_convergence_delta``.
        """
        is_tuple, inp, args = format_call(self.model, inputs, additional_forward_args)
        bases = tensorize_baselines(format_baselines(baselines, inp), inp)
        view = self._view()
        attrs, resolved = self._attribute(view, inp, bases, target, args, custom_attribution_func)
        result = format_output(is_tuple, attrs)
        if not return_convergence_delta:
            return result
        return result, convergence_delta(view.module, attrs, inp, path_start(bases, inp), resolved,
                                         args)

    def _view(self) -> ModelView:
        """A fresh view of the model (a warning for a model in training mode)."""
        view = model_view(self.model)
        assert view is not None  # the constructor took an nn.Module
        return view

    def _attribute(self, view: ModelView, inputs: Inputs, baselines: Inputs, target: Any,
                   args: tuple, custom: CustomAttribution | None
                   ) -> tuple[Inputs, ResolvedTarget]:
        """(attributions Tensor[B, ...] per input, the resolved target) on ``view``."""
        mults, resolved = multipliers(view, inputs, baselines, target, args, self.eps)
        xs = tuple(x.detach() for x in inputs)
        if custom is not None:
            attrs = call_custom(custom, mults, xs, baselines)
        elif self._multiply_by_inputs:
            attrs = tuple((x - r) * m for x, r, m in zip(xs, baselines, mults))
        else:
            attrs = mults
        return attrs, resolved

    compute_convergence_delta = IntegratedGradients.compute_convergence_delta


class DeepLiftShap(DeepLift):
    """DeepLIFT averaged over a distribution of baselines (SHAP values approximated as in
    Captum's ``DeepLiftShap``): every input is paired with every baseline, DeepLift runs on the
    ``B * R`` pairs in one batch, and the attributions are averaged over the R baselines.

    Args:
        model: an ``nn.Module``.
        multiply_by_inputs: as :class:`DeepLift`. Default: True

    Examples::

        >>> dls = pyxai.DeepLiftShap(model)
        >>> attr = dls.attribute(x, baselines=torch.randn(8, 3, 32, 32), target=3)
    """

    def __init__(self, model: nn.Module, multiply_by_inputs: bool = True) -> None:
        super().__init__(model, multiply_by_inputs=multiply_by_inputs)

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        baselines: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: CustomAttribution | None = None,
    ) -> Any:
        """DeepLiftShap attributions.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            baselines: Tensor[R, ...] per input (R >= 2 baselines, as Captum), or a callable
                returning them (called with no argument, or with the inputs).
            target: as :meth:`DeepLift.attribute`. Default: None
            additional_forward_args: extra forward arguments (Tensors repeated per baseline).
                Default: None
            return_convergence_delta: also return Tensor[B * R] deltas, one per (input,
                baseline) pair, input-major (as Captum). Default: False
            custom_attribution_func: as :meth:`DeepLift.attribute`, called on the ``B * R``
                pairs. Default: None

        Returns:
            Attributions shaped like ``inputs`` (and the deltas).
        """
        is_tuple, inp, args = format_call(self.model, inputs, additional_forward_args)
        dist = format_distribution(baselines, inp, inputs)
        r = dist[0].shape[0]
        if r < 2:
            raise CaptumArgumentError(
                "baselines must be a distribution of more than one baseline (Tensor[R, ...] with "
                f"R > 1), got {r} row; for a single baseline use DeepLift")
        b = inp[0].shape[0]
        xs = tuple(x.detach().repeat_interleave(r, dim=0) for x in inp)
        bases = tuple(d.detach().to(x.dtype).repeat(b, *([1] * (d.dim() - 1)))
                      for d, x in zip(dist, inp))
        rows_args = expand_args(args, r, interleave=True)
        view = self._view()
        attrs, resolved = self._attribute(view, xs, bases, RepeatedTarget(target, r), rows_args,
                                          custom_attribution_func)
        result = format_output(is_tuple, tuple(a.reshape(b, r, *a.shape[1:]).mean(1)
                                               for a in attrs))
        if not return_convergence_delta:
            return result
        return result, convergence_delta(view.module, attrs, xs, path_start(bases, xs), resolved,
                                         rows_args)
