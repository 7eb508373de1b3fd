"""The method registry: every explainer by name, with the defaults the CLI, ``pyxai bench``, the video
explainer and the dataset runner use.

    >>> import pyxai.registry as registry
    >>> explain = registry.build("gradcam", model, layer=model.layer4[-1])
    >>> maps = explain(x, target)                       # Tensor[B, 1, H, W]
    >>> registry.METHODS["rise"].init                   # {'n_masks': 1000}

A :class:`Method` names the pyxai class, its constructor defaults, its ``attribute()`` defaults and
how it takes a target layer; :func:`build` makes an ``explain(inputs, target) -> Tensor`` callable from
a model (and layer), with any default overridden by keyword. Entries are plain data, so adding a
method is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from pyxai.engine.view import forward_view

Explain = Callable[[torch.Tensor, Any], torch.Tensor]


def _occlusion_windows(x: torch.Tensor) -> dict[str, Any]:
    """Windows of 1/8 of the image side, stride 1/16, all channels at once."""
    win = max(2, x.shape[-1] // 8)
    return {"sliding_window_shapes": (x.shape[1], win, win),
            "strides": (x.shape[1], max(1, win // 2), max(1, win // 2))}


@dataclass(frozen=True)
class Method:
    """One registered explainer.

    Attributes:
        name: registry name (``pyxai explain --method NAME``).
        cls: the class's name in the top-level ``pyxai`` namespace.
        description: one line for listings.
        init: constructor keyword defaults.
        call: ``attribute()`` keyword defaults (a dict, or ``inputs -> dict`` for size-dependent ones).
        layer: the constructor keyword that takes the target layer (``"target_layers"`` takes a
            list), or None when the method needs no layer.
        wraps: the class's name of an inner explainer the class wraps (``NoiseTunnel(Saliency)``).
        inputs: what the method explains: ``"image"`` (Tensor[B, C, H, W]; many also take clips)
            or ``"clip"`` (clip models only, Tensor[B, C, T, H, W]: STEP).
        signed: the maps' sign means something (evidence for / against the target): pictures use
            a colour map centred at zero; otherwise only their ranking counts (scaled min..max).
        needs: modules of optional packages the method's defaults import, and ``extra``, the
            pyxai extra that installs them (``pyxai explain`` with no ``--method`` leaves the
            method out, saying so, when one is missing: :attr:`missing`).
        none_is_every_output: ``target=None`` makes the class explain every output (Captum's
            multi-task output of ShapleyValueSampling / ShapleyValues: Tensor[B, K, ...]); the
            registry's ``explain`` then passes the predicted class, the None of every other method.
    """

    name: str
    cls: str
    description: str
    init: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] | Callable[[torch.Tensor], dict[str, Any]] = field(default_factory=dict)
    layer: str | None = None
    wraps: str | None = None
    inputs: str = "image"
    signed: bool = False
    none_is_every_output: bool = False
    needs: tuple[str, ...] = ()
    extra: str | None = None

    @property
    def needs_layer(self) -> bool:
        return self.layer is not None

    @property
    def missing(self) -> list[str]:
        """The modules of :attr:`needs` that cannot be imported here."""
        import importlib.util

        return [m for m in self.needs if importlib.util.find_spec(m) is None]

    def build(self, model: nn.Module | Callable, layer: nn.Module | None = None, **overrides: Any
              ) -> Explain:
        """``explain(inputs, target) -> Tensor`` for ``model`` with this method's defaults.

        Args:
            model: the model (``nn.Module`` or callable) to explain.
            layer: the target layer, for methods that need one.
            **overrides: constructor keywords replacing the defaults (e.g. ``n_masks=4000``).
        """
        import pyxai

        if self.needs_layer and layer is None:
            raise ValueError(f"method {self.name!r} needs a target layer (layer=...)")
        kwargs = {**self.init, **overrides}
        if self.layer is not None:
            kwargs[self.layer] = [layer] if self.layer == "target_layers" else layer
        cls = getattr(pyxai, self.cls)
        explainer = cls(getattr(pyxai, self.wraps)(model), **kwargs) if self.wraps else \
            cls(model, **kwargs)
        call = self.call
        predicted = self.none_is_every_output

        def explain(inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
            extra = call(inputs) if callable(call) else call
            if target is None and predicted:  # a train-mode model's statistics stay as they are
                with torch.inference_mode():
                    target = forward_view(model)(inputs).argmax(1)
            return explainer.attribute(inputs, target=target, **extra)

        return explain


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("saliency", "Saliency", "gradient magnitude (Captum Saliency)"),
    Method("inputxgradient", "InputXGradient", "input x gradient (Captum)", signed=True),
    Method("integrated_gradients", "IntegratedGradients", "integrated gradients, 50 steps (Captum)",
           signed=True),
    Method("smoothgrad", "NoiseTunnel", "SmoothGrad: NoiseTunnel(Saliency), 16 samples, stdev 0.1",
           call={"nt_type": "smoothgrad", "nt_samples": 16, "nt_samples_batch_size": 8,
                 "stdevs": 0.1}, wraps="Saliency"),
    Method("guided_backprop", "GuidedBackprop", "guided backprop (Captum)", signed=True),
    Method("gradcam", "GradCAM", "Grad-CAM (pytorch-grad-cam semantics)", layer="target_layers"),
    Method("gradcampp", "GradCAMPlusPlus", "Grad-CAM++ (pytorch-grad-cam semantics)",
           layer="target_layers"),
    Method("scorecam", "ScoreCAM", "Score-CAM (pytorch-grad-cam semantics)", layer="target_layers"),
    Method("sidu", "SIDU", "SIDU (similarity difference and uniqueness), softmax scores",
           init={"softmax": True}, layer="target_layer"),
    Method("rise", "RISE", "RISE, 1000 masks", init={"n_masks": 1000}),
    Method("occlusion", "Occlusion", "Occlusion, windows of 1/8 the image, stride 1/16",
           call=lambda x: {**_occlusion_windows(x), "perturbations_per_eval": 16}, signed=True),
    Method("sobol", "SobolAttribution", "Sobol total-order indices, grid 8, 16 designs",
           init={"nb_design": 16}),
    Method("lrp", "LRP", "LRP, epsilon_plus_flat composite", signed=True),
    Method("extremal", "ExtremalPerturbation",
           "extremal perturbation (TorchRay), area 10 %, 300 steps",
           init={"areas": (0.1,), "max_iter": 300}),
    Method("meaningful", "MeaningfulPerturbation",
           "meaningful perturbation (Fong & Vedaldi 2017), 1 - mask, 300 steps"),
    Method("step", "STEP", "STEP spatio-temporal perturbation (TCSVT), clip models, area 10 %, "
           "300 steps, softmax of the outputs", init={"areas": (0.1,), "max_iter": 300,
                                                     "softmax": True}, inputs="clip"),
]}

# pytorch-grad-cam's other CAMs (issue 16)
METHODS.update({m.name: m for m in [
    Method("xgradcam", "XGradCAM", "XGrad-CAM (pytorch-grad-cam semantics)", layer="target_layers"),
    Method("hirescam", "HiResCAM", "HiResCAM (pytorch-grad-cam semantics)", layer="target_layers"),
    Method("gradcam_elementwise", "GradCAMElementWise",
           "Grad-CAM element-wise (pytorch-grad-cam semantics)", layer="target_layers"),
    Method("layercam", "LayerCAM", "LayerCAM (pytorch-grad-cam semantics)", layer="target_layers"),
    Method("eigencam", "EigenCAM", "EigenCAM: first principal component of the activations",
           layer="target_layers"),
    Method("eigengradcam", "EigenGradCAM", "EigenGradCAM: first principal component of G x A",
           layer="target_layers"),
    Method("kpcacam", "KPCA_CAM", "KPCA-CAM: first kernel principal component (sigmoid kernel)",
           layer="target_layers"),
    Method("ablationcam", "AblationCAM", "Ablation-CAM (pytorch-grad-cam semantics)",
           layer="target_layers"),
    Method("fullgrad", "FullGrad", "FullGrad (pytorch-grad-cam semantics; all bias layers)"),
]})


def names(inputs: str | None = None) -> list[str]:
    """Registered method names, sorted; ``inputs="image"`` / ``"clip"``: only the methods whose
    :attr:`Method.inputs` is that."""
    return sorted(n for n, m in METHODS.items() if inputs is None or m.inputs == inputs)


def get(name: str) -> Method:
    """The :class:`Method` called ``name``; ValueError listing the names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(names())}") from None


