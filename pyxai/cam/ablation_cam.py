"""Ablation-CAM (Desai & Ramaswamy, 2020), drop-in for pytorch-grad-cam's ``AblationCAM``.

For each image b and channel k of the target layer, the layer's output is replaced by the image's
cached activations with channel k ablated, and the rest of the model runs on it; the weight is the
relative drop of the target score, ``w_bk = (s_b - s_bk) / s_b``. The ablation value is
pytorch-grad-cam's ``AblationLayer``'s: 0 when the image's activations have minimum 0 (post-ReLU
layers), else ``min - 1e7`` compounded once per earlier row of pytorch-grad-cam's chunk of
``batch_size`` channels (its layer recomputes ``min`` after every row it ablates).

The ablations of all images run through the :class:`~pyxai.engine.runner.PerturbationRunner` in
chunks of ``batch_size`` rows (any mix of images), on a view of the model: the view's copy of the
target layer is swapped (in the view only) for a stand-in returning the ablated activations, so
the layer itself is not recomputed, as in pytorch-grad-cam; the user's modules are never
touched. Every chunk carries its perturbation indices, so no host sync per chunk.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from pyxai.cam.base import BaseCAM
from pyxai.cam.score_cam import ChannelScores
from pyxai.engine.checks import check_positive_int
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import ResolvedTarget
from pyxai.engine.view import ModelView

#: pytorch-grad-cam's ``AblationLayer.ABLATION_VALUE``.
ABLATION_VALUE = 1e7


def ablation_values(activations: torch.Tensor, chunk: int) -> torch.Tensor:
    """Tensor[B, chunk]: the value pytorch-grad-cam writes into the ablated channel of row j of a
    chunk (0 when the image's minimum activation is 0; else ``min - 1e7`` compounded j + 1 times
    in the activations' dtype)."""
    low = activations.reshape(activations.shape[0], -1).min(1).values
    vals, v = [], low
    for _ in range(chunk):
        v = v - ABLATION_VALUE
        vals.append(v)
    table = torch.stack(vals, 1)
    return torch.where(low[:, None] == 0, torch.zeros_like(table), table)


class _Ablated(nn.Module):
    """Stands in for the target layer in the view: returns the ablated cached activations (the
    layer itself is not recomputed, as pytorch-grad-cam's ``AblationLayer``)."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.fn()


@contextlib.contextmanager
def _replaced(root: nn.Module, layer: nn.Module, stand_in: nn.Module) -> Iterator[None]:
    """Swap ``layer`` (a module of the view ``root``) for ``stand_in`` in every parent holding
    it, for the block."""
    slots = [(parent, name) for parent in root.modules()
             for name, child in parent._modules.items() if child is layer]
    if not slots:
        raise ValueError("the target layer is not a child module of the model")
    try:
        for parent, name in slots:
            parent._modules[name] = stand_in
        yield
    finally:
        for parent, name in slots:
            parent._modules[name] = layer


class AblationCAM(BaseCAM):
    """Ablation-CAM with pytorch-grad-cam's semantics.

    Args:
        model, target_layers: as :class:`~pyxai.cam.base.BaseCAM` (CNN layers: the channel axis
            of the layer output is dim 1).
        reshape_transform: not supported (transformer ablation needs pytorch-grad-cam's
            ``AblationLayerVit``); must be None.
        batch_size: model inputs per forward (default 32, pytorch-grad-cam's); it also sets which
            rows compound the ablation value for layers with negative activations, as there.
        ratio_channels_to_ablate: only 1.0 (all channels) is supported.
        show_progress: tqdm progress bar.
    """

    uses_gradients = False

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 ablation_layer: object = None, batch_size: int = 32,
                 ratio_channels_to_ablate: float = 1.0, show_progress: bool = False,
                 backend: str | None = None) -> None:
        if reshape_transform is not None:
            raise ValueError("AblationCAM does not support reshape_transform (transformer "
                             "layers) yet; use another CAM for them")
        if ablation_layer is not None:
            raise ValueError("ablation_layer is not supported: pyxai ablates the channels of "
                             "the layer output as pytorch-grad-cam's default AblationLayer")
        if ratio_channels_to_ablate != 1.0:
            raise ValueError("ratio_channels_to_ablate must be 1.0 (pyxai ablates every "
                             f"channel), got {ratio_channels_to_ablate!r}")
        super().__init__(model, target_layers, None, backend=backend)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.show_progress = show_progress

    def get_cam_weights(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                        activations: torch.Tensor, grads: torch.Tensor | None,
                        forward: Callable) -> torch.Tensor:
        if not isinstance(forward, ModelView):
            raise TypeError("AblationCAM runs on a ModelView of the model")
        b, k = activations.shape[:2]
        acts = activations.detach()
        chunk = check_positive_int(self.batch_size, "batch_size")
        values = ablation_values(acts, chunk)  # [B, chunk]
        layer = forward[self.target_layers[layer_index]]
        state: dict[str, torch.Tensor] = {}

        def ablated(*_: object) -> torch.Tensor:
            idx = state["idx"]
            img, ch = idx // k, idx % k
            new = acts[img].clone()
            rows = torch.arange(idx.shape[0], device=idx.device)
            new[rows, ch] = values[img, ch % chunk].to(new.dtype).reshape(
                -1, *([1] * (new.dim() - 2)))
            return new

        def run(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            state["idx"] = idx
            return forward(x)

        with torch.inference_mode():
            clean = target(forward(inputs))  # [B] the scores without ablation
        with _replaced(forward.module, layer, _Ablated(ablated)):
            scores = ChannelScores(target, b * k, k, clean.dtype, inputs.device)
            runner = PerturbationRunner(run, batch_size=self.batch_size,
                                        show_progress=self.show_progress)

            def make_chunk(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
                idx = torch.arange(start, stop, device=inputs.device)
                return inputs[idx // k], idx

            runner.run(b * k, make_chunk, scores, rows_per_item=1, desc="AblationCAM")
        return (clean[:, None] - scores.result()) / clean[:, None]
