"""Seeded samplers of the Sobol design points: ``[N, 2d]`` points in ``[0, 1)^{2d}`` (A = first d
columns, B = last d columns).

* ``"sobol"``: the unscrambled Sobol' sequence, zero point first (= ``scipy.stats.qmc.Sobol(2d,
  scramble=False).random(N)``, the original PyTorch reference's default; ``torch.quasirandom.
  SobolEngine`` uses the same Joe-Kuo direction numbers). Deterministic: ``seed`` is unused.
* ``"scrambled_sobol"`` (default): Sobol' with torch's seeded linear matrix scrambling + digital
  shift (``SobolEngine(scramble=True, seed=seed)``).
* ``"halton"``: Halton sequence (bases: the first 2d primes) with seeded random digit permutations
  (one permutation per dimension and digit position), starting at index 1.
* ``"latin_hypercube"``: seeded Latin hypercube (one point per stratum and dimension, uniform inside).
* ``"monte_carlo"``: i.i.d. uniform points from a seeded ``torch.Generator``.

Every sampler runs on the CPU in float64 and is reproducible across machines for a given seed.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

SAMPLERS = ("scrambled_sobol", "sobol", "halton", "latin_hypercube", "monte_carlo")


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def sobol(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Unscrambled Sobol' points 0..n-1 (the first is all zeros). Tensor[n, dim] float64."""
    return torch.quasirandom.SobolEngine(dim, scramble=False).draw(n, dtype=torch.float64)


def scrambled_sobol(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Scrambled Sobol' points (seeded). Tensor[n, dim] float64."""
    return torch.quasirandom.SobolEngine(dim, scramble=True, seed=int(seed)).draw(
        n, dtype=torch.float64
    )


def _primes(count: int) -> list[int]:
    limit = max(16, int(count * (math.log(count + 2) + math.log(math.log(count + 3)))) + 10)
    while True:
        sieve = torch.ones(limit + 1, dtype=torch.bool)
        sieve[:2] = False
        for p in range(2, int(limit**0.5) + 1):
            if sieve[p]:
                sieve[p * p :: p] = False
        primes = torch.nonzero(sieve).flatten().tolist()
        if len(primes) >= count:
            return primes[:count]
        limit *= 2


def halton(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Halton points 1..n with seeded digit permutations. Tensor[n, dim] float64."""
    gen = _generator(seed)
    idx = torch.arange(1, n + 1, dtype=torch.int64)
    out = torch.zeros(n, dim, dtype=torch.float64)
    for j, p in enumerate(_primes(dim)):
        digits = max(1, math.ceil(math.log(n + 1, p)) + 1)
        rest = idx.clone()
        scale = 1.0 / p
        for _ in range(digits):
            perm = torch.randperm(p, generator=gen)
            out[:, j] += perm[rest % p].double() * scale
            rest //= p
            scale /= p
    return out


def latin_hypercube(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Latin hypercube points (seeded). Tensor[n, dim] float64."""
    gen = _generator(seed)
    strata = torch.stack([torch.randperm(n, generator=gen) for _ in range(dim)], dim=1)
    return (strata.double() + torch.rand(n, dim, generator=gen, dtype=torch.float64)) / n


def monte_carlo(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """I.i.d. uniform points (seeded). Tensor[n, dim] float64."""
    return torch.rand(n, dim, generator=_generator(seed), dtype=torch.float64)


_REGISTRY: dict[str, Callable[[int, int, int], torch.Tensor]] = {
    "sobol": sobol,
    "scrambled_sobol": scrambled_sobol,
    "halton": halton,
    "latin_hypercube": latin_hypercube,
    "monte_carlo": monte_carlo,
}


def check_sampler(sampler: str | Callable) -> Callable[[int, int, int], torch.Tensor]:
    """A sampler name (one of ``SAMPLERS``) or a callable ``(n, dim, seed) -> Tensor[n, dim]``."""
    if callable(sampler):
        return sampler
    if sampler not in _REGISTRY:
        raise ValueError(f"sampler must be one of {SAMPLERS} or a callable, got {sampler!r}")
    return _REGISTRY[sampler]


def draw_design(
    sampler: str | Callable, n: int, d: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` points of a ``2d``-dimensional sequence and split them into A and B.

    Returns:
        (A, B): two Tensor[n, d] float64 on the CPU, values in [0, 1].
    """
    pts = check_sampler(sampler)(n, 2 * d, seed)
    if not isinstance(pts, torch.Tensor) or tuple(pts.shape) != (n, 2 * d):
        got = tuple(pts.shape) if isinstance(pts, torch.Tensor) else type(pts).__name__
        raise ValueError(f"the sampler must return a Tensor[{n}, {2 * d}], got {got}")
    pts = pts.to(torch.float64)
    return pts[:, :d].contiguous(), pts[:, d:].contiguous()
