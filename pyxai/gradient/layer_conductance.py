"""LayerConductance, drop-in for ``captum.attr.LayerConductance`` (Dhamdhere et al., 2018).

The inputs are moved along the straight path from the baselines at ``n_steps + 1`` points (the
quadrature's nodes for ``n_steps + 1``, as Captum); at each point the layer's values ``A_k`` and the
gradients ``g_k`` of the target score w.r.t. them are recorded, and the conductance is
``sum_k g_k * (A_{k+1} - A_k)`` over the first ``n_steps`` points. Points are evaluated in chunks of
``internal_batch_size // B``; only the last point of a chunk is carried to the next.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from pyxai.engine.hooks import capture_layers, check_layers, model_view
from pyxai.gradient._common import (
    GradientAttribution,
    StraightPath,
    convergence_delta,
    expand_args,
    format_call,
    resolve,
    resolve_none,
    run_forward,
)
from pyxai.gradient.integrated_gradients import format_baselines, path_start


class LayerConductance(GradientAttribution):
    """Conductance of a layer's output (or input) units.

    Args:
        forward_func: model or callable (the layer must run once inside it).
        layer: a module of the model.
        device_ids: accepted for Captum compatibility (unused).

    Examples::

        >>> lc = pyxai.LayerConductance(model, model.layer2)
        >>> attr = lc.attribute(x, target=3, n_steps=32)   # shaped like layer2's output
    """

    _multiply_by_inputs = True
    _convergence_delta = True

    def __init__(self, forward_func: Callable[..., torch.Tensor], layer: nn.Module,
                 device_ids: Any = None) -> None:
        super().__init__(forward_func)
        self.layer = check_layers(forward_func, [layer], "layer")[0]
        self.device_ids = device_ids

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
        """Layer conductance.

        Args:
            inputs: Tensor[B, ...] or a tuple of them.
            baselines: as :meth:`pyxai.IntegratedGradients.attribute`. Default: None
            target: as :meth:`pyxai.Saliency.attribute`. Default: None
            additional_forward_args: extra forward arguments (Tensors repeated per point).
                Default: None
            n_steps: integration steps (``n_steps + 1`` points are evaluated). Default: 50
            method: as :meth:`pyxai.IntegratedGradients.attribute`. Default: "gausslegendre"
            internal_batch_size: model inputs per forward. Default: None (all points at once)
            return_convergence_delta: also return Tensor[B]
                ``sum(attr) - (f(inputs) - f(baselines))``. Default: False
            attribute_to_layer_input: the layer's input instead of its output. Default: False
            grad_kwargs: extra keywords for ``torch.autograd.grad``. Default: None

        Returns:
            Attributions shaped like the layer's output (input): a Tensor, or a tuple for a
            layer with several; and the deltas when asked.
        """
        _, inp, args = format_call(self.forward_func, inputs, additional_forward_args)
        bases = format_baselines(baselines, inp)
        b = inp[0].shape[0]
        path = StraightPath(n_steps, method, internal_batch_size, b, extra_points=1)
        view = model_view(self.forward_func)
        forward = view.module if view is not None else self.forward_func
        target = resolve_none(forward, inp, target, args)
        xs = tuple(x.detach() for x in inp)
        total: list[torch.Tensor] | None = None
        prev: tuple | None = None  # (grads, acts) of the last point of the previous chunk
        resolved = None
        for n, scaled in path.chunks(bases, xs):
            with torch.enable_grad(), capture_layers([self.layer], grad=True,
                                                     inputs=attribute_to_layer_input, view=view,
                                                     multi=True) as cap:
                out = run_forward(forward, scaled, expand_args(args, n))
                (acts,) = cap.check([self.layer], "layer")
                if resolved is None:
                    resolved = resolve(target, out[:b])
                grads = torch.autograd.grad(resolved(out).sum(), list(acts), allow_unused=True,
                                            **(grad_kwargs or {}))
            grads = tuple((torch.zeros_like(a) if g is None else g).detach().reshape(
                n, b, *a.shape[1:]) for g, a in zip(grads, acts))
            acts = tuple(a.detach().reshape(n, b, *a.shape[1:]) for a in acts)
            if prev is not None:  # the step from the previous chunk's last point
                grads = tuple(torch.cat([pg, g]) for pg, g in zip(prev[0], grads))
                acts = tuple(torch.cat([pa, a]) for pa, a in zip(prev[1], acts))
            part = [(g[:-1] * (a[1:] - a[:-1])).sum(0) for g, a in zip(grads, acts)]
            total = part if total is None else [t + p for t, p in zip(total, part)]
            prev = (tuple(g[-1:] for g in grads), tuple(a[-1:] for a in acts))
        assert total is not None
        result = tuple(total) if len(total) > 1 else total[0]
        if not return_convergence_delta:
            return result
        return result, convergence_delta(forward, total, xs, path_start(bases, xs), resolved, args)
