"""NoiseTunnel (SmoothGrad, SmoothGrad², VarGrad), drop-in for ``captum.attr.NoiseTunnel``.

Noisy copies of the inputs are attributed as batches of ``B * nt_samples_batch_size`` rows (all
``nt_samples`` at once by default); only one such batch is ever held. The noise is drawn exactly as
Captum draws it (same calls, shapes and order), so with the same RNG seed the results are equal.
"""

from __future__ import annotations

from typing import Any

import torch

from pyxai.gradient._common import (
    expand_args,
    expand_target,
    format_args,
    format_inputs,
    format_output,
    resolve_none_target,
)

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


class NoiseTunnel:
    """Average an attribution method over Gaussian-noised copies of the inputs.

    Args:
        attribution_method: a pyxai (or Captum-compatible) explainer with ``attribute`` and
            ``forward_func``, e.g. ``pyxai.Saliency(model)`` or ``pyxai.IntegratedGradients(m)``.

    Examples::

        >>> nt = pyxai.NoiseTunnel(pyxai.Saliency(model))
        >>> attr = nt.attribute(x, nt_type="smoothgrad", nt_samples=16, stdevs=0.1, target=3)
    """

    def __init__(self, attribution_method: Any) -> None:
        if not hasattr(attribution_method, "attribute"):
            raise TypeError("attribution_method must be an explainer with an attribute() method")
        self.attribution_method = attribution_method
        self.forward_func = getattr(attribution_method, "forward_func", None)

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
            stdevs: noise standard deviation, one float or one per input. Default: 1.0
            draw_baseline_from_distrib: draw each sample's baseline from the rows of
                ``baselines`` (torch RNG). Default: False
            **kwargs: passed to the wrapped ``attribute`` (target, additional_forward_args,
                baselines, n_steps, ...); per-example Tensors are expanded per sample.

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
        is_tuple, inp = format_inputs(inputs)
        if isinstance(stdevs, tuple):
            if len(stdevs) != len(inp):
                raise ValueError(f"stdevs has {len(stdevs)} values but there are {len(inp)} inputs")
            sds = stdevs
        elif isinstance(stdevs, (int, float)) and not isinstance(stdevs, bool):
            sds = (float(stdevs),) * len(inp)
        else:
            raise TypeError(f"stdevs must be a float or a tuple of floats, got {type(stdevs)}")
        want_delta = bool(kwargs.get("return_convergence_delta", False))
        if want_delta and not self.has_convergence_delta():
            raise ValueError("the wrapped method has no convergence delta")
        args = format_args(kwargs.get("additional_forward_args"))
        if self.forward_func is not None and kwargs.get("target") is None:
            kwargs["target"] = resolve_none_target(self.forward_func, inp, None, args)
        per = nt_samples if nt_samples_batch_size is None else min(nt_samples,
                                                                     int(nt_samples_batch_size))
        b = inp[0].shape[0]
        sums: list[torch.Tensor] | None = None
        sqs: list[torch.Tensor] = []
        deltas = []
        done = 0
        while done < nt_samples:
            n = per if nt_samples - done >= per else nt_samples - done
            noisy = tuple(self._noisy(x.detach(), sd, n) for x, sd in zip(inp, sds))
            kw = self._expand_kwargs(kwargs, inp, n, draw_baseline_from_distrib)
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
        result = format_output(is_tuple, tuple(r.detach() for r in res))
        return (result, torch.cat(deltas)) if want_delta else result

    @staticmethod
    def _noisy(x: torch.Tensor, sd: float, n: int) -> torch.Tensor:
        shape = (x.shape[0] * n, *x.shape[1:])
        std = torch.tensor(sd, device=x.device).repeat(shape)  # as Captum: same RNG stream
        return x.repeat_interleave(n, dim=0) + torch.normal(0, std)

    @staticmethod
    def _expand_kwargs(kwargs: dict, inp: tuple, n: int, from_distrib: bool) -> dict:
        kw = dict(kwargs)
        if "additional_forward_args" in kw and kw["additional_forward_args"] is not None:
            kw["additional_forward_args"] = expand_args(
                format_args(kw["additional_forward_args"]), n, interleave=True)
        if "target" in kw:
            kw["target"] = expand_target(kw["target"], n, interleave=True)
        if kw.get("baselines") is not None:
            bl = kw["baselines"] if isinstance(kw["baselines"], tuple) else (kw["baselines"],)
            out = []
            for x, base in zip(inp, bl):
                if isinstance(base, torch.Tensor) and from_distrib:
                    idx = torch.randint(base.shape[0], (x.shape[0] * n,))
                    base = base[idx.to(base.device)]
                elif (isinstance(base, torch.Tensor) and base.shape[0] == x.shape[0]
                      and base.shape[0] > 1):
                    base = base.repeat_interleave(n, dim=0)
                out.append(base)
            kw["baselines"] = tuple(out) if isinstance(kw["baselines"], tuple) else out[0]
        return kw
