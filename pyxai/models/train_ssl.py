"""Reproducible self-supervised training of the bundled SSL encoders on :func:`pyxai.data.shapes`.

Usage::

    python -m pyxai.models.train_ssl --method simclr        # -> pyxai/models/weights/demo_simclr.pt
    python -m pyxai.models.train_ssl --method barlow_twins  # -> pyxai/models/weights/demo_barlow_twins.pt

Labels are never used in training: each step draws two augmented views of a batch of images of the
training seeds ``1 .. --train-seeds``. A view first swaps the image's background, with probability
``--bg-swap``, for another training image's (:func:`composite`, on the layers of
:func:`pyxai.data.shape_layers`: the background augmentation of Ryali et al. 2021, which keeps the
encoder from matching two views by their shared texture), then :func:`augment` (random resized
crop, flip and 90-degree turn, channel shuffle, brightness/contrast, greyscale); training minimises
the NT-Xent loss (SimCLR, temperature ``--temperature``) or the Barlow Twins loss
(cross-correlation of the batch-standardised projections to the identity, off-diagonal weight
``--lambd``). Afterwards a linear probe (multinomial logistic regression on the frozen
backbone features, :func:`linear_probe`) is fitted on 2000 images of seed ``PROBE_SEED`` and
scored on 2000 of the held-out seed 12345; its accuracy is printed. Everything runs on the CPU
with ``torch.manual_seed(--seed)`` and ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyxai.data import SHAPE_CLASSES, shape_layers, shapes
from pyxai.models.demo_ssl import SSL_WEIGHTS, SSLEncoder
from pyxai.models.train import EVAL_SEED, make_training_set

PROBE_SEED = 777


def layer_set(train_seeds: int, images_per_seed: int, size: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """The layers (:func:`pyxai.data.shape_layers`) of the images of seeds ``1 .. train_seeds`` as
    uint8 (4x less memory): backgrounds, foregrounds Tensor[N, 3, S, S] and alpha Tensor[N, 1, S, S]."""
    def render(n: int, seed: int) -> tuple[Tensor, Tensor]:
        bg, fg, alpha, labels = shape_layers(n, seed=seed, size=size)
        return torch.cat([bg, fg, alpha], dim=1), labels  # 7 channels, quantised together

    stacked, _ = make_training_set(train_seeds, images_per_seed, size, render)
    return stacked[:, :3], stacked[:, 3:6], stacked[:, 6:]


def composite(layers: tuple[Tensor, Tensor, Tensor], idx: Tensor, swap: float,
              generator: torch.Generator | None = None) -> Tensor:
    """Images ``idx`` (Tensor[n] int64) of a :func:`layer_set` in [0, 1], Tensor[n, 3, S, S]: each
    object on its own background or, with probability ``swap``, on a random training image's."""
    backgrounds, foregrounds, alpha = layers
    n = idx.shape[0]
    swapped = torch.rand(n, generator=generator) < swap
    other = torch.randint(backgrounds.shape[0], (n,), generator=generator)
    bg = backgrounds[torch.where(swapped, other, idx)].float().div_(255)
    a = alpha[idx].float().div_(255)
    return a * foregrounds[idx].float().div_(255) + (1 - a) * bg


