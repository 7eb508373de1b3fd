"""ShapleyValueSampling and ShapleyValues, drop-ins for ``captum.attr``'s (Castro et al., 2009;
Strumbelj & Kononenko, 2010), on the perturbation runner.

For each of ``n_samples`` random permutations of the features, the features are added one by one
to the baseline, in the permutation's order; each feature is credited with the output change its
addition causes, and the credits are averaged over the permutations. The ``n_samples * F``
perturbations are evaluated in chunks of ``perturbations_per_eval`` (consecutive steps of the
permutation chains), and only a ``[F, B]`` sum of credits and the last score of each chain are
kept: memory is flat in the number of samples.

The permutations are drawn as Captum draws them (one ``torch.randperm(F)`` per sample from the
global generator, after the baseline's forward and before any other), so with the same
``torch.manual_seed`` the results equal Captum's.

A model that aggregates its batch (Captum's aggregated-output mode: a scalar, a Python number or a
fixed-size Tensor for the whole batch, e.g. ``model(x).sum()``) is explained as Captum does: the
chains run one forward per step (``perturbations_per_eval`` must be 1), each feature is credited
with the change of every output element that ``target`` selects (Captum's ``_select_targets``,
see :func:`~pyxai.perturbation._captum.select_target`), and the attributions are
``[*selected output shape, *input dims]`` (``[1, *input dims]`` for a scalar), float32.

With ``target=None``, an output Tensor[B, *D] of more than one dim is explained element by element,
as Captum's multi-task output: attributions ``[B, *D, *input dims]``.

:class:`ShapleyValues` runs the same chains over every permutation of the features
(``itertools.permutations``' order, as Captum): the exact Shapley values.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, Callable

import torch

from pyxai.engine.accumulators import Accumulator
from pyxai.engine.base import CaptumAttribution
from pyxai.engine.checks import check_output_batch, check_positive_int
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.view import forward_view
from pyxai.gradient._common import resolve
from pyxai.perturbation._captum import (
    AggregateOutputError,
    CaptumArgumentError,
    ExpandingForward,
    as_output,
    format_args,
    is_aggregated,
    select_target,
)
from pyxai.perturbation.ablation import (
    FeatureAblation,
    TensorOrTuple,
    _format_call,
    _run_aggregated,
)


class ChainCredits(Accumulator):
    """Credits of the features along permutation chains: item ``i`` is step ``i % F`` of chain
    ``i // F``; its credit ``score_i - score_{i-1}`` (``score`` of the chain's start: the
    baseline's) goes to feature ``perms[i // F, i % F]``. Chunks must arrive in order.

    Args:
        perms: Tensor[S, F] int64 permutations (on the scores' device).
        start: Tensor[B] scores at the baseline (B samples, or the R target values of a model
            that aggregates its batch).

    Attributes:
        sum_credits: Tensor[F, B].
    """

    def __init__(self, perms: torch.Tensor, start: torch.Tensor) -> None:
        self.perms, self.start = perms, start
        self.f = perms.shape[1]
        self.sum_credits = start.new_zeros(self.f, start.shape[0])
        self.last = start

    def update(self, start: int, stop: int, values: torch.Tensor) -> None:
        scores = values.reshape(stop - start, -1).to(self.sum_credits.dtype)
        steps = torch.arange(start, stop, device=scores.device)
        prev = torch.cat([self.last[None], scores[:-1]])
        # a chain's first step starts again from the baseline's score
        prev = torch.where((steps % self.f == 0)[:, None], self.start[None], prev)
        feats = self.perms.reshape(-1)[steps]
        self.sum_credits.index_add_(0, feats, scores - prev)
        self.last = scores[-1]

    def result(self) -> torch.Tensor:
        """Tensor[F, B] summed credits."""
        return self.sum_credits


class ShapleyValueSampling(CaptumAttribution):
    """Shapley values estimated from random feature permutations.

    Args:
        forward_func: model or callable ``(*inputs, *additional_forward_args) -> Tensor[B, ...]``
            (one row per sample), or, as Captum's aggregated-output mode, a scalar, a Python
            number or a fixed-size Tensor for the whole batch (then ``perturbations_per_eval``
            must be 1).

    Examples::

        >>> svs = pyxai.ShapleyValueSampling(model)
        >>> attr = svs.attribute(x, target=3, feature_mask=segments, n_samples=25,
        ...                      perturbations_per_eval=16)
    """

    _multiply_by_inputs = True  # as Captum's PerturbationAttribution
    _desc = "Shapley Value Sampling attribution"  # Captum's progress label

    def __init__(self, forward_func: Callable[..., torch.Tensor]) -> None:
        super().__init__(forward_func)

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: TensorOrTuple | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        """Shapley value sampling attributions.

        Args:
            inputs: Tensor[B, ...] or a tuple of such tensors (same B).
            baselines: the value of absent features: None (0), a scalar, a Tensor broadcastable
                to the input, or a tuple of those. Default: None
            target: as :meth:`pyxai.FeatureAblation.attribute`, except None on an output of more
                than one dim (Tensor[B, *D]): every output element, as Captum's multi-task
                output (attributions ``[B, *D, *input dims]``). For a model that aggregates its
                batch, as Captum: None (every output element) or an index into the whole output
                (:func:`~pyxai.perturbation._captum.select_target`). Default: None
            additional_forward_args: extra forward arguments (Tensors repeated per
                perturbation). Default: None
            feature_mask: integer Tensor (or tuple) broadcastable to the input with feature ids
                ``0 .. F-1`` (equal ids form one feature, across inputs too); for a model that
                aggregates its batch, a first dim of 1. Default: None, one feature per scalar.
            n_samples: number of permutations. Default: 25
            perturbations_per_eval: permutation steps per forward (``that * B`` rows); 1 for
                a model that aggregates its batch. Default: 1
            show_progress: progress bar. Default: False

        Returns:
            Tensor (or tuple) shaped like the inputs, float32 (as Captum); ``[B, *D, *input
            dims]`` for ``target=None`` on a Tensor[B, *D] output; for a model that aggregates
            its batch, ``[*selected output shape, *input dims]`` (first dim 1 for a scalar).

        Raises:
            AggregateOutputError: the model aggregates its batch and ``perturbations_per_eval``
                is not 1 (an AssertionError, as Captum's).
            CaptumArgumentError: the model aggregates its batch and a feature mask has a first
                dim other than 1 (an AssertionError, as Captum's).
        """
        check_positive_int(n_samples, "n_samples")
        return self._attribute(inputs, baselines, target, additional_forward_args, feature_mask,
                               n_samples, perturbations_per_eval, show_progress)

    def _permutations(self, n_feat: int, n_samples: int) -> torch.Tensor:
        """Tensor[S, F] int64 feature orders: ``n_samples`` draws as Captum's
        (:func:`_draw`)."""
        return _draw(n_feat, n_samples)

    def _attribute(
        self, inputs: TensorOrTuple, baselines: Any, target: Any, additional_forward_args: Any,
        feature_mask: TensorOrTuple | None, n_samples: int, perturbations_per_eval: int,
        show_progress: bool,
    ) -> TensorOrTuple:
        """The permutation chains of :meth:`_permutations` (shared by ShapleyValues)."""
        xs, was_tuple, ppe, bases = _format_call(self.forward_func, inputs, perturbations_per_eval,
                                                 baselines)
        masks = FeatureAblation._format_mask(feature_mask, xs)
        n_feat = _n_features(masks)
        b = xs[0].shape[0]
        forward = ExpandingForward(forward_view(self.forward_func), format_args(
            additional_forward_args), b)
        with torch.inference_mode():
            out_base = as_output(forward(*bases))  # Captum's first forward
        if is_aggregated(out_base, b):
            values = self._aggregated(forward, out_base, target, xs, bases, masks, n_feat,
                                      n_samples, ppe, show_progress)
            return self._format(values, xs, masks, was_tuple)
        perms = self._permutations(n_feat, n_samples)
        runner = PerturbationRunner(forward, batch_size=ppe * b, show_progress=show_progress)
        make_chunk = _chain_inputs(xs, bases, masks, perms)
        if target is None and out_base.dim() > 1:  # Captum's multi-task output: every element
            credits = ChainCredits(perms.to(out_base.device), out_base.reshape(-1))
            runner.run(perms.numel(), make_chunk, credits, rows_per_item=b, desc=self._desc)
            values = (credits.result() / perms.shape[0]).reshape(n_feat, *out_base.shape)
            return self._format(values, xs, masks, was_tuple)
        with torch.inference_mode():
            out_in = as_output(forward(*xs))
        check_output_batch(out_in, b)
        resolved = resolve(target, out_in)  # None: decided on the inputs' outputs
        start = resolved(out_base)
        credits = ChainCredits(perms.to(start.device), start)
        runner.run(perms.numel(), make_chunk, credits, rows_per_item=b, target=resolved,
                   desc=self._desc)
        values = credits.result() / perms.shape[0]  # [F, B]
        return self._format(values, xs, masks, was_tuple)

    def _aggregated(
        self, forward: ExpandingForward, out_base: torch.Tensor, target: Any,
        xs: tuple[torch.Tensor, ...], bases: tuple[torch.Tensor, ...],
        masks: tuple[torch.Tensor, ...], n_feat: int, n_samples: int, ppe: int,
        show_progress: bool,
    ) -> torch.Tensor:
        """Captum's aggregated-output mode: Tensor[F, *S] mean credits of the features for each
        of the output elements that ``target`` selects (``S`` their shape, ``(1,)`` for a
        scalar), one forward per chain step."""
        sel0 = select_target(out_base, target)
        if ppe != 1:
            raise AggregateOutputError(
                f"forward_func's output (shape {tuple(out_base.shape)} for a batch of "
                f"{xs[0].shape[0]}) does not have one row per sample (aggregated): "
                f"perturbations_per_eval must be 1, got {ppe}")
        for i, m in enumerate(masks):
            if m.shape[0] != 1:
                raise CaptumArgumentError(
                    f"feature_mask{f'[{i}]' if len(masks) > 1 else ''} has {m.shape[0]} rows but "
                    "forward_func aggregates its batch (one attribution for the whole batch): "
                    "give the mask a first dim of 1")
        perms = self._permutations(n_feat, n_samples)
        credits = ChainCredits(perms.to(sel0.device), sel0.reshape(-1))
        _run_aggregated(forward, perms.numel(), _chain_inputs(xs, bases, masks, perms),
                        target, sel0, xs[0].shape[0], 1, credits, show_progress, self._desc)
        shape = sel0.shape if sel0.dim() else (1,)
        return (credits.result() / perms.shape[0]).reshape(n_feat, *shape)

    @staticmethod
    def _format(values: torch.Tensor, xs: tuple[torch.Tensor, ...],
                masks: tuple[torch.Tensor, ...], was_tuple: bool) -> TensorOrTuple:
        """The attributions from Tensor[F, *S] feature values: ``[*S, *input dims]`` per input
        (``S`` is ``(B,)`` for one score per sample, ``(B, *D)`` for a multi-task output),
        float32."""
        shape = values.shape[1:]
        flat = values.reshape(values.shape[0], -1).T  # [R, F]
        attrs = []
        for x, m in zip(xs, masks):
            if m.shape[0] not in (1, flat.shape[0]):  # per-sample masks of a multi-task output
                m = m.repeat_interleave(flat.shape[0] // m.shape[0], dim=0)
            idx = m.expand(flat.shape[0], *x.shape[1:]).reshape(flat.shape[0], -1)
            attrs.append(torch.gather(flat, 1, idx.to(flat.device))
                         .reshape(*shape, *x.shape[1:]).float())
        return tuple(attrs) if was_tuple else attrs[0]


class ShapleyValues(ShapleyValueSampling):
    """Exact Shapley values, drop-in for ``captum.attr.ShapleyValues``: the chains of
    :class:`ShapleyValueSampling` over all ``F!`` feature orders (``itertools.permutations``,
    Captum's order), ``F * F!`` perturbations; only for a few features (Captum warns from 10).

    Args:
        forward_func: as :class:`ShapleyValueSampling`.

    Examples::

        >>> sv = pyxai.ShapleyValues(model)
        >>> attr = sv.attribute(x, target=1, feature_mask=quadrants)  # 4 features: 96 steps
    """

    _desc = "Shapley Values attribution"

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: TensorOrTuple | None = None,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        """Exact Shapley values: arguments, shapes and errors as
        :meth:`ShapleyValueSampling.attribute` (without ``n_samples``).

        Warns:
            UserWarning: 10 features or more (Captum's warning: ``F * F!`` perturbations).
        """
        return self._attribute(inputs, baselines, target, additional_forward_args, feature_mask,
                               1, perturbations_per_eval, show_progress)

    def _permutations(self, n_feat: int, n_samples: int) -> torch.Tensor:
        """Tensor[F!, F] int64: every order of the features, in ``itertools.permutations``'
        order (``n_samples`` is not used); Captum's warning from 10 features."""
        if n_feat >= 10:
            warnings.warn(
                "You are attempting to compute Shapley Values with at least 10 "
                "features, which will likely be very computationally expensive."
                "Consider using Shapley Value Sampling instead.", stacklevel=4)
        return torch.tensor(list(itertools.permutations(range(n_feat))),
                            dtype=torch.int64).reshape(-1, n_feat)


def _n_features(masks: tuple[torch.Tensor, ...]) -> int:
    """F, the number of features of masks with ids ``0 .. F-1``."""
    if min(int(m.min()) for m in masks if m.numel()) < 0:
        raise ValueError("feature_mask ids must be >= 0 (features 0 .. F-1)")
    return int(max(int(m.max()) for m in masks if m.numel())) + 1


def _draw(n_feat: int, n_samples: int) -> torch.Tensor:
    """Tensor[n_samples, F] permutations as Captum draws them: one ``torch.randperm(F)`` per
    sample from the global generator."""
    return torch.stack([torch.randperm(n_feat) for _ in range(n_samples)])


def _chain_inputs(
    xs: tuple[torch.Tensor, ...], bases: tuple[torch.Tensor, ...],
    masks: tuple[torch.Tensor, ...], perms: torch.Tensor,
) -> Callable[[int, int], tuple[torch.Tensor, ...]]:
    """``make_chunk(lo, hi)``: the inputs of the chain steps ``[lo, hi)``; step ``i`` of chain
    ``i // F`` is the baseline with the first ``i % F + 1`` features of ``perms[i // F]``
    present."""
    n_samples, n_feat = perms.shape
    ranks = torch.empty_like(perms)
    ranks.scatter_(1, perms, torch.arange(n_feat).expand(n_samples, n_feat).contiguous())
    dev = xs[0].device
    ranks_d = ranks.to(dev)

    def make_chunk(lo: int, hi: int) -> tuple[torch.Tensor, ...]:
        items = torch.arange(lo, hi, device=dev)
        r = ranks_d[items // n_feat]          # [k, F] rank of each feature in the chain
        step = (items % n_feat).view(-1, *([1] * (r.dim() - 1)))
        out = []
        for x, base, m in zip(xs, bases, masks):
            present = r[:, m.reshape(-1)].reshape(len(items), *m.shape) <= step.view(
                -1, *([1] * m.dim()))  # [k, *mask shape]
            out.append(torch.where(present, x[None], base[None]).reshape(
                len(items) * x.shape[0], *x.shape[1:]))
        return tuple(out)

    return make_chunk
