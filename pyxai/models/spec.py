"""Models named by a spec string, and their default target layer: shared by the CLI and the dataset runner.

    >>> load_model("demo")                                        # the bundled demo CNN
    >>> load_model("torchvision:resnet18", "resnet18.pth")        # architecture + state_dict file
    >>> load_model("timm:resnet18", "resnet18.pth")               # needs timm
    >>> build_model(lambda: MyNet())                              # a zero-argument factory

A spec is plain data, so a Ray worker builds its own model from it (a live model is never pickled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

import torch

from pyxai.engine.view import ModelView

#: what :func:`build_model` accepts: a spec string or a zero-argument factory returning a model
ModelSpec = Union[str, Callable[[], torch.nn.Module]]


def _load_weights(model: torch.nn.Module, weights: str) -> None:
    if not Path(weights).is_file():
        raise ValueError(f"weights file not found: {weights}")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)


def load_model(spec: str, weights: str | None = None) -> torch.nn.Module:
    """The model named by ``spec``, in eval mode.

    Args:
        spec: ``"demo"`` (the bundled demo CNN, trained weights), ``"torchvision:<name>"`` or
            ``"timm:<name>"`` (random weights unless ``weights`` is given).
        weights: a ``state_dict`` file (or a checkpoint dict with a ``"state_dict"`` entry) for
            torchvision/timm models. Default: None

    Raises:
        ValueError: an unknown spec or model name, a missing library or weights file.
    """
    if not isinstance(spec, str):
        raise TypeError(f"model spec must be a string, got {type(spec).__name__}")
    if spec == "demo":
        from pyxai.models import demo_cnn

        return demo_cnn(pretrained=True)
    kind, _, name = spec.partition(":")
    if kind == "torchvision" and name:
        try:
            import torchvision
        except ImportError:
            raise ValueError("torchvision is not installed (pip install torchvision)") from None
        if name not in torchvision.models.list_models():
            raise ValueError(f"unknown torchvision model {name!r}")
        model = torchvision.models.get_model(name, weights=None)
    elif kind == "timm" and name:
        try:
            import timm
        except ImportError:
            raise ValueError("timm is not installed (pip install timm)") from None
        if name not in timm.list_models():
            raise ValueError(f"unknown timm model {name!r}")
        model = timm.create_model(name, pretrained=False)
    else:
        raise ValueError(f"unknown model {spec!r}: use 'demo', 'torchvision:<name>' or 'timm:<name>'")
    if weights:
        _load_weights(model, weights)
    return model.eval()


def build_model(model: ModelSpec, weights: str | None = None) -> torch.nn.Module:
    """A fresh model from a spec string (:func:`load_model`) or a zero-argument factory (eval mode).

    Raises:
        TypeError: ``model`` is a live ``nn.Module`` (pass a spec or a factory) or not callable.
        ValueError: the spec cannot be built, or the factory did not return an ``nn.Module``.
    """
    if isinstance(model, str):
        return load_model(model, weights)
    if isinstance(model, torch.nn.Module) or not callable(model):
        raise TypeError("model must be a spec string ('demo', 'torchvision:<name>', 'timm:<name>') "
                        f"or a zero-argument factory returning an nn.Module, got {type(model).__name__}")
    built = model()
    if not isinstance(built, torch.nn.Module):
        raise ValueError(f"the model factory returned {type(built).__name__}, not an nn.Module")
    if weights:
        _load_weights(built, weights)
    return built.eval()


def last_feature_layer(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """The last module (in execution order) whose output is a 4-D or 5-D feature map.

    The probing hooks go on a :class:`~pyxai.engine.view.ModelView`, never on ``model``.
    """
    order: list[torch.nn.Module] = []
    view = ModelView(model)
    for mod in model.modules():
        if mod is model:
            continue

        def hook(m: torch.nn.Module, inp: tuple, out: object, orig: torch.nn.Module = mod) -> None:
            if isinstance(out, torch.Tensor) and out.dim() in (4, 5) and out.shape[-1] > 1:
                order.append(orig)

        view[mod].register_forward_hook(hook)  # dropped with the view
    with torch.no_grad():
        view(x[:1])
    if not order:
        raise ValueError("the model has no module with a 4-D/5-D output to use as target layer")
    last = order[-1]
    # prefer the outermost module that produced that output (e.g. a residual block, not its ReLU)
    for m in reversed(order):
        if any(c is last for c in m.modules()):
            last = m
    return last
