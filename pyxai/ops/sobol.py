"""Sobol ops: the replicated design of Sobol' sensitivity analysis, indexed on the fly, and its
total- and first-order estimators.

Design: ``A`` and ``B`` are ``[N, d]`` point sets in ``[0, 1]^d``. The full design is the
``(d + 2) * N`` rows ``[A; B; C_0; ...; C_{d-1}]`` where ``C_i`` is ``A`` with column ``i`` taken
from ``B``: row ``k`` is block ``k // N`` (0: A, 1: B, 2 + i: C_i), point ``k % N``.
:func:`sobol_design` returns any row range of it without ever building the rest.

Estimators (:func:`sobol_indices`), with ``f0 = mean(yA)``, ``V = var(yA)`` (ddof 1). Total order
uses the pair ``(A, C_i)`` (every input shared but ``x_i``), first order the pair ``(B, C_i)`` (only
``x_i`` shared); the total-order formulas are those of the Sobol attribution method's reference
(SPECS §2.4), the first-order ones the matching estimator of the same family:

========== ============================================== =========================================
estimator  total order ``ST_i``                           first order ``S_i``
========== ============================================== =========================================
jansen     ``sum((yA - yC)^2) / (2 N V)``                 ``1 - sum((yB - yC)^2) / (2 N V)``
homma      ``(V - mean(yA yC) + f0^2) / V``               ``(mean(yB yC) - f0^2) / V``
saltelli   ``1 - (mean(yA yC) - f0^2) / V``               ``mean(yB (yC - yA)) / V`` (Saltelli 2010)
janon      ``1 - (mean(yA yC) - f0A^2) / VA``             ``(mean(yB yC) - f0B^2) / VB``
glen       ``1 - cov(yA, yC) / sqrt(var0(yA) var0(yC))``  ``cov(yB, yC) / sqrt(var0(yB) var0(yC))``
========== ============================================== =========================================

Janon: ``f0X = mean(yX + yC) / 2``, ``VX = sum(yX^2 + yC^2) / (2 (N - 1)) - f0X^2`` (as the
reference). Glen: covariance with ddof 1, variances with ddof 0 (as the original reference).
Sums run in float64 whatever the dtype (means first, then centred moments). When ``V`` is at most
``(4 eps |f0|)^2`` (``eps`` of the outputs' dtype: a model whose output does not change) every index
of that column is 0; other vanishing denominators (Janon, Glen) give 0 as well.
"""

from __future__ import annotations

import torch

from pyxai.engine.checks import check_float_tensor, check_matches
from pyxai.ops._dispatch import resolve_backend

ESTIMATORS = ("jansen", "homma", "saltelli", "janon", "glen")


# ----------------------------------------------------------------------------------------------
# argument checks


