"""A sparse symmetric eigen-solver in torch: thick-restart Lanczos (CPU and CUDA).

``eigsh(matrix, k, which)`` returns what ``scipy.sparse.linalg.eigsh(matrix, k, which=which)`` returns
(ARPACK's implicitly restarted Lanczos): the ``k`` wanted eigenvalues in ascending order and their
eigenvectors. Only matrix-vector products with ``matrix`` are needed, so a sparse ``Tensor[N, N]``
(CSR or COO) never becomes dense: memory is ``N x (ncv + 1)`` for the Krylov basis plus the matrix.

Algorithm (Wu & Simon's thick restart): extend an orthonormal Krylov basis to ``ncv`` vectors with
full re-orthogonalisation (classical Gram-Schmidt done twice), take the Ritz pairs of the projected
matrix ``T = Vᵀ M V``, stop when the wanted Ritz residuals ``|β s_last|`` are below ``tol`` (relative
to the largest Ritz value), otherwise keep the best ``ncv / 2`` Ritz vectors plus the residual
direction and extend again. A breakdown (an invariant subspace, e.g. a disconnected graph) continues
from a fresh random direction orthogonal to the basis.

A single-vector Krylov method sees only one vector of a repeated eigenvalue, so known eigenpairs
can be passed in (``known``): the search then runs in their orthogonal complement and the results
are merged. SpRAy passes the eigenvalue-1 eigenvectors ``D^1/2 1_c`` of each connected component of
the k-NN graph, whose multiplicity is the number of components (ARPACK finds those copies only
through rounding noise).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["eigsh"]

_WHICH = ("LM", "LA", "SA")


def _order(theta: Tensor, which: str) -> Tensor:
    """Indices of the Ritz values ``theta`` from most to least wanted."""
    if which == "LM":
        return theta.abs().argsort(descending=True, stable=True)
    if which == "LA":
        return theta.argsort(descending=True, stable=True)
    return theta.argsort(stable=True)


def _orthogonalise(w: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """``w`` minus its projection on the orthonormal *rows* of ``basis`` (Tensor[m, N], twice), and
    the coefficients Tensor[m]."""
    h = basis @ w
    w = w - h @ basis
    h2 = basis @ w
    return w - h2 @ basis, h + h2


def eigsh(
    matrix: Tensor,
    k: int,
    which: str = "LM",
    tol: float = 1e-10,
    ncv: int | None = None,
    max_restarts: int = 2000,
    seed: int = 0,
    known: tuple[Tensor, Tensor] | None = None,
    threads: int | None = 1,
) -> tuple[Tensor, Tensor]:
    """``k`` eigenpairs of a real symmetric (sparse or dense) ``matrix``, like ``scipy`` ``eigsh``.

    Args:
        matrix (Tensor[N, N]): real symmetric, sparse (CSR/COO) or dense, float32/float64, any device.
        k (int): number of eigenpairs, ``1 <= k < N``.
        which (str, optional): ``"LM"`` largest magnitude, ``"LA"`` largest, ``"SA"`` smallest
            algebraic. Default: "LM"
        tol (float, optional): convergence threshold on the Ritz residual norms, relative to the
            largest Ritz value in magnitude. Default: 1e-10
        ncv (int, optional): Krylov basis size, ``k < ncv <= N``. Default: ``min(N, max(2k + 1, 20))``
            (ARPACK's default)
        max_restarts (int, optional): restarts before giving up with a RuntimeError. Default: 2000
        seed (int, optional): seed of the random start vector (CPU generator). Default: 0
        known (tuple of Tensor[c] and Tensor[N, c], optional): exact eigenpairs already known
            (orthonormal vectors); the search runs orthogonally to them. Default: None
        threads (int, optional): intra-op threads while a CPU solve runs (``torch.set_num_threads``,
            restored after; process-wide). The loop is a long chain of tiny products where thread
            start-up dominates: one thread measured 8-15x faster on a loaded 2-core machine.
            None leaves the setting alone. Default: 1

    Returns:
        tuple(Tensor, Tensor): eigenvalues Tensor[k] ascending, eigenvectors Tensor[N, k] (columns,
        unit norm), in ``matrix``'s dtype and device.
    """
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square Tensor[N, N], got shape {tuple(matrix.shape)}")
    n = matrix.shape[0]
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N) = [1, {n}), got {k}")
    dtype, device = matrix.dtype, matrix.device
    known_values = torch.zeros(0, dtype=dtype, device=device)
    known_vectors = torch.zeros(n, 0, dtype=dtype, device=device)
    if known is not None:
        known_values, known_vectors = known[0].to(device, dtype), known[1].to(device, dtype)
    free = n - known_vectors.shape[1]
    if free <= 1:
        return _select(known_values, known_vectors, k, which)
    search = min(k, free - 1)
    ncv = min(free, max(2 * search + 1, 20)) if ncv is None else min(ncv, free)
    if not search < ncv <= n:
        raise ValueError(f"ncv must be in (k, N] = ({k}, {n}], got {ncv}")
    gen = torch.Generator().manual_seed(seed)

    def random_direction() -> Tensor:
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
        return _orthogonalise(v, known_vectors.T)[0]

    previous = torch.get_num_threads()
    if threads is not None and device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        values, vectors = _lanczos(matrix, search, which, tol, ncv, max_restarts, random_direction,
                                   known_vectors.T.contiguous())
    finally:
        torch.set_num_threads(previous)
    return _select(torch.cat([known_values, values]), torch.cat([known_vectors, vectors], dim=1), k, which)


def _select(values: Tensor, vectors: Tensor, k: int, which: str) -> tuple[Tensor, Tensor]:
    """The ``k`` most wanted pairs, in ascending order of value."""
    wanted = _order(values, which)[:k]
    wanted = wanted[values[wanted].argsort(stable=True)]
    return values[wanted], vectors[:, wanted]


def _lanczos(matrix: Tensor, k: int, which: str, tol: float, ncv: int, max_restarts: int,
             random_direction, deflate: Tensor) -> tuple[Tensor, Tensor]:
    """Thick-restart Lanczos in the orthogonal complement of the rows of ``deflate`` (Tensor[c, N]).
    The basis is kept as rows (Tensor[ncv + 1, N]), so every product reads contiguous memory."""
    n = matrix.shape[0]
    dtype, device = matrix.dtype, matrix.device

    basis = torch.zeros(ncv + 1, n, dtype=dtype, device=device)
    t = torch.zeros(ncv, ncv, dtype=dtype, device=device)
    v = random_direction()
    basis[0] = v / v.norm()
    kept = 0
    keep = min(ncv - 1, k + (ncv - k) // 2)
    for _ in range(max_restarts):
        beta = torch.zeros((), dtype=dtype, device=device)
        for j in range(kept, ncv):
            w = _orthogonalise(matrix @ basis[j], deflate)[0]
            w, h = _orthogonalise(w, basis[: j + 1])
            t[: j + 1, j] = h
            beta = w.norm()
            scale = t[: j + 1, : j + 1].abs().max().clamp(min=torch.finfo(dtype).tiny)
            if bool(beta <= 1e3 * torch.finfo(dtype).eps * scale):  # invariant subspace found
                w, _ = _orthogonalise(random_direction(), basis[: j + 1])
                beta = torch.zeros((), dtype=dtype, device=device)
                basis[j + 1] = w / w.norm()
            else:
                basis[j + 1] = w / beta
        sym = torch.triu(t) + torch.triu(t, 1).T
        theta, s = torch.linalg.eigh(sym)
        order = _order(theta, which)
        residual = (beta * s[-1, order[:k]]).abs()
        if ncv == n - deflate.shape[1] or bool((residual <= tol * theta.abs().max()).all()):
            wanted = order[:k]
            wanted = wanted[theta[wanted].argsort()]
            vectors = basis[:ncv].T @ s[:, wanted]
            return theta[wanted], vectors / vectors.norm(dim=0, keepdim=True)
        # thick restart: the best `keep` Ritz vectors and the residual direction
        chosen = order[:keep]
        basis[:keep] = s[:, chosen].T @ basis[:ncv]
        basis[keep] = basis[ncv]
        t.zero_()
        t[range(keep), range(keep)] = theta[chosen]
        kept = keep
    raise RuntimeError(f"eigsh did not converge in {max_restarts} restarts (k={k}, ncv={ncv}, tol={tol})")
