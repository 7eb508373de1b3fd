"""STEP: spatio-temporal extremal perturbations of video clips (Li et al., WACV 2021 / TCSVT 2021;
SPECS.md section 10), and the 2-D / 3-D extremal-perturbation baselines it is compared with.

For every clip and target area ``a`` the method learns a smooth spatio-temporal mask whose
perturbation keeps (``"preserve"``), destroys (``"delete"``) or both (``"dual"``) the model's
probability of the target. B clips x A areas are one optimisation (one graph, one optimiser step):

* **Masks**: one TorchRay parameter grid per frame (``ceil(H / 7) x ceil(W / 7)``, init ones),
  mapped to a smooth mask by :class:`pyxai.perturbation.extremal.MaskGenerator` (step 7,
  ``sigma`` 11 for 112-px-wide clips, 23 otherwise, softmax pooling), on ``pyxai.ops``.
* **Perturbation**: each frame reads TorchRay's pyramid (:mod:`pyxai.perturbation.pyramid`, 8
  levels, blur or fade) at ``mask * (L - 1)``; no jitter.
* **Reward** (minimised, TCSVT's ``simple_log_reward``): ``-log p`` (preserve), ``-log(1 - p)``
  (delete), their sum (dual) with ``p`` the target's probability, times ``reward_weight``.
* **Area term**: ``lambda_t mean((sort(m_full) - r_a)^2)`` over the padded mask volume
  (``T x S_h x S_w``), voxels shuffled by a random permutation before the sort (TCSVT);
  ``lambda_t = 300 * 1.0008668^t``.
* **Core term** (STEP only): :class:`pyxai.video.step_losses.CoreLoss`, weight 0 up to iteration
  ``core_start`` (100) and 300 after.
* **Optimiser**: SGD lr 0.05, momentum 0.9, dampening 0.9 on the parameters, clamped to [0, 1]
  after each step; ``max_iter`` steps; the result is the mask of the last iteration.

``objective`` selects the method: ``"step"`` (TCSVT ``perturbation_area.video_perturbation`` with
the core), ``"3d_ep"`` / ``"2d_ep"`` (the WACV baselines: reward weight 100, a constant
``lambda = 300``, no shuffle, no core; ``"2d_ep"`` asks for area ``a`` in every frame and averages
the per-frame area terms).

Every mask is independent of the others, so the summed energy of B x A masks gives each mask the
gradient it would get alone: the batched run equals B x A one-clip one-area runs with the same
permutations. Nothing is read back to the host per iteration (the history stays on the device;
the permutations are drawn on the CPU and copied asynchronously).

The sorts are the reference's ``torch.sort`` (then, on the CPU, the masks equal those of TCSVT's
own code run after ``torch.manual_seed(seed)``), or stable ones with ``stable_sort=True`` (ties in
the random permutation's order: CPU and CUDA agree).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from pyxai.engine.base import Explainer
from pyxai.engine.checks import check_bool, check_inputs, check_int, check_positive_int, check_same_device
from pyxai.engine.fold import fold_batch_norm
from pyxai.engine.sync import hot_path
from pyxai.engine.targets import Target, resolve_target
from pyxai.engine.view import ModelView, is_training
from pyxai.perturbation.area import split_counts
from pyxai.perturbation.extremal import MaskGenerator, _check_areas, area_targets, growth_schedule
from pyxai.perturbation.pyramid import PERTURBATIONS, apply_pyramid, gaussian_blur, perturbation_pyramid
from pyxai.video.step_losses import (
    CORE_SHAPES,
    CoreLoss,
    Permutations,
    area_loss,
    temporal_diff_loss,
)

OBJECTIVES = ("step", "3d_ep", "2d_ep")
VARIANTS = ("preserve", "delete", "dual")
LEARNING_RATE = 0.05
MOMENTUM = 0.9
REGUL_WEIGHT = 300.0
#: STEP's regulariser growth per iteration (x2 per 800 iterations)
STEP_GROWTH = 1.0008668
CORE_WEIGHT = 300.0
REWARD_WEIGHT = {"step": 1.0, "3d_ep": 100.0, "2d_ep": 100.0}
MAX_BLUR = 20.0
MASK_STEP = 7


def default_sigma(width: int) -> float:
    """TCSVT's mask smoothness: 11 px for 112-px-wide clips, 23 px otherwise."""
    return 11.0 if width == 112 else 23.0


