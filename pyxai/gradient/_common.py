"""Shared plumbing of the gradient explainers: Captum's argument conventions, on device.

* inputs: a Tensor or a tuple of Tensors (batch first, same batch size, finite);
* additional_forward_args: one object or a tuple, appended to the inputs in every forward call;
  Tensors among them are expanded along dim 0 when the batch is expanded (IG steps, noise samples);
* target: any form of the one target contract (:mod:`pyxai.engine.targets`: Captum's ints, tuples,
  Tensors and lists, per-sample target objects, callables ``(outputs)`` or ``(outputs, rows)``).
  ``None`` uses the output itself when the model returns one value per example (as Captum) and
  the predicted class otherwise (pyxai's convention, where Captum raises).

Targets are resolved once per call with :func:`resolve`, on the outputs of the call's first
forward (one row per sample). Methods that evaluate the model away from the inputs (IG steps,
noisy copies) resolve ``None`` first on the clean outputs (:func:`resolve_none`).
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager, Iterator, Sequence

import torch
from torch import nn

from pyxai.engine.base import CaptumAttribution
from pyxai.engine.checks import all_finite
from pyxai.engine.hooks import model_view
from pyxai.engine.targets import ResolvedTarget, resolve_target
from pyxai.engine.view import ModelView, is_nested

Inputs = tuple[torch.Tensor, ...]


def format_inputs(inputs: Any, name: str = "inputs", values: bool = True,
                  floating: bool = True) -> tuple[bool, Inputs]:
    """(was_tuple, tuple of Tensors) after checking types, batch sizes and (``values``) that the
    inputs are finite.

    The value check reads the inputs (once per call); it is skipped for the calls a NoiseTunnel
    makes on its (already checked) noisy copies.
    """
    is_tuple = isinstance(inputs, tuple)
    tup = inputs if is_tuple else (inputs,)
    if len(tup) == 0:
        raise ValueError(f"{name} is an empty tuple")
    names = [f"{name}[{i}]" if is_tuple else name for i in range(len(tup))]
    for what, t in zip(names, tup):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{what} must be a Tensor, got {type(t).__name__}")
        if floating and not t.is_floating_point():
            raise TypeError(f"{what} must be floating point, got {t.dtype}")
        if t.is_complex():
            raise TypeError(f"{what} must be real, got {t.dtype}")
        if t.dim() == 0 or t.shape[0] == 0:
            raise ValueError(f"{what} must have a non-empty batch dimension")
        if t.shape[0] != tup[0].shape[0]:
            raise ValueError(f"all {name} must have the same batch size")
    if values:
        check_finite_inputs(is_tuple, tup, name)
    return is_tuple, tup


def check_finite_inputs(is_tuple: bool, inputs: Inputs, name: str = "inputs") -> None:
    """Every input is finite (reads the values: once per call; not in a NoiseTunnel's calls)."""
    if is_nested():
        return
    for i, t in enumerate(inputs):
        if t.is_floating_point() and not all_finite(t):
            raise ValueError(f"{f'{name}[{i}]' if is_tuple else name} contains NaN or Inf values")


def format_output(is_tuple: bool, out: Sequence[torch.Tensor]) -> Any:
    return tuple(out) if is_tuple else out[0]


def format_args(args: Any) -> tuple:
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def expand_args(args: tuple, n: int, interleave: bool = False) -> tuple:
    """Captum's expansion of additional forward args: Tensors (dim >= 1) n times along dim 0."""
    out = []
    for a in args:
        if isinstance(a, torch.Tensor) and a.dim() > 0:
            a = a.repeat_interleave(n, dim=0) if interleave else torch.cat([a] * n, dim=0)
        out.append(a)
    return tuple(out)


def check_model_device(forward_func: Any, inputs: Inputs) -> None:
    """Inputs must be on the device of the model's parameters (when it is a Module)."""
    if isinstance(forward_func, torch.nn.Module):
        for p in forward_func.parameters():
            for t in inputs:
                if t.device != p.device:
                    raise ValueError(f"inputs are on {t.device} but the model is on {p.device}")
            break


def format_call(forward_func: Any, inputs: Any, additional_forward_args: Any,
                floating: bool = True) -> tuple[bool, Inputs, tuple]:
    """The ``attribute()`` prologue: (was_tuple, inputs, args), the inputs checked (types, batch,
    on the model's device, finite), the additional forward arguments as a tuple. ``floating=False``
    also accepts integer inputs (layer methods, which differentiate a layer, not the inputs:
    token ids into an embedding)."""
    is_tuple, inp = format_inputs(inputs, values=False, floating=floating)
    check_model_device(forward_func, inp)
    check_finite_inputs(is_tuple, inp)
    return is_tuple, inp, format_args(additional_forward_args)


class GradientAttribution(CaptumAttribution):
    """Captum's attribution-method surface of the gradient explainers (``forward_func``,
    ``multiplies_by_inputs``, ``has_convergence_delta()``, ``attribute_future``)."""


class ReLURuleAttribution(GradientAttribution):
    """Base of the explainers that change how the ``nn.ReLU`` modules of a view of the model pass
    gradients back (Captum's ``ModifiedReluGradientAttribution``): GuidedBackprop,
    Deconvolution, GuidedGradCam. The rule acts on the view, for the call only.

    Args:
        model: an ``nn.Module`` (its ``nn.ReLU`` submodules are the ones the rule changes).
    """

    #: the rule: a context manager over a :class:`~pyxai.engine.view.ModelView`
    #: (:func:`pyxai.engine.hooks.guided_relus`, :func:`~pyxai.engine.hooks.deconv_relus`)
    _relu_rule: Callable[[ModelView], ContextManager[None]]

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} needs an nn.Module to change its ReLU layers")
        super().__init__(model)
        self.model = model

    def _rule_gradients(self, inputs: Any, target: Any, additional_forward_args: Any,
                        create_graph: bool = False) -> Any:
        """The gradients of the target scores w.r.t. ``inputs`` under the rule, formatted as
        the inputs (Tensor or tuple)."""
        is_tuple, inp, args = format_call(self.model, inputs, additional_forward_args)
        view = model_view(self.model)
        assert view is not None
        with self._relu_rule(view):
            grads, _ = input_gradients(view.module, inp, target, args, create_graph)
        return format_output(is_tuple, grads)

