"""masks ops on CUDA: native CUDA == reference on CUDA == native CPU."""

from __future__ import annotations

import math

import pytest
import torch

from pyxai import ops
from pyxai.ops.masks import MODES
from tests.conftest import native_or_skip

DEV = "cuda"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masks_cuda_parity(rng, mode, dtype):
    native_or_skip(DEV)
    n, b, c, size, canvas = 301, 3, 3, (57, 43), (64, 50)
    grids = torch.rand(n, 7, 6, generator=rng, dtype=dtype)
    off = torch.stack([torch.randint(0, canvas[0] - size[0] + 1, (n,), generator=rng),
                       torch.randint(0, canvas[1] - size[1] + 1, (n,), generator=rng)], 1)
    x = torch.randn(b, c, *size, generator=rng, dtype=dtype)
    w = torch.randn(n, b, generator=rng, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for fn, args in [
        (ops.upsample_masks, lambda d: (grids.to(d), size, off.to(d), canvas, mode)),
        (ops.upsample_blend, lambda d: (x.to(d), grids.to(d), off.to(d), 0.25, canvas, mode)),
    ]:
        cpu = fn(*args("cpu"), backend="native")
        gpu = fn(*args(DEV), backend="native")
        ref = fn(*args(DEV), backend="reference")
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol, atol=tol)
        torch.testing.assert_close(gpu, ref, rtol=tol, atol=tol)
    cpu = ops.weighted_mask_sum(grids, w, size, off, canvas, mode, backend="native")
    gpu = ops.weighted_mask_sum(grids.to(DEV), w.to(DEV), size, off.to(DEV), canvas, mode,
                                backend="native")
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol * 10, atol=tol * 10 * math.sqrt(n))


def test_masks_cuda_opcheck():
    native_or_skip(DEV)
    g = torch.rand(3, 4, 5, device=DEV)
    off = torch.tensor([[0, 1], [2, 0], [1, 1]], device=DEV)
    torch.library.opcheck(torch.ops.pyxai.upsample_masks.default,
                          (g, off, [10, 12], [12, 13], "bilinear_reflect"))


