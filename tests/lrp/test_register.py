"""Zennit's hook interface on pyxai's rules: ``rule.register(module)`` equals Zennit's
``rule.register(module)`` for the same rule on the same layer, and ``remove()`` restores it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyxai import rules as R

zr = pytest.importorskip("zennit.rules")

PAIRS = [
    (lambda: R.Epsilon(1e-3), lambda: zr.Epsilon(1e-3)),
    (lambda: R.ZPlus(), lambda: zr.ZPlus()),
    (lambda: R.AlphaBeta(2.0, 1.0), lambda: zr.AlphaBeta(2.0, 1.0)),
    (lambda: R.Gamma(0.25, generalized=False), lambda: zr.Gamma(0.25)),
    (lambda: R.Flat(), lambda: zr.Flat()),
    (lambda: R.WSquare(), lambda: zr.WSquare()),
    (lambda: R.ZBox(-1.0, 1.0), lambda: zr.ZBox(-1.0, 1.0)),
]


@pytest.mark.parametrize("pair", range(len(PAIRS)))
@pytest.mark.parametrize("layer", ["conv", "linear", "conv_transpose"])
def test_register_equals_zennit(pair, layer, rng):
    import importlib.metadata as md

    ours, theirs = PAIRS[pair]
    if pair == 3 and not md.version("zennit").startswith("0.4"):
        pytest.skip("Zennit >= 0.5 has the generalised Gamma")
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    # a transposed convolution runs pass by pass through its own (hooked) forward
    mod = {"conv": nn.Conv2d(3, 5, 3, padding=1), "linear": nn.Linear(6, 4),
           "conv_transpose": nn.ConvTranspose2d(3, 4, 3, stride=2)}[layer]
    x = torch.randn(2, 6, generator=rng) if layer == "linear" else torch.randn(2, 3, 6, 6, generator=rng)
    # float64: ZBox's three passes cancel to small denominators, where float32 rounding differs
    # by 1e-4 relative between two equal formulas (seen on a Linear in CI)
    mod, x = mod.double(), x.double()
    grad = torch.randn_like(mod(x), memory_format=torch.contiguous_format)
    results = []
    for make in (ours, theirs):
        rule = make()
        handle = rule.register(mod)
        try:
            z = x.clone().requires_grad_(True)
            out = mod(z)
            (rel,) = torch.autograd.grad(out, z, grad)
        finally:
            handle.remove()
        results.append(rel)
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)
    # removed: the module is back to its plain gradient
    z = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(mod(z), z, grad)
    assert not mod._forward_hooks
    assert (plain - results[0]).abs().max() > 1e-6


def test_register_rejects_non_modules():
    with pytest.raises(TypeError, match="module"):
        R.Epsilon().register("conv1")
