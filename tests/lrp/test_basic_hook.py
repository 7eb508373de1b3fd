"""Custom rules in Zennit's form: ``pyxai.rules.BasicHook`` with ``ParamMod`` / ``NoMod`` /
``ClampMod`` / ``GammaMod`` / ``zero_bias``.

(a) rules written as Zennit users write them equal pyxai's declared rules (Epsilon, ZPlus, Gamma,
AlphaBeta, Flat, WSquare) on Linear / Conv2d / ConvTranspose2d (rule.backward with K relevance
blocks, and rule.register) and on a small conv net in a Composite (also with create_graph: the
parameter gradients of the relevances); (b) they equal Zennit 0.5.1's BasicHook itself, Zennit's
quirks included (a subprocess from ``PYXAI_ZENNIT051``, default ``/tmp/zennit051``: see
tests/lrp/_zennit051.py; skipped without it); (c) the user's module is untouched
during and after; (d) bad arguments raise errors naming them. float64, fresh random inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import pyxai
from pyxai import rules
from pyxai.engine.view import same_state, state_fingerprint
from pyxai.lrp import Composite
from pyxai.lrp.composites import layer_map_base
from pyxai.rules import BasicHook, ClampMod, GammaMod, NoMod, ParamMod, zero_bias
from tests.lrp import _zennit051

TOL = {"rtol": 1e-10, "atol": 1e-12}


def stab(z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zennit's stabiliser, as a user writes it: ``z + eps * sign(z)``, sign(0) = +1."""
    return z + eps * ((z == 0).to(z) + z.sign())


