"""Clustering of the spectral embedding (scikit-learn, as CoRelAy/ViRelAy do) and eigengap analysis.

Methods (CoRelAy processors): ``"kmeans"`` (``sklearn.cluster.KMeans``), ``"dbscan"``
(``sklearn.cluster.DBSCAN``), ``"hdbscan"`` (``sklearn.cluster.HDBSCAN``, min_cluster_size),
``"agglomerative"`` (``sklearn.cluster.AgglomerativeClustering``, ward linkage).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["METHODS", "cluster", "eigengap"]

METHODS = ("kmeans", "dbscan", "hdbscan", "agglomerative")


def cluster(embedding: Tensor, method: str, n_clusters: int, seed: int = 0, **kwargs: Any) -> Tensor:
    """Cluster labels Tensor[N] int64 of the rows of ``embedding`` (Tensor[N, K]).

    ``n_clusters`` is the number of clusters for k-means and agglomerative, the minimum cluster
    size for HDBSCAN and, as ViRelAy does, ``eps = n_clusters / 10`` for DBSCAN (-1 marks noise).
    """
    import sklearn.cluster as skc

    data = embedding.detach().to("cpu", torch.float64).numpy()
    if method == "kmeans":
        est = skc.KMeans(n_clusters=n_clusters, random_state=seed, **kwargs)
    elif method == "agglomerative":
        est = skc.AgglomerativeClustering(n_clusters=n_clusters, linkage="ward", **kwargs)
    elif method == "hdbscan":
        est = skc.HDBSCAN(min_cluster_size=n_clusters, **kwargs)
    elif method == "dbscan":
        est = skc.DBSCAN(eps=n_clusters / 10, **kwargs)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return torch.from_numpy(np.asarray(est.fit_predict(data), dtype=np.int64))


def eigengap(eigenvalues: Tensor, max_clusters: int | None = None) -> tuple[int, Tensor]:
    """Number of clusters suggested by the largest gap of the Laplacian spectrum.

    Args:
        eigenvalues (Tensor[K]): Laplacian eigenvalues (``1 - λ`` of the normalised adjacency), any
            order.
        max_clusters (int, optional): consider gaps up to this many clusters. Default: K - 1

    Returns:
        tuple(int, Tensor): the suggestion ``c`` (the gap between the c-th and (c+1)-th smallest
        eigenvalue is the largest) and the gaps Tensor[K - 1] of the ascending spectrum.
    """
    ascending = eigenvalues.sort().values
    gaps = ascending.diff()
    limit = gaps.numel() if max_clusters is None else min(gaps.numel(), max_clusters)
    return int(gaps[:limit].argmax()) + 1, gaps
