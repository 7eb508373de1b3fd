"""occlusion ops: native kernels vs the pure-PyTorch reference vs a slow loop oracle."""

from __future__ import annotations

import math

import pytest
import torch

from pyxai.ops.occlusion import occlusion_accumulate, occlusion_perturb, window_counts
from tests.conftest import native_or_skip

# (row shape, window, strides): odd sizes, cropped last windows, 1-D to 4-D rows, full windows
CASES = [
    ((3, 7, 9), (3, 3, 2), (3, 2, 1)),
    ((2, 5), (2, 3), (1, 2)),
    ((11,), (4,), (3,)),
    ((3, 6, 5), (1, 6, 5), (1, 1, 1)),
    ((2, 3, 5, 6), (2, 2, 3, 4), (1, 2, 3, 3)),
    ((1, 8, 8), (1, 8, 8), (1, 9, 3)),
]


def _slow_windows(shape, window, strides):
    """Window boxes in Captum's order (first dim fastest) by explicit loops."""
    counts = window_counts(shape, window, strides)
    boxes = []
    for i in range(math.prod(counts)):
        rest, box = i, []
        for n, w, s, c in zip(shape, window, strides, counts):
            k = rest % c
            rest //= c
            box.append(slice(k * s, min(k * s + w, n)))
        boxes.append(tuple(box))
    return boxes


def _slow_perturb(x, base, boxes):
    rows = []
    for box in boxes:
        for b in range(x.shape[0]):
            r = x[b].clone()
            r[box] = base[b][box]
            rows.append(r)
    return torch.stack(rows)


def _slow_accumulate(drops, shape, boxes):
    total = torch.zeros(drops.shape[1], *shape, dtype=torch.float64)
    count = torch.zeros(shape, dtype=torch.float64)
    for k, box in enumerate(boxes):
        total[(slice(None), *box)] += drops[k].double().reshape(-1, *([1] * len(shape)))
        count[box] += 1
    return (total / count).to(drops.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,window,strides", CASES)
def test_perturb_and_accumulate(rng, dtype, shape, window, strides):
    b = int(torch.randint(1, 4, (1,), generator=rng))
    x = torch.randn(b, *shape, generator=rng, dtype=dtype)
    base = torch.randn(b, *shape, generator=rng, dtype=dtype)
    boxes = _slow_windows(shape, window, strides)
    n = len(boxes)
    first = int(torch.randint(0, n, (1,), generator=rng))
    count = n - first
    expect = _slow_perturb(x, base, boxes[first:])
    ref = occlusion_perturb(x, window, strides, first, count, base, backend="reference")
    assert torch.equal(ref, expect)
    drops = torch.randn(n, b, generator=rng, dtype=dtype)
    acc_expect = _slow_accumulate(drops, shape, boxes)
    acc_ref = occlusion_accumulate(drops, shape, window, strides, backend="reference")
    torch.testing.assert_close(acc_ref, acc_expect)
    native_or_skip("cpu")
    nat = occlusion_perturb(x, window, strides, first, count, base, backend="native")
    assert torch.equal(nat, expect)
    acc_nat = occlusion_accumulate(drops, shape, window, strides, backend="native")
    torch.testing.assert_close(acc_nat, acc_expect)


def test_perturb_noncontiguous_and_scalar_baseline(rng):
    native_or_skip("cpu")
    x = torch.randn(6, 9, 3, generator=rng).permute(2, 0, 1)[:2]  # [2, 6, 9] non-contiguous
    for backend in ("native", "reference"):
        out = occlusion_perturb(x, (2, 4), (2, 3), 0, 9, baseline=-1.5, backend=backend)
        assert out.shape == (18, 6, 9)
        assert (out[0, :2, :4] == -1.5).all() and torch.equal(out[0, 2:], x[0, 2:])
    torch.testing.assert_close(
        occlusion_perturb(x, (2, 4), (2, 3), 0, 9, -1.5, backend="native"),
        occlusion_perturb(x, (2, 4), (2, 3), 0, 9, -1.5, backend="reference"),
        rtol=0, atol=0,
    )


def test_opcheck(rng):
    native_or_skip("cpu")
    x = torch.randn(2, 3, 7, 5, generator=rng)
    torch.library.opcheck(torch.ops.pyxai.occlusion_perturb,
                          (x, torch.zeros_like(x), [3, 3, 2], [3, 2, 2], 1, 4))
    n = math.prod(window_counts((3, 7, 5), (3, 3, 2), (3, 2, 2)))
    torch.library.opcheck(torch.ops.pyxai.occlusion_accumulate,
                          (torch.randn(n, 2, generator=rng), [3, 7, 5], [3, 3, 2], [3, 2, 2]))


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_bad_arguments(backend):
    if backend == "native":
        native_or_skip("cpu")
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        occlusion_perturb(x, (3, 9, 2), (1, 1, 1), 0, 1, backend=backend)
    with pytest.raises(ValueError, match="strides"):
        occlusion_perturb(x, (3, 2, 2), (1, 0, 1), 0, 1, backend=backend)
    with pytest.raises(ValueError, match="strides"):
        occlusion_perturb(x, (3, 2, 2), (1, 3, 1), 0, 1, backend=backend)
    with pytest.raises(ValueError, match="out of range"):
        occlusion_perturb(x, (3, 2, 2), (1, 2, 2), 10, 7, backend=backend)
    with pytest.raises(ValueError, match="baseline"):
        occlusion_perturb(x, (3, 2, 2), (1, 2, 2), 0, 1, baseline=torch.zeros(5), backend=backend)
    with pytest.raises(ValueError, match="drops"):
        occlusion_accumulate(torch.zeros(3, 2), (3, 8, 8), (3, 2, 2), (1, 2, 2), backend=backend)


def test_raw_op_checks():
    """The raw torch.ops entry points reject bad arguments on their own (no kernel crash)."""
    native_or_skip("cpu")
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match="window"):
        torch.ops.pyxai.occlusion_perturb(x, x, [3, 9, 2], [1, 1, 1], 0, 1)
    with pytest.raises(RuntimeError, match="out of range"):
        torch.ops.pyxai.occlusion_perturb(x, x, [3, 2, 2], [1, 2, 2], 0, 100)
    with pytest.raises(RuntimeError, match="drops"):
        torch.ops.pyxai.occlusion_accumulate(torch.zeros(3, 2), [3, 8, 8], [3, 2, 2], [1, 2, 2])
