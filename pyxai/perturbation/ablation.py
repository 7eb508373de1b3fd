"""Occlusion and FeatureAblation: drop-in replacements for ``captum.attr``'s classes.

Same class names, constructors, ``attribute()`` signatures, defaults and outputs as Captum. The
work is done by the perturbation runner: each chunk of ``perturbations_per_eval`` perturbations is
written directly (``pyxai.ops.occlusion_perturb`` for windows; one ``torch.where`` against the
feature ids for feature groups), the model scores are gathered on device, and only the output drops
``f(x) - f(x_perturbed)`` (one scalar per perturbation and sample) are kept. The attribution is
built from the drops at the end: for Occlusion the mean over the windows covering each element
(``pyxai.ops.occlusion_accumulate``), for FeatureAblation the drop of each element's feature.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from pyxai.engine.accumulators import ItemScores
from pyxai.engine.base import CaptumAttribution
from pyxai.engine.checks import check_same_device
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import Target
from pyxai.engine.view import forward_view
from pyxai.gradient._common import resolve
from pyxai.ops.occlusion import (
    check_windows,
    occlusion_accumulate,
    occlusion_perturb,
    window_counts,
)
from pyxai.perturbation._captum import (
    AggregateOutputError,
    CaptumArgumentError,
    ExpandingForward,
    as_output,
    expand_target,
    format_args,
    format_baselines,
    format_inputs,
    is_aggregated,
    select_target,
)

TensorOrTuple = torch.Tensor | tuple[torch.Tensor, ...]


def _check_ppe(perturbations_per_eval: int) -> int:
    if (isinstance(perturbations_per_eval, bool) or not isinstance(perturbations_per_eval, int)
            or perturbations_per_eval < 1):
        raise ValueError(
            f"perturbations_per_eval must be an int >= 1, got {perturbations_per_eval!r}"
        )
    return perturbations_per_eval


def _format_call(
    forward_func: Callable, inputs: TensorOrTuple, perturbations_per_eval: int, baselines: Any,
    same_batch: bool = True,
) -> tuple[tuple[torch.Tensor, ...], bool, int, tuple[torch.Tensor, ...]]:
    """The checked common arguments of ``attribute()``: (inputs, was_tuple, ppe, baselines)."""
    xs, was_tuple = format_inputs(inputs, same_batch)
    for x in xs:
        check_same_device(forward_func, x)
    ppe = _check_ppe(perturbations_per_eval)
    return xs, was_tuple, ppe, format_baselines(baselines, xs)


def _run_drops(
    forward_func: Callable, xs: tuple[torch.Tensor, ...], target: Any, args: Any,
    n_items: int, make_chunk: Callable[[int, int], tuple[torch.Tensor, ...]],
    perturbations_per_eval: int, show_progress: bool, desc: str,
) -> torch.Tensor:
    """Output drops Tensor[n_items, R]: f(x)[target] - f(perturbation k)[target].

    R is B (one score per sample), or, for a model that aggregates its batch (Captum's
    aggregated-output mode: a scalar or a fixed-size output for the whole
    batch), the number of elements ``target`` selects in the output (all of them for None; see
    :func:`~pyxai.perturbation._captum.select_target`). As Captum, that mode takes
    ``perturbations_per_eval > 1`` only when the selected output grows with the batch.
    """
    b = xs[0].shape[0]
    forward = ExpandingForward(forward_view(forward_func), format_args(args), b)
    with torch.inference_mode():
        out0 = as_output(forward(*xs))
    if not is_aggregated(out0, b):
        resolved = resolve(target, out0)  # any target form, also a NoiseTunnel's
        base_scores = resolved(out0)
        drops = ItemScores(n_items, base_scores, base=base_scores)
        runner = PerturbationRunner(
            forward, batch_size=perturbations_per_eval * b, show_progress=show_progress
        )
        runner.run(n_items, make_chunk, drops, rows_per_item=b, target=resolved, desc=desc)
        return drops.result()
    sel0 = select_target(out0, target)
    base = sel0.reshape(-1)
    drops = ItemScores(n_items, base, base=base)
    _run_aggregated(forward, n_items, make_chunk, target, sel0, b, perturbations_per_eval, drops,
                    show_progress, desc)
    return drops.result()


def _run_aggregated(
    forward: Callable, n_items: int, make_chunk: Callable[[int, int], tuple[torch.Tensor, ...]],
    target: Any, sel0: torch.Tensor, batch: int, perturbations_per_eval: int,
    consume: Callable[[int, int, torch.Tensor], None], show_progress: bool, desc: str,
) -> None:
    """Evaluate perturbations ``[0, n_items)`` of a model that aggregates its batch (Captum's
    aggregated-output mode), ``perturbations_per_eval`` per forward and in order, and hand each
    chunk's target values to ``consume(start, stop, Tensor[stop - start, sel0.numel()])``.

    ``forward`` is the :class:`~pyxai.perturbation._captum.ExpandingForward` of a ``batch``-row
    input and ``sel0`` what ``target`` selects in the output of the unperturbed inputs (see
    :func:`~pyxai.perturbation._captum.select_target`); a chunk's target is
    :func:`~pyxai.perturbation._captum.expand_target`'s. The first batched forward is checked by
    :func:`_check_grows`.
    """
    n_out = sel0.numel()
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_items, desc=desc, unit="pert")
    try:
        with torch.inference_mode():
            for start in range(0, n_items, perturbations_per_eval):
                stop = min(start + perturbations_per_eval, n_items)
                k = stop - start
                out = select_target(as_output(forward(*make_chunk(start, stop))),
                                    expand_target(target, k))
                if start == 0 and perturbations_per_eval > 1:
                    _check_grows(sel0, out, batch, k, perturbations_per_eval)
                if out.numel() != k * n_out:
                    raise ValueError(f"forward_func gave {out.numel()} target values for {k} "
                                     f"perturbed batches but {n_out} for the inputs")
                consume(start, stop, out.reshape(k, n_out))
                if bar is not None:
                    bar.update(k)
    finally:
        if bar is not None:
            bar.close()


def _check_grows(sel0: torch.Tensor, out: torch.Tensor, b: int, k: int,
                 perturbations_per_eval: int) -> None:
    """Captum's check of the first batched forward: with ``perturbations_per_eval > 1`` the
    target values of ``k`` perturbations evaluated together (``out``) must have ``k`` times the
    first dim of those of the inputs (``sel0``); an output aggregating its whole batch cannot be
    split into perturbations."""
    if out.dim() and sel0.dim() and out.shape[0] == k * sel0.shape[0]:
        return
    raise AggregateOutputError(
        f"forward_func's target values have shape {tuple(sel0.shape)} for a batch of {b} and "
        f"{tuple(out.shape)} for {k} perturbations of it together: an output that does not grow "
        f"with the batch (aggregated) needs perturbations_per_eval=1, got {perturbations_per_eval}"
    )


def _repeat(x: torch.Tensor, n: int) -> torch.Tensor:
    return x if n == 1 else x.repeat(n, *([1] * (x.dim() - 1)))


class FeatureAblation(CaptumAttribution):
    """Ablate groups of input features (set them to the baseline) and measure the output drop.

    Drop-in for ``captum.attr.FeatureAblation``: each feature group (by default every scalar of
    every input) is replaced by its baseline, the model is evaluated, and each element's attribution
    is ``f(x)[target] - f(x with its group ablated)[target]``.

    Args:
        forward_func: model or callable ``(*inputs, *additional_forward_args) -> Tensor[B, ...]``.
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``); the ops' backend.

    Examples::

        >>> ablator = pyxai.FeatureAblation(model)
        >>> attr = ablator.attribute(x, target=3, feature_mask=segments)   # Tensor like x
    """

    _multiply_by_inputs = True  # as Captum's PerturbationAttribution

    def __init__(self, forward_func: Callable[..., torch.Tensor], backend: str | None = None) -> None:
        super().__init__(forward_func)
        self.backend = backend

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Target | tuple | list = None,
        additional_forward_args: Any = None,
        feature_mask: TensorOrTuple | None = None,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> TensorOrTuple:
        """Attributions by feature-group ablation.

        Args:
            inputs: Tensor[B, ...] or a tuple of such tensors (same B), float.
            baselines: value of ablated features: None (0), a scalar, a Tensor broadcastable to the
                input, or a tuple of those (one per input). Default: None.
            target: Captum target (int, tuple, Tensor, list of int or of tuples), a callable
                ``outputs -> Tensor[R]``, or None (the output itself for one-score-per-sample
                models, else the predicted class). For a model that aggregates its batch (a scalar
                or a fixed-size output), as Captum: None (every output element) or an index into
                it (``target=1`` on a Tensor[1, K] gives one attribution row). Default: None.
            additional_forward_args: extra arguments for ``forward_func`` after the inputs; tensors
                are repeated along dim 0 for batched perturbations, as Captum. Default: None.
            feature_mask: integer Tensor (or tuple, one per input) broadcastable to the input, whose
                equal values form one feature group (ids may be shared across inputs, which are then
                ablated together). Default: None, every scalar is its own feature.
            perturbations_per_eval: feature groups per forward pass (batch of ``that * B`` rows).
                Default: 1.
            show_progress: progress bar. Default: False.

        Returns:
            Tensor (or tuple) shaped like the inputs, of the model output's dtype.
        """
        xs, was_tuple, ppe, bases = _format_call(self.forward_func, inputs, perturbations_per_eval,
                                                 baselines, same_batch=False)
        masks = self._format_mask(feature_mask, xs)
        # feature ids in Captum's order: sorted per input, inputs in order, first appearance wins
        ids_per_input = [torch.unique(m) for m in masks]
        order: dict[int, int] = {}
        for u in ids_per_input:
            for v in u.tolist():
                order.setdefault(v, len(order))
        ids = torch.tensor(list(order), dtype=torch.int64)
        n = len(order)
        dev_ids = [ids.to(x.device) for x in xs]
        present = [torch.isin(ids, u.cpu()) for u in ids_per_input]  # [n] bool per input

        def make_chunk(start: int, stop: int) -> tuple[torch.Tensor, ...]:
            k = stop - start
            out = []
            for x, base, m, idv, pres in zip(xs, bases, masks, dev_ids, present):
                if not bool(pres[start:stop].any()):
                    out.append(_repeat(x, k))
                    continue
                sel = idv[start:stop].reshape((k,) + (1,) * x.dim())
                ablate = m[None] == sel  # [k, *mask shape]
                out.append(torch.where(ablate, base[None], x[None].to(base.dtype))
                           .reshape(k * x.shape[0], *x.shape[1:]))
            return tuple(out)

        drops = _run_drops(self.forward_func, xs, target, additional_forward_args, n, make_chunk,
                           ppe, show_progress, "Feature Ablation attribution")
        # drops: [n, R] (R = B, or the output size of an aggregating model). Each element takes
        # the drop of its own feature: attribution [R, *input dims] = drops[position of id, r]
        sorted_ids, perm = torch.sort(ids)  # ids[i] is at position i, so sorted_ids[j] -> perm[j]
        r = drops.shape[1]
        attrs = []
        for i, (x, m) in enumerate(zip(xs, masks)):
            shape = (r, *x.shape[1:])
            if x.numel() == 0 or m.numel() == 0:
                attrs.append(drops.new_zeros(shape))
                continue
            if m.shape[0] not in (1, r):
                raise ValueError(
                    f"feature_mask{f'[{i}]' if len(xs) > 1 else ''} has {m.shape[0]} rows but "
                    f"the attribution has {r} (one per output of a model that aggregates the "
                    "batch): give the mask a first dim of 1"
                )
            pos = perm.to(m.device)[torch.searchsorted(sorted_ids.to(m.device), m.contiguous())]
            pos = pos.expand(shape).reshape(r, -1).to(drops.device)
            attrs.append(torch.gather(drops.T, 1, pos).reshape(shape))
        return tuple(attrs) if was_tuple else attrs[0]

    @staticmethod
    def _format_mask(
        feature_mask: TensorOrTuple | None, xs: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        """Feature masks padded to the inputs' rank (Captum's default: one id per scalar)."""
        if feature_mask is None:
            masks, start = [], 0
            for x in xs:  # as Captum: ids shaped like x[0:1] (none for an empty input)
                numel = math.prod(x[0:1].shape)
                masks.append(torch.arange(start, start + numel, device=x.device)
                             .reshape(x[0:1].shape))
                start += numel
            return tuple(masks)
        ms = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
        if len(ms) != len(xs):
            raise ValueError(f"feature_mask has {len(ms)} tensors but there are {len(xs)} inputs")
        out = []
        for i, (m, x) in enumerate(zip(ms, xs)):
            name = f"feature_mask[{i}]" if len(xs) > 1 else "feature_mask"
            if not isinstance(m, torch.Tensor):
                raise TypeError(f"{name} must be an integer Tensor, got {type(m).__name__}")
            if m.is_floating_point() or m.is_complex():
                raise TypeError(f"{name} must hold integer feature ids, got dtype {m.dtype}")
            ok = m.dim() <= x.dim() and all(
                a == 1 or a == b for a, b in zip(reversed(m.shape), reversed(x.shape))
            )
            if not ok:
                raise ValueError(
                    f"{name} of shape {tuple(m.shape)} does not broadcast to the input of shape "
                    f"{tuple(x.shape)} (each dim must be 1 or the input's)"
                )
            out.append(m.long().to(x.device).reshape((1,) * (x.dim() - m.dim()) + tuple(m.shape)))
        return tuple(out)


class Occlusion(CaptumAttribution):
    """Slide a window over the input, set it to the baseline and measure the output drop.

    Drop-in for ``captum.attr.Occlusion``: windows start at multiples of the stride along every dim
    (first dim varying fastest; the last window is cropped at the border), and each element's
    attribution is the mean output drop over the windows covering it.

    Args:
        forward_func: model or callable ``(*inputs, *additional_forward_args) -> Tensor[B, ...]``.
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``); the ops' backend.

    Examples::

        >>> occ = pyxai.Occlusion(model)
        >>> attr = occ.attribute(x, sliding_window_shapes=(3, 15, 15), strides=(3, 8, 8), target=3)
    """

    _multiply_by_inputs = True  # as Captum's PerturbationAttribution

    def __init__(self, forward_func: Callable[..., torch.Tensor], backend: str | None = None) -> None:
        super().__init__(forward_func)
        self.backend = backend

    def attribute(
        self,
        inputs: TensorOrTuple,
        sliding_window_shapes: tuple[int, ...] | tuple[tuple[int, ...], ...],
        strides: None | int | tuple[int, ...] | tuple[int | tuple[int, ...], ...] = None,
        baselines: Any = None,
        target: Target | tuple | list = None,
        additional_forward_args: Any = None,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        """Occlusion attributions.

        Args:
            inputs: Tensor[B, ...] or a tuple of such tensors (same B), float.
            sliding_window_shapes: window shape per input: a tuple with one int per dim after the
                batch (e.g. ``(3, 15, 15)`` for images), or a tuple of such tuples for tuple inputs.
            strides: int (all dims), tuple of ints per dim, or (tuple inputs) one int or tuple per
                input. Default: None, a stride of 1.
            baselines: value written in the window: None (0), scalar, Tensor broadcastable to the
                input, or a tuple of those (one per input). Default: None.
            target: as :meth:`FeatureAblation.attribute`. Default: None.
            additional_forward_args: as :meth:`FeatureAblation.attribute`. Default: None.
            perturbations_per_eval: windows per forward pass (``that * B`` rows). Default: 1.
            show_progress: progress bar. Default: False.

        Returns:
            Tensor (or tuple) shaped like the inputs, of the model output's dtype.
        """
        xs, was_tuple, ppe, bases = _format_call(self.forward_func, inputs, perturbations_per_eval, baselines)
        windows, strides_ = self._format_windows(sliding_window_shapes, strides, xs)
        n_per = [math.prod(window_counts(x.shape[1:], w, s)) if w else 1
                 for x, w, s in zip(xs, windows, strides_)]
        offsets = [sum(n_per[:i]) for i in range(len(xs))]
        total = sum(n_per)
        backend = self.backend

        def make_chunk(start: int, stop: int) -> tuple[torch.Tensor, ...]:
            k = stop - start
            out = []
            for x, base, w, s, off, n in zip(xs, bases, windows, strides_, offsets, n_per):
                lo, hi = max(start, off), min(stop, off + n)
                if lo >= hi:
                    out.append(_repeat(x, k))
                    continue
                x = x.to(base.dtype)  # as Captum: an int input with a float baseline -> float
                parts = []
                if lo > start:
                    parts.append(_repeat(x, lo - start))
                if w:
                    parts.append(occlusion_perturb(x, w, s, lo - off, hi - lo, base,
                                                   backend=backend))
                else:  # the one 0-d window: the whole (scalar) row
                    parts.append(base)
                if hi < stop:
                    parts.append(_repeat(x, stop - hi))
                out.append(torch.cat(parts) if len(parts) > 1 else parts[0])
            return tuple(out)

        drops = _run_drops(self.forward_func, xs, target, additional_forward_args, total,
                           make_chunk, ppe, show_progress, "Occlusion attribution")
        attrs = tuple(
            occlusion_accumulate(drops[off : off + n], x.shape[1:], w, s, backend=backend)
            if w else drops[off]
            for x, w, s, off, n in zip(xs, windows, strides_, offsets, n_per)
        )
        return attrs if was_tuple else attrs[0]

    @staticmethod
    def _format_windows(
        sliding_window_shapes: Any, strides: Any, xs: tuple[torch.Tensor, ...]
    ) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        """Captum's formats for windows and strides, validated per input."""
        if sliding_window_shapes == () and len(xs) == 1:
            sliding_window_shapes = ((),)
        if not isinstance(sliding_window_shapes, tuple) or not sliding_window_shapes:
            raise TypeError(
                "sliding_window_shapes must be a tuple of ints (one per dim after the batch) or a "
                f"tuple of such tuples, got {sliding_window_shapes!r}"
            )
        if isinstance(sliding_window_shapes[0], int) and not isinstance(
                sliding_window_shapes[0], bool):
            sliding_window_shapes = (sliding_window_shapes,)
        if len(sliding_window_shapes) != len(xs):
            raise CaptumArgumentError(
                f"sliding_window_shapes has {len(sliding_window_shapes)} entries but there are "
                f"{len(xs)} inputs"
            )
        if strides is None:
            strides = (1,) * len(xs)
        if len(xs) == 1 and not (isinstance(strides, tuple) and len(strides) == 1):
            strides = (strides,)
        if not isinstance(strides, tuple) or len(strides) != len(xs):
            raise CaptumArgumentError(f"strides must give one entry per input ({len(xs)}), got {strides!r}")
        windows, strides_out = [], []
        for i, (x, w, s) in enumerate(zip(xs, sliding_window_shapes, strides)):
            nd = x.dim() - 1
            if not isinstance(w, Sequence) or len(w) != nd:
                raise CaptumArgumentError(
                    f"sliding_window_shapes for input {i} is {w!r} but must be a tuple of {nd} "
                    f"ints for an input of shape {tuple(x.shape)}"
                )
            if isinstance(s, bool) or not isinstance(s, (int, Sequence)):
                raise TypeError(f"strides for input {i} must be an int or a tuple, got {s!r}")
            s = (s,) * nd if isinstance(s, int) else tuple(s)
            if len(s) != nd:
                raise CaptumArgumentError(
                    f"strides for input {i} is {s} but must be an int or a tuple of {nd} ints"
                )
            if nd == 0:  # Captum's 0-d windows on a Tensor[B]: each sample's scalar at once
                windows.append(())
                strides_out.append(())
                continue
            try:
                _, w_, s_ = check_windows(x.shape[1:], w, s)
            except ValueError as e:
                raise CaptumArgumentError(f"input {i}: {e}") from None
            windows.append(w_)
            strides_out.append(s_)
        return windows, strides_out
