"""Perturbation benchmarks: RISE, Occlusion, FeatureAblation (and adaptive RISE's savings).

Workloads (CPU, random-weight ResNet-18 and the demo CNN; batch 64 model inputs per forward for
everyone, so every implementation runs the same forwards):

* ``rise``: pyxai (native), the reference backend, the floor (the same number of bare forwards at
  the same batch size, on a pre-made chunk), and the *original* algorithm (eclique/RISE: every mask
  upsampled one at a time with skimage ``resize(order=1, mode='reflect')``, all N masks held in
  memory, ``S = P^T M / N / p``) on the very same grids and shifts, so parity is checked exactly.
* ``occlusion`` / ``feature_ablation``: pyxai, the reference backend, the floor (1 + number of
  perturbations x B forward rows at ``perturbations_per_eval * B`` rows per forward) and Captum's
  class with the same arguments.
* ``rise_adaptive``: the adaptive mode (tol 0.05, one check per 250 masks) on the six demo images
  with the trained demo model, one image at a time, vs the fixed 8,000-mask run; the notes give the
  masks used per image and the correlation with the 8,000-mask map (target >= 0.98).

quick=True: small workloads (a few hundred masks, tens of windows) so that the whole bench runs in
about a minute; quick=False: the shapes of the performance note (ResNet-18 at 224x224 with 8,000
masks takes minutes on 2 cores).
"""

from __future__ import annotations

import math

import torch

from pyxai.benchmark.core import Case, demo_model, forward_floor, random_resnet18, register

BATCH = 64


def _inputs(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g)


# ------------------------------------------------------------------------------------------------
# RISE


def _rise_original(model, x, rise, target) -> torch.Tensor:
    """eclique/RISE: all masks upsampled one by one with skimage and held in memory, then S=P^T M."""
    from skimage.transform import resize

    h, w = x.shape[-2:]
    grids, offsets, canvas = rise.sample_masks(h, w)
    n = grids.shape[0]
    masks = torch.empty(n, 1, h, w)
    for i in range(n):
        up = resize(grids[i].numpy(), canvas, order=1, mode="reflect", anti_aliasing=False)
        oy, ox = offsets[i].tolist()
        masks[i, 0] = torch.from_numpy(up[oy : oy + h, ox : ox + w].copy())
    b = x.shape[0]
    sal = torch.zeros(b, h * w)
    with torch.inference_mode():
        for bi in range(b):  # RISE.forward works per image
            preds = []
            for i in range(0, n, BATCH):
                preds.append(model(masks[i : i + BATCH] * x[bi : bi + 1])[:, target[bi]])
            p_ = torch.cat(preds)
            sal[bi] = p_ @ masks.reshape(n, h * w)
    return (sal / n / rise.p).reshape(b, 1, h, w)


def _rise_case(name: str, model, x, n_masks: int, grid: int, quick: bool) -> Case:
    import pyxai

    with torch.inference_mode():
        target = model(x).argmax(1)
    rows = n_masks * x.shape[0]
    kw = dict(n_masks=n_masks, grid_size=grid, p=0.5, batch_size=BATCH, seed=0)
    rise = pyxai.RISE(model, **kw)
    impls = {
        "pyxai": lambda: rise.attribute(x, target=target),
        "reference": lambda: pyxai.RISE(model, backend="reference", **kw).attribute(x, target=target),
        "floor": forward_floor(model, x, rows + x.shape[0], BATCH),
    }
    try:
        import skimage  # noqa: F401

        impls["original"] = lambda: _rise_original(model, x, rise, target.tolist())
    except ImportError:
        pass
    return Case(
        name=name, impls=impls,
        parity=[("reference", "pyxai", 1e-4), ("original", "pyxai", 1e-4)],
        notes=f"{rows} forward rows at batch {BATCH}; original holds {n_masks} masks "
              f"({n_masks * x.shape[-1] * x.shape[-2] * 4 / 2**20:.0f} MB)",
    )


@register("rise")
def rise_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    if quick:
        return [
            _rise_case("demo_cnn 64x64 b=1, 128 masks", demo_model(), _inputs(1, 64), 128, 7, quick),
            _rise_case("resnet18 64x64 b=1, 64 masks", random_resnet18(), _inputs(1, 64), 64, 7, quick),
        ]
    return [
        _rise_case("demo_cnn 64x64 b=1, 4000 masks", demo_model(), _inputs(1, 64), 4000, 7, quick),
        _rise_case("resnet18 224x224 b=1, 8000 masks", random_resnet18(), _inputs(1, 224), 8000, 7,
                   quick),
    ]


