"""Sparse k-nearest-neighbour affinity and its normalised adjacency, in torch, never N x N dense.

CoRelAy (``SciPyPDist`` + ``SparseKNN`` + ``SymmetricNormalLaplacian``) builds the dense Euclidean
distance matrix, takes for each row the ``k`` columns after the first of ``argsort`` (the first being
the sample itself), puts 1 there, symmetrises ``A = (A + Aᵀ) / 2`` (values 0.5 or 1) and returns
``D^-1/2 A D^-1/2`` with ``D = diag(A 1)``. Here the distances are computed a block of rows at a time
(``block x N`` at most ``max_elements``), so memory is linear in N; the sample itself is excluded
explicitly (CoRelAy relies on it sorting first, which exact duplicates break).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

__all__ = ["knn", "knn_affinity", "normalized_adjacency"]


def knn(features: Tensor, k: int, max_elements: int = 1 << 24) -> Tensor:
    """Indices of the ``k`` nearest other rows (Euclidean), nearest first.

    Args:
        features (Tensor[N, D]): one row per sample.
        k (int): neighbours per row, ``1 <= k < N``.
        max_elements (int, optional): size bound of one block of the distance matrix. Default: 2**24

    Returns:
        Tensor[N, k] int64.
    """
    n = features.shape[0]
    sq = (features * features).sum(dim=1)
    block = max(1, min(n, max_elements // max(n, 1)))
    out = torch.empty(n, k, dtype=torch.int64, device=features.device)
    columns = features.T.contiguous()
    for start in range(0, n, block):
        rows = features[start : start + block]
        # |y|^2 - 2 x.y in one GEMM: a row's own |x|^2 shifts all its distances alike, ranks nothing
        d2 = torch.addmm(sq[None, :], rows, columns, alpha=-2)
        r = torch.arange(rows.shape[0], device=features.device)
        d2[r, r + start] = float("inf")
        out[start : start + block] = d2.topk(k, dim=1, largest=False, sorted=True).indices
    return out


def knn_affinity(neighbours: Tensor, symmetric: bool = True, dtype: torch.dtype = torch.float64
                 ) -> Tensor:
    """Binary k-NN affinity as a sparse COO Tensor[N, N] (coalesced), ``(A + Aᵀ) / 2`` if symmetric."""
    n, k = neighbours.shape
    rows = torch.arange(n, device=neighbours.device).repeat_interleave(k)
    cols = neighbours.reshape(-1)
    values = torch.ones(n * k, dtype=dtype, device=neighbours.device)
    if symmetric:
        rows, cols = torch.cat([rows, cols]), torch.cat([cols, rows])
        values = torch.cat([values, values]) / 2
    out = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False)
    return out.coalesce()


def normalized_adjacency(affinity: Tensor) -> Tensor:
    """``D^-1/2 A D^-1/2`` of a sparse COO affinity, as a CSR Tensor[N, N] (CoRelAy's "Laplacian")."""
    idx, values = affinity.indices(), affinity.values()
    degree = torch.zeros(affinity.shape[0], dtype=values.dtype, device=values.device)
    degree.index_add_(0, idx[0], values)
    scale = degree.rsqrt()
    out = torch.sparse_coo_tensor(idx, values * scale[idx[0]] * scale[idx[1]], affinity.shape,
                                  check_invariants=False)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matvec is all we use
        warnings.simplefilter("ignore", UserWarning)
        return out.coalesce().to_sparse_csr()


def components(affinity: Tensor) -> Tensor:
    """Connected-component label of each node of a sparse COO graph: Tensor[N] int64, labels 0..c-1.

    Min-label propagation along the edges with pointer jumping, all in torch (any device).
    """
    n = affinity.shape[0]
    src, dst = affinity.indices()
    labels = torch.arange(n, device=src.device)
    while True:
        new = labels.scatter_reduce(0, src, labels[dst], reduce="amin")
        new = new[new]  # pointer jumping: follow the label's own label
        if bool((new == labels).all()):
            break
        labels = new
    return torch.unique(labels, return_inverse=True)[1]


def component_eigenvectors(affinity: Tensor, labels: Tensor) -> Tensor:
    """The eigenvalue-1 eigenvectors of ``D^-1/2 A D^-1/2``: ``D^1/2 1_c`` per component, unit norm,
    Tensor[N, c] (the component's mass ``D`` is its nodes' degrees)."""
    idx, values = affinity.indices(), affinity.values()
    degree = torch.zeros(affinity.shape[0], dtype=values.dtype, device=values.device)
    degree.index_add_(0, idx[0], values)
    count = int(labels.max()) + 1
    out = torch.zeros(affinity.shape[0], count, dtype=values.dtype, device=values.device)
    out[torch.arange(affinity.shape[0], device=values.device), labels] = degree.sqrt()
    return out / out.norm(dim=0, keepdim=True)
