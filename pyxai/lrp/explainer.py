"""``pyxai.LRP``: layer-wise relevance propagation with Zennit's rules, composites and canonizers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import nn

from pyxai.engine.checks import check_inputs, check_output_batch, check_same_device
from pyxai.engine.sync import hot_path
from pyxai.engine.targets import ResolvedTarget, Target, resolve_target
from pyxai.engine.view import ModelView, is_training
from pyxai.lrp.canonizers import CanonizerSpec, canonize, resolve_canonizers
from pyxai.lrp.composites import Composite, resolve_composite
from pyxai.lrp.core import Session, install_rules
from pyxai.lrp.rules import Gamma
from pyxai.ops._dispatch import check_backend

OUTPUT_RELEVANCE = ("score", "one_hot")


@dataclass
class _Run:
    """One call's canonized, rule-wrapped view of the model (nothing of it outlives the call)."""

    view: ModelView
    session: Session

    @property
    def model(self) -> nn.Module:
        return self.view.module

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.view.module.named_modules())


class _PropagationBase:
    """Shared set-up of LRP and CRP: composite, canonizers, argument checks, the per-call view."""

    def __init__(
        self,
        model: nn.Module,
        composite: Union[str, Composite] = "epsilon_plus_flat",
        canonizers: CanonizerSpec = "auto",
        epsilon: float | Callable | None = None,
        gamma: float | Gamma | None = None,
        low: float | torch.Tensor | None = None,
        high: float | torch.Tensor | None = None,
        stabilizer: float | Callable | None = None,
        output_relevance: str = "score",
        backend: str | None = None,
        allow_training: bool = False,
        gamma_rule: str | None = None,
        zero_params: str | list[str] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if output_relevance not in OUTPUT_RELEVANCE:
            raise ValueError(f"output_relevance must be one of {OUTPUT_RELEVANCE}, got {output_relevance!r}")
        self.model = model
        self.composite = resolve_composite(
            composite, epsilon=epsilon, gamma=gamma, low=low, high=high, stabilizer=stabilizer,
            gamma_rule=gamma_rule, zero_params=zero_params,
        )
        if self.composite.name == "gradient" and canonizers == "auto":
            canonizers = None  # no rules, nothing to canonize: the plain gradient of the model as is
        self.canonizers = resolve_canonizers(canonizers, model)
        self.output_relevance = output_relevance
        self.backend = check_backend(backend) if backend is not None else None
        self.allow_training = bool(allow_training)

    def _prepare(self, create_graph: bool = False) -> _Run:
        """The call's view: eval mode, canonized, rules attached (the user's model is not touched)."""
        if is_training(self.model) and not self.allow_training:
            raise ValueError(
                f"{type(self).__name__} explains a model as it predicts, but "
                f"{type(self.model).__name__} is in training mode (BatchNorm would normalise with "
                "batch statistics while the canonizers merge the running ones). Call model.eval(), "
                "or pass allow_training=True to explain it as in eval mode (the model's mode, "
                "parameters and BatchNorm statistics are left as they are)"
            )
        session = Session(backend=self.backend, create_graph=create_graph)
        with torch.set_grad_enabled(create_graph):  # merged weights keep the parameters' graph
            view = canonize(self.model, self.canonizers)
        assigned = self.composite.assign(view.module)
        watch = self.composite.unruled_custom(view.module, assigned)
        install_rules(view.module, [(m, r) for _, m, r in assigned], session, watch, self.composite.name)
        return _Run(view, session)

    def _check(self, inputs: torch.Tensor) -> torch.Tensor:
        check_inputs(inputs, ndims=(2, 3, 4, 5))
        check_same_device(self.model, inputs)
        return inputs

    def _initial_relevance(
        self, outputs: torch.Tensor, target: Target, create_graph: bool = False
    ) -> tuple[torch.Tensor, ResolvedTarget]:
        """Relevance put on the outputs: ``weight * d score / d outputs`` with ``weight`` the target's
        score (``output_relevance="score"``) or 1 — for a class target, the score (or 1) at the
        class and 0 elsewhere. ``create_graph``: differentiable (w.r.t. the outputs).

        Returns (Tensor shaped like outputs, the resolved target).
        """
        resolved = resolve_target(target, outputs.detach())
        if create_graph:
            scores = resolved(outputs)
            weight = scores if self.output_relevance == "score" else torch.ones_like(scores)
            (init,) = torch.autograd.grad(scores, outputs, weight, create_graph=True)
            return init, resolved
        with torch.enable_grad():
            o = outputs.detach().requires_grad_(True)
            scores = resolved(o)
            weight = scores.detach() if self.output_relevance == "score" else torch.ones_like(scores)
            (init,) = torch.autograd.grad(scores, o, weight)
        return init, resolved


class LRP(_PropagationBase):
    """Layer-wise relevance propagation (Zennit's rules, composites and canonizers; Captum's call).

    Every call works on its own :class:`pyxai.engine.view.ModelView` of the model: the view is
    canonized (BatchNorm merged into the preceding layer as new tensors, residual additions made
    explicit), each of its modules gets its composite's rule, and one backward pass propagates the
    relevance put on the output to the input. Rules run as custom autograd Functions on the stored
    layer inputs and outputs (``pyxai.ops.lrp_*``), never re-running a layer's forward where the
    rule does not need one. The user's model is never written to, not even during the call, so
    any number of threads may explain one model at once.

    Args:
        model (nn.Module): Tensor[B, ...] -> Tensor[B, K] scores.
        composite (str or Composite, optional): ``"epsilon_plus"``, ``"epsilon_plus_flat"``,
            ``"epsilon_gamma_box"``, ``"epsilon_alpha2_beta1"``, ``"epsilon_alpha2_beta1_flat"``,
            ``"gradient"``, or a :class:`pyxai.lrp.Composite`. Default: "epsilon_plus_flat"
        canonizers (optional): ``"auto"``, None, or canonizer(s) from :mod:`pyxai.lrp.canonizers`.
            Default: "auto"
        epsilon, gamma, low, high, stabilizer (optional): parameters of the named composite
            (Zennit's defaults: epsilon 1e-6, gamma 0.25, stabilizer 1e-6; ``low``/``high``, the
            input bounds, are required by ``epsilon_gamma_box``). ``gamma`` may be a
            :class:`pyxai.rules.Gamma` object; ``epsilon`` and ``stabilizer`` may be callables
            (:class:`pyxai.rules.Stabilizer`), as the rules take.
        zero_params (str or list of str, optional): parameters the named composite's rules treat
            as zero (``"bias"``, ``"weight"``; Zennit 0.5.1's composites' keyword). Default: None
        gamma_rule (str, optional): the Gamma rule of ``epsilon_gamma_box`` for a float ``gamma``:
            ``"zennit>=0.5"`` (the generalised rule, equal to Zennit 0.5.1) or ``"zennit<0.5"``
            (equal to Zennit 0.4.6, which zennit-crp pins). Default: "zennit>=0.5"
        output_relevance (str, optional): ``"score"``: the relevance put on the output is the
            target's score (Captum, zennit-crp); ``"one_hot"``: 1 (Zennit's usual start).
            Default: "score"
        backend (str, optional): "auto" | "native" | "reference". Default: env or "auto"
        allow_training (bool, optional): a model in training mode raises unless True; then it is
            explained as in eval mode (running statistics, no dropout) on a view, and the model
            keeps its mode, parameters and BatchNorm statistics. Default: False

    Examples::

        >>> lrp = pyxai.LRP(model, composite="epsilon_gamma_box", low=-3.0, high=3.0)
        >>> rel, delta = lrp.attribute(x, target=3, return_convergence_delta=True)
    """

    def attribute(
        self,
        inputs: torch.Tensor,
        target: Target = None,
        return_convergence_delta: bool = False,
        create_graph: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Relevance of every input element.

        Args:
            inputs (Tensor): Tensor[B, C, H, W] (or [B, C, T, H, W], [B, F], ...).
            target (optional): int, sequence of int / Tensor[B], callable ``(outputs)`` or
                ``(outputs, rows) -> Tensor[B]`` (:mod:`pyxai.engine.targets`), or None (predicted
                class). Default: None
            return_convergence_delta (bool, optional): also return Tensor[B]
                ``sum(relevance) - relevance put on the output`` (conservation). Default: False
            create_graph (bool, optional): return relevances differentiable w.r.t. the model's
                parameters (explanation-guided training: ``loss(rel).backward()`` gives the true
                derivatives of the relevances, through every rule). Default: False

        Returns:
            Tensor shaped like ``inputs`` (and Tensor[B] delta when asked).
        """
        self._check(inputs)
        run = self._prepare(create_graph)
        x = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            outputs = run.model(x)
            check_output_batch(outputs, x.shape[0])
            init, _ = self._initial_relevance(outputs, target, create_graph)
            try:
                with hot_path(x.device):  # every layer's rule: no host sync
                    (rel,) = torch.autograd.grad(outputs, x, init, create_graph=create_graph)
            finally:
                run.session.relevance = False  # from now on the graph gives true derivatives
        if not create_graph:
            rel, init = rel.detach(), init.detach()
        if return_convergence_delta:
            delta = rel.reshape(rel.shape[0], -1).sum(1) - init.reshape(init.shape[0], -1).sum(1)
            return rel, delta
        return rel

    def __repr__(self) -> str:
        return f"LRP(composite={self.composite.name!r}, canonizers={self.canonizers!r})"
