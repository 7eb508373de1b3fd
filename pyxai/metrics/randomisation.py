"""Sanity check: cascading model-parameter randomisation (Adebayo et al. 2018).

Layers are re-initialised one after the other, from the output towards the input ("top_down",
cascading), on a deep copy of the model; after each, the explanations are recomputed and compared
with those of the intact model. A method that passes the check gives maps that decorrelate as
more layers are randomised. The user's model is never touched (not even the global RNG).

Matches Quantus' ``MPRT`` (layer order, re-initialisation and similarity): the layers are the
modules that have ``reset_parameters`` (Conv, Linear, BatchNorm, ...) in ``named_modules`` order,
reversed for "top_down"; each is re-initialised with ``reset_parameters()`` after
``torch.manual_seed(seed + 1)`` (inside a forked RNG here); the similarity defaults to the
Spearman rank correlation of the absolute maps (Quantus: ``abs=True``, ``correlation_spearman``;
its max-normalisation does not change a rank correlation). SSIM is not offered: rank correlation
is the measure Adebayo et al. and Quantus report first and needs no window or data-range choice.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch

from pyxai.engine.checks import check_int
from pyxai.metrics._common import explain, fixed_target, pearson, spearman

SIMILARITIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "spearman": spearman,
    "pearson": pearson,
}


def model_parameter_randomisation(
    model: torch.nn.Module,
    explainer_factory: Callable[[torch.nn.Module], Any],
    inputs: torch.Tensor,
    target: Any = None,
    similarity: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "spearman",
    order: str = "top_down",
    abs: bool = True,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Cascading model-parameter randomisation test.

    Args:
        model: the model; it is deep-copied and never modified.
        explainer_factory: ``model -> explainer`` building the explainer on a given model (e.g.
            ``pyxai.Saliency`` or ``lambda m: pyxai.GradCAM(m, [m.layer4])``); the explainer is a
            pyxai explainer or a callable ``(inputs, target) -> attributions``.
        inputs: Tensor[B, ...].
        target: any target of :mod:`pyxai.engine.targets`, resolved once on the intact model and
            fixed for all randomisations; None = the intact model's predicted class.
        similarity: "spearman" (default), "pearson", or a callable
            ``(Tensor[B, F], Tensor[B, F]) -> Tensor[B]``.
        order: "top_down" (cascading from the output), "bottom_up" (cascading from the input) or
            "independent" (one layer at a time, the others intact).
        abs: compare absolute values of the maps. Default: True
        seed: re-initialisation seed, an int (Quantus' ``seed``). Default: 0

    Returns:
        dict ``layer name -> Tensor[B]`` similarity with the intact model's maps, in randomisation
        order (insertion-ordered).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if order not in ("top_down", "bottom_up", "independent"):
        raise ValueError(f"order must be 'top_down', 'bottom_up' or 'independent', got {order!r}")
    sim = SIMILARITIES.get(similarity) if isinstance(similarity, str) else similarity
    if sim is None or not callable(sim):
        raise ValueError(f"similarity must be one of {sorted(SIMILARITIES)} or a callable, "
                         f"got {similarity!r}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a non-empty Tensor[B, ...]")
    seed = check_int(seed, "seed")
    work = copy.deepcopy(model)
    target = fixed_target(work, inputs, target)

    def maps(m: torch.nn.Module) -> torch.Tensor:
        a = explain(explainer_factory(m), inputs, target).detach().reshape(inputs.shape[0], -1)
        return a.abs() if abs else a

    reference = maps(work)
    original = copy.deepcopy(work.state_dict())
    layers = [(n, m) for n, m in work.named_modules() if hasattr(m, "reset_parameters")]
    if order == "top_down":
        layers = layers[::-1]
    devices = sorted({p.device.index or 0 for p in work.parameters() if p.device.type == "cuda"})
    out: dict[str, torch.Tensor] = {}
    for name, module in layers:
        if order == "independent":
            work.load_state_dict(original)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + 1)
            module.reset_parameters()
        out[name] = sim(reference, maps(work)).to(torch.float32)
    return out