def augment(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random view per image of Tensor[N, 3, H, W] in [0, 1], drawn per image, batched.

    Random resized crop (area 0.35-1, aspect 3/4-4/3) with a random flip and 90-degree turn (one
    affine resampling), a random permutation of the colour channels, brightness x U(0.6, 1.4),
    contrast x U(0.6, 1.4) around the image mean, greyscale with probability 0.2.
    """
    n = x.shape[0]

    def u(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator)

    area = 0.35 + 0.65 * u(n)
    aspect = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u(n))
    sx = torch.sqrt(area * aspect).clamp(max=1.0)
    sy = torch.sqrt(area / aspect).clamp(max=1.0)
    tx = (1 - sx) * (2 * u(n) - 1)
    ty = (1 - sy) * (2 * u(n) - 1)
    k = torch.randint(4, (n,), generator=generator).float() * (math.pi / 2)
    flip = torch.where(u(n) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(k), torch.sin(k)
    theta = torch.stack([torch.stack([cos * sx * flip, -sin * sy, tx], 1),
                         torch.stack([sin * sx * flip, cos * sy, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    perm = torch.argsort(u(n, 3), dim=1)
    v = v.gather(1, perm[:, :, None, None].expand_as(v))
    v = v * (0.6 + 0.8 * u(n, 1, 1, 1))
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    v = (v - mean) * (0.6 + 0.8 * u(n, 1, 1, 1)) + mean
    grey = v.mean(1, keepdim=True).expand_as(v)
    v = torch.where((u(n) < 0.2)[:, None, None, None], grey, v)
    return v.clamp(0, 1)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent loss of two views' projections Tensor[N, D] (2N-way classification)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    labels = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, labels)


def barlow_twins(z1: Tensor, z2: Tensor, lambd: float) -> Tensor:
    """Barlow Twins loss: cross-correlation of the batch-standardised projections vs the identity."""
    n = z1.shape[0]
    a = (z1 - z1.mean(0)) / (z1.std(0) + 1e-5)
    b = (z2 - z2.mean(0)) / (z2.std(0) + 1e-5)
    c = a.T @ b / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lambd * off


@torch.no_grad()
def embed_features(encoder: SSLEncoder, images: Tensor, batch_size: int = 250) -> Tensor:
    """Backbone features Tensor[N, F] of an encoder (set to eval mode) for Tensor[N, 3, H, W]."""
    encoder.eval()
    return torch.cat([encoder.features(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def linear_probe(encoder: SSLEncoder, n_train: int = 2000, n_eval: int = 2000, steps: int = 200) -> float:
    """Held-out accuracy of a linear classifier on the frozen backbone features.

    Multinomial logistic regression (L-BFGS, ``steps`` iterations, weight decay 1e-4) on the
    standardised features of ``shapes(n_train, seed=PROBE_SEED)``, scored on
    ``shapes(n_eval, seed=12345)``. Deterministic.
    """
    xt, yt, _ = shapes(n_train, seed=PROBE_SEED)
    xe, ye, _ = shapes(n_eval, seed=EVAL_SEED)
    ft, fe = embed_features(encoder, xt), embed_features(encoder, xe)
    mu, sd = ft.mean(0), ft.std(0) + 1e-6
    ft, fe = (ft - mu) / sd, (fe - mu) / sd
    probe = nn.Linear(ft.shape[1], len(SHAPE_CLASSES))
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(probe(ft), yt) + 1e-4 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return (probe(fe).argmax(1) == ye).double().mean().item()


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=sorted(SSL_WEIGHTS), required=True)
    parser.add_argument("--out", type=Path, default=None, help="default: the shipped weights path")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-seeds", type=int, default=6)
    parser.add_argument("--images-per-seed", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--lambd", type=float, default=0.05)
    parser.add_argument("--bg-swap", type=float, default=0.5,
                        help="probability that a view's background is another image's")
    args = parser.parse_args(argv)
    out = args.out or SSL_WEIGHTS[args.method]

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    if not 0 <= args.bg_swap <= 1:
        parser.error(f"--bg-swap must be in [0, 1], got {args.bg_swap}")
    layers = layer_set(args.train_seeds, args.images_per_seed, 64)
    n_train = layers[0].shape[0]
    model = SSLEncoder()
    print(f"{args.method}: {n_train} images, {sum(p.numel() for p in model.parameters())} "
          f"parameters", flush=True)
    steps_per_epoch = n_train // args.batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total_steps = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total_steps, pct_start=0.1)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(n_train)
        total = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * args.batch_size:(s + 1) * args.batch_size]
            z1, z2 = (model(augment(composite(layers, idx, args.bg_swap))) for _ in range(2))
            loss = nt_xent(z1, z2, args.temperature) if args.method == "simclr" \
                else barlow_twins(z1, z2, args.lambd)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / steps_per_epoch:.4f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    model.eval()
    acc = linear_probe(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    print(f"linear probe accuracy {acc:.4f} (2000 held-out images of seed {EVAL_SEED}); total "
          f"{time.perf_counter() - start:.0f} s; saved {out} ({out.stat().st_size / 1e6:.2f} MB)",
          flush=True)
    return acc


if __name__ == "__main__":
    main()
