"""ShapleyValueSampling, drop-in for ``captum.attr.ShapleyValueSampling`` (Castro et al., 2009;
Strumbelj & Kononenko, 2010), on the perturbation runner.

For each of ``n_samples`` random permutations of the features, the features are added one by one
to the baseline, in the permutation's order; each feature is credited with the output change its
addition causes, and the credits are averaged over the permutations. The ``n_samples * F``
perturbations are evaluated in chunks of ``perturbations_per_eval`` (consecutive steps of the
permutation chains), and only a ``[F, B]`` sum of credits and the last score of each chain are
kept: memory is flat in the number of samples.

The permutations are drawn as Captum draws them (one ``torch.randperm(F)`` per sample from the
global generator, before any forward), so with the same ``torch.manual_seed`` the results equal
Captum's.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from pyxai.engine.accumulators import Accumulator
from pyxai.engine.base import CaptumAttribution
from pyxai.engine.checks import check_output_batch, check_positive_int
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.view import forward_view
from pyxai.gradient._common import resolve
from pyxai.perturbation._captum import ExpandingForward, as_output, format_args
from pyxai.perturbation.ablation import FeatureAblation, TensorOrTuple, _format_call


class ChainCredits(Accumulator):
    """Credits of the features along permutation chains: item ``i`` is step ``i % F`` of chain
    ``i // F``; its credit ``score_i - score_{i-1}`` (``score`` of the chain's start: the
    baseline's) goes to feature ``perms[i // F, i % F]``. Chunks must arrive in order.

    Args:
        perms: Tensor[S, F] int64 permutations (on the scores' device).
        start: Tensor[B] scores at the baseline.

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
            (one row per sample; Captum's aggregated-output mode is not supported).

    Examples::

        >>> svs = pyxai.ShapleyValueSampling(model)
        >>> attr = svs.attribute(x, target=3, feature_mask=segments, n_samples=25,
        ...                      perturbations_per_eval=16)
    """

    _multiply_by_inputs = True  # as Captum's PerturbationAttribution

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
            target: as :meth:`pyxai.FeatureAblation.attribute` (None: the output itself for one
                score per sample, else the predicted class of the inputs). Default: None
            additional_forward_args: extra forward arguments (Tensors repeated per
                perturbation). Default: None
            feature_mask: integer Tensor (or tuple) broadcastable to the input with feature ids
                ``0 .. F-1`` (equal ids form one feature, across inputs too). Default: None, one
                feature per scalar.
            n_samples: number of permutations. Default: 25
            perturbations_per_eval: permutation steps per forward (``that * B`` rows).
                Default: 1
            show_progress: progress bar. Default: False

        Returns:
            Tensor (or tuple) shaped like the inputs, float32 (as Captum).
        """
        xs, was_tuple, ppe, bases = _format_call(self.forward_func, inputs, perturbations_per_eval,
                                                 baselines)
        check_positive_int(n_samples, "n_samples")
        masks = FeatureAblation._format_mask(feature_mask, xs)
        n_feat = int(max(int(m.max()) for m in masks if m.numel())) + 1
        if min(int(m.min()) for m in masks if m.numel()) < 0:
            raise ValueError("feature_mask ids must be >= 0 (features 0 .. F-1)")
        # Captum's draws: one randperm per sample from the global generator
        perms = torch.stack([torch.randperm(n_feat) for _ in range(n_samples)])
        ranks = torch.empty_like(perms)
        ranks.scatter_(1, perms, torch.arange(n_feat).expand(n_samples, n_feat).contiguous())
        dev = xs[0].device
        ranks_d = ranks.to(dev)
        b = xs[0].shape[0]
        forward = ExpandingForward(forward_view(self.forward_func), format_args(
            additional_forward_args), b)
        with torch.inference_mode():
            out_in = as_output(forward(*xs))
            out_base = as_output(forward(*bases))
        check_output_batch(out_in, b)
        resolved = resolve(target, out_in)  # None: decided on the inputs' outputs
        start = resolved(out_base)

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

        credits = ChainCredits(perms.to(start.device), start)
        runner = PerturbationRunner(forward, batch_size=ppe * b, show_progress=show_progress)
        runner.run(n_samples * n_feat, make_chunk, credits, rows_per_item=b, target=resolved,
                   desc="Shapley Value Sampling attribution")
        values = credits.result() / n_samples  # [F, B]
        attrs = []
        for x, m in zip(xs, masks):
            idx = m.expand(x.shape).reshape(b, -1).to(values.device)
            attrs.append(torch.gather(values.T, 1, idx).reshape(x.shape).float())
        return tuple(attrs) if was_tuple else attrs[0]
