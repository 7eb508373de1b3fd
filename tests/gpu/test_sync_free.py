"""No host sync in any hot path on CUDA: every chunk after the first (and the LRP/CRP rules'
backward) runs with ``torch.cuda.set_sync_debug_mode("error")`` (``PYXAI_SYNC_DEBUG=1``, see
pyxai.engine.sync), so a
``.item()``, ``.tolist()``, ``bool(tensor)`` or blocking copy there raises. Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

import pyxai
from tests.engine.test_view import randomised_resnet18

DEV = "cuda"


@pytest.fixture
def model(rng):
    return randomised_resnet18(rng).to(DEV)


def _cells() -> torch.Tensor:
    """Tensor[1, 1, 32, 32] ids of an 8 x 8 grid of 4 x 4 cells."""
    return torch.arange(64, device=DEV).view(1, 1, 8, 8).repeat_interleave(4, 2) \
        .repeat_interleave(4, 3)


def cases(model: torch.nn.Module) -> dict:
    layer = model.layer4[-1]
    sal = pyxai.Saliency(model)
    return {
        "rise": lambda x, t: pyxai.RISE(model, n_masks=256, grid_size=4, batch_size=32)
        .attribute(x, target=t),
        "sobol": lambda x, t: pyxai.SobolAttribution(model, grid_size=4, nb_design=8, batch_size=32)
        .attribute(x, target=t),
        "occlusion": lambda x, t: pyxai.Occlusion(model).attribute(
            x, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), target=t,
            perturbations_per_eval=8),
        "feature_ablation": lambda x, t: pyxai.FeatureAblation(model).attribute(
            x, target=t, feature_mask=torch.arange(64, device=DEV).view(1, 1, 8, 8)
            .repeat_interleave(4, 2).repeat_interleave(4, 3), perturbations_per_eval=8),
        "lime": lambda x, t: pyxai.Lime(model).attribute(
            x, target=t, feature_mask=_cells(), n_samples=32, perturbations_per_eval=8),
        "kernel_shap": lambda x, t: pyxai.KernelShap(model).attribute(
            x, target=t, feature_mask=_cells(), n_samples=32, perturbations_per_eval=8),
        "scorecam": lambda x, t: pyxai.ScoreCAM(model, target_layers=[layer], batch_size=64)
        .attribute(x, target=t),
        "sidu": lambda x, t: pyxai.SIDU(model, layer).attribute(x, target=t),
        "lrp": lambda x, t: pyxai.LRP(model).attribute(x, target=t),
        "crp": lambda x, t: pyxai.CRP(model).attribute(x, target=t,
                                                       concepts={"layer3.0.conv1": [1, 5]}),
        "deletion": lambda x, t: pyxai.metrics.deletion(model, x, x.abs().sum(1), target=t,
                                                        n_steps=16),
        "insertion": lambda x, t: pyxai.metrics.insertion(model, x, x.abs().sum(1), target=t,
                                                          n_steps=16),
        "mu_fidelity": lambda x, t: pyxai.metrics.mu_fidelity(model, x, x.abs().sum(1), target=t,
                                                              n_samples=64),
        "max_sensitivity": lambda x, t: pyxai.metrics.max_sensitivity(sal, x, target=t,
                                                                      n_samples=4),
    }


NAMES = ["rise", "sobol", "occlusion", "feature_ablation", "lime", "kernel_shap", "scorecam",
         "sidu", "lrp", "crp", "deletion", "insertion", "mu_fidelity", "max_sensitivity"]


@pytest.mark.parametrize("name", NAMES)
def test_hot_paths_do_not_sync(rng, model, sync_debug, name):
    x = torch.randn(2, 3, 32, 32, generator=rng).to(DEV)
    target = [1, 7]
    out = cases(model)[name](x, target)
    assert torch.isfinite(out).all()
