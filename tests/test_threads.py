"""Two threads explaining one shared model at once get exactly the single-thread results, with
every explainer, and the model is left exactly as found (the inference-server pattern)."""

from __future__ import annotations

import threading

import pytest
import torch

import pyxai
from pyxai import registry
from pyxai.engine.view import same_state, state_fingerprint
from tests.engine.test_view import randomised_resnet18

FAST = {"rise": {"n_masks": 48, "batch_size": 16}, "sobol": {"nb_design": 2, "grid_size": 4},
        "scorecam": {"batch_size": 64},
        # Captum's default noise is the global RNG, shared by threads: only a seeded run is exact
        "smoothgrad": {"seed": 0},
        "extremal": {"max_iter": 4, "step": 4, "sigma": 8},
        "meaningful": {"iterations": 4, "mask_size": 8}}
#: methods that draw from the global torch / NumPy generators as Captum does (GradientShap's
#: baselines and noise, Shapley permutations, Lime / KernelShap samples): two threads share them,
#: so only shapes are compared
GLOBAL_RNG = {"gradient_shap", "shapley_sampling", "lime", "kernel_shap"}


def explainers(model: torch.nn.Module) -> dict:
    """name -> explain(x, target) for every registered method, CRP and two metrics."""
    layer = model.layer4[-1]
    out = {name: registry.build(name, model, layer=layer, **FAST.get(name, {}))
           for name in registry.names(inputs="image")}
    crp = pyxai.CRP(model)
    out["crp"] = lambda x, t: crp.attribute(x, target=t, concepts={"layer3.0.conv1": [1, 5]})
    grad = pyxai.Saliency(model)
    out["max_sensitivity"] = lambda x, t: pyxai.metrics.max_sensitivity(
        grad, x, target=t, n_samples=3, radius=0.05)
    out["deletion"] = lambda x, t: pyxai.metrics.deletion(model, x, x.abs().sum(1), target=t,
                                                          n_steps=8)
    return out


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_two_threads_every_explainer(rng, mode):
    model = randomised_resnet18(rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    target = torch.tensor([1, 7])
    if mode == "train":
        model.train()
    before = state_fingerprint(model)
    work = explainers(model)
    if mode == "train":  # LRP and CRP refuse a train-mode model unless asked; the rest explain it
        work = {k: v for k, v in work.items() if k not in ("lrp", "crp")}
    single = {name: fn(x, target) for name, fn in work.items()}
    names = list(work)
    results: list[dict] = [{}, {}]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        try:
            order = names if i == 0 else names[::-1]  # every method meets others in the other thread
            barrier.wait()
            for name in order:
                results[i][name] = work[name](x, target)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for i in range(2):
        for name in names:
            if name in GLOBAL_RNG:
                assert results[i][name].shape == single[name].shape
                continue
            torch.testing.assert_close(results[i][name], single[name], rtol=0, atol=0,
                                       msg=lambda m, n=name, k=i: f"{n} in thread {k}: {m}")
    assert same_state(before, state_fingerprint(model)) == []