def _clip_model(model: Callable) -> Callable:
    """What STEP runs: the model in eval mode (as the reference, ``model.eval()``), on a
    parameter-sharing view when the user's model is in training mode (which stays as found)."""
    if isinstance(model, nn.Module) and is_training(model):
        view = ModelView(model)
        view.module.eval()  # the view's modules only
        return view.module
    return model


class STEP(Explainer):
    """Spatio-temporal extremal perturbation masks of clips, B clips x A areas in one optimisation.

    Args:
        model: clip model or callable ``Tensor[R, C, T, H, W] -> Tensor[R, K]`` returning class
            *probabilities* (TCSVT's models end with a softmax; ``softmax=True`` adds one).
        areas: target areas in (0, 1), one mask volume each. Default: (0.1,).
        max_iter: optimisation steps. Default: 2000.
        variant: ``"preserve"``, ``"delete"`` or ``"dual"`` (the sum of both rewards per mask;
            TCSVT's code computes it right for one clip and one area only). Default: "preserve".
        core_shape: ``"ellipsoid"`` or ``"cylinder"`` (the core kernel). Default: "ellipsoid".
        seed: seed of the random permutations of the area and core terms. Default: 0.
        objective: ``"step"``, ``"3d_ep"`` or ``"2d_ep"`` (see the module docstring). Default: "step".
        perturbation: ``"blur"`` or ``"fade"``. Default: "blur".
        num_levels: pyramid levels L >= 2. Default: 8.
        sigma: mask smoothness in pixels; None: 11 for 112-px-wide clips, 23 otherwise.
        core_frames: ``k_t`` of the core kernel. Default: 5 (TCSVT).
        core_size: ``k_s``, spatial size and stride of the core kernel. Default: 11.
        core_start: the core weight is 0 up to this iteration (inclusive), 300 after. Default: 100.
        softmax: apply a softmax to the model's outputs (WACV's code does). Default: False.
        reward: ``"log"`` (TCSVT's log reward of the target's probability) or a callable of the
            target contract ``(outputs)`` / ``(outputs, rows)`` -> Tensor[R], a score to keep
            (preserve: its negative is minimised; delete: it is minimised; dual: both), ``rows``
            the clip of each output row; ``target`` must then be None. Default: "log".
        smooth: blur the final masks per frame with ``sigma = smooth * min(H, W)`` (0: off).
        stable_sort: False: ``torch.sort`` as the reference (on the CPU the masks equal TCSVT's
            code; ties after the random permutation in the sort's own order, which differs on
            CUDA). True: a stable sort, ties in permutation order: the same masks on every device.
            Over hundreds of steps the two tie orders lead to visibly different masks (both are
            valid STEP runs). Default: False.
        temporal_diff: add TCSVT's ``with_diff`` term (mean squared temporal differences of
            orders 1..3 of the mask volume, times the area weight). Default: False.
        backend: backend of the ``pyxai.ops`` calls ("auto" | "native" | "reference" | None).
        channels_last: hand the perturbed clips to the model in ``channels_last_3d`` memory
            format (same values and shape; only the strides change), as ExtremalPerturbation's
            ``channels_last``. Measured on a 2-core CPU (forward + input gradient, 12 clips of
            8 x 32 x 32): 25 % faster for a small 3-D CNN, 6 % slower for r3d_18, so off by
            default; the results differ from the default by the convolutions' rounding only.
            Default: False.
        fold_batch_norm: run the model as a frozen view with each eval-mode BatchNorm folded into
            the convolution it reads (:func:`pyxai.engine.fold.fold_batch_norm`; the model is not
            touched): one pass over the activations fewer, forward and backward. The results
            differ from the default by float rounding only. Default: False.

    Examples::

        >>> step = pyxai.STEP(model, areas=(0.05, 0.1), max_iter=1000)
        >>> masks = step.attribute(clips, target=labels)          # Tensor[B, 2, 1, T, H, W]
        >>> masks, hist = step.attribute(clips, labels, return_history=True)  # [B, 2, 2, 1000]
    """

    def __init__(
        self,
        model: Callable[..., torch.Tensor],
        areas: float | Sequence[float] = (0.1,),
        max_iter: int = 2000,
        variant: str = "preserve",
        core_shape: str = "ellipsoid",
        seed: int = 0,
        objective: str = "step",
        perturbation: str = "blur",
        num_levels: int = 8,
        sigma: float | None = None,
        core_frames: int = 5,
        core_size: int = 11,
        core_start: int = 100,
        softmax: bool = False,
        reward: str | Callable[..., torch.Tensor] = "log",
        smooth: float = 0.0,
        stable_sort: bool = False,
        temporal_diff: bool = False,
        backend: str | None = None,
        channels_last: bool = False,
        fold_batch_norm: bool = False,
    ) -> None:
        super().__init__(model)
        self.areas = _check_areas(areas)
        self.max_iter = check_positive_int(max_iter, "max_iter")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        if core_shape not in CORE_SHAPES:
            raise ValueError(f"core_shape must be one of {CORE_SHAPES}, got {core_shape!r}")
        self.core_shape = core_shape
        self.seed = check_int(seed, "seed")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective = objective
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
        self.perturbation = perturbation
        self.num_levels = check_positive_int(num_levels, "num_levels")
        if num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {num_levels}")
        if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float))
                                  or not math.isfinite(sigma) or sigma <= 0):
            raise ValueError(f"sigma must be a positive number or None, got {sigma!r}")
        self.sigma = sigma
        self.core_frames = check_positive_int(core_frames, "core_frames")
        self.core_size = check_positive_int(core_size, "core_size")
        self.core_start = check_int(core_start, "core_start")
        self.softmax = bool(softmax)
        if not callable(reward) and reward != "log":
            raise ValueError(f"reward must be 'log' or a callable (outputs[, rows]) -> Tensor[R], "
                             f"got {reward!r}")
        self.reward = reward
        if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) \
                or not math.isfinite(smooth) or smooth < 0:
            raise ValueError(f"smooth must be a finite number >= 0, got {smooth!r}")
        self.smooth = float(smooth)
        self.stable_sort = bool(stable_sort)
        self.temporal_diff = bool(temporal_diff)
        self.backend = backend
        self.channels_last = check_bool(channels_last, "channels_last")
        self.fold_batch_norm = check_bool(fold_batch_norm, "fold_batch_norm")

    # ------------------------------------------------------------------------------------------
    def attribute(
        self, inputs: torch.Tensor, target: Target = None, return_history: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Spatio-temporal masks.

        Args:
            inputs: Tensor[B, C, T, H, W] float32/float64, finite.
            target: any form of :mod:`pyxai.engine.targets` selecting the probability ``p`` of
                each clip (None: the predicted class). Must be None when ``reward`` is a callable.
            return_history: also return the energy history.

        Returns:
            masks Tensor[B, A, 1, T, H, W] in [0, 1] (1 = preserved); with ``return_history``,
            ``(masks, history Tensor[B, A, 2, max_iter])`` holding per iteration the weighted
            reward and the regulariser (area term plus core term) of every mask.
        """
        x = self._check_inputs(inputs)
        n, c, frames, h, w = x.shape
        n_areas = len(self.areas)
        rows = n_areas * n  # masks, area-major: row a * N + b
        model = _clip_model(self.forward_func)
        if self.fold_batch_norm:
            model = fold_batch_norm(model, x[:1])
        score = self._scorer(model, x, target)
        gen = MaskGenerator((h, w), MASK_STEP, self.sigma or default_sigma(w), x.device)
        out_px = gen.shape_out[0] * gen.shape_out[1]
        step = self.objective == "step"
        core = CoreLoss(frames, gen.shape_out, self.areas, self.core_frames, self.core_size,
                        self.core_shape, x.dtype, x.device, self.stable_sort) if step else None
        per_frame = self.objective == "2d_ep"
        ref = area_targets(out_px if per_frame else frames * out_px, self.areas, x.dtype, x.device)
        ref = ref.repeat_interleave(n, dim=0)  # [A * N, V]
        # the volume's area term: each mask's top voxels by selection (CPU)
        zeros = None if per_frame else split_counts(ref, self.backend)
        weights = growth_schedule(REGUL_WEIGHT, STEP_GROWTH if step else 1.0, self.max_iter,
                                  x.device)
        perms = Permutations(self.seed, frames * out_px if step else 0,
                             core.responses if core is not None else 0, n_areas, x.device)
        clip_frames = x.transpose(1, 2).reshape(n * frames, c, h, w)
        pyramid = perturbation_pyramid(clip_frames, self.num_levels, self.perturbation, MAX_BLUR)
        sample = torch.arange(rows * frames, device=x.device) % (n * frames)  # frame of each mask
        clip_of_row = torch.arange(rows * (2 if self.variant == "dual" else 1),
                                   device=x.device) % n
        params = torch.ones(rows * frames, 1, *gen.shape_in, device=x.device, dtype=x.dtype,
                            requires_grad=True)
        opt = torch.optim.SGD([params], lr=LEARNING_RATE, momentum=MOMENTUM, dampening=MOMENTUM)
        hist = torch.zeros(self.max_iter, 2, rows, device=x.device, dtype=x.dtype)
        reward_weight = REWARD_WEIGHT[self.objective]
        masks = params
        for t in range(self.max_iter):
            with hot_path(x.device):
                vol_perm, core_perms = perms.next()  # CPU draws, asynchronous copies
                masks, full = gen.generate(params, self.backend)
                reward = self._reward(model, score, pyramid, masks, sample, clip_of_row,
                                      (rows, frames)) * reward_weight
                flat = full.reshape(rows, -1)
                regul = area_loss(flat, ref, vol_perm, frames if per_frame else 1,
                                  self.stable_sort, zeros) * weights[t]
                if self.temporal_diff:
                    regul = regul + temporal_diff_loss(
                        full.reshape(rows, frames, *gen.shape_out)) * weights[t]
                if core is not None and t > self.core_start:
                    vol = full.reshape(n_areas, n, frames, *gen.shape_out)
                    regul = regul + core(vol, core_perms).reshape(rows) * CORE_WEIGHT
                energy = (reward + regul).sum()
                (grad,) = torch.autograd.grad(energy, params)
                hist[t, 0] = reward.detach()
                hist[t, 1] = regul.detach()
                params.grad = grad
                opt.step()
                with torch.no_grad():
                    params.clamp_(0, 1)
        masks = masks.detach()
        if self.smooth > 0:
            masks = gaussian_blur(masks, self.smooth * min(h, w))
        masks = masks.reshape(n_areas, n, frames, 1, h, w).permute(1, 0, 3, 2, 4, 5)
        if return_history:
            hist = hist.reshape(self.max_iter, 2, n_areas, n).permute(3, 2, 1, 0)
            return masks.contiguous(), hist.contiguous()
        return masks.contiguous()

    # ------------------------------------------------------------------------------------------
    def _check_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        x = check_inputs(inputs, ndims=(5,))
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"inputs must be float32 or float64, got {x.dtype}")
        check_same_device(self.forward_func, x)
        if self.temporal_diff and x.shape[2] < 4:
            raise ValueError(f"temporal_diff needs clips of at least 4 frames, got {x.shape[2]}")
        h, w = x.shape[-2:]
        sigma = self.sigma or default_sigma(w)
        if MASK_STEP > min(h, w):
            raise ValueError(f"inputs: frames of {h} x {w} are smaller than the mask step "
                             f"{MASK_STEP}")
        if sigma > min(h, w):
            raise ValueError(f"sigma={sigma} is larger than the frames ({h} x {w}); give a "
                             "smaller sigma")
        return x

    def _outputs(self, model: Callable, x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        return out.softmax(1) if self.softmax else out

    def _scorer(self, model: Callable, x: torch.Tensor, target: Target
                ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``score(outputs Tensor[R, K], rows Tensor[R]) -> Tensor[R]``, resolved and checked once
        on the clean clips (the target's probability, or the reward callable's score)."""
        with torch.no_grad():
            clean = self._outputs(model, x)
        b = x.shape[0]
        if not isinstance(clean, torch.Tensor) or clean.dim() == 0 or clean.shape[0] != b:
            shape = tuple(clean.shape) if isinstance(clean, torch.Tensor) else type(clean).__name__
            raise ValueError(f"model returned {shape} for a batch of {b} clips; it must return "
                             "one row per clip")
        name = "target"
        if callable(self.reward):
            if target is not None:
                raise ValueError("give either a reward callable or a target, not both")
            target, name = self.reward, "reward"
        resolved = resolve_target(target, clean, name=name)
        rows = torch.arange(b, device=x.device)
        try:
            s = resolved(clean, rows)
        except (TypeError, ValueError, IndexError, RuntimeError) as e:
            raise ValueError(f"{name}: {e}") from None
        if not isinstance(s, torch.Tensor) or s.shape != (b,):
            shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"{name} must give one score per clip, Tensor[{b}], got {shape}")
        if not torch.isfinite(s).all():
            raise ValueError(f"{name} gives NaN or Inf scores on the clean clips")
        if self.reward == "log" and not bool(((s >= 0) & (s <= 1)).all()):
            raise ValueError(
                f"{name}: STEP's log reward needs probabilities in [0, 1], the model gives "
                f"{s.min().item():.3g}..{s.max().item():.3g}; pass softmax=True for a model "
                "returning logits (or reward=callable)")
        return resolved

    def _reward(self, model: Callable, score: Callable, pyramid: torch.Tensor, masks: torch.Tensor,
                sample: torch.Tensor, clip_of_row: torch.Tensor, shape: tuple[int, int]
                ) -> torch.Tensor:
        """Tensor[A * N]: the (unweighted) reward of every mask volume; ``masks`` Tensor[A N T, 1,
        H, W] perturb frame ``sample[i]`` of the pyramid."""
        rows, frames = shape
        parts = []
        if self.variant in ("preserve", "dual"):
            parts.append(apply_pyramid(pyramid, masks, sample))
        if self.variant in ("delete", "dual"):
            parts.append(apply_pyramid(pyramid, 1 - masks, sample))
        xp = torch.cat(parts) if len(parts) > 1 else parts[0]  # [V A N T, C, H, W]
        layout = torch.channels_last_3d if self.channels_last else torch.contiguous_format
        xp = xp.reshape(-1, frames, *xp.shape[1:]).transpose(1, 2).contiguous(memory_format=layout)
        s = score(self._outputs(model, xp), clip_of_row)
        if self.reward == "log":
            if self.variant == "preserve":
                return -torch.log(s)
            if self.variant == "delete":
                return -torch.log(1 - s)
            return (-torch.log(1 - s[rows:])) + (-torch.log(s[:rows]))
        if self.variant == "preserve":
            return -s
        if self.variant == "delete":
            return s
        return s[rows:] - s[:rows]

    def __repr__(self) -> str:
        return (f"STEP({type(self.forward_func).__name__}, areas={self.areas}, "
                f"objective={self.objective!r}, variant={self.variant!r}, max_iter={self.max_iter})")
