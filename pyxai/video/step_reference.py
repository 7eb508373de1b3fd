"""A direct transcription of the reference STEP algorithm for ONE clip and ONE area (SPECS.md
section 10): the oracle of the tests and the ``"original"`` row of ``pyxai bench step``.

It follows TCSVT's ``perturbation_area.video_perturbation`` (and, for the baselines, WACV's
``perturbation.video_perturbation``) step by step, in their loops and arithmetic order: frames are
perturbed one at a time from their own pyramid, the regulariser weight is a Python float multiplied
after every iteration, the core kernel and its ``topk`` are built as the reference builds them, the
core weight switches on after iteration ``core_start``. It shares nothing with
:class:`pyxai.video.STEP` but TorchRay's mask generator (tested bit-equal to TorchRay) and blur;
the tests also run it with TorchRay's own ``MaskGenerator``.

One difference from the reference code: the permutations are supplied by the caller (the reference
draws them from the global generator) so that one-clip runs can be given the batched run's; and,
as :class:`pyxai.video.STEP`, ``stable=True`` makes the sorts stable.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from pyxai.perturbation.extremal import MaskGenerator
from pyxai.perturbation.pyramid import gaussian_blur

Perms = Callable[[int], tuple["torch.Tensor | None", "torch.Tensor | None"]]


def _kernel(kt: int, ks: int, shape: str) -> torch.Tensor:
    out = np.zeros((kt, ks, ks), dtype=bool)
    lt, ls = np.linspace(-1, 1, kt), np.linspace(-1, 1, ks)
    for i in range(kt):
        for j in range(ks):
            for k in range(ks):
                r2 = ls[j] ** 2 + ls[k] ** 2 + (0.0 if shape == "cylinder" else lt[i] ** 2)
                out[i, j, k] = np.sqrt(r2) <= 1
    return torch.from_numpy(out).float()[None, None]


def reference_step(
    model: Callable[[torch.Tensor], torch.Tensor],
    clip: torch.Tensor,
    target: int,
    area: float,
    max_iter: int,
    perms: Perms,
    objective: str = "step",
    variant: str = "preserve",
    sigma: float = 11.0,
    perturbation: str = "blur",
    num_levels: int = 8,
    core_frames: int = 5,
    core_size: int = 11,
    core_shape: str = "ellipsoid",
    core_start: int = 100,
    mask_generator: Callable[..., object] | None = None,
    stable: bool = False,
    temporal_diff: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip, one area, the reference's loops.

    Args:
        model: ``Tensor[R, C, T, H, W] -> Tensor[R, K]`` probabilities.
        clip: Tensor[1, C, T, H, W].
        target: the class.
        area: the target area.
        max_iter: iterations.
        perms: ``t -> (volume permutation Tensor[T S S] or None, core permutation or None)``.
        objective, variant, sigma, perturbation, num_levels, core_*: as :class:`pyxai.video.STEP`.
        mask_generator: ``(shape, step, sigma) -> generator`` with ``generate(p) -> (cropped,
            full)`` (default: pyxai's on the reference backend of ``smooth_masks``: TorchRay's
            ``MaskGenerator`` arithmetic bit for bit).
        stable: stable sorts (``STEP(stable_sort=True)``).
        temporal_diff: TCSVT's ``with_diff`` term.

    Returns:
        ``(mask Tensor[1, T, H, W], history Tensor[2, max_iter])`` (reward, regulariser).
    """
    _, c, frames, h, w = clip.shape
    if mask_generator is None:
        gen = MaskGenerator((h, w), 7, sigma, clip.device)
        generate = lambda p: gen.generate(p, backend="reference")  # noqa: E731
    else:
        gen = mask_generator((h, w), 7, sigma)
        generate = gen.generate
    s_h, s_w = gen.shape_out
    volume = frames * s_h * s_w
    pyramids = []
    with torch.no_grad():
        for t in range(frames):
            frame = clip[:, :, t]
            levels = []
            for lv in torch.linspace(0, 1, num_levels):
                levels.append(gaussian_blur(frame, (1 - lv) * 20.0) if perturbation == "blur"
                              else frame * lv)
            pyramids.append(torch.cat(levels))  # [L, C, H, W]
    if objective == "2d_ep":
        ref = torch.ones(s_h * s_w, dtype=clip.dtype, device=clip.device)
        ref[: int(s_h * s_w * (1 - area))] = 0
    else:
        ref = torch.ones(volume, dtype=clip.dtype, device=clip.device)
        ref[: int(volume * (1 - area))] = 0
    kernel = _kernel(core_frames, core_size, core_shape).to(clip)
    ones = int(core_frames * core_size * core_size * 0.5236)
    topk = math.ceil((area * frames * s_h * s_w) / ones)
    params = torch.ones(frames, 1, *gen.shape_in, dtype=clip.dtype, device=clip.device)
    params.requires_grad_(True)
    opt = torch.optim.SGD([params], lr=0.05, momentum=0.9, dampening=0.9)
    regul_weight, core_weight = 300.0, 0.0
    reward_weight = 1.0 if objective == "step" else 100.0
    hist = torch.zeros(2, max_iter)
    mask = None
    for it in range(max_iter):
        vol_perm, core_perm = perms(it)
        frames_pres, frames_del, masks, fulls = [], [], [], []
        for t in range(frames):
            m, full = generate(params[t : t + 1])
            masks.append(m)
            fulls.append(full)
            for keep, out in ((m, frames_pres), (1 - m, frames_del)):
                lv = keep[:, None] * (num_levels - 1)  # [1, 1, 1, H, W]
                k = lv.floor()
                frac = lv - k
                k = k.long()
                y = pyramids[t][None]  # [1, L, C, H, W]
                y0 = torch.gather(y, 1, k.expand(1, 1, c, h, w))
                y1 = torch.gather(y, 1, torch.clamp(k + 1, max=num_levels - 1).expand(1, 1, c, h, w))
                out.append(((1 - frac) * y0 + frac * y1)[:, 0])  # [1, C, H, W]
        pres = torch.stack(frames_pres, dim=2)  # [1, C, T, H, W]
        dele = torch.stack(frames_del, dim=2)
        if variant == "preserve":
            reward = -torch.log(model(pres)[:, target])
        elif variant == "delete":
            reward = -torch.log(1 - model(dele)[:, target])
        else:
            p = model(torch.cat([pres, dele]))[:, target]
            reward = (-torch.log(1 - p[1:])) + (-torch.log(p[:1]))
        reward = reward * reward_weight
        full = torch.cat(fulls)[:, 0]  # [T, S_h, S_w]
        if objective == "2d_ep":
            srt = full.reshape(frames, -1).sort(dim=1, stable=stable)[0]
            regul = ((srt - ref) ** 2).mean(dim=1).mean(dim=0) * regul_weight
        else:
            flat = full.reshape(1, -1)
            if vol_perm is not None:
                flat = flat[:, vol_perm]
            srt = flat.sort(dim=1, stable=stable)[0]
            regul = ((srt - ref) ** 2).mean(dim=1) * regul_weight
        if temporal_diff:
            diffs = [full[1:] - full[:-1]]
            for _ in range(2):
                diffs.append(diffs[-1][1:] - diffs[-1][:-1])
            regul = regul + torch.stack([(d.reshape(1, -1) ** 2).mean(dim=1) for d in diffs]
                                        ).mean(dim=0) * regul_weight
        if objective == "step":
            r = F.conv3d(full[None, None], kernel, stride=(1, core_size, core_size)).reshape(1, -1)
            r = r[:, core_perm].sort(dim=1, descending=True, stable=stable)[0]
            core = ((r[:, :topk] / kernel.sum() - 1) ** 2).mean(dim=1) \
                + ((r[:, topk:] / kernel.sum() - 0) ** 2).mean(dim=1)
            regul = regul + core * core_weight
        energy = (reward + regul).sum()
        hist[0, it], hist[1, it] = reward.sum().item(), regul.sum().item()
        opt.zero_grad()
        energy.backward()
        opt.step()
        params.data = params.data.clamp(0, 1)
        mask = torch.cat(masks)[:, 0].detach()
        if objective == "step":
            regul_weight *= 1.0008668
            if it == core_start:
                core_weight = 300.0
    return mask, hist
