"""``pyxai bench step``: STEP, B clips x A areas as one batched optimisation, against the one-clip
one-area transcription of the reference algorithm (:func:`pyxai.video.step_reference.reference_step`,
run B x A times, as the reference code runs) and the floor (``max_iter`` bare forwards + input-
gradient backwards of ``B * A`` clips).

Workloads (CPU by default; random-weight clip models with a softmax head, seed 0; targets = the
predicted classes; the core term switched on after 1/4 of the iterations so that it is timed):

* quick=True: a small 3-D CNN, 2 clips x 2 areas, 6 frames of 16 x 16, 4 steps (a few seconds);
* quick=False: the same CNN, 4 clips x 3 areas, 8 frames of 32 x 32, 40 steps; and torchvision's
  r3d_18, 4 clips x 3 areas, 8 frames of 32 x 32, 10 steps.

``pyxai NDHWC`` is the same with ``channels_last=True`` (channels_last_3d clips; the floor stays
the default layout). The "median ms" column is the time for all clips: divide by B for the time per clip.
"""

from __future__ import annotations

import torch
from torch import nn

from pyxai.benchmark.core import Case, mean_error, register
from pyxai.benchmark.extremal import _grad_floor


def clip_cnn() -> nn.Module:
    """A small 3-D CNN (random weights of seed 0, softmax head) for 3 x T x H x W clips."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv3d(3, 16, 3, padding=1), nn.BatchNorm3d(16), nn.ReLU(),
            nn.Conv3d(16, 32, 3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(32), nn.ReLU(),
            nn.Conv3d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(32, 10), nn.Softmax(1)).eval()


def r3d_18() -> nn.Module:
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(torchvision.models.video.r3d_18(num_classes=10), nn.Softmax(1)).eval()


def _case(name: str, model: nn.Module, clips: int, areas: tuple[float, ...], frames: int,
          size: int, steps: int, device: str, **geometry) -> Case:
    import pyxai
    from pyxai.perturbation.extremal import MaskGenerator
    from pyxai.video.step_losses import Permutations
    from pyxai.video.step_reference import reference_step

    model = model.to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(clips, 3, frames, size, size, generator=g).to(device)
    with torch.no_grad():
        labels = model(x).argmax(1)
    kw = dict(max_iter=steps, core_start=steps // 4, **geometry)
    step = pyxai.STEP(model, areas=areas, seed=0, **kw)
    fast = pyxai.STEP(model, areas=areas, seed=0, channels_last=True, **kw)

    gen = MaskGenerator((size, size), 7, kw["sigma"], x.device)
    s_h, s_w = gen.shape_out
    kt, ks = kw.get("core_frames", 5), 11
    responses = (frames - kt + 1) * ((s_h - ks) // ks + 1) * ((s_w - ks) // ks + 1)

    try:  # the reference code's own mask generator (TorchRay's), when installed
        from torchray.attribution.extremal_perturbation import MaskGenerator as generator
    except ImportError:
        generator = None  # pyxai's on the reference backend: the same arithmetic, slower

    def reference() -> torch.Tensor:
        # the batched run's permutations (one stream of the seed), handed to each area's run
        stream = Permutations(0, frames * s_h * s_w, responses, len(areas), x.device)
        draws = [stream.next() for _ in range(steps)]
        out = torch.empty(clips, len(areas), 1, frames, size, size, device=x.device)
        for i in range(clips):
            for j, a in enumerate(areas):
                m, _ = reference_step(model, x[i : i + 1], int(labels[i]), a,
                                      perms=lambda t, j=j: (draws[t][0], draws[t][1][j]),
                                      mask_generator=generator, **kw)
                out[i, j, 0] = m
        return out

    return Case(
        name=f"{name} {clips} clips x {len(areas)} areas, {frames}x{size}x{size}, {steps} steps",
        impls={
            "pyxai": lambda: step.attribute(x, labels),
            "pyxai NDHWC": lambda: fast.attribute(x, labels),
            "original": reference,
            "floor": _grad_floor(model, x, clips * len(areas), steps),
        },
        # the original loops run TorchRay's generator arithmetic (the reference backend of
        # smooth_masks), pyxai the native kernel: last-bit differences the optimisation amplifies
        # (as in the extremal workload), so the mean error is compared
        parity=[("original", "pyxai", 0.05, mean_error),
                ("pyxai NDHWC", "pyxai", 0.05, mean_error)], device=device,
        notes=f"original = reference_step (the reference's loops, TorchRay's MaskGenerator when "
              f"installed) one clip and one area at a time, "
              f"{clips * len(areas)} runs; floor = {steps} forward+backward passes of "
              f"{clips * len(areas)} clips; time per clip = median / {clips}",
    )


@register("step")
def step_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    if quick:
        return [_case("3-D CNN", clip_cnn(), 2, (0.1, 0.3), 6, 16, 4, device, sigma=5.0,
                      core_frames=3)]
    return [
        _case("3-D CNN", clip_cnn(), 4, (0.05, 0.1, 0.2), 8, 32, 40, device, sigma=11.0),
        _case("r3d_18", r3d_18(), 4, (0.05, 0.1, 0.2), 8, 32, 10, device, sigma=11.0),
    ]
