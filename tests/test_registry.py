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
                 "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.index("gradcam") < out.index("saliency") < out.index("predicted")
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["grid.png", "image000.png", "image001.png"]
    assert main(["explain", "--method", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["info"]) == 0
    assert ", ".join(registry.names()) in capsys.readouterr().out


def test_help_text_lists_every_method_with_defaults():
    text = registry.help_text()
    lines = text.splitlines()
    assert [ln.split()[0] for ln in lines] == registry.names()
    assert "n_masks=1000" in lines[registry.names().index("rise")]
    assert "target_layers=<auto>" in lines[registry.names().index("gradcam")]
    assert registry.defaults(registry.get("saliency")) == "the class defaults"


def test_bench_workloads_use_registry_names():
    from pyxai.benchmark import core

    workloads = core.load_all()
    shared = set(workloads) & set(registry.names())
    assert "integrated_gradients" in shared and "ig" not in workloads
    assert core.ALIASES["ig"] in workloads
    # an old bench name is only an alias (of a registry name), never a workload of its own
    assert not set(core.ALIASES) & set(workloads)
    assert all(name in workloads for name in core.ALIASES.values())


def test_shapley_predicted_class_leaves_a_train_mode_model_as_it_was(rng):
    """The Shapley methods' None (the predicted class, which the registry computes itself) runs
    the model through a view: a train-mode model's BatchNorm statistics are not updated."""
    import warnings

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    before = state_fingerprint(model)
    x = torch.rand(2, 3, 8, 8, generator=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "explained in training mode"
        maps = registry.build("shapley_values", model)(x, None)
    assert maps.shape == x.shape and model.training
    assert same_state(before, state_fingerprint(model)) == []
