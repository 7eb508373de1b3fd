"""smooth_masks op: the native kernel (forward and backward) vs the pure-PyTorch reference, the
reference vs TorchRay's arithmetic, gradients, thread determinism and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pyxai import ops
from pyxai.ops.smooth_masks import _SoftmaxPool, smooth_geometry
from pyxai.perturbation.extremal import MaskGenerator
from tests.conftest import native_or_skip

# (image size, step, sigma): the extremal default, odd sizes, a small step, STEP's video frames
GEOMETRIES = [((64, 64), 7, 21), ((37, 50), 5, 9.5), ((17, 23), 3, 5.5), ((28, 40), 7, 7.0)]


def _case(rng, size, step, sigma, n, dtype):
    gen = MaskGenerator(size, step, sigma, torch.device("cpu"))
    params = torch.rand(n, *gen.shape_in, generator=rng, dtype=torch.float64).to(dtype)
    return gen, params, gen.weight.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_native_equals_reference_forward_and_backward(rng, dtype, geometry):
    native_or_skip()
    size, step, sigma = geometry
    gen, p, w = _case(rng, size, step, sigma, 3, dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    got = ops.smooth_masks(p, w, gen.padding, step, backend="native")
    want = ops.smooth_masks(p, w, gen.padding, step, backend="reference")
    assert got.shape == (3, *gen.shape_out)
    torch.testing.assert_close(got, want, atol=tol, rtol=0)
    grad = torch.randn(got.shape, generator=rng, dtype=torch.float64).to(dtype)
    g_nat = ops.smooth_masks_backward(grad, p, w, gen.padding, step, backend="native")
    g_ref = ops.smooth_masks_backward(grad, p, w, gen.padding, step, backend="reference")
    torch.testing.assert_close(g_nat, g_ref, atol=tol * 10 * g_ref.abs().max().item(), rtol=0)
    # through autograd, as the explainers use it
    q = p.clone().requires_grad_(True)
    (g_auto,) = torch.autograd.grad(ops.smooth_masks(q, w, gen.padding, step, backend="native"), q,
                                    grad)
    assert torch.equal(g_auto, g_nat)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("grid,taps,pad,step,crop", [
    ((3, 4), 5, 9, 2, (0, 0)),   # pad > taps: whole rows and chunks of taps read only padding
    ((6, 2), 3, 4, 5, (3, 7)),   # the output cropped inside the canvas
    ((1, 1), 7, 3, 3, (0, 1)),   # a one-cell grid: most chunks see it in a few taps only
])
def test_native_equals_reference_with_wide_padding(rng, dtype, grid, taps, pad, step, crop):
    """The native kernel handles the taps that read only zero padding apart (one shared
    exponential, no output or gradient term): any pad, crop and sign of the parameters."""
    native_or_skip()
    mid = [g + 2 * pad - taps + 1 for g in grid]
    h, w = step * mid[0] - crop[0], step * mid[1] - crop[1]
    weight = torch.rand(taps * taps, h, w, generator=rng, dtype=torch.float64).to(dtype)
    p = (torch.rand(4, *grid, generator=rng, dtype=torch.float64) * 2 - 0.5).to(dtype)
    p[:, 0, 0] = 0.0  # exact zeros inside the grid are computed, not skipped
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    got = ops.smooth_masks(p, weight, pad, step, backend="native")
    torch.testing.assert_close(got, ops.smooth_masks(p, weight, pad, step, backend="reference"),
                               atol=tol, rtol=0)
    grad = torch.randn(got.shape, generator=rng, dtype=torch.float64).to(dtype)
    g_nat = ops.smooth_masks_backward(grad, p, weight, pad, step, backend="native")
    g_ref = ops.smooth_masks_backward(grad, p, weight, pad, step, backend="reference")
    torch.testing.assert_close(g_nat, g_ref, atol=tol * 10 * g_ref.abs().max().item(), rtol=0)


def test_reference_is_torchray_arithmetic(rng):
    """unfold -> nearest upsampling -> softmax pooling, as TorchRay's MaskGenerator writes it."""
    gen, p, w = _case(rng, (40, 36), 7, 21, 2, torch.float32)
    taps = 2 * gen.radius + 1
    v = F.unfold(p[:, None], (taps, taps), padding=(gen.padding, gen.padding))
    v = v.reshape(2, taps * taps, *gen.shape_mid)
    v = F.interpolate(v, size=gen.shape_up, mode="nearest")[:, :, : gen.shape_out[0],
                                                            : gen.shape_out[1]]
    a = w * v
    want = (a * F.softmax(20 * a, dim=1)).sum(dim=1)
    assert torch.equal(ops.smooth_masks(p, w, gen.padding, 7, backend="reference"), want)


def test_softmax_pooling_backward_is_the_closed_form(rng):
    v = torch.rand(2, 9, 5, 4, generator=rng, dtype=torch.float64, requires_grad=True)
    w = torch.rand(9, 5, 4, generator=rng, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: _SoftmaxPool.apply(v, w), (v,))
    a = w * v
    assert torch.allclose(_SoftmaxPool.apply(v, w), (a * torch.softmax(20 * a, 1)).sum(1, True))


def test_gradcheck_native(rng):
    native_or_skip()
    gen, p, w = _case(rng, (12, 10), 3, 2.5, 2, torch.float64)
    p.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda q: ops.smooth_masks(q, w, gen.padding, 3, backend="native"), (p,))


