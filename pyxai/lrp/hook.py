"""Zennit's hook interface for pyxai's rules: ``handle = rule.register(module)``.

This is what a Zennit user asks for explicitly — a rule on *their* module — so the hook goes on
the module given (pyxai's own :class:`~pyxai.LRP` never does this: it runs on a view). While
registered, the module's forward output carries an autograd node whose backward returns the
rule's relevance for the module's input in place of the gradient (``R_in = rule(x, z, R_out)``);
``handle.remove()`` restores the module. Parameter gradients do not flow through a hooked module,
as in Zennit.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch import nn

#: modules whose rule backward runs in this thread (it may call the module's own forward, as the
#: pass-by-pass execution does for transposed convolutions: the hook must then stay out of it)
_busy = threading.local()


class _RuleNode(torch.autograd.Function):
    """Identity on the output ``z``; backward: the rule's relevance of the input ``x``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, z: torch.Tensor, rule: Any, module: nn.Module
                ) -> torch.Tensor:  # type: ignore[override]
        ctx.rule, ctx.module = rule, module
        ctx.save_for_backward(x, z)
        return z.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, z = ctx.saved_tensors
        busy = _busy.__dict__.setdefault("modules", set())
        busy.add(id(ctx.module))
        try:
            rel = ctx.rule.backward(ctx.module, x, z if ctx.rule.needs_output else None, grad)
        finally:
            busy.discard(id(ctx.module))
        return rel, None, None, None


class RuleHandle:
    """What :meth:`Rule.register` returns: ``remove()`` takes the rule off the module."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def remove(self) -> None:
        """Remove the hook (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def register(rule: Any, module: nn.Module) -> RuleHandle:
    """Put ``rule`` on ``module`` (Zennit's ``Hook.register``). Returns a :class:`RuleHandle`."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")

    def hook(mod: nn.Module, args: tuple, out: Any) -> Any:
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(out, torch.Tensor):
            return None
        x = args[0]
        if not (x.requires_grad or out.requires_grad) or not torch.is_grad_enabled():
            return None
        if id(mod) in _busy.__dict__.get("modules", ()):
            return None  # the rule's own backward running the module
        return _RuleNode.apply(x, out.detach(), rule, mod)

    return RuleHandle(module.register_forward_hook(hook))