@register("rise_adaptive")
def rise_adaptive_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    """The adaptive mode, one demo image at a time, vs the fixed N-mask map of the same images."""
    import pyxai

    model = demo_model()
    full = 256 if quick else 8000
    check_every = 128 if quick else 250
    tol = 0.35 if quick else 0.05  # quick: only exercises the path (256 masks never reach 0.05)
    n_img = 1 if quick else len(pyxai.data.SHAPE_CLASSES)
    x, labels, _ = pyxai.data.shapes(n_img, seed=777)  # trained model on its own kind of images
    kw = dict(n_masks=full, batch_size=BATCH, seed=0)
    used: list[int] = []

    def adaptive_counted() -> torch.Tensor:
        ada = pyxai.RISE(model, adaptive=True, tol=tol, check_every=check_every, **kw)
        maps, counts = [], []
        for i in range(n_img):
            m, n = ada.attribute(x[i : i + 1], target=labels[i : i + 1], return_n_masks=True)
            maps.append(m)
            counts.append(n)
        used[:] = counts
        return torch.cat(maps)

    def floor() -> None:  # the forwards the adaptive runs made (known after its first run)
        forward_floor(model, x, sum(used) + n_img, BATCH)()

    def summarize(results: dict) -> str:
        ada, fixed = results["pyxai"].flatten(1), results[f"fixed_{full}"].flatten(1)
        corr = [float(torch.corrcoef(torch.stack([a, f]))[0, 1]) for a, f in zip(ada, fixed)]
        return (f"masks used per image {used} (mean {sum(used) / n_img:.0f} of {full}: "
                f"{full * n_img / sum(used):.1f}x fewer forwards); correlation with the {full}-mask "
                f"map per image {[round(c, 4) for c in corr]} (min {min(corr):.4f})")

    return [Case(
        name=f"demo_cnn 64x64, {n_img} demo images one by one, tol={tol}",
        impls={
            "pyxai": adaptive_counted,
            f"fixed_{full}": lambda: pyxai.RISE(model, **kw).attribute(x, target=labels),
            "floor": floor,
        },
        notes=f"check_every {check_every}, logits of the trained demo model, label as target; the floor is "
              f"the adaptive runs' forwards; fixed_{full} = {full * n_img} forward rows",
        summarize=summarize,
    )]


# ------------------------------------------------------------------------------------------------
# Occlusion and FeatureAblation


def _ablation_case(name, model, x, method: str, kw: dict, n_pert: int) -> Case:
    import pyxai

    cls = getattr(pyxai, method)
    b = x.shape[0]
    ppe = kw["perturbations_per_eval"]
    impls = {
        "pyxai": lambda: cls(model).attribute(x, **kw),
        "reference": lambda: cls(model, backend="reference").attribute(x, **kw),
        "floor": forward_floor(model, x, b + n_pert * b, ppe * b),
    }

    def captum() -> torch.Tensor:
        import captum.attr as ca

        return getattr(ca, method)(model).attribute(x, **kw)

    impls["captum"] = captum
    return Case(
        name=name, impls=impls,
        parity=[("reference", "pyxai", 1e-5), ("captum", "pyxai", 1e-5)],
        notes=f"{n_pert} perturbations x b={b}: {b + n_pert * b} forward rows at batch {ppe * b}",
    )


def _occ(name, model, x, win: int, stride: int) -> Case:
    b = x.shape[0]
    kw = dict(sliding_window_shapes=(3, win, win), strides=(3, stride, stride), target=1,
              perturbations_per_eval=BATCH // b)
    per = math.ceil((x.shape[-1] - win) / stride) + 1
    return _ablation_case(f"{name} {win}/{stride}", model, x, "Occlusion", kw, per * per)


def _fa(name, model, x, cell: int) -> Case:
    b, size = x.shape[0], x.shape[-1]
    per = math.ceil(size / cell)
    idx = torch.arange(size) // cell
    mask = (idx[:, None] * per + idx[None, :])[None, None]
    kw = dict(feature_mask=mask, target=1, perturbations_per_eval=BATCH // b)
    return _ablation_case(f"{name} cells {cell}", model, x, "FeatureAblation", kw, per * per)


@register("occlusion")
def occlusion_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    if quick:
        return [_occ("demo_cnn 64x64 b=2 win/stride", demo_model(), _inputs(2, 64), 16, 8),
                _occ("resnet18 64x64 b=2 win/stride", random_resnet18(), _inputs(2, 64), 24, 20)]
    return [_occ("demo_cnn 64x64 b=4 win/stride", demo_model(), _inputs(4, 64), 8, 4),
            _occ("resnet18 224x224 b=4 win/stride", random_resnet18(), _inputs(4, 224), 32, 16)]


@register("feature_ablation")
def feature_ablation_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    if quick:
        return [_fa("demo_cnn 64x64 b=2", demo_model(), _inputs(2, 64), 16),
                _fa("resnet18 64x64 b=2", random_resnet18(), _inputs(2, 64), 22)]
    return [_fa("demo_cnn 64x64 b=4", demo_model(), _inputs(4, 64), 4),
            _fa("resnet18 224x224 b=4", random_resnet18(), _inputs(4, 224), 16)]
