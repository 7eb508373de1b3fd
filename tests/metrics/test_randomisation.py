"""Model-parameter randomisation: equals Quantus' MPRT and leaves the user's model untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai import metrics
from tests.metrics._models import InputXGrad, small_cnn


def test_matches_quantus_mprt_and_model_untouched(rng):
    quantus = pytest.importorskip("quantus")
    model = small_cnn(seed=int(torch.randint(0, 1000, (1,), generator=rng)))
    model.train(False)
    x = torch.rand(3, 3, 12, 12, generator=rng)
    y = model(x).argmax(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.get_rng_state()
    seed = int(torch.randint(0, 1000, (1,), generator=rng))
    ours = metrics.model_parameter_randomisation(model, InputXGrad, x, target=y, seed=seed)
    # the user's model and the global RNG are as found
    assert torch.equal(torch.get_rng_state(), rng_before)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training

    def explain_func(model, inputs, targets, **_):
        t = torch.as_tensor(np.asarray(targets)).long()
        return InputXGrad(model).attribute(torch.as_tensor(inputs).float(), target=t).numpy()

    mprt = quantus.MPRT(seed=seed, disable_warnings=True, return_aggregate=False)
    ref = mprt(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
               explain_func=explain_func, device="cpu", batch_size=3)
    ref = {k: v for k, v in ref.items() if k != "original"}
    assert list(ours) == list(ref)  # same layers, same (top-down) order
    for k in ours:
        # float32 maps against Quantus' float64 scores: 2.9e-5 seen (CI seed 18531539)
        np.testing.assert_allclose(ours[k].numpy(), np.asarray(ref[k]), atol=1e-4, err_msg=k)


def test_orders_and_bad_input(rng):
    model = small_cnn()
    x = torch.rand(2, 3, 8, 8, generator=rng)
    res = metrics.model_parameter_randomisation(model, InputXGrad, x, order="bottom_up",
                                                similarity="pearson")
    assert list(res)[0] == "0" and all(v.shape == (2,) for v in res.values())
    ind = metrics.model_parameter_randomisation(model, InputXGrad, x, order="independent")
    assert set(ind) == set(res)
    with pytest.raises(ValueError, match="order"):
        metrics.model_parameter_randomisation(model, InputXGrad, x, order="random")
    with pytest.raises(ValueError, match="similarity"):
        metrics.model_parameter_randomisation(model, InputXGrad, x, similarity="ssim")
    with pytest.raises(TypeError, match="seed"):
        metrics.model_parameter_randomisation(model, InputXGrad, x, seed=1.5)
    with pytest.raises(ValueError, match="target"):
        metrics.model_parameter_randomisation(model, InputXGrad, x, target=[[0, 1]])


def test_train_mode_model_is_left_as_found(rng):
    from pyxai.engine.view import same_state, state_fingerprint

    model = small_cnn().train()
    before = state_fingerprint(model)
    x = torch.rand(2, 3, 8, 8, generator=rng)
    with pytest.warns(UserWarning, match="training mode"):
        res = metrics.model_parameter_randomisation(model, InputXGrad, x, order="independent")
    assert same_state(before, state_fingerprint(model)) == []
    assert all(torch.isfinite(v).all() for v in res.values())
