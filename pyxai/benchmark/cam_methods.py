"""Benchmarks of pytorch-grad-cam's other CAMs: pyxai vs pytorch-grad-cam vs the floor.

Workloads (CPU unless --device): torchvision ResNet-18 with random weights, eval mode.

* xgradcam, hirescam, gradcam_elementwise, layercam, eigengradcam, fullgrad: full = batch 8,
  224x224; quick = batch 2, 64x64 (layer4[-1]). Floor: one forward plus the backward of the
  target scores to the layer output (FullGrad: to the input), the work every gradient CAM needs.
* eigencam, kpcacam: same sizes, no gradients; floor: one inference-mode forward.
* ablationcam: full = batch 1, 224x224, layer4[-1] (512 ablations); quick = batch 2, 32x32,
  layer2 (128 ablations per image). Floor: one clean forward + one forward per ablation in
  batches of 32 (pytorch-grad-cam's default batch_size, used by both).

Parity is checked against pytorch-grad-cam first. For the SVD-based methods pytorch-grad-cam's
``get_2d_projection`` is wrapped (in its timed call too) to apply pyxai's sign convention to
NumPy's component (the sign is arbitrary in both; :mod:`pyxai.cam.projection`).
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Callable, Iterator

import numpy as np
import torch

from pyxai.benchmark.core import Case, forward_floor, random_resnet18, register

ABLATION_BATCH = 32
SVD_USERS = ["base_cam", "eigen_cam", "eigen_grad_cam", "layer_cam", "hirescam",
             "grad_cam_elementwise", "fullgrad_cam"]


@contextlib.contextmanager
def aligned_svd_sign() -> Iterator[None]:
    """pytorch-grad-cam's ``get_2d_projection`` with pyxai's sign convention, for the block."""
    svd = importlib.import_module("pytorch_grad_cam.utils.svd_on_activations")
    original = svd.get_2d_projection

    def aligned(a: np.ndarray) -> np.ndarray:
        p = original(a)
        f = p.reshape(p.shape[0], -1)
        s = np.where(f[np.arange(len(f)), np.abs(f).argmax(1)] < 0, -1, 1).astype(p.dtype)
        return p * s.reshape(-1, *[1] * (p.ndim - 1))

    mods = [importlib.import_module(f"pytorch_grad_cam.{m}") for m in SVD_USERS]
    try:
        for m in mods:
            m.get_2d_projection = aligned
        yield
    finally:
        for m in mods:
            m.get_2d_projection = original


def _inputs(b: int, size: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 3, size, size, generator=g).to(device)


def _grad_floor(model: torch.nn.Module, layer: torch.nn.Module | None, x: torch.Tensor
                ) -> Callable[[], None]:
    """Forward + backward of the predicted-class scores to ``layer``'s output (None: the input)."""
    from pyxai.engine.hooks import capture_layers
    from pyxai.engine.view import ModelView

    def run() -> None:
        with torch.enable_grad():
            if layer is None:
                z = x.clone().requires_grad_()
                out = model(z)
                torch.autograd.grad(out.max(1).values.sum(), z)
                return
            view = ModelView(model)
            with capture_layers([layer], grad=True, view=view) as cap:
                out = view(x)
            torch.autograd.grad(out.max(1).values.sum(), cap.activations)

    return run


def _anchor(cls: str, model: torch.nn.Module, layers: list, x: torch.Tensor, **kw) -> Callable:
    def run() -> object:
        import pytorch_grad_cam
        import tqdm

        cam = getattr(pytorch_grad_cam, cls)(model, layers, **kw)
        orig = tqdm.tqdm
        tqdm.tqdm = lambda it, *a, **k: it  # AblationCAM prints a bar per image
        try:
            with aligned_svd_sign(), contextlib.redirect_stdout(None):
                return cam(x, None)
        finally:
            tqdm.tqdm = orig
            cam.activations_and_grads.release()

    return run


def _case(cls: str, quick: bool, device: str) -> Case:
    import pyxai

    model = random_resnet18().to(device)
    if cls == "AblationCAM":
        b, size = (2, 32) if quick else (1, 224)
        layer = model.layer2 if quick else model.layer4[-1]
    else:
        b, size = (2, 64) if quick else (8, 224)
        layer = model.layer4[-1]
    x = _inputs(b, size, device)
    kw = {"batch_size": ABLATION_BATCH} if cls == "AblationCAM" else {}
    layers = [] if cls == "FullGrad" else [layer]
    ours = getattr(pyxai, cls)(model, layers, **kw)
    if cls == "AblationCAM":
        from pyxai.benchmark.gradient import _channels

        k = _channels(model, layer, x)
        perturbed = forward_floor(model, x, b * k, ABLATION_BATCH)

        def floor() -> None:
            with torch.inference_mode():
                model(x)
            perturbed()

        note = f"floor = 1 clean forward + {b * k} ablated forwards in batches of {ABLATION_BATCH}"
    elif cls in ("EigenCAM", "KPCA_CAM"):
        def floor() -> None:
            with torch.inference_mode():
                model(x)

        note = "floor = one inference-mode forward"
    else:
        floor = _grad_floor(model, None if cls == "FullGrad" else layer, x)
        note = "floor = forward + backward of the scores to " + (
            "the input" if cls == "FullGrad" else "layer4[-1]")
    where = "layer2" if (cls == "AblationCAM" and quick) else "layer4[-1]"
    return Case(
        name=f"{cls} resnet18 {size}x{size} b={b} " + ("(all bias layers)" if cls == "FullGrad"
                                                      else where),
        impls={"pyxai": lambda: ours.attribute(x), "floor": floor,
               "pytorch-grad-cam": _anchor(cls, model, layers, x, **kw)},
        parity=[("pyxai", "pytorch-grad-cam", 1e-3 if cls == "KPCA_CAM" else 1e-4)],
        device=device,
        notes=note,
        prepare={"pyxai": lambda r: r[:, 0], "pytorch-grad-cam": lambda r: torch.as_tensor(r)},
    )


_NAMES = {"xgradcam": "XGradCAM", "hirescam": "HiResCAM", "gradcam_elementwise": "GradCAMElementWise",
          "layercam": "LayerCAM", "eigencam": "EigenCAM", "eigengradcam": "EigenGradCAM",
          "kpcacam": "KPCA_CAM", "ablationcam": "AblationCAM", "fullgrad": "FullGrad"}


def _register(name: str, cls: str) -> None:
    @register(name)
    def cases(quick: bool, device: str) -> list[Case]:
        return [_case(cls, quick, device)]


for _name, _cls in _NAMES.items():
    _register(_name, _cls)
