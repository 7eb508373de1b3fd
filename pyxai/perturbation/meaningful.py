"""Meaningful perturbation (Fong & Vedaldi, ICCV 2017; SPECS.md section 6.1), batched.

The reference (``ruthcfong/perturb_explanations:code/caffe/python/optimize_mask.py``) learns, per
image, a low-resolution mask ``m`` in [0, 1] (1 = keep) whose deletion destroys the target's
softmax probability with the least deleted area and a smooth outline. Each iteration:

1. jitter: the image and the null image, resized to ``(H + j) x (W + j)``, are cropped back to
   ``H x W`` at random offsets in ``[0, j)`` (the mask is not jittered);
2. ``m_up`` = nearest upsampling of ``m`` to ``H x W`` (``pyxai.ops.upsample_masks``), quantised to
   8 bits and blurred (``mask_blur``) — the blur and the quantisation are **not** differentiated
   through: the gradient reaching ``m`` is the block sum of ``dE/dm_up`` (the adjoint of nearest
   upsampling), as the reference computes it;
3. ``x~ = x * m_up + x0 * (1 - m_up)`` with ``x0`` the image blurred with ``blur_radius``
   (``"blur"``) or zeros (``"fade"``);
4. energy ``E = p_c(x~) + l1 * sum|m - 1| + tv * sum_u (dy(u)^2 + dx(u)^2)^(tv_beta / 2)``
   (forward differences, zero at the last row and column; the TV gradient guarded as the
   reference's, see :func:`total_variation`), minimised with Adam
   (``lr``, betas 0.9 / 0.999, eps 1e-8, bias-corrected), ``m`` clipped to [0, 1] after each step.

The result is the saliency ``1 - mask`` of the final mask (upsampled and blurred as in the forward).

Differences from the Caffe reference, for images that are already tensors: PIL's
``GaussianBlur(radius)`` (a three-pass box approximation on uint8, SPECS section 13.3) is a float
Gaussian of ``sigma = radius`` with replicated edges here; the jitter resizes the input tensor
bilinearly instead of re-preprocessing the source image; the uniform initialisation is drawn with a
seeded CPU ``torch.Generator`` instead of NumPy's global one. The B images run as one optimisation
(one batched forward and backward per iteration, an elementwise Adam step for all masks), with the
energy history kept on the device.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from pyxai.engine.base import Explainer
from pyxai.engine.checks import check_bool, check_inputs, check_int, check_positive_int, check_same_device
from pyxai.engine.fold import fold_batch_norm
from pyxai.engine.sync import hot_path
from pyxai.engine.targets import Target, resolve_target
from pyxai.engine.view import forward_view
from pyxai.ops.masks import upsample_masks
from pyxai.perturbation.pyramid import gaussian_blur

PERTURBATIONS = ("blur", "fade")
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


class _StraightThrough(torch.autograd.Function):
    """Forward ``value``; backward: the gradient goes to ``surrogate`` unchanged."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, grad


