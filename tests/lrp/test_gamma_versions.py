"""Which Zennit each Gamma rule equals: ``epsilon_gamma_box``'s default (the generalised Gamma)
equals Zennit 0.5.1, ``gamma_rule="zennit<0.5"`` (or a ``Gamma(generalized=False)`` object as
``gamma``) equals Zennit 0.4.6 — on a torchvision ResNet-18 with randomised BatchNorm statistics
and affine parameters, Zennit's own ResNetCanonizer and rules.

Zennit 0.5.1 cannot share the venv with zennit-crp (which pins 0.4.6): it is imported in a
subprocess from ``PYXAI_ZENNIT051`` (default ``/tmp/zennit051``, made with
``pip install --no-deps --target /tmp/zennit051 zennit==0.5.1``); the test skips without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import pyxai
from pyxai import rules as R

LOW, HIGH = -3.0, 3.0
TOL = 2e-5
ZENNIT051 = os.environ.get("PYXAI_ZENNIT051", "/tmp/zennit051")

ZENNIT_SCRIPT = r'''
import sys, torch
sys.path.insert(0, sys.argv[1])
import zennit, zennit.rules as zr
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.layer import Sum
from zennit.torchvision import ResNetCanonizer
from zennit.types import Activation, AvgPool, BatchNorm, Convolution
data = torch.load(sys.argv[2], weights_only=False)
model = data["model"]
base = [(Activation, zr.Pass()), (Sum, zr.Norm()), (AvgPool, zr.Norm()), (BatchNorm, zr.Pass())]
comp = SpecialFirstLayerMapComposite(base + [(Convolution, zr.Gamma(0.25)), (nn.Linear, zr.Epsilon())],
                                     [(Convolution, zr.ZBox(-3.0, 3.0))], canonizers=[ResNetCanonizer()])
with Gradient(model, comp) as attributor:
    _, rel = attributor(data["x"].clone().requires_grad_(True), data["onehot"])
import importlib.metadata as md
torch.save({"rel": rel, "version": md.version("zennit"), "file": zennit.__file__}, sys.argv[3])
'''


def _setup(rng):
    from tests.gradient._models import randomise_bn

    model = randomise_bn(torchvision.models.resnet18(num_classes=10), rng).eval()
    x = torch.randn(2, 3, 32, 32, generator=rng)
    target = torch.randint(0, 10, (2,), generator=rng)
    onehot = torch.zeros(2, 10)
    onehot[torch.arange(2), target] = 1
    return model, x, target, onehot


def _zennit_composite(zr, canonizers):
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.layer import Sum
    from zennit.types import Activation, AvgPool, BatchNorm, Convolution

    base = [(Activation, zr.Pass()), (Sum, zr.Norm()), (AvgPool, zr.Norm()), (BatchNorm, zr.Pass())]
    return SpecialFirstLayerMapComposite(
        base + [(Convolution, zr.Gamma(0.25)), (torch.nn.Linear, zr.Epsilon())],
        [(Convolution, zr.ZBox(LOW, HIGH))], canonizers=canonizers)


def test_gamma_rule_zennit04_equals_installed_zennit(rng):
    import importlib.metadata as md

    pytest.importorskip("zennit")
    if not md.version("zennit").startswith("0.4"):
        pytest.skip(f"installed zennit is {md.version('zennit')}, not 0.4.x")
    from zennit import rules as zr
    from zennit.attribution import Gradient
    from zennit.torchvision import ResNetCanonizer

    model, x, target, onehot = _setup(rng)
    with Gradient(model, _zennit_composite(zr, [ResNetCanonizer()])) as attributor:
        _, want = attributor(x.clone().requires_grad_(True), onehot)
    kw = dict(composite="epsilon_gamma_box", low=LOW, high=HIGH, output_relevance="one_hot")
    old = pyxai.LRP(model, gamma_rule="zennit<0.5", **kw).attribute(x, target=target)
    torch.testing.assert_close(old, want, rtol=TOL, atol=TOL * want.abs().max().item())
    obj = pyxai.LRP(model, gamma=R.Gamma(0.25, generalized=False), **kw).attribute(x, target)
    torch.testing.assert_close(obj, old, rtol=0, atol=0)
    new = pyxai.LRP(model, **kw).attribute(x, target=target)
    assert (new - old).abs().max() > 1e-2 * old.abs().max()  # the two rules differ


def test_default_gamma_equals_zennit_051(rng, tmp_path: Path):
    if not (Path(ZENNIT051) / "zennit").is_dir():
        pytest.skip(f"zennit 0.5.1 not found at {ZENNIT051} (pip install --no-deps --target "
                    f"{ZENNIT051} zennit==0.5.1)")
    model, x, target, onehot = _setup(rng)
    src, dst = tmp_path / "in.pt", tmp_path / "out.pt"
    torch.save({"model": model, "x": x, "onehot": onehot}, src)
    proc = subprocess.run([sys.executable, "-c", ZENNIT_SCRIPT, ZENNIT051, str(src), str(dst)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = torch.load(dst, weights_only=False)
    assert res["version"] == "0.5.1" and res["file"].startswith(ZENNIT051)
    want = res["rel"]
    got = pyxai.LRP(model, composite="epsilon_gamma_box", low=LOW, high=HIGH,
                    output_relevance="one_hot").attribute(x, target=target)
    torch.testing.assert_close(got, want, rtol=TOL, atol=TOL * want.abs().max().item())


def test_gamma_arguments():
    model = torchvision.models.resnet18(num_classes=3).eval()
    with pytest.raises(ValueError, match="gamma_rule"):
        pyxai.LRP(model, composite="epsilon_gamma_box", low=LOW, high=HIGH, gamma_rule="zennit-0.4")
    with pytest.raises(TypeError, match="gamma"):
        pyxai.LRP(model, composite="epsilon_gamma_box", low=LOW, high=HIGH, gamma="0.25")
