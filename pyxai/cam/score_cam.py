"""Score-CAM, drop-in for pytorch-grad-cam's ``ScoreCAM``, on the perturbation engine.

Each activation map ``A_k`` of each image is upsampled to the input (align_corners bilinear, as
``torch.nn.UpsamplingBilinear2d``), min-max normalised (``+ 1e-8``) and multiplies the image; the
target score of every masked image, softmaxed over the channels, weighs the activations. The
masked images are generated chunk by chunk by ``pyxai.ops.masks.upsample_blend`` from the
activation maps (the "grids") and run by the :class:`~pyxai.engine.runner.PerturbationRunner`, so
memory is one chunk whatever the number of channels. The masks are validated once per call
(:func:`pyxai.ops.masks.check_grids`); the chunks then run with ``validate=False`` (no host sync
per chunk).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from pyxai.cam.base import BaseCAM
from pyxai.engine.accumulators import Accumulator
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import ResolvedTarget
from pyxai.ops.masks import check_grids, upsample_blend

MODE = "bilinear_align_corners"


def _align_corners_taps(n_in: int, n_out: int, device: torch.device):
    """Source indices (i0, i1) and weight of i1 (float64) per output coordinate, align_corners."""
    dst = torch.arange(n_out, device=device, dtype=torch.float64)
    src = dst * (n_in - 1) / (n_out - 1) if n_out > 1 else torch.zeros_like(dst)
    i0 = torch.floor(src).long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, src - i0.double()


def _extreme_rows(i0: torch.Tensor) -> torch.Tensor:
    """Output coordinates that are the first or last sample of their source interval."""
    n = i0.shape[0]
    keep = torch.zeros(n, dtype=torch.bool, device=i0.device)
    keep[0] = keep[-1] = True
    if n > 1:
        change = i0[1:] != i0[:-1]
        keep[1:] |= change
        keep[:-1] |= change
    return keep.nonzero().squeeze(1)


def upsampled_minmax(grids: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact min and max of each grid upsampled (bilinear, align_corners) to ``size``.

    Bilinear interpolation is linear between neighbouring source rows (columns), so along each
    axis the extremes over the output samples are at the first or last sample of a source
    interval; evaluating only those rows x columns (at most ``2 gh x 2 gw`` points) gives the
    exact extremes without building the full-size masks.

    Args:
        grids: Tensor[N, gh, gw].
        size: (H, W).

    Returns:
        (min, max), each Tensor[N].
    """
    n, gh, gw = grids.shape
    mats = []
    for n_in, n_out in ((gh, size[0]), (gw, size[1])):
        i0, i1, w = _align_corners_taps(n_in, n_out, grids.device)
        sel = _extreme_rows(i0)
        m = torch.zeros(sel.shape[0], n_in, dtype=torch.float64, device=grids.device)
        rows = torch.arange(sel.shape[0], device=grids.device)
        m.index_put_((rows, i0[sel]), 1 - w[sel], accumulate=True)
        m.index_put_((rows, i1[sel]), w[sel], accumulate=True)
        mats.append(m.to(grids.dtype))
    vals = torch.einsum("rh,nhw,cw->nrc", mats[0], grids, mats[1]).reshape(n, -1)
    return vals.min(1).values, vals.max(1).values


class ChannelScores(Accumulator):
    """Target score of every masked image: perturbation ``i`` is channel ``i % K`` of image
    ``i // K``.

    Args:
        target: the call's resolved target (B samples).
        n_items: B * K perturbations.
        channels: K.
        dtype, device: of the scores.

    Attributes:
        sum_scores: Tensor[B * K], zero for perturbations not evaluated (yet).
    """

    def __init__(self, target: ResolvedTarget, n_items: int, channels: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.target, self.channels = target, channels
        self.sum_scores = torch.zeros(n_items, dtype=dtype, device=device)

    def update(self, start: int, stop: int, values: torch.Tensor) -> None:
        rows = torch.arange(start, stop, device=values.device) // self.channels
        self.sum_scores[start:stop] += self.target(values, rows).to(self.sum_scores.dtype)

    def result(self) -> torch.Tensor:
        """Tensor[B, K] scores."""
        return self.sum_scores.view(-1, self.channels)


class ScoreCAM(BaseCAM):
    """Score-CAM (Wang et al., 2020) with pytorch-grad-cam's semantics (SPECS §4.2).

    Args:
        model, target_layers, reshape_transform: as :class:`~pyxai.cam.base.BaseCAM`.
        batch_size: masked images per forward (None: chosen to fit memory). pytorch-grad-cam's
            ``cam.batch_size = n`` attribute works too.
        show_progress: tqdm progress bar.
        backend: backend of the masks ops.
    """

    uses_gradients = False

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
        backend: str | None = None,
    ) -> None:
        super().__init__(model, target_layers, reshape_transform, backend=backend)
        self.batch_size = batch_size
        self.show_progress = show_progress

    def get_cam_weights(self, inputs: torch.Tensor, layer_index: int, target: ResolvedTarget,
                        activations: torch.Tensor, grads: torch.Tensor | None,
                        forward: Callable) -> torch.Tensor:
        b, k = activations.shape[:2]
        scores = ChannelScores(target, b * k, k, inputs.dtype, inputs.device)
        self.run_masks(inputs, self.channel_grids(inputs, activations), forward, scores)
        return torch.softmax(scores.result(), dim=-1)

    @staticmethod
    def channel_grids(inputs: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
        """The masks' grids: each activation map min-max normalised over its upsampled values.

        Args:
            inputs: Tensor[B, C, H, W].
            activations: Tensor[B, K, h, w] (any K: a subset of the layer's channels too).

        Returns:
            Tensor[B * K, h, w], checked once here (the chunks then read no values).
        """
        if inputs.dim() != 4 or activations.dim() != 4:
            raise ValueError("ScoreCAM supports image inputs Tensor[B, C, H, W] only")
        b, k = activations.shape[:2]
        size = (inputs.shape[2], inputs.shape[3])
        a = activations.to(inputs.dtype).reshape(b * k, *activations.shape[2:])
        lo, hi = upsampled_minmax(a, size)
        grids = ((a - lo[:, None, None]) / (hi - lo + 1e-8)[:, None, None]).contiguous()
        check_grids(grids, None, size, mode=MODE)
        return grids

    def run_masks(self, inputs: torch.Tensor, grids: torch.Tensor, forward: Callable,
                  acc: Accumulator) -> None:
        """Run ``forward`` on every masked image ``x[i // K] * upsample(grids[i])`` into ``acc``
        (``grids`` Tensor[B * K, h, w], K per image), chunk by chunk."""
        b = inputs.shape[0]
        k = grids.shape[0] // b

        def make_chunk(start: int, stop: int) -> torch.Tensor:
            parts = []
            for img in range(start // k, (stop - 1) // k + 1):
                s, e = max(start, img * k), min(stop, (img + 1) * k)
                parts.append(upsample_blend(inputs[img : img + 1], grids[s:e], mode=MODE,
                                            backend=self.backend, validate=False))
            return torch.cat(parts) if len(parts) > 1 else parts[0]

        runner = PerturbationRunner(forward, batch_size=self.batch_size,
                                    show_progress=self.show_progress)
        runner.run(b * k, make_chunk, acc, rows_per_item=1, desc="ScoreCAM", sample=inputs[:1])
