"""Each rule against an independent matrix-form implementation, on small linear and conv layers.

A layer is written as a dense matrix ``z = M x + b`` (a convolution's M is built by applying it to
the unit basis); every rule is then a few lines of matrix algebra (SPECS §7.2), float64.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyxai import rules
from tests.conftest import native_or_skip


def _stab(z, eps=1e-6):
    return z + eps * torch.where(z >= 0, 1.0, -1.0).double()


def _dense(module: nn.Module, x_shape) -> tuple[torch.Tensor, torch.Tensor]:
    """(M [out, in], b_full [out]) with module(x).flatten() == M @ x.flatten() + b_full."""
    n_in = int(torch.tensor(x_shape[1:]).prod())
    with torch.no_grad():
        basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *x_shape[1:])
        zero = module(torch.zeros(1, *x_shape[1:], dtype=torch.float64)).reshape(-1)
        cols = module(basis).reshape(n_in, -1) - zero
    return cols.T.contiguous(), zero


def _pattern(module, x_shape):
    w0 = module.weight.data.clone()
    b0 = None if module.bias is None else module.bias.data.clone()
    module.weight.data.fill_(1.0)
    if b0 is not None:
        module.bias.data.zero_()
    m, _ = _dense(module, x_shape)
    module.weight.data.copy_(w0)
    if b0 is not None:
        module.bias.data.copy_(b0)
    return m


def _bias_full(module, x_shape, fn):
    """Per-output bias after ``fn`` (broadcast over positions)."""
    if module.bias is None:
        n_out = _dense(module, x_shape)[0].shape[0]
        return torch.zeros(n_out, dtype=torch.float64)
    out = module(torch.zeros(1, *x_shape[1:], dtype=torch.float64))
    shape = [1, -1] + [1] * (out.dim() - 2)
    return fn(module.bias.detach()).reshape(shape).expand_as(out).reshape(-1)


def _matrix_rule(name, module, x, r):
    """Relevance of x (one sample, flat) by the rule in matrix form."""
    m, b = _dense(module, (1, *x.shape))
    xf, rf = x.reshape(-1), r.reshape(-1)
    mp, mn = m.clamp(min=0), m.clamp(max=0)
    xp, xn = xf.clamp(min=0), xf.clamp(max=0)
    bp = _bias_full(module, (1, *x.shape), lambda t: t.clamp(min=0))
    bn = _bias_full(module, (1, *x.shape), lambda t: t.clamp(max=0))
    if name == "epsilon":
        z = m @ xf + b
        return xf * (m.T @ (rf / _stab(z, 0.01)))
    if name == "zplus":
        s = rf / _stab(mp @ xp + mn @ xn + bp)
        return xp * (mp.T @ s) + xn * (mn.T @ s)
    if name == "alpha_beta":
        s1 = rf / _stab(mp @ xp + mn @ xn + bp)
        s2 = rf / _stab(mn @ xp + mp @ xn + bn)
        return 2 * (xp * (mp.T @ s1) + xn * (mn.T @ s1)) - (xp * (mn.T @ s2) + xn * (mp.T @ s2))
    if name == "gamma":
        g = 0.25
        a, c = m + g * mp, m + g * mn
        z = m @ xf + b
        s1 = (z > 0).double() * rf / _stab(a @ xp + c @ xn + b + g * bp)
        s2 = (z < 0).double() * rf / _stab(c @ xp + a @ xn + b + g * bn)
        return xp * (a.T @ s1) + xn * (c.T @ s1) + xp * (c.T @ s2) + xn * (a.T @ s2)
    if name == "zbox":
        lo, hi = torch.full_like(xf, -2.0), torch.full_like(xf, 3.0)
        s = rf / _stab(m @ xf - mp @ lo - mn @ hi)
        return xf * (m.T @ s) - lo * (mp.T @ s) - hi * (mn.T @ s)
    if name == "flat":
        ones = _pattern(module, (1, *x.shape))
        return ones.T @ (rf / _stab(ones.sum(1)))
    if name == "wsquare":
        m2 = m * m
        b2 = _bias_full(module, (1, *x.shape), lambda t: t * t)
        return m2.T @ (rf / _stab(m2.sum(1) + b2))
    raise AssertionError(name)


RULES = {
    "epsilon": rules.Epsilon(0.01),
    "zplus": rules.ZPlus(),
    "alpha_beta": rules.AlphaBeta(2, 1),
    "gamma": rules.Gamma(0.25),
    "zbox": rules.ZBox(-2.0, 3.0),
    "flat": rules.Flat(),
    "wsquare": rules.WSquare(),
}

LAYERS = {
    "linear": lambda: (nn.Linear(7, 5), (7,)),
    "conv2d": lambda: (nn.Conv2d(3, 4, 3, stride=2, padding=1), (3, 7, 6)),
    "conv2d_groups": lambda: (nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False), (4, 5, 5)),
    "conv1d": lambda: (nn.Conv1d(2, 3, 4, stride=1, padding=1), (2, 9)),
    "conv_transpose2d": lambda: (nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), (3, 4, 4)),
}


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("name", list(RULES))
def test_rule_matches_matrix_form(rng, name, layer):
    module, shape = LAYERS[layer]()
    module = module.double()
    if module.bias is not None:
        nn.init.uniform_(module.bias, -0.5, 0.5)
    x = torch.randn(2, *shape, generator=rng, dtype=torch.float64)
    out = module(x).detach()
    r = torch.randn(out.shape, generator=rng, dtype=torch.float64)
    backends = ["reference"]
    from pyxai import _native

    if _native.available("cpu"):
        backends.append("native")
    for backend in backends:
        got = RULES[name].backward(module, x, out, r, backend)
        for i in range(2):
            want = _matrix_rule(name, module, x[i], r[i]).reshape(shape)
            torch.testing.assert_close(got[i], want, rtol=1e-9, atol=1e-9 * want.abs().max().item())


def test_pass_and_norm_rules(rng):
    x = torch.rand(2, 3, 4, 4, generator=rng, dtype=torch.float64)
    pool = nn.AvgPool2d(2)
    out = pool(x)
    r = torch.randn(out.shape, generator=rng, dtype=torch.float64)
    got = rules.Norm().backward(pool, x, out, r)
    want = x * torch.repeat_interleave(torch.repeat_interleave(r / _stab(out) / 4, 2, 2), 2, 3)
    torch.testing.assert_close(got, want)
    assert torch.equal(rules.Pass().backward(nn.ReLU(), x, x, x * 2), x * 2)


def test_alpha_beta_needs_difference_one():
    with pytest.raises(ValueError, match="alpha - beta"):
        rules.AlphaBeta(3, 1)


def test_native_used_when_available():
    native_or_skip()
    m = nn.Conv2d(2, 3, 3).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    r = torch.randn(1, 3, 3, 3, dtype=torch.float64)
    a = rules.ZPlus().backward(m, x, None, r, "native")
    b = rules.ZPlus().backward(m, x, None, r, "reference")
    torch.testing.assert_close(a, b)


def test_user_rule_without_nonneg_keyword(rng):
    """A user's Rule with the earlier backward signature (no ``nonneg``) still runs."""
    import pyxai
    from pyxai.lrp import Composite

    class Halve(rules.Rule):
        def backward(self, module, x, out, grad, backend=None):
            return grad * 0.5

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.rand(3, 4, generator=rng)
    comp = Composite(layer_map=[(nn.ReLU, Halve()), (nn.Linear, rules.Epsilon())])
    got = pyxai.LRP(model, composite=comp).attribute(x, target=1)
    want = pyxai.LRP(model, composite=Composite(layer_map=[(nn.ReLU, rules.Pass()),
                                                           (nn.Linear, rules.Epsilon())])).attribute(x, 1)
    torch.testing.assert_close(got, want * 0.5)
