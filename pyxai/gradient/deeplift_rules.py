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

Unlike Captum, which stores copies of the recorded tensors on the module and raises for a module
called twice in one forward (torchvision's ResNet blocks call one ``nn.ReLU`` twice), every call
keeps its own record: a reused module gets the rescale rule at each of its uses. The records are
aliases with their version counters, not copies (a write into one after the call is an error in
the backward), and max-pooling keeps the indices of its forward, so the backward does not pool
again: the same numbers with less memory and time. Everything lives on the
view's modules and the call's tensors; the user's modules never see a hook.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from pyxai.engine.view import ModelView


class Use:
    """One call of a rescaled module: its input ``x`` and output ``y`` (Tensor[2B, ...], samples
    then references; detached aliases, not copies, with their version counters at the call), the
    max-pooling indices of the call (max-pooling modules), and the gradient of ``y`` once the
    backward has reached it."""

    __slots__ = ("x", "x_version", "y", "y_version", "indices", "grad_out")

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.x_version = x.detach(), x._version
        self.y: torch.Tensor = x  # set by record_output
        self.y_version = -1
        self.indices: torch.Tensor | None = None
        self.grad_out: torch.Tensor | None = None

    def record_output(self, y: torch.Tensor) -> None:
        self.y, self.y_version = y.detach(), y._version

    def check(self, module: nn.Module) -> None:
        """The recorded tensors still hold the values of the call (nothing wrote into them)."""
        if self.x._version != self.x_version or self.y._version != self.y_version:
            raise RuntimeError(
                f"DeepLift: the input or the output of {type(module).__name__} was modified in "
                "place after the module ran; the rescale rule needs both as they were (use an "
                "out-of-place operation there)")


#: ``(module, use, grad_input, eps) -> new grad_input``: grad_input is the gradient of ``use.x``
#: (Tensor[2B, ...]), ``use.grad_out`` the gradient of ``use.y``.
Multiplier = Callable[[nn.Module, Use, torch.Tensor, float], torch.Tensor]


def _pairs(t: torch.Tensor) -> torch.Tensor:
    """Tensor[2B, ...] as Tensor[2, B, ...]: samples, then references."""
    return t.reshape(2, t.shape[0] // 2, *t.shape[1:])


def rescale(module: nn.Module, use: Use, grad_input: torch.Tensor, eps: float) -> torch.Tensor:
    """The rescale rule of an elementwise nonlinearity: ``grad_out * dy / dx`` (the plain
    gradient where ``|dx| < eps``), the differences of each pair used for both of its rows."""
    assert use.grad_out is not None
    x1, x0 = _pairs(use.x)
    y1, y0 = _pairs(use.y)
    dx, dy = x1 - x0, y1 - y0
    out = torch.where(dx.abs() < eps, _pairs(grad_input), _pairs(use.grad_out) * dy / dx)
    return out.reshape(grad_input.shape)


def softmax(module: nn.Module, use: Use, grad_input: torch.Tensor, eps: float) -> torch.Tensor:
    """Rescaled multipliers minus their mean over the whole tensor (both halves, every sample,
    as Captum)."""
    m = rescale(module, use, grad_input, eps)
    return m - m.sum() * 1 / grad_input.numel()


def _pool_args(module: nn.Module) -> tuple:
    return module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode


def _maxpool(pool: Callable, unpool: Callable) -> Multiplier:
    def rule(module: nn.Module, use: Use, grad_input: torch.Tensor, eps: float) -> torch.Tensor:
        """Max-pooling: the output difference taken from ``max(y, y_ref)`` goes back through the
        input's and the reference's argmax positions, summed, divided by ``dx``. Where ``|dx| <
        eps`` the gradient of the batch's first row is used for every row (Captum's
        ``grad_input[0]``)."""
        assert use.grad_out is not None
        x, idx = use.x, use.indices
        if idx is None:  # a module with return_indices=True ran its own forward
            idx = pool(x, *_pool_args(module), True)[1]
        x1, x0 = _pairs(x)
        y1, y0 = _pairs(use.y)
        top = torch.max(y1, y0)
        dy = torch.cat([top - y0, y1 - top])
        back, back_ref = _pairs(unpool(use.grad_out * dy, idx, module.kernel_size, module.stride,
                                       module.padding, list(x.shape)))
        dx = x1 - x0
        out = torch.where(dx.abs() < eps, grad_input[0], (back + back_ref) / dx)
        return torch.cat([out, out])

    rule.pool = pool  # type: ignore[attr-defined]
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


def _hooked(module: nn.Module) -> bool:
    """Captum's choice: exactly a supported type, and no backward hooks of the user's."""
    return type(module) in RULES and not module._backward_hooks


@contextlib.contextmanager
def deeplift_rules(view: ModelView, eps: float) -> Iterator[None]:
    """The rescale rule on every supported module of ``view`` for the forwards (and their
    backwards) run inside the block on ``view.module``; the hooks (and the view's max-pooling
    forwards that keep their indices) are removed on exit, also after an exception.

    Args:
        view: a view of the user's model.
        eps: below this ``|x - x_ref|`` the plain gradient is kept.
    """
    if not isinstance(view, ModelView):
        raise TypeError(f"deeplift_rules needs a ModelView of the model, got {type(view).__name__}")
    pending: dict[int, list[Use]] = {}

    def pre_hook(module: nn.Module, args: tuple) -> tuple | None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return None
        use = Use(x)
        rule = RULES[type(module)]

        def on_input_grad(g: torch.Tensor) -> torch.Tensor | None:
            if use.grad_out is None or use.y_version < 0:
                return None
            use.check(module)
            return rule(module, use, g, eps)

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
        use.record_output(y)

        def on_output_grad(g: torch.Tensor) -> None:
            use.grad_out = g

        y.register_hook(on_output_grad)

    def pool_keeping_indices(module: nn.Module, pool: Callable) -> Callable:
        """The module's forward, keeping the indices of the max for the rule (no second
        pooling in the backward)."""
        def forward(x: torch.Tensor) -> torch.Tensor:
            out, idx = pool(x, *_pool_args(module), True)
            uses = pending.get(id(module))
            if uses:
                uses[-1].indices = idx
            return out

        return forward

    handles, patched = [], []
    try:
        for m in view.module.modules():
            if not _hooked(m):
                continue
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(hook))
            pool = getattr(RULES[type(m)], "pool", None)
            if pool is not None and not m.return_indices and "forward" not in m.__dict__:
                m.forward = pool_keeping_indices(m, pool)  # the view's module only
                patched.append(m)
        yield
    finally:
        for h in handles:
            h.remove()
        for m in patched:
            del m.forward
