"""Optimisation-based masks: extremal perturbation and meaningful perturbation.

Workloads (CPU by default, the bundled demo CNN at 64 x 64 on its own kind of images, the label as
target):

* ``extremal``: B images x A areas as one batched optimisation (pyxai), the same on the reference
  backend of the ``pyxai.ops`` calls, the floor (``max_iter`` bare forwards + input-gradient
  backwards at ``B * A`` model inputs), and TorchRay 1.0.0.2 (when installed) one image and one
  area at a time, as its API works (on a deep copy: it writes ``requires_grad=False`` into the
  model). Jitter on: TorchRay's jitter is a deterministic flip, so parity is checked.
  ``pyxai NHWC`` is the same with ``channels_last=True`` (faster convolutions), ``pyxai
  NHWC+fold`` also with ``fold_batch_norm=True`` (the BatchNorms folded into the convolutions
  of a view of the model); the floor stays the model as it is, in the default layout, as
  TorchRay calls it.
* ``meaningful``: pyxai (also ``pyxai NHWC`` and ``pyxai NHWC+fold``), the reference backend, and
  the floor (``iterations`` forwards + backwards at B inputs).

quick=True: 1 image x 2 areas, 6 steps (parity and the shape of the costs; 2 x 2 x 20 took the
longest of all quick workloads in a loaded `pyxai bench --quick`);
quick=False: the issue's workload, 8 images x 3 areas x 800 steps (TorchRay takes many minutes).
"""

from __future__ import annotations

import copy

import torch

from pyxai.benchmark.core import Case, demo_model, mean_error, register


def _grad_floor(model: torch.nn.Module, x: torch.Tensor, rows: int, steps: int):
    """``steps`` forwards + backwards to the input of ``rows`` model inputs (made once)."""
    chunk = x[:1].expand(rows, *x.shape[1:]).contiguous()

    def run() -> None:
        for _ in range(steps):
            xi = chunk.detach().requires_grad_(True)
            torch.autograd.grad(model(xi)[:, 0].sum(), xi)

    return run


def _demo(n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    import pyxai

    x, labels, _ = pyxai.data.shapes(n, seed=777)
    return x.to(device), labels.to(device)


@register("extremal")
def extremal_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    import pyxai

    model = demo_model().to(device)
    n_img, areas, steps = (1, (0.05, 0.2), 6) if quick else (8, (0.05, 0.1, 0.2), 800)
    x, labels = _demo(n_img, device)
    kw = dict(areas=areas, max_iter=steps)
    impls = {
        "pyxai": lambda: pyxai.ExtremalPerturbation(model, **kw).attribute(x, labels),
        "pyxai NHWC": lambda: pyxai.ExtremalPerturbation(
            model, channels_last=True, **kw).attribute(x, labels),
        "pyxai NHWC+fold": lambda: pyxai.ExtremalPerturbation(
            model, channels_last=True, fold_batch_norm=True, **kw).attribute(x, labels),
        "reference": lambda: pyxai.ExtremalPerturbation(model, backend="reference", **kw
                                                        ).attribute(x, labels),
        "floor": _grad_floor(model, x, n_img * len(areas), steps),
    }
    try:
        from torchray.attribution.extremal_perturbation import extremal_perturbation

        def torchray() -> torch.Tensor:
            out = torch.empty(n_img, len(areas), 1, *x.shape[-2:], device=x.device)
            for b in range(n_img):
                for i, a in enumerate(areas):
                    m, _ = extremal_perturbation(copy.deepcopy(model), x[b : b + 1], int(labels[b]),
                                                 areas=[a], max_iter=steps)
                    out[b, i] = m[0]
            return out

        impls["torchray"] = torchray
    except ImportError:
        pass
    return [Case(
        name=f"demo_cnn 64x64, {n_img} images x {len(areas)} areas x {steps} steps",
        impls=impls,
        # reference (torch arithmetic in the mask generator, TorchRay's) vs TorchRay: only the
        # batched forwards round differently. pyxai (the native smooth_masks kernel) differs from
        # the reference in the last bit of the masks, and the optimisation amplifies any 1-ulp
        # noise of the masks (sort order at the area threshold, pyramid levels): the mean error
        # is compared, and it is the same as 1-ulp random noise added to the reference's masks
        # gives (measured: 3e-3 after 100 steps; 6e-2 after 300)
        parity=[("reference", "torchray", 3e-2), ("pyxai", "reference", 0.1, mean_error),
                ("pyxai NHWC", "reference", 0.1, mean_error),
                ("pyxai NHWC+fold", "reference", 0.1, mean_error)],
        device=device,
        notes=f"step 7, sigma 21, blur, jitter; pyxai NHWC = the channels_last=True "
              f"option, +fold = also fold_batch_norm=True (the floor and TorchRay run the model "
              f"as it is, in the default layout); floor = {steps} "
              f"forward+backward passes of "
              f"{n_img * len(areas)} inputs; torchray = {n_img * len(areas)} calls of one image "
              f"and one area",
    )]


@register("meaningful")
def meaningful_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    import pyxai

    model = demo_model().to(device)
    n_img, steps = (2, 50) if quick else (8, 300)
    x, labels = _demo(n_img, device)
    kw = dict(mask_size=8, iterations=steps)
    return [Case(
        name=f"demo_cnn 64x64, {n_img} images x {steps} steps, mask 8x8",
        impls={
            "pyxai": lambda: pyxai.MeaningfulPerturbation(model, **kw).attribute(x, labels),
            "pyxai NHWC": lambda: pyxai.MeaningfulPerturbation(
                model, channels_last=True, **kw).attribute(x, labels),
            "pyxai NHWC+fold": lambda: pyxai.MeaningfulPerturbation(
                model, channels_last=True, fold_batch_norm=True, **kw).attribute(x, labels),
            "reference": lambda: pyxai.MeaningfulPerturbation(model, backend="reference", **kw
                                                              ).attribute(x, labels),
            "floor": _grad_floor(model, x, n_img, steps),
        },
        # NHWC convolutions round differently, and the 8-bit mask turns that into levels that
        # the optimisation carries on: the mean error grows with the steps (measured 2.0e-3 after
        # 50 steps, 8.3e-3 after 150; max 0.02 / 0.10), so it is compared, not the max
        parity=[("reference", "pyxai", 1e-2), ("pyxai NHWC", "pyxai", 0.05, mean_error),
                ("pyxai NHWC+fold", "pyxai", 0.05, mean_error)],
        device=device,
        notes=f"pyxai NHWC = the channels_last=True option, +fold = also fold_batch_norm=True "
              f"(the floor runs the model as it is, in the default layout); "
              f"floor = {steps} forward+backward passes of {n_img} inputs; the 8-bit mask lets a "
              "rounding difference flip a level, hence the parity tolerance",
    )]
