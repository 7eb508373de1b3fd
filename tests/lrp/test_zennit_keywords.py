"""Zennit 0.5.1's rule keywords: ``zero_params`` and float-or-callable stabilisers.

Zennit 0.5.1 is not the installed anchor (0.4.6 has neither keyword), so the rules are checked
here against hand-computed matrix forms (float64), against the default rule on a copy of the layer
whose named parameters were zeroed, and, on a ResNet-18 with random BatchNorm statistics, against
Zennit 0.4.6's own engine running ``BasicHook`` replicas of 0.5.1's ``zero_params="bias"`` rules.
(``test_zennit051_keywords.py`` compares with Zennit 0.5.1 itself where it is at hand.)
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import pyxai
from pyxai import rules
from pyxai.lrp import Composite
from pyxai.lrp import types as T
from pyxai.lrp.composites import layer_map_base
from pyxai.lrp.rules import module_passes
from tests.conftest import native_or_skip

BACKENDS = ("native", "reference")
LOW, HIGH = -2.0, 3.0


def _stab(z, eps=1e-6):
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def _backend(name: str) -> str:
    if name == "native":
        native_or_skip()
    return name


def _linear_case(rng):
    m = nn.Linear(6, 4).double()
    x = torch.randn(3, 6, generator=rng, dtype=torch.float64)
    g = torch.randn(3, 4, generator=rng, dtype=torch.float64)
    with torch.no_grad():
        out = m(x)
    return m, x, out, g


def _hand_zero_bias(name: str, w, b, x, g):
    """Relevance of x (Tensor[N, I]) for a Linear layer (w [O, I], b [O]), Zennit 0.5.1's rule
    ``name`` with ``zero_params="bias"``."""
    wp, wn, xp, xn = w.clamp(min=0), w.clamp(max=0), x.clamp(min=0), x.clamp(max=0)
    if name == "epsilon":
        return x * ((g / _stab(x @ w.T, 0.01)) @ w)
    if name == "zplus":
        s = g / _stab(xp @ wp.T + xn @ wn.T)
        return xp * (s @ wp) + xn * (s @ wn)
    if name == "alpha_beta":
        s1 = g / _stab(xp @ wp.T + xn @ wn.T)
        s2 = g / _stab(xp @ wn.T + xn @ wp.T)
        return 2 * (xp * (s1 @ wp) + xn * (s1 @ wn)) - (xp * (s2 @ wn) + xn * (s2 @ wp))
    if name == "gamma":  # the output mask reads the layer's own output, bias included
        a, c = w + 0.5 * wp, w + 0.5 * wn
        z0 = x @ w.T + b
        s1 = (z0 > 0).double() * g / _stab(xp @ a.T + xn @ c.T)
        s2 = (z0 < 0).double() * g / _stab(xp @ c.T + xn @ a.T)
        return xp * (s1 @ a) + xn * (s1 @ c) + xp * (s2 @ c) + xn * (s2 @ a)
    if name == "gamma_0.4":
        a = w + 0.5 * wp
        return x * ((g / _stab(x @ a.T)) @ a)
    if name == "zbox":
        lo, hi = torch.full_like(x, LOW), torch.full_like(x, HIGH)
        s = g / _stab(x @ w.T - lo @ wp.T - hi @ wn.T)
        return x * (s @ w) - lo * (s @ wp) - hi * (s @ wn)
    if name == "wsquare":
        w2 = w * w
        return (g / _stab(torch.ones_like(x) @ w2.T)) @ w2
    raise KeyError(name)


RULES = {
    "epsilon": lambda **kw: rules.Epsilon(0.01, **kw),
    "zplus": lambda **kw: rules.ZPlus(**kw),
    "alpha_beta": lambda **kw: rules.AlphaBeta(2.0, 1.0, **kw),
    "gamma": lambda **kw: rules.Gamma(0.5, **kw),
    "gamma_0.4": lambda **kw: rules.Gamma(0.5, generalized=False, **kw),
    "zbox": lambda **kw: rules.ZBox(LOW, HIGH, **kw),
    "wsquare": lambda **kw: rules.WSquare(**kw),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(RULES))
def test_zero_bias_linear_equals_hand(rng, name, backend):
    m, x, out, g = _linear_case(rng)
    rule = RULES[name](zero_params="bias")
    got = rule.backward(m, x, out, g, backend=_backend(backend))
    want = _hand_zero_bias(name, m.weight.detach(), m.bias.detach(), x, g)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # ZBox's three passes cancel the bias (b - b+ - b- = 0): its default equals zero_params="bias"
    # (for the other rules the bias may or may not matter: ZPlus ignores an all-negative bias,
    # CI seed 1216802491)
    if name == "zbox":
        assert torch.allclose(RULES[name]().backward(m, x, out, g, backend=backend), want)


def _conv_layers(rng):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    return [
        (nn.Conv2d(4, 6, 3, padding=1, groups=2).double(), (2, 4, 5, 5)),
        (nn.ConvTranspose2d(4, 3, 3, stride=2).double(), (2, 4, 4, 4)),  # pass by pass
        (nn.Linear(6, 5).double(), (2, 3, 6)),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [n for n in RULES if n != "gamma"])
def test_zero_params_equal_the_rule_on_a_zeroed_copy(rng, name, backend):
    """``zero_params`` == the default rule on a copy of the layer with those parameters zeroed
    (generalised Gamma aside: its output mask keeps the bias, checked by hand above)."""
    for module, shape in _conv_layers(rng):
        x = torch.randn(*shape, generator=rng, dtype=torch.float64)
        with torch.no_grad():
            out = module(x)
        g = torch.randn(out.shape, generator=rng, dtype=torch.float64)
        for zero in ("bias", ["weight"], ("weight", "bias")):
            names = [zero] if isinstance(zero, str) else list(zero)
            zeroed = copy.deepcopy(module)
            with torch.no_grad():
                for p in names:
                    getattr(zeroed, p).zero_()
                out0 = zeroed(x)
            before = {k: v.clone() for k, v in module.state_dict().items()}
            got = RULES[name](zero_params=zero).backward(module, x, out, g, backend=_backend(backend))
            want = RULES[name]().backward(zeroed, x, out0, g, backend=backend)
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
            assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_flat_zero_params(rng):
    m, x, out, g = _linear_case(rng)
    flat = rules.Flat().backward(m, x, out, g)
    assert torch.equal(rules.Flat(zero_params="bias").backward(m, x, out, g), flat)  # no bias anyway
    assert torch.equal(rules.Flat(zero_params="weight").backward(m, x, out, g), torch.zeros_like(x))


def test_defaults_are_the_plain_program():
    for make in RULES.values():
        r = make()
        assert r.zero_params == () and r.program() == make(zero_params=None).program()
        assert r.program() == make(zero_params=[]).program()


# ----------------------------------------------------------------------------------------------
# stabilisers


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_stabilizer_is_the_float_one(rng, backend):
    module, shape = _conv_layers(rng)[0]
    x = torch.randn(*shape, generator=rng, dtype=torch.float64)
    out = module(x).detach()
    g = torch.randn(out.shape, generator=rng, dtype=torch.float64)
    for make in (rules.ZPlus, rules.AlphaBeta, rules.Gamma, rules.Flat, rules.WSquare):
        want = make(stabilizer=0.01).backward(module, x, out, g, backend=_backend(backend))
        plain = make(stabilizer=rules.Stabilizer(0.01))
        assert torch.equal(plain.backward(module, x, out, g, backend=backend), want)
    assert rules.Epsilon(rules.Stabilizer(0.25)).epsilon == 0.25


@pytest.mark.parametrize("backend", BACKENDS)
def test_callable_epsilon_linear_equals_hand(rng, backend):
    m, x, out, g = _linear_case(rng)
    w = m.weight.detach()
    got = rules.Epsilon(lambda z: z + 0.5).backward(m, x, out, g, backend=_backend(backend))
    torch.testing.assert_close(got, x * ((g / (x @ w.T + m.bias.detach() + 0.5)) @ w), rtol=1e-10, atol=1e-12)
    # a 3-D input: the callable sees the layer's output Tensor[N, T, C] (statistics over dims 1, 2)
    x3 = torch.randn(2, 3, 6, generator=rng, dtype=torch.float64)
    g3 = torch.randn(2, 3, 4, generator=rng, dtype=torch.float64)
    stab = rules.Stabilizer(0.5, norm_scale=True)
    got = rules.Epsilon(stab, zero_params="bias").backward(m, x3, m(x3).detach(), g3, backend=backend)
    z = x3 @ w.T
    rms = (z * z).mean(dim=(1, 2), keepdim=True).sqrt()
    torch.testing.assert_close(got, x3 * ((g3 / _stab(z, 0.5 * rms)) @ w), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stab", [rules.Stabilizer(0.3, norm_scale=True), rules.Stabilizer(0.5, clip=True),
                                  rules.Stabilizer(0.2, norm_scale=True, clip=True, dim=(1,))])
def test_callable_stabilizer_multi_part_conv(rng, stab):
    """A callable on each part's ``z_p`` in the layer's output layout (grouped conv, 2 and 4 passes):
    the batched ops (both backends) == the pass-by-pass execution through the module's forward."""
    module, shape = _conv_layers(rng)[0]
    x = torch.randn(*shape, generator=rng, dtype=torch.float64)
    out = module(x).detach()
    g = torch.randn(out.shape, generator=rng, dtype=torch.float64)
    for rule in (rules.AlphaBeta(stabilizer=stab), rules.Gamma(0.5, stabilizer=stab, zero_params="bias")):
        want = module_passes(rule.program(), module, x, out, g)
        ref = rule.backward(module, x, out, g, backend="reference")
        torch.testing.assert_close(ref, want, rtol=1e-10, atol=1e-12)
        native_or_skip()
        torch.testing.assert_close(rule.backward(module, x, out, g, backend="native"), ref,
                                   rtol=1e-12, atol=1e-14)


