"""Robustness of explanations: max/avg sensitivity (Yeh et al. 2019) and the local Lipschitz
estimate (Alvarez-Melis & Jaakkola 2018), with Quantus' definitions.

For each image ``x`` with explanation ``a = e(x)`` and ``n_samples`` noisy copies ``x' = x + u``:

* ``max_sensitivity`` / ``avg_sensitivity``: ``max`` / ``mean`` over samples of
  ``||a - e(x')||_2 / ||a||_2`` with ``u ~ U(-radius, radius)`` per input element (Quantus
  ``MaxSensitivity`` / ``AvgSensitivity`` with ``lower_bound=radius``, their defaults otherwise:
  Frobenius norms, no normalisation, no abs).
* ``local_lipschitz``: ``max`` over samples of ``||a - e(x')||_2 / (||x - x'||_2 + 1e-10)`` with
  ``u ~ N(0, radius^2)`` (Quantus ``LocalLipschitzEstimate`` with ``perturb_std=radius``). Quantus
  normalises the explanations by their maximum absolute value by default; ``normalise=True`` does
  the same *per image* (Quantus divides by the maximum over the whole batch, so its numbers depend
  on the batch; they agree for batches of one image).

The explanations of the perturbed inputs are computed in as few explainer calls as possible: all
``n_samples x B`` perturbed inputs at once (or chunks of ``batch_size`` rows). The target is held
fixed across perturbations (as Quantus' ``y_batch``): ``target=None`` is resolved once to the
predicted class on the unperturbed inputs when the explainer exposes its model (``forward_func``
or ``model`` attribute); for a plain callable it stays None.

Noise is drawn with a seeded CPU generator in float64 (``draw_noise``), identical on every device.
"""

from __future__ import annotations

from typing import Any

import torch

from pyxai.engine.checks import check_inputs
from pyxai.engine.targets import resolve_target
from pyxai.metrics._common import explain, explainer_model, repeat_target


