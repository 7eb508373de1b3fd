"""Lime, drop-in for ``captum.attr.Lime`` (Ribeiro et al., 2016), on the perturbation runner.

Each example is explained by a local surrogate: ``n_samples`` binary vectors over the F
interpretable features (the ids of ``feature_mask``) are drawn, each turns into a model input
(features that are 1 keep the input's values, features that are 0 take the baseline's), the model
scores every such input, and an interpretable model (by default a Lasso with ``alpha=0.01``) is
fitted to ``(vector, score)`` pairs weighted by the similarity of the perturbed input to the
original (by default ``exp(-d^2 / 2)`` with ``d`` the cosine distance). Its weights are the
attributions.

Same numbers as Captum with the same ``torch.manual_seed``: the vectors are drawn from torch's
global generator in Captum's order (all of example 0's samples, then example 1's, ...: Captum
explains the examples of a batch one after the other), the similarities use Captum's arithmetic,
and the surrogate is fitted on the same data; the generator ends where Captum's does.

How the model is run (the draws cannot move, the forwards can):

* with pyxai's surrogates (the default, :mod:`pyxai.perturbation.linear_model`), whose ``fit``
  draws no random numbers, every example's samples are drawn first (small: Tensor[B, n_samples,
  F] bits), each followed by the draws Captum's ``fit`` makes before the next example (its
  DataLoader's seed, the init of its ``nn.Linear``); then the runner evaluates the perturbed
  inputs of all examples together, ``perturbations_per_eval`` samples of each per forward
  (``perturbations_per_eval * B`` rows), each chunk built on the inputs' device just before its
  forward and scored there (no host sync);
* with any other surrogate (Captum's objects, whose ``fit`` draws), the examples are explained one
  after the other as in Captum, ``perturbations_per_eval`` samples per forward.

Batching the examples cannot change the scores of a model whose rows do not depend on each other
(eval mode); ``perturbations_per_eval`` stays the bound on the samples of one example per forward,
as in Captum. A forward function that itself draws from the global generator (dropout in training
mode) sees the draws interleaved differently from Captum.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch

from pyxai.engine.checks import check_positive_int
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import ResolvedTarget
from pyxai.engine.view import forward_view
from pyxai.gradient._common import resolve
from pyxai.perturbation._captum import (
    AggregateOutputError,
    ExpandingForward,
    as_output,
    format_args,
    is_aggregated,
    select_target,
)
from pyxai.perturbation.ablation import FeatureAblation, TensorOrTuple, _format_call
from pyxai.perturbation.lime_base import (
    ExpKernelSimilarity,
    Inputs,
    LimeBase,
    as_weight,
    captum_fit_draws,
    default_from_interp_rep_transform,
    default_perturb_func,
    fit_surrogate,
    get_exp_kernel_similarity_function,
    own_model,
    progress_label,
    sample_generator,
)
from pyxai.perturbation.linear_model import SkLearnLasso, _sklearn


def lime_feature_mask(feature_mask: TensorOrTuple | None, xs: Inputs) -> tuple[Inputs, int]:
    """Captum's interpretable features: (masks padded to the inputs' rank, F).

    None: one feature per scalar of ``inputs[i][0]`` (ids consecutive across inputs). A mask
    whose smallest id is not 0 is shifted to start at 0 (with Captum's warning); F = max id + 1.
    """
    masks = FeatureAblation._format_mask(feature_mask, xs)
    if feature_mask is None:
        return masks, sum(math.prod(x.shape[1:]) for x in xs)
    filled = [m for m in masks if m.numel()]
    if not filled:
        raise ValueError("feature_mask holds no feature ids (every mask is empty)")
    low = min(int(m.min()) for m in filled)
    if low != 0:
        warnings.warn("Minimum element in feature mask is not 0, shifting indices to start at 0.",
                      UserWarning, stacklevel=3)
        masks = tuple(m - low for m in masks)
    return masks, max(int(m.max()) for m in filled) - low + 1


def _user_form(ts: Inputs, was_tuple: bool) -> TensorOrTuple:
    return ts if was_tuple else ts[0]


@dataclass
class _Job:
    """One attribute() call's checked arguments, shared by its groups of examples."""

    view: Callable
    args: tuple
    xs: Inputs
    bases: Inputs
    masks: Inputs
    #: resolved for a per-sample model; the user's (Captum form, for select_target) for a model
    #: aggregating its batch
    target: ResolvedTarget | Any
    n_feat: int
    extra: dict[str, Any]
    n_samples: int
    ppe: int
    was_tuple: bool
    model: Any
    own_model: bool
    show_progress: bool


class Lime(LimeBase):
    """Local interpretable model-agnostic explanations.

    Args:
        forward_func: model or callable ``(*inputs, *additional_forward_args)`` returning one
            score row per sample (or one scalar for the whole batch, Captum's aggregated mode).
        interpretable_model: the surrogate: any object with Captum's ``Model`` interface
            (``fit(train_data)`` on a DataLoader of ``(x, y, w)`` and ``representation()`` ->
            Tensor[1, F]): Captum's own ``SkLearnLasso``, ``SGDLasso``, ... or pyxai's
            (:mod:`pyxai.perturbation.linear_model`). Each call fits its own copy (calls from
            several threads do not share a fit). Default: ``SkLearnLasso(alpha=0.01)``, which
            needs scikit-learn (``pip install 'pyxai-attribution[lime]'``).
        similarity_func: ``(original_inp, perturbed_inp, interpretable_sample, **kwargs) ->
            float | Tensor``, the weight of each sample. Default: exponential kernel of the cosine
            distance, width 1.0 (:func:`get_exp_kernel_similarity_function`).
        perturb_func: ``(original_inp, **kwargs) -> Tensor[1, F]`` one interpretable sample (or a
            generator function yielding them); kwargs are ``baselines``, ``feature_mask``,
            ``num_interp_features``. Default: :func:`default_perturb_func` (Bernoulli(0.5)).

    Examples::

        >>> lime = pyxai.Lime(model)
        >>> attr = lime.attribute(x, target=3, feature_mask=segments, n_samples=200,
        ...                       perturbations_per_eval=32)             # Tensor like x
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        interpretable_model: Any = None,
        similarity_func: Callable[..., Any] | None = None,
        perturb_func: Callable[..., Any] | None = None,
    ) -> None:
        if interpretable_model is None:
            _sklearn()  # the default needs scikit-learn: say so now, not after the forwards
            interpretable_model = SkLearnLasso(alpha=0.01)
        super().__init__(forward_func, interpretable_model,
                         similarity_func or get_exp_kernel_similarity_function(),
                         perturb_func or default_perturb_func, True,
                         default_from_interp_rep_transform, None)

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: TensorOrTuple | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: bool = True,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        """Lime attributions.

        Args:
            inputs: Tensor[B, ...] or a tuple of such tensors (same B). Each example is explained
                by its own surrogate, unless the model returns one scalar for the whole batch
                (then the batch is one example, as Captum).
            baselines: the value of features that are off: None (0), a scalar, a Tensor
                broadcastable to the input, or a tuple of those. Default: None
            target: Captum target or any pyxai target form (None: the output itself for one score
                per sample, else the predicted class). Default: None
            additional_forward_args: extra forward arguments (Tensors with B rows repeated per
                perturbation). Default: None
            feature_mask: integer Tensor (or tuple) broadcastable to the input (first dim 1 or
                B): equal ids form one interpretable feature, across inputs too. Default: None,
                one feature per scalar.
            n_samples: interpretable samples per example. Default: 25 (Captum 0.9's signature;
                its docstring says 50)
            perturbations_per_eval: samples per forward of each example (``that * B`` rows).
                Default: 1
            return_input_shape: True: attributions shaped like the inputs (each element gets its
                feature's weight); False: the weights, Tensor[B, F] (the surrogate's
                ``representation()`` as it is for B = 1). Default: True
            show_progress: progress bar. Default: False

        Returns:
            Tensor (or tuple) shaped like the inputs, float32 (first dim 1 when a model that
            aggregates its batch is explained), or the weights (``return_input_shape=False``).
        """
        return self._attribute(inputs, baselines, target, additional_forward_args, feature_mask,
                               n_samples, perturbations_per_eval, return_input_shape,
                               show_progress)

    def _sampling_kwargs(self, n_feat: int) -> dict[str, Any]:
        """Extra keyword arguments for ``perturb_func`` / ``similarity_func`` (KernelShap's)."""
        return {}

    def _batch_similarity(self, original: torch.Tensor, chunk: Inputs, bits: torch.Tensor,
                          ) -> torch.Tensor | None:
        """Similarities Tensor[R] of the R perturbed examples of a chunk at once, or None when
        ``similarity_func`` must be called per sample.

        Args:
            original: Tensor[R, N] each row's original input, flattened (all inputs).
            chunk: the chunk's perturbed inputs (R examples).
            bits: Tensor[R, F] bool, the interpretable samples.
        """
        if not isinstance(self.similarity_func, ExpKernelSimilarity):
            return None
        r = bits.shape[0]
        return self.similarity_func.batched(original, torch.cat([t.reshape(r, -1) for t in chunk],
                                                                1))

    @torch.no_grad()
    def _attribute(self, inputs: TensorOrTuple, baselines: Any, target: Any, args: Any,
                   feature_mask: TensorOrTuple | None, n_samples: int, perturbations_per_eval: int,
                   return_input_shape: bool, show_progress: bool) -> TensorOrTuple:
        xs, was_tuple, ppe, bases = _format_call(self.forward_func, inputs, perturbations_per_eval,
                                                 baselines)
        check_positive_int(n_samples, "n_samples")
        masks, n_feat = lime_feature_mask(feature_mask, xs)
        if n_feat == 0:
            raise ValueError("the inputs have no features to attribute (every input is empty)")
        if n_feat > 10000:
            warnings.warn(f"Lime / KernelShap with {n_feat} interpretable features (> 10000) can "
                          "be very slow or run out of memory: give a feature_mask that groups "
                          "the input features", UserWarning, stacklevel=3)
        extra = self._sampling_kwargs(n_feat)
        b = xs[0].shape[0]
        view, args = forward_view(self.forward_func), format_args(args)
        with torch.inference_mode():
            out0 = as_output(ExpandingForward(view, args, b)(*xs))
        model = copy.deepcopy(self.interpretable_model)  # each call fits its own
        own = own_model(model)
        resolved: ResolvedTarget | Any = target
        if is_aggregated(out0, b):  # one value for the batch: the batch is one example (Captum)
            selected = select_target(out0, target)
            if selected.numel() != 1:
                raise AggregateOutputError(
                    f"forward_func returned shape {tuple(out0.shape)} for a batch of {b}, and "
                    f"target={target!r} selects {selected.numel()} values of it: a model that "
                    "aggregates its batch must give one value per perturbed batch (pick it with "
                    "target)")
            if ppe != 1:
                raise AggregateOutputError(
                    f"forward_func returned shape {tuple(out0.shape)} for a batch of {b}: a model "
                    "that returns one value per batch needs perturbations_per_eval=1, got "
                    f"{ppe}")
            groups: list[list[int] | None] = [None]
        else:
            resolved = resolve(target, out0)
            groups = [list(range(b))] if own else [[e] for e in range(b)]
        job = _Job(view, args, xs, bases, masks, resolved, n_feat, extra, n_samples, ppe,
                   was_tuple, model, own, show_progress)
        coefs = [c for g in groups for c in self._explain_group(job, g)]
        return self._format_result(coefs, xs, masks, n_feat, was_tuple, groups == [None],
                                   return_input_shape)

    def _explain_group(self, job: _Job, group: list[int] | None) -> list[torch.Tensor]:
        """The surrogates' representations of the examples ``group`` of the batch (None: the
        whole batch as one example, for a model that aggregates it), evaluated together."""
        xs, bases, masks, args, b = job.xs, job.bases, job.masks, job.args, job.xs[0].shape[0]
        dev = xs[0].device
        if group is not None and len(group) < b:
            sel = torch.tensor(group, device=dev)
            xs, bases = tuple(x[sel] for x in xs), tuple(t[sel] for t in bases)
            masks = tuple(m[sel] if m.shape[0] == b > 1 else m for m in masks)
            args = tuple(a[sel.to(a.device)] if isinstance(a, torch.Tensor) and a.dim()
                         and a.shape[0] == b else a for a in args)
        rows_per_item = xs[0].shape[0]
        e_count = 1 if group is None else rows_per_item
        if group is None:
            examples = [(xs, bases, masks)]
        else:
            examples = [(tuple(x[e:e + 1] for x in xs), tuple(t[e:e + 1] for t in bases),
                         tuple(m[e:e + 1] if m.shape[0] == e_count > 1 else m for m in masks))
                        for e in range(e_count)]
        kwargs = [dict(baselines=_user_form(bs, job.was_tuple),
                       feature_mask=_user_form(ms, job.was_tuple),
                       num_interp_features=job.n_feat, **job.extra) for _, bs, ms in examples]
        samples = []
        for (ex, _, _), kw in zip(examples, kwargs):
            samples.append(self._draw(_user_form(ex, job.was_tuple), job.n_samples, kw))
            if job.own_model:  # what Captum's fit draws between this example and the next
                captum_fit_draws(job.n_feat)
        n = min(len(s) for s in samples)
        if n < max(len(s) for s in samples):
            warnings.warn(f"perturb_func yielded fewer samples for some examples: all use the "
                          f"first {n}", UserWarning, stacklevel=4)
        interp = torch.stack([s[:n] for s in samples]).to(dev)  # [E, n, F]
        bits = interp != 0
        f = job.n_feat
        sims = torch.empty(n, e_count, device=dev)
        original = torch.cat([x.reshape(e_count, -1) for x in xs], 1)  # [E, N]

        def make_chunk(lo: int, hi: int) -> Inputs:
            k = hi - lo
            units = bits[:, lo:hi].transpose(0, 1)  # [k, E, F]
            rows = units.expand(k, rows_per_item, f)
            chunk = []
            for x, base, m in zip(xs, bases, masks):
                idx = m.expand(rows_per_item, *m.shape[1:]).reshape(1, rows_per_item, -1)
                keep = torch.gather(rows, 2, idx.expand(k, -1, -1))
                keep = keep.reshape(k, rows_per_item, *m.shape[1:])
                chunk.append(torch.where(keep, x[None], base[None]).reshape(
                    k * rows_per_item, *x.shape[1:]))
            chunk = tuple(chunk)
            units = units.reshape(k * e_count, f)
            sim = self._batch_similarity(original.repeat(k, 1), chunk, units)
            if sim is None:
                sim = torch.tensor([self._one_similarity(
                    examples[u % e_count][0], chunk, u, job.was_tuple,
                    interp[u % e_count, lo + u // e_count], kwargs[u % e_count])
                    for u in range(k * e_count)])
            sims[lo:hi] = sim.reshape(k, e_count).to(sims)
            return chunk

        scores = torch.empty(n, e_count, device=dev)
        forward = ExpandingForward(job.view, args, rows_per_item)
        if group is None:
            self._run_aggregated(forward, make_chunk, n, scores, job.target, job.show_progress)
        else:
            ids = torch.tensor(group, device=dev)

            def consume(lo: int, hi: int, outputs: torch.Tensor) -> None:
                rows = ids.repeat(hi - lo).to(outputs.device)
                scores[lo:hi] = job.target(outputs, rows).reshape(hi - lo, e_count).to(scores)

            runner = PerturbationRunner(forward, batch_size=job.ppe * e_count,
                                        show_progress=job.show_progress)
            runner.run(n, make_chunk, consume, rows_per_item=e_count,
                       desc=progress_label(type(self)))
        return [fit_surrogate(job.model, job.own_model, interp[e], scores[:, e], sims[:, e])
                for e in range(e_count)]

    def _draw(self, original: TensorOrTuple, n: int, kwargs: dict[str, Any]) -> torch.Tensor:
        """Tensor[n', F] the interpretable samples of one example (n' < n when a generator ends
        early), in Captum's order: ``perturb_func`` called (or its generator advanced) n times."""
        f = kwargs["num_interp_features"]
        if self.perturb_func is default_perturb_func:  # n draws of [1, F] are one draw of [n, F]
            return torch.bernoulli(torch.ones(n, f) * 0.5).to(torch.bool)
        draw = sample_generator(self.perturb_func, original, kwargs)
        out = []
        for _ in range(n):
            try:
                s = draw()
            except StopIteration:
                warnings.warn("Generator completed prior to given n_samples iterations!",
                              UserWarning, stacklevel=4)
                break
            s = torch.as_tensor(s)
            if s.numel() != f:
                raise ValueError(f"perturb_func returned {s.numel()} values; it must return one "
                                 f"interpretable sample Tensor[1, {f}] (num_interp_features)")
            out.append(s.reshape(f).cpu())
        if not out:
            raise ValueError("perturb_func produced no samples")
        return torch.stack(out)

    def _one_similarity(self, original: Inputs, chunk: Inputs, u: int, was_tuple: bool,
                        sample: torch.Tensor, kwargs: dict[str, Any]) -> float:
        """``similarity_func`` of the chunk's example ``u`` (of ``original``'s rows each)."""
        rows = original[0].shape[0]
        pert = tuple(t[u * rows:(u + 1) * rows] for t in chunk)
        interp = sample.reshape(1, -1)
        interp = interp.long() if interp.dtype == torch.bool else interp
        return as_weight(self.similarity_func(_user_form(original, was_tuple),
                                              _user_form(pert, was_tuple), interp, **kwargs))

    def _run_aggregated(self, forward: Callable, make_chunk: Callable, n: int,
                        scores: torch.Tensor, target: Any, show_progress: bool) -> None:
        """One forward per sample of a model that returns one value for the whole batch (the
        value ``target`` selects in its output, as Captum)."""
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=progress_label(type(self)), unit="pert")
        try:
            for k in range(n):
                chunk = make_chunk(k, k + 1)
                with torch.inference_mode():
                    out = select_target(as_output(forward(*chunk)), target)
                if out.numel() != 1:
                    raise ValueError(f"forward_func returned {out.numel()} values for a perturbed "
                                     "batch; a model that aggregates its batch must return one")
                scores[k, 0] = out.reshape(()).to(scores.dtype)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    @staticmethod
    def _format_result(coefs: list[torch.Tensor], xs: Inputs, masks: Inputs, n_feat: int,
                       was_tuple: bool, aggregated: bool, return_input_shape: bool
                       ) -> TensorOrTuple:
        b = xs[0].shape[0]
        if not return_input_shape:
            if len(coefs) == 1 and (aggregated or b == 1):
                return coefs[0].to(xs[0].device)
            return torch.cat([c.reshape(1, -1) for c in coefs]).to(xs[0].device)
        weights = []
        for c in coefs:
            c = c.flatten()
            if c.numel() < n_feat:
                raise ValueError(f"interpretable_model.representation() has {c.numel()} values "
                                 f"for {n_feat} interpretable features")
            weights.append(c[:n_feat].float())
        w = torch.stack(weights).to(xs[0].device)  # [E, F]
        attrs = []
        for x, m in zip(xs, masks):
            rows = m.shape[0] if aggregated else b
            idx = m.expand(rows, *m.shape[1:]).reshape(rows, -1)
            vals = torch.gather(w.expand(rows, -1), 1, idx).reshape(rows, *m.shape[1:])
            attr = torch.zeros_like(x, dtype=torch.float32) + vals
            attrs.append(attr[0:1] if aggregated and b > 1 else attr)
        return tuple(attrs) if was_tuple else attrs[0]
