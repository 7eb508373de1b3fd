"""Pairwise deletion / insertion equal RISE's CausalMetric loop with the cosine similarity as score
(explain-cl ``evaluation.py``), written here one pair at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from pyxai.metrics import auc, pairwise_deletion, pairwise_insertion
from tests.gradient._models import randomise_bn


def _direct(enc, x1, x2, s1, s2, insertion, step):
    """One pair: RISE's single_run, both images modified together (s2 None: img2 fixed)."""
    def canvas(x):
        return TF.gaussian_blur(x, kernel_size=[11, 11], sigma=[5, 5]) if insertion else torch.zeros_like(x)

    hw = x1.shape[-1] * x1.shape[-2]
    n = (hw + step - 1) // step
    starts = [canvas(x1) if insertion else x1.clone(), None]
    finishes = [x1 if insertion else canvas(x1), None]
    orders = [np.flip(np.argsort(s1.reshape(-1, hw), axis=1), axis=-1)]
    if s2 is not None:
        starts[1] = canvas(x2) if insertion else x2.clone()
        finishes[1] = x2 if insertion else canvas(x2)
        orders.append(np.flip(np.argsort(s2.reshape(-1, hw), axis=1), axis=-1))
    scores = []
    for i in range(n + 1):
        with torch.no_grad():
            other = enc(starts[1]) if s2 is not None else enc(x2)
            scores.append(F.cosine_similarity(enc(starts[0]), other).item())
        for k in range(len(orders)):
            coords = orders[k][:, step * i:step * (i + 1)]
            st = starts[k].numpy().reshape(1, 3, hw)
            st[0, :, coords] = finishes[k].numpy().reshape(1, 3, hw)[0, :, coords]
            starts[k] = torch.from_numpy(st.reshape(starts[k].shape).copy())
    return np.array(scores)


@pytest.mark.parametrize("insertion", [False, True])
@pytest.mark.parametrize("both", [False, True])
def test_pairwise_metric_equals_direct_loop(insertion, both, rng):
    from pyxai.models.demo_ssl import SSLEncoder

    torch.manual_seed(int(torch.randint(1 << 30, (1,), generator=rng)))
    enc = randomise_bn(SSLEncoder()).eval()
    x1, x2 = torch.rand(2, 3, 24, 24, generator=rng), torch.rand(2, 3, 24, 24, generator=rng)
    a1, a2 = torch.rand(2, 1, 24, 24, generator=rng), torch.rand(2, 1, 24, 24, generator=rng)
    fn = pairwise_insertion if insertion else pairwise_deletion
    attr = (a1, a2) if both else a1
    area, curves = fn(enc, x1, x2, attr, n_steps=None, return_curves=True, batch_size=10)
    step = 224  # RISE's pixels per step
    for b in range(2):
        ref = _direct(enc, x1[b:b + 1], x2[b:b + 1], a1[b].numpy(), a2[b].numpy() if both else None,
                      insertion, step)
        torch.testing.assert_close(curves[b].double(), torch.from_numpy(ref), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(area, auc(curves))


def test_pairwise_metric_bad_input(rng):
    from pyxai.models.demo_ssl import SSLEncoder

    enc = SSLEncoder().eval()
    x1, x2 = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 20, 20)
    with pytest.raises(ValueError, match="same image size"):
        pairwise_deletion(enc, x1, x2, (torch.rand(2, 1, 16, 16), torch.rand(2, 1, 20, 20)))
    with pytest.raises(ValueError, match="attributions"):
        pairwise_deletion(enc, x1, x1, torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="same number"):
        pairwise_insertion(enc, x1, x1[:1], torch.rand(2, 1, 16, 16))