def draw_noise(kind: str, shape: tuple[int, ...], radius: float, seed: int) -> torch.Tensor:
    """The perturbations of the robustness metrics: Tensor[n_samples, B, ...] float64 on the CPU.

    ``kind="uniform"``: ``radius * (2 U - 1)``; ``kind="gaussian"``: ``radius * N(0, 1)``; drawn
    from ``torch.Generator().manual_seed(seed)`` in that order.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if kind == "uniform":
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * radius
    if kind == "gaussian":
        return torch.randn(shape, generator=gen, dtype=torch.float64) * radius
    raise ValueError(f"unknown noise kind {kind!r}")


def _fixed_target(explainer: Any, inputs: torch.Tensor, target: Any) -> Any:
    if target is not None:
        return target
    model = explainer_model(explainer)
    if model is None:
        return None
    with torch.no_grad():
        return resolve_target(None, model(inputs))


def _normalise_by_max(a: torch.Tensor) -> torch.Tensor:
    """Divide each row (last dim) by its maximum absolute value (all-zero rows unchanged)."""
    m = a.abs().amax(-1, keepdim=True)
    return a / torch.where(m > 0, m, torch.ones_like(m))


def _check(radius: float, n_samples: int, batch_size: int | None) -> None:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or radius <= 0:
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")


def _perturbed_explanations(
    explainer: Any, inputs: torch.Tensor, target: Any, noise: torch.Tensor,
    attributions: torch.Tensor | None, batch_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a [B, F], a' [n, B, F], x' - x [n, B, F]) with the explainer called in few big batches."""
    n, b = noise.shape[0], inputs.shape[0]
    a0 = explain(explainer, inputs, target) if attributions is None else attributions
    if not isinstance(a0, torch.Tensor) or a0.shape[0] != b:
        raise ValueError(f"attributions must be a Tensor with {b} rows, got "
                         f"{tuple(a0.shape) if isinstance(a0, torch.Tensor) else type(a0)}")
    xp = (inputs.unsqueeze(0) + noise.to(inputs.device, inputs.dtype)).reshape(n * b,
                                                                               *inputs.shape[1:])
    rows = n * b if batch_size is None else max(b, int(batch_size) // b * b)
    outs = []
    for s in range(0, n * b, rows):
        chunk = xp[s : s + rows]
        outs.append(explain(explainer, chunk, repeat_target(target, chunk.shape[0] // b)).detach())
    ap = torch.cat(outs) if len(outs) > 1 else outs[0]
    a0 = a0.detach().reshape(b, -1)
    if ap[0].numel() != a0.shape[1]:
        raise ValueError(f"attributions have {a0.shape[1]} values per image but the explainer "
                         f"returns {ap[0].numel()}")
    dx = (xp.reshape(n, b, -1) - inputs.reshape(1, b, -1)).double()
    return a0.double(), ap.reshape(n, b, -1).double(), dx


def _noisy_explanations(
    explainer: Any, inputs: torch.Tensor, target: Any, noise_kind: str, radius: float,
    n_samples: int, seed: int, attributions: torch.Tensor | None, batch_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checks, fixed target, noise, then :func:`_perturbed_explanations`: (a, a', x' - x)."""
    check_inputs(inputs)
    _check(radius, n_samples, batch_size)
    target = _fixed_target(explainer, inputs, target)
    noise = draw_noise(noise_kind, (n_samples, *inputs.shape), radius, seed)
    return _perturbed_explanations(explainer, inputs, target, noise, attributions, batch_size)


def _result(out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """float64 for float64 inputs, else float32."""
    return out.to(inputs.dtype if inputs.dtype == torch.float64 else torch.float32)


def _sensitivity(explainer, inputs, target, radius, n_samples, seed, attributions, batch_size,
                 reduce: str) -> torch.Tensor:
    a0, ap, _ = _noisy_explanations(explainer, inputs, target, "uniform", radius, n_samples, seed,
                                    attributions, batch_size)
    sens = (a0[None] - ap).norm(dim=-1) / a0.norm(dim=-1)[None]  # [n, B]
    return _result(sens.max(0).values if reduce == "max" else sens.mean(0), inputs)


def max_sensitivity(
    explainer: Any,
    inputs: torch.Tensor,
    target: Any = None,
    radius: float = 0.02,
    n_samples: int = 10,
    seed: int = 0,
    attributions: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Max-sensitivity: ``max_u ||e(x) - e(x + u)||_2 / ||e(x)||_2``, ``u ~ U(-radius, radius)``.

    Args:
        explainer: a pyxai explainer (``.attribute(inputs, target=...)``) or a callable
            ``(inputs, target) -> attributions``.
        inputs: Tensor[B, C, H, W] (or Tensor[B, C, T, H, W]).
        target: as every explainer; held fixed over perturbations (None: predicted class when the
            explainer exposes its model, else passed on as None). Default: None
        radius: half-width of the uniform noise (Quantus' ``lower_bound``). Default: 0.02
        n_samples: number of noisy copies (Quantus' ``nr_samples``). Default: 10
        seed: noise seed (see :func:`draw_noise`). Default: 0
        attributions: the explanations of ``inputs`` if already computed (saves one call).
        batch_size: rows per explainer call for the perturbed inputs (None: all ``n_samples *
            B`` in one call). Default: None

    Returns:
        Tensor[B] (inf/NaN when ``e(x)`` is all zeros).
    """
    return _sensitivity(explainer, inputs, target, radius, n_samples, seed, attributions,
                        batch_size, "max")


def avg_sensitivity(
    explainer: Any,
    inputs: torch.Tensor,
    target: Any = None,
    radius: float = 0.02,
    n_samples: int = 10,
    seed: int = 0,
    attributions: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Average sensitivity: the mean over samples of the ratio of :func:`max_sensitivity`.

    Same arguments as :func:`max_sensitivity`. Returns Tensor[B].
    """
    return _sensitivity(explainer, inputs, target, radius, n_samples, seed, attributions,
                        batch_size, "mean")


def local_lipschitz(
    explainer: Any,
    inputs: torch.Tensor,
    target: Any = None,
    radius: float = 0.1,
    n_samples: int = 10,
    seed: int = 0,
    attributions: torch.Tensor | None = None,
    batch_size: int | None = None,
    normalise: bool = True,
) -> torch.Tensor:
    """Local Lipschitz estimate: ``max_u ||e(x) - e(x + u)||_2 / (||u||_2 + 1e-10)``,
    ``u ~ N(0, radius^2)``.

    Args:
        explainer, inputs, target, n_samples, seed, attributions, batch_size: as
            :func:`max_sensitivity`.
        radius: standard deviation of the Gaussian noise (Quantus' ``perturb_std``). Default: 0.1
        normalise: divide each explanation by its maximum absolute value first (Quantus' default
            ``normalise=True``, but per image). Default: True

    Returns:
        Tensor[B].
    """
    a0, ap, dx = _noisy_explanations(explainer, inputs, target, "gaussian", radius, n_samples,
                                     seed, attributions, batch_size)
    if normalise:
        a0, ap = _normalise_by_max(a0), _normalise_by_max(ap)
    lip = (a0[None] - ap).norm(dim=-1) / (dx.norm(dim=-1) + 1e-10)
    return _result(lip.max(0).values, inputs)
