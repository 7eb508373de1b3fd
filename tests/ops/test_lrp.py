"""lrp ops: native kernels vs the pure-PyTorch reference, the batched executor vs Zennit's
pass-by-pass way of running the same declared rule (pyxai.lrp.rules.module_passes), gradients
(gradcheck, native == reference) and opcheck of the fused elementwise ops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyxai import rules
from pyxai.lrp.rules import module_passes
from pyxai.ops import lrp as ops
from tests.conftest import native_or_skip

RULES = {
    "epsilon": rules.Epsilon(0.01),
    "zplus": rules.ZPlus(),
    "alpha_beta": rules.AlphaBeta(2.0, 1.0),
    "gamma": rules.Gamma(0.25),
    "gamma_simple": rules.Gamma(0.25, generalized=False),
    "zbox": rules.ZBox(-3.0, 3.0),
    "flat": rules.Flat(),
    "wsquare": rules.WSquare(),
}


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


def _conv_op(m, x, out, grad, name, backend, low=None, high=None, nonneg=False):
    return ops.lrp_conv(
        x, grad, m.weight.detach(), None if m.bias is None else m.bias.detach(), out,
        list(m.stride), list(m.padding), list(m.dilation), m.groups, RULES[name].program(),
        low, high, nonneg, backend=backend,
    )


@pytest.mark.parametrize("name", list(RULES))
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
        a = _conv_op(m, x, out, grad, name, "native", low, high, nonneg=positive)
        b = _conv_op(m, x, out, grad, name, "reference", low, high, nonneg=positive)
        tol = 1e-4 if dtype == torch.float32 else 1e-10
        assert a.shape == b.shape == (grad.shape[0], *x.shape[1:])
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item())


@pytest.mark.parametrize("name", list(RULES))
def test_lrp_conv_reference_equals_pass_by_pass(rng, name):
    """The batched executor equals Zennit's one-pass-per-term computation (float64); with x >= 0
    the ``nonneg`` shortcut (x- passes skipped) gives the same relevance as the full rule."""
    for spec in CONVS:
        m, x, out, grad = _case(rng, spec, torch.float64, positive=False, k_rep=2)
        low, high = -3.0, 3.0
        a = _conv_op(m, x, out, grad, name, "reference", low, high)
        b = module_passes(RULES[name].program(), m, x, out, grad, low, high)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * b.abs().max().item())
        xp = x.clamp(min=0)
        outp = m(xp).detach()
        full = _conv_op(m, xp, outp, grad, name, "reference", low, high)
        short = _conv_op(m, xp, outp, grad, name, "reference", low, high, nonneg=True)
        torch.testing.assert_close(short, full, rtol=1e-10, atol=1e-10 * full.abs().max().item())


@pytest.mark.parametrize("name", list(RULES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lrp_linear_native_equals_reference_and_pass_by_pass(rng, name, dtype):
    m = nn.Linear(13, 7).to(dtype)
    nn.init.uniform_(m.bias, -0.5, 0.5)
    x = torch.randn(3, 13, generator=rng, dtype=dtype)
    out = m(x).detach()
    grad = torch.randn(6, 7, generator=rng, dtype=dtype)
    rule = RULES[name].program()
    args = (x, grad, m.weight.detach(), m.bias.detach(), out, rule, -2.0, 2.0)
    ref = ops.lrp_linear(*args, backend="reference")
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    if dtype == torch.float64:
        pbp = module_passes(rule, m, x, out, grad, -2.0, 2.0)
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
    eps = rules.Epsilon().program()
    with pytest.raises(TypeError, match="rule must be a pyxai.ops.lrp.Program"):
        ops.lrp_conv(x, g, w, rule="zplus")
    with pytest.raises(ValueError, match="parameter modifier"):
        ops.Program((ops.Part((ops.Term("x", (1.0, 2.0)),)),))
    with pytest.raises(ValueError, match="input in"):
        ops.Program((ops.Part((ops.Term("y"),)),))
    with pytest.raises(ValueError, match="channels"):
        ops.lrp_conv(torch.randn(2, 5, 8, 8), g, w, rule=eps)
    with pytest.raises(ValueError, match="multiple"):
        ops.lrp_conv(x, torch.randn(3, 4, 6, 6), w, rule=eps)
    with pytest.raises(TypeError, match="dtype"):
        ops.lrp_conv(x, g.double(), w, rule=eps)
    with pytest.raises(ValueError, match="needs low"):
        ops.lrp_conv(x, g, w, rule=rules.ZBox(None, None).program())
    with pytest.raises(ValueError, match="lrp_linear takes"):
        ops.lrp_linear(x, g, w, rule=eps)


def _elementwise_args(rng, dtype=torch.float64, requires_grad=False):
    """Arguments of the three fused ops: 2 groups, 2 parts, K = 2 relevance blocks, gamma masks."""
    def t(*shape):
        return torch.randn(*shape, generator=rng, dtype=dtype).requires_grad_(requires_grad)

    def away(*shape):  # denominators at least 0.1 from 0: 1/z is smooth within gradcheck's step
        z = torch.randn(*shape, generator=rng, dtype=dtype)
        return (z.abs() + 0.1).copysign(z).requires_grad_(requires_grad)

    x = t(3, 4, 5, 6)
    return {
        "lrp_split_sign": (x, 2),
        "lrp_stab_div": (t(6, 4, 5, 6), away(3, 8, 5, 6), away(3, 4, 5, 6).detach(), 2, [1.5, -0.5],
                         [1, 2], 1e-6),
        "lrp_combine": (t(3, 8, 5, 6), t(6, 8, 5, 6), 2, [1.0, -1.0]),
    }


_TWINS = {"lrp_split_sign": ops._split_sign_ref, "lrp_stab_div": ops._stab_div_ref,
          "lrp_combine": ops._combine_ref}


@pytest.mark.parametrize("op", list(_TWINS))
def test_elementwise_native_equals_twin_with_gradients(rng, op):
    """Forward and backward of each fused kernel equal its PyTorch twin; gradcheck (float64)."""
    native_or_skip()
    args = _elementwise_args(rng, requires_grad=True)[op]
    fn = getattr(torch.ops.pyxai, op)
    tensors = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    nat, ref = fn(*args), _TWINS[op](*args)
    torch.testing.assert_close(nat, ref, rtol=1e-12, atol=1e-12)
    cot = torch.randn(nat.shape, generator=rng, dtype=nat.dtype)
    g_nat = torch.autograd.grad(nat, tensors, cot)
    g_ref = torch.autograd.grad(ref, tensors, cot)
    for a, b in zip(g_nat, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

    def f(*ts):
        it = iter(ts)
        return fn(*[next(it) if isinstance(a, torch.Tensor) and a.requires_grad else a for a in args])

    assert torch.autograd.gradcheck(f, tensors)


def test_lrp_opcheck(rng):
    native_or_skip()
    for op, args in _elementwise_args(rng, dtype=torch.float32, requires_grad=True).items():
        torch.library.opcheck(getattr(torch.ops.pyxai, op), args)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_lrp_ops_gradcheck(rng, backend):
    """Relevances are differentiable w.r.t. x, the relevance above, weight and bias (every rule)."""
    if backend == "native":
        native_or_skip()
    m = nn.Conv2d(4, 4, 3, padding=1, groups=2).double()
    lin = nn.Linear(5, 3).double()
    for name in ("epsilon", "zplus", "alpha_beta", "gamma", "zbox", "flat", "wsquare"):
        prog = RULES[name].program()

        def conv(x, grad, w, b, prog=prog):
            return ops.lrp_conv(x, grad, w, b, None, 1, 1, 1, 2, prog, -3.0, 3.0, backend=backend)

        def dense(x, grad, w, b, prog=prog):
            return ops.lrp_linear(x, grad, w, b, None, prog, -3.0, 3.0, backend=backend)

        def t(*shape):
            return torch.randn(*shape, generator=rng, dtype=torch.float64).requires_grad_(True)

        assert torch.autograd.gradcheck(conv, (t(2, 4, 3, 3), t(4, 4, 3, 3), m.weight.detach().clone()
                                               .requires_grad_(True), t(4)), fast_mode=True)
        assert torch.autograd.gradcheck(dense, (t(2, 5), t(2, 3), lin.weight.detach().clone()
                                                .requires_grad_(True), t(3)), fast_mode=True)
