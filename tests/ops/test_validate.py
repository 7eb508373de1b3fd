"""validate=False: the ops read no tensor value (no host sync); check_grids validates once per call;
the backward formulas read no value either (they run on meta tensors)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pyxai import ops
from pyxai.ops import sobol
from pyxai.ops.masks import MODES

# aten ops that copy a tensor value to the host (item(), tolist(), bool(tensor), float(tensor))
_SYNCS = {"_local_scalar_dense", "is_nonzero", "equal"}


class _CountSyncs(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.syncs: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _SYNCS:
            self.syncs.append(name)
        return func(*args, **(kwargs or {}))


def _calls(rng, mode, validate, backend):
    g = torch.rand(5, 4, 3, generator=rng, dtype=torch.float64)
    off = torch.randint(0, 3, (5, 2), generator=rng)
    x = torch.rand(2, 3, 9, 10, generator=rng, dtype=torch.float64)
    w = torch.rand(5, 2, generator=rng, dtype=torch.float64)
    kw = dict(mode=mode, backend=backend, validate=validate)
    return [
        lambda: ops.upsample_masks(g, (9, 10), off, (11, 12), **kw),
        lambda: ops.upsample_blend(x, g, off, 0.5, (11, 12), **kw),
        lambda: ops.weighted_mask_sum(g, w, (9, 10), off, (11, 12), **kw),
    ]


@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("mode", MODES)
def test_validate_false_reads_no_values(rng, mode, backend):
    for call in _calls(rng, mode, False, backend):
        with _CountSyncs() as counter:
            call()
        assert counter.syncs == [], counter.syncs
    # and the default (validate=True) does read them: the counter sees real syncs
    for call in _calls(rng, mode, True, backend):
        with _CountSyncs() as counter:
            call()
        assert counter.syncs


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_validate_false_keeps_metadata_checks(backend):
    g = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="grids"):
        ops.upsample_masks(torch.rand(4, 4), 8, backend=backend, validate=False)
    with pytest.raises(TypeError, match="offsets"):
        ops.upsample_masks(g, 8, torch.zeros(2, 2), canvas=10, backend=backend, validate=False)
    with pytest.raises(ValueError, match="offsets"):
        ops.upsample_masks(g, 8, torch.zeros(3, 2, dtype=torch.long), backend=backend,
                           validate=False)
    with pytest.raises(ValueError, match="canvas"):
        ops.upsample_masks(g, 8, canvas=6, backend=backend, validate=False)
    with pytest.raises(TypeError, match="dtype"):
        ops.upsample_blend(torch.rand(1, 3, 8, 8, dtype=torch.float64), g, backend=backend,
                           validate=False)
    with pytest.raises(ValueError, match="weights"):
        ops.weighted_mask_sum(g, torch.rand(3, 1), 8, backend=backend, validate=False)


def test_check_grids(rng):
    g = torch.rand(3, 4, 4, generator=rng)
    off, size, canvas = ops.check_grids(g, None, 8)
    assert size == canvas == (8, 8)
    torch.testing.assert_close(off, torch.zeros(3, 2, dtype=torch.long))
    good = torch.tensor([[0, 2], [1, 0], [2, 2]])
    off, size, canvas = ops.check_grids(g, good, (8, 8), (10, 10), "bilinear_reflect")
    assert off is good and canvas == (10, 10)
    with pytest.raises(ValueError, match="NaN"):
        ops.check_grids(torch.full((3, 4, 4), float("inf")), None, 8)
    with pytest.raises(ValueError, match="offsets"):
        ops.check_grids(g, torch.tensor([[0, 0], [0, 3], [0, 0]]), 8, 10)
    with pytest.raises(ValueError, match="offsets"):
        ops.check_grids(g, torch.tensor([[0, 0], [-1, 0], [0, 0]]), 8, 10)


@pytest.mark.parametrize("mode", MODES)
def test_unvalidated_offsets_clamp_like_the_kernels(rng, mode):
    """Out-of-range offsets (skipped validation) are clamped into the canvas on every backend."""
    g = torch.rand(3, 4, 5, generator=rng, dtype=torch.float64)
    bad = torch.tensor([[-4, 1], [100, -2], [1, 50]])
    clamped = torch.tensor([[0, 1], [2, 0], [1, 3]])
    want = ops.upsample_masks(g, (8, 9), clamped, (10, 12), mode, backend="reference")
    for backend in ("reference", "auto"):
        got = ops.upsample_masks(g, (8, 9), bad, (10, 12), mode, backend=backend, validate=False)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_no_value_reads_on_meta_tensors(mode):
    """Meta tensors have no values: any host read (item, tolist, bool) raises. The ops with
    validate=False and every registered backward formula run on them end to end."""
    meta = dict(device="meta", dtype=torch.float64)
    g = torch.empty(5, 4, 3, **meta, requires_grad=True)
    off = torch.empty(5, 2, device="meta", dtype=torch.int64)
    x = torch.empty(2, 3, 9, 10, **meta, requires_grad=True)
    w = torch.empty(5, 2, **meta, requires_grad=True)
    for out in (
        ops.upsample_masks(g, (9, 10), off, (11, 12), mode, "reference", validate=False),
        ops.upsample_blend(x, g, off, 0.5, (11, 12), mode, "reference", validate=False),
        ops.weighted_mask_sum(g, w, (9, 10), off, (11, 12), mode, "reference", validate=False),
        torch.ops.pyxai.upsample_masks(g, off, [9, 10], [11, 12], mode),
        torch.ops.pyxai.upsample_blend(x, g, off, x * 0, [11, 12], mode),
        torch.ops.pyxai.weighted_mask_sum(g, off, w, [9, 10], [11, 12], mode),
    ):
        grads = torch.autograd.grad(out, (x, g, w), torch.ones_like(out), allow_unused=True,
                                    create_graph=True)
        assert any(t is not None and t.device.type == "meta" for t in grads)
    with pytest.raises((RuntimeError, NotImplementedError)):
        ops.upsample_masks(g, (9, 10), off, (11, 12), mode, "reference")  # validate reads values


def test_other_backward_formulas_read_no_values():
    meta = dict(device="meta", dtype=torch.float64, requires_grad=True)
    x, base = torch.empty(2, 2, 5, 4, **meta), torch.empty(2, 2, 5, 4, **meta)
    outs = [
        (torch.ops.pyxai.occlusion_perturb(x, base, [1, 3, 2], [1, 2, 2], 1, 6), (x, base)),
    ]
    drops = torch.empty(8, 2, **meta)
    outs.append((torch.ops.pyxai.occlusion_accumulate(drops, [2, 5, 4], [1, 3, 2], [1, 2, 2]),
                 (drops,)))
    s, f = torch.empty(2, 2, 12, **meta), torch.empty(2, 2, 12, **meta)
    ranks = torch.empty(2, 12, device="meta", dtype=torch.int64)
    outs.append((torch.ops.pyxai.reveal_by_rank(s, f, ranks, 3, 9, 5), (s, f)))
    a, b = torch.empty(4, 3, **meta), torch.empty(4, 3, **meta)
    outs.append((torch.ops.pyxai.sobol_design(a, b, 2, 15), (a, b)))
    ya, yb, yc = torch.empty(5, 2, **meta), torch.empty(5, 2, **meta), torch.empty(3, 5, 2, **meta)
    for est in sobol.ESTIMATORS:
        outs.append((torch.ops.pyxai.sobol_indices(ya, yb, yc, est), (ya, yb, yc)))
    for out, inputs in outs:
        grads = torch.autograd.grad(out, inputs, torch.ones_like(out))
        assert all(t.shape == i.shape and t.device.type == "meta" for t, i in zip(grads, inputs))
