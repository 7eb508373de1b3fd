"""``all_finite``: the sum-first finite check every explainer's input check uses."""

from __future__ import annotations

import pytest
import torch

from pyxai.engine.checks import all_finite, check_inputs


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_all_finite_equals_the_elementwise_check(rng, dtype):
    x = torch.randn(4, 3, 17, 19, generator=rng).to(dtype)
    assert all_finite(x)
    index = int(torch.randint(x.numel(), (1,), generator=rng))
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y.view(-1)[index] = bad
        assert not all_finite(y)
    # finite values whose sum overflows: the exact check decides, not the sum
    big = torch.full((64,), torch.finfo(dtype).max / 2, dtype=dtype)
    assert not bool(torch.isfinite(big.sum())) and all_finite(big)
    big[int(torch.randint(64, (1,), generator=rng))] = -float("inf")
    assert not all_finite(big)
    # +inf and -inf together: their partial sums give NaN, never a finite number
    y = x.clone()
    y.view(-1)[0], y.view(-1)[-1] = float("inf"), -float("inf")
    assert not all_finite(y)


def test_all_finite_other_dtypes_and_graphs(rng):
    assert all_finite(torch.empty(0)) and all_finite(torch.arange(7))
    assert all_finite(torch.ones(3, dtype=torch.bool))
    x = torch.randn(5, requires_grad=True, generator=rng)
    assert all_finite(x * 2)
    with pytest.raises(ValueError, match="inputs contains NaN"):
        check_inputs(torch.tensor([[[[1.0, float("nan")]]]]))
