"""DeepLIFT's rescale rule (Shrikumar et al., 2017) on the nonlinear modules of a model view, as
Captum applies it.

The model runs once on ``cat([inputs, baselines])`` (2B rows: row ``b`` and row ``B + b`` are a
sample and its reference). Every module whose type is in :data:`RULES` (exactly that type, as
Captum: subclasses are left alone; nor is a module that already has backward hooks) records what
it received and returned, and the gradient of its input is replaced, in the backward, by the
rescaled multiplier ``grad_out * (y - y_ref) / (x - x_ref)`` — the plain gradient where
``|x - x_ref| < eps``. Softmax subtracts the multipliers' mean; max-pooling passes the output
difference back to the positions that won the max in the input and in the reference.

As Captum, the replacement acts on the gradient of the tensor the module receives (an
``inplace=True`` module computes on a copy of it), and both halves of the batch get multipliers
(the reference outputs are scored too: softmax's mean and max-pooling mix them in).

Unlike Captum, which stores the recorded tensors on the module and raises for a module called
twice in one forward (torchvision's ResNet blocks call one ``nn.ReLU`` twice), every call keeps its
own record: a reused module gets the rescale rule at each of its uses. Everything lives on the
view's modules and the call's tensors; the user's modules never see a hook.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from pyxai.engine.view import ModelView

#: ``(module, x, y, grad_input, grad_output, eps) -> new grad_input``; x, y: Tensor[2B, ...], the
#: module's input and output on samples then references; grad_input: the gradient of x.
Multiplier = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float],
                      torch.Tensor]


def _diffs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x - x_ref, y - y_ref)`` repeated for both halves: Tensor[2B, ...] each."""
    x1, x0 = x.chunk(2)
    y1, y0 = y.chunk(2)
    dx, dy = x1 - x0, y1 - y0
    return torch.cat([dx, dx]), torch.cat([dy, dy])


def rescale(module: nn.Module, x: torch.Tensor, y: torch.Tensor, grad_input: torch.Tensor,
            grad_output: torch.Tensor, eps: float) -> torch.Tensor:
    """The rescale rule of an elementwise nonlinearity: ``grad_out * dy / dx`` (the plain
    gradient where ``|dx| < eps``)."""
    dx, dy = _diffs(x, y)
    return torch.where(dx.abs() < eps, grad_input, grad_output * dy / dx)


def softmax(module: nn.Module, x: torch.Tensor, y: torch.Tensor, grad_input: torch.Tensor,
            grad_output: torch.Tensor, eps: float) -> torch.Tensor:
    """Rescaled multipliers minus their mean over the whole tensor (both halves, every sample,
    as Captum)."""
    m = rescale(module, x, y, grad_input, grad_output, eps)
    return m - m.sum() * 1 / grad_input.numel()


def _maxpool(pool: Callable, unpool: Callable) -> Multiplier:
    def rule(module: nn.Module, x: torch.Tensor, y: torch.Tensor, grad_input: torch.Tensor,
             grad_output: torch.Tensor, eps: float) -> torch.Tensor:
        """Max-pooling: the output difference taken from ``max(y, y_ref)`` goes back through the
        input's and the reference's argmax positions, summed, divided by ``dx``. Where ``|dx| <
        eps`` the gradient of the batch's first row is used for every row (Captum's
        ``grad_input[0]``)."""
        with torch.no_grad():
            x1, x0 = x.chunk(2)
            y1, y0 = y.chunk(2)
            dx = x1 - x0
            dx = torch.cat([dx, dx])
            top = torch.max(y1, y0)
            dy = torch.cat([top - y0, y1 - top])
            _, idx = pool(x, module.kernel_size, module.stride, module.padding, module.dilation,
                          module.ceil_mode, True)
            back, back_ref = torch.chunk(unpool(grad_output * dy, idx, module.kernel_size,
                                                module.stride, module.padding, list(x.shape)), 2)
        back = back + back_ref
        back = torch.cat([back, back])
        return torch.where(dx.abs() < eps, grad_input[0], back / dx)

    return rule


#: the modules DeepLift rescales (Captum's ``SUPPORTED_NON_LINEAR``), by exact type
RULES: dict[type, Multiplier] = {
    nn.ReLU: rescale,
    nn.ELU: rescale,
    nn.LeakyReLU: rescale,
    nn.Sigmoid: rescale,
    nn.Tanh: rescale,
    nn.Softplus: rescale,
    nn.MaxPool1d: _maxpool(F.max_pool1d, F.max_unpool1d),
    nn.MaxPool2d: _maxpool(F.max_pool2d, F.max_unpool2d),
    nn.MaxPool3d: _maxpool(F.max_pool3d, F.max_unpool3d),
    nn.Softmax: softmax,
}


class _Use:
    """One call of a rescaled module: copies of its input and output, and its output's gradient
    once the backward has reached it."""

    __slots__ = ("x", "y", "grad_out")

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.y: torch.Tensor | None = None
        self.grad_out: torch.Tensor | None = None


def _hooked(module: nn.Module) -> bool:
    """Captum's choice: exactly a supported type, and no backward hooks of the user's."""
    return type(module) in RULES and not module._backward_hooks


@contextlib.contextmanager
def deeplift_rules(view: ModelView, eps: float) -> Iterator[None]:
    """The rescale rule on every supported module of ``view`` for the forwards (and their
    backwards) run inside the block on ``view.module``; the hooks are removed on exit, also after
    an exception.

    Args:
        view: a view of the user's model.
        eps: below this ``|x - x_ref|`` the plain gradient is kept.
    """
    if not isinstance(view, ModelView):
        raise TypeError(f"deeplift_rules needs a ModelView of the model, got {type(view).__name__}")
    pending: dict[int, list[_Use]] = {}

    def pre_hook(module: nn.Module, args: tuple) -> tuple | None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return None
        use = _Use(x.detach().clone())
        rule = RULES[type(module)]

        def on_input_grad(g: torch.Tensor) -> torch.Tensor | None:
            if use.grad_out is None or use.y is None:
                return None
            return rule(module, use.x, use.y, g, use.grad_out, eps)

        x.register_hook(on_input_grad)
        pending.setdefault(id(module), []).append(use)
        if getattr(module, "inplace", False):
            return (x.clone(), *args[1:])  # the module changes the copy, not x
        return None

    def hook(module: nn.Module, args: tuple, out: object) -> None:
        uses = pending.get(id(module))
        if not uses:
            return
        use = uses.pop()
        y = out[0] if isinstance(out, (tuple, list)) else out
        if not isinstance(y, torch.Tensor) or not y.requires_grad:
            return
        use.y = y.detach().clone()

        def on_output_grad(g: torch.Tensor) -> None:
            use.grad_out = g

        y.register_hook(on_output_grad)

    handles = []
    try:
        for m in view.module.modules():
            if _hooked(m):
                handles.append(m.register_forward_pre_hook(pre_hook))
                handles.append(m.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()
