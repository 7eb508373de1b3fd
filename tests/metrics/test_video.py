"""Video causal metrics (TCSVT ``CausalMetric.evaluate``) against a direct loop transcription of the
reference, and the reliability alpha against the reference's NumPy / SciPy formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyxai
from pyxai.metrics import (
    metric_reliability,
    rank_krippendorff_alpha,
    video_deletion,
    video_insertion,
)
from pyxai.perturbation.pyramid import gaussian_blur
from tests.gradient._models import randomise_bn
from tests.video.test_step import one_thread  # noqa: F401  (autouse: many small ops per step)


def clip_net(g: torch.Generator) -> nn.Module:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    net = nn.Sequential(nn.Conv3d(3, 6, 3, padding=1), nn.BatchNorm3d(6), nn.ReLU(),
                        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(6, 4), nn.Softmax(1))
    return randomise_bn(net, g).eval()


def loop_causal_metric(model, clips, sal, labels, mode, n_step, new_size=None, order="most_first",
                       remove="fade", keep_topk=1.0, gen=None):
    """The reference evaluate(): one mask update and one forward per step, for the whole batch."""
    bs, nc, nt, nrow, ncol = clips.shape
    if remove == "fade":
        base = torch.zeros_like(clips)
    else:
        frames = torch.cat(torch.unbind(clips, dim=2), dim=0)  # T*N x C x H x W
        base = torch.stack(gaussian_blur(frames, 20.0).split(bs, dim=0), dim=2)
    if new_size is None:
        small = sal.transpose(1, 2).contiguous()
        new_size = nrow
    else:
        ks = nrow // new_size
        k = torch.ones(1, 1, ks, ks) / (ks * ks)
        small = F.conv2d(sal.reshape(-1, nrow, ncol)[:, None], k, stride=ks).reshape(
            bs, nt, 1, new_size, new_size)
    volume = nt * new_size ** 2
    sal_order = small.reshape(bs, -1).argsort(dim=-1, descending=order == "most_first", stable=True)
    idx = torch.arange(bs).view(-1, 1)
    if 0.0 < keep_topk < 1.0:
        top = int(volume * keep_topk)
        rand = torch.stack([torch.randperm(volume - top, generator=gen) for _ in range(bs)])
        sal_order = torch.cat([sal_order[:, :top], sal_order[:, top:][idx, rand]], dim=1)
    elif keep_topk == 0.0:
        sal_order = torch.stack([torch.randperm(volume, generator=gen) for _ in range(bs)])
    pmask = (torch.ones if mode == "del" else torch.zeros)(bs, nt, new_size, new_size)
    pts = np.linspace(0, volume, n_step + 1).astype(int).tolist()
    probs = []
    for t in range(n_step + 1):
        if t > 0:
            pos = sal_order[:, pts[t - 1] : pts[t]]
            pmask.reshape(bs, -1)[idx, pos] = 0 if mode == "del" else 1
        mask = F.interpolate(pmask, size=(nrow, ncol), mode="nearest").unsqueeze(1)
        y = model(clips * mask + base * (1 - mask))
        probs.append(y[torch.arange(bs), labels].detach())
    probs = torch.stack(probs, dim=-1)
    return (probs.sum(1) - probs[:, 0] / 2 - probs[:, -1] / 2) / (probs.shape[1] - 1), probs


@pytest.mark.parametrize("kw", [
    dict(n_steps=16),
    dict(n_steps=7, new_size=4, order="least_first", substrate="blur"),
    dict(n_steps=10, new_size=8, keep_topk=0.25, seed=11),
    dict(n_steps=5, keep_topk=0.0, seed=3),
])
def test_video_causal_metrics_equal_the_reference_loop(rng, kw):
    model = clip_net(rng)
    clips = torch.rand(3, 3, 4, 16, 16, generator=rng)
    sal = torch.rand(3, 1, 4, 16, 16, generator=rng)
    labels = torch.randint(0, 4, (3,), generator=rng)
    for mode, fn in (("ins", video_insertion), ("del", video_deletion)):
        gen = torch.Generator().manual_seed(kw.get("seed", 0))
        ref_auc, ref_curves = loop_causal_metric(
            model, clips, sal, labels, mode, kw["n_steps"], kw.get("new_size"),
            kw.get("order", "most_first"), kw.get("substrate", "fade"), kw.get("keep_topk", 1.0),
            gen)
        area, curves = fn(model, clips, sal, labels, return_curves=True, batch_size=5, **kw)
        assert curves.shape == (3, kw["n_steps"] + 1)
        torch.testing.assert_close(curves, ref_curves, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(area, ref_auc, rtol=1e-5, atol=1e-6)
    # the curves run between the clean clip and the baseline
    clean = model(clips)[torch.arange(3), labels]
    torch.testing.assert_close(curves[:, 0], clean, rtol=1e-5, atol=1e-6)
    ins = video_insertion(model, clips, sal[:, 0], labels, n_steps=4, return_curves=True)[1]
    torch.testing.assert_close(ins[:, -1], clean, rtol=1e-5, atol=1e-6)


def test_metric_reliability_equals_the_reference_formula(rng):
    stats = pytest.importorskip("scipy.stats")
    for higher in (True, False):
        # rounded scores: ties inside a video take the reference's first-occurrence rank
        d = (torch.rand(9, 5, generator=rng, dtype=torch.float64) * 4).round() / 4
        data = d.numpy()
        rank = np.array([[sorted(row, reverse=not higher).index(v) for v in row] for row in data])
        w = (data.shape[1] - 1 - rank[:, 0]) / (data.shape[1] - 1)
        cross = np.outer(w, w)
        rho, _ = stats.spearmanr(data, axis=1)
        ref = np.triu(cross * (rho + 1), k=1).sum() / (np.triu(cross, k=1).sum() + 1e-10) - 1
        ours = metric_reliability(d, higher_is_better=higher)
        if np.isnan(ref):
            assert torch.isnan(ours)
        else:
            assert abs(float(ours) - ref) < 1e-10
        # Krippendorff's alpha (nominal) of the ranks: the reference's double loops, coders = videos
        units = [list(rank[:, j].astype(float)) for j in range(rank.shape[1])]
        n = sum(len(u) for u in units)
        d_o = sum(sum(a != b for a in u for b in u) / (len(u) - 1) for u in units) / n
        d_e = sum(a != b for u1 in units for u2 in units for a in u1 for b in u2) / (n * (n - 1))
        kripp = 1.0 - d_o / d_e if (d_o and d_e) else 1.0
        assert abs(float(rank_krippendorff_alpha(d, higher)) - kripp) < 1e-12
    same = torch.rand(1, 4, generator=rng, dtype=torch.float64) + 1
    same[0, 0] = 0  # the random baseline worst: weight 1 for every video
    assert abs(float(metric_reliability(same.expand(6, 4))) - 1) < 1e-9  # all rank alike
    assert float(metric_reliability(-same.expand(6, 4))) == -1  # random best: no weight left


def test_bad_input():
    model = lambda v: v.mean((2, 3, 4)).softmax(1)  # noqa: E731
    clips, sal = torch.rand(2, 3, 4, 8, 8), torch.rand(2, 1, 4, 8, 8)
    with pytest.raises(ValueError, match=r"inputs must be a Tensor\[B, C, T, H, W\]"):
        video_insertion(model, clips[:, :, 0], sal[:, :, 0])
    with pytest.raises(ValueError, match="attributions of shape"):
        video_deletion(model, clips, sal[:, :, :3])
    with pytest.raises(ValueError, match="attributions contains NaN"):
        video_deletion(model, clips, sal * float("nan"))
    with pytest.raises(ValueError, match="n_steps must be an int"):
        video_deletion(model, clips, sal, n_steps=0)
    with pytest.raises(ValueError, match="new_size=3 must divide"):
        video_deletion(model, clips, sal, new_size=3)
    with pytest.raises(ValueError, match="keep_topk must be"):
        video_deletion(model, clips, sal, keep_topk=1.5)
    with pytest.raises(ValueError, match="substrate must be one of"):
        video_deletion(model, clips, sal, substrate="noise")
    with pytest.raises(ValueError, match="scores needs at least 3 videos"):
        metric_reliability(torch.rand(2, 3))
    with pytest.raises(ValueError, match="scores contains NaN"):
        metric_reliability(torch.full((4, 3), float("nan")))
    assert hasattr(pyxai.metrics, "video_insertion")


def loop_superpixel_metric(model, clip, sal, label, seg, mode, n_step, order="most_first"):
    """The reference evaluate_by_superpixel() for one clip: (frame, segment) importances in a dict,
    sorted, chunks of pairs revealed per step."""
    nc, nt, nrow, ncol = clip.shape
    imp = {}
    for t in range(nt):
        for s in torch.unique(seg[t]).tolist():
            imp[(t, s)] = sal[0, t][seg[t] == s].sum().item()
    ordered = [k for k, _ in sorted(imp.items(), key=lambda kv: kv[1],
                                    reverse=order == "most_first")]
    pmask = (torch.ones if mode == "del" else torch.zeros)(nt, nrow, ncol)
    pts = np.linspace(0, len(ordered), n_step + 1).astype(int).tolist()
    probs = []
    for step in range(n_step + 1):
        if step > 0:
            for t, s in ordered[pts[step - 1] : pts[step]]:
                pmask[t][seg[t] == s] = 0 if mode == "del" else 1
        y = model((clip * pmask[None])[None])
        probs.append(float(y[0, label].detach()))
    return torch.tensor(probs)


def test_superpixel_metric_equals_the_reference_loop(rng):
    model = clip_net(rng)
    clips = torch.rand(2, 3, 3, 16, 16, generator=rng)
    sal = torch.rand(2, 1, 3, 16, 16, generator=rng)
    labels = torch.tensor([1, 2])
    # random block supervoxels: 4x4 blocks, ids shuffled, some shared across frames
    blocks = torch.arange(16).reshape(4, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)
    seg = torch.stack([torch.stack([torch.randperm(16, generator=rng)[blocks] for _ in range(3)])
                       for _ in range(2)])
    for mode, fn in (("ins", video_insertion), ("del", video_deletion)):
        for order in ("most_first", "least_first"):
            _, curves = fn(model, clips, sal, labels, n_steps=20, superpixels=seg, order=order,
                           return_curves=True)
            for b in range(2):
                ref = loop_superpixel_metric(model, clips[b], sal[b], int(labels[b]), seg[b],
                                             mode, 20, order)
                torch.testing.assert_close(curves[b], ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not more than n_steps"):
        video_insertion(model, clips, sal, labels, n_steps=100, superpixels=seg)
    with pytest.raises(ValueError, match="superpixels must be an integer"):
        video_insertion(model, clips, sal, labels, superpixels=seg.float())
    pytest.importorskip("skimage")
    sp = pyxai.metrics.video_superpixels(clips, n_segments=8)
    assert sp.shape == (2, 3, 16, 16) and sp.dtype == torch.int64 and sp.unique().numel() > 1
