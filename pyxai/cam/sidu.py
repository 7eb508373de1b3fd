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
perturbation runner on a view of the model (layer capture never hooks the user's modules); the
masks are never stored at full size (``weighted_mask_sum`` regenerates them); uniqueness is
computed on the device blockwise with ``torch.cdist`` row sums, never as an N x N host matrix.
The masks are binary grids built here (finite, no offsets), so the chunked ops run with
``validate=False``: no host sync per chunk.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import nn

from pyxai.engine.accumulators import Accumulator
from pyxai.engine.base import Explainer
from pyxai.engine.checks import check_finite, check_inputs, check_same_device
from pyxai.engine.hooks import capture_layers, check_layers, model_view
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import resolve_target
from pyxai.ops.masks import upsample_blend, weighted_mask_sum

#: SIDU's upsampling cell: masks are resized to ``CELL * ceil(size / CELL)``.
CELL = 8


def uniqueness(outputs: torch.Tensor, block: int = 256,
               columns: torch.Tensor | None = None) -> torch.Tensor:
    """``U_k = sum_j ||P_k - P_j||_2`` for Tensor[N, D] outputs, blockwise (float64).

    Args:
        outputs: Tensor[N, D].
        block: rows per ``torch.cdist`` block.
        columns: Tensor[N] bool, the ``j`` summed over (None: all).

    Returns:
        Tensor[N] of outputs' dtype.
    """
    p = outputs.double()
    keep = None if columns is None else columns.to(torch.float64)
    u = torch.empty(p.shape[0], dtype=torch.float64, device=p.device)
    for i in range(0, p.shape[0], block):
        d = torch.cdist(p[i : i + block], p)
        u[i : i + block] = (d if keep is None else d * keep).sum(1)
    return u.to(outputs.dtype)


class MaskedOutputs(Accumulator):
    """The model outputs on every masked image (perturbation ``i`` is mask ``i % N`` of image
    ``i // N``), after the optional softmax.

    Args:
        n_items: B * N perturbations.
        like: Tensor[1, ...] an output row (shape, dtype, device), or None to take them from the
            first chunk of outputs.
        softmax: apply a softmax over the last dim first.

    Attributes:
        sum_outputs: Tensor[B * N, ...], zero for perturbations not evaluated (yet).
    """

    def __init__(self, n_items: int, like: torch.Tensor | None, softmax: bool) -> None:
        self.softmax, self.n_items = softmax, n_items
        self.sum_outputs = None if like is None else like.new_zeros(n_items, *like.shape[1:])

    def update(self, start: int, stop: int, values: torch.Tensor) -> None:
        if self.softmax:
            values = torch.softmax(values, dim=-1)
        if self.sum_outputs is None:  # ``like=None``: shaped by the first chunk
            self.sum_outputs = values.new_zeros(self.n_items, *values.shape[1:])
        self.sum_outputs[start:stop] += values.to(self.sum_outputs.dtype)

    def result(self) -> torch.Tensor:
        """Tensor[B * N, ...] outputs."""
        return self.sum_outputs


class Features(NamedTuple):
    """One call's clean pass (:meth:`SIDU.features`).

    Attributes:
        x: Tensor[B, C, H, W] the checked inputs.
        view: the call's model view.
        p0: Tensor[B, ...] the clean outputs (after the optional softmax).
        resolved: the resolved target.
        grids: Tensor[B, N, h, w] the binary masks at layer size.
        canvas: the upsampling size (``CELL * ceil(size / CELL)``).
    """

    x: torch.Tensor
    view: Any
    p0: torch.Tensor
    resolved: Any
    grids: torch.Tensor
    canvas: tuple[int, int]


class SIDU(Explainer):
    """SIDU saliency from a target layer's feature maps.

    Args:
        model: ``nn.Module`` returning scores Tensor[B, K] (probabilities in the reference).
        target_layer: module of ``model`` whose output (Tensor[B, N, h, w]) gives the masks (or
            a list of one module; or give ``target_layers``).
        threshold: activation threshold of the binary masks (finite). Default: 0.1
        sigma: width of the similarity kernel (finite, > 0). Default: 0.25
        p1: the reference's final scale ``1 / p1`` (finite, non-zero). Default: 0.5
        softmax: apply a softmax to the model outputs first (the reference model outputs
            probabilities; use this for a model returning logits). Default: False
        reshape_transform: maps the layer output to Tensor[B, N, h, w] (transformers).
        batch_size: masked images per forward (None: chosen to fit memory).
        show_progress: tqdm progress bar.
        backend: backend of the masks ops.
        target_layers: ``[layer]``, as GradCAM's ``target_layers`` (instead of ``target_layer``).

    Examples::

        >>> sidu = pyxai.SIDU(model, model.layer4[-1], softmax=True)
        >>> sidu = pyxai.SIDU(model, target_layers=[model.layer4[-1]], softmax=True)
        >>> sal = sidu.attribute(x, target=None)           # Tensor[B, 1, H, W]
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module | Sequence[nn.Module] | None = None,
        threshold: float = 0.1,
        sigma: float = 0.25,
        p1: float = 0.5,
        softmax: bool = False,
        reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
        backend: str | None = None,
        target_layers: Sequence[nn.Module] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        super().__init__(model)
        if target_layers is not None:
            if target_layer is not None:
                raise ValueError("give target_layer or target_layers, not both")
            target_layer, name = target_layers, "target_layers"
        elif target_layer is None:
            raise ValueError("SIDU needs a target_layer (or target_layers=[layer])")
        else:
            name = "target_layer"
        layers = check_layers(model, target_layer, name)
        if len(layers) != 1:
            raise ValueError(f"SIDU explains one layer; {name} has {len(layers)}")
        for value, arg in ((threshold, "threshold"), (sigma, "sigma"), (p1, "p1")):
            check_finite(value, arg)
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if p1 == 0:
            raise ValueError("p1 must be non-zero (the maps are divided by p1)")
        self.model = model
        self.target_layer = layers[0]
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
                objects, or a callable ``(outputs) -> Tensor[R]`` / ``(outputs, rows) ->
                Tensor[R]`` (applied after the softmax; ``rows`` is the image of each masked
                row).

        Returns:
            Tensor[B, 1, H, W] (raw SIDU values, not normalised).
        """
        f = self.features(inputs, target)
        b, n = f.grids.shape[:2]
        outs = self.masked_outputs(f, f.grids.reshape(b * n, *f.grids.shape[2:]), n)
        return self.saliency(f, outs.view(b, n, *outs.shape[1:]))

    def features(self, inputs: torch.Tensor, target: Any = None) -> Features:
        """Checks, the clean forward and the binary masks of ``inputs`` Tensor[B, C, H, W]."""
        if isinstance(inputs, torch.Tensor):
            check_same_device(self.model, inputs)
        x = check_inputs(inputs, "inputs", ndims=(4,))
        x = x.detach()
        view = model_view(self.model)
        assert view is not None
        with torch.inference_mode(), capture_layers([self.target_layer], grad=False,
                                                    view=view) as cap:
            p0 = view.module(x)
            (act,) = cap.check([self.target_layer], "target_layer")
        if not isinstance(p0, torch.Tensor) or p0.dim() == 0 or p0.shape[0] != x.shape[0]:
            raise ValueError("the model must return a Tensor with one row per input")
        if self.reshape_transform is not None:
            act = self.reshape_transform(act)
        if act.dim() != 4:
            raise ValueError(
                f"target_layer output is not a 4-D feature map (got {tuple(act.shape)}); pass a "
                "reshape_transform that maps it to Tensor[B, N, h, w]"
            )
        p0 = self._outputs(p0.clone())
        h, w = x.shape[2:]
        canvas = (CELL * math.ceil(h / CELL), CELL * math.ceil(w / CELL))
        # binary grids, no offsets: valid by construction (the chunked ops read no values)
        grids = (act > self.threshold).to(x.dtype).contiguous()
        return Features(x, view, p0, resolve_target(target, p0), grids, canvas)

    def masked_outputs(self, f: Features, grids: torch.Tensor, per_image: int) -> torch.Tensor:
        """The model outputs (after the optional softmax) on ``x[i // per_image] * M_i``.

        Args:
            f: :meth:`features` of the call.
            grids: Tensor[B * per_image, h, w] binary masks, ``per_image`` for each image.
            per_image: masks per image.

        Returns:
            Tensor[B * per_image, ...] outputs.
        """
        x, m = f.x, per_image

        def make_chunk(start: int, stop: int) -> torch.Tensor:
            parts = []
            for img in range(start // m, (stop - 1) // m + 1):
                s, e = max(start, img * m), min(stop, (img + 1) * m)
                parts.append(upsample_blend(x[img : img + 1], grids[s:e], canvas=f.canvas,
                                            mode="bilinear_reflect", backend=self.backend,
                                            validate=False))
            return torch.cat(parts) if len(parts) > 1 else parts[0]

        acc = MaskedOutputs(grids.shape[0], f.p0[:1], self.softmax)
        runner = PerturbationRunner(f.view.module, batch_size=self.batch_size,
                                    show_progress=self.show_progress)
        runner.run(grids.shape[0], make_chunk, acc, rows_per_item=1, desc="SIDU", sample=x[:1])
        return acc.result()

    def saliency(self, f: Features, outs: torch.Tensor,
                 seen: torch.Tensor | None = None) -> torch.Tensor:
        """The maps from the masked outputs.

        Args:
            f: :meth:`features` of the call (its masks ``M_k``).
            outs: Tensor[B, N, ...] the outputs on the masked images (mask ``k`` of image ``b``).
            seen: Tensor[B, N] bool, the masks whose outputs count (the others weigh zero and
                are left out of the uniqueness sums and the mean), or None for all of them.

        Returns:
            Tensor[B, 1, H, W].
        """
        b, n = f.grids.shape[:2]
        h, w = f.x.shape[2:]
        rows_b = torch.arange(b * n, device=f.p0.device) // n
        s0 = f.resolved(f.p0)[rows_b]
        sk = f.resolved(outs.reshape(b * n, *outs.shape[2:]), rows_b)
        sd = torch.exp(-((s0 - sk) ** 2) / (2 * self.sigma**2)).view(b, n)
        maps = []
        for img in range(b):
            cols = None if seen is None else seen[img]
            u = uniqueness(outs[img].reshape(n, -1), columns=cols)
            if cols is None:
                u = (u - u.min()) / (u.max() - u.min() + 1e-13)
                weights, count = sd[img] * u, n
            else:
                lo = torch.where(cols, u, torch.inf).min()
                hi = torch.where(cols, u, -torch.inf).max()
                weights = torch.where(cols, sd[img] * (u - lo) / (hi - lo + 1e-13), 0)
                count = cols.sum()
            sal = weighted_mask_sum(f.grids[img], weights.to(f.x.dtype)[:, None], (h, w),
                                    canvas=f.canvas, mode="bilinear_reflect",
                                    backend=self.backend, validate=False)
            maps.append(sal / count / self.p1)
        return torch.stack(maps)
