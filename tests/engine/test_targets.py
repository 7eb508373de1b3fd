"""The one target contract (pyxai.engine.targets): every form, rows, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pyxai.engine.targets import ResolvedTarget, resolve_target, takes_rows


def test_class_forms(rng):
    out = torch.randn(3, 5, generator=rng)
    assert resolve_target(None, out).classes.tolist() == out.argmax(1).tolist()
    assert resolve_target(2, out).classes.tolist() == [2, 2, 2]
    assert resolve_target([0, 4, 1], out).classes.tolist() == [0, 4, 1]
    assert resolve_target(torch.tensor([1, 1, 3]), out).classes.tolist() == [1, 1, 3]
    assert resolve_target(torch.tensor(3), out).classes.tolist() == [3, 3, 3]
    t = resolve_target([0, 4, 1], out)
    assert t(out).tolist() == [out[0, 0].item(), out[1, 4].item(), out[2, 1].item()]


def test_none_on_one_output_per_sample_is_the_output(rng):
    out = torch.randn(4, 1, generator=rng)
    t = resolve_target(None, out)
    assert t.identity and torch.equal(t(out), out[:, 0])
    out1 = torch.randn(4, generator=rng)
    assert torch.equal(resolve_target(None, out1)(out1), out1)


def test_block_major_rows_and_explicit_rows(rng):
    out = torch.randn(6, 4, generator=rng)  # 3 blocks of B=2
    t = resolve_target(torch.tensor([1, 3]), out[:2])
    assert t(out).tolist() == [out[i, [1, 3][i % 2]].item() for i in range(6)]
    rows = torch.tensor([0, 0, 0, 1, 1, 1])  # repeat_interleave order (IG steps, noise samples)
    assert t(out, rows).tolist() == [out[i, [1, 3][i // 3]].item() for i in range(6)]


def test_callable_with_rows_is_a_one_line_similarity(rng):
    ref = torch.randn(2, 8, generator=rng)  # each sample's reference embedding
    emb = torch.randn(6, 8, generator=rng)  # 3 perturbed copies of the 2 samples

    def target(out, rows):
        return F.cosine_similarity(out, ref[rows])

    t = resolve_target(target, emb[:2])
    assert takes_rows(target) and not takes_rows(lambda o: o)
    expect = torch.stack([F.cosine_similarity(emb[i], ref[i % 2], dim=0) for i in range(6)])
    torch.testing.assert_close(t(emb), expect)
    one = resolve_target(lambda o: o.sum(1), emb[:2])
    torch.testing.assert_close(one(emb), emb.sum(1))


def test_tuple_and_per_sample_forms(rng):
    out = torch.randn(2, 3, 4, generator=rng)
    t = resolve_target((1, 2), out)
    assert t(out).tolist() == [out[0, 1, 2].item(), out[1, 1, 2].item()]
    t = resolve_target([(0, 1), (2, 3)], out)
    assert t(out).tolist() == [out[0, 0, 1].item(), out[1, 2, 3].item()]
    logits = torch.randn(2, 5, generator=rng)

    class ClassifierOutputTarget:  # pytorch-grad-cam's, by name
        def __init__(self, category):
            self.category = category

        def __call__(self, model_output):
            return model_output[..., self.category]

    t = resolve_target([ClassifierOutputTarget(3), 1], logits)
    assert t.classes.tolist() == [3, 1]
    t = resolve_target([lambda o: o[0] - o[1], 2], logits)  # per-sample callable + int
    torch.testing.assert_close(t(logits), torch.stack([logits[0, 0] - logits[0, 1], logits[1, 2]]))


def test_target_errors():
    out = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="out of range"):
        resolve_target(4, out)
    with pytest.raises(ValueError, match="out of range"):
        resolve_target([0, -1], out)
    with pytest.raises(ValueError, match="2 samples"):
        resolve_target([0, 1, 2], out)
    with pytest.raises(TypeError, match="integer"):
        resolve_target([0.5, 1.0], out)
    with pytest.raises(TypeError):
        resolve_target("cat", out)
    with pytest.raises(TypeError, match="bool"):
        resolve_target(True, out)
    with pytest.raises(ValueError, match="nested"):
        resolve_target([[1, 2]], out)
    with pytest.raises(ValueError, match="flat"):
        resolve_target(torch.tensor([[1], [2]]), out)
    with pytest.raises(ValueError, match="tuple indexing"):
        resolve_target(0, torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="out of range"):
        resolve_target((1, 4), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="one score per row"):
        resolve_target(lambda o: o[:1, 0], out)(out)
    with pytest.raises(TypeError, match="return a Tensor"):
        resolve_target(lambda o: 1.0, out)(out)


def test_resolved_is_reused_without_host_reads(rng):
    out = torch.randn(3, 5, generator=rng)
    t = resolve_target([0, 1, 2], out)
    assert isinstance(t, ResolvedTarget) and t.batch == 3
    big = torch.randn(30, 5, generator=rng)
    assert t(big).shape == (30,)
    assert t.block_rows(30, big.device) is t.block_rows(30, big.device)  # cached per chunk size
