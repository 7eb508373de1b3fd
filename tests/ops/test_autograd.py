"""Backward of every native op: gradcheck (float64), native grads == reference grads, opcheck with
inputs that require grad (which runs the registered autograd formulas), double backward of the masks
ops, and the adjoint kernel upsample_masks_backward against its reference and its definition."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from pyxai import ops
from pyxai.ops import metrics, occlusion, sobol
from pyxai.ops.masks import MODES
from tests.conftest import native_or_skip

F64 = torch.float64


def _offsets(rng, n, size, canvas):
    oy = torch.randint(0, canvas[0] - size[0] + 1, (n,), generator=rng)
    ox = torch.randint(0, canvas[1] - size[1] + 1, (n,), generator=rng)
    return torch.stack([oy, ox], 1)


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _cases(rng, mode, dtype=F64):
    """(name, fn(backend, *diff), diff inputs) for every op and every differentiable argument."""
    r = lambda *s: torch.rand(*s, generator=rng, dtype=F64).to(dtype)  # noqa: E731
    n, size, canvas = 3, (5, 6), (7, 8)
    grids, off = r(n, 3, 4), _offsets(rng, n, size, canvas)
    x, base, w = r(2, 2, *size), r(2, 2, *size), r(n, 2) - 0.5
    gm = r(n, *size) - 0.5
    shape, window, strides = (2, 5, 4), (1, 3, 2), (1, 2, 2)
    nwin = 8  # window_counts(shape, window, strides) == (2, 2, 2)
    xo, bo, drops = r(2, *shape), r(2, *shape), r(nwin, 2)
    start, finish = r(2, 2, 3, 4), r(2, 2, 3, 4)
    ranks = metrics.pixel_ranks(torch.randn(2, 12, generator=rng))
    a, b = r(4, 3), r(4, 3)
    ya, yb, yc = r(5, 2), r(5, 2), r(3, 5, 2)
    return [
        ("upsample_masks", lambda be, g: ops.upsample_masks(g, size, off, canvas, mode, be),
         (grids,)),
        ("upsample_blend",
         lambda be, x_, g, b_: ops.upsample_blend(x_, g, off, b_, canvas, mode, be),
         (x, grids, base)),
        ("weighted_mask_sum",
         lambda be, g, w_: ops.weighted_mask_sum(g, w_, size, off, canvas, mode, be), (grids, w)),
        ("upsample_masks_backward",
         lambda be, g: ops.upsample_masks_backward(g, (3, 4), off, canvas, mode, be), (gm,)),
        ("occlusion_perturb",
         lambda be, x_, b_: occlusion.occlusion_perturb(x_, window, strides, 1, nwin - 3, b_, be),
         (xo, bo)),
        ("occlusion_accumulate",
         lambda be, d: occlusion.occlusion_accumulate(d, shape, window, strides, be), (drops,)),
        ("reveal_by_rank",
         lambda be, s, f: metrics.reveal_by_rank(s, f, ranks, 3, 9, 5, be), (start, finish)),
        ("sobol_design", lambda be, a_, b_: sobol.sobol_design(a_, b_, 2, 15, be), (a, b)),
        *[(f"sobol_indices[{est}]",
           lambda be, p, q, s, est=est: sobol.sobol_indices(p, q, s, est, be), (ya, yb, yc))
          for est in sobol.ESTIMATORS],
    ]


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(rng, mode, backend):
    """Every op and every differentiable argument, float64 (modes matter for the masks ops); the
    reference path by plain autograd."""
    if backend == "native":
        native_or_skip()
    for name, fn, inputs in _cases(rng, mode):
        if mode != MODES[0] and not name.startswith(("upsample", "weighted")):
            continue
        leaves = tuple(_leaf(t) for t in inputs)
        assert gradcheck(functools.partial(fn, backend), leaves), name


@pytest.mark.parametrize("mode", MODES)
def test_gradgradcheck_native(rng, mode):
    """Double backward: every mode for the masks ops, the other ops once."""
    native_or_skip()
    for name, fn, inputs in _cases(rng, mode)[: None if mode == MODES[0] else 4]:
        leaves = tuple(_leaf(t) for t in inputs)
        assert gradgradcheck(functools.partial(fn, "native"), leaves), name


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("mode", MODES)
def test_native_grads_equal_reference_grads(rng, mode, dtype):
    native_or_skip()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for name, fn, inputs in _cases(rng, mode, dtype):
        if mode != MODES[0] and not name.startswith(("upsample", "weighted")):
            continue
        grads = []
        for backend in ("native", "reference"):
            leaves = tuple(_leaf(t) for t in inputs)
            out = fn(backend, *leaves)
            probe = torch.linspace(-1, 1, out.numel(), dtype=dtype).reshape(out.shape)
            grads.append(torch.autograd.grad(out, leaves, probe))
        for gn, gr in zip(*grads):
            torch.testing.assert_close(gn, gr, rtol=tol, atol=tol, msg=name)


def test_native_ops_warn_no_more(rng):
    """Before the formulas were registered, backward through a native op warned and gave no grad."""
    native_or_skip()
    for name, fn, inputs in _cases(rng, "bilinear"):
        leaves = tuple(_leaf(t) for t in inputs)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = fn("native", *leaves)
            assert out.requires_grad, name
            out.sum().backward()
        assert all(t.grad is not None for t in leaves), name


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [  # (n, grid, size, canvas)
    (1, (7, 7), (64, 64), (80, 80)), (37, (5, 3), (33, 47), (40, 61)), (6, (1, 6), (9, 13), (9, 13)),
])
def test_masks_backward_native_equals_reference_and_is_the_adjoint(rng, mode, dtype, shape):
    native_or_skip()
    n, grid, size, canvas = shape
    off = _offsets(rng, n, size, canvas)
    grad = torch.randn(n, *size, generator=rng, dtype=F64).to(dtype)
    a = ops.upsample_masks_backward(grad, grid, off, canvas, mode, backend="native")
    r = ops.upsample_masks_backward(grad, grid, off, canvas, mode, backend="reference")
    assert a.shape == (n, *grid) and a.dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(a, r, rtol=tol, atol=tol)
    # adjoint: <U g, grad> == <g, U^T grad>, per mask, in float64
    g = torch.randn(n, *grid, generator=rng, dtype=F64)
    ug = ops.upsample_masks(g, size, off, canvas, mode, backend="reference")
    lhs = (ug * grad.double()).sum((1, 2))
    rhs = (g * ops.upsample_masks_backward(grad.double(), grid, off, canvas, mode)).sum((1, 2))
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10)
    # deterministic: the same bits on a second run (no float atomics)
    again = ops.upsample_masks_backward(grad, grid, off, canvas, mode, backend="native")
    assert torch.equal(a, again)


def test_masks_backward_bad_input():
    g = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="grad"):
        ops.upsample_masks_backward(torch.rand(8, 8), 4)
    with pytest.raises(ValueError, match="grid"):
        ops.upsample_masks_backward(g, 0)
    with pytest.raises(ValueError, match="offsets"):
        ops.upsample_masks_backward(g, 4, torch.tensor([[0, 0], [3, 0]]), canvas=10)
    with pytest.raises(ValueError, match="NaN"):
        ops.upsample_masks_backward(torch.full((2, 8, 8), float("nan")), 4)


def test_raw_masks_backward_checks_arguments():
    native_or_skip()
    g = torch.rand(2, 8, 8)
    off = torch.zeros(2, 2, dtype=torch.long)
    with pytest.raises(RuntimeError, match="grid"):
        torch.ops.pyxai.upsample_masks_backward(g, off, [0, 4], [8, 8], "nearest")
    with pytest.raises(RuntimeError, match="offsets"):
        torch.ops.pyxai.upsample_masks_backward(g, off[:1], [4, 4], [8, 8], "nearest")
    with pytest.raises(RuntimeError, match="canvas"):
        torch.ops.pyxai.upsample_masks_backward(g, off, [4, 4], [6, 8], "nearest")


def test_opcheck_with_grad(rng):
    """opcheck on every op with inputs that require grad: schema, fake kernel, autograd
    registration and AOT dispatch of the backward."""
    native_or_skip()
    r = lambda *s: _leaf(torch.rand(*s, generator=rng, dtype=F64))  # noqa: E731
    off = _offsets(rng, 3, (5, 6), (7, 8))
    ranks = metrics.pixel_ranks(torch.randn(2, 12, generator=rng))
    pyxai = torch.ops.pyxai
    for mode in MODES:
        g, x, base, w, gm = r(3, 3, 4), r(2, 2, 5, 6), r(2, 2, 5, 6), r(3, 2), r(3, 5, 6)
        torch.library.opcheck(pyxai.upsample_masks.default, (g, off, [5, 6], [7, 8], mode))
        torch.library.opcheck(pyxai.upsample_masks_backward.default, (gm, off, [3, 4], [7, 8], mode))
        torch.library.opcheck(pyxai.upsample_blend.default, (x, g, off, base, [7, 8], mode))
        torch.library.opcheck(pyxai.weighted_mask_sum.default, (g, off, w, [5, 6], [7, 8], mode))
    xo = r(2, 2, 5, 4)
    torch.library.opcheck(pyxai.occlusion_perturb.default, (xo, r(2, 2, 5, 4), [1, 3, 2],
                                                            [1, 2, 2], 1, 6))
    torch.library.opcheck(pyxai.occlusion_accumulate.default, (r(8, 2), [2, 5, 4], [1, 3, 2],
                                                               [1, 2, 2]))
    torch.library.opcheck(pyxai.reveal_by_rank.default, (r(2, 2, 12), r(2, 2, 12), ranks, 3, 9, 5))
    torch.library.opcheck(pyxai.sobol_design.default, (r(4, 3), r(4, 3), 2, 15))
    for est in sobol.ESTIMATORS:
        torch.library.opcheck(pyxai.sobol_indices.default, (r(5, 2), r(5, 2), r(3, 5, 2), est))


def test_optimise_through_upsample_blend(rng):
    """What extremal perturbation does: gradient steps on the grids through the native blend give
    the reference path's trajectory."""
    native_or_skip()
    x = torch.rand(1, 3, 16, 16, generator=rng, dtype=F64)
    target = torch.rand(1, 3, 16, 16, generator=rng, dtype=F64)
    init = torch.rand(2, 4, 4, generator=rng, dtype=F64)
    paths = []
    for backend in ("native", "reference"):
        g = _leaf(init)
        opt = torch.optim.SGD([g], lr=0.5)
        for _ in range(5):
            opt.zero_grad()
            out = ops.upsample_blend(x, g, baseline=0.0, mode="bilinear", backend=backend,
                                     validate=False)
            loss = ((out - target) ** 2).mean()
            loss.backward()
            opt.step()
        paths.append(g.detach())
    torch.testing.assert_close(paths[0], paths[1], rtol=1e-12, atol=1e-12)
    assert not torch.equal(paths[0], init)