def test_batch_one_noncontiguous_and_threads(rng):
    native_or_skip()
    gen, p, w = _case(rng, (37, 50), 5, 9.5, 4, torch.float32)
    pt = p.transpose(1, 2).contiguous().transpose(1, 2)  # same values, other strides
    assert not pt.is_contiguous()
    one = ops.smooth_masks(p[2:3], w, gen.padding, 5, backend="native")
    assert torch.equal(ops.smooth_masks(pt, w, gen.padding, 5, backend="native")[2:3], one)
    grad = torch.randn(4, *gen.shape_out, generator=rng)
    threads = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2):
            torch.set_num_threads(t)
            outs.append(ops.smooth_masks_backward(grad, p, w, gen.padding, 5, backend="native"))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1])  # fixed summation order whatever the thread count


def test_opcheck_and_compile():
    native_or_skip()
    gen = MaskGenerator((12, 10), 3, 2.5, torch.device("cpu"))
    p = torch.rand(2, *gen.shape_in, requires_grad=True)
    torch.library.opcheck(torch.ops.pyxai.smooth_masks.default, (p, gen.weight, gen.padding, 3),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    g = torch.rand(2, *gen.shape_out)
    out, stats = torch.ops.pyxai.smooth_masks(p.detach(), gen.weight, gen.padding, 3)
    torch.library.opcheck(torch.ops.pyxai.smooth_masks_backward.default,
                          (g, p.detach(), gen.weight, out, stats, gen.padding, 3),
                          test_utils=("test_schema", "test_faketensor"))

    @torch.compile(backend="eager", fullgraph=True)
    def f(q):
        return torch.ops.pyxai.smooth_masks(q, gen.weight, gen.padding, 3)[0] * 2

    torch.testing.assert_close(f(p.detach()), 2 * ops.smooth_masks(p.detach(), gen.weight,
                                                                   gen.padding, 3))


def test_forward_stats_are_the_softmax_max_and_denominator(rng):
    """The forward's stats [N, 2, H, W], which the backward reads instead of recomputing them:
    max_k 20 a_k and sum_k exp(20 a_k - max), a_k the weighted taps (unfolded as the reference)."""
    native_or_skip()
    gen, p, w = _case(rng, (23, 19), 4, 6.0, 3, torch.float64)
    out, stats = torch.ops.pyxai.smooth_masks(p, w, gen.padding, 4)
    taps = math.isqrt(w.shape[0])
    mid, canvas = smooth_geometry(tuple(p.shape[1:]), taps, gen.padding, 4)
    v = F.unfold(p[:, None], (taps, taps), padding=gen.padding)
    v = v.reshape(p.shape[0], -1, *mid)
    v = F.interpolate(v, size=canvas, mode="nearest")[..., : w.shape[1],
                                                                         : w.shape[2]]
    z = 20 * (w * v)
    mx = z.amax(1)
    torch.testing.assert_close(stats[:, 0], mx)
    torch.testing.assert_close(stats[:, 1], torch.exp(z - mx[:, None]).sum(1))
    torch.testing.assert_close(out, ops.smooth_masks(p, w, gen.padding, 4, backend="reference"))
    g = torch.randn(out.shape, generator=rng, dtype=out.dtype)
    with pytest.raises(RuntimeError, match="stats"):
        torch.ops.pyxai.smooth_masks_backward(g, p, w, out, stats[:, :1], gen.padding, 4)
    with pytest.raises(RuntimeError, match="out"):
        torch.ops.pyxai.smooth_masks_backward(g, p, w, out[:, 1:], stats, gen.padding, 4)


def test_no_double_backward():
    native_or_skip()
    gen = MaskGenerator((12, 10), 3, 2.5, torch.device("cpu"))
    p = torch.rand(2, *gen.shape_in, requires_grad=True)
    out = ops.smooth_masks(p, gen.weight, gen.padding, 3, backend="native")
    (g,) = torch.autograd.grad(out.sum(), p, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivative"):
        g.sum().backward()


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_bad_input(backend):
    gen = MaskGenerator((12, 10), 3, 2.5, torch.device("cpu"))
    p, w = torch.rand(2, *gen.shape_in), gen.weight
    with pytest.raises(ValueError, match="params"):
        ops.smooth_masks(p[0], w, gen.padding, 3, backend=backend)
    with pytest.raises(TypeError, match="params"):
        ops.smooth_masks(p.long(), w, gen.padding, 3, backend=backend)
    with pytest.raises(TypeError, match="weight"):
        ops.smooth_masks(p, w.double(), gen.padding, 3, backend=backend)
    with pytest.raises(ValueError, match="tap planes"):
        ops.smooth_masks(p, w[:-1], gen.padding, 3, backend=backend)
    with pytest.raises(ValueError, match="pad"):
        ops.smooth_masks(p, w, -1, 3, backend=backend)
    with pytest.raises(ValueError, match="step"):
        ops.smooth_masks(p, w, gen.padding, 0, backend=backend)
    with pytest.raises(ValueError, match="canvas"):
        ops.smooth_masks(p, w, gen.padding, 1, backend=backend)
    with pytest.raises(ValueError, match="grad"):
        ops.smooth_masks_backward(torch.rand(2, 3, 3), p, w, gen.padding, 3, backend=backend)


def test_raw_op_checks_arguments():
    native_or_skip()
    gen = MaskGenerator((12, 10), 3, 2.5, torch.device("cpu"))
    p, w = torch.rand(2, *gen.shape_in), gen.weight
    with pytest.raises(RuntimeError, match="tap planes"):
        torch.ops.pyxai.smooth_masks(p, w[:-1], gen.padding, 3)
    with pytest.raises(RuntimeError, match="canvas"):
        torch.ops.pyxai.smooth_masks(p, w, gen.padding, 1)
    with pytest.raises(RuntimeError, match="grad"):
        torch.ops.pyxai.smooth_masks_backward(torch.rand(2, 3, 3), p, w, gen.padding, 3)
