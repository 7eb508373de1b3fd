"""Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019; SPECS.md section 6.2), batched.

For every image and every target area ``a`` the method learns a smooth mask of area ``a`` whose
perturbation keeps (``"preserve"``), destroys (``"delete"``) or both (``"dual"``) the model's score.
It is TorchRay's ``extremal_perturbation`` exactly, run as one optimisation for B images x A areas:

* **Mask generator**: parameters ``p`` (``ceil(H / step) x ceil(W / step)`` per mask, init ones)
  are unfolded into ``(2r + 1)^2`` taps, each nearest-upsampled by ``step``, weighted by a fixed
  smooth bump ``exp(-2 max(d / sigma - 0.5, 0)^2)`` of the distance ``d`` to the tap's cell
  centre, and pooled with a softmax of coldness 20 (``m = sum_k v_k softmax_k(20 v)``), clamped to
  [0, 1]: the op ``pyxai.ops.smooth_masks`` (native forward and backward that recompute the taps
  instead of storing ``(2r + 1)^2`` full-size planes). The mask has a margin of ``sigma`` pixels
  around the image (the *full* mask).
* **Perturbation**: the pyramid of :mod:`pyxai.perturbation.pyramid` (blur or fade, ``num_levels``
  levels) read at ``mask * (L - 1)``; ``"delete"`` reads ``1 - mask``; ``"dual"`` runs both.
* **Jitter**: on even iterations the perturbed images are flipped left-right (TorchRay's jitter,
  deterministic).
* **Energy** per mask: ``reward + regul``, ``regul = -lambda_t mean((sort(m_full) - r_a)^2)`` where
  ``r_a`` is 0 on the first ``int(n (1 - a))`` of the ``n`` full-mask pixels and 1 on the rest;
  ``lambda_t = 300 * 1.0035^t`` (on the CPU each mask's top pixels are found by selection,
  :mod:`pyxai.perturbation.area`: the sort's gradient bit for bit). Maximised by SGD (lr 0.01,
  momentum 0.9, dampening 0.9), ``p`` clamped to [0, 1] after each step. The result is the mask
  of the last iteration (generated before the last step), as TorchRay returns it.

The masks are independent, so summing the energies of B x A masks and taking one optimiser step
gives each mask the gradient it would get alone: the batched run equals A x B TorchRay runs (up to
the float rounding of batched model forwards). Nothing is read back to the host per iteration;
the energy history stays on the device.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from pyxai.engine.base import Explainer
from pyxai.engine.checks import check_bool, check_inputs, check_int, check_positive_int, check_same_device
from pyxai.engine.fold import fold_batch_norm
from pyxai.engine.sync import hot_path
from pyxai.engine.targets import Target, resolve_target
from pyxai.engine.view import forward_view
from pyxai.ops.smooth_masks import smooth_masks
from pyxai.perturbation.area import area_error, split_counts
from pyxai.perturbation.pyramid import PERTURBATIONS, apply_pyramid, gaussian_blur, perturbation_pyramid

VARIANTS = ("preserve", "delete", "dual")
REWARDS = ("simple", "contrastive")
LEARNING_RATE = 0.01
MOMENTUM = 0.9
REGUL_WEIGHT = 300.0
REGUL_GROWTH = 1.0035
MAX_BLUR = 20.0
#: the value TorchRay's contrastive reward writes over the target's score before taking the max.
CONTRASTIVE_FILL = -100.0


class MaskGenerator:
    """TorchRay's smooth mask generator for ``H x W`` images (one instance per call).

    Attributes (pairs are (rows, cols)):
        shape_in: parameter grid size ``ceil(size / step)``.
        shape_out: full mask size (image plus a margin of ``sigma`` on every side, rounded).
        margin: ``round(sigma)``, the crop offset of the image inside the full mask.
        weight: Tensor[K, out_h, out_w] float32, the bump of every tap at every pixel.
    """

    def __init__(self, size: tuple[int, int], step: int, sigma: float, device: torch.device) -> None:
        self.size, self.step, self.sigma = size, step, sigma
        self.padding = 1 + math.ceil((sigma + sigma) / step)
        self.radius = 1 + math.ceil(sigma / step)
        taps = 2 * self.radius + 1
        self.shape_in = tuple(math.ceil(z / step) for z in size)
        self.shape_mid = tuple(z + 2 * self.padding - taps + 1 for z in self.shape_in)
        self.shape_up = tuple(step * z for z in self.shape_mid)
        self.shape_out = tuple(z - step + 1 for z in self.shape_up)
        self.margin = round(sigma)
        if any(o < self.margin + z for o, z in zip(self.shape_out, size)):
            raise ValueError(
                f"step={step} and sigma={sigma} give a {self.shape_out} mask, too small for the "
                f"{size} image and its margin of {self.margin} (TorchRay fails there too); use a "
                "sigma closer to a multiple of step")
        dy = self._offsets(0, device)  # [taps, out_h]: squared distance to the tap's cell centre
        dx = self._offsets(1, device)
        delta = torch.sqrt(dy[:, None, :, None] + dx[None, :, None, :])
        z = delta / sigma
        self.weight = torch.exp(-2 * (z - 0.5).clamp(min=0) ** 2).reshape(
            taps * taps, *self.shape_out)

    def _offsets(self, axis: int, device: torch.device) -> torch.Tensor:
        """Tensor[taps, out]: ``(u - (sigma + step * i_k(u)))^2`` in float32, TorchRay's order."""
        u = torch.arange(self.shape_out[axis], dtype=torch.float32, device=device)
        inv = torch.tensor(self.shape_mid[axis], dtype=torch.float32) / \
            torch.tensor(self.shape_up[axis], dtype=torch.float32)
        k = torch.arange(2 * self.radius + 1, dtype=torch.float32, device=device)[:, None]
        i = torch.floor(inv.to(device) * u)[None, :] + k - self.padding
        return (u[None, :] - (self.sigma + self.step * i)) ** 2

    def generate(self, params: torch.Tensor, backend: str | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks from parameters (``pyxai.ops.smooth_masks``, then TorchRay's clamp).

        Args:
            params: Tensor[N, 1, in_h, in_w].
            backend: backend of the ``smooth_masks`` op.

        Returns:
            ``(cropped Tensor[N, 1, H, W], full Tensor[N, 1, out_h, out_w])``.
        """
        full = smooth_masks(params[:, 0], self.weight.to(params.dtype), self.padding, self.step,
                            backend=backend)[:, None].clamp(min=0, max=1)
        m = self.margin
        return full[:, :, m : m + self.size[0], m : m + self.size[1]], full


def _check_areas(areas: float | Sequence[float]) -> tuple[float, ...]:
    if isinstance(areas, (int, float)) and not isinstance(areas, bool):
        areas = (areas,)
    if not isinstance(areas, (list, tuple)):
        raise TypeError(f"areas must be a number or a sequence of numbers, got {type(areas).__name__}")
    if len(areas) == 0:
        raise ValueError("areas is empty: give at least one target area in (0, 1)")
    for a in areas:
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 < float(a) < 1.0:
            raise ValueError(f"areas must lie in (0, 1), got {a!r}")
    return tuple(float(a) for a in areas)


def _check_resize(resize: bool | Sequence[int]) -> bool | tuple[int, int]:
    if isinstance(resize, bool):
        return resize
    if isinstance(resize, (list, tuple)) and len(resize) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in resize):
        return (int(resize[0]), int(resize[1]))
    raise ValueError(f"resize must be True, False or a (width, height) pair of positive ints, "
                     f"got {resize!r}")


def area_targets(size: int, areas: Sequence[float], dtype: torch.dtype, device: torch.device
                 ) -> torch.Tensor:
    """Tensor[A, size]: the sorted target of each area, 0 on the first ``int(size * (1 - a))``
    entries and 1 on the rest (TorchRay's and STEP's area regulariser)."""
    ref = torch.ones(len(areas), size, dtype=dtype)
    for i, a in enumerate(areas):
        ref[i, : int(size * (1 - a))] = 0
    return ref.to(device)


def growth_schedule(start: float, growth: float, steps: int, device: torch.device) -> torch.Tensor:
    """Tensor[steps] float32: ``start * growth^t`` by repeated float multiplication, as the
    references update their regulariser weight after every iteration (``growth = 1``: constant)."""
    w, out = start, []
    for _ in range(steps):
        out.append(w)
        w *= growth
    return torch.tensor(out, dtype=torch.float32).to(device)


class ExtremalPerturbation(Explainer):
    """Extremal perturbation masks (TorchRay semantics), B images x A areas in one optimisation.

    Args:
        forward_func: model or callable ``Tensor[R, C, H, W] -> Tensor[R, K]`` (or a score map
            ``Tensor[R, K, h, w]``: the reward is averaged over the map, as TorchRay).
        areas: target areas in (0, 1), one mask each. Default: (0.1,).
        perturbation: ``"blur"`` or ``"fade"``. Default: "blur".
        max_iter: optimisation steps. Default: 800.
        num_levels: pyramid levels L >= 2. Default: 8.
        step: parameter cell size in pixels. Default: 7.
        sigma: mask smoothness in pixels (also the margin). Default: 21.
        jitter: flip the perturbed images left-right on even iterations. Default: True.
        variant: ``"preserve"``, ``"delete"`` or ``"dual"``. Default: "preserve".
        smooth: after optimisation, blur the masks with ``sigma = smooth * min(H, W)`` (0: off).
            Default: 0.
        reward: ``"simple"`` (the target score; negated for ``"delete"``, preserve minus delete for
            ``"dual"``), ``"contrastive"`` (target score minus the best other class, class targets
            only) or a callable of the target contract ``(outputs)`` / ``(outputs, rows)`` ->
            Tensor[R] (then ``target`` must be None). Default: "simple".
        resize: True / False (the masks are H x W already) or a ``(width, height)`` to resize the
            masks to (bilinear, as TorchRay). Default: True.
        seed: accepted for a uniform interface; the algorithm draws nothing (TorchRay's jitter is
            the deterministic flip on even iterations). Default: 0.
        batch_size: model inputs per forward; the masks of one step are then evaluated in chunks
            whose gradients add up before the single optimiser step. None: all at once.
        backend: backend of the ``pyxai.ops`` calls ("auto" | "native" | "reference" | None).
        channels_last: hand the perturbed images to the model in channels-last memory format
            (same values and shape; only the strides change). Convolutions run faster in it on
            CPU (oneDNN) and on CUDA; a model that calls ``view`` on its input needs the default.
            The results differ from the default by the convolution's rounding only. Default:
            False.
        fold_batch_norm: run the model as a frozen view with each eval-mode BatchNorm folded into
            the convolution it reads (:func:`pyxai.engine.fold.fold_batch_norm`; the model is not
            touched): one pass over the activations fewer, forward and backward. The results
            differ from the default by float rounding only. Default: False.

    Examples::

        >>> ep = pyxai.ExtremalPerturbation(model, areas=(0.05, 0.1, 0.2))
        >>> masks = ep.attribute(x, target=[3, 7])                # Tensor[2, 3, 1, H, W]
        >>> masks, hist = ep.attribute(x, 3, return_history=True)  # hist Tensor[2, 3, 2, 800]
    """

    def __init__(
        self,
        forward_func: Callable[..., torch.Tensor],
        areas: float | Sequence[float] = (0.1,),
        perturbation: str = "blur",
        max_iter: int = 800,
        num_levels: int = 8,
        step: int = 7,
        sigma: float = 21,
        jitter: bool = True,
        variant: str = "preserve",
        smooth: float = 0.0,
        reward: str | Callable[..., torch.Tensor] = "simple",
        resize: bool | Sequence[int] = True,
        seed: int = 0,
        batch_size: int | None = None,
        backend: str | None = None,
        channels_last: bool = False,
        fold_batch_norm: bool = False,
    ) -> None:
        super().__init__(forward_func)
        self.areas = _check_areas(areas)
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
        self.perturbation = perturbation
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.num_levels = check_positive_int(num_levels, "num_levels")
        if num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {num_levels}")
        self.step = check_positive_int(step, "step")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) \
                or sigma <= 0:
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        self.sigma = sigma
        self.jitter = bool(jitter)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) \
                or not math.isfinite(smooth) or smooth < 0:
            raise ValueError(f"smooth must be a finite number >= 0, got {smooth!r}")
        self.smooth = float(smooth)
        if not callable(reward) and reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS} or a callable (outputs[, rows]) -> "
                             f"Tensor[R], got {reward!r}")
        self.reward = reward
        self.resize = _check_resize(resize)
        self.seed = check_int(seed, "seed")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        self.batch_size = batch_size
        self.backend = backend
        self.channels_last = check_bool(channels_last, "channels_last")
        self.fold_batch_norm = check_bool(fold_batch_norm, "fold_batch_norm")

    # ------------------------------------------------------------------------------------------
    def attribute(
        self, inputs: torch.Tensor, target: Target = None, return_history: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Extremal perturbation masks.

        Args:
            inputs: Tensor[B, C, H, W] float32/float64, finite (any C, any size >= step, sigma).
            target: any form of :mod:`pyxai.engine.targets` (None: the predicted class). Must be
                None when ``reward`` is a callable.
            return_history: also return the energy history.

        Returns:
            masks Tensor[B, A, 1, H, W] (``(height, width)`` of ``resize`` when given) in [0, 1],
            1 = preserved; with ``return_history``, ``(masks, history Tensor[B, A, 2, max_iter])``
            holding per iteration the reward and the (negative) area regulariser.
        """
        x = self._check_inputs(inputs)
        b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        forward = forward_view(self.forward_func)
        if self.fold_batch_norm:
            forward = fold_batch_norm(forward, x[:1])
        score = self._scorer(forward, x, target)
        gen = MaskGenerator((h, w), self.step, self.sigma, x.device)
        pyramid = perturbation_pyramid(x, self.num_levels, self.perturbation, MAX_BLUR)
        n_areas, n = len(self.areas), b * len(self.areas)
        ref = self._reference(gen.shape_out, x)  # [A, out_h * out_w]
        weights = self._regul_weights(x.device)
        zeros = split_counts(ref, self.backend)  # area term: top pixels by selection (CPU)
        mask_zeros = None if zeros is None else [zeros[r % n_areas] for r in range(n)]
        params = torch.ones(n, 1, *gen.shape_in, device=x.device, dtype=x.dtype, requires_grad=True)
        opt = torch.optim.SGD([params], lr=LEARNING_RATE, momentum=MOMENTUM, dampening=MOMENTUM)
        hist = torch.zeros(self.max_iter, n, 2, device=x.device, dtype=x.dtype)
        rows_per_mask = 2 if self.variant == "dual" else 1
        chunk = n if self.batch_size is None else max(1, self.batch_size // rows_per_mask)
        sample = torch.arange(n, device=x.device) // n_areas  # image of mask n = b * A + a
        last = []
        for t in range(self.max_iter):
            with hot_path(x.device):
                grad = torch.zeros_like(params)
                last = []
                for i in range(0, n, chunk):
                    j = min(n, i + chunk)
                    p = params[i:j].detach().requires_grad_(True)
                    cropped, full = gen.generate(p, self.backend)
                    reward = self._reward(forward, score, pyramid, cropped, sample[i:j],
                                          flip=self.jitter and t % 2 == 0)
                    rows = torch.arange(i, j, device=x.device) % n_areas
                    regul = -area_error(full.reshape(j - i, -1), ref[rows],
                                        None if mask_zeros is None else mask_zeros[i:j]
                                        ) * weights[t]
                    energy = (reward + regul).sum()
                    (g,) = torch.autograd.grad(-energy, p)
                    grad[i:j] = g
                    hist[t, i:j, 0] = reward.detach()
                    hist[t, i:j, 1] = regul.detach()
                    last.append(cropped.detach())
                params.grad = grad
                opt.step()
                with torch.no_grad():
                    params.clamp_(0, 1)
        masks = self._finish(torch.cat(last), x)
        masks = masks.reshape(b, n_areas, *masks.shape[1:])
        if return_history:
            return masks, hist.permute(1, 2, 0).reshape(b, n_areas, 2, self.max_iter)
        return masks

    # ------------------------------------------------------------------------------------------
    def _check_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        x = check_inputs(inputs, ndims=(4,))
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"inputs must be float32 or float64, got {x.dtype}")
        check_same_device(self.forward_func, x)
        h, w = x.shape[-2:]
        if self.step > min(h, w):
            raise ValueError(f"step={self.step} is larger than the image ({h} x {w})")
        if self.sigma > min(h, w):
            raise ValueError(f"sigma={self.sigma} is larger than the image ({h} x {w})")
        return x

    def _scorer(self, forward: Callable, x: torch.Tensor, target: Target
                ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``score(outputs Tensor[R, ...], rows Tensor[R]) -> Tensor[R]`` (the reward before the
        variant's sign), resolved and checked once on the clean outputs."""
        with torch.no_grad():
            clean = forward(x)
        if not isinstance(clean, torch.Tensor) or clean.dim() == 0 or clean.shape[0] != x.shape[0]:
            shape = tuple(clean.shape) if isinstance(clean, torch.Tensor) else type(clean).__name__
            raise ValueError(f"forward_func returned {shape} for a batch of {x.shape[0]}; it must "
                             "return one row per input")
        name = "target"
        if callable(self.reward):
            if target is not None:
                raise ValueError("give either a reward callable or a target, not both")
            target, name = self.reward, "reward"
        if callable(target) and not isinstance(target, torch.Tensor):
            resolved = resolve_target(target, clean, name=name)
            rows = torch.arange(x.shape[0], device=x.device)
            try:
                resolved(clean, rows)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name}: {e}") from None
            return resolved
        # class targets: one channel, averaged over a score map as TorchRay
        flat = clean.flatten(2).mean(2) if clean.dim() > 2 else clean
        resolved = resolve_target(target, flat, name=name)
        classes = resolved.classes
        if classes is None:
            if self.reward == "contrastive" or clean.dim() > 2:
                raise ValueError("reward='contrastive' and score-map outputs need a class target "
                                 "(an int or one class per sample)")
            return resolved
        return _ClassReward(classes, self.reward == "contrastive")

    def _reward(self, forward: Callable, score: Callable, pyramid: torch.Tensor,
                masks: torch.Tensor, sample: torch.Tensor, flip: bool) -> torch.Tensor:
        """Tensor[N]: the reward of N masks Tensor[N, 1, H, W]; mask ``n`` perturbs image
        ``sample[n]``."""
        n = masks.shape[0]
        parts = []
        if self.variant in ("preserve", "dual"):
            parts.append(apply_pyramid(pyramid, masks, sample))
        if self.variant in ("delete", "dual"):
            parts.append(apply_pyramid(pyramid, 1 - masks, sample))
        xp = torch.cat(parts) if len(parts) > 1 else parts[0]
        if flip:
            xp = torch.flip(xp, dims=(3,))
        if self.channels_last:
            xp = xp.contiguous(memory_format=torch.channels_last)
        out = forward(xp)
        s = score(out, sample.repeat(len(parts)))
        if self.variant == "preserve":
            return s
        if self.variant == "delete":
            return -s
        return s[:n] - s[n:]

    def _reference(self, shape_out: tuple[int, int], x: torch.Tensor) -> torch.Tensor:
        """Tensor[A, out_h * out_w]: the sorted target of each area (zeros then ones)."""
        return area_targets(shape_out[0] * shape_out[1], self.areas, x.dtype, x.device)

    def _regul_weights(self, device: torch.device) -> torch.Tensor:
        """Tensor[max_iter] float32: ``300 * 1.0035^t`` by repeated multiplication (TorchRay)."""
        return growth_schedule(REGUL_WEIGHT, REGUL_GROWTH, self.max_iter, device)

    def _finish(self, masks: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Resize and smooth the final Tensor[N, 1, H, W] masks (TorchRay's order)."""
        if isinstance(self.resize, tuple):
            masks = F.interpolate(masks, self.resize[::-1], mode="bilinear", align_corners=False)
        if self.smooth > 0:
            masks = gaussian_blur(masks, self.smooth * min(masks.shape[2:]))
        return masks

    def __repr__(self) -> str:
        return (f"ExtremalPerturbation({type(self.forward_func).__name__}, areas={self.areas}, "
                f"variant={self.variant!r}, max_iter={self.max_iter})")


class _ClassReward:
    """The reward of a class target: ``y[r, c_r]`` (``contrastive``: minus the best other class,
    TorchRay's ``-100`` fill), averaged over a score map."""

    def __init__(self, classes: torch.Tensor, contrastive: bool) -> None:
        self.classes = classes
        self.contrastive = contrastive

    def __call__(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        r = torch.arange(outputs.shape[0], device=outputs.device)
        c = self.classes.to(outputs.device)[rows]
        s = outputs[r, c]  # [R, *map]
        if self.contrastive:
            other = outputs.clone()
            other[r, c] = CONTRASTIVE_FILL
            s = s - other.max(dim=1)[0]
        return s.reshape(outputs.shape[0], -1).mean(dim=1)

