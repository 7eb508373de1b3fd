"""Zennit 0.5.1's own rules with ``zero_params`` and callable stabilisers against pyxai's, on small
Linear / Conv2d layers (every parametrised rule) and a ResNet-18 with random BatchNorm statistics.

Zennit 0.5.1 cannot share the venv with zennit-crp (which pins 0.4.6): it runs in a subprocess
from ``PYXAI_ZENNIT051`` (default ``/tmp/zennit051``, made with
``pip install --no-deps --target /tmp/zennit051 zennit==0.5.1``); the test skips without it.
Each rule is written once, as a constructor expression evaluated with Zennit's classes there and
pyxai's here (``Stabilizer`` is ``zennit.core.Stabilizer`` / ``pyxai.rules.Stabilizer``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

import pyxai
from pyxai import rules
from pyxai.lrp import Composite
from pyxai.lrp import types as T
from pyxai.lrp.composites import layer_map_base
from tests.gradient._models import randomise_bn
from tests.lrp import _zennit051

RULES = [
    "Epsilon(0.01, zero_params='bias')",
    "Epsilon(Stabilizer(0.1, norm_scale=True), zero_params=['weight'])",
    "Epsilon(lambda z: z + 0.5)",
    "ZPlus(zero_params='bias')",
    "ZPlus(stabilizer=Stabilizer(0.2, clip=True), zero_params=['bias'])",
    "AlphaBeta(2.0, 1.0, zero_params='bias')",
    "AlphaBeta(1.0, 0.0, stabilizer=Stabilizer(0.3, norm_scale=True))",
    "Gamma(0.5, zero_params='bias')",
    "Gamma(0.25, stabilizer=Stabilizer(0.2, norm_scale=True, clip=True), zero_params=['weight'])",
    "Gamma(0.25, zero_params=('weight', 'bias'))",
    "ZBox(-2.0, 3.0, zero_params='bias')",
    "ZBox(-2.0, 3.0, stabilizer=Stabilizer(0.5, clip=True), zero_params='weight')",
    "WSquare(zero_params='bias')",
    "WSquare(stabilizer=lambda z: z + 1.0)",
    "Flat(zero_params='bias')",
    "Flat(stabilizer=Stabilizer(0.1, norm_scale=True))",
]
COMPOSITE = ("Gamma(0.25, zero_params='bias')",
             "Epsilon(Stabilizer(0.1, norm_scale=True), zero_params='bias')")

ZENNIT_BODY = r'''
import zennit.rules as zr
from torch import nn
from zennit.composites import LayerMapComposite
from zennit.core import Stabilizer
from zennit.layer import Sum
from zennit.torchvision import ResNetCanonizer
from zennit.types import Activation, AvgPool, BatchNorm, Convolution
ns = {**vars(zr), "Stabilizer": Stabilizer}


def make_composite(exprs):
    conv, lin = (eval(e, ns) for e in exprs)
    base = [(Activation, zr.Pass()), (Sum, zr.Norm()), (AvgPool, zr.Norm()), (BatchNorm, zr.Pass())]
    return LayerMapComposite(base + [(Convolution, conv), (nn.Linear, lin)],
                             canonizers=[ResNetCanonizer()])
'''


def _layers(rng) -> list:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=rng)))
    out = []
    for module, shape in ((nn.Linear(6, 4), (3, 6)), (nn.Conv2d(4, 6, 3, padding=1), (2, 4, 5, 5))):
        module = module.double()
        x = torch.randn(*shape, generator=rng, dtype=torch.float64)
        g = torch.randn(module(x).shape, generator=rng, dtype=torch.float64)
        out.append((module, x, g))
    return out


def test_rules_and_resnet18_equal_zennit_051(rng, tmp_path: Path):
    _zennit051.require()
    layers = _layers(rng)
    cases = [(expr, layer) for expr in RULES for layer in layers]
    model = randomise_bn(torchvision.models.resnet18(num_classes=10), rng).eval()
    x = torch.randn(2, 3, 32, 32, generator=rng)
    target = torch.tensor([2, 5])
    onehot = torch.zeros(2, 10)
    onehot[torch.arange(2), target] = 1
    res = _zennit051.run(ZENNIT_BODY, {"rules": [e for e, _ in cases],
                                       "layers": [lay for _, lay in cases], "composite": COMPOSITE,
                                       "model": model, "x": x, "onehot": onehot}, tmp_path)
    ns = {n: getattr(rules, n) for n in rules.__all__}
    backends = ("reference", "native") if pyxai._native.available("cpu") else ("reference",)
    for (expr, (module, xl, g)), want in zip(cases, res["rels"]):
        rule = eval(expr, ns)
        with torch.no_grad():
            out = module(xl)
        for backend in backends:
            got = rule.backward(module, xl, out, g, backend=backend)
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, msg=lambda m, e=expr: f"{e}: {m}")
    conv, lin = (eval(e, ns) for e in COMPOSITE)
    composite = Composite(layer_map=layer_map_base() + [(T.Convolution, conv), (nn.Linear, lin)])
    want = res["net"]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for backend in backends:
        lrp = pyxai.LRP(model, composite=composite, output_relevance="one_hot", backend=backend)
        got = lrp.attribute(x, target)
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5 * want.abs().max().item())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