def _number(value: float, name: str, low: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or (strict and value == low):
        bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def total_variation(m: torch.Tensor, beta: float) -> torch.Tensor:
    """Tensor[N]: ``sum_u v(u)^(beta / 2)``, ``v = dy^2 + dx^2``, of masks Tensor[N, h, w]
    (forward differences, zero at the last row / column).

    Its gradient is the reference's analytic one, ``(beta / 2) max(v, 1e-5)^(beta / 2 - 1) dv``:
    the guard keeps it finite for ``beta < 2`` where ``v = 0``, and the value stays unguarded.
    """
    dy = F.pad(m[:, 1:, :] - m[:, :-1, :], (0, 0, 0, 1))
    dx = F.pad(m[:, :, 1:] - m[:, :, :-1], (0, 1, 0, 0))
    v = dy * dy + dx * dx
    fixed = v.detach()
    slope = (beta / 2) * fixed.clamp_min(1e-5).pow(beta / 2 - 1)
    return (fixed.pow(beta / 2) + slope * (v - fixed)).sum(dim=(1, 2))


class MeaningfulPerturbation(Explainer):
    """Meaningful perturbation saliency (Fong & Vedaldi 2017), B images in one optimisation.

    Args:
        forward_func: model or callable ``Tensor[R, C, H, W] -> Tensor[R, K]``.
        mask_size: side of the low-resolution mask (28 for 224 x 224, the reference's
            ``mask_scale=8``). Default: 28.
        iterations: optimisation steps. Default: 300.
        lr: Adam learning rate. Default: 0.1.
        l1: weight of ``sum|m - 1|`` (deleted area). Default: 1e-4.
        tv: weight of the total variation. Default: 1e-2.
        tv_beta: exponent of the total variation. Default: 3.
        perturbation: ``"blur"`` (the image blurred with ``blur_radius``) or ``"fade"`` (zeros)
            where the mask is 0. Default: "blur".
        blur_radius: sigma of the null image's blur. Default: 10.
        mask_blur: sigma of the blur of the upsampled mask (0: off). Default: 5.
        quantize: quantise the upsampled mask to 8 bits before and after its blur, as the
            reference's uint8 round trip. Default: True.
        jitter: crop jitter in pixels (0: off). Default: 4.
        softmax: score the softmax probability of the target (the reference's ``prob`` layer);
            False scores the outputs as returned. Default: True.
        seed: seed of the CPU generator drawing the uniform initial masks and the jitter offsets.
            Default: 0.
        batch_size: images per forward (their gradients add up before the one Adam step); None:
            all at once.
        backend: backend of the ``pyxai.ops`` calls.
        channels_last: hand the perturbed images to the model in channels-last memory format
            (same values and shape; only the strides change), as ``ExtremalPerturbation``'s:
            faster convolutions on CPU (oneDNN) and CUDA; a model that calls ``view`` on its
            input needs the default. The results differ from the default by the convolutions'
            rounding only (which the 8-bit mask can turn into a level here and there). Default:
            False.
        fold_batch_norm: run the model as a frozen view with each eval-mode BatchNorm folded into
            the convolution it reads (:func:`pyxai.engine.fold.fold_batch_norm`; the model is not
            touched): one pass over the activations fewer, forward and backward. The results
            differ from the default by float rounding only. Default: False.

    Examples::

        >>> mp = pyxai.MeaningfulPerturbation(model, iterations=300)
        >>> sal = mp.attribute(x, target=[3, 7])              # Tensor[2, 1, H, W], 1 = deleted
    """

    def __init__(
        self,
        forward_func: Callable[..., torch.Tensor],
        mask_size: int = 28,
        iterations: int = 300,
        lr: float = 0.1,
        l1: float = 1e-4,
        tv: float = 1e-2,
        tv_beta: float = 3,
        perturbation: str = "blur",
        blur_radius: float = 10,
        mask_blur: float = 5,
        quantize: bool = True,
        jitter: int = 4,
        softmax: bool = True,
        seed: int = 0,
        batch_size: int | None = None,
        backend: str | None = None,
        channels_last: bool = False,
        fold_batch_norm: bool = False,
    ) -> None:
        super().__init__(forward_func)
        self.mask_size = check_positive_int(mask_size, "mask_size")
        self.iterations = check_positive_int(iterations, "iterations")
        self.lr = _number(lr, "lr", strict=True)
        self.l1 = _number(l1, "l1")
        self.tv = _number(tv, "tv")
        self.tv_beta = _number(tv_beta, "tv_beta", strict=True)
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
        self.perturbation = perturbation
        self.blur_radius = _number(blur_radius, "blur_radius")
        self.mask_blur = _number(mask_blur, "mask_blur")
        self.quantize = bool(quantize)
        if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
            raise ValueError(f"jitter must be an int >= 0, got {jitter!r}")
        self.jitter = jitter
        self.softmax = bool(softmax)
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
        """Saliency ``1 - mask``.

        Args:
            inputs: Tensor[B, C, H, W] float32/float64, finite, ``H, W >= mask_size``.
            target: any form of :mod:`pyxai.engine.targets` (None: the predicted class), applied
                to the softmax of the outputs when ``softmax``.
            return_history: also return the energy terms per iteration.

        Returns:
            Tensor[B, 1, H, W] in [0, 1] (1 = deleted by the mask); with ``return_history``,
            ``(saliency, history Tensor[B, 3, iterations])`` holding the score, the L1 term and the
            TV term (weighted) of each iteration.
        """
        x = check_inputs(inputs, ndims=(4,))
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"inputs must be float32 or float64, got {x.dtype}")
        check_same_device(self.forward_func, x)
        b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        if self.mask_size > min(h, w):
            raise ValueError(f"mask_size={self.mask_size} is larger than the image ({h} x {w})")
        if self.jitter >= min(h, w):
            raise ValueError(f"jitter={self.jitter} is not smaller than the image ({h} x {w})")
        forward = forward_view(self.forward_func)
        if self.fold_batch_norm:
            forward = fold_batch_norm(forward, x[:1])
        score = self._scorer(forward, x, target)
        big, null = self._images(x)
        gen = torch.Generator().manual_seed(self.seed)
        m = torch.rand(b, self.mask_size, self.mask_size, generator=gen, dtype=torch.float64)
        m = m.to(x.device, x.dtype)
        j = max(self.jitter, 1)
        offsets = torch.randint(0, j, (self.iterations, b, 2), generator=gen).to(x.device)
        exp_avg, exp_sq = torch.zeros_like(m), torch.zeros_like(m)
        hist = torch.zeros(self.iterations, b, 3, device=x.device, dtype=x.dtype)
        chunk = b if self.batch_size is None else self.batch_size
        samples = torch.arange(b, device=x.device)
        for t in range(self.iterations):
            with hot_path(x.device):
                grad = torch.zeros_like(m)
                for i in range(0, b, chunk):
                    k = min(b, i + chunk)
                    mi = m[i:k].detach().requires_grad_(True)
                    xi, ni = self._crop(big[i:k], offsets[t, i:k]), self._crop(null[i:k], offsets[t, i:k])
                    up = self._upsample(mi, (h, w), differentiable=True)
                    perturbed = xi * up + ni * (1 - up)
                    if self.channels_last:
                        perturbed = perturbed.contiguous(memory_format=torch.channels_last)
                    out = forward(perturbed)
                    s = score(torch.softmax(out, dim=1) if self.softmax else out, samples[i:k])
                    l1 = self.l1 * (mi - 1).abs().sum(dim=(1, 2))
                    tv = self.tv * total_variation(mi, self.tv_beta)
                    (g,) = torch.autograd.grad((s + l1 + tv).sum(), mi)
                    grad[i:k] = g
                    hist[t, i:k] = torch.stack((s, l1, tv), dim=1).detach()
                m = self._adam(m, grad, exp_avg, exp_sq, t + 1)
        mask = self._upsample(m, (h, w), differentiable=False)
        sal = 1 - mask
        if return_history:
            return sal, hist.permute(1, 2, 0).contiguous()
        return sal

    # ------------------------------------------------------------------------------------------
    def _scorer(self, forward: Callable, x: torch.Tensor, target: Target) -> Callable:
        with torch.no_grad():
            clean = forward(x)
        if not isinstance(clean, torch.Tensor) or clean.dim() != 2 or clean.shape[0] != x.shape[0]:
            shape = tuple(clean.shape) if isinstance(clean, torch.Tensor) else type(clean).__name__
            raise ValueError(f"forward_func returned {shape} for a batch of {x.shape[0]}; it must "
                             "return Tensor[B, K]")
        probs = torch.softmax(clean, dim=1) if self.softmax else clean
        resolved = resolve_target(target, probs)
        try:
            resolved(probs, torch.arange(x.shape[0], device=x.device))
        except (TypeError, ValueError) as e:
            raise ValueError(f"target: {e}") from None
        return resolved

    def _images(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (jitter-resized) images and their null images, Tensor[B, C, H + j, W + j] each."""
        with torch.no_grad():
            big = x
            if self.jitter > 0:
                size = (x.shape[-2] + self.jitter, x.shape[-1] + self.jitter)
                big = F.interpolate(x, size, mode="bilinear", align_corners=False)
            if self.perturbation == "blur":
                null = gaussian_blur(big, self.blur_radius, padding="replicate")
            else:
                null = torch.zeros_like(big)
        return big, null

    def _crop(self, img: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Tensor[N, C, H, W]: each image cropped at its (row, col) offset (no jitter: as is)."""
        if self.jitter == 0:
            return img
        n, c = img.shape[:2]
        h, w = img.shape[-2] - self.jitter, img.shape[-1] - self.jitter
        rows = offsets[:, :1] + torch.arange(h, device=img.device)  # [N, H]
        cols = offsets[:, 1:] + torch.arange(w, device=img.device)  # [N, W]
        idx = (rows[:, :, None] * img.shape[-1] + cols[:, None, :]).reshape(n, 1, h * w)
        return img.reshape(n, c, -1).gather(2, idx.expand(n, c, h * w)).reshape(n, c, h, w)

    def _upsample(self, m: torch.Tensor, size: tuple[int, int], differentiable: bool) -> torch.Tensor:
        """Tensor[N, 1, H, W]: nearest upsampling, then the mask blur (straight-through)."""
        near = upsample_masks(m, size, mode="nearest", backend=self.backend, validate=False)[:, None]
        with torch.no_grad():
            shown = near.detach()
            if self.quantize:
                shown = torch.floor(shown * 255)
            if self.mask_blur > 0:
                shown = gaussian_blur(shown, self.mask_blur, padding="replicate")
            if self.quantize:
                shown = torch.round(shown) / 255
        return _StraightThrough.apply(shown, near) if differentiable else shown

    def _adam(self, m: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor,
              exp_sq: torch.Tensor, t: int) -> torch.Tensor:
        """One bias-corrected Adam step at step ``t >= 1`` (the moments updated in place), then
        the clip to [0, 1]."""
        exp_avg.mul_(BETA1).add_(grad, alpha=1 - BETA1)
        exp_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
        m_hat = exp_avg / (1 - BETA1**t)
        v_hat = exp_sq / (1 - BETA2**t)
        return (m - self.lr * m_hat / (v_hat.sqrt() + EPS)).clamp(0, 1)

    def __repr__(self) -> str:
        return (f"MeaningfulPerturbation({type(self.forward_func).__name__}, "
                f"mask_size={self.mask_size}, iterations={self.iterations})")
