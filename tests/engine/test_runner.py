from __future__ import annotations

import pytest
import torch

from pyxai.engine.runner import PerturbationRunner, auto_batch_size
from pyxai.engine.targets import resolve_target


class Counting(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(12, 3)
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("batch_size", [1, 4, 7, 100, None])
def test_runner_chunks_and_scores(rng, batch_size):
    model = Counting()
    x = torch.randn(2, 3, 2, 2, generator=rng)
    scales = torch.rand(9, generator=rng)

    def make(start, stop):  # item i scales every image by scales[i]; rows are item-major
        return (scales[start:stop, None, None, None, None] * x[None]).reshape(-1, 3, 2, 2)

    target = resolve_target([0, 2], model(x))
    got = torch.zeros(9, 2)

    def consume(start, stop, scores):
        got[start:stop] = scores.reshape(stop - start, 2)

    n = PerturbationRunner(model, batch_size=batch_size).run(9, make, consume, rows_per_item=2,
                                                             target=target)
    assert n == 9
    expect = model(make(0, 9)).reshape(9, 2, 3).gather(2, target.classes.view(1, 2, 1).expand(9, 2, 1))
    torch.testing.assert_close(got, expect[..., 0])
    if batch_size is not None:
        assert max(model.batches[:-1]) <= max(batch_size, 2)


def test_runner_early_stop_and_inference_mode(rng):
    model = Counting()
    seen = []

    def consume(start, stop, out):
        seen.append((start, stop))
        assert torch.is_inference(out)

    n = PerturbationRunner(model, batch_size=2).run(
        10, lambda a, b: torch.randn(b - a, 12), consume, stop=lambda: len(seen) == 2)
    assert n == 4 and seen == [(0, 2), (2, 4)]


def test_runner_checks_output_batch():
    with pytest.raises(ValueError, match="one row per input"):
        PerturbationRunner(lambda x: x[:1], batch_size=4).run(
            3, lambda a, b: torch.randn(b - a, 5), lambda *a: None)


def test_runner_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        PerturbationRunner(lambda x: x, batch_size=0)


def test_auto_batch_size_cpu():
    assert auto_batch_size(torch.zeros(1, 3, 32, 32)) == 64
    assert auto_batch_size(torch.zeros(1, 3, 4096, 4096)) < 64


def test_outputs_and_autocast(rng):
    model = Counting()
    x = torch.randn(5, 12, generator=rng)
    r = PerturbationRunner(model, batch_size=2, autocast=torch.bfloat16)
    out = r.outputs(x)
    assert out.dtype == torch.float32 and out.shape == (5, 3)
    torch.testing.assert_close(out, model(x), atol=0.05, rtol=0.05)


def test_batch_size_measured_once_per_runner(rng, monkeypatch):
    import pyxai.engine.runner as runner_mod

    calls = []
    real = runner_mod.auto_batch_size
    monkeypatch.setattr(runner_mod, "auto_batch_size", lambda *a: calls.append(1) or real(*a))
    model = Counting()
    x = torch.randn(2, 3, 2, 2, generator=rng)
    runner = PerturbationRunner(model)
    runner.outputs(x)
    for _ in range(3):  # e.g. adaptive RISE's blocks
        runner.run(5, lambda s, e: x.repeat(e - s, 1, 1, 1), lambda *a: None, rows_per_item=2)
    assert calls == [1]
