"""Shared plumbing of the gradient explainers: Captum's argument conventions, on device.

* inputs: a Tensor or a tuple of Tensors (batch first, same batch size);
* additional_forward_args: one object or a tuple, appended to the inputs in every forward call;
  Tensors among them are expanded along dim 0 when the batch is expanded (IG steps, noise samples);
* target: Captum's forms (int, tuple of ints, Tensor, list of ints, list of tuples, None) plus
  pyxai's callable ``outputs -> Tensor[B]``. ``None`` uses the output itself when the model returns
  one value per example (as Captum) and the predicted class otherwise (pyxai's convention, where
  Captum raises).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from pyxai.engine.targets import resolve_target

Inputs = tuple[torch.Tensor, ...]


def format_inputs(inputs: Any, name: str = "inputs") -> tuple[bool, Inputs]:
    """(was_tuple, tuple of Tensors) after checking types and batch sizes."""
    is_tuple = isinstance(inputs, tuple)
    tup = inputs if is_tuple else (inputs,)
    if len(tup) == 0:
        raise ValueError(f"{name} is an empty tuple")
    for i, t in enumerate(tup):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{i}] must be a Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name}[{i}] must be floating point, got {t.dtype}")
        if t.dim() == 0 or t.shape[0] == 0:
            raise ValueError(f"{name}[{i}] must have a non-empty batch dimension")
        if t.shape[0] != tup[0].shape[0]:
            raise ValueError(f"all {name} must have the same batch size")
    return is_tuple, tup


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


def expand_target(target: Any, n: int, interleave: bool = False) -> Any:
    """Captum's ``_expand_target``: lists and multi-element Tensors are expanded, rest kept."""
    if isinstance(target, list):
        return [t for t in target for _ in range(n)] if interleave else target * n
    if isinstance(target, torch.Tensor) and target.numel() > 1:
        return target.repeat_interleave(n, dim=0) if interleave else torch.cat([target] * n)
    return target


def check_model_device(forward_func: Any, inputs: Inputs) -> None:
    """Inputs must be on the device of the model's parameters (when it is a Module)."""
    if isinstance(forward_func, torch.nn.Module):
        for p in forward_func.parameters():
            for t in inputs:
                if t.device != p.device:
                    raise ValueError(f"inputs are on {t.device} but the model is on {p.device}")
            break


def format_call(forward_func: Any, inputs: Any, additional_forward_args: Any
                ) -> tuple[bool, Inputs, tuple]:
    """The ``attribute()`` prologue: (was_tuple, inputs, args), the inputs checked and on the
    model's device, the additional forward arguments as a tuple."""
    is_tuple, inp = format_inputs(inputs)
    check_model_device(forward_func, inp)
    return is_tuple, inp, format_args(additional_forward_args)


class GradientAttribution:
    """Captum's attribution-method surface of the gradient explainers: ``forward_func``, the
    ``multiplies_by_inputs`` property and ``has_convergence_delta()``.

    Subclasses set ``_multiply_by_inputs`` and ``_convergence_delta`` (class or instance
    attributes; both False by default).
    """

    _multiply_by_inputs: bool = False
    _convergence_delta: bool = False

    def __init__(self, forward_func: Callable[..., torch.Tensor]) -> None:
        self.forward_func = forward_func

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return self._convergence_delta


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


def needs_argmax(target: Any, outputs: torch.Tensor) -> bool:
    """True when ``target is None`` and the output has several values per example."""
    return target is None and outputs[0].numel() > 1


def argmax_target(outputs: torch.Tensor) -> torch.Tensor:
    if outputs.dim() != 2:
        raise ValueError(
            "target=None needs a model output of one value per example or Tensor[B, K] "
            f"(got {tuple(outputs.shape)}); pass a target"
        )
    return outputs.detach().argmax(1)


def select(outputs: torch.Tensor, target: Any) -> torch.Tensor:
    """One score per example: Tensor[B] (Captum's ``_select_targets`` with a scalar per row).

    ``target`` was expanded to the batch of ``outputs`` already (list/Tensor of length B).
    """
    b = outputs.shape[0]
    if target is None:
        if outputs[0].numel() != 1:
            return select(outputs, argmax_target(outputs))
        return outputs.reshape(b)
    if callable(target) and not isinstance(target, torch.Tensor):
        s = target(outputs)
        if not isinstance(s, torch.Tensor) or s.numel() != b:
            raise ValueError("a callable target must return a Tensor with one score per example")
        return s.reshape(b)
    if isinstance(target, torch.Tensor) and target.numel() == 1:
        target = int(target.item())
    if isinstance(target, tuple) or (isinstance(target, list) and target and
                                     isinstance(target[0], tuple)):
        rows = [target] * b if isinstance(target, tuple) else target
        if len(rows) != b:
            raise ValueError(f"target has {len(rows)} entries but the batch has {b} examples")
        idx = torch.as_tensor(rows, dtype=torch.int64, device=outputs.device).reshape(b, -1)
        shape = outputs.shape[1:]
        if idx.shape[1] != len(shape):
            raise ValueError(
                f"target tuples must index one output per example: output shape {tuple(shape)}, "
                f"tuples of length {idx.shape[1]}"
            )
        dims = torch.as_tensor(shape, device=outputs.device)
        if (idx < 0).any() or (idx >= dims).any():
            raise ValueError(f"target {rows[:4]} out of range for model output shape {tuple(shape)}")
        flat = torch.zeros(b, dtype=torch.int64, device=outputs.device)
        for d in range(len(shape)):
            flat = flat * shape[d] + idx[:, d]
        return outputs.reshape(b, -1).gather(1, flat[:, None]).squeeze(1)
    if outputs.dim() != 2:
        raise ValueError(
            f"an int/list/Tensor target needs a Tensor[B, K] output, got {tuple(outputs.shape)}; "
            "pass a tuple target for outputs with more dims"
        )
    idx = resolve_target(target, outputs)
    return outputs.gather(1, idx[:, None]).squeeze(1)


def input_gradients(
    forward_func: Callable, inputs: Inputs, target: Any, args: tuple,
    create_graph: bool = False,
) -> tuple[Inputs, torch.Tensor]:
    """Gradients of the target scores w.r.t. each input, and the model outputs (detached).

    Inputs are detached copies that require grad: the caller's tensors are not touched.
    """
    leaves = tuple(t.detach().requires_grad_() for t in inputs)
    with torch.enable_grad():
        out = run_forward(forward_func, leaves, args)
        scores = select(out, target)
        grads = torch.autograd.grad(scores.sum(), leaves, create_graph=create_graph,
                                    allow_unused=True)
    grads = tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves))
    return grads, out.detach()


def resolve_none_target(forward_func: Callable, inputs: Inputs, target: Any, args: tuple) -> Any:
    """For methods that evaluate the model away from the inputs: turn ``None`` into the predicted
    class on the inputs when the model has several outputs per example."""
    if target is not None:
        return target
    with torch.no_grad():
        out = run_forward(forward_func, inputs, args)
    return argmax_target(out) if out[0].numel() > 1 else None