def _check_design(a: torch.Tensor, b: torch.Tensor, first: int, count: int) -> None:
    for name, t in (("A", a), ("B", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a Tensor[N, d], got {type(t).__name__}")
        if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(f"{name} must be a non-empty Tensor[N, d], got shape {tuple(t.shape)}")
        check_float_tensor(t, name)
    if b.shape != a.shape:
        raise ValueError(f"B must have the shape of A {tuple(a.shape)}, got {tuple(b.shape)}")
    check_matches(b, a, "B", "A")
    total = (a.shape[1] + 2) * a.shape[0]
    for name, v in (("first", first), ("count", count)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if first + count > total:
        raise ValueError(f"rows [{first}, {first + count}) lie outside the design's {total} rows")


def _check_outputs(ya: torch.Tensor, yb: torch.Tensor, yc: torch.Tensor, estimator: str) -> None:
    for name, t, dim in (("yA", ya, 2), ("yB", yb, 2), ("yC", yc, 3)):
        if not isinstance(t, torch.Tensor) or t.dim() != dim:
            shape = "[N, P]" if dim == 2 else "[d, N, P]"
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a Tensor{shape}, got {got}")
        check_float_tensor(t, name)
        check_matches(t, ya, name, "yA")
    if yb.shape != ya.shape:
        raise ValueError(f"yB must have the shape of yA {tuple(ya.shape)}, got {tuple(yb.shape)}")
    if tuple(yc.shape[1:]) != tuple(ya.shape):
        raise ValueError(f"yC must have shape [d, {ya.shape[0]}, {ya.shape[1]}], got {tuple(yc.shape)}")
    if ya.shape[0] < 2:
        raise ValueError("the estimators need at least 2 design points (yA.shape[0] >= 2)")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


# ----------------------------------------------------------------------------------------------
# reference implementations (same semantics as csrc/sobol)


def _takes_b(blocks: torch.Tensor, d: int) -> torch.Tensor:
    """Tensor[R, d] bool: which columns design blocks ``blocks`` (Tensor[R]) take from ``B``."""
    cols = torch.arange(d, device=blocks.device)
    return (blocks[:, None] == 1) | (blocks[:, None] - 2 == cols[None, :])


def _design_reference(a: torch.Tensor, b: torch.Tensor, first: int, count: int) -> torch.Tensor:
    n, d = a.shape
    k = torch.arange(first, first + count, device=a.device)
    row = k % n
    return torch.where(_takes_b(k // n, d), b[row], a[row])


def _indices_reference(
    ya: torch.Tensor, yb: torch.Tensor, yc: torch.Tensor, estimator: str
) -> torch.Tensor:
    eps = torch.finfo(ya.dtype).eps
    a, b, c = ya.double()[None], yb.double()[None], yc.double()  # [1, N, P], [1, N, P], [d, N, P]
    n = a.shape[1]
    ma, mb, mc = a.mean(1), b.mean(1), c.mean(1)  # [1, P], [1, P], [d, P]
    da, db, dc = a - ma[:, None], b - mb[:, None], c - mc[:, None]
    saa, sbb, scc = (da * da).sum(1), (db * db).sum(1), (dc * dc).sum(1)
    sab, sac, sbc = (da * db).sum(1), (da * dc).sum(1), (db * dc).sum(1)
    var = saa / (n - 1)
    zero = torch.zeros_like(sac)
    if estimator == "jansen":
        total = ((a - c) ** 2).sum(1) / (2 * n * var)
        first = 1 - ((b - c) ** 2).sum(1) / (2 * n * var)
    elif estimator in ("homma", "saltelli"):
        mac, mbc, mab = sac / n + ma * mc, sbc / n + mb * mc, sab / n + ma * mb
        if estimator == "homma":
            total = (var - mac + ma * ma) / var
            first = (mbc - ma * ma) / var
        else:
            total = 1 - (mac - ma * ma) / var
            first = (mbc - mab) / var
    elif estimator == "janon":
        f0a, f0b = (ma + mc) / 2, (mb + mc) / 2
        sa2, sb2, sc2 = saa + n * ma * ma, sbb + n * mb * mb, scc + n * mc * mc
        va = (sa2 + sc2) / (2 * (n - 1)) - f0a * f0a
        vb = (sb2 + sc2) / (2 * (n - 1)) - f0b * f0b
        mac, mbc = sac / n + ma * mc, sbc / n + mb * mc
        total = torch.where(va > 0, 1 - (mac - f0a * f0a) / va, zero)
        first = torch.where(vb > 0, (mbc - f0b * f0b) / vb, zero)
    else:  # glen
        dac = torch.sqrt((saa / n) * (scc / n))
        dbc = torch.sqrt((sbb / n) * (scc / n))
        total = torch.where(dac > 0, 1 - (sac / (n - 1)) / dac, zero)
        first = torch.where(dbc > 0, (sbc / (n - 1)) / dbc, zero)
    lim = 4 * eps * ma.abs()
    ok = (var > lim * lim) & (var > 0)  # [1, P]
    total = torch.where(ok, total, zero)
    first = torch.where(ok, first, zero)
    return torch.stack([total, first]).to(ya.dtype)


def degenerate_outputs(ya: torch.Tensor) -> torch.Tensor:
    """Columns of ``yA`` [N, P] whose variance is too small for any index (a constant model).

    Returns:
        Tensor[P] bool, True where :func:`sobol_indices` returns zeros because ``V`` vanishes.
    """
    a = ya.double()
    var = a.var(0, correction=1)
    lim = 4 * torch.finfo(ya.dtype).eps * a.mean(0).abs()
    return ~((var > lim * lim) & (var > 0))


# ----------------------------------------------------------------------------------------------
# public ops


def sobol_design(
    a: torch.Tensor, b: torch.Tensor, first: int = 0, count: int | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Rows ``[first, first + count)`` of the replicated design ``[A; B; C_0; ...; C_{d-1}]``.

    Args:
        a: Tensor[N, d] design points A, float32/float64.
        b: Tensor[N, d] design points B (dtype and device of ``a``).
        first: first design row.
        count: number of rows (default: up to the end, ``(d + 2) * N - first``).
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``).

    Returns:
        Tensor[count, d]: row ``r`` is design row ``k = first + r``: ``A[k % N]`` for block
        ``k // N == 0``, ``B[k % N]`` for block 1, and for block ``2 + i`` ``A[k % N]`` with column
        ``i`` from ``B[k % N]``.
    """
    if isinstance(a, torch.Tensor) and a.dim() == 2 and count is None:
        count = (a.shape[1] + 2) * a.shape[0] - first
    _check_design(a, b, first, count)
    if resolve_backend(backend, a.device) == "native":
        return torch.ops.pyxai.sobol_design(a, b, first, count)
    return _design_reference(a, b, first, count)


def sobol_indices(
    ya: torch.Tensor, yb: torch.Tensor, yc: torch.Tensor, estimator: str = "jansen",
    backend: str | None = None,
) -> torch.Tensor:
    """Total- and first-order Sobol' indices from the outputs of the replicated design.

    Args:
        ya: Tensor[N, P] outputs on the A rows (P independent outputs, e.g. one per image).
        yb: Tensor[N, P] outputs on the B rows.
        yc: Tensor[d, N, P] outputs on the C_i rows.
        estimator: one of ``ESTIMATORS`` (see the module docstring).
        backend: "auto" | "native" | "reference" | None.

    Returns:
        Tensor[2, d, P] of ``ya``'s dtype: ``[0]`` total order, ``[1]`` first order. Columns whose
        ``yA`` variance vanishes are zeros (see :func:`degenerate_outputs`).
    """
    _check_outputs(ya, yb, yc, estimator)
    if resolve_backend(backend, ya.device) == "native":
        return torch.ops.pyxai.sobol_indices(ya, yb, yc, estimator)
    return _indices_reference(ya, yb, yc, estimator)
