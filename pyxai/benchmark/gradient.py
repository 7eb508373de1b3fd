"""Gradient and CAM benchmarks: pyxai vs the anchors on the same model and batch, vs the floor.

Workloads (CPU unless --device): torchvision ResNet-18 with random weights, eval mode.

* gradcam / gradcampp: full = batch 8, 224x224, layer4[-1]; quick = batch 2, 64x64. Floor: one
  plain forward (inference mode) of the batch. Anchors: pytorch-grad-cam (parity checked),
  Captum ``LayerGradCam`` (timed only: raw layer-resolution map, no normalisation/resizing).
* scorecam / sidu: full = batch 1, 224x224, layer4 (512 masks; batch 8 would be 4096 forwards per
  run); quick = batch 2, 32x32, layer2 (128 masks). Floor: the bare forwards (one clean forward +
  one per mask per image, at the same batch size of 64). Score-CAM anchor: pytorch-grad-cam
  (``batch_size = 64``, parity checked); SIDU has no anchor (reference backend, parity checked).
* integrated_gradients: n_steps 32 (quick 8), internal_batch_size 64; smoothgrad:
  NoiseTunnel(Saliency) with 16 samples (quick 4), nt_samples_batch_size 8. Floor: forward +
  input-gradient backward of the same rows in the same chunks. Anchor: Captum
  (parity checked; same RNG seed for the noise).
"""

from __future__ import annotations

from typing import Callable

import torch

from pyxai.benchmark.core import Case, forward_floor, random_resnet18, register

BATCH = 64  # perturbation batch size shared by every implementation


def _model(device: str) -> torch.nn.Module:
    return random_resnet18().to(device)


def _inputs(b: int, size: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 3, size, size, generator=g).to(device)


def _forward_floor(model: torch.nn.Module, x: torch.Tensor, rows: int, batch: int) -> Callable:
    perturbed = forward_floor(model, x, rows, batch)

    def run() -> None:
        with torch.inference_mode():
            model(x)  # the clean forward
        perturbed()

    return run


def _grad_floor(model: torch.nn.Module, x: torch.Tensor, rows: int, batch: int) -> Callable:
    chunk = x[:1].expand(min(batch, rows), *x.shape[1:]).contiguous()

    def run() -> None:
        for i in range(0, rows, batch):
            z = chunk[: min(batch, rows - i)].clone().requires_grad_()
            with torch.enable_grad():
                torch.autograd.grad(model(z)[:, 0].sum(), z)

    return run


def _cam_case(cls: str, quick: bool, device: str) -> Case:
    import pyxai

    b, size = (2, 64) if quick else (8, 224)
    model = _model(device)
    x = _inputs(b, size, device)
    layer = model.layer4[-1]
    ours = getattr(pyxai, cls)(model, [layer])
    ref = getattr(pyxai, cls)(model, [layer], backend="reference")

    def floor() -> None:
        with torch.inference_mode():
            model(x)

    def anchor() -> object:
        import pytorch_grad_cam

        cam = getattr(pytorch_grad_cam, cls)(model, [layer])
        try:
            return cam(x, None)
        finally:
            cam.activations_and_grads.release()

    def captum() -> torch.Tensor:
        from captum.attr import LayerGradCam

        with torch.no_grad():
            t = model(x).argmax(1)
        return LayerGradCam(model, layer).attribute(x, target=t)

    impls = {"pyxai": lambda: ours.attribute(x), "reference": lambda: ref.attribute(x),
             "floor": floor, "pytorch-grad-cam": anchor}
    if cls == "GradCAM":
        impls["captum"] = captum
    return Case(
        name=f"resnet18 {size}x{size} b={b} layer4",
        impls=impls,
        parity=[("pyxai", "pytorch-grad-cam", 1e-4), ("reference", "pytorch-grad-cam", 1e-4)],
        device=device,
        notes="floor = one plain forward of the batch (inference mode)",
        prepare={"pyxai": lambda r: r[:, 0], "reference": lambda r: r[:, 0],
                 "pytorch-grad-cam": lambda r: torch.as_tensor(r)},
    )


@register("gradcam")
def gradcam_cases(quick: bool, device: str) -> list[Case]:
    return [_cam_case("GradCAM", quick, device)]


@register("gradcampp")
def gradcampp_cases(quick: bool, device: str) -> list[Case]:
    return [_cam_case("GradCAMPlusPlus", quick, device)]


def _perturb_setup(quick: bool, device: str):
    b, size = (2, 32) if quick else (1, 224)
    model = _model(device)
    x = _inputs(b, size, device)
    layer = model.layer2 if quick else model.layer4
    return model, x, layer, _channels(model, layer, x), b, size


def _channels(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor) -> int:
    from pyxai.engine.hooks import capture_layers
    from pyxai.engine.view import ModelView

    view = ModelView(model)  # the benchmark's model is never hooked either
    with torch.inference_mode(), capture_layers([layer], grad=False, view=view) as cap:
        view(x[:1])
    return cap.check([layer])[0].shape[1]


