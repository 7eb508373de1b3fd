"""Benchmarks of the Captum methods pyxai added: pyxai vs Captum on the same model, batch and
seeds (parity checked first), vs the floor.

Workloads (CPU unless --device): torchvision ResNet-18 with random weights, eval mode.

* deconvolution: batch 4, 224x224 (quick: batch 2, 32x32). Floor: one forward + input-gradient
  backward of the batch.
* gradient_shap: 16 samples (quick 4), a distribution of 4 baselines, stdev 0.1. Floor: forward +
  backward of the ``B * n_samples`` rows in one chunk (what both libraries run). Same NumPy and
  torch seeds before pyxai and Captum, so their numbers are equal.
* layer_activation: layer3 of a batch of 8, 224x224 (quick: batch 2, 32x32). Floor: one plain
  forward.
* shapley_sampling: batch 2, 64x64, a 4 x 4 grid of features, 4 permutations (quick: 32x32, a
  2 x 2 grid, 2 permutations), perturbations_per_eval 16. Floor: the bare forwards (the baseline,
  the inputs and one per permutation step) at the same batch size. Same torch seed before both.
* shapley_values: the same on a 2 x 2 grid, all 24 permutations (96 steps).
* deeplift: batch 4, 224x224 (quick: batch 2, 32x32), a random baseline; deeplift_shap: batch 2
  (quick 1), a distribution of 4 baselines. Floor: forward + input-gradient backward of the rows
  both libraries run (2 B, resp. 2 B R). Captum raises for a module used twice in one forward
  (ResNet's blocks call one ReLU twice): it runs on :func:`unshared` (the same function, one module
  per use).
* lime / kernel_shap: batch 2, 64x64, an 8 x 8 grid of features, 64 samples (quick: 32x32, a
  4 x 4 grid, 16 samples), perturbations_per_eval 16; Lime with its default Lasso (alpha 0.01),
  KernelShap with its regression. Floor: a forward of the clean batch (both libraries run one),
  then the ``B * n_samples`` bare forwards in chunks of 16 B rows (pyxai evaluates the examples
  together; Captum one after the other, 16 rows a forward).
  Same torch seed before both.
* layer_ig / layer_conductance: layer2, 16 steps (quick 4), internal_batch_size 2 B, batch 4
  224x224 (quick 2, 32x32). Floor: forward + input-gradient backward of the path's rows in the
  same chunks (the layer methods need the same passes).
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from pyxai.benchmark.core import Case, forward_floor, random_resnet18, register


def _setup(b: int, size: int, device: str) -> tuple[torch.nn.Module, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return random_resnet18().to(device), torch.randn(b, 3, size, size, generator=g).to(device)


def _grad_floor(model: torch.nn.Module, x: torch.Tensor, rows: int) -> Callable[[], None]:
    chunk = x[:1].expand(rows, *x.shape[1:]).contiguous()

    def run() -> None:
        z = chunk.clone().requires_grad_()
        with torch.enable_grad():
            torch.autograd.grad(model(z)[:, 0].sum(), z)

    return run


@register("deconvolution")
def deconvolution_cases(quick: bool, device: str) -> list[Case]:
    import pyxai

    b, size = (2, 32) if quick else (4, 224)
    model, x = _setup(b, size, device)

    def captum() -> torch.Tensor:
        from captum.attr import Deconvolution

        return Deconvolution(model).attribute(x.clone().requires_grad_(), target=3)

    return [Case(
        name=f"resnet18 {size}x{size} b={b}",
        impls={"pyxai": lambda: pyxai.Deconvolution(model).attribute(x, target=3),
               "floor": _grad_floor(model, x, b), "captum": captum},
        parity=[("pyxai", "captum", 1e-4)], device=device,
        notes="floor = forward + input-gradient backward of the batch",
    )]


@register("gradient_shap")
def gradient_shap_cases(quick: bool, device: str) -> list[Case]:
    import pyxai

    b, size, n = (2, 32, 4) if quick else (2, 224, 16)
    model, x = _setup(b, size, device)
    dist = torch.randn(4, *x.shape[1:], generator=torch.Generator().manual_seed(2)).to(device)
    kw = dict(baselines=dist, n_samples=n, stdevs=0.1, target=3)

    def seeded(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            np.random.seed(0)
            torch.manual_seed(0)
            return fn()

        return run

    def captum() -> torch.Tensor:
        from captum.attr import GradientShap

        return GradientShap(model).attribute(x, **kw)

    return [Case(
        name=f"resnet18 {size}x{size} b={b}, {n} samples",
        impls={"pyxai": seeded(lambda: pyxai.GradientShap(model).attribute(x, **kw)),
               "floor": _grad_floor(model, x, b * n), "captum": seeded(captum)},
        parity=[("pyxai", "captum", 1e-4)], device=device,
        notes=f"floor = forward + input-gradient backward of {b * n} rows in one chunk",
    )]


@register("layer_activation")
def layer_activation_cases(quick: bool, device: str) -> list[Case]:
    import pyxai

    b, size = (2, 32) if quick else (8, 224)
    model, x = _setup(b, size, device)

    def captum() -> torch.Tensor:
        from captum.attr import LayerActivation

        return LayerActivation(model, model.layer3).attribute(x)

    def floor() -> None:
        with torch.inference_mode():
            model(x)

    return [Case(
        name=f"resnet18 {size}x{size} b={b}, layer3",
        impls={"pyxai": lambda: pyxai.LayerActivation(model, model.layer3).attribute(x),
               "floor": floor, "captum": captum},
        parity=[("pyxai", "captum", 1e-6)], device=device, notes="floor = one plain forward",
    )]


def _shapley_case(cls: str, quick: bool, device: str) -> Case:
    import math

    import pyxai
    from pyxai.registry import _grid_mask

    exact = cls == "ShapleyValues"
    b, size, n, cells = (2, 32, 2, 2) if quick else (2, 64, 4, 4)
    cells = 2 if exact else cells
    model, x = _setup(b, size, device)
    kw = dict(target=3, feature_mask=_grid_mask(x, cells), perturbations_per_eval=16)
    if exact:
        n = math.factorial(cells**2)  # every permutation
    else:
        kw["n_samples"] = n
    rows = b * (2 + n * cells**2)

    def ours() -> torch.Tensor:
        torch.manual_seed(0)
        return getattr(pyxai, cls)(model).attribute(x, **kw)

    def captum() -> torch.Tensor:
        import captum.attr

        torch.manual_seed(0)
        return getattr(captum.attr, cls)(model).attribute(x, **kw)

    return Case(
        name=f"resnet18 {size}x{size} b={b}, {cells**2} features, {n} permutations",
        impls={"pyxai": ours, "floor": forward_floor(model, x, rows, 16 * b), "captum": captum},
        parity=[("pyxai", "captum", 1e-4)], device=device,
        notes=f"floor = {rows} bare forwards in chunks of {16 * b} rows",
    )


@register("shapley_sampling")
def shapley_cases(quick: bool, device: str) -> list[Case]:
    return [_shapley_case("ShapleyValueSampling", quick, device)]


@register("shapley_values")
def shapley_values_cases(quick: bool, device: str) -> list[Case]:
    return [_shapley_case("ShapleyValues", quick, device)]


def _lime_case(cls: str, quick: bool, device: str) -> Case:
    import pyxai
    from pyxai.registry import _grid_mask

    b, size, n, cells = (2, 32, 16, 4) if quick else (2, 64, 64, 8)
    model, x = _setup(b, size, device)
    kw = dict(target=3, feature_mask=_grid_mask(x, cells), n_samples=n, perturbations_per_eval=16)

    def seeded(make: Callable[[], Callable]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            torch.manual_seed(0)
            return make().attribute(x, **kw)

        return run

    def captum() -> Callable:
        import captum.attr

        return getattr(captum.attr, cls)(model)

    perturbed = forward_floor(model, x, b * n, 16 * b)

    def floor() -> None:  # the clean batch (both libraries run it once), then the samples
        with torch.inference_mode():
            model(x)
        perturbed()

    return Case(
        name=f"resnet18 {size}x{size} b={b}, {cells**2} features, {n} samples",
        impls={"pyxai": seeded(lambda: getattr(pyxai, cls)(model)), "floor": floor,
               "captum": seeded(captum)},
        parity=[("pyxai", "captum", 1e-3)], device=device,
        notes=f"floor = a forward of the {b} inputs, then {b * n} bare forwards in chunks of "
              f"{16 * b} rows",
    )


@register("lime")
def lime_cases(quick: bool, device: str) -> list[Case]:
    return [_lime_case("Lime", quick, device)]


@register("kernel_shap")
def kernel_shap_cases(quick: bool, device: str) -> list[Case]:
    return [_lime_case("KernelShap", quick, device)]


def _layer_ig_case(cls: str, quick: bool, device: str) -> Case:
    import pyxai

    b, size, steps = (2, 32, 4) if quick else (4, 224, 16)
    model, x = _setup(b, size, device)
    points = steps + 1 if cls == "LayerConductance" else steps
    kw = dict(target=3, n_steps=steps, internal_batch_size=2 * b)

    def captum() -> torch.Tensor:
        import captum.attr

        return getattr(captum.attr, cls)(model, model.layer2).attribute(x, **kw)

    def floor() -> None:  # forward + backward of every path point, in the same chunks
        for i in range(0, points * b, 2 * b):
            z = x[:1].expand(min(2 * b, points * b - i), *x.shape[1:]).clone().requires_grad_()
            with torch.enable_grad():
                torch.autograd.grad(model(z)[:, 0].sum(), z)

    return Case(
        name=f"resnet18 {size}x{size} b={b}, layer2, {steps} steps",
        impls={"pyxai": lambda: getattr(pyxai, cls)(model, model.layer2).attribute(x, **kw),
               "floor": floor, "captum": captum},
        parity=[("pyxai", "captum", 1e-4)], device=device,
        notes=f"floor = forward + input-gradient backward of {points * b} rows in chunks of "
              f"{2 * b}",
    )


@register("layer_ig")
def layer_ig_cases(quick: bool, device: str) -> list[Case]:
    return [_layer_ig_case("LayerIntegratedGradients", quick, device)]


@register("layer_conductance")
def layer_conductance_cases(quick: bool, device: str) -> list[Case]:
    return [_layer_ig_case("LayerConductance", quick, device)]


class _Cycle(nn.Module):
    """A module called ``n`` times per forward, as ``n`` copies: call ``i`` goes to copy ``i %
    n``."""

    def __init__(self, module: nn.Module, n: int) -> None:
        super().__init__()
        self.uses = nn.ModuleList(copy.deepcopy(module) for _ in range(n))
        self.i = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.i += 1
        return self.uses[(self.i - 1) % len(self.uses)](x)


def unshared(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """A deep copy of ``model`` in which every module DeepLift rescales that runs k > 1 times per
    forward (on ``x``) is k modules, one per call: the same function, which Captum's DeepLift
    accepts (it raises for reused modules)."""
    from pyxai.gradient.deeplift_rules import RULES

    twin = copy.deepcopy(model)
    calls: dict[str, int] = {}

    def count(name: str) -> Callable:
        return lambda *_: calls.__setitem__(name, calls.get(name, 0) + 1)

    handles = [m.register_forward_hook(count(n)) for n, m in twin.named_modules()
               if type(m) in RULES]
    try:
        with torch.no_grad():
            twin(x)
    finally:
        for h in handles:
            h.remove()
    for name, k in calls.items():
        if k > 1:
            parent, _, attr = name.rpartition(".")
            owner = twin.get_submodule(parent)
            setattr(owner, attr, _Cycle(getattr(owner, attr), k))
    return twin


def _deeplift_case(cls: str, quick: bool, device: str) -> Case:
    import pyxai

    shap = cls == "DeepLiftShap"
    b, size = ((1, 32) if quick else (2, 224)) if shap else ((2, 32) if quick else (4, 224))
    model, x = _setup(b, size, device)
    g = torch.Generator().manual_seed(2)
    base = torch.randn(4 if shap else 1, *x.shape[1:], generator=g).to(device) * 0.5
    rows = 2 * b * (base.shape[0] if shap else 1)
    twin = unshared(model, x)
    kw = dict(baselines=base, target=3)

    def captum() -> torch.Tensor:
        import captum.attr

        with warnings.catch_warnings():  # Captum's note on the hooks it sets
            warnings.simplefilter("ignore")
            return getattr(captum.attr, cls)(twin).attribute(x.clone().requires_grad_(), **kw)

    what = f"{base.shape[0]} baselines" if shap else "one baseline"
    return Case(
        name=f"resnet18 {size}x{size} b={b}, {what}",
        impls={"pyxai": lambda: getattr(pyxai, cls)(model).attribute(x, **kw),
               "floor": _grad_floor(model, x, rows), "captum": captum},
        parity=[("pyxai", "captum", 1e-4)], device=device,
        notes=f"floor = forward + input-gradient backward of {rows} rows (inputs and "
              "baselines); Captum on one module per ReLU use",
    )


@register("deeplift")
def deeplift_cases(quick: bool, device: str) -> list[Case]:
    return [_deeplift_case("DeepLift", quick, device)]


@register("deeplift_shap")
def deeplift_shap_cases(quick: bool, device: str) -> list[Case]:
    return [_deeplift_case("DeepLiftShap", quick, device)]
