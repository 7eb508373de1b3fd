from __future__ import annotations

import pytest
import torch

from pyxai.engine.targets import resolve_target, select_scores


def test_target_forms(rng):
    out = torch.randn(3, 5, generator=rng)
    assert resolve_target(None, out).tolist() == out.argmax(1).tolist()
    assert resolve_target(2, out).tolist() == [2, 2, 2]
    assert resolve_target([0, 4, 1], out).tolist() == [0, 4, 1]
    assert resolve_target(torch.tensor([1, 1, 3]), out).tolist() == [1, 1, 3]
    assert resolve_target(torch.tensor(3), out).tolist() == [3, 3, 3]
    fn = lambda o: o[:, 0] - o[:, 1]  # noqa: E731
    assert resolve_target(fn, out) is fn


def test_select_scores_repeat_block_major(rng):
    out = torch.randn(6, 4, generator=rng)  # 3 blocks of B=2
    t = torch.tensor([1, 3])
    s = select_scores(out, t, repeat=3)
    assert s.tolist() == [out[i, t[i % 2]].item() for i in range(6)]
    s = select_scores(out, lambda o: o.sum(1), repeat=3)
    torch.testing.assert_close(s, out.sum(1))


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
    with pytest.raises(ValueError, match="callable"):
        resolve_target(0, torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="scores"):
        select_scores(out, lambda o: o[:1, 0])
