"""Bad input: clear errors naming the argument; a constant model warns and returns zeros."""

from __future__ import annotations

import pytest
import torch

import pyxai


def _model(z):
    return z.flatten(1)[:, :4] * 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(nb_design=24), "nb_design"),
    (dict(nb_design=1), "nb_design"),
    (dict(nb_design=0), "nb_design"),
    (dict(grid_size=0), "grid_size"),
    (dict(sampler="sobolev"), "sampler"),
    (dict(estimator="martinez"), "estimator"),
    (dict(perturbation="noise"), "perturbation"),
    (dict(backend="gpu"), "backend"),
    (dict(batch_size=0), "batch_size"),
    (dict(perturbation="blur", sigma=2.5), "sigma"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pyxai.SobolAttribution(_model, **kwargs)


def test_grid_larger_than_input():
    with pytest.raises(ValueError, match="grid_size"):
        pyxai.SobolAttribution(_model, grid_size=8).attribute(torch.rand(1, 3, 6, 16))


def test_bad_inputs_and_order():
    e = pyxai.SobolAttribution(_model, grid_size=2, nb_design=4)
    with pytest.raises(ValueError, match="inputs"):
        e.attribute(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        e.attribute(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="order"):
        e.attribute(torch.rand(1, 1, 8, 8), order="second")
    with pytest.raises(ValueError, match="target"):
        e.attribute(torch.rand(1, 1, 8, 8), target=7)


@pytest.mark.parametrize("estimator", ["jansen", "homma", "saltelli", "janon", "glen"])
def test_constant_model_warns_and_returns_zeros(estimator):
    const = lambda z: torch.ones(z.shape[0], 3, dtype=z.dtype) * 0.7  # noqa: E731
    e = pyxai.SobolAttribution(const, grid_size=2, nb_design=8, estimator=estimator)
    with pytest.warns(RuntimeWarning, match="zero variance"):
        out = e.attribute(torch.rand(2, 3, 8, 8), target=1)
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all() and (out == 0).all()


def test_one_constant_sample_of_two():
    """Only the flat sample gets zeros; the other keeps its map."""
    def model(z):
        s = z.mean((1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)

    x = torch.rand(2, 1, 8, 8)
    x[1] = 0  # masking an all-zero image changes nothing
    with pytest.warns(RuntimeWarning, match=r"\[1\]"):
        out = pyxai.SobolAttribution(model, grid_size=2, nb_design=8).attribute(x, 0, resize=False)
    assert (out[1] == 0).all() and (out[0] > 0).all()
