"""Autograd plumbing: a rule's backward is a custom autograd Function around the module's forward.

Each module of the call's :class:`pyxai.engine.view.ModelView` that a composite gives a rule has its
``forward`` replaced (an instance attribute of the view's module object, never of the user's
module) by a wrapper that runs the original forward inside :class:`_RuleFunction`. The Function
keeps the layer input and output; its backward calls the rule, which calls ``pyxai.ops.lrp_*``:
the layer's forward is never re-run for rules that only need the stored output (Epsilon), and
autograd handles any graph topology.

Replicas (CRP): when a :class:`Session` has ``replicas = K`` and a hooked module receives
``K * N`` rows, the rows are K copies of the same N samples (the input was ``x.repeat(K, ...)``).
The module then computes its output on the first N rows only and repeats it; its backward gets the
K blocks of relevance at once and the ops compute each rule's ``z`` once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from pyxai.lrp.rules import Rule


@dataclass
class Session:
    """Settings shared by every hooked module during one attribution."""

    backend: str | None = None
    replicas: int = 1


@dataclass
class _LayerState:
    module: nn.Module
    rule: Rule
    forward: Callable
    session: Session
    inplace: bool
    bypass: bool = False  # True while the rule's backward re-runs the module (Norm, generic path)


class _RuleFunction(torch.autograd.Function):
    """Forward: the module's own forward (no graph). Backward: the rule's relevance of the input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, state: _LayerState) -> torch.Tensor:  # type: ignore[override]
        k = state.session.replicas
        xb = x
        if k > 1 and x.shape[0] % k == 0:
            xb = x[: x.shape[0] // k]
        else:
            k = 1
        if state.inplace:  # run in-place modules (ReLU(inplace=True)) out of place
            state.module.inplace = False
            try:
                out = state.forward(xb)
            finally:
                state.module.inplace = True
        else:
            out = state.forward(xb)
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"rule {state.rule!r} on {type(state.module).__name__}: the module returned "
                f"{type(out).__name__}, rules need modules with one tensor output"
            )
        ctx.state = state
        ctx.x, ctx.x_version = xb.detach(), xb._version
        ctx.out, ctx.out_version = out.detach(), out._version
        return out.repeat(k, *([1] * (out.dim() - 1))) if k > 1 else out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        state = ctx.state
        if ctx.x._version != ctx.x_version:
            raise RuntimeError(
                f"the input of {type(state.module).__name__} (rule {state.rule!r}) was modified in "
                "place after the forward pass; use a canonizer or out-of-place operations"
            )
        out = ctx.out if ctx.out._version == ctx.out_version else None  # None: the rule recomputes
        state.bypass = True
        try:
            rel = state.rule.backward(state.module, ctx.x, out, grad.contiguous(), state.session.backend)
        finally:
            state.bypass = False
        return rel, None


def _wrapper(state: _LayerState) -> Callable:
    def forward(*args, **kwargs):
        if (
            not state.bypass
            and len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)
            and torch.is_grad_enabled() and args[0].requires_grad
        ):
            return _RuleFunction.apply(args[0], state)
        return state.forward(*args, **kwargs)

    return forward


def install_rules(assignments: list[tuple[nn.Module, Rule]], session: Session) -> None:
    """Attach each rule to its module: modules of a :class:`pyxai.engine.view.ModelView` only.

    The wrapper is an instance attribute of the view's module object; the user's modules never see
    it, and nothing needs undoing (the view is dropped after the call).
    """
    for module, rule in assignments:
        inplace = bool(getattr(module, "inplace", False))
        state = _LayerState(module, rule, module.forward, session, inplace)
        module.forward = _wrapper(state)
