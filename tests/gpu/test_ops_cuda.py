"""occlusion, sobol and metrics ops on CUDA: native CUDA == native CPU == reference on CUDA."""

from __future__ import annotations

import pytest
import torch

from pyxai.ops import metrics, occlusion, sobol
from tests.conftest import native_or_skip

DEV = "cuda"


def _three_ways(fn, *args, tol, **kw):
    """Run ``fn`` natively on CPU and CUDA and by reference on CUDA; compare all three."""
    native_or_skip(DEV)
    cpu = fn(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args], backend="native", **kw)
    gpu = fn(*[a.to(DEV) if isinstance(a, torch.Tensor) else a for a in args], backend="native", **kw)
    ref = fn(*[a.to(DEV) if isinstance(a, torch.Tensor) else a for a in args], backend="reference",
             **kw)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol, atol=tol)
    torch.testing.assert_close(gpu, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_occlusion_cuda(rng, dtype):
    x = torch.randn(3, 3, 17, 23, generator=rng, dtype=dtype)
    window, strides = (3, 5, 4), (3, 3, 2)
    n = 1
    for d, w, s in zip(x.shape[1:], window, strides):
        n *= (d - w + s - 1) // s + 1
    _three_ways(occlusion.occlusion_perturb, x, window, strides, 2, n - 2, tol=0, baseline=0.5)
    drops = torch.randn(n, 3, generator=rng, dtype=dtype)
    _three_ways(occlusion.occlusion_accumulate, drops, x.shape[1:], window, strides, tol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sobol_cuda(rng, dtype):
    a = torch.rand(32, 25, generator=rng, dtype=dtype)
    b = torch.rand(32, 25, generator=rng, dtype=dtype)
    _three_ways(sobol.sobol_design, a, b, 5, 27 * 32 - 9, tol=0)
    ya = torch.randn(32, 3, generator=rng, dtype=dtype)
    yb = torch.randn(32, 3, generator=rng, dtype=dtype)
    yc = torch.randn(25, 32, 3, generator=rng, dtype=dtype)
    for est in sobol.ESTIMATORS:
        _three_ways(sobol.sobol_indices, ya, yb, yc, est, tol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reveal_by_rank_cuda(rng, dtype):
    start = torch.randn(2, 3, 19, 21, generator=rng, dtype=dtype)
    finish = torch.randn(2, 3, 19, 21, generator=rng, dtype=dtype)
    ranks = metrics.pixel_ranks(torch.randn(2, 19 * 21, generator=rng))
    _three_ways(metrics.reveal_by_rank, start, finish, ranks, 1, 9, 17, tol=0)


def _grads_three_ways(fn, inputs, tol):
    """Gradients of ``fn(backend, *inputs)`` natively on CPU and CUDA and by reference on CUDA."""
    native_or_skip(DEV)
    got = []
    for device, backend in (("cpu", "native"), (DEV, "native"), (DEV, "reference")):
        leaves = tuple(t.detach().to(device).requires_grad_(True) for t in inputs)
        out = fn(backend, *leaves)
        probe = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=device)
        got.append([g.cpu() for g in torch.autograd.grad(out, leaves, probe.reshape(out.shape))])
    for cpu, gpu, ref in zip(*got):
        torch.testing.assert_close(gpu, cpu, rtol=tol, atol=tol)
        torch.testing.assert_close(gpu, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_cuda(rng, dtype):
    """The backward of the occlusion, sobol and metrics ops on CUDA."""
    r = lambda *s: torch.randn(*s, generator=rng, dtype=dtype)  # noqa: E731
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    shape, window, strides = (3, 17, 23), (3, 5, 4), (3, 3, 2)
    n = 1
    for d, w, s in zip(shape, window, strides):
        n *= (d - w + s - 1) // s + 1
    _grads_three_ways(lambda be, x, b: occlusion.occlusion_perturb(x, window, strides, 2, n - 2, b,
                                                                   be), (r(2, *shape), r(2, *shape)),
                      tol)
    _grads_three_ways(lambda be, d: occlusion.occlusion_accumulate(d, shape, window, strides, be),
                      (r(n, 2),), tol)
    ranks = metrics.pixel_ranks(torch.randn(2, 19 * 21, generator=rng))
    _grads_three_ways(lambda be, s, f: metrics.reveal_by_rank(s, f, ranks.to(s.device), 1, 9, 17,
                                                              be),
                      (r(2, 3, 19, 21), r(2, 3, 19, 21)), tol)
    _grads_three_ways(lambda be, a, b: sobol.sobol_design(a, b, 5, 27 * 32 - 9, be),
                      (r(32, 25), r(32, 25)), tol)
    for est in sobol.ESTIMATORS:
        _grads_three_ways(lambda be, a, b, c, e=est: sobol.sobol_indices(a, b, c, e, be),
                          (r(32, 3), r(32, 3), r(25, 32, 3)), 1e-4 if dtype == torch.float32
                          else 1e-10)
