"""Models named by a spec string, and their default target layer: shared by the CLI and the dataset runner.

    >>> load_model("demo")                                        # the bundled demo CNN
    >>> load_model("torchvision:resnet18", "resnet18.pth")        # architecture + state_dict file
    >>> load_model("timm:resnet18", "resnet18.pth")               # needs timm
    >>> build_model(lambda: MyNet())                              # a zero-argument factory

A spec is plain data, so a Ray worker builds its own model from it (a live model is never pickled).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Union

import torch

from pyxai.engine.view import ModelView

#: what :func:`build_model` accepts: a spec string or a zero-argument factory returning a model
ModelSpec = Union[str, Callable[[], torch.nn.Module]]


def _read_state_dict(weights: str) -> dict[str, torch.Tensor]:
    """A state_dict from a ``--weights`` file; ValueError (one line) for anything else."""
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"weights file not found: {weights}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower() or "global" in str(exc).lower():
            raise ValueError(f"weights {weights} holds a whole pickled model (torch.save(model)), "
                             "which pyxai does not unpickle: save model.state_dict() instead") from None
        raise ValueError(f"weights {weights} is not a PyTorch weights file ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises anything on a non-PyTorch file
        raise ValueError(f"weights {weights} is not a PyTorch weights file "
                         f"({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights {weights} does not hold a state_dict (a dict of tensors)")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], spec: str, weights: str) -> None:
    """``model.load_state_dict(state)`` with a one-line error naming what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

        parts = [f"{len(missing)} missing keys: {few(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected keys: {few(unexpected)}" if unexpected else "",
                 (f"shape of {shapes[0]}: {tuple(state[shapes[0]].shape)} in the file, "
                  f"{tuple(own[shapes[0]].shape)} in the model") if shapes else ""]
        raise ValueError(f"weights {weights} does not fit {spec} (weights of another architecture?): "
                         + "; ".join(p for p in parts if p))
    model.load_state_dict(state)


_NOT_CLASSIFIERS = {"video": "a video model: use `pyxai video`",
                    "detection": "a detection model", "segmentation": "a segmentation model",
                    "optical_flow": "an optical-flow model", "quantization": "a quantized model"}


def load_model(spec: str, weights: str | None = None, *, kind: str = "image") -> torch.nn.Module:
    """The model named by ``spec``, in eval mode.

    Args:
        spec: ``"demo"`` (the bundled demo CNN, trained weights unless ``weights``),
            ``"torchvision:<name>"`` or ``"timm:<name>"`` (random weights unless ``weights``).
        weights: a ``state_dict`` file (or a checkpoint dict with a ``"state_dict"`` / ``"model"``
            entry; ``module.`` prefixes of DataParallel are dropped). Default: None
        kind: ``"image"`` (image classifiers) or ``"video"`` (torchvision's video classifiers too).

    Raises:
        ValueError: an unknown spec or model name, a model of another kind (detection,
            segmentation, video for ``kind="image"``), a missing library, or a weights file that is
            missing, not a state_dict, a whole pickled model, or of another architecture — one line.
    """
    if not isinstance(spec, str):
        raise TypeError(f"model spec must be a string, got {type(spec).__name__}")
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    if spec == "demo":
        from pyxai.models import demo_cnn

        model = demo_cnn(pretrained=weights is None)
    elif spec.startswith("torchvision:"):
        name = spec.split(":", 1)[1]
        try:
            import torchvision
        except ImportError:
            raise ValueError("torchvision is not installed (pip install torchvision)") from None
        if name not in torchvision.models.list_models():
            raise ValueError(f"unknown torchvision model {name!r}")
        allowed = set(torchvision.models.list_models(module=torchvision.models))
        if kind == "video":
            allowed |= set(torchvision.models.list_models(module=torchvision.models.video))
        if name not in allowed:
            module = torchvision.models.get_model_builder(name).__module__.split(".")
            what = next((v for k, v in _NOT_CLASSIFIERS.items() if k in module), "not an image classifier")
            raise ValueError(f"{spec} is {what}; this command takes image classifiers")
        model = torchvision.models.get_model(name, weights=None)
    elif spec.startswith("timm:"):
        name = spec.split(":", 1)[1]
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
        _load_state(model, _read_state_dict(weights), spec, weights)
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
        _load_state(built, _read_state_dict(weights), "the factory's model", weights)
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
