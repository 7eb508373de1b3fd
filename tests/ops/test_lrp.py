"""lrp ops: native kernels vs the pure-PyTorch reference, and the reference vs Zennit's pass-by-pass
way of computing each rule (pyxai.lrp.rules._generic_backward, an independent implementation)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyxai.lrp.rules import _generic_backward
from pyxai.ops import lrp as L
from pyxai.ops import lrp as ops
from tests.conftest import native_or_skip

RULE_PARAMS = {
    "epsilon": [0.01],
    "zplus": [1e-6],
    "alpha_beta": [2.0, 1.0, 1e-6],
    "gamma": [0.25, 1e-6, 1.0],
    "gamma_simple": [0.25, 1e-6, 0.0],
    "zbox": [1e-6],
    "flat": [1e-6],
    "wsquare": [1e-6],
}


def _rule(name: str) -> str:
    return "gamma" if name == "gamma_simple" else name


def _conv(d: int, cin: int, cout: int, k: int, stride: int, pad: int, dil: int, groups: int, bias: bool):
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[d]
    return cls(cin, cout, k, stride=stride, padding=pad, dilation=dil, groups=groups, bias=bias)


CONVS = [  # (d, cin, cout, k, stride, pad, dil, groups, bias, spatial)
    (2, 3, 5, 3, 1, 1, 1, 1, True, (9, 11)),
    (2, 4, 6, 3, 2, 1, 1, 2, True, (10, 7)),   # groups, stride, odd sizes
    (2, 6, 6, 3, 1, 2, 2, 6, False, (8, 9)),   # depthwise, dilation, no bias
    (1, 3, 4, 5, 2, 2, 1, 1, True, (17,)),
    (3, 2, 3, 3, 1, 1, 1, 1, True, (5, 4, 6)),
]


def _case(rng, spec, dtype, positive: bool, k_rep: int = 1):
    d, cin, cout, k, stride, pad, dil, groups, bias, sp = spec
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))
    m = _conv(d, cin, cout, k, stride, pad, dil, groups, bias).to(dtype)
    if bias:
        nn.init.uniform_(m.bias, -0.5, 0.5)
    x = torch.randn(2, cin, *sp, generator=rng, dtype=dtype)
    if positive:
        x = x.clamp(min=0)
    out = m(x).detach()
    grad = torch.randn(k_rep * 2, *out.shape[1:], generator=rng, dtype=dtype)
    return m, x, out, grad


def _conv_op(m, x, out, grad, name, backend, low=None, high=None):
    return ops.lrp_conv(
        x, grad, m.weight.detach(), None if m.bias is None else m.bias.detach(), out,
        list(m.stride), list(m.padding), list(m.dilation), m.groups, _rule(name), RULE_PARAMS[name],
        low, high, backend=backend,
    )


@pytest.mark.parametrize("name", list(RULE_PARAMS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lrp_conv_native_equals_reference(rng, name, dtype):
    """1-D/2-D/3-D, groups, depthwise, stride, dilation, odd sizes, with and without negative inputs,
    one or two relevance blocks per sample."""
    native_or_skip()
    for spec in CONVS:
        positive = bool(torch.randint(0, 2, (1,), generator=rng))
        k_rep = int(torch.randint(1, 3, (1,), generator=rng))
        m, x, out, grad = _case(rng, spec, dtype, positive, k_rep=k_rep)
        low, high = -3.0, torch.linspace(2.0, 3.0, x.shape[1], dtype=dtype)
        a = _conv_op(m, x, out, grad, name, "native", low, high)
        b = _conv_op(m, x, out, grad, name, "reference", low, high)
        tol = 1e-4 if dtype == torch.float32 else 1e-10
        assert a.shape == b.shape == (grad.shape[0], *x.shape[1:])
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item())


@pytest.mark.parametrize("name", list(RULE_PARAMS))
def test_lrp_conv_reference_equals_pass_by_pass(rng, name):
    """The batched reference equals Zennit's one-pass-per-term computation (float64)."""
    for spec in CONVS:
        m, x, out, grad = _case(rng, spec, torch.float64, positive=False, k_rep=2)
        low, high = -3.0, 3.0
        a = _conv_op(m, x, out, grad, name, "reference", low, high)
        b = _generic_backward(_rule(name), RULE_PARAMS[name], (low, high), m, x, out, grad)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * b.abs().max().item())