def _grads(fn, inputs, device, backend):
    leaves = tuple(t.detach().to(device).requires_grad_(True) for t in inputs)
    out = fn(backend, *leaves)
    probe = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=device).reshape(out.shape)
    return [g.cpu() for g in torch.autograd.grad(out, leaves, probe)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masks_backward_cuda_parity(rng, mode, dtype):
    """Gradients of every masks op and the adjoint kernel: native CUDA == native CPU == reference
    on CUDA; the adjoint kernel is deterministic on CUDA too (no atomics)."""
    native_or_skip(DEV)
    n, b, c, size, canvas = 37, 2, 3, (33, 29), (40, 35)
    grids = torch.rand(n, 6, 5, generator=rng, dtype=dtype)
    off = torch.stack([torch.randint(0, canvas[0] - size[0] + 1, (n,), generator=rng),
                       torch.randint(0, canvas[1] - size[1] + 1, (n,), generator=rng)], 1)
    x = torch.randn(b, c, *size, generator=rng, dtype=dtype)
    base = torch.randn(1, c, 1, 1, generator=rng, dtype=dtype)
    w = torch.randn(n, b, generator=rng, dtype=dtype)
    gm = torch.randn(n, *size, generator=rng, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-11

    def o(t):
        return off.to(t.device)

    cases = [
        (lambda be, g: ops.upsample_masks(g, size, o(g), canvas, mode, be), (grids,)),
        (lambda be, x_, g, b_: ops.upsample_blend(x_, g, o(g), b_, canvas, mode, be),
         (x, grids, base)),
        (lambda be, g, w_: ops.weighted_mask_sum(g, w_, size, o(g), canvas, mode, be), (grids, w)),
        (lambda be, g: ops.upsample_masks_backward(g, (6, 5), o(g), canvas, mode, be), (gm,)),
    ]
    for fn, inputs in cases:
        cpu = _grads(fn, inputs, "cpu", "native")
        gpu = _grads(fn, inputs, DEV, "native")
        ref = _grads(fn, inputs, DEV, "reference")
        for a, g_, r in zip(cpu, gpu, ref):
            torch.testing.assert_close(g_, a, rtol=tol, atol=tol)
            torch.testing.assert_close(g_, r, rtol=tol, atol=tol)
    once = ops.upsample_masks_backward(gm.to(DEV), (6, 5), off.to(DEV), canvas, mode)
    again = ops.upsample_masks_backward(gm.to(DEV), (6, 5), off.to(DEV), canvas, mode)
    assert torch.equal(once, again)


def test_masks_backward_cuda_opcheck_and_gradcheck():
    native_or_skip(DEV)
    off = torch.tensor([[0, 1], [2, 0], [1, 1]], device=DEV)
    for mode in MODES:
        g = torch.rand(3, 4, 5, device=DEV, dtype=torch.float64, requires_grad=True)
        gm = torch.rand(3, 10, 12, device=DEV, dtype=torch.float64, requires_grad=True)
        x = torch.rand(2, 2, 10, 12, device=DEV, dtype=torch.float64, requires_grad=True)
        torch.library.opcheck(torch.ops.pyxai.upsample_masks_backward.default,
                              (gm, off, [4, 5], [12, 13], mode))
        torch.library.opcheck(torch.ops.pyxai.upsample_blend.default,
                              (x, g, off, torch.zeros_like(x), [12, 13], mode))
        assert torch.autograd.gradgradcheck(
            lambda g_, x_, m=mode: ops.upsample_blend(x_, g_, off, 0.5, (12, 13), m, "native"),
            (g, x))


def test_validate_false_makes_no_host_sync():
    """With validate=False the per-chunk ops never synchronise with the device."""
    native_or_skip(DEV)
    g = torch.rand(5, 7, 6, device=DEV)
    off = torch.randint(0, 4, (5, 2), device=DEV)
    x = torch.randn(2, 3, 21, 19, device=DEV)
    w = torch.randn(5, 2, device=DEV)
    base = torch.zeros(1, 3, 1, 1, device=DEV)
    ops.check_grids(g, off, (21, 19), (24, 22), "bilinear")  # once per call: may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for mode in MODES:
            for backend in ("native", "reference"):
                ops.upsample_blend(x, g, off, base, (24, 22), mode, backend, validate=False)
                ops.weighted_mask_sum(g, w, (21, 19), off, (24, 22), mode, backend,
                                      validate=False)
                ops.upsample_masks(g, (21, 19), off, (24, 22), mode, backend, validate=False)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("geometry", [((64, 64), 7, 21), ((37, 50), 5, 9.5), ((17, 23), 3, 5.5)])
def test_smooth_masks_cuda_parity(rng, dtype, geometry):
    """smooth_masks forward and backward: native CUDA == reference on CUDA == native CPU."""
    from pyxai.perturbation.extremal import MaskGenerator

    native_or_skip(DEV)
    size, step, sigma = geometry
    gen = MaskGenerator(size, step, sigma, torch.device("cpu"))
    p = torch.rand(5, *gen.shape_in, generator=rng, dtype=torch.float64).to(dtype)
    w = gen.weight.to(dtype)
    grad = torch.randn(5, *gen.shape_out, generator=rng, dtype=torch.float64).to(dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    outs, grads = {}, {}
    for key, dev, backend in [("cpu", "cpu", "native"), ("cuda", DEV, "native"),
                              ("ref", DEV, "reference")]:
        outs[key] = ops.smooth_masks(p.to(dev), w.to(dev), gen.padding, step, backend=backend).cpu()
        grads[key] = ops.smooth_masks_backward(grad.to(dev), p.to(dev), w.to(dev), gen.padding,
                                               step, backend=backend).cpu()
    scale = grads["ref"].abs().max().item()
    for key in ("cuda", "ref"):
        torch.testing.assert_close(outs[key], outs["cpu"], atol=tol, rtol=0)
        torch.testing.assert_close(grads[key], grads["cpu"], atol=10 * tol * scale, rtol=0)
    # deterministic: the same bits twice (no atomics)
    again = ops.smooth_masks_backward(grad.to(DEV), p.to(DEV), w.to(DEV), gen.padding, step,
                                      backend="native").cpu()
    assert torch.equal(again, grads["cuda"])
