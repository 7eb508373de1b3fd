"""Synthesised images: feature visualisation (SPECS §9.7) and model-difference inversion (§9.8),
from annonymousneurips/xai-self-supervision ``deepdream`` / ``dream`` and ``synthesize``.

Both optimise images through the encoder with autograd, batched (every image its own objective,
summed); the encoder runs on a :class:`~pyxai.engine.view.ModelView` (never modified).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from pyxai.engine.checks import check_inputs, check_int, check_positive_int, check_same_device
from pyxai.engine.hooks import model_view
from pyxai.similarity._common import Pooling, check_nonzero, check_pooling, cosine, out_dtype, pool


def tv_l2(x: Tensor) -> Tensor:
    """Sum of squared neighbour differences along H and W, per image: Tensor[B]."""
    return (x[:, :, 1:] - x[:, :, :-1]).pow(2).flatten(1).sum(1) + \
        (x[..., 1:] - x[..., :-1]).pow(2).flatten(1).sum(1)


def gaussian_filter1d(x: Tensor, sigma: float, dim: int, truncate: float = 4.0) -> Tensor:
    """``scipy.ndimage.gaussian_filter1d(x, sigma, axis=dim)`` (mode "reflect": half-sample
    symmetric, d c b a | a b c d; radius ``int(truncate * sigma + 0.5)``), for any size."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    w = (w / w.sum()).to(x)
    n = x.shape[dim]
    idx = torch.arange(n)[:, None] + torch.arange(-radius, radius + 1)[None]  # [n, taps]
    idx = idx.remainder(2 * n)
    idx = torch.where(idx >= n, 2 * n - 1 - idx, idx).to(x.device)
    xm = x.movedim(dim, -1)
    out = (xm[..., idx] * w).sum(-1)
    return out.movedim(-1, dim)


