"""Layer capture and guided ReLUs on a view of the model, with hooks that are always removed.

Every explainer that needs a layer's activations (Grad-CAM family, Score-CAM, SIDU, layer
attributions) or that changes how gradients flow through modules (guided backprop) runs its
forwards on a :class:`~pyxai.engine.view.ModelView` of the user's model and hooks the *view's*
modules (``view[layer]``): nothing is ever registered on the user's modules, so another thread
running the model (or another explainer) is never affected. Hooks are removed in ``finally``
blocks, also when the model raises inside the forward.

A plain callable (not an ``nn.Module``) has no module tree to view: layer capture then hooks the
given layers themselves, for the length of the call, and records only the forwards run by the
calling thread (other threads' forwards pass through unchanged).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from pyxai.engine.view import ModelView, is_nested, is_training, warn_training


def model_view(forward_func: Callable, frozen: bool = False) -> ModelView | None:
    """A fresh :class:`ModelView` of ``forward_func`` when it is an ``nn.Module``, else None.

    Warns (once per explainer call) when the model is in training mode; the view gives modules in
    training mode private buffers, so BatchNorm statistics of the model never change. ``frozen``:
    see :class:`ModelView`.
    """
    if not isinstance(forward_func, nn.Module):
        return None
    if not is_nested() and is_training(forward_func):
        warn_training(forward_func)
    return ModelView(forward_func, frozen=frozen)


def check_layers(model: object, layers: Sequence[nn.Module], name: str = "target_layers") -> list:
    """Validate that every layer is an ``nn.Module`` inside ``model`` (by identity).

    Returns the layers as a list. Raises TypeError / ValueError naming ``name``.
    """
    if isinstance(layers, nn.Module):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise ValueError(f"{name} must be a non-empty list of modules of the model")
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.Module):
            raise TypeError(f"{name}[{i}] must be an nn.Module, got {type(layer).__name__}")
        if isinstance(model, nn.Module) and not any(m is layer for m in model.modules()):
            raise ValueError(
                f"{name}[{i}] ({type(layer).__name__}) is not a module of the model; pass a "
                "submodule of the model you explain, e.g. model.layer4[-1]"
            )
    return list(layers)


class LayerCapture:
    """What :func:`capture_layers` recorded during one forward.

    Attributes:
        activations: per layer, the tensor the layer produced (or received, with ``inputs=True``).
            With ``grad=True`` each one is a tensor the rest of the forward depends on, so
            ``torch.autograd.grad(score, capture.activations)`` gives the layer gradients.
        calls: per layer, how many times it ran in the forward.
    """

    def __init__(self, n: int) -> None:
        self.activations: list[torch.Tensor | None] = [None] * n
        self.calls = [0] * n

    def check(self, layers: Sequence[nn.Module], name: str = "target_layers") -> list[torch.Tensor]:
        """Every layer ran exactly once; returns the activations."""
        for i, (layer, c) in enumerate(zip(layers, self.calls)):
            if c == 0:
                raise ValueError(
                    f"{name}[{i}] ({type(layer).__name__}) did not run in the model's forward: "
                    "the model output does not depend on it"
                )
            if c > 1:
                raise ValueError(
                    f"{name}[{i}] ({type(layer).__name__}) ran {c} times in one forward; "
                    "pick a module that runs once (e.g. not a shared activation module)"
                )
        return list(self.activations)  # type: ignore[arg-type]


@contextlib.contextmanager
def capture_layers(
    layers: Sequence[nn.Module], grad: bool = True, inputs: bool = False,
    view: ModelView | None = None, multi: bool = False,
) -> Iterator[LayerCapture]:
    """Record the outputs (or inputs) of ``layers`` during the forwards run inside the block.

    With ``grad=True`` (and autograd enabled) the captured tensor is made part of the graph even
    when nothing before the layer requires grad (frozen backbone, plain inputs), so the gradient of
    any score with respect to it can be taken with ``torch.autograd.grad``; no parameter gradient
    is needed or computed. The rest of the model consumes a copy, so in-place operations after the
    layer (``out += identity``) cannot change the captured values.

    Args:
        layers: modules of the user's model to capture (each should run once per forward).
        grad: make the captured tensors differentiable leaves/nodes of the graph.
        inputs: capture the layer's (first) input instead of its output.
        view: the view the forwards run on (``view.module(x)``); the hooks go on ``view[layer]``.
            None: for plain callables only (there is no module tree to view) — the hooks go on the
            layers themselves and record only the forwards of the calling thread.
        multi: capture every Tensor of a layer's tuple output (or every Tensor positional input)
            as a tuple (Captum's layer methods on modules with several inputs or outputs); a
            single Tensor output is then a 1-tuple.

    Yields:
        A :class:`LayerCapture`, filled as forwards run (the last forward wins).
    """
    cap = LayerCapture(len(layers))
    hooked = view.layers(layers) if view is not None else list(layers)
    owner = None if view is not None else threading.get_ident()
    handles = []

    def make_hook(i: int):
        def prepare(t: torch.Tensor) -> torch.Tensor:
            if grad and torch.is_grad_enabled() and not t.requires_grad:
                t = t.detach().requires_grad_()
            elif not grad:
                t = t.detach()
            cap.activations[i] = t
            cap.calls[i] += 1
            return t.clone()

        def foreign() -> bool:
            return owner is not None and threading.get_ident() != owner

        def prepare_all(ts: tuple) -> tuple:
            """Every Tensor of ``ts`` prepared; the activation is the tuple of those Tensors."""
            done, acts = [], []
            for t in ts:
                if isinstance(t, torch.Tensor):
                    t = prepare(t)
                    acts.append(cap.activations[i])
                    cap.calls[i] -= 1
                done.append(t)
            if not acts:
                raise TypeError(f"target layer {type(hooked[i]).__name__} has no Tensor "
                                f"{'input' if inputs else 'output'}")
            cap.activations[i] = tuple(acts)  # type: ignore[assignment]
            cap.calls[i] += 1
            return tuple(done)

        def out_hook(module: nn.Module, args: tuple, out: object) -> object:
            if foreign():
                return None
            if multi:
                if isinstance(out, torch.Tensor):
                    return prepare_all((out,))[0]
                if isinstance(out, (tuple, list)):
                    return type(out)(prepare_all(tuple(out)))
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"target layer {type(module).__name__} returned {type(out).__name__}; "
                    "a layer whose output is a single Tensor is needed"
                )
            return prepare(out)

        def in_hook(module: nn.Module, args: tuple) -> object:
            if foreign():
                return None
            if multi:
                return prepare_all(args)
            if not args or not isinstance(args[0], torch.Tensor):
                raise TypeError(f"target layer {type(module).__name__} has no Tensor input")
            return (prepare(args[0]), *args[1:])

        return out_hook, in_hook

    try:
        for i, layer in enumerate(hooked):
            out_hook, in_hook = make_hook(i)
            if inputs:
                handles.append(layer.register_forward_pre_hook(in_hook))
            else:
                handles.append(layer.register_forward_hook(out_hook))
        yield cap
    finally:
        for h in handles:
            h.remove()


class _GuidedState:
    """A per-call switch: on while the explainer takes its guided (first-order) gradient."""

    def __init__(self) -> None:
        self.on = True


class _GuidedGrad(torch.autograd.Function):
    """Identity forward; while the call's switch is on, the backward passes only the positive
    part of the gradient.

    The clamp is recorded as an ordinary op when the gradient is taken with ``create_graph=True``,
    and the switch is off once the explainer returns: a later backward through the forward graph
    (the user's second-order step of explanation-guided training) sees the identity the forward
    is, so the map's derivative w.r.t. the parameters is the true one.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, state: _GuidedState) -> torch.Tensor:  # noqa: D102
        ctx.state = state
        return x.clone()  # a copy: in-place ReLUs modify it, not the tensor the graph saved

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return (g.clamp_min(0) if ctx.state.on else g), None


@contextlib.contextmanager
def guided_relus(view: ModelView) -> Iterator[None]:
    """Guided backprop on every ``nn.ReLU`` of a model view (Captum's ``GuidedBackprop`` rule).

    The gradient reaching a ReLU's input is replaced by its positive part, ``relu(grad_input)``
    (= ``g * 1[x > 0] * 1[g > 0]``), for the backward passes run inside the block. As in Captum,
    the rule acts on the gradient of the tensor the ReLU receives, and only ``nn.ReLU`` modules are
    changed (functional relus are not). The hooks are on the view's modules (run the forward with
    ``view.module``), removed on exit, also after an exception.
    """
    if not isinstance(view, ModelView):
        raise TypeError(f"guided_relus needs a ModelView of the model, got {type(view).__name__}")
    state = _GuidedState()

    def pre_hook(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return args
        return (_GuidedGrad.apply(x, state), *args[1:])

    handles = []
    try:
        for m in view.module.modules():
            if isinstance(m, nn.ReLU):
                handles.append(m.register_forward_pre_hook(pre_hook))
        yield
    finally:
        state.on = False
        for h in handles:
            h.remove()


class _DeconvReLU(torch.autograd.Function):
    """``relu(x)`` whose backward passes ``relu(grad)`` whatever the sign of ``x`` (the
    deconvnet rule of Zeiler & Fergus, Captum's ``Deconvolution``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return g.clamp_min(0)


@contextlib.contextmanager
def deconv_relus(view: ModelView) -> Iterator[None]:
    """The deconvnet rule on every ``nn.ReLU`` of a model view: the gradient a ReLU passes back
    is ``relu(grad_output)`` (Captum's ``Deconvolution``: only ``nn.ReLU`` modules, functional
    relus unchanged). Hooks on the view's modules only, removed on exit.

    The ReLU's own output is replaced by :class:`_DeconvReLU` of the input it received (kept
    before an in-place ReLU could overwrite it), so the rule holds for ``inplace=True`` too.
    """
    if not isinstance(view, ModelView):
        raise TypeError(f"deconv_relus needs a ModelView of the model, got {type(view).__name__}")
    received: dict[int, list[torch.Tensor]] = {}

    def pre_hook(module: nn.Module, args: tuple) -> tuple | None:
        x = args[0]
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return None
        received.setdefault(id(module), []).append(x)
        return (x.clone(), *args[1:])  # an in-place ReLU overwrites the copy, not x

    def hook(module: nn.Module, args: tuple, out: object) -> object:
        stack = received.get(id(module))
        if not stack:
            return None
        return _DeconvReLU.apply(stack.pop())

    handles = []
    try:
        for m in view.module.modules():
            if isinstance(m, nn.ReLU):
                handles.append(m.register_forward_pre_hook(pre_hook))
                handles.append(m.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()
