"""pyxai.metrics: how good is an explanation?

Faithfulness: :func:`deletion`, :func:`insertion` (RISE's causal metrics), :func:`mu_fidelity`.
Localisation: :func:`pointing_game` (TorchRay), :func:`pointing_game_accuracy`,
:func:`energy_pointing_game`. Robustness: :func:`max_sensitivity`, :func:`avg_sensitivity`,
:func:`local_lipschitz` (Quantus' definitions). Sanity: :func:`model_parameter_randomisation`.

All take batches, run the model through the perturbation runner in full batches, and return
``Tensor[B]`` unless stated. Targets follow the one contract of :mod:`pyxai.engine.targets`
(callables may take ``(outputs, rows)``); what a metric sums over perturbations is an
:class:`pyxai.engine.accumulators.Accumulator` (shards merge into the single-run result); memory
does not grow with the number of perturbations (the robustness metrics stream their noise too);
a model in training mode is run on a view and left as found.
"""

from pyxai.metrics.faithfulness import (
    auc,
    deletion,
    insertion,
    mu_fidelity,
    rise_blur,
    rise_blur_weights,
)
from pyxai.metrics.localisation import (
    energy_pointing_game,
    pointing_game,
    pointing_game_accuracy,
    pointing_points,
)
from pyxai.metrics.pairwise import pairwise_deletion, pairwise_insertion
from pyxai.metrics.randomisation import model_parameter_randomisation
from pyxai.metrics.robustness import avg_sensitivity, local_lipschitz, max_sensitivity
from pyxai.metrics.video import (
    method_ranks,
    metric_reliability,
    rank_krippendorff_alpha,
    video_deletion,
    video_insertion,
    video_superpixels,
)

__all__ = [
    "auc",
    "avg_sensitivity",
    "deletion",
    "energy_pointing_game",
    "insertion",
    "local_lipschitz",
    "max_sensitivity",
    "model_parameter_randomisation",
    "mu_fidelity",
    "pairwise_deletion",
    "pairwise_insertion",
    "pointing_game",
    "pointing_game_accuracy",
    "pointing_points",
    "rise_blur",
    "rise_blur_weights",
]
__all__ += ["method_ranks", "metric_reliability", "rank_krippendorff_alpha", "video_deletion",
            "video_insertion", "video_superpixels"]
