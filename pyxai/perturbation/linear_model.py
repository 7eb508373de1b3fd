"""Interpretable (surrogate) linear models for :class:`pyxai.Lime` and :class:`pyxai.KernelShap`.

They follow Captum's ``captum._utils.models.Model`` interface, so Captum's own model objects
(``SkLearnLasso``, ``SkLearnLinearRegression``, ``SGDLasso``, ...) and these are interchangeable:

* ``fit(train_data, **kwargs)``: ``train_data`` is any iterable of ``(x, y)`` or ``(x, y, w)``
  batches (a ``torch.utils.data.DataLoader`` in Lime), x Tensor[N, F] interpretable samples, y
  Tensor[N] model scores, w Tensor[N] sample weights; the batches are concatenated;
* ``representation()``: Tensor[1, F] float32, the fitted weights (no intercept);
* ``bias()``: Tensor[1] intercept; ``model(x)``: predictions Tensor[N, 1].

:class:`LinearRegression` is a closed-form weighted least squares in torch (no scikit-learn), equal
to ``sklearn.linear_model.LinearRegression`` (Captum's ``SkLearnLinearRegression``) to float
tolerance, minimum-norm solution included when there are fewer samples than features. The
``SkLearn*`` models train scikit-learn's estimators exactly as Captum's classes of the same names
(the same float32 arrays, ``fit(x, y, sample_weight=w)``), so their coefficients are Captum's; they
need scikit-learn (``pip install 'pyxai-attribution[lime]'``).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Iterable

import torch


def collect(train_data: Iterable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Concatenate the ``(x, y[, w])`` batches of ``train_data``: (x [N, F], y [N], w [N] | None)."""
    xs, ys, ws = [], [], []
    for batch in train_data:
        if len(batch) not in (2, 3):
            raise ValueError(f"train_data must yield (x, y) or (x, y, w) batches, got {len(batch)} "
                             "tensors")
        xs.append(batch[0])
        ys.append(batch[1])
        if len(batch) == 3:
            ws.append(batch[2])
    if not xs:
        raise ValueError("train_data is empty")
    return torch.cat(xs), torch.cat(ys), torch.cat(ws) if ws else None


class _Linear:
    """Fitted weights and intercept, with Captum's ``representation`` / ``bias`` / ``__call__``."""

    weight: torch.Tensor | None = None  # Tensor[1, F] float32
    intercept: torch.Tensor | None = None  # Tensor[1] float32

    def representation(self) -> torch.Tensor:
        """Tensor[1, F] float32, the weights of the fitted model (no intercept)."""
        if self.weight is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")
        return self.weight

    def bias(self) -> torch.Tensor | None:
        """Tensor[1] float32 intercept of the fitted model (None before fit)."""
        return self.intercept

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions Tensor[N, 1] for interpretable samples x Tensor[N, F]."""
        w = self.representation()
        return x.to(w) @ w.T + self.intercept.to(w.device)


class LinearRegression(_Linear):
    """Weighted least squares with an intercept, in closed form (torch, float64).

    As ``sklearn.linear_model.LinearRegression``: x and y are centred on their weighted means,
    scaled by ``sqrt(w)``, and solved by SVD least squares with singular values below
    ``tol * max`` dropped (the minimum-norm solution when the problem is under-determined).

    Args:
        tol: relative cut-off of small singular values (scikit-learn's ``tol``). Default: 1e-6
    """

    def __init__(self, tol: float = 1e-6) -> None:
        self.tol = tol

    def fit(self, train_data: Iterable, **kwargs: Any) -> dict[str, float]:
        """Fit on ``(x, y[, w])`` batches (x Tensor[N, F], y Tensor[N], w Tensor[N] >= 0)."""
        if kwargs:
            raise TypeError(f"LinearRegression.fit got unexpected arguments {sorted(kwargs)}")
        x, y, w = collect(train_data)
        dev = x.device
        x = x.detach().to("cpu", torch.float64).reshape(x.shape[0], -1)
        y = y.detach().to("cpu", torch.float64).reshape(-1)
        w = torch.ones_like(y) if w is None else w.detach().to("cpu", torch.float64).reshape(-1)
        if bool((w < 0).any()):
            raise ValueError("sample weights must be >= 0")
        x_off = (w[:, None] * x).sum(0) / w.sum()
        y_off = (w * y).sum() / w.sum()
        sw = w.sqrt()
        a = (x - x_off) * sw[:, None]
        b = ((y - y_off) * sw)[:, None]
        coef = torch.linalg.lstsq(a, b, rcond=self.tol, driver="gelsd").solution[:, 0]
        self.weight = coef.float().reshape(1, -1).to(dev)
        self.intercept = (y_off - x_off @ coef).float().reshape(1).to(dev)
        return {}


@functools.cache
def _sklearn() -> Any:
    try:
        import sklearn.linear_model  # noqa: F401
    except ImportError:
        raise ImportError(
            "this interpretable model needs scikit-learn (pyxai.Lime's default is a Lasso, as "
            "Captum's): pip install 'pyxai-attribution[lime]', or pass interpretable_model="
            "pyxai.perturbation.linear_model.LinearRegression() (torch, no scikit-learn)"
        ) from None
    import sklearn

    return sklearn


class SkLearnLinearModel(_Linear):
    """Any scikit-learn linear estimator, trained as Captum's ``SkLearnLinearModel``.

    Args:
        sklearn_module: the estimator's path under ``sklearn``, e.g. ``"linear_model.Lasso"``.
        **kwargs: the estimator's constructor arguments (``alpha=0.01``).
    """

    def __init__(self, sklearn_module: str, **kwargs: Any) -> None:
        self.sklearn_module = sklearn_module
        self.construct_kwargs = kwargs

    def fit(self, train_data: Iterable, **fit_kwargs: Any) -> dict[str, float]:
        """Fit on ``(x, y[, w])`` batches; ``fit_kwargs`` go to the estimator's ``fit``."""
        x, y, w = collect(train_data)
        dev = x.device
        cls = _sklearn()
        for part in self.sklearn_module.split("."):
            cls = getattr(cls, part)
        est = cls(**self.construct_kwargs)
        xn, yn = x.detach().cpu().numpy(), y.detach().cpu().numpy()
        wn = None if w is None else w.detach().cpu().numpy()
        try:
            est.fit(xn, yn, sample_weight=wn, **fit_kwargs)
        except TypeError:  # estimators without sample weights
            est.fit(xn, yn, **fit_kwargs)
            warnings.warn(f"{self.sklearn_module} takes no sample_weight: trained without the "
                          "similarity weights", UserWarning, stacklevel=2)
        coef = torch.as_tensor(est.coef_, dtype=torch.float32)
        self.weight = coef.reshape(coef.shape[0] if coef.dim() > 1 else 1, -1).to(dev)
        self.intercept = torch.as_tensor(est.intercept_, dtype=torch.float32).reshape(-1).to(dev)
        return {}


class SkLearnLasso(SkLearnLinearModel):
    """``sklearn.linear_model.Lasso`` (Captum's ``SkLearnLasso``); kwargs: ``alpha``, ..."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("linear_model.Lasso", **kwargs)


class SkLearnRidge(SkLearnLinearModel):
    """``sklearn.linear_model.Ridge`` (Captum's ``SkLearnRidge``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("linear_model.Ridge", **kwargs)


class SkLearnLinearRegression(SkLearnLinearModel):
    """``sklearn.linear_model.LinearRegression`` (Captum's ``SkLearnLinearRegression``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("linear_model.LinearRegression", **kwargs)