def run_forward(forward_func: Callable, inputs: Inputs, args: tuple) -> torch.Tensor:
    out = forward_func(*inputs, *args)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward_func must return a Tensor, got {type(out).__name__}")
    if out.dim() == 0 or out.shape[0] != inputs[0].shape[0]:
        raise ValueError(
            f"forward_func returned shape {tuple(out.shape)} for a batch of {inputs[0].shape[0]}; "
            "it must return one row per example"
        )
    return out


# -- targets ------------------------------------------------------------------------------------


class RepeatedTarget:
    """A user's target for a batch that repeats each of B samples ``n`` times, interleaved (row
    ``r`` is sample ``r // n``: NoiseTunnel's noisy copies). The wrapped method resolves it with
    :func:`resolve`; a callable ``(outputs, rows)`` target then gets the user's sample indices.

    Args:
        target: the user's target for the B samples, or a :class:`ResolvedTarget` of B samples.
        n: copies per sample.
    """

    def __init__(self, target: Any, n: int) -> None:
        self.target, self.n = target, n


class _SampleRows:
    """A callable ``(outputs, rows)`` target seen through repeated rows: ``rows // n``."""

    def __init__(self, fn: Callable, n: int) -> None:
        self.fn, self.n = fn, n

    def __call__(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.fn(outputs, torch.div(rows, self.n, rounding_mode="floor"))


def repeat_target(t: ResolvedTarget, n: int) -> ResolvedTarget:
    """``t`` (B samples) for a batch of ``B * n`` rows where row ``r`` is sample ``r // n``."""
    bn = t.batch * n
    if t.identity:
        return ResolvedTarget(bn, identity=True)
    if t.index is not None:
        return ResolvedTarget(bn, index=t.index.repeat_interleave(n, dim=0))
    if t.per_sample is not None:
        return ResolvedTarget(bn, per_sample=[p for p in t.per_sample for _ in range(n)])
    assert t.fn is not None
    return ResolvedTarget(bn, fn=_SampleRows(t.fn, n) if t.fn_rows else t.fn)


def resolve(target: Any, outputs: torch.Tensor) -> ResolvedTarget:
    """The call's target resolved on ``outputs`` Tensor[B, ...], one row per sample of the batch.

    ``outputs`` are the clean outputs, or (for a target that is not None) any outputs with one row
    per sample — only their shape is read then. ``ResolvedTarget`` and :class:`RepeatedTarget`
    (targets handed down by NoiseTunnel) are accepted too.
    """
    if isinstance(target, ResolvedTarget):
        if target.batch != outputs.shape[0]:
            raise ValueError(f"target was resolved for {target.batch} samples but the batch has "
                             f"{outputs.shape[0]}")
        return target
    if isinstance(target, RepeatedTarget):
        return repeat_target(resolve(target.target, outputs[:: target.n]), target.n)
    return resolve_target(target, outputs)


def resolve_none(forward_func: Callable, inputs: Inputs, target: Any, args: tuple) -> Any:
    """For methods that evaluate the model away from the inputs: ``None`` resolved on the clean
    outputs (one extra forward); any other target as it is."""
    if target is not None:
        return target
    with torch.no_grad():
        out = run_forward(forward_func, inputs, args)
    return resolve_target(None, out)


def input_gradients(
    forward_func: Callable, inputs: Inputs, target: Any, args: tuple,
    create_graph: bool = False,
) -> tuple[Inputs, ResolvedTarget]:
    """Gradients of the target scores w.r.t. each input, and the resolved target.

    Inputs are detached copies that require grad: the caller's tensors are not touched. With
    ``create_graph`` the gradients are differentiable w.r.t. the model parameters.
    """
    leaves = tuple(t.detach().requires_grad_() for t in inputs)
    with torch.enable_grad():
        out = run_forward(forward_func, leaves, args)
        resolved = resolve(target, out)
        grads = torch.autograd.grad(resolved(out).sum(), leaves, create_graph=create_graph,
                                    allow_unused=True)
    grads = tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves))
    return grads, resolved