def test_stabilizer_by_hand():
    z = torch.tensor([[-2.0, 0.0, 0.1, -0.05]], dtype=torch.float64)
    torch.testing.assert_close(rules.Stabilizer(0.5, clip=True)(z), torch.tensor([[-2.0, 0.5, 0.5, -0.5]],
                                                                               dtype=torch.float64))
    rms = (z * z).mean().sqrt()
    torch.testing.assert_close(rules.Stabilizer(0.5, norm_scale=True)(z), _stab(z, 0.5 * rms))


def test_norm_callable_stabilizer(rng):
    pool = nn.AvgPool2d(2)
    x = torch.rand(2, 3, 4, 4, generator=rng, dtype=torch.float64)
    out = pool(x)
    g = torch.randn(out.shape, generator=rng, dtype=torch.float64)
    got = rules.Norm(stabilizer=lambda z: z + 1.0).backward(pool, x, out, g)
    _, vjp = torch.func.vjp(pool, x)
    torch.testing.assert_close(got, x * vjp(g / (out + 1.0))[0])
    assert torch.equal(rules.Norm(rules.Stabilizer(1e-3)).backward(pool, x, out, g),
                       rules.Norm(1e-3).backward(pool, x, out, g))


# ----------------------------------------------------------------------------------------------
# bad values


