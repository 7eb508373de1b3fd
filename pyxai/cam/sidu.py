"""SIDU: similarity difference and uniqueness (Muddamsetty et al., 2020/2022), SPECS §3.

For each image: binary masks ``B_k = 1[A_k > threshold]`` from the target layer's activation maps,
upsampled with mirror-border half-pixel bilinear (skimage ``resize(order=1, mode="reflect")``) to
``8 * ceil(H / 8) x 8 * ceil(W / 8)`` and cropped to the input (= the input size when it is a
multiple of 8, as in the reference); the model runs on ``x * M_k``. With ``p0`` the clean outputs
and ``P_k`` the masked ones:

* similarity difference ``SD_k = exp(-(s(p0) - s(P_k))^2 / (2 sigma^2))`` on the target score s;
* uniqueness ``U_k = sum_j ||P_k - P_j||_2`` over all masks, min-max normalised (``+ 1e-13``);
* saliency ``S = sum_k SD_k U_k M_k / N / p1``.

The masked inputs are generated chunk by chunk (``pyxai.ops.masks.upsample_blend``) and run by the
perturbation runner; the masks are never stored at full size (``weighted_mask_sum`` regenerates
them); uniqueness is computed on the device blockwise with ``torch.cdist`` row sums, never as an
N x N host matrix.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from pyxai.cam._targets import Scorer
from pyxai.engine.checks import check_inputs, check_same_device
from pyxai.engine.hooks import capture_layers, check_layers
from pyxai.engine.runner import PerturbationRunner
from pyxai.ops.masks import upsample_blend, weighted_mask_sum

#: SIDU's upsampling cell: masks are resized to ``CELL * ceil(size / CELL)``.
CELL = 8


def uniqueness(outputs: torch.Tensor, block: int = 256) -> torch.Tensor:
    """``U_k = sum_j ||P_k - P_j||_2`` for Tensor[N, D] outputs, blockwise (float64).

    Returns:
        Tensor[N] of outputs' dtype.
    """
    p = outputs.double()
    u = torch.empty(p.shape[0], dtype=torch.float64, device=p.device)
    for i in range(0, p.shape[0], block):
        u[i : i + block] = torch.cdist(p[i : i + block], p).sum(1)
    return u.to(outputs.dtype)


class SIDU:
    """SIDU saliency from a target layer's feature maps.

    Args:
        model: ``nn.Module`` returning scores Tensor[B, K] (probabilities in the reference).
        target_layer: module of ``model`` whose output (Tensor[B, N, h, w]) gives the masks.
        threshold: activation threshold of the binary masks. Default: 0.1
        sigma: width of the similarity kernel. Default: 0.25
        p1: the reference's final scale ``1 / p1``. Default: 0.5
        softmax: apply a softmax to the model outputs first (the reference model outputs
            probabilities; use this for a model returning logits). Default: False
        reshape_transform: maps the layer output to Tensor[B, N, h, w] (transformers).
        batch_size: masked images per forward (None: chosen to fit memory).
        show_progress: tqdm progress bar.
        backend: backend of the masks ops.

    Examples::

        >>> sidu = pyxai.SIDU(model, model.layer4[-1], softmax=True)
        >>> sal = sidu.attribute(x, target=None)           # Tensor[B, 1, H, W]
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module,
        threshold: float = 0.1,
        sigma: float = 0.25,
        p1: float = 0.5,
        softmax: bool = False,
        reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
        backend: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(target_layer, (list, tuple)):
            if len(target_layer) != 1:
                raise ValueError("SIDU takes one target_layer")
            target_layer = target_layer[0]
        self.model = model
        self.target_layer = check_layers(model, [target_layer], "target_layer")[0]
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.threshold, self.sigma, self.p1 = float(threshold), float(sigma), float(p1)
        self.softmax = softmax
        self.reshape_transform = reshape_transform
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.backend = backend

    def _outputs(self, out: torch.Tensor) -> torch.Tensor:
        return torch.softmax(out, dim=-1) if self.softmax else out

    def attribute(self, inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
        """SIDU saliency maps.

        Args:
            inputs: Tensor[B, C, H, W] on the model's device.
            target: None (predicted class), int, sequence/Tensor[B], pytorch-grad-cam target
                objects, or a callable ``outputs -> Tensor[B]`` (applied after the softmax).

        Returns:
            Tensor[B, 1, H, W] (raw SIDU values, not normalised).
        """
        if isinstance(inputs, torch.Tensor):
            check_same_device(self.model, inputs)
        x = check_inputs(inputs, "inputs", ndims=(4,))
        x = x.detach()
        with torch.inference_mode(), capture_layers([self.target_layer], grad=False) as cap:
            p0 = self.model(x)
            (act,) = cap.check([self.target_layer], "target_layer")
        if not isinstance(p0, torch.Tensor) or p0.shape[0] != x.shape[0]:
            raise ValueError("the model must return a Tensor with one row per input")
        if self.reshape_transform is not None:
            act = self.reshape_transform(act)
        if act.dim() != 4:
            raise ValueError(
                f"target_layer output is not a 4-D feature map (got {tuple(act.shape)}); pass a "
                "reshape_transform that maps it to Tensor[B, N, h, w]"
            )
        p0 = self._outputs(p0.clone())
        scorer = Scorer.resolve(target, p0)
        b, n = act.shape[:2]
        h, w = x.shape[2:]
        canvas = (CELL * math.ceil(h / CELL), CELL * math.ceil(w / CELL))
        grids = (act > self.threshold).to(x.dtype).reshape(b * n, *act.shape[2:]).contiguous()
        outs = torch.empty(b * n, *p0.shape[1:], dtype=p0.dtype, device=p0.device)

        def make_chunk(start: int, stop: int) -> torch.Tensor:
            parts = []
            for img in range(start // n, (stop - 1) // n + 1):
                s, e = max(start, img * n), min(stop, (img + 1) * n)
                parts.append(upsample_blend(x[img : img + 1], grids[s:e], canvas=canvas,
                                            mode="bilinear_reflect", backend=self.backend))
            return torch.cat(parts) if len(parts) > 1 else parts[0]

        def consume(start: int, stop: int, out: torch.Tensor) -> None:
            outs[start:stop] = self._outputs(out).to(outs.dtype)

        runner = PerturbationRunner(self.model, batch_size=self.batch_size,
                                    show_progress=self.show_progress)
        runner.run(b * n, make_chunk, consume, rows_per_item=1, desc="SIDU", sample=x[:1])
        rows_b = torch.arange(b * n, device=p0.device) // n
        s0 = scorer(p0, torch.arange(b, device=p0.device))[rows_b]
        sk = scorer(outs, rows_b)
        sd = torch.exp(-((s0 - sk) ** 2) / (2 * self.sigma**2)).view(b, n)
        maps = []
        for img in range(b):
            u = uniqueness(outs[img * n : (img + 1) * n].reshape(n, -1))
            u = (u - u.min()) / (u.max() - u.min() + 1e-13)
            weights = (sd[img] * u).to(x.dtype)[:, None]
            sal = weighted_mask_sum(grids[img * n : (img + 1) * n], weights, (h, w),
                                    canvas=canvas, mode="bilinear_reflect", backend=self.backend)
            maps.append(sal / n / self.p1)
        return torch.stack(maps)
