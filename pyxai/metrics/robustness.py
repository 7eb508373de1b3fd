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

Streaming: the noisy copies are made, explained and reduced chunk by chunk (whole samples,
``batch_size`` rows per explainer call); only a running maximum and sum per image are kept, so
peak memory does not grow with ``n_samples``. The noise of a chunk is the matching slice of
:func:`draw_noise` (one seeded CPU generator in float64, read in order by :class:`NoiseStream`), so
the numbers do not depend on ``batch_size`` and are identical on every device.

The target is held fixed across perturbations (as Quantus' ``y_batch``): when the explainer
exposes its model (``forward_func`` or ``model`` attribute) ``target`` is resolved once on the
unperturbed inputs by :func:`pyxai.engine.targets.resolve_target` (``None``: the predicted class);
for a plain callable explainer it is passed on as given (``None`` stays None). That target forward
runs a train-mode model on a :class:`pyxai.engine.view.ModelView` (one warning, BatchNorm statistics
unchanged); the explainer's own calls are its own (pyxai explainers do the same).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pyxai.engine.accumulators import Accumulator
from pyxai.engine.checks import check_inputs, check_int, check_positive_int
from pyxai.engine.runner import auto_batch_size
from pyxai.metrics._common import (
    check_finite_tensor,
    explain,
    explainer_model,
    fixed_target,
    tile_target,
)

KINDS = ("uniform", "gaussian")


def draw_noise(kind: str, shape: tuple[int, ...], radius: float, seed: int) -> torch.Tensor:
    """The perturbations of the robustness metrics: Tensor[n_samples, B, ...] float64 on the CPU.

    ``kind="uniform"``: ``radius * (2 U - 1)``; ``kind="gaussian"``: ``radius * N(0, 1)``; drawn
    at once from ``torch.Generator().manual_seed(seed)`` (``torch.rand`` / ``torch.randn``). This
    is the definition; the metrics read the same values chunk by chunk with :class:`NoiseStream`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown noise kind {kind!r}")
    gen = torch.Generator().manual_seed(check_int(seed, "seed"))
    if kind == "uniform":
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * radius
    return torch.randn(shape, generator=gen, dtype=torch.float64) * radius


class NoiseStream:
    """:func:`draw_noise` ``(kind, (n_samples, *shape), radius, seed)`` read sample by sample, bit
    for bit, holding one chunk at a time.

    Uniform draws consume the generator value by value, so consecutive ``torch.rand`` calls give
    the values of one call. ``torch.randn`` (CPU, 16 values or more) draws all its uniforms, turns
    them into normals 16 at a time (Box-Muller on pairs ``i, i + 8``), and when the count is not a
    multiple of 16 overwrites the last 16 values with 16 normals from 16 fresh uniforms. The stream
    replays that: whole groups of 16 with ``torch.randn(16 k)``, and at the end the skipped partial
    group (``torch.rand``) and the last 16 values (``torch.randn(16)``).

    Args:
        kind: "uniform" or "gaussian".
        n_samples: number of samples in the stream.
        shape: shape of one sample (``inputs.shape``).
        radius: noise scale.
        seed: generator seed.
    """

    def __init__(self, kind: str, n_samples: int, shape: tuple[int, ...], radius: float,
                 seed: int) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown noise kind {kind!r}")
        self.kind, self.shape, self.radius = kind, tuple(shape), radius
        self.per_sample = math.prod(self.shape)
        self.total = n_samples * self.per_sample
        self.gen = torch.Generator().manual_seed(check_int(seed, "seed"))
        self.buffer = torch.empty(0, dtype=torch.float64)  # drawn, not handed out yet
        self.drawn = 0  # stream positions drawn so far
        if kind == "gaussian" and self.total < 16:  # torch.randn's serial path: draw it all
            self._push(torch.randn(self.total, generator=self.gen, dtype=torch.float64))

    def _push(self, values: torch.Tensor) -> None:
        self.buffer = torch.cat([self.buffer, values])
        self.drawn += values.numel()

    def _fill(self, upto: int) -> None:
        """Draw stream positions up to ``upto`` (exclusive) into the buffer."""
        g, f64 = self.gen, torch.float64
        partial = self.total % 16 if self.kind == "gaussian" else 0
        tail = self.total - 16 if partial else self.total  # where the overwritten values start
        if upto <= self.drawn and (upto <= tail or self.drawn == self.total):
            return
        if self.kind == "uniform":
            self._push(torch.rand(upto - self.drawn, generator=g, dtype=f64))
            return
        whole = self.total - partial
        if upto > tail:  # reaches the overwritten tail: draw everything
            if whole > self.drawn:
                self._push(torch.randn(whole - self.drawn, generator=g, dtype=f64))
            torch.rand(partial, generator=g, dtype=f64)  # the partial group's uniforms (discarded)
            last = torch.randn(16, generator=g, dtype=f64)
            keep = self.buffer.numel() - (self.drawn - tail)
            self.buffer = torch.cat([self.buffer[:keep], last])
            self.drawn = self.total
            return
        self._push(torch.randn(-(-upto // 16) * 16 - self.drawn, generator=g, dtype=f64))

    def next(self, k: int) -> torch.Tensor:
        """The next ``k`` samples: Tensor[k, *shape] float64 (CPU)."""
        n = k * self.per_sample
        handed = self.drawn - self.buffer.numel()
        if handed + n > self.total:
            raise ValueError(f"the stream holds {self.total // self.per_sample} samples")
        self._fill(handed + n)
        out, self.buffer = self.buffer[:n], self.buffer[n:].clone()
        if self.kind == "uniform":
            out = (out * 2 - 1) * self.radius
        else:
            out = out * self.radius
        return out.reshape(k, *self.shape)


class NoiseRatios(Accumulator):
    """Running maximum and sum over noise samples of one ratio per image (sensitivity, Lipschitz
    quotient). Shards of samples merge (max of maxima, sum of sums).

    Args:
        batch: B, images.
        device: where the statistics live.

    Attributes:
        max_ratio: Tensor[B] float64 (``-inf`` before any sample; NaN propagates).
        sum_ratio: Tensor[B] float64, added sample by sample (independent of the chunking).
        count: samples added.
    """

    def __init__(self, batch: int, device: torch.device | str = "cpu") -> None:
        self.max_ratio = torch.full((batch,), -math.inf, dtype=torch.float64, device=device)
        self.sum_ratio = torch.zeros(batch, dtype=torch.float64, device=device)
        self.count = 0

    def update(self, start: int, stop: int, values: torch.Tensor) -> None:
        """Add samples ``[start, stop)``: ``values`` Tensor[stop - start, B] (or flattened)."""
        r = values.reshape(stop - start, self.sum_ratio.shape[0]).to(self.sum_ratio.dtype)
        for row in r:
            self.sum_ratio += row
        self.max_ratio = torch.maximum(self.max_ratio, r.amax(0))
        self.count += stop - start

    def merge(self, other: Accumulator) -> NoiseRatios:
        """Combine with the statistics of other samples of the same images."""
        if isinstance(other, NoiseRatios):
            self.max_ratio = torch.maximum(self.max_ratio, other.max_ratio.to(self.max_ratio.device))
        super().merge(other)
        return self

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(max, mean) over the samples added: two Tensor[B] float64."""
        return self.max_ratio, self.sum_ratio / max(1, self.count)


def _check(radius: float, n_samples: int, batch_size: int | None) -> None:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0 \
            or not math.isfinite(radius):
        raise ValueError(f"radius must be a positive finite number, got {radius!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")


def _normalise_by_max(a: torch.Tensor) -> torch.Tensor:
    """Divide each row (last dim) by its maximum absolute value (all-zero rows unchanged)."""
    m = a.abs().amax(-1, keepdim=True)
    return a / torch.where(m > 0, m, torch.ones_like(m))


def _to_device(noise: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """CPU noise in ``like``'s dtype and device; to CUDA through pinned memory, asynchronously."""
    noise = noise.to(like.dtype)
    if like.device.type == "cuda":
        return noise.pin_memory().to(like.device, non_blocking=True)
    return noise.to(like.device)


def noise_ratios(
    explainer: Any, inputs: torch.Tensor, target: Any, kind: str, radius: float, n_samples: int,
    seed: int, attributions: torch.Tensor | None, batch_size: int | None, lipschitz: bool,
    normalise: bool = False,
) -> NoiseRatios:
    """The streaming core of the three metrics: checks (once), the fixed target, the explanation of
    ``inputs``, then chunks of noisy copies explained and reduced into a :class:`NoiseRatios`.

    The ratio of sample ``u`` is ``||a - e(x + u)|| / ||a||`` (``lipschitz=False``) or
    ``||a - e(x + u)|| / (||u|| + 1e-10)``, with ``a`` and ``e(x + u)`` max-normalised per image
    first when ``normalise``; everything in float64.
    """
    check_inputs(inputs)
    _check(radius, n_samples, batch_size)
    seed = check_int(seed, "seed")
    b = inputs.shape[0]
    target = fixed_target(explainer_model(explainer), inputs, target)
    if attributions is None:
        a0 = explain(explainer, inputs, target)
        name = "the explainer's attributions of inputs"
    else:
        if not isinstance(attributions, torch.Tensor) or attributions.dim() == 0 \
                or attributions.shape[0] != b:
            got = tuple(attributions.shape) if isinstance(attributions, torch.Tensor) \
                else type(attributions).__name__
            raise ValueError(f"attributions must be a Tensor with {b} rows, got {got}")
        a0, name = attributions, "attributions"
    check_finite_tensor(a0, name)
    a0 = a0.detach().to(inputs.device).reshape(b, -1).double()
    if normalise:
        a0 = _normalise_by_max(a0)
    den = None if lipschitz else a0.norm(dim=-1)
    rows = int(batch_size) if batch_size is not None else auto_batch_size(inputs[:1])
    per_call = max(1, rows // b)  # whole samples per explainer call
    stream = NoiseStream(kind, n_samples, tuple(inputs.shape), radius, seed)
    acc = NoiseRatios(b, inputs.device)
    x = inputs.detach()
    for start in range(0, n_samples, per_call):
        k = min(per_call, n_samples - start)
        xp = x[None] + _to_device(stream.next(k), x)  # [k, B, ...]
        ap = explain(explainer, xp.reshape(k * b, *x.shape[1:]), tile_target(target, k, b))
        if ap[0].numel() != a0.shape[1]:
            raise ValueError(f"attributions have {a0.shape[1]} values per image but the explainer "
                             f"returns {ap[0].numel()}")
        ap = ap.detach().reshape(k, b, -1).double()
        if normalise:
            ap = _normalise_by_max(ap)
        num = (a0[None] - ap).norm(dim=-1)  # [k, B]
        if lipschitz:
            acc.update(start, start + k, num / ((xp - x[None]).reshape(k, b, -1).double()
                                                .norm(dim=-1) + 1e-10))
        else:
            acc.update(start, start + k, num / den[None])
    return acc


def _result(out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """float64 for float64 inputs, else float32."""
    return out.to(inputs.dtype if inputs.dtype == torch.float64 else torch.float32)


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
        target: any target of :mod:`pyxai.engine.targets`, held fixed over perturbations (None:
            predicted class when the explainer exposes its model, else passed on as None); for
            the stacked noisy copies a per-sample target is repeated and a callable
            ``(outputs, rows)`` sees each row's own sample. Default: None
        radius: half-width of the uniform noise (Quantus' ``lower_bound``). Default: 0.02
        n_samples: number of noisy copies (Quantus' ``nr_samples``). Default: 10
        seed: noise seed, an int (see :func:`draw_noise`). Default: 0
        attributions: the explanations of ``inputs`` if already computed (saves one call); must
            be finite.
        batch_size: rows per explainer call for the perturbed inputs, rounded down to whole
            samples of B rows (at least one). None: the runner's automatic size (64 rows on any
            device, fewer for large inputs). Memory is O(batch_size x input) whatever
            ``n_samples``. Default: None

    Returns:
        Tensor[B] (inf/NaN when ``e(x)`` is all zeros).

    Examples::

        >>> pyxai.metrics.max_sensitivity(pyxai.Saliency(model), x, n_samples=20)   # Tensor[B]
    """
    acc = noise_ratios(explainer, inputs, target, "uniform", radius, n_samples, seed,
                       attributions, batch_size, lipschitz=False)
    return _result(acc.result()[0], inputs)


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
    acc = noise_ratios(explainer, inputs, target, "uniform", radius, n_samples, seed,
                       attributions, batch_size, lipschitz=False)
    return _result(acc.result()[1], inputs)


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
    acc = noise_ratios(explainer, inputs, target, "gaussian", radius, n_samples, seed,
                       attributions, batch_size, lipschitz=True, normalise=bool(normalise))
    return _result(acc.result()[0], inputs)
