"""Tests of the bundled demo CNN (pyxai.models.demo_cnn) and its training script."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyxai.data import SHAPE_CLASSES, shapes
from pyxai.models import BasicBlock, demo_cnn
from pyxai.models.demo_cnn import WEIGHTS_PATH

HELD_OUT_SEED = 2024  # used neither by training (seeds 1..10) nor by its evaluation (12345)


@pytest.fixture(scope="module")
def model():
    return demo_cnn()


def test_weights_file():
    assert WEIGHTS_PATH.is_file()
    assert WEIGHTS_PATH.stat().st_size < 2_000_000


def test_pretrained_accuracy(model):
    images, labels, _ = shapes(500, seed=HELD_OUT_SEED)
    with torch.no_grad():
        pred = model(images).argmax(1)
    accuracy = (pred == labels).float().mean().item()
    assert accuracy >= 0.95, accuracy


def test_eval_mode_and_output(model):
    assert not model.training and all(not m.training for m in model.modules())
    out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, len(SHAPE_CLASSES)) and out.dtype == torch.float32


def test_random_init():
    random = demo_cnn(pretrained=False)
    assert not random.training
    assert not torch.equal(random.fc.weight, demo_cnn().fc.weight)
    torch.manual_seed(0)
    a = demo_cnn(pretrained=False)
    torch.manual_seed(0)
    b = demo_cnn(pretrained=False)
    assert torch.equal(a.stem[0].weight, b.stem[0].weight)


def test_torchvision_like_structure(model):
    assert isinstance(model.stem, nn.Sequential)
    assert [type(m) for m in model.stem] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    for name in ("layer1", "layer2", "layer3"):
        layer = getattr(model, name)
        assert isinstance(layer, nn.Sequential) and len(layer) >= 1
        for block in layer:
            assert isinstance(block, BasicBlock)
            for attr in ("conv1", "bn1", "relu", "conv2", "bn2", "downsample"):
                assert hasattr(block, attr)
    assert model.layer1[0].downsample is None
    for down in (model.layer2[0].downsample, model.layer3[0].downsample):
        assert [type(m) for m in down] == [nn.Conv2d, nn.BatchNorm2d]
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    assert isinstance(model.flatten, nn.Flatten) and isinstance(model.fc, nn.Linear)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and not any(m.inplace for m in relus)
    params = sum(p.numel() for p in model.parameters())
    assert 100_000 <= params <= 400_000, params


def test_block_forward_matches_torchvision_formula(model):
    block = model.layer2[0]
    x = torch.rand(2, block.conv1.in_channels, 16, 16)
    with torch.no_grad():
        out = torch.relu(block.bn1(block.conv1(x)))
        out = block.bn2(block.conv2(out)) + block.downsample(x)
        expected = torch.relu(out)
        torch.testing.assert_close(block(x), expected)


def test_layer_shapes(model):
    feats = {}
    handles = [
        getattr(model, n).register_forward_hook(lambda m, i, o, n=n: feats.__setitem__(n, o.shape))
        for n in ("stem", "layer1", "layer2", "layer3")
    ]
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, 64, 64))
    finally:
        for h in handles:
            h.remove()
    assert feats["stem"][-2:] == (32, 32) and feats["layer3"][-2:] == (8, 8)


def test_train_script_smoke(tmp_path):
    from pyxai.models import train

    out = tmp_path / "w.pt"
    threads = torch.get_num_threads()
    try:
        acc = train.main(
            [
                "--out",
                str(out),
                "--epochs",
                "1",
                "--train-seeds",
                "1",
                "--images-per-seed",
                "64",
                "--batch-size",
                "32",
                "--eval-images",
                "32",
                "--threads",
                "1",
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert 0.0 <= acc <= 1.0
    state = torch.load(out, weights_only=True)
    demo_cnn(pretrained=False).load_state_dict(state)


def test_train_script_rejects_eval_seed_in_training(tmp_path):
    from pyxai.models import train

    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "w.pt"), "--eval-seed", "3"])