def test_bad_keyword_values():
    with pytest.raises(TypeError, match="zero_params"):
        rules.Epsilon(zero_params=3)
    with pytest.raises(TypeError, match="zero_params"):
        rules.ZPlus(zero_params=["bias", None])
    with pytest.raises(ValueError, match="zero_params.*'bais'"):
        rules.Gamma(zero_params="bais")
    with pytest.raises(TypeError, match="epsilon"):
        rules.Epsilon(epsilon="0.1")
    with pytest.raises(TypeError, match="stabilizer"):
        rules.AlphaBeta(stabilizer=float("nan"))
    with pytest.raises(TypeError, match="stabilizer"):
        rules.ZBox(0.0, 1.0, stabilizer=True)
    with pytest.raises(TypeError, match="epsilon"):
        rules.Stabilizer(epsilon=None)


def test_callable_returning_a_wrong_shape(rng):
    m, x, out, g = _linear_case(rng)
    with pytest.raises(ValueError, match="stabilizer .* must return a tensor shaped like"):
        rules.ZPlus(stabilizer=lambda z: z.sum()).backward(m, x, out, g, backend="reference")


# ----------------------------------------------------------------------------------------------
# ResNet-18 against Zennit's own engine

zennit = pytest.importorskip("zennit")
torchvision = pytest.importorskip("torchvision")