def build(name: str, model: nn.Module | Callable, layer: nn.Module | None = None,
          **overrides: Any) -> Explain:
    """``get(name).build(model, layer, **overrides)``."""
    return get(name).build(model, layer, **overrides)


def _grid_mask(x: torch.Tensor, cells: int = 8) -> torch.Tensor:
    """Feature ids of a ``cells x cells`` grid over the image (all channels together):
    Tensor[1, 1, H, W] int64, ids ``0 .. cells**2 - 1``."""
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device) * cells // h
    cols = torch.arange(w, device=x.device) * cells // w
    return (rows[:, None] * cells + cols[None])[None, None]


METHODS.update({m.name: m for m in [
    Method("deconvolution", "Deconvolution", "deconvnet (Captum Deconvolution)", signed=True),
    Method("gradient_shap", "GradientShap",
           "GradientSHAP, 16 samples, zero baseline, stdev 0.1 (Captum)",
           call=lambda x: {"baselines": torch.zeros_like(x[:1]), "n_samples": 16,
                           "stdevs": 0.1}, signed=True),
    Method("shapley_sampling", "ShapleyValueSampling",
           "Shapley value sampling on a 4 x 4 grid, 4 permutations (Captum)",
           call=lambda x: {"feature_mask": _grid_mask(x, 4), "n_samples": 4,
                           "perturbations_per_eval": 16}, signed=True, none_is_every_output=True),
    Method("shapley_values", "ShapleyValues",
           "exact Shapley values on a 2 x 2 grid, all 24 permutations (Captum)",
           call=lambda x: {"feature_mask": _grid_mask(x, 2), "perturbations_per_eval": 16},
           signed=True, none_is_every_output=True),
    Method("lime", "Lime", "Lime on an 8 x 8 grid, 128 samples, Lasso alpha 0.01 (Captum)",
           call=lambda x: {"feature_mask": _grid_mask(x, 8), "n_samples": 128,
                           "perturbations_per_eval": 32}, signed=True, needs=("sklearn",),
           extra="lime"),
    Method("kernel_shap", "KernelShap", "Kernel SHAP on an 8 x 8 grid, 128 samples (Captum)",
           call=lambda x: {"feature_mask": _grid_mask(x, 8), "n_samples": 128,
                           "perturbations_per_eval": 32}, signed=True),
]})


