"""Parameter-sharing views of a user's model: what explainers hook, patch and rewrite instead.

pyxai never writes into the model it explains, not even for the length of a call (another thread
may be running it). Explainers that need hooks (layer capture, guided ReLUs), patched forwards (LRP
rules) or rewritten layers (LRP canonizers) do it on a :class:`ModelView`: a structural copy of the
module tree whose modules are new objects with their own ``_parameters`` / ``_buffers`` /
``_modules`` dictionaries and hook dictionaries, holding the *same* parameter and buffer tensors.

* A hook registered on a view module, an attribute set on it (``forward``, ``inplace``), or a
  parameter *replaced* in it (``view_module.weight = merged``) is seen by that view only.
* Writing into a shared tensor (``p.data = ...``, ``p.mul_(...)``) would still reach the user's
  model: code working on a view replaces tensors, it never writes into them.
* The user's own hooks still run on the view (the hook dictionaries are copied, not emptied).
* In training mode the view keeps the model's mode (the function explained is the model as the user
  runs it), but every module in training mode gets private copies of its buffers, so BatchNorm
  running statistics updated by thousands of perturbed forwards land in the copies, never in the
  model. Parameters are never copied: ``create_graph=True`` maps stay differentiable w.r.t. the
  user's parameters.

Building a view costs a few microseconds per module (no tensor is copied in eval mode); every call
builds its own, so concurrent calls never share one.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

#: Module attributes that hold per-module containers: copied so that a view's changes stay its own.
_OWN = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set")


def _copy_module(module: nn.Module, memo: dict[int, nn.Module], private_buffers: bool,
                 frozen: bool = False) -> nn.Module:
    found = memo.get(id(module))
    if found is not None:
        return found  # a module registered twice stays one module in the view
    view = object.__new__(type(module))  # no __init__: the copy gets the module's attributes
    memo[id(module)] = view
    d = view.__dict__
    d.update(module.__dict__)
    for key, value in module.__dict__.items():
        if key in _OWN:
            continue
        # hook dictionaries (_forward_hooks, _forward_pre_hooks, _backward_hooks, ...) and any other
        # container: a shallow copy, so registering on the view does not register on the model
        if isinstance(value, (dict, set, list)):
            d[key] = value.copy()
    params = dict(module._parameters)
    if frozen:  # aliases of the same storage that autograd does not track (no copy)
        params = {k: None if p is None else nn.Parameter(p.detach(), requires_grad=False)
                  for k, p in params.items()}
    d["_parameters"] = params
    buffers = dict(module._buffers)
    if private_buffers and module.training:
        buffers = {k: None if b is None else b.clone() for k, b in buffers.items()}
    d["_buffers"] = buffers
    d["_non_persistent_buffers_set"] = set(module._non_persistent_buffers_set)
    d["_modules"] = {
        k: None if m is None else _copy_module(m, memo, private_buffers, frozen)
        for k, m in module._modules.items()
    }
    return view


class ModelView:
    """A parameter-sharing copy of ``model`` that explainers may hook, patch and rewrite.

    Args:
        model: the user's module (left untouched).
        private_buffers: give modules in training mode their own copies of their buffers (so
            BatchNorm statistics updated by the view's forwards never reach the model). Default: True
        frozen: the view's parameters are aliases of the model's that do not require grad, so a
            forward records no graph before the first tensor that does (a captured layer): for
            gradients w.r.t. activations or inputs only, never w.r.t. the parameters. Default: False

    Attributes:
        module: the view's root module; call it like the model.
        original: the user's model.

    Examples::

        >>> view = ModelView(model)
        >>> layer = view[model.layer4]            # the view's copy of a user's module
        >>> handle = layer.register_forward_hook(hook)   # model.layer4 has no new hook
    """

    def __init__(self, model: nn.Module, private_buffers: bool = True, frozen: bool = False
                 ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.original = model
        self._memo: dict[int, nn.Module] = {}
        self.module = _copy_module(model, self._memo, private_buffers, frozen)

    def __getitem__(self, module: nn.Module) -> nn.Module:
        """The view's copy of ``module`` (a module of the original model)."""
        try:
            return self._memo[id(module)]
        except KeyError:
            raise ValueError(
                f"{type(module).__name__} is not a module of the model being explained"
            ) from None

    def layers(self, modules: Sequence[nn.Module]) -> list[nn.Module]:
        """The view's copies of ``modules`` (modules of the original model), in order."""
        return [self[m] for m in modules]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


#: Set while an explainer runs another one on its behalf (NoiseTunnel's wrapped method): the
#: outer call has warned about training mode and validated the inputs already.
_NESTED: contextvars.ContextVar[bool] = contextvars.ContextVar("pyxai_nested", default=False)


@contextlib.contextmanager
def nested_call() -> Iterator[None]:
    """Mark the explainer calls made inside the block as parts of one outer call (no second
    training-mode warning, no second input check)."""
    token = _NESTED.set(True)
    try:
        yield
    finally:
        _NESTED.reset(token)


def is_nested() -> bool:
    """Whether the current call runs inside :func:`nested_call`."""
    return _NESTED.get()


def forward_view(forward_func: Callable) -> Callable:
    """What an explainer calls instead of ``forward_func`` when it only runs forwards.

    An ``nn.Module`` in training mode is run through a :class:`ModelView` (private buffers: its
    BatchNorm statistics stay as they are, and a warning says a train-mode model is explained);
    an eval-mode module and plain callables are returned as they are (nothing would change them).
    """
    if isinstance(forward_func, nn.Module) and is_training(forward_func):
        if not is_nested():
            warn_training(forward_func)
        return ModelView(forward_func).module
    return forward_func


def is_training(model: nn.Module) -> bool:
    """Whether any module of ``model`` is in training mode."""
    return any(m.training for m in model.modules())


def warn_training(model: nn.Module) -> None:
    """Warn (once per call site) that a model in training mode is being explained."""
    warnings.warn(
        f"{type(model).__name__} is in training mode: the function explained is the model with "
        "batch statistics and active dropout (its BatchNorm statistics are not updated); call "
        "model.eval() to explain the model as it predicts",
        UserWarning,
        stacklevel=3,
    )


def state_fingerprint(model: nn.Module) -> dict[str, Any]:
    """Everything an explainer must leave as found: for tests of 'the model is never modified'.

    Returns a dict of the parameters and buffers (cloned), their ``requires_grad`` flags, every
    module's mode, instance ``forward`` overrides and hook counts.
    """
    out: dict[str, Any] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        out[f"tensor:{name}"] = t.detach().clone()
        out[f"requires_grad:{name}"] = bool(t.requires_grad)
    for name, m in model.named_modules():
        out[f"training:{name}"] = m.training
        out[f"forward:{name}"] = m.__dict__.get("forward")
        out[f"class:{name}"] = type(m)
        for key, value in m.__dict__.items():
            if key.endswith("hooks") or key.endswith("_with_kwargs") or key.endswith("always_called"):
                out[f"{key}:{name}"] = len(value)
        for pname, p in m._parameters.items():
            out[f"param_obj:{name}.{pname}"] = id(p)
            out[f"param_shape:{name}.{pname}"] = None if p is None else tuple(p.shape)
    return out


def same_state(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Keys of two :func:`state_fingerprint` results that differ (empty: the model is as found)."""
    diff = [k for k in before.keys() | after.keys() if k not in before or k not in after]
    for k in before.keys() & after.keys():
        a, b = before[k], after[k]
        if isinstance(a, torch.Tensor):
            if a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b):
                diff.append(k)
        elif a != b:
            diff.append(k)
    return sorted(diff)