@pytest.mark.parametrize("mode", ["nearest", "bilinear_reflect"])
def test_masks_grads_chunked_partial_and_video(rng, mode):
    """weighted_mask_sum's chunked backward (N > CHUNK), one input at a time (the other grads are
    not computed), and a non-contiguous video batch through upsample_blend."""
    native_or_skip()
    n, size, canvas = 300, (11, 9), (14, 12)
    grids = torch.rand(n, 4, 3, generator=rng, dtype=F64)
    off = _offsets(rng, n, size, canvas)
    w = torch.randn(n, 2, generator=rng, dtype=F64)
    probe = torch.randn(2, *size, generator=rng, dtype=F64)
    for which in (0, 1):
        got = []
        for backend in ("native", "reference"):
            leaves = [grids.clone(), w.clone()]
            leaves[which].requires_grad_(True)
            out = ops.weighted_mask_sum(*leaves, size, off, canvas, mode, backend)
            got.append(torch.autograd.grad(out, leaves[which], probe)[0])
        torch.testing.assert_close(got[0], got[1], rtol=1e-11, atol=1e-11)
    x = torch.randn(2, 3, 5, 9, 11, generator=rng, dtype=F64).transpose(-1, -2)[:, :, ::2]
    assert not x.is_contiguous()
    g = grids[:4]
    got = []
    for backend in ("native", "reference"):
        xs, gs = _leaf(x), _leaf(g)
        out = ops.upsample_blend(xs, gs, off[:4], 0.25, canvas, mode, backend)
        probe = torch.linspace(-1, 1, out.numel(), dtype=F64).reshape(out.shape)
        got.append(torch.autograd.grad(out, (xs, gs), probe))
    for a, b in zip(*got):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
