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

from typing import Any, Callable, Sequence

import torch

from pyxai.engine.base import CaptumAttribution
from pyxai.engine.targets import ResolvedTarget, resolve_target
from pyxai.engine.view import is_nested

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
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
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
