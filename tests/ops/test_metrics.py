"""reveal_by_rank: native kernel vs the pure-PyTorch reference vs a slow per-pixel oracle."""

from __future__ import annotations

import pytest
import torch

from pyxai.ops.metrics import pixel_ranks, reveal_by_rank
from tests.conftest import native_or_skip

DTYPES = [torch.float32, torch.float64]


def _oracle(start, finish, ranks, first, count, step_px):
    b = start.shape[0]
    out = []
    for i in range(first, first + count):
        s, j = divmod(i, b)
        canvas = start[j].clone().reshape(start.shape[1], -1)
        for p in range(ranks.shape[1]):
            if ranks[j, p] < s * step_px:
                canvas[:, p] = finish[j].reshape(start.shape[1], -1)[:, p]
        out.append(canvas.reshape(start.shape[1:]))
    return torch.stack(out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,first,count,step", [
    ((3, 2, 5, 7), 0, 15, 4),       # odd sizes, steps 0..4
    ((1, 3, 6, 6), 2, 9, 5),        # batch 1, a range past full reveal
    ((4, 1, 9, 11), 5, 10, 33),     # chunk not aligned to the batch
])
def test_native_equals_reference_and_oracle(rng, dtype, shape, first, count, step):
    start = torch.randn(shape, generator=rng, dtype=torch.float64).to(dtype)
    finish = torch.randn(shape, generator=rng, dtype=torch.float64).to(dtype)
    ranks = pixel_ranks(torch.randn(shape[0], shape[2] * shape[3], generator=rng))
    ref = reveal_by_rank(start, finish, ranks, first, count, step, backend="reference")
    torch.testing.assert_close(ref, _oracle(start, finish, ranks, first, count, step),
                               rtol=0, atol=0)
    native_or_skip()
    nat = reveal_by_rank(start, finish, ranks, first, count, step, backend="native")
    assert nat.shape == (count, *shape[1:]) and nat.dtype == dtype
    torch.testing.assert_close(nat, ref, rtol=0, atol=0)


def test_non_contiguous_and_5d(rng):
    native_or_skip()
    x = torch.randn(3, 2, 4, 6, 5, generator=rng).transpose(3, 4)  # [B, C, T, W, H] view
    f = torch.zeros_like(x)
    ranks = pixel_ranks(torch.randn(3, 4 * 5 * 6, generator=rng))
    a = reveal_by_rank(x, f, ranks, 1, 7, 13, backend="native")
    b = reveal_by_rank(x, f, ranks, 1, 7, 13, backend="reference")
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_pixel_ranks_is_inverse_of_descending_order(rng):
    s = torch.randn(4, 50, generator=rng)
    r = pixel_ranks(s)
    order = torch.argsort(s, dim=1, descending=True)
    assert torch.equal(r.gather(1, order), torch.arange(50).expand(4, 50))
    # ties: lower index first
    assert pixel_ranks(torch.zeros(1, 5)).tolist() == [[0, 1, 2, 3, 4]]


def test_opcheck(rng):
    native_or_skip()
    x = torch.randn(2, 3, 4, 5, generator=rng).reshape(2, 3, 20)
    r = pixel_ranks(torch.randn(2, 20, generator=rng))
    torch.library.opcheck(torch.ops.pyxai.reveal_by_rank.default,
                          (x, torch.zeros_like(x), r, 1, 5, 3))


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_bad_input(backend):
    if backend == "native":
        native_or_skip()
    x = torch.randn(2, 3, 4, 4)
    r = pixel_ranks(torch.randn(2, 16))
    with pytest.raises(ValueError, match="finish"):
        reveal_by_rank(x, torch.zeros(2, 3, 4, 5), r, 0, 2, 1, backend=backend)
    with pytest.raises(ValueError, match="ranks"):
        reveal_by_rank(x, torch.zeros_like(x), r[:, :15], 0, 2, 1, backend=backend)
    with pytest.raises(TypeError, match="ranks"):
        reveal_by_rank(x, torch.zeros_like(x), r.int(), 0, 2, 1, backend=backend)
    with pytest.raises(ValueError, match="step_px"):
        reveal_by_rank(x, torch.zeros_like(x), r, 0, 2, 0, backend=backend)
    with pytest.raises(TypeError, match="dtype"):
        reveal_by_rank(x, torch.zeros_like(x).double(), r, 0, 2, 1, backend=backend)
    if backend == "native":  # the raw op checks too
        with pytest.raises(RuntimeError, match="step_px"):
            torch.ops.pyxai.reveal_by_rank(x.reshape(2, 3, 16), x.reshape(2, 3, 16), r, 0, 2, 0)
