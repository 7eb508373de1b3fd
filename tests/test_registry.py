"""The method registry and the CLI that reads it."""

from __future__ import annotations

import pytest
import torch

import pyxai
from pyxai import registry
from pyxai.cli import main
from pyxai.engine.view import same_state, state_fingerprint

FAST = {"rise": {"n_masks": 64}, "sobol": {"nb_design": 2, "grid_size": 4},
        "extremal": {"max_iter": 5}, "meaningful": {"iterations": 5}}


@pytest.mark.parametrize("name", registry.names(inputs="image"))
def test_every_method_builds_and_explains_the_demo(name):
    model = pyxai.models.demo_cnn()
    x, labels, _ = pyxai.data.shapes(2, seed=3)
    before = state_fingerprint(model)
    explain = registry.build(name, model, layer=model.layer3[-1], **FAST.get(name, {}))
    maps = explain(x, labels)
    assert maps.shape[0] == 2 and maps.shape[-2:] == x.shape[-2:]
    assert torch.isfinite(maps).all() and maps.abs().sum() > 0
    assert same_state(before, state_fingerprint(model)) == []


def test_registry_errors_and_entries():
    with pytest.raises(ValueError, match="unknown method 'nope'; available: "):
        registry.get("nope")
    with pytest.raises(ValueError, match="needs a target layer"):
        registry.build("gradcam", pyxai.models.demo_cnn())
    assert registry.METHODS["rise"].init == {"n_masks": 1000}
    assert all(hasattr(pyxai, m.cls) for m in registry.METHODS.values())


def test_cli_reads_the_registry(tmp_path, capsys):
    assert main(["explain", "--method", "gradcam", "--method", "saliency", "--n", "2",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "gradcam.png").exists() and (tmp_path / "saliency.png").exists()
    assert main(["explain", "--method", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["info"]) == 0
    assert ", ".join(registry.names()) in capsys.readouterr().out
