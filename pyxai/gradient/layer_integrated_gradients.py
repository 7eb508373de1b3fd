"""LayerIntegratedGradients, drop-in for ``captum.attr.LayerIntegratedGradients``.

Integrated gradients of a layer's output (or input): the layer's values at the baselines and at
the inputs are recorded, and the model is run on the inputs with the layer's values replaced by
the points of the straight path between them (a hook on the layer of a
:class:`~pyxai.engine.view.ModelView`, never on the user's module). Steps are batched as in
:class:`pyxai.IntegratedGradients` (``internal_batch_size // B`` steps per forward).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from pyxai.engine.hooks import capture_layers, check_layers, model_view
from pyxai.engine.view import ModelView
from pyxai.gradient._common import (
    GradientAttribution,
    Inputs,
    StraightPath,
    convergence_delta,
    expand_args,
    format_call,
    resolve,
    resolve_none,
    run_forward,
)
from pyxai.gradient.integrated_gradients import format_baselines, path_start


@contextlib.contextmanager
def replaced_layers(layers: Sequence[nn.Module], view: ModelView | None, values: list,
                    counts: Sequence[int], to_input: bool) -> Iterator[None]:
    """While inside, each of ``layers`` (on the view; the layers themselves for a plain callable)
    outputs (receives, ``to_input``) its part of ``values[0]``: a flat tuple of Tensors, ``counts[i]``
    for layer ``i`` (one per Tensor it produces or receives), the layers' parts in order."""
    targets = view.layers(layers) if view is not None else list(layers)

    def hooks(first: int, count: int) -> tuple[Callable, Callable]:
        def out_hook(module: nn.Module, args: tuple, out: object) -> object:
            new = values[0][first:first + count]
            return new[0] if isinstance(out, torch.Tensor) else type(out)(new)

        def in_hook(module: nn.Module, args: tuple) -> tuple:
            it = iter(values[0][first:first + count])
            return tuple(next(it) if isinstance(a, torch.Tensor) else a for a in args)

        return out_hook, in_hook

    handles = []
    try:
        first = 0
        for target, count in zip(targets, counts):
            out_hook, in_hook = hooks(first, count)
            handles.append(target.register_forward_pre_hook(in_hook) if to_input
                           else target.register_forward_hook(out_hook))
            first += count
        yield
    finally:
        for h in handles:
            h.remove()


class LayerIntegratedGradients(GradientAttribution):
    """Integrated gradients with respect to a layer's output (or input), or to several layers'.

    Args:
        forward_func: model or callable (each layer must run once inside it).
        layer: a module of the model whose output (input) is attributed, or a list of modules
            (Captum's list of layers: all are moved along the path together; none may compute
            its values from another's, as in Captum).
        device_ids: accepted for Captum compatibility (unused).
        multiply_by_inputs: multiply by ``layer(inputs) - layer(baselines)``. Default: True

    Examples::

        >>> lig = pyxai.LayerIntegratedGradients(model, model.layer2)
        >>> attr = lig.attribute(x, target=3, n_steps=32)   # shaped like layer2's output
        >>> a2, a3 = pyxai.LayerIntegratedGradients(model, [model.layer2, model.layer3]).attribute(
        ...     x, target=3)                                  # a list: one attribution per layer
    """

    _convergence_delta = True

    def __init__(self, forward_func: Callable[..., torch.Tensor],
                 layer: nn.Module | list[nn.Module], device_ids: Any = None,
                 multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func)
        self._layers = check_layers(forward_func, layer if isinstance(layer, list) else [layer],
                                    "layer")
        self.layer = self._layers if isinstance(layer, list) else self._layers[0]
        self.device_ids = device_ids
        self._multiply_by_inputs = multiply_by_inputs

    def _layer_values(self, forward: Callable, view: ModelView | None, xs: Inputs, args: tuple,
                      to_input: bool) -> list[tuple[torch.Tensor, ...]]:
        """Per layer, the Tensors it produces (receives) in the forward of ``xs``."""
        with torch.no_grad(), capture_layers(self._layers, grad=False, inputs=to_input,
                                             view=view, multi=True) as cap:
            forward(*xs, *args)
        return cap.check(self._layers, "layer")

    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict | None = None,
    ) -> Any:
        """Layer integrated gradients.

        Args:
            inputs: Tensor[B, ...] or a tuple of them (integer inputs too, e.g. token ids of an
                embedding layer).
            baselines: as :meth:`pyxai.IntegratedGradients.attribute` (of the model inputs; the
                layer's values at them are the path's start). Default: None
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments (Tensors repeated per step).
                Default: None
            n_steps: integration points. Default: 50
            method: as :meth:`pyxai.IntegratedGradients.attribute`. Default: "gausslegendre"
            internal_batch_size: model inputs per forward (``internal_batch_size // B`` steps).
                Default: None (all steps at once)
            return_convergence_delta: also return Tensor[B]
                ``sum(attr) - (f(inputs) - f(baselines))``. Default: False
            attribute_to_layer_input: the layer's input instead of its output. Default: False
            grad_kwargs: extra keywords for ``torch.autograd.grad``. Default: None

        Returns:
            Attributions shaped like the layer's output (input): a Tensor, or a tuple for a
            layer with several; for a list of layers, a list of those, one per layer. And the
            deltas when asked (one per example, all layers' attributions summed).
        """
        _, inp, args = format_call(self.forward_func, inputs, additional_forward_args,
                                   floating=False)
        bases = format_baselines(baselines, inp)
        b = inp[0].shape[0]
        path = StraightPath(n_steps, method, internal_batch_size, b)
        view = model_view(self.forward_func)
        forward = view.module if view is not None else self.forward_func
        starts = path_start(bases, inp)
        target = resolve_none(forward, inp, target, args)
        per_layer = self._layer_values(forward, view, inp, args, attribute_to_layer_input)
        counts = [len(v) for v in per_layer]
        ends = tuple(t for v in per_layer for t in v)  # all layers' Tensors, layer after layer
        begins = tuple(t for v in self._layer_values(forward, view, starts, args,
                                                     attribute_to_layer_input) for t in v)
        current: list = [None]
        resolved = None

        def score(scaled: Inputs, n: int) -> torch.Tensor:
            nonlocal resolved
            current[0] = scaled
            xs = tuple(torch.cat([x.detach()] * n) for x in inp)
            out = run_forward(forward, xs, expand_args(args, n))
            if resolved is None:
                resolved = resolve(target, out[:b])
            return resolved(out).sum()

        with replaced_layers(self._layers, view, current, counts, attribute_to_layer_input):
            total = path.integrate(begins, ends, score, grad_kwargs)
        attrs = tuple(t * (e - s) for t, e, s in zip(total, ends, begins)) \
            if self._multiply_by_inputs else tuple(total)
        parts, first = [], 0
        for count in counts:
            part = attrs[first:first + count]
            parts.append(part if count > 1 else part[0])
            first += count
        result = parts if isinstance(self.layer, list) else parts[0]
        if not return_convergence_delta:
            return result
        return result, convergence_delta(forward, attrs, inp, starts, resolved, args)
