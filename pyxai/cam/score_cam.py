"""Score-CAM, drop-in for pytorch-grad-cam's ``ScoreCAM``, on the perturbation engine.

Each activation map ``A_k`` of each image is upsampled to the input (align_corners bilinear, as
``torch.nn.UpsamplingBilinear2d``), min-max normalised (``+ 1e-8``) and multiplies the image; the
target score of every masked image, softmaxed over the channels, weighs the activations. The
masked images are generated chunk by chunk by ``pyxai.ops.masks.upsample_blend`` from the
activation maps (the "grids") and run by the :class:`~pyxai.engine.runner.PerturbationRunner`, so
memory is one chunk whatever the number of channels.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from pyxai.cam._targets import Scorer
from pyxai.cam.base import BaseCAM
from pyxai.engine.runner import PerturbationRunner
from pyxai.ops.masks import upsample_blend


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

    def get_cam_weights(self, inputs: torch.Tensor, layer_index: int, scorer: Scorer,
                        activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        if inputs.dim() != 4 or activations.dim() != 4:
            raise ValueError("ScoreCAM supports image inputs Tensor[B, C, H, W] only")
        b, k = activations.shape[:2]
        size = (inputs.shape[2], inputs.shape[3])
        a = activations.to(inputs.dtype).reshape(b * k, *activations.shape[2:])
        lo, hi = upsampled_minmax(a, size)
        grids = ((a - lo[:, None, None]) / (hi - lo + 1e-8)[:, None, None]).contiguous()
        scores = torch.empty(b * k, dtype=inputs.dtype, device=inputs.device)

        def make_chunk(start: int, stop: int) -> torch.Tensor:
            parts = []
            for img in range(start // k, (stop - 1) // k + 1):
                s, e = max(start, img * k), min(stop, (img + 1) * k)
                parts.append(upsample_blend(inputs[img : img + 1], grids[s:e], mode=
                                            "bilinear_align_corners", backend=self.backend))
            return torch.cat(parts) if len(parts) > 1 else parts[0]

        def consume(start: int, stop: int, out: torch.Tensor) -> None:
            rows_b = torch.arange(start, stop, device=out.device) // k
            scores[start:stop] = scorer(out, rows_b).to(scores.dtype)

        runner = PerturbationRunner(self.model, batch_size=self.batch_size,
                                    show_progress=self.show_progress)
        runner.run(b * k, make_chunk, consume, rows_per_item=1, desc="ScoreCAM",
                   sample=inputs[:1])
        return torch.softmax(scores.view(b, k), dim=-1)
