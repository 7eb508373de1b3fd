"""Averaged transforms ("integrated transform", SPECS §9.5, explain-cl ``averaged_transforms``).

The pair is a *pure* image ``img1`` and a transformed view ``img2`` of it (same size). The path
``x_l = l * img1 + (1 - l) * img2`` for ``l = 1.0, 0.9, ..., 0.1`` (``numpy.arange(1, 0, -step)``);
with ``add_noise``, the interior images (not the first nor the last) get Gaussian noise of
``sigma = 0.15 / (max img1 - min img1)`` (as coded). For each ``x_l`` after the first, the gradients
of ``cos(f(x_1), f(x_l))`` with respect to both inputs are taken; their means over the path give
``sal1 = max_c |x_1 * g1|`` and ``sal2 = max_c |x_last * g2|``. ``guided=True`` passes only positive
gradients through every ``nn.ReLU`` (on a view of the encoder); ``blur_output`` applies torchvision's
``gaussian_blur(11, 5)``. Every path step of every pair runs in one batched forward and backward.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from pyxai.engine.checks import check_int
from pyxai.engine.hooks import guided_relus, model_view
from pyxai.similarity._common import (
    Pooling,
    check_pair,
    check_pooling,
    cosine,
    gaussian_blur,
    out_dtype,
    pool,
)


class AveragedTransforms:
    """Averaged-transform saliency of a pure image and its transformed view.

    Args:
        encoder: ``nn.Module`` (required for ``guided``) or callable, images -> embeddings.
        step (float, optional): spacing of the mixing coefficients. Default: 0.1
        add_noise (bool, optional): Gaussian noise on the interior path images. Default: False
        guided (bool, optional): guided-backprop ReLUs. Default: False
        blur_output (bool, optional): blur the maps with ``gaussian_blur(11, 5)``. Default: False
        seed (int, optional): seed of the noise (CPU generator). Default: 0
        pooling (optional): see :mod:`pyxai.similarity`. Default: None
    """

    def __init__(self, encoder: Callable, step: float = 0.1, add_noise: bool = False, guided: bool = False,
                 blur_output: bool = False, seed: int = 0, pooling: Pooling = None) -> None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step < 1:
            raise ValueError(f"step must be a number in (0, 1), got {step!r}")
        if guided and not isinstance(encoder, nn.Module):
            raise TypeError("guided=True needs an nn.Module encoder (its ReLUs are changed on a view)")
        self.encoder = encoder
        self.lambdas = [float(v) for v in np.arange(1, 0, -step)]
        if len(self.lambdas) < 2:
            raise ValueError(f"step {step} gives fewer than two path images")
        self.add_noise = bool(add_noise)
        self.guided = bool(guided)
        self.blur_output = bool(blur_output)
        self.seed = check_int(seed, "seed")
        self.pooling = check_pooling(pooling)

    def path(self, img1: Tensor, img2: Tensor) -> Tensor:
        """The mixed images Tensor[L, B, C, H, W] (noise included), step ``l`` first."""
        lam = torch.tensor(self.lambdas, dtype=img1.dtype, device=img1.device)[:, None, None, None, None]
        mixed = lam * img1[None] + (1 - lam) * img2[None]
        if self.add_noise and mixed.shape[0] > 2:
            b = img1.shape[0]
            sigma = 0.15 / (img1.flatten(1).max(1).values - img1.flatten(1).min(1).values)  # [B]
            g = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(mixed.shape[0] - 2, *img1.shape, generator=g, dtype=img1.dtype)
            noise = noise.to(img1.device) * sigma.reshape(1, b, 1, 1, 1)
            mixed = torch.cat([mixed[:1], mixed[1:-1] + noise, mixed[-1:]])
        return mixed

    def attribute(self, img1: Tensor, img2: Tensor) -> tuple[Tensor, Tensor]:
        """Saliency of the pure images and of the last path images.

        Args:
            img1: Tensor[B, C, H, W] pure images; img2: Tensor[B, C, H, W] their transformed views.

        Returns:
            (Tensor[B, 1, H, W], Tensor[B, 1, H, W]) float32 (float64 for float64 inputs).
        """
        check_pair(img1, img2, self.encoder, same_size=True)
        mixed = self.path(img1, img2)
        n = mixed.shape[0] - 1
        view = model_view(self.encoder)
        f = view.module if view is not None else self.encoder
        guided = guided_relus(view) if self.guided else contextlib.nullcontext()
        a = mixed[:1].expand(n, *img1.shape).reshape(-1, *img1.shape[1:]).detach().requires_grad_()
        b = mixed[1:].reshape(-1, *img1.shape[1:]).detach().requires_grad_()
        with torch.enable_grad(), guided:
            z = pool(f(torch.cat([a, b])), self.pooling)
            score = cosine(z[: a.shape[0]], z[a.shape[0]:]).sum()
            ga, gb = torch.autograd.grad(score, (a, b))
        g1 = ga.reshape(n, *img1.shape).mean(0)
        g2 = gb.reshape(n, *img1.shape).mean(0)
        s1 = (mixed[0] * g1).abs().amax(1, keepdim=True)
        s2 = (mixed[-1] * g2).abs().amax(1, keepdim=True)
        if self.blur_output:
            s1, s2 = gaussian_blur(s1), gaussian_blur(s2)
        return s1.to(out_dtype(img1)), s2.to(out_dtype(img1))
