"""cosine_to / dot_to / neg_distance_to as ``target=`` of the other explainer families: each equals
the same explainer run on the similarity score itself (a wrapper model whose one output is the
score), for a batch of images each with its own reference embedding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyxai
import pyxai.similarity as S
from tests.gradient._models import randomise_bn


class Score(nn.Module):
    """The similarity of the encoder's embedding to a per-sample reference, as a 1-output model."""

    def __init__(self, enc: nn.Module, ref: torch.Tensor, kind: str) -> None:
        super().__init__()
        self.enc, self.ref, self.kind = enc, ref, kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.enc(x)
        ref = self.ref.repeat(z.shape[0] // self.ref.shape[0], 1)  # perturbed copies, block-major
        if self.kind == "cosine":
            s = F.cosine_similarity(z, ref, dim=-1)
        elif self.kind == "dot":
            s = (z * ref).sum(-1)
        else:
            s = -(z - ref).norm(dim=-1)
        return s[:, None]


TARGETS = {"cosine": S.cosine_to, "dot": S.dot_to, "neg_distance": S.neg_distance_to}


@pytest.fixture
def setup(rng):
    from pyxai.models.demo_ssl import SSLEncoder

    torch.manual_seed(int(torch.randint(1 << 30, (1,), generator=rng)))
    enc = randomise_bn(SSLEncoder()).eval()
    x = torch.rand(2, 3, 32, 32, generator=rng)
    ref = enc(torch.rand(2, 3, 32, 32, generator=rng)).detach()
    return enc, x, ref


def _same(a, b):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", list(TARGETS))
def test_gradient_and_cam_families(kind, setup):
    enc, x, ref = setup
    t, wrap = TARGETS[kind](ref), Score(enc, ref, kind).eval()
    _same(pyxai.IntegratedGradients(enc).attribute(x, target=t, n_steps=8),
          pyxai.IntegratedGradients(wrap).attribute(x, target=0, n_steps=8))
    _same(pyxai.Saliency(enc).attribute(x, target=t), pyxai.Saliency(wrap).attribute(x, target=0))
    layer = enc.backbone.layer3
    _same(pyxai.GradCAM(enc, target_layers=[layer]).attribute(x, target=t),
          pyxai.GradCAM(wrap, target_layers=[layer]).attribute(x, target=0))
    _same(pyxai.LayerGradCam(enc, layer).attribute(x, target=t),
          pyxai.LayerGradCam(wrap, layer).attribute(x, target=0))


def test_perturbation_families(setup):
    enc, x, ref = setup
    t, wrap = S.cosine_to(ref), Score(enc, ref, "cosine").eval()
    _same(pyxai.RISE(enc, n_masks=64, batch_size=16).attribute(x, target=t),
          pyxai.RISE(wrap, n_masks=64, batch_size=16).attribute(x, target=0))
    _same(pyxai.SobolAttribution(enc, grid_size=4, nb_design=8, batch_size=16).attribute(x, target=t),
          pyxai.SobolAttribution(wrap, grid_size=4, nb_design=8, batch_size=16).attribute(x, target=0))
    kw = dict(sliding_window_shapes=(3, 8, 8), strides=(3, 8, 8), perturbations_per_eval=4)
    _same(pyxai.Occlusion(enc).attribute(x, target=t, **kw),
          pyxai.Occlusion(wrap).attribute(x, target=0, **kw))


def test_lrp(setup):
    """LRP starts from the target's score times d score / d outputs (the gradient of the cosine at
    the embedding): the same relevance as the wrapper model started at its one output."""
    enc, x, ref = setup
    t = S.cosine_to(ref)
    rel = pyxai.LRP(enc, composite="epsilon_plus").attribute(x, target=t)
    z = enc(x)
    zd = z.detach().requires_grad_()
    s = F.cosine_similarity(zd, ref)
    (g,) = torch.autograd.grad(s.sum(), zd)
    direct = pyxai.LRP(enc, composite="epsilon_plus", output_relevance="one_hot").attribute(
        x, target=lambda out: (out * (g * s.detach()[:, None])).sum(1))
    _same(rel, direct)
    assert rel.abs().sum() > 0


def test_shared_reference_and_rows(setup):
    enc, x, ref = setup
    with torch.no_grad():
        z = enc(x)
    rows = torch.tensor([1, 0, 1])
    out = torch.cat([z[1:], z[:1], z[1:]])
    torch.testing.assert_close(S.cosine_to(ref)(out, rows), F.cosine_similarity(out, ref[rows]))
    torch.testing.assert_close(S.cosine_to(ref[0])(out, rows), F.cosine_similarity(out, ref[:1]))
    torch.testing.assert_close(S.neg_distance_to(ref)(out, rows), -(out - ref[rows]).norm(dim=1))


def test_bad_references():
    with pytest.raises(ValueError, match="zero-norm"):
        S.cosine_to(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reference"):
        S.cosine_to(torch.ones(2, 3, 4))
    with pytest.raises(TypeError, match="reference"):
        S.dot_to([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        S.dot_to(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="dims"):
        S.cosine_to(torch.ones(1, 4))(torch.ones(2, 5), torch.zeros(2, dtype=torch.long))