@pytest.mark.parametrize("name", list(RULE_PARAMS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lrp_linear_native_equals_reference_and_pass_by_pass(rng, name, dtype):
    m = nn.Linear(13, 7).to(dtype)
    nn.init.uniform_(m.bias, -0.5, 0.5)
    x = torch.randn(3, 13, generator=rng, dtype=dtype)
    out = m(x).detach()
    grad = torch.randn(6, 7, generator=rng, dtype=dtype)
    args = (x, grad, m.weight.detach(), m.bias.detach(), out, _rule(name), RULE_PARAMS[name], -2.0, 2.0)
    ref = ops.lrp_linear(*args, backend="reference")
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    if dtype == torch.float64:
        pbp = _generic_backward(_rule(name), RULE_PARAMS[name], (-2.0, 2.0), m, x, out, grad)
        torch.testing.assert_close(ref, pbp, rtol=tol, atol=tol * pbp.abs().max().item())
    native_or_skip()
    nat = ops.lrp_linear(*args, backend="native")
    torch.testing.assert_close(nat, ref, rtol=tol, atol=tol * ref.abs().max().item())


def test_lrp_epsilon_recomputes_without_stored_output(rng):
    m, x, out, grad = _case(rng, CONVS[1], torch.float64, positive=False)
    for backend in ("reference", "native"):
        if backend == "native":
            native_or_skip()
        a = _conv_op(m, x, out, grad, "epsilon", backend)
        b = _conv_op(m, x, None, grad, "epsilon", backend)
        torch.testing.assert_close(a, b)


def test_lrp_ops_bad_input(rng):
    x = torch.randn(2, 3, 8, 8)
    w = torch.randn(4, 3, 3, 3)
    g = torch.randn(2, 4, 6, 6)
    with pytest.raises(ValueError, match="rule must be one of"):
        ops.lrp_conv(x, g, w, rule="nope")
    with pytest.raises(ValueError, match="takes 3 params"):
        ops.lrp_conv(x, g, w, rule="alpha_beta", params=[1.0])
    with pytest.raises(ValueError, match="channels"):
        ops.lrp_conv(torch.randn(2, 5, 8, 8), g, w)
    with pytest.raises(ValueError, match="multiple"):
        ops.lrp_conv(x, torch.randn(3, 4, 6, 6), w)
    with pytest.raises(TypeError, match="dtype"):
        ops.lrp_conv(x, g.double(), w)
    with pytest.raises(ValueError, match="needs low"):
        ops.lrp_conv(x, g, w, rule="zbox", params=[1e-6])
    with pytest.raises(ValueError, match="lrp_linear takes"):
        ops.lrp_linear(x, g, w)


def test_lrp_opcheck():
    native_or_skip()
    x = torch.randn(2, 3, 7, 7).clamp(min=0)
    w = torch.randn(4, 3, 3, 3)
    b = torch.randn(4)
    g = torch.randn(4, 4, 7, 7)
    torch.library.opcheck(
        torch.ops.pyxai.lrp_conv,
        (x, g, w, b, None, [1, 1], [1, 1], [1, 1], 1, L.RULES["zplus"], [1e-6], None, None),
        test_utils=("test_schema", "test_faketensor"),
    )
    torch.library.opcheck(
        torch.ops.pyxai.lrp_linear,
        (torch.randn(3, 5), torch.randn(3, 2), torch.randn(2, 5), None, None, 0, [1e-6], None, None),
        test_utils=("test_schema", "test_faketensor"),
    )
