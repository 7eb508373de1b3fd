"""NoiseTunnel (SmoothGrad, SmoothGrad², VarGrad), drop-in for ``captum.attr.NoiseTunnel``.

Noisy copies of the inputs are attributed as batches of ``B * nt_samples_batch_size`` rows (all
``nt_samples`` at once by default); only one such batch is ever held. Row ``b * n + j`` of a batch
is sample ``b``'s ``j``-th noisy copy; the target is resolved once and handed to the wrapped method
so that a callable ``(outputs, rows)`` target sees the user's sample indices.

Noise: with ``seed=None`` it is drawn exactly as Captum draws it (global RNG, same calls, shapes and
order), so with the same global seed the results are equal. With an int ``seed`` it comes from a
private generator on the inputs' device, one draw per noisy sample, so the result depends on the
seed only — not on ``nt_samples_batch_size``, nor on other threads using the global RNG.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pyxai.engine.base import CaptumAttribution, Explainer
from pyxai.engine.checks import check_finite, check_int
from pyxai.engine.targets import ResolvedTarget
from pyxai.engine.view import forward_view, nested_call
from pyxai.gradient._common import (
    Inputs,
    RepeatedTarget,
    expand_args,
    format_args,
    format_call,
    format_output,
    repeat_target,
    resolve,
    resolve_none,
)

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _stdevs(stdevs: Any, n_inputs: int) -> tuple[float, ...]:
    """One finite, non-negative standard deviation per input."""
    if isinstance(stdevs, tuple):
        if len(stdevs) != n_inputs:
            raise ValueError(f"stdevs has {len(stdevs)} values but there are {n_inputs} inputs")
        sds = stdevs
    else:
        sds = (stdevs,) * n_inputs
    for sd in sds:
        if isinstance(sd, bool) or not isinstance(sd, (int, float)):
            raise TypeError(f"stdevs must be a float or a tuple of floats, got {stdevs!r}")
        if not math.isfinite(sd) or sd < 0:
            raise ValueError(f"stdevs must be finite and >= 0, got {stdevs!r}")
    return tuple(float(sd) for sd in sds)


def _captum_target(t: ResolvedTarget) -> Any:
    """A resolved target in a form a Captum attribution method understands."""
    if t.identity:
        return None
    if t.classes is not None:
        return t.classes
    if t.index is not None:
        return [tuple(row) for row in t.index.tolist()]
    raise TypeError("callable and per-sample targets need a pyxai attribution method inside "
                    "NoiseTunnel")


class NoiseTunnel(CaptumAttribution):
    """Average an attribution method over Gaussian-noised copies of the inputs.

    Args:
        attribution_method: a pyxai (or Captum-compatible) explainer with ``attribute`` and
            ``forward_func``, e.g. ``pyxai.Saliency(model)`` or ``pyxai.IntegratedGradients(m)``.
        seed: None: Captum's noise (the global RNG). An int: noise from a private generator, the
            same for the same seed and device whatever ``nt_samples_batch_size`` is.
            Default: None

    Examples::

        >>> nt = pyxai.NoiseTunnel(pyxai.Saliency(model))
        >>> attr = nt.attribute(x, nt_type="smoothgrad", nt_samples=16, stdevs=0.1, target=3)
    """

    def __init__(self, attribution_method: Any, seed: int | None = None) -> None:
        if not hasattr(attribution_method, "attribute"):
            raise TypeError("attribution_method must be an explainer with an attribute() method")
        super().__init__(getattr(attribution_method, "forward_func", None))
        self.attribution_method = attribution_method
        self.seed = None if seed is None else check_int(seed, "seed")

    @property
    def multiplies_by_inputs(self) -> bool:
        return bool(getattr(self.attribution_method, "multiplies_by_inputs", False))

    def has_convergence_delta(self) -> bool:
        fn = getattr(self.attribution_method, "has_convergence_delta", None)
        return bool(fn()) if callable(fn) else False

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Attributions of the wrapped method, smoothed over noisy samples.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            nt_type: ``"smoothgrad"`` (mean), ``"smoothgrad_sq"`` (mean of squares) or
                ``"vargrad"`` (variance). Default: "smoothgrad"
            nt_samples: noisy samples per example. Default: 5
            nt_samples_batch_size: samples per example attributed in one call (one batch of
                ``B * nt_samples_batch_size`` rows). None: all. Default: None
            stdevs: noise standard deviation (finite, >= 0), one float or one per input.
                Default: 1.0
            draw_baseline_from_distrib: draw each sample's baseline from the rows of
                ``baselines``. Default: False
            **kwargs: passed to the wrapped ``attribute`` (target, additional_forward_args,
                baselines, feature_mask, n_steps, create_graph, ...); per-example Tensors
                (masks with a first dim > 1 too, as Captum) are expanded per sample.
                ``create_graph=True`` keeps the result differentiable w.r.t. the model
                parameters.

        Returns:
            Attributions shaped like ``inputs`` (and Tensor[B * nt_samples] deltas when
            ``return_convergence_delta=True`` and the wrapped method has them).
        """
        if nt_type not in NT_TYPES:
            raise ValueError(f"nt_type must be one of {NT_TYPES}, got {nt_type!r}")
        if isinstance(nt_samples, bool) or not isinstance(nt_samples, int) or nt_samples <= 0:
            raise ValueError(f"nt_samples must be a positive int, got {nt_samples!r}")
        if nt_samples_batch_size is not None and (
            isinstance(nt_samples_batch_size, bool) or int(nt_samples_batch_size) <= 0
        ):
            raise ValueError(
                f"nt_samples_batch_size must be a positive int, got {nt_samples_batch_size!r}"
            )
        is_tuple, inp, _ = format_call(self.forward_func, inputs, None)
        sds = _stdevs(stdevs, len(inp))
        want_delta = bool(kwargs.get("return_convergence_delta", False))
        if want_delta and not self.has_convergence_delta():
            raise ValueError("the wrapped method has no convergence delta")
        keep_graph = bool(kwargs.get("create_graph", False))
        args = format_args(kwargs.get("additional_forward_args"))
        target = kwargs.pop("target", None)
        if self.forward_func is not None:
            forward = forward_view(self.forward_func)  # warns once for a train-mode model
            target = resolve_none(forward, inp, target, args)
        if kwargs.get("baselines") is not None:
            bl = kwargs["baselines"]
            for i, base in enumerate(bl if isinstance(bl, tuple) else (bl,)):
                if isinstance(base, (int, float, torch.Tensor)) and not isinstance(base, bool):
                    check_finite(base, f"baselines[{i}]")
        ours = isinstance(self.attribution_method, Explainer)
        if not ours and target is not None and not isinstance(target, ResolvedTarget):
            target = resolve(target, self._clean_outputs(inp, args))  # Captum's forms below
        # two private generators (noise, baseline draws), so that neither stream depends on the
        # batching of the samples
        gens = None
        if self.seed is not None:
            gens = [torch.Generator(device=inp[0].device).manual_seed(self.seed + k)
                    for k in (0, 1)]
        per = nt_samples if nt_samples_batch_size is None else min(nt_samples,
                                                                     int(nt_samples_batch_size))
        b = inp[0].shape[0]
        sums: list[torch.Tensor] | None = None
        sqs: list[torch.Tensor] = []
        deltas = []
        done = 0
        with nested_call():
            while done < nt_samples:
                n = min(per, nt_samples - done)
                noisy = self._noisy(inp, sds, n, None if gens is None else gens[0])
                kw = self._expand_kwargs(kwargs, inp, n, draw_baseline_from_distrib,
                                         None if gens is None else gens[1])
                if ours:
                    kw["target"] = RepeatedTarget(target, n)
                elif target is not None:
                    kw["target"] = _captum_target(repeat_target(target, n))
                out = self.attribution_method.attribute(noisy if is_tuple else noisy[0], **kw)
                if want_delta:
                    out, delta = out
                    deltas.append(delta)
                attrs = out if isinstance(out, tuple) else (out,)
                parts = [a.reshape(b, n, *a.shape[1:]) for a in attrs]
                if sums is None:
                    sums = [p.sum(1) for p in parts]
                    sqs = [(p * p).sum(1) for p in parts]
                else:
                    sums = [s + p.sum(1) for s, p in zip(sums, parts)]
                    sqs = [s + (p * p).sum(1) for s, p in zip(sqs, parts)]
                done += n
        assert sums is not None
        mean = [s / nt_samples for s in sums]
        if nt_type == "smoothgrad":
            res = mean
        elif nt_type == "smoothgrad_sq":
            res = [s / nt_samples for s in sqs]
        else:
            res = [s / nt_samples - m * m for s, m in zip(sqs, mean)]
        if not keep_graph:
            res = [r.detach() for r in res]
        result = format_output(is_tuple, tuple(res))
        return (result, torch.cat(deltas)) if want_delta else result

    def _clean_outputs(self, inp: Inputs, args: tuple) -> torch.Tensor:
        if self.forward_func is None:
            raise TypeError("the wrapped method has no forward_func to resolve the target on")
        with torch.no_grad():
            return forward_view(self.forward_func)(*inp, *args)

    @staticmethod
    def _noisy(inp: Inputs, sds: tuple[float, ...], n: int, gen: torch.Generator | None
               ) -> Inputs:
        """Tensor[B * n, ...] per input: row ``b * n + j`` is ``x[b]`` plus noise."""
        if gen is None:  # as Captum: one normal() per input over all rows, same RNG stream
            noise = [torch.normal(0, torch.full((x.shape[0] * n, *x.shape[1:]), sd,
                                                device=x.device)) for x, sd in zip(inp, sds)]
        else:  # one draw per noisy sample and input, sample-major: independent of the batching
            draws = [[torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * sd
                      for x, sd in zip(inp, sds)] for _ in range(n)]
            noise = [torch.stack([d[i] for d in draws], 1).reshape(x.shape[0] * n, *x.shape[1:])
                     for i, x in enumerate(inp)]
        return tuple(x.detach().repeat_interleave(n, dim=0) + e for x, e in zip(inp, noise))

    @staticmethod
    def _expand_kwargs(kwargs: dict, inp: Inputs, n: int, from_distrib: bool,
                       gen: torch.Generator | None) -> dict:
        kw = dict(kwargs)
        if isinstance(kw.get("feature_mask"), (torch.Tensor, tuple)):  # as Captum: per-sample masks
            fm = kw["feature_mask"]
            ms = tuple(m.repeat_interleave(n, dim=0) if isinstance(m, torch.Tensor) and m.dim()
                       and m.shape[0] > 1 else m for m in (fm if isinstance(fm, tuple) else (fm,)))
            kw["feature_mask"] = ms if isinstance(fm, tuple) else ms[0]
        if "additional_forward_args" in kw and kw["additional_forward_args"] is not None:
            kw["additional_forward_args"] = expand_args(
                format_args(kw["additional_forward_args"]), n, interleave=True)
        if kw.get("baselines") is not None:
            bl = kw["baselines"] if isinstance(kw["baselines"], tuple) else (kw["baselines"],)
            out = []
            for x, base in zip(inp, bl):
                if isinstance(base, torch.Tensor) and from_distrib:
                    if gen is None:
                        idx = torch.randint(base.shape[0], (x.shape[0] * n,))
                    else:  # per noisy sample, as the noise
                        idx = torch.stack([torch.randint(base.shape[0], (x.shape[0],),
                                                         generator=gen, device=gen.device)
                                           for _ in range(n)], 1).reshape(-1)
                    base = base[idx.to(base.device)]
                elif (isinstance(base, torch.Tensor) and base.shape[0] == x.shape[0]
                      and base.shape[0] > 1):
                    base = base.repeat_interleave(n, dim=0)
                out.append(base)
            kw["baselines"] = tuple(out) if isinstance(kw["baselines"], tuple) else out[0]
        return kw