def _grey_levels(x: torch.Tensor) -> dict[str, Any]:
    """DeepLiftShap's baseline distribution: constant images at 0, 0.5 and 1 (black, grey and
    white for [0, 1] images), Tensor[3, *x.shape[1:]] — the same for every batch, so a frame's map
    does not depend on the frames batched with it."""
    levels = x.new_tensor([0.0, 0.5, 1.0]).view(3, *([1] * (x.dim() - 1)))
    return {"baselines": levels.expand(3, *x.shape[1:])}


METHODS.update({m.name: m for m in [
    Method("deeplift", "DeepLift", "DeepLIFT rescale rule, zero baseline (Captum)", signed=True),
    Method("deeplift_shap", "DeepLiftShap",
           "DeepLiftShap over 3 constant baselines: 0, 0.5, 1 (Captum)", call=_grey_levels,
           signed=True),
]})


def defaults(m: Method) -> str:
    """``k=v`` of a method's constructor and ``attribute()`` defaults (size-dependent ones named)."""
    parts = [f"{k}={v}" for k, v in m.init.items()]
    if callable(m.call):
        parts.append("attribute(): size-dependent defaults")
    else:
        parts += [f"{k}={v}" for k, v in m.call.items()]
    if m.layer:
        parts.append(f"{m.layer}=<auto>")
    return ", ".join(parts) or "the class defaults"


def help_text(indent: str = "  ", only: list[str] | None = None) -> str:
    """Every method (or those in ``only``) with its description and defaults, one per line, for
    ``--help`` listings."""
    width = max(map(len, METHODS))
    return "\n".join(f"{indent}{m.name:<{width}}  {m.description} [{defaults(m)}]"
                     for m in (METHODS[n] for n in names() if only is None or n in only))
