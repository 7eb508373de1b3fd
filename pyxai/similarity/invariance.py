"""Pixel invariance (SPECS §9.6, explain-cl ``get_pixel_invariance_dataset`` / ``pixel_invariance``).

For each image: ``n_augments`` views from a no-shift augmentation (default :func:`no_shift_augment`:
colour jitter with probability 0.8, greyscale 0.2, random erasing 0.5 with scale (0.02, 0.33) and
ratio (0.3, 3.3)), labelled ``y = cos(f(image), f(view))``. A linear surrogate
``g = Linear(C * size * size, 1)`` on the images resized to ``size`` (bilinear, antialiased:
torchvision ``Resize`` on tensors) is trained with logits ``(g(image) + g(view)) / 2``,
``BCEWithLogits(sum) + l1_weight * sum |params|`` (bias included), full-batch SGD (``lr``,
``epochs``). The heatmap is the channel max of the weights reshaped to (C, size, size), min-max
normalised, values < 0.5 zeroed (``zero_small_values``), blurred with ``gaussian_blur(11, 5)``
(``blur_output``) and resized to the image. The surrogates of all 2B images train as one batched
linear map (each its own weights and loss).

The NMF variant (explain-cl's TIP version, ``nmf_weight`` set): scikit-learn's
``NMF(n_components, init="random")`` factorises the views' ``relu(f(view))`` (Tensor[T, D]) as
``W H``; each view's invariance target is its row mean of ``W`` (Tensor[T]), and the loss gains
``nmf_weight * MSE(sigmoid(logits), target)`` (mean over the views). The reference trains this
variant for 100 epochs.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from pyxai.engine.checks import check_int, check_positive_int
from pyxai.engine.runner import PerturbationRunner
from pyxai.similarity._common import (
    Pooling,
    box_masks,
    check_nonzero,
    check_pair,
    check_pooling,
    cosine,
    embedder,
    erase_boxes,
    gaussian_blur,
    minmax,
    out_dtype,
    resize_maps,
)


def no_shift_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Default pixel-invariance views of Tensor[N, C, H, W] in [0, 1] (no geometric change).

    Per view, with probability 0.8 brightness, contrast and saturation factors in [0.2, 1.8]
    (colour jitter without hue); greyscale with probability 0.2; with probability 0.5 a random
    erasing box (torchvision ``RandomErasing`` boxes, scale (0.02, 0.33), ratio (0.3, 3.3), value 0).
    Drawn from ``generator`` (CPU).
    """
    n, c, h, w = x.shape

    def u(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator, dtype=x.dtype).to(x.device)

    jitter = (u(n) < 0.8)[:, None, None, None]
    factors = 0.2 + 1.6 * u(3, n, 1, 1, 1)
    v = x * factors[0]
    v = (v - v.mean((1, 2, 3), keepdim=True)) * factors[1] + v.mean((1, 2, 3), keepdim=True)
    grey = v.mean(1, keepdim=True)
    v = (v - grey) * factors[2] + grey
    v = torch.where(jitter, v.clamp(0, 1), x)
    v = torch.where((u(n) < 0.2)[:, None, None, None], v.mean(1, keepdim=True).expand_as(v), v)
    boxes = torch.tensor(erase_boxes(n, h, w, (0.02, 0.33), (0.3, 3.3), generator), device=x.device)
    rows, cols = box_masks(boxes, h, w)
    erase = (rows[:, :, None] & cols[:, None, :]) & (u(n) < 0.5)[:, None, None]
    return torch.where(erase[:, None], v.new_zeros(()), v)


