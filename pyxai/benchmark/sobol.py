"""Sobol attribution benchmarks: explainer vs bare forwards (overhead), vs the reference backend,
vs the original algorithm (every mask materialised and upsampled up front, then batched).

Workloads: the demo CNN at 64x64 and ResNet-18 (random weights) at 224x224, one image, grid 8 and 11,
nb_design 32 and 64 (quick: demo CNN, grid 4, nb_design 8). Every implementation uses the
unscrambled Sobol' design (the original's), Jansen, inpainting and the same batch size, so the
parity checks compare identical computations.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from pyxai.benchmark.core import Case, demo_model, forward_floor, random_resnet18, register

BATCH = 64


def original(
    model: torch.nn.Module, x: torch.Tensor, target: int, grid: int, nb_design: int, batch: int
) -> Callable[[], torch.Tensor]:
    """The original algorithm (one image): unscrambled Sobol' design, all (d + 2) N masks built and
    upsampled (nearest) up front, perturbed inputs batched, Jansen in NumPy float64, bicubic
    resize (cv2 INTER_CUBIC when installed, else the equivalent F.interpolate)."""
    d = grid * grid
    h, w = x.shape[-2:]

    def run() -> torch.Tensor:
        pts = torch.quasirandom.SobolEngine(2 * d, scramble=False).draw(nb_design).numpy()
        a, b = pts[:, :d], pts[:, d:]
        cs = []
        for i in range(d):
            c = a.copy()
            c[:, i] = b[:, i]
            cs.append(c)
        design = np.concatenate([a, b] + cs).reshape(-1, 1, grid, grid).astype(np.float32)
        masks = F.interpolate(torch.from_numpy(design), size=(h, w))  # all masks, full size
        outs = []
        with torch.inference_mode():
            for m in masks.split(batch):
                outs.append(model(x * m)[:, target])
        y = torch.cat(outs).double().numpy()
        ya, yc = y[:nb_design], y[2 * nb_design :].reshape(d, nb_design)
        f0 = ya.mean()
        var = ((ya - f0) ** 2).sum() / (nb_design - 1)
        sti = np.array([((ya - yc[i]) ** 2).sum() / (2 * nb_design * var) for i in range(d)])
        sti = sti.reshape(grid, grid).astype(np.float32)
        try:
            import cv2

            return torch.from_numpy(cv2.resize(sti, (w, h), interpolation=cv2.INTER_CUBIC))
        except ImportError:
            return F.interpolate(torch.from_numpy(sti)[None, None], size=(h, w), mode="bicubic",
                                 align_corners=False)[0, 0]

    return run


def _case(label: str, model: torch.nn.Module, size: int, grid: int, nb_design: int,
          device: str) -> Case:
    import pyxai

    model = model.to(device)
    torch.manual_seed(1)
    x = torch.rand(1, 3, size, size, device=device)
    with torch.inference_mode():
        target = int(model(x).argmax(1))
    rows = nb_design * (grid * grid + 2)

    def explainer(backend: str) -> Callable[[], torch.Tensor]:
        e = pyxai.SobolAttribution(model, grid_size=grid, nb_design=nb_design, sampler="sobol",
                                   batch_size=BATCH, backend=backend)
        return lambda: e.attribute(x, target)[0, 0]

    return Case(
        name=f"{label} {size}x{size} g={grid} N={nb_design}",
        impls={
            "pyxai": explainer("auto"),
            "reference": explainer("reference"),
            "floor": forward_floor(model, x, rows, BATCH),
            "original": original(model, x, target, grid, nb_design, BATCH),
        },
        parity=[("reference", "pyxai", 1e-4), ("original", "pyxai", 1e-4)],
        device=device,
        notes=f"{rows} forwards (batch {BATCH}), sampler sobol (unscrambled), jansen, inpainting",
    )


@register("sobol")
def cases(quick: bool, device: str) -> list[Case]:
    """Sobol workloads (see the module docstring)."""
    if quick:
        return [_case("demo_cnn", demo_model(), 64, 4, 8, device)]
    out = []
    for grid in (8, 11):
        for nb in (32, 64):
            out.append(_case("demo_cnn", demo_model(), 64, grid, nb, device))
    try:
        resnet = random_resnet18()
    except ImportError:
        return out
    for grid in (8, 11):
        for nb in (32, 64):
            out.append(_case("resnet18", resnet, 224, grid, nb, device))
    return out