def zoom_linear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``scipy.ndimage.zoom(x, (1, h/H, w/W), order=1)`` of Tensor[B, C, H, W]: linear interpolation
    with corner samples aligned (scipy's ``grid_mode=False``)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def _number(value: float, name: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0) or value < 0:
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a {kind} number, got {value!r}")
    return float(value)


class FeatureVisualization:
    """Deep-dream feature visualisation of what an encoder finds similar to reference images.

    From ``init`` (``0.01 * U[0, 1)``), over ``octaves`` octaves (each ``octave_scale`` smaller, made
    with ``scipy.ndimage.zoom(order=1)``; the detail is carried up), ``iterations`` gradient-ascent
    steps per octave on ``objective - l2_weight * ||x||_2 - tv_weight * TV_L2(x)``:

    * ``mode="score"``: ``cos(f(x), f(ref)) + minmax_weight * mean((f(x) - f(ref))^2)``;
    * ``mode="feature"``: ``||f^||`` where ``f^`` has the value ``ema * f(x) + (1 - ema) * f(ref)``
      and the gradient of ``f(x)`` (ema = 0: the Jacobian of f applied to ``f(ref) / ||f(ref)||``).

    The gradient is blurred with ``gaussian_filter1d`` along H then W (sigma
    ``2 (i + 1) / iterations + 0.5`` at step i), the step is ``lr / mean|grad|`` per image, and x is
    clipped to [0, 1].

    Args:
        encoder: ``nn.Module`` or callable, images -> embeddings (e.g. the first blocks of a ResNet).
        mode (str, optional): "score" or "feature". Default: "score"
        octaves (int, optional): Default: 10.  octave_scale (float, optional): Default: 1.4
        iterations (int, optional): steps per octave. Default: 20
        lr (float, optional): Default: 0.01.  l2_weight, tv_weight (float, optional): Default: 1e-3
        minmax_weight (float, optional): Default: 0.0.  ema (float, optional): Default: 0.0
        seed (int, optional): seed of the initial image. Default: 0
        pooling (optional): see :mod:`pyxai.similarity`. Default: None
    """

    def __init__(self, encoder: Callable, mode: str = "score", octaves: int = 10, octave_scale: float = 1.4,
                 iterations: int = 20, lr: float = 0.01, l2_weight: float = 1e-3, tv_weight: float = 1e-3,
                 minmax_weight: float = 0.0, ema: float = 0.0, seed: int = 0,
                 pooling: Pooling = None) -> None:
        if mode not in ("score", "feature"):
            raise ValueError(f"mode must be 'score' or 'feature', got {mode!r}")
        self.encoder = encoder
        self.mode = mode
        self.octaves = check_positive_int(octaves, "octaves")
        self.octave_scale = _number(octave_scale, "octave_scale", positive=True)
        self.iterations = check_positive_int(iterations, "iterations")
        self.lr = _number(lr, "lr", positive=True)
        self.l2_weight = _number(l2_weight, "l2_weight")
        self.tv_weight = _number(tv_weight, "tv_weight")
        self.minmax_weight = _number(minmax_weight, "minmax_weight")
        self.ema = _number(ema, "ema")
        self.seed = check_int(seed, "seed")
        self.pooling = check_pooling(pooling)

    def init(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """The initial images ``0.01 * U[0, 1)`` Tensor[shape] (CPU generator seeded with ``seed``)."""
        return 0.01 * torch.rand(*shape, generator=torch.Generator().manual_seed(self.seed), dtype=dtype)

    def octave_sizes(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """Image sizes of the octaves, largest first (scipy zoom's ``round(n / scale)``)."""
        sizes = [tuple(size)]
        for _ in range(self.octaves - 1):
            h, w = sizes[-1]
            sizes.append((max(1, round(h / self.octave_scale)), max(1, round(w / self.octave_scale))))
        return sizes

    def attribute(self, images: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Synthesise one image per reference image.

        Args:
            images: Tensor[B, C, H, W] reference images (their embeddings are the targets).
            size: (H, W) of the synthesised images. Default: the reference images' size.

        Returns:
            Tensor[B, C, H, W] in [0, 1].
        """
        check_inputs(images, "images", ndims=(4,))
        check_same_device(self.encoder, images)
        view = model_view(self.encoder)
        f = view.module if view is not None else self.encoder
        with torch.no_grad():
            ref = check_nonzero(pool(f(images), self.pooling), "encoder(images)")
        size = tuple(size) if size is not None else tuple(images.shape[2:])
        base = self.init((images.shape[0], images.shape[1], *size), images.dtype).to(images.device)
        sizes = self.octave_sizes(size)
        octaves = [base]
        for s in sizes[1:]:
            octaves.append(zoom_linear(octaves[-1], s))
        detail = torch.zeros_like(octaves[-1])
        x = base
        for k, octave_base in enumerate(reversed(octaves)):
            if k > 0:
                detail = zoom_linear(detail, tuple(octave_base.shape[2:]))
            x = octave_base + detail
            for i in range(self.iterations):
                x = self._step(f, x, ref, i)
            detail = x - octave_base
        return x.detach().to(out_dtype(images))

    def _step(self, f: Callable, x: Tensor, ref: Tensor, i: int) -> Tensor:
        x = x.detach().requires_grad_()
        with torch.enable_grad():
            z = pool(f(x), self.pooling)
            if self.mode == "score":
                obj = cosine(z, ref)
                if self.minmax_weight:
                    obj = obj + self.minmax_weight * (z - ref).pow(2).mean(1)
            else:
                target = self.ema * z.detach() + (1 - self.ema) * ref
                obj = (z + (target - z).detach()).norm(dim=1)
            loss = obj - self.l2_weight * x.flatten(1).norm(dim=1) - self.tv_weight * tv_l2(x)
            (g,) = torch.autograd.grad(loss.sum(), x)
        sigma = 2 * (i + 1) / self.iterations + 0.5
        g = gaussian_filter1d(gaussian_filter1d(g, sigma, 2), sigma, 3)
        step = self.lr / g.abs().flatten(1).mean(1).clamp_min(1e-30)
        return (x.detach() + step[:, None, None, None] * g).clamp(0, 1)


class ModelDifference:
    """Model-difference visualisation: invert the same images through two feature extractors.

    For each extractor Φ (``encoder``, then ``reference``): ``x`` starts at ``0.1 * N(0, 1)`` and
    SGD (``lr``, momentum 0.9) runs ``iterations`` steps on
    ``0.1 ||Φ(x) - Φ(x0)||^2 / ||Φ(x0)||^2 + 1e-7 sum x^6 + 1e-8 TV_L2(x)``, with x clipped to
    [0, 1] before each forward; for the extractors listed in ``decay`` the learning rate is
    multiplied by 0.1 whenever ``i % 40 == 0`` (i = 0 included: the reference's SSL schedule).

    Args:
        encoder: feature extractor Φ_a, images -> features of any shape (e.g. the first blocks of
            the SSL encoder's ResNet).
        reference: feature extractor Φ_b (e.g. the same blocks of a supervised ResNet).
        iterations (int, optional): Default: 201.  lr (float, optional): Default: 1e4
        decay (tuple of bool, optional): lr decay for (encoder, reference). Default: (True, False)
        decay_every (int, optional): Default: 40.  seed (int, optional): Default: 0
    """

    def __init__(self, encoder: Callable, reference: Callable, iterations: int = 201, lr: float = 1e4,
                 momentum: float = 0.9, decay: tuple[bool, bool] = (True, False), decay_every: int = 40,
                 seed: int = 0) -> None:
        self.models = (encoder, reference)
        self.iterations = check_positive_int(iterations, "iterations")
        self.lr = _number(lr, "lr", positive=True)
        self.momentum = _number(momentum, "momentum")
        if not (isinstance(decay, (tuple, list)) and len(decay) == 2):
            raise ValueError(f"decay must be a pair of bools (encoder, reference), got {decay!r}")
        self.decay = tuple(bool(d) for d in decay)
        self.decay_every = check_positive_int(decay_every, "decay_every")
        self.seed = check_int(seed, "seed")

    def init(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """The initial images ``0.1 * N(0, 1)`` (CPU generator seeded with ``seed``)."""
        return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(self.seed), dtype=dtype)

    def invert(self, model: Callable, images: Tensor, decay: bool) -> Tensor:
        """Feature inversion of Tensor[B, C, H, W] through ``model`` -> Tensor[B, C, H, W] in [0, 1]."""
        view = model_view(model)
        phi = view.module if view is not None else model
        with torch.no_grad():
            target = phi(images)
            if not isinstance(target, Tensor):
                raise TypeError(f"the feature extractor must return a Tensor, got {type(target).__name__}")
            denom = target.flatten(1).pow(2).sum(1)
            if bool((denom == 0).any()):
                raise ValueError("a feature extractor gives all-zero features for an image: the "
                                 "normalised inversion loss is undefined")
        x = self.init(tuple(images.shape), images.dtype).to(images.device).requires_grad_()
        opt = torch.optim.SGD([x], lr=self.lr, momentum=self.momentum)
        with torch.enable_grad():
            for i in range(self.iterations):
                if decay and i % self.decay_every == 0:
                    for group in opt.param_groups:
                        group["lr"] *= 0.1
                with torch.no_grad():
                    x.clamp_(0, 1)
                diff = (phi(x) - target).flatten(1).pow(2).sum(1) / denom
                loss = (0.1 * diff + 1e-7 * x.pow(6).flatten(1).sum(1) + 1e-8 * tv_l2(x)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return x.detach().clamp(0, 1).to(out_dtype(images))

    def attribute(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Inversions of ``images`` Tensor[B, C, H, W] through both extractors:
        (Tensor[B, C, H, W] of ``encoder``, Tensor[B, C, H, W] of ``reference``), in [0, 1]."""
        check_inputs(images, "images", ndims=(4,))
        for m in self.models:
            check_same_device(m, images)
        return (self.invert(self.models[0], images, self.decay[0]),
                self.invert(self.models[1], images, self.decay[1]))