class PixelInvariance:
    """Pixel-invariance maps: which pixels a linear surrogate of the augmentation invariance uses.

    Args:
        encoder: ``nn.Module`` or callable, images -> embeddings Tensor[N, D].
        n_augments (int, optional): views per image. Default: 1000
        size (int, optional): surrogate resolution. Default: 64
        epochs (int, optional): full-batch SGD steps. Default: 1000
        lr (float, optional): SGD learning rate. Default: 0.1
        l1_weight (float, optional): L1 penalty of the surrogate (None: off). Default: 0.2
        zero_small_values (bool, optional): zero normalised values < 0.5. Default: True
        blur_output (bool, optional): ``gaussian_blur(11, 5)`` the map. Default: True
        augment (callable, optional): ``(Tensor[N, C, H, W], generator) -> views``. Default:
            :func:`no_shift_augment`
        nmf_weight (float, optional): weight of the NMF invariance term (None: off, the plain
            variant). Needs scikit-learn. Default: None
        n_components (int, optional): NMF components of the NMF variant. Default: 10
        seed (int, optional): seed of the views, of the surrogate's initialisation and of the NMF
            initialisation (``random_state=seed``). Default: 0
        pooling (optional): see :mod:`pyxai.similarity`. Default: None
        batch_size (int, optional): encoder inputs per forward. Default: None
    """

    def __init__(self, encoder: Callable, n_augments: int = 1000, size: int = 64, epochs: int = 1000,
                 lr: float = 0.1, l1_weight: float | None = 0.2, zero_small_values: bool = True,
                 blur_output: bool = True, augment: Callable | None = None,
                 nmf_weight: float | None = None, n_components: int = 10, seed: int = 0,
                 pooling: Pooling = None, batch_size: int | None = None) -> None:
        self.encoder = encoder
        self.n_augments = check_positive_int(n_augments, "n_augments")
        self.size = check_positive_int(size, "size")
        self.epochs = check_positive_int(epochs, "epochs")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.lr = float(lr)
        if l1_weight is not None and (isinstance(l1_weight, bool) or not isinstance(l1_weight, (int, float))
                                      or not l1_weight >= 0):
            raise ValueError(f"l1_weight must be a number >= 0 or None, got {l1_weight!r}")
        self.l1_weight = l1_weight
        self.zero_small_values = bool(zero_small_values)
        self.blur_output = bool(blur_output)
        if augment is not None and not callable(augment):
            raise TypeError("augment must be a callable (images, generator) -> views")
        self.augment = augment or no_shift_augment
        if nmf_weight is not None:
            if isinstance(nmf_weight, bool) or not isinstance(nmf_weight, (int, float)) \
                    or not (nmf_weight >= 0 and math.isfinite(nmf_weight)):
                raise ValueError(f"nmf_weight must be a finite number >= 0 or None, got {nmf_weight!r}")
            _nmf_class()  # the NMF variant needs scikit-learn: say so now, not after the forwards
        self.nmf_weight = nmf_weight
        self.n_components = check_positive_int(n_components, "n_components")
        self.seed = check_int(seed, "seed")
        self.pooling = check_pooling(pooling)
        self.batch_size = batch_size

    def dataset(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Views Tensor[N_img, n_augments, C, H, W] and labels Tensor[N_img, n_augments] (cosine of
        each view's embedding to its image's) for Tensor[N_img, C, H, W] images."""
        views, labels, _ = self._dataset(images)
        return views, labels

    def _dataset(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`dataset` and the views' embeddings Tensor[N_img, n_augments, D]."""
        g = torch.Generator().manual_seed(self.seed)
        f = embedder(self.encoder, self.pooling)
        runner = PerturbationRunner(f, self.batch_size)
        z = check_nonzero(runner.outputs(images), "encoder(images)")
        views, labels, embeddings = [], [], []
        for i in range(images.shape[0]):
            v = self.augment(images[i:i + 1].expand(self.n_augments, *images.shape[1:]), g)
            zv = runner.outputs(v)
            views.append(v)
            labels.append(cosine(zv, z[i:i + 1]))
            embeddings.append(zv)
        return torch.stack(views), torch.stack(labels), torch.stack(embeddings)

    def nmf_targets(self, view_embeddings: Tensor) -> Tensor:
        """The NMF variant's invariance targets Tensor[N_img, T] of the views' embeddings
        Tensor[N_img, T, D]: per image, the row means of ``W`` of scikit-learn's
        ``NMF(n_components, init="random", random_state=seed).fit_transform(relu(z))``."""
        nmf = _nmf_class()
        out = []
        for z in view_embeddings.detach():
            data = z.clamp_min(0).cpu().numpy()  # in its own dtype, as the reference hands it over
            w = nmf(n_components=self.n_components, init="random", random_state=self.seed).fit_transform(data)
            out.append(torch.from_numpy(w.mean(1)))
        return torch.stack(out).to(view_embeddings.device, view_embeddings.dtype)

    def init_params(self, n: int, channels: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Surrogate weights Tensor[n, P] and biases Tensor[n] drawn as ``nn.Linear`` initialises
        them (uniform in +-1/sqrt(P)), from a generator seeded with ``seed + 1``."""
        p = channels * self.size * self.size
        g = torch.Generator().manual_seed(self.seed + 1)
        bound = 1 / math.sqrt(p)
        w = (torch.rand(n, p, generator=g, dtype=dtype) * 2 - 1) * bound
        b = (torch.rand(n, generator=g, dtype=dtype) * 2 - 1) * bound
        return w, b

    def _resized(self, x: Tensor) -> Tensor:
        s = (self.size, self.size)
        if tuple(x.shape[-2:]) == s:
            return x
        return F.interpolate(x, size=s, mode="bilinear", align_corners=False, antialias=True)

    def fit(self, images: Tensor, views: Tensor, labels: Tensor, nmf_targets: Tensor | None = None) -> Tensor:
        """Train the surrogates; returns their weights as maps Tensor[N_img, C, size, size].

        ``nmf_targets`` (Tensor[N_img, T], from :meth:`nmf_targets`) adds the NMF term; it is
        required when ``nmf_weight`` is set and ignored otherwise.
        """
        if self.nmf_weight is not None and nmf_targets is None:
            raise ValueError("nmf_targets is required when nmf_weight is set (see nmf_targets())")
        n, c = images.shape[:2]
        x1 = self._resized(images).reshape(n, -1)  # [N_img, P]
        x2 = self._resized(views.flatten(0, 1)).reshape(n, self.n_augments, -1)  # [N_img, T, P]
        w, b = self.init_params(n, c, x1.dtype)
        w, b = w.to(x1.device).requires_grad_(), b.to(x1.device).requires_grad_()
        y = labels.detach().to(x1.dtype)
        if self.nmf_weight is not None:
            y_nmf = nmf_targets.detach().to(x1.device, x1.dtype)
        with torch.enable_grad():
            for _ in range(self.epochs):
                p1 = (x1 * w).sum(-1)[:, None] + b[:, None]  # [N_img, 1]: g(image) (same for every view)
                p2 = torch.einsum("ntp,np->nt", x2, w) + b[:, None]
                logits = (p1 + p2) / 2
                loss = F.binary_cross_entropy_with_logits(logits, y, reduction="sum")
                if self.nmf_weight is not None:  # each surrogate its own mean over its views
                    loss = loss + self.nmf_weight * (torch.sigmoid(logits) - y_nmf).pow(2).mean(1).sum()
                if self.l1_weight is not None:
                    loss = loss + self.l1_weight * (w.abs().sum() + b.abs().sum())
                gw, gb = torch.autograd.grad(loss, (w, b))
                with torch.no_grad():
                    w -= self.lr * gw
                    b -= self.lr * gb
        return w.detach().reshape(n, c, self.size, self.size)

    def heatmap(self, weights: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Surrogate weights Tensor[N, C, s, s] -> maps Tensor[N, 1, H, W] (see module docstring)."""
        h = minmax(weights.amax(1, keepdim=True))
        if self.zero_small_values:
            h = torch.where(h < 0.5, 0, h)
        if self.blur_output:
            h = gaussian_blur(h)
        return resize_maps(h, image_size)

    def attribute(self, img1: Tensor, img2: Tensor) -> tuple[Tensor, Tensor]:
        """Pixel-invariance maps of both images of each pair (each from its own views).

        Returns:
            (Tensor[B, 1, H1, W1], Tensor[B, 1, H2, W2]) float32 (float64 for float64 inputs).
        """
        check_pair(img1, img2, self.encoder)
        out = []
        for img in (img1, img2):
            views, labels, embeddings = self._dataset(img)
            targets = None if self.nmf_weight is None else self.nmf_targets(embeddings)
            weights = self.fit(img, views, labels, targets)
            out.append(self.heatmap(weights, tuple(img.shape[2:])).to(out_dtype(img)))
        return out[0], out[1]


def _nmf_class() -> type:
    try:
        from sklearn.decomposition import NMF
    except ImportError:
        raise ImportError("PixelInvariance's NMF variant (nmf_weight) needs scikit-learn: "
                          "pip install 'pyxai-attribution[similarity]'") from None
    return NMF
