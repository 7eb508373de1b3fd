"""The Sobol attribution method (Fel et al., NeurIPS 2021): variance-based sensitivity of the
model's score to random masks over a ``grid_size x grid_size`` grid of image cells."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F

from pyxai.engine.accumulators import ItemScores
from pyxai.engine.base import Explainer
from pyxai.engine.checks import check_finite, check_inputs, check_positive_int, check_same_device
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import Target, resolve_target
from pyxai.engine.view import forward_view
from pyxai.ops._dispatch import check_backend
from pyxai.ops.masks import upsample_blend
from pyxai.ops.sobol import ESTIMATORS, degenerate_outputs, sobol_design, sobol_indices
from pyxai.sobol.perturbations import DEFAULT_SIGMA, PERTURBATIONS, blend_terms
from pyxai.sobol.samplers import check_sampler, draw_design

ORDERS = ("total", "first")


class SobolAttribution(Explainer):
    r"""Sobol attribution: total-order (or first-order) Sobol' indices of the target score with
    respect to the cells of a ``grid_size x grid_size`` mask.

    A design of ``nb_design`` points of a ``2d``-dimensional sequence gives matrices A and B
    (``d = grid_size**2``, times the channels with ``per_channel=True``); the model is evaluated
    on the ``(d + 2) * nb_design`` masks of the replicated design ``[A; B; C_1; ...; C_d]``
    (``C_i`` = A with column i from B), each mask upsampled to the input (nearest) and applied by
    the perturbation function. The design rows are generated chunk by chunk by index
    (:func:`pyxai.ops.sobol_design`), so memory does not grow with ``nb_design * (d + 2)``; the
    indices come from :func:`pyxai.ops.sobol_indices` on the gathered scores.

    Args:
        forward_func (callable): model or function mapping Tensor[R, C, H, W] to Tensor[R, K]
            scores (or anything a callable ``target`` accepts).
        grid_size (int, optional): cells per side of the mask grid. Default: 8
        nb_design (int, optional): design points N, a power of two; the model runs
            ``N * (d + 2)`` times per image. Default: 32
        perturbation (str, optional): "inpainting" (``x * m``), "blur" (``x * m + blur(x) *
            (1 - m)``) or "amplitude" (``x * (m - 0.5) * sigma``). Default: "inpainting"
        batch_size (int, optional): model inputs per forward pass; None fits it to memory.
            Default: None
        seed (int, optional): seed of the sampler (the result does not depend on ``batch_size``).
            Default: 0
        sampler (str or callable, optional): "scrambled_sobol", "sobol" (unscrambled, zero point
            first: the original PyTorch reference), "halton", "latin_hypercube", "monte_carlo", or
            ``(n, dim, seed) -> Tensor[n, dim]`` in [0, 1]. Default: "scrambled_sobol"
        estimator (str, optional): "jansen", "homma", "saltelli", "janon" or "glen"
            (:mod:`pyxai.ops.sobol`). Default: "jansen"
        backend (str, optional): "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``).
            Default: None
        per_channel (bool, optional): one mask cell per (row, column, channel), as Xplique's
            ``nb_channels``; design column ``k`` is row ``k // (g C)``, column ``(k // C) % g``,
            channel ``k % C``; maps are then Tensor[B, C, ...]. Default: False
        sigma (float, optional): blur window in pixels (default 10) or amplitude scale
            (default 1). Default: None
        show_progress (bool, optional): progress bar. Default: False
        autocast (torch.dtype, optional): autocast dtype for the forwards. Default: None
        channels_last (bool, optional): channels_last chunks. Default: False

    Examples::

        >>> explainer = pyxai.SobolAttribution(model, grid_size=8, nb_design=32)
        >>> sti = explainer.attribute(images, target=labels)           # Tensor[B, 1, H, W]
        >>> raw = explainer.attribute(images, target=labels, resize=False)  # Tensor[B, 1, 8, 8]
        >>> s1 = explainer.attribute(images, target=labels, order="first")
    """

    def __init__(
        self,
        forward_func: Callable[..., torch.Tensor],
        grid_size: int = 8,
        nb_design: int = 32,
        perturbation: str = "inpainting",
        batch_size: int | None = None,
        seed: int = 0,
        sampler: str | Callable = "scrambled_sobol",
        estimator: str = "jansen",
        backend: str | None = None,
        per_channel: bool = False,
        sigma: float | None = None,
        show_progress: bool = False,
        autocast: torch.dtype | None = None,
        channels_last: bool = False,
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
        self.grid_size = check_positive_int(grid_size, "grid_size")
        nb_design = check_positive_int(nb_design, "nb_design")
        if nb_design < 2 or nb_design & (nb_design - 1):
            raise ValueError(f"nb_design must be a power of two >= 2, got {nb_design}")
        self.nb_design = nb_design
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        check_sampler(sampler)
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.sigma = DEFAULT_SIGMA[perturbation] if sigma is None else sigma
        if self.sigma is not None:  # the inpainting perturbation has no sigma
            check_finite(self.sigma, "sigma")
        if perturbation == "blur" and (int(self.sigma) != self.sigma or self.sigma < 1):
            raise ValueError(f"sigma (blur window) must be a positive int, got {sigma!r}")
        super().__init__(forward_func)
        self.perturbation = perturbation
        self.batch_size = batch_size
        self.seed = seed
        self.sampler = sampler
        self.estimator = estimator
        self.backend = check_backend(backend) if backend is not None else None
        self.per_channel = bool(per_channel)
        self.show_progress = show_progress
        self.autocast = autocast
        self.channels_last = channels_last

    # ------------------------------------------------------------------------------------------

    def design(self, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The design matrices (A, B), two Tensor[nb_design, d] float64 on the CPU, checked once
        (finite, in [0, 1]) where they are drawn, so the chunks run unchecked."""
        a, b = draw_design(self.sampler, self.nb_design, d, self.seed)
        for name, m in (("A", a), ("B", b)):
            if not bool(torch.isfinite(m).all()) or bool((m < 0).any()) or bool((m > 1).any()):
                raise ValueError(f"the sampler's design matrix {name} must hold finite values in "
                                 "[0, 1]")
        return a, b

    def indices(
        self,
        inputs: torch.Tensor,
        target: Target = None,
        additional_forward_args: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Total- and first-order indices on the grid, from one run of the design.

        Args:
            inputs: Tensor[B, C, H, W] (or Tensor[B, C, T, H, W]: masks shared by every frame).
            target: any form of :mod:`pyxai.engine.targets` (int, sequence of int, Tensor[B],
                callable ``(outputs)`` or ``(outputs, rows)``, None = the predicted class).
            additional_forward_args: extra positional arguments of ``forward_func``.

        Returns:
            (total, first): two Tensor[B, K, grid_size, grid_size], K = 1 (C with
            ``per_channel``); cell (i, j) = row i, column j of the grid.
        """
        scores = self.accumulate(inputs, target, additional_forward_args=additional_forward_args)
        return self.indices_from(scores.result(), inputs)

    def accumulate(
        self,
        inputs: torch.Tensor,
        target: Target = None,
        rows: range | None = None,
        additional_forward_args: Any = None,
    ) -> ItemScores:
        """The target scores of the design rows ``rows`` (a range within ``[0, (d + 2) N)``).

        Disjoint ranges computed apart (other processes or machines) merge exactly:
        ``indices_from(a.merge(b).result(), inputs)`` equals :meth:`indices` over their union.

        Returns:
            An :class:`pyxai.engine.accumulators.ItemScores` of ``(d + 2) N`` rows and B columns.
        """
        check_inputs(inputs)
        check_same_device(self.forward_func, inputs)
        g = self.grid_size
        h, w = inputs.shape[-2:]
        if g > h or g > w:
            raise ValueError(f"grid_size {g} is larger than the input ({h} x {w})")
        b, c = inputs.shape[0], inputs.shape[1]
        d = g * g * (c if self.per_channel else 1)
        total_rows = (d + 2) * self.nb_design
        rows = range(total_rows) if rows is None else rows
        if not isinstance(rows, range) or rows.step != 1 or rows.start < 0 \
                or rows.stop > total_rows or rows.start >= rows.stop:
            raise ValueError(f"rows must be a non-empty range(start, stop) within [0, {total_rows}), "
                             f"got {rows!r}")
        dev, dt = inputs.device, inputs.dtype
        runner = PerturbationRunner(
            forward_view(self.forward_func), self.batch_size, self.show_progress, self.autocast,
            self.channels_last, additional_forward_args,
        )
        outputs = runner.outputs(inputs)
        resolved = resolve_target(target, outputs)
        a_cpu, b_cpu = self.design(d)
        a_mat, b_mat = a_cpu.to(dev, dt), b_cpu.to(dev, dt)
        xp, base = blend_terms(inputs, self.perturbation, self.sigma)
        backend = self.backend

        def make_chunk(start: int, stop: int) -> torch.Tensor:
            first = rows.start + start
            design = sobol_design(a_mat, b_mat, first, stop - start, backend=backend)
            if not self.per_channel:
                return upsample_blend(xp, design.view(-1, g, g), baseline=base, mode="nearest",
                                      backend=backend, validate=False)
            grids = design.view(-1, g, g, c)
            parts = []
            for ch in range(c):
                bch = base if not isinstance(base, torch.Tensor) else base[:, ch : ch + 1]
                parts.append(upsample_blend(xp[:, ch : ch + 1], grids[..., ch].contiguous(),
                                            baseline=bch, mode="nearest", backend=backend,
                                            validate=False))
            return torch.cat(parts, dim=1)

        scores = ItemScores(total_rows, outputs.new_empty(b, dtype=dt))
        runner.run(len(rows), make_chunk,
                   lambda s0, s1, v: scores.update(rows.start + s0, rows.start + s1, v),
                   rows_per_item=b, target=resolved, desc="sobol", sample=inputs[:1])
        return scores

    def indices_from(self, scores: torch.Tensor, inputs: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """(total, first) indices from the scores Tensor[(d + 2) N, B] of the whole design."""
        g, n = self.grid_size, self.nb_design
        b, c = inputs.shape[0], inputs.shape[1]
        k = c if self.per_channel else 1
        d = g * g * k
        ya, yb, yc = scores[:n], scores[n : 2 * n], scores[2 * n :].view(d, n, b)
        flat = degenerate_outputs(ya)
        if bool(flat.any()):  # once per call
            bad = torch.nonzero(flat).flatten().tolist()
            warnings.warn(
                f"SobolAttribution: the target score does not vary over the design for sample(s) "
                f"{bad} (zero variance, e.g. a constant model output); their indices are zeros",
                RuntimeWarning, stacklevel=3,
            )
        idx = sobol_indices(ya, yb, yc, self.estimator, backend=self.backend)  # [2, d, B]
        maps = idx.permute(0, 2, 1).reshape(2, b, g, g, k).permute(0, 1, 4, 2, 3)
        return maps[0].contiguous(), maps[1].contiguous()

    def attribute(
        self,
        inputs: torch.Tensor,
        target: Target = None,
        resize: bool = True,
        order: str = "total",
        additional_forward_args: Any = None,
    ) -> torch.Tensor:
        """Sobol' indices of each grid cell, upsampled to the input.

        Args:
            inputs: Tensor[B, C, H, W] (or Tensor[B, C, T, H, W]: masks shared by every frame).
            target: int, sequence of int, Tensor[B], callable ``outputs -> Tensor[B]`` or None
                (the predicted class). Default: None
            resize: upsample the indices to (H, W) with bicubic interpolation (half-pixel, Keys
                a = -0.75, edge replicate: ``cv2.resize(INTER_CUBIC)`` of the references, checked
                numerically). Non-square inputs are resized to (H, W) (the reference's cv2 call
                transposes them). Default: True
            order: "total" (total-order indices, as the references) or "first" (first-order
                indices, from the B rows of the same design). Default: "total"
            additional_forward_args: extra positional arguments of ``forward_func``. Default: None

        Returns:
            Tensor[B, K, H, W] (``resize=True``) or Tensor[B, K, grid_size, grid_size] raw indices
            (cell (i, j) = row i, column j), K = 1 (C with ``per_channel``), on the device of
            ``inputs``, float32 (float64 for float64 inputs).
        """
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        total, first = self.indices(inputs, target, additional_forward_args)
        out = total if order == "total" else first
        if resize:
            out = F.interpolate(out, size=tuple(inputs.shape[-2:]), mode="bicubic",
                                align_corners=False)
        return out

    def __call__(self, inputs: torch.Tensor, target: Target = None,
                 **kwargs: Any) -> torch.Tensor:
        return self.attribute(inputs, target, **kwargs)


