"""2-d embeddings of the spectral embedding for display: t-SNE (scikit-learn) and UMAP (umap-learn).

Settings as CoRelAy's ``TSNEEmbedding`` (perplexity 30, early exaggeration 12, random init,
Euclidean) and ``UMAPEmbedding`` (15 neighbours, min_dist 0.1, correlation metric); the perplexity
is capped below N for small sets, and a seed makes them reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["tsne", "umap"]


def tsne(embedding: Tensor, seed: int = 0, perplexity: float = 30.0, max_iter: int = 1000) -> Tensor:
    """t-SNE of Tensor[N, K] -> Tensor[N, 2] float32 (``max_iter``: sklearn's, >= 250)."""
    from sklearn.manifold import TSNE

    data = embedding.detach().to("cpu", torch.float64).numpy()
    perplexity = min(perplexity, max(1.0, (data.shape[0] - 1) / 3))
    est = TSNE(n_components=2, perplexity=perplexity, early_exaggeration=12.0, init="random",
               metric="euclidean", random_state=seed, max_iter=max_iter)
    return torch.from_numpy(np.asarray(est.fit_transform(data), dtype=np.float32))


def umap(embedding: Tensor, seed: int = 0) -> Tensor:
    """UMAP of Tensor[N, K] -> Tensor[N, 2] float32 (needs ``pip install umap-learn``)."""
    try:
        import umap as umap_learn
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the UMAP display needs umap-learn: "
                          "pip install 'pyxai-attribution[spray]'") from err
    data = embedding.detach().to("cpu", torch.float64).numpy()
    est = umap_learn.UMAP(n_neighbors=min(15, data.shape[0] - 1), min_dist=0.1, metric="correlation",
                          random_state=seed)
    return torch.from_numpy(np.asarray(est.fit_transform(data), dtype=np.float32))
