"""``pyxai.LRP``: layer-wise relevance propagation with Zennit's rules, composites and canonizers."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Union

import torch
from torch import nn

from pyxai.engine.checks import check_inputs, check_same_device
from pyxai.engine.targets import Target, resolve_target
from pyxai.lrp.canonizers import CanonizerSpec, canonized, resolve_canonizers
from pyxai.lrp.composites import Composite, resolve_composite
from pyxai.lrp.core import Session, rules_installed
from pyxai.ops._dispatch import check_backend

OUTPUT_RELEVANCE = ("score", "one_hot")


class _PropagationBase:
    """Shared set-up of LRP and CRP: composite, canonizers, argument checks, the hooked session."""

    def __init__(
        self,
        model: nn.Module,
        composite: Union[str, Composite] = "epsilon_plus_flat",
        canonizers: CanonizerSpec = "auto",
        epsilon: float | None = None,
        gamma: float | None = None,
        low: float | torch.Tensor | None = None,
        high: float | torch.Tensor | None = None,
        stabilizer: float | None = None,
        output_relevance: str = "score",
        backend: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if output_relevance not in OUTPUT_RELEVANCE:
            raise ValueError(f"output_relevance must be one of {OUTPUT_RELEVANCE}, got {output_relevance!r}")
        self.model = model
        self.composite = resolve_composite(
            composite, epsilon=epsilon, gamma=gamma, low=low, high=high, stabilizer=stabilizer
        )
        if self.composite.name == "gradient" and canonizers == "auto":
            canonizers = None  # no rules, nothing to canonize: the plain gradient of the model as is
        self.canonizers = resolve_canonizers(canonizers, model)
        self.output_relevance = output_relevance
        self.backend = check_backend(backend) if backend is not None else None

    @contextmanager
    def _session(self, replicas: int = 1) -> Iterator[Session]:
        """Canonize, attach rules; on exit (also after an exception) the model is as found."""
        session = Session(backend=self.backend, replicas=replicas)
        with canonized(self.model, self.canonizers):
            assigned = self.composite.assign(self.model)
            with rules_installed([(m, r) for _, m, r in assigned], session):
                yield session

    def _check(self, inputs: torch.Tensor) -> torch.Tensor:
        check_inputs(inputs, ndims=(2, 3, 4, 5))
        check_same_device(self.model, inputs)
        return inputs

    def _initial_relevance(
        self, outputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Relevance put on the outputs: the target's score (or 1) at the target, 0 elsewhere.

        Returns (Tensor shaped like outputs, resolved Tensor[B] target or None for callables).
        """
        tgt = resolve_target(target, outputs.detach())
        if callable(tgt) and not isinstance(tgt, torch.Tensor):
            with torch.enable_grad():
                o = outputs.detach().requires_grad_(True)
                scores = tgt(o).reshape(-1)
                weight = scores.detach() if self.output_relevance == "score" else torch.ones_like(scores)
                (init,) = torch.autograd.grad(scores, o, weight)
            return init, None
        init = torch.zeros_like(outputs)
        rows = torch.arange(outputs.shape[0], device=outputs.device)
        if self.output_relevance == "score":
            init[rows, tgt] = outputs.detach()[rows, tgt]
        else:
            init[rows, tgt] = 1
        return init, tgt


class LRP(_PropagationBase):
    """Layer-wise relevance propagation (Zennit's rules, composites and canonizers; Captum's call).

    The model is canonized (BatchNorm merged into the preceding layer, residual additions made
    explicit), each module gets its composite's rule, and one backward pass propagates the relevance
    put on the output to the input. Rules run as custom autograd Functions on the stored layer
    inputs and outputs (``pyxai.ops.lrp_*``), never re-running a layer's forward where the rule
    does not need one. The model is left exactly as found.

    Args:
        model (nn.Module): Tensor[B, ...] -> Tensor[B, K] scores.
        composite (str or Composite, optional): ``"epsilon_plus"``, ``"epsilon_plus_flat"``,
            ``"epsilon_gamma_box"``, ``"epsilon_alpha2_beta1"``, ``"epsilon_alpha2_beta1_flat"``,
            ``"gradient"``, or a :class:`pyxai.lrp.Composite`. Default: "epsilon_plus_flat"
        canonizers (optional): ``"auto"``, None, or canonizer(s) from :mod:`pyxai.lrp.canonizers`.
            Default: "auto"
        epsilon, gamma, low, high, stabilizer (optional): parameters of the named composite
            (Zennit's defaults: epsilon 1e-6, gamma 0.25, stabilizer 1e-6; ``low``/``high``, the
            input bounds, are required by ``epsilon_gamma_box``).
        output_relevance (str, optional): ``"score"``: the relevance put on the output is the
            target's score (Captum, zennit-crp); ``"one_hot"``: 1 (Zennit's usual start).
            Default: "score"
        backend (str, optional): "auto" | "native" | "reference". Default: env or "auto"

    Examples::

        >>> lrp = pyxai.LRP(model, composite="epsilon_gamma_box", low=-3.0, high=3.0)
        >>> rel, delta = lrp.attribute(x, target=3, return_convergence_delta=True)
    """

    def attribute(
        self,
        inputs: torch.Tensor,
        target: Target = None,
        return_convergence_delta: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Relevance of every input element.

        Args:
            inputs (Tensor): Tensor[B, C, H, W] (or [B, C, T, H, W], [B, F], ...).
            target (optional): int, sequence of int / Tensor[B], callable ``outputs -> Tensor[B]``,
                or None (predicted class). Default: None
            return_convergence_delta (bool, optional): also return Tensor[B]
                ``sum(relevance) - relevance put on the output`` (conservation). Default: False

        Returns:
            Tensor shaped like ``inputs`` (and Tensor[B] delta when asked).
        """
        self._check(inputs)
        x = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad(), self._session():
            outputs = self.model(x)
            init, _ = self._initial_relevance(outputs, target)
            (rel,) = torch.autograd.grad(outputs, x, init)
        rel = rel.detach()
        if return_convergence_delta:
            delta = rel.reshape(rel.shape[0], -1).sum(1) - init.reshape(init.shape[0], -1).sum(1)
            return rel, delta
        return rel

    def __repr__(self) -> str:
        return f"LRP(composite={self.composite.name!r}, canonizers={self.canonizers!r})"