@register("scorecam")
def scorecam_cases(quick: bool, device: str) -> list[Case]:
    import pyxai

    model, x, layer, k, b, size = _perturb_setup(quick, device)
    ours = pyxai.ScoreCAM(model, [layer], batch_size=BATCH)
    ref = pyxai.ScoreCAM(model, [layer], batch_size=BATCH, backend="reference")

    def anchor() -> object:
        import pytorch_grad_cam

        cam = pytorch_grad_cam.ScoreCAM(model, [layer])
        cam.batch_size = BATCH
        try:
            import tqdm  # pytorch-grad-cam prints a bar per image: silence it

            orig = tqdm.tqdm
            tqdm.tqdm = lambda it, *a, **kw: it
            pytorch_grad_cam.score_cam.tqdm.tqdm = tqdm.tqdm
            return cam(x, None)
        finally:
            tqdm.tqdm = orig
            pytorch_grad_cam.score_cam.tqdm.tqdm = orig
            cam.activations_and_grads.release()

    return [Case(
        name=f"resnet18 {size}x{size} b={b}, {k} masks/img",
        impls={"pyxai": lambda: ours.attribute(x), "reference": lambda: ref.attribute(x),
               "floor": _forward_floor(model, x, b * k, BATCH), "pytorch-grad-cam": anchor},
        parity=[("pyxai", "pytorch-grad-cam", 1e-4), ("reference", "pytorch-grad-cam", 1e-4)],
        device=device,
        notes=f"floor = 1 clean forward + {b * k} masked forwards in batches of {BATCH}",
        prepare={"pyxai": lambda r: r[:, 0], "reference": lambda r: r[:, 0],
                 "pytorch-grad-cam": lambda r: torch.as_tensor(r)},
    )]


@register("sidu")
def sidu_cases(quick: bool, device: str) -> list[Case]:
    import pyxai

    model, x, layer, k, b, size = _perturb_setup(quick, device)
    ours = pyxai.SIDU(model, layer, softmax=True, batch_size=BATCH)
    ref = pyxai.SIDU(model, layer, softmax=True, batch_size=BATCH, backend="reference")
    return [Case(
        name=f"resnet18 {size}x{size} b={b}, {k} masks/img",
        impls={"pyxai": lambda: ours.attribute(x), "reference": lambda: ref.attribute(x),
               "floor": _forward_floor(model, x, b * k, BATCH)},
        parity=[("pyxai", "reference", 1e-4)],
        device=device,
        notes=f"floor = 1 clean forward + {b * k} masked forwards in batches of {BATCH}; "
              "no anchor library has SIDU",
    )]


def _grad_setup(quick: bool, device: str):
    b, size = (2, 64) if quick else (8, 224)
    return _model(device), _inputs(b, size, device), b, size


@register("integrated_gradients")
def ig_cases(quick: bool, device: str) -> list[Case]:
    import pyxai

    model, x, b, size = _grad_setup(quick, device)
    steps, ibs = (8, 16) if quick else (32, 64)
    t = 3
    kw = dict(target=t, n_steps=steps, internal_batch_size=ibs)

    def captum() -> torch.Tensor:
        from captum.attr import IntegratedGradients

        return IntegratedGradients(model).attribute(x, **kw)

    return [Case(
        name=f"resnet18 {size}x{size} b={b}, {steps} steps",
        impls={"pyxai": lambda: pyxai.IntegratedGradients(model).attribute(x, **kw),
               "floor": _grad_floor(model, x, b * steps, (ibs // b) * b), "captum": captum},
        parity=[("pyxai", "captum", 1e-4)],
        device=device,
        notes=f"floor = forward + input-gradient backward of {b * steps} rows in chunks of "
              f"{(ibs // b) * b}",
    )]


@register("smoothgrad")
def smoothgrad_cases(quick: bool, device: str) -> list[Case]:
    import pyxai

    model, x, b, size = _grad_setup(quick, device)
    n, per = (4, 2) if quick else (16, 8)
    kw = dict(nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=per, stdevs=0.2, target=3)

    def ours() -> torch.Tensor:
        torch.manual_seed(0)
        return pyxai.NoiseTunnel(pyxai.Saliency(model)).attribute(x, **kw)

    def captum() -> torch.Tensor:
        from captum.attr import NoiseTunnel, Saliency

        torch.manual_seed(0)
        return NoiseTunnel(Saliency(model)).attribute(x, **kw)

    return [Case(
        name=f"resnet18 {size}x{size} b={b}, {n} samples",
        impls={"pyxai": ours, "floor": _grad_floor(model, x, b * n, b * per), "captum": captum},
        parity=[("pyxai", "captum", 1e-4)],
        device=device,
        notes=f"floor = forward + input-gradient backward of {b * n} rows in chunks of {b * per}",
    )]