def pos(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(min=0)


def neg(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(max=0)


# ---- custom rules, written as Zennit users write them


class MyEpsilon(BasicHook):
    def __init__(self, epsilon: float = 1e-6) -> None:
        super().__init__(
            input_modifiers=[lambda x: x],
            param_modifiers=[NoMod()],
            output_modifiers=[lambda out: out],
            gradient_mapper=lambda grad, outputs: grad / stab(outputs[0], epsilon),
            reducer=lambda inputs, gradients: inputs[0] * gradients[0],
        )


def my_zplus() -> BasicHook:
    return BasicHook(
        input_modifiers=[pos, neg],
        param_modifiers=[ClampMod(min=0.0), ClampMod(max=0.0, zero_params=zero_bias())],
        gradient_mapper=lambda grad, outputs: [grad / stab(outputs[0] + outputs[1])] * 2,
        reducer=lambda inputs, gradients: inputs[0] * gradients[0] + inputs[1] * gradients[1],
    )


def my_gamma(gamma: float) -> BasicHook:
    """Zennit 0.5's generalised Gamma: z > 0 and z < 0 units get their own denominators."""
    return BasicHook(
        input_modifiers=[pos, neg, pos, neg, lambda x: x],
        param_modifiers=[GammaMod(gamma, min=0.0), GammaMod(gamma, max=0.0, zero_params=zero_bias()),
                         GammaMod(gamma, max=0.0), GammaMod(gamma, min=0.0, zero_params="bias"), NoMod()],
        output_modifiers=[lambda out: out] * 5,
        gradient_mapper=lambda grad, outs: (
            [(outs[4] > 0) * grad / stab(outs[0] + outs[1])] * 2
            + [(outs[4] < 0) * grad / stab(outs[2] + outs[3])] * 2 + [torch.zeros_like(grad)]
        ),
        reducer=lambda inputs, gradients: sum(i * g for i, g in zip(inputs[:4], gradients[:4])),
    )


def my_alpha_beta(alpha: float, beta: float) -> BasicHook:
    """Parameter modifiers as plain callables (param, name) and as ParamMod objects."""
    return BasicHook(
        input_modifiers=[pos, neg, pos, neg],
        param_modifiers=[lambda p, name: p.clamp(min=0),
                         ParamMod(lambda p, _: p.clamp(max=0), zero_params="bias"),
                         lambda p, name: p.clamp(max=0),
                         ParamMod(lambda p, _: p.clamp(min=0), zero_params="bias")],
        gradient_mapper=lambda grad, o: [grad / stab(o[0] + o[1])] * 2 + [grad / stab(o[2] + o[3])] * 2,
        reducer=lambda i, g: alpha * (i[0] * g[0] + i[1] * g[1]) - beta * (i[2] * g[2] + i[3] * g[3]),
    )


def my_flat() -> BasicHook:
    return BasicHook(
        input_modifiers=[torch.ones_like],
        param_modifiers=[ParamMod(lambda p, _: torch.ones_like(p), zero_params=zero_bias(),
                                  require_params=False)],
        reducer=lambda inputs, gradients: gradients[0],
    )


def my_wsquare() -> BasicHook:
    return BasicHook(input_modifiers=[torch.ones_like], param_modifiers=[ParamMod(lambda p, _: p ** 2)],
                     reducer=lambda inputs, gradients: gradients[0])


PAIRS = {
    "default": (lambda: BasicHook(), lambda: rules.Epsilon(1e-6)),
    "epsilon": (lambda: MyEpsilon(0.01), lambda: rules.Epsilon(0.01)),
    "zplus": (my_zplus, rules.ZPlus),
    "gamma": (lambda: my_gamma(0.5), lambda: rules.Gamma(0.5)),
    "alpha_beta": (lambda: my_alpha_beta(2.0, 1.0), lambda: rules.AlphaBeta(2.0, 1.0)),
    "flat": (my_flat, rules.Flat),
    "wsquare": (my_wsquare, rules.WSquare),
}
LAYERS = {
    "linear": (lambda: nn.Linear(6, 4), (3, 6)),
    "conv": (lambda: nn.Conv2d(3, 5, 3, padding=1), (2, 3, 6, 6)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2), (2, 3, 4, 4)),
}


def _layer(kind: str, rng: torch.Generator, blocks: int = 1):
    make, shape = LAYERS[kind]
    module = make().double()
    x = torch.randn(*shape, generator=rng, dtype=torch.float64)
    with torch.no_grad():
        out = module(x)
    g = torch.randn(blocks * out.shape[0], *out.shape[1:], generator=rng, dtype=torch.float64)
    return module, x, out, g


def _registered(rule, module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    handle = rule.register(module)
    try:
        z = x.clone().requires_grad_(True)
        (rel,) = torch.autograd.grad(module(z), z, g)
    finally:
        handle.remove()
    return rel


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("name", list(PAIRS))
def test_custom_rules_equal_declared_rules(name, layer, rng):
    custom, declared = (make() for make in PAIRS[name])
    module, x, out, g = _layer(layer, rng, blocks=2)  # two relevance blocks (CRP's concepts)
    want = declared.backward(module, x, out, g, backend="reference")
    torch.testing.assert_close(custom.backward(module, x, out, g), want, **TOL)
    n = x.shape[0]
    torch.testing.assert_close(_registered(custom, module, x, g[:n]), want[:n], **TOL)
    torch.testing.assert_close(_registered(custom.copy(), module, x, g[n:]), want[n:], **TOL)
    assert not module._forward_hooks and not module._forward_pre_hooks


def test_parameter_free_module_equals_norm(rng):
    """Zennit's Norm as a BasicHook (``NoMod(param_keys=[])``) on a pooling layer."""
    module = nn.AvgPool2d(2)
    x = torch.randn(2, 3, 6, 6, generator=rng, dtype=torch.float64)
    out = module(x)
    g = torch.randn(out.shape, generator=rng, dtype=torch.float64)
    norm = BasicHook(param_modifiers=[NoMod(param_keys=[])])
    want = rules.Norm().backward(module, x, out, g)
    torch.testing.assert_close(norm.backward(module, x, None, g), want, **TOL)
    torch.testing.assert_close(_registered(norm, module, x, g), want, **TOL)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.flat(self.pool(h)))


def _composite(first, conv, linear) -> Composite:
    return Composite(layer_map=layer_map_base() + [(nn.Conv2d, conv), (nn.Linear, linear)],
                     first_map=[(nn.Conv2d, first)])


def test_custom_rules_in_composite(rng):
    model = Net().double().eval()
    x = torch.randn(3, 3, 9, 9, generator=rng, dtype=torch.float64)
    target = torch.tensor([0, 3, 1])
    custom = _composite(my_zplus(), my_gamma(0.25), MyEpsilon(0.01))
    declared = _composite(rules.ZPlus(), rules.Gamma(0.25), rules.Epsilon(0.01))
    before = state_fingerprint(model)
    rels, grads = [], []
    for comp in (custom, declared):
        lrp = pyxai.LRP(model, composite=comp, canonizers=None, backend="reference")
        rels.append(lrp.attribute(x, target))
        rel = lrp.attribute(x, target, create_graph=True)
        grads.append(torch.autograd.grad((rel ** 2).sum(), list(model.parameters())))
        torch.testing.assert_close(rel.detach(), rels[-1], **TOL)
    torch.testing.assert_close(rels[0], rels[1], **TOL)
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    assert same_state(before, state_fingerprint(model)) == []


# ---- (b) Zennit 0.5.1 itself

ZENNIT_RULES = [
    "BasicHook()",
    "BasicHook(param_modifiers=[NoMod(zero_params='bias')],"
    " gradient_mapper=lambda g, o: g / Stabilizer(0.1)(o[0]))",
    "BasicHook(input_modifiers=[lambda x: x.clamp(min=0), lambda x: x.clamp(max=0)],"
    " param_modifiers=[ClampMod(min=0.0), ClampMod(max=0.0, zero_params=zero_bias())],"
    " gradient_mapper=lambda g, o: [g / Stabilizer(1e-6)(o[0] + o[1])] * 2,"
    " reducer=lambda i, gr: i[0] * gr[0] + i[1] * gr[1])",
    "BasicHook(input_modifiers=[lambda x: x.clamp(min=0), lambda x: x.clamp(max=0), lambda x: x],"
    " param_modifiers=[GammaMod(0.5, min=0.0), GammaMod(0.5, max=0.0, zero_params=zero_bias()), NoMod()],"
    " gradient_mapper=lambda g, o: [(o[2] > 0) * g / Stabilizer(1e-6)(o[0] + o[1])] * 2"
    " + [torch.zeros_like(g)],"
    " reducer=lambda i, gr: i[0] * gr[0] + i[1] * gr[1])",
    # plain callables; both passes get the same (unmodified) input tensor: each gradient sums both
    "BasicHook(param_modifiers=[lambda p, name: p.clamp(min=0), lambda p, name: 0.5 * p.clamp(max=0)])",
    # the unmodified input first, then a clamped one: a tensor of its own (no gradient flows back)
    "BasicHook(input_modifiers=[lambda x: x, lambda x: x.clamp(min=0)],"
    " param_modifiers=[NoMod(), GammaMod(0.5, min=0.0, param_keys=['weight'])],"
    " output_modifiers=[lambda o: o, lambda o: 2 * o])",
    "BasicHook(input_modifiers=[torch.ones_like],"
    " param_modifiers=[ParamMod(lambda p, _: p ** 2, zero_params='bias')],"
    " reducer=lambda i, gr: gr[0])",
    "BasicHook(param_modifiers=[ParamMod(lambda p, name: 0.5 * p, param_keys=['weight', 'missing'],"
    " require_params=False)], gradient_mapper=lambda g, o: [g / Stabilizer(0.2, norm_scale=True)(o[0])])",
]
COMPOSITE = (ZENNIT_RULES[2], ZENNIT_RULES[3], ZENNIT_RULES[1])  # first conv, convs, linear

ZENNIT_BODY = r'''
import zennit.core as zc, zennit.rules as zr
from torch import nn
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.types import Activation, AvgPool
ns = {"torch": torch, "BasicHook": zc.BasicHook, "ParamMod": zc.ParamMod, "Stabilizer": zc.Stabilizer,
      "NoMod": zr.NoMod, "ClampMod": zr.ClampMod, "GammaMod": zr.GammaMod, "zero_bias": zr.zero_bias}


def make_composite(exprs):
    first, conv, lin = (eval(e, ns) for e in exprs)
    return SpecialFirstLayerMapComposite([(Activation, zr.Pass()), (AvgPool, zr.Norm()),
                                          (nn.Conv2d, conv), (nn.Linear, lin)], [(nn.Conv2d, first)])
'''


def test_basic_hook_equals_zennit_051(rng, tmp_path: Path):
    _zennit051.require()
    cases = [(expr, _layer(kind, rng)) for expr in ZENNIT_RULES for kind in ("linear", "conv")]
    model = Net().double().eval()
    x = torch.randn(2, 3, 9, 9, generator=rng, dtype=torch.float64)
    target = torch.tensor([4, 1])
    onehot = torch.zeros(2, 5, dtype=torch.float64)
    onehot[torch.arange(2), target] = 1
    res = _zennit051.run(ZENNIT_BODY, {"rules": [e for e, _ in cases],
                                       "layers": [(m, xl, g) for _, (m, xl, _, g) in cases],
                                       "composite": COMPOSITE, "model": model, "x": x,
                                       "onehot": onehot}, tmp_path)
    ns = {n: getattr(rules, n) for n in rules.__all__} | {"torch": torch}
    for (expr, (module, xl, out, g)), want in zip(cases, res["rels"]):
        msg = lambda m, e=expr: f"{e}: {m}"  # noqa: E731
        torch.testing.assert_close(_registered(eval(expr, ns), module, xl, g), want, **TOL, msg=msg)
        torch.testing.assert_close(eval(expr, ns).backward(module, xl, out, g), want, **TOL, msg=msg)
    first, conv, lin = (eval(e, ns) for e in COMPOSITE)
    lrp = pyxai.LRP(model, composite=_composite(first, conv, lin), canonizers=None,
                    output_relevance="one_hot")
    torch.testing.assert_close(lrp.attribute(x, target), res["net"], **TOL)


# ---- (c) the user's module is never written to


def test_module_untouched_during_and_after(rng):
    model = Net().double().eval()
    module = model.conv2
    weight, bias = module.weight, module.bias
    w0, b0 = weight.detach().clone(), bias.detach().clone()
    probe = torch.randn(1, 6, 5, 5, generator=rng, dtype=torch.float64)
    with torch.no_grad():
        expected = module(probe)
    seen = []

    def watch(out: torch.Tensor) -> torch.Tensor:
        # what another thread sees while a pass runs: the module's own tensors, unmodified
        with torch.no_grad():
            seen.append(module.weight is weight and module.bias is bias and torch.equal(weight, w0)
                        and torch.equal(bias, b0) and torch.equal(module(probe), expected))
        return out

    rule = BasicHook(input_modifiers=[pos, neg], param_modifiers=[ClampMod(min=0.0), lambda p, n: 3 * p],
                     output_modifiers=[watch, watch])
    before = state_fingerprint(model)
    x = torch.randn(2, 6, 5, 5, generator=rng, dtype=torch.float64)
    _registered(rule, module, x, torch.randn(2, 8, 2, 2, generator=rng, dtype=torch.float64))
    assert same_state(before, state_fingerprint(model)) == []
    comp = Composite(layer_map=layer_map_base() + [(nn.Conv2d, rule), (nn.Linear, rules.Epsilon())])
    pyxai.LRP(model, composite=comp, canonizers=None).attribute(
        torch.randn(2, 3, 9, 9, generator=rng, dtype=torch.float64), 0)
    assert len(seen) == 2 * (1 + 2) and all(seen)  # register: one layer; LRP: both convolutions
    assert same_state(before, state_fingerprint(model)) == []
    # a modifier writing in place raises before it writes (frozen parameters too)
    module.requires_grad_(False)
    bad = BasicHook(param_modifiers=[lambda p, n: p.clamp_(min=0)])
    with pytest.raises(RuntimeError, match="in place"):
        bad.backward(module, x, None, torch.randn(2, 8, 2, 2, dtype=torch.float64))
    assert torch.equal(weight, w0) and torch.equal(bias, b0)


# ---- parameter modifiers and (d) bad arguments


def test_param_mods():
    lin = nn.Linear(3, 2).double()
    assert set(NoMod().params(lin)) == {"weight", "bias"}
    assert ParamMod(lambda p, n: p + 1, param_keys=[]).params(lin) == {}
    zeroed = NoMod(zero_params="bias").params(lin)
    assert torch.equal(zeroed["weight"], lin.weight) and not zeroed["bias"].any()
    gm = GammaMod(0.5, max=0.0, param_keys="weight").params(lin)
    assert list(gm) == ["weight"]
    torch.testing.assert_close(gm["weight"], lin.weight + 0.5 * lin.weight.clamp(max=0))
    assert ParamMod.ensure(gm_mod := GammaMod(min=0.0)) is gm_mod
    lenient = ParamMod(lambda p, n: p, param_keys=["weight", "nope"], require_params=False)
    assert set(lenient.params(lin)) == {"weight"}
    with pytest.raises(RuntimeError, match="nope"):
        ParamMod(lambda p, n: p, param_keys=["weight", "nope"]).params(lin)
    assert zero_bias() == ["bias"] and zero_bias("weight") == ["weight", "bias"]
    assert zero_bias(["bias", "weight"]) == ["bias", "weight"]
    w0 = lin.weight.detach().clone()
    with ClampMod(min=0.0)(lin) as modified:  # Zennit's context manager: a private copy
        assert modified is not lin and torch.equal(modified.weight, w0.clamp(min=0))
        assert torch.equal(lin.weight, w0)
    assert torch.equal(lin.weight, w0)


def _ident(x):
    return x


BAD = [
    (lambda: BasicHook(input_modifiers=[_ident, _ident], param_modifiers=[NoMod()]), ValueError,
     "input_modifiers.*param_modifiers"),
    (lambda: BasicHook(param_modifiers=[NoMod()], output_modifiers=[_ident] * 3), ValueError,
     "output_modifiers"),
    (lambda: BasicHook(input_modifiers=[]), ValueError, "at least one pass"),
    (lambda: BasicHook(param_modifiers=[NoMod(), 3]), TypeError, r"param_modifiers\[1\]"),
    (lambda: BasicHook(param_modifiers=NoMod()), TypeError, "param_modifiers must be a list"),
    (lambda: BasicHook(input_modifiers=_ident), TypeError, "input_modifiers must be a list"),
    (lambda: BasicHook(output_modifiers=[None]), TypeError, r"output_modifiers\[0\]"),
    (lambda: BasicHook(gradient_mapper=1.0), TypeError, "gradient_mapper"),
    (lambda: BasicHook(reducer="sum"), TypeError, "reducer"),
    (lambda: BasicHook(stabilizer="big"), TypeError, "stabilizer"),
    (lambda: ParamMod("clamp"), TypeError, "modifier"),
    (lambda: ParamMod(_ident, zero_params=3), TypeError, "zero_params"),
    (lambda: NoMod(param_keys=[1]), TypeError, "param_keys"),
    (lambda: ClampMod(), ValueError, "min or max"),
    (lambda: GammaMod(0.25), ValueError, "min or max"),
    (lambda: ClampMod(min="0"), TypeError, "min"),
    (lambda: GammaMod(gamma=None, min=0.0), TypeError, "gamma"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments(case):
    make, exc, match = BAD[case]
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("rule, exc, match", [
    (BasicHook(param_modifiers=[NoMod()] * 2, gradient_mapper=lambda g, o: g), ValueError, "gradient_mapper"),
    (BasicHook(reducer=lambda i, g: g[0].sum()), ValueError, "reducer"),
    (BasicHook(param_modifiers=[lambda p, n: p[:1]]), ValueError, "shaped like"),
    (BasicHook(param_modifiers=[lambda p, n: 2.0]), ValueError, "shaped like"),
    (BasicHook(input_modifiers=[lambda x: x.tolist()]), TypeError, "input modifier"),
])
def test_bad_modifiers_at_backward(rule, exc, match, rng):
    module, x, out, g = _layer("linear", rng)
    with pytest.raises(exc, match=match):
        rule.backward(module, x, out, g)