def convergence_delta(forward_func: Callable, attrs: Sequence[torch.Tensor], ends: Inputs,
                      starts: Inputs, target: Any, args: tuple) -> torch.Tensor:
    """Tensor[R]: ``sum(attrs) - (f(ends) - f(starts))`` per row, the completeness gap of a path
    method (as Captum's ``compute_convergence_delta``). ``target`` is resolved on the outputs at
    ``ends``; the attributions are read, not differentiated."""
    with torch.no_grad():
        end_out = run_forward(forward_func, ends, args)
        resolved = resolve(target, end_out)
        f1 = resolved(end_out)
        f0 = resolved(run_forward(forward_func, starts, args))
    total = sum(a.detach().reshape(a.shape[0], -1).sum(1) for a in attrs)
    return total - (f1 - f0)

# -- the straight path (IntegratedGradients, LayerIntegratedGradients, LayerConductance) -------

METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def approximation_parameters(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """(step sizes, alphas) of Captum's quadrature rules, same values as Captum.

    Riemann alphas come from ``torch.linspace`` in float32 (as Captum); Gauss-Legendre nodes and
    weights from ``numpy.polynomial.legendre.leggauss`` rescaled to [0, 1].
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "gausslegendre":
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1 for gausslegendre, got {n_steps}")
        import numpy as np

        x, w = np.polynomial.legendre.leggauss(n_steps)
        return (0.5 * w).tolist(), (0.5 * (1 + x)).tolist()
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2 for Riemann methods, got {n_steps}")
    sizes = [1 / n_steps] * n_steps
    kind = method.split("_")[1]
    if kind == "trapezoid":
        sizes[0] /= 2
        sizes[-1] /= 2
        alphas = torch.linspace(0, 1, n_steps)
    elif kind == "left":
        alphas = torch.linspace(0, 1 - 1 / n_steps, n_steps)
    elif kind == "middle":
        alphas = torch.linspace(1 / (2 * n_steps), 1 - 1 / (2 * n_steps), n_steps)
    else:
        alphas = torch.linspace(1 / n_steps, 1, n_steps)
    return sizes, alphas.tolist()


class StraightPath:
    """The points ``start + alpha_k * (end - start)`` of the straight path between two batches,
    at the nodes of a quadrature rule, evaluated in chunks of points (Captum's split).

    A chunk holds ``internal_batch_size // B`` points (at least 1), or all points for ``None``,
    each point a batch of B rows, so no more than one chunk of scaled values is held at a time.

    Args:
        n_steps: the user's ``n_steps`` (an int).
        method: ``riemann_left|right|middle|trapezoid`` or ``gausslegendre``.
        internal_batch_size: model inputs per forward, or None.
        batch: B, the rows of one point.
        extra_points: points beyond ``n_steps`` (LayerConductance evaluates ``n_steps + 1``, the
            nodes of the rule for ``n_steps + 1``). Default: 0
    """

    def __init__(self, n_steps: int, method: str, internal_batch_size: int | None, batch: int,
                 extra_points: int = 0) -> None:
        if isinstance(n_steps, bool) or not isinstance(n_steps, int):
            raise TypeError(f"n_steps must be an int, got {type(n_steps).__name__}")
        self.n_points = n_steps + extra_points
        self.sizes, self.alphas = approximation_parameters(method, self.n_points)
        if internal_batch_size is None:
            self.per_chunk = self.n_points
        else:
            if isinstance(internal_batch_size, bool) or int(internal_batch_size) <= 0:
                raise ValueError(f"internal_batch_size must be a positive int, got "
                                 f"{internal_batch_size!r}")
            self.per_chunk = max(1, int(internal_batch_size) // batch)

    def chunks(self, starts: Sequence[Any], ends: Inputs, requires_grad: bool = False
               ) -> Iterator[tuple[int, Inputs]]:
        """Yield ``(n, scaled)`` per chunk: its number of points and, per (start, end) pair,
        Tensor[n * B, ...] its points stacked point after point (leaves that require grad with
        ``requires_grad``). A start is a Tensor broadcasting to its end, or a number."""
        for s0 in range(0, self.n_points, self.per_chunk):
            alphas = self.alphas[s0:s0 + self.per_chunk]
            scaled = tuple(torch.cat([lo + a * (hi - lo) for a in alphas]) for lo, hi in
                           zip(starts, ends))
            if requires_grad:
                scaled = tuple(s.requires_grad_() for s in scaled)
            yield len(alphas), scaled

    def integrate(self, starts: Sequence[Any], ends: Inputs,
                  score: Callable[[Inputs, int], torch.Tensor], grad_kwargs: dict | None = None
                  ) -> list[torch.Tensor]:
        """``sum_k size_k * d score / d point_k`` per pair, each shaped like its end: the rule's
        quadrature of the gradients along the path.

        ``score(scaled, n)`` runs the model at a chunk's points (``scaled`` as from
        :meth:`chunks`) and returns the scalar whose gradients w.r.t. ``scaled`` are integrated;
        it runs with grad enabled. ``grad_kwargs`` go to ``torch.autograd.grad``.
        """
        weights = torch.tensor(self.sizes).float().to(ends[0].device)  # as Captum: float32 sizes
        total = [torch.zeros_like(e) for e in ends]
        s0 = 0
        for n, scaled in self.chunks(starts, ends, requires_grad=True):
            with torch.enable_grad():
                grads = torch.autograd.grad(score(scaled, n), scaled, allow_unused=True,
                                            **(grad_kwargs or {}))
            for i, (g, e) in enumerate(zip(grads, ends)):
                if g is not None:
                    w = weights[s0:s0 + n].view(n, *([1] * e.dim()))
                    total[i] = total[i] + (g.reshape(n, *e.shape) * w).sum(0)
            s0 += n
        return total