def _zennit_zero_bias_rules():
    """Zennit 0.5.1's ``Epsilon(zero_params="bias")`` and ``ZPlus(zero_params="bias")`` as 0.4.6
    ``BasicHook`` s (its parameter modifiers receive the parameter's name)."""
    from zennit.core import BasicHook, stabilize

    def nobias(fn):
        return lambda p, name: torch.zeros_like(p) if name == "bias" else fn(p)

    epsilon = BasicHook(
        input_modifiers=[lambda i: i], param_modifiers=[nobias(lambda p: p)],
        output_modifiers=[lambda o: o],
        gradient_mapper=lambda g, outs: g / stabilize(outs[0], 1e-6),
        reducer=lambda inputs, grads: inputs[0] * grads[0],
    )
    zplus = BasicHook(
        input_modifiers=[lambda i: i.clamp(min=0), lambda i: i.clamp(max=0)],
        param_modifiers=[nobias(lambda p: p.clamp(min=0)), nobias(lambda p: p.clamp(max=0))],
        output_modifiers=[lambda o: o] * 2,
        gradient_mapper=lambda g, outs: [g / stabilize(sum(outs), 1e-6)] * 2,
        reducer=lambda inputs, grads: inputs[0] * grads[0] + inputs[1] * grads[1],
    )
    return epsilon, zplus


def _random_bn(model: nn.Module, g: torch.Generator) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


def test_resnet18_zero_bias_equals_zennit_engine(rng):
    from zennit import rules as zr
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite
    from zennit.layer import Sum as ZSum
    from zennit.torchvision import ResNetCanonizer
    from zennit.types import Activation, AvgPool, BatchNorm, Convolution

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    model = _random_bn(torchvision.models.resnet18(weights=None, num_classes=10), rng)
    x = torch.randn(2, 3, 32, 32, generator=rng)
    target = torch.tensor([1, 7])
    onehot = torch.zeros(2, 10)
    onehot[torch.arange(2), target] = 1
    eps, zplus = _zennit_zero_bias_rules()
    composite = LayerMapComposite(
        [(Activation, zr.Pass()), (ZSum, zr.Norm()), (AvgPool, zr.Norm()), (BatchNorm, zr.Pass()),
         (Convolution, zplus), (nn.Linear, eps)], canonizers=[ResNetCanonizer()],
    )
    with Gradient(model, composite) as attributor:
        _, want = attributor(x.clone().requires_grad_(True), onehot)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mine = Composite(layer_map=layer_map_base() + [
        (T.Convolution, rules.ZPlus(zero_params="bias")), (nn.Linear, rules.Epsilon(zero_params="bias"))])
    default = Composite(layer_map=layer_map_base() + [
        (T.Convolution, rules.ZPlus()), (nn.Linear, rules.Epsilon())])
    for backend in ("reference", "native") if pyxai._native.available("cpu") else ("reference",):
        lrp = pyxai.LRP(model, composite=mine, output_relevance="one_hot", backend=backend)
        got = lrp.attribute(x, target)
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5 * want.abs().max().item())
    # the merged BatchNorms' biases matter: the default rules give other relevances
    other = pyxai.LRP(model, composite=default, output_relevance="one_hot").attribute(x, target)
    assert (other - want).abs().max() > 1e-3 * want.abs().max()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # the model as found


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1"])
def test_named_composites_take_zero_params(rng, composite):
    """``LRP(..., zero_params="bias")`` == the same composite built from rules with that keyword."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    model = _random_bn(torchvision.models.resnet18(weights=None, num_classes=10), rng)
    x = torch.randn(1, 3, 32, 32, generator=rng)
    kw = dict(low=-3.0, high=3.0, stabilizer=rules.Stabilizer(1e-4))
    got = pyxai.LRP(model, composite=composite, zero_params="bias", **kw).attribute(x, target=3)
    from pyxai.lrp.composites import named_composite

    named = named_composite(composite, zero_params="bias", **kw)
    declared = [r for _, r in named.layer_map + named.first_map if hasattr(r, "program")]
    assert len(declared) >= 2 and all(r.zero_params == ("bias",) for r in declared)
    # the same arithmetic, but not always the same bits: float32 reductions round with the
    # tensors' memory alignment (seen here: 1,100 of 3,072 values 1 ulp apart in some processes)
    torch.testing.assert_close(got, pyxai.LRP(model, composite=named).attribute(x, target=3),
                               rtol=1e-5, atol=1e-6 * float(got.abs().max()))
    plain = pyxai.LRP(model, composite=composite, **kw).attribute(x, target=3)
    assert not torch.allclose(got, plain)
    with pytest.raises(ValueError, match="zero_params"):
        pyxai.LRP(model, composite=composite, zero_params="bais", **kw)
