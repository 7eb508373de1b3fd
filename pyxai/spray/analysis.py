"""SpRAy: spectral relevance analysis of a class's attribution maps (Lapuschkin et al. 2019).

The pipeline of CoRelAy's ``SpectralClustering`` (SPECS.md §8), in torch on any device:
preprocessing (:mod:`.preprocess`) -> sparse k-NN affinity and ``D^-1/2 A D^-1/2`` (:mod:`.knn`) ->
the ``n_eigval`` largest-magnitude eigenpairs by thick-restart Lanczos (:mod:`.eigen`), reported as
CoRelAy does: eigenvalues ``1 - λ`` (in the order of ascending ``λ``) and eigenvectors normalised
per row -> clustering (:mod:`.cluster`) -> t-SNE / UMAP for display (:mod:`.display`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from pyxai.spray import cluster as _cluster
from pyxai.spray import display as _display
from pyxai.spray.eigen import eigsh
from pyxai.spray.knn import component_eigenvectors, components, knn, knn_affinity, normalized_adjacency
from pyxai.spray.preprocess import VARIANTS, preprocess

__all__ = ["SpRAy", "SpRAyResult", "check_attributions"]

_DISPLAYS = ("tsne", "umap")


def check_attributions(attributions: object, name: str = "attributions") -> Tensor:
    """Validate a stack of maps: a finite float Tensor[N, C, H, W] or Tensor[N, H, W] with N >= 1."""
    if not isinstance(attributions, Tensor):
        raise TypeError(f"{name} must be a Tensor[N, C, H, W], got {type(attributions).__name__}")
    if not attributions.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {attributions.dtype}")
    if attributions.dim() not in (3, 4):
        raise ValueError(f"{name} must be Tensor[N, C, H, W] or Tensor[N, H, W], got shape "
                         f"{tuple(attributions.shape)}")
    if attributions.shape[0] == 0:
        raise ValueError(f"{name} is empty (no maps): SpRAy needs at least one map per cluster")
    if attributions[0].numel() == 0:
        raise ValueError(f"{name} has empty maps, shape {tuple(attributions.shape)}")
    if not bool(torch.isfinite(attributions).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return attributions


def _check_count(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass
class SpRAyResult:
    """What :meth:`SpRAy.fit` found for N maps.

    Attributes:
        eigenvalues: Tensor[K] Laplacian eigenvalues ``1 - λ`` in CoRelAy's order (descending; the
            trivial ≈0 last).
        embedding: Tensor[N, K] spectral embedding, eigenvectors normalised per row (CoRelAy
            ``normalize=True``), columns matching ``eigenvalues``.
        labels: Tensor[N] int64 cluster labels of the first clustering (``clusterings``' first entry).
        clusterings: every clustering, ``"{method}-{n}"`` -> Tensor[N] int64.
        suggested_clusters: number of clusters at the largest eigengap (:func:`.cluster.eigengap`).
        eigengaps: Tensor[K - 1] gaps of the ascending spectrum.
        display: 2-d embeddings for display, ``"tsne"``/``"umap"`` -> Tensor[N, 2].
        neighbours: Tensor[N, k] indices of each map's k nearest maps.
    """

    eigenvalues: Tensor
    embedding: Tensor
    labels: Tensor
    clusterings: dict[str, Tensor]
    suggested_clusters: int
    eigengaps: Tensor
    display: dict[str, Tensor] = field(default_factory=dict)
    neighbours: Tensor | None = None

    def prototypes(self, attributions: Tensor, labels: Tensor | None = None) -> Tensor:
        """Mean map of each cluster: Tensor[n_clusters, C, H, W] (``labels`` default: ``self.labels``;
        negative labels, DBSCAN noise, are left out)."""
        labels = self.labels if labels is None else labels
        maps = attributions if attributions.dim() == 4 else attributions[:, None]
        if maps.shape[0] != labels.shape[0]:
            raise ValueError(f"attributions has {maps.shape[0]} maps, the result {labels.shape[0]}")
        labels = labels.to(maps.device)
        ids = labels[labels >= 0].unique()
        return torch.stack([maps[labels == c].mean(dim=0) for c in ids.tolist()])

    def save_virelay(self, path: str | Path, attributions: Tensor | None = None,
                     name: str = "spray", indices: Tensor | None = None) -> Path:
        """Write the ViRelAy analysis HDF5 file (see :func:`pyxai.spray.virelay.save_analysis`)."""
        from pyxai.spray.virelay import save_analysis

        return save_analysis(self, path, attributions=attributions, name=name, indices=indices)

    def figure(self, attributions: Tensor, images: Tensor | None = None, path: str | Path | None = None):
        """Matplotlib figure of cluster prototypes and the 2-d embedding (:func:`.figure.plot`)."""
        from pyxai.spray.figure import plot

        return plot(self, attributions, images=images, path=path)


class SpRAy:
    """Spectral relevance analysis of attribution maps, as CoRelAy's ``SpectralClustering``.

    Args:
        n_clusters (int or sequence of int, optional): cluster counts to compute (ViRelAy computes
            2..30). Default: 2
        n_eigval (int, optional): eigenpairs of the spectral embedding. Default: 32
        n_neighbors (int, optional): k of the k-NN affinity. Default: 10 (CoRelAy's pipeline
            default; ViRelAy's analysis script uses 32)
        variant (str, optional): preprocessing, one of ``"spectral"``, ``"absspectral"``,
            ``"fullspectral"``. Default: "spectral"
        pool (int, optional): sum-pooling block before the analysis (downsampling). Default: 1
        clustering (str or sequence of str, optional): ``"kmeans"``, ``"dbscan"``, ``"hdbscan"``,
            ``"agglomerative"``. Default: "kmeans"
        which (str, optional): eigenpairs of the normalised adjacency: ``"LM"`` (CoRelAy) or ``"LA"``.
            Default: "LM"
        display (sequence of str, optional): 2-d embeddings to compute, of ``"tsne"``, ``"umap"``.
            Default: ("tsne",)
        seed (int, optional): seed of the eigen-solver start vector, k-means and the displays.
            Default: 0
        device (str or torch.device, optional): where the analysis runs. Default: the maps' device
        dtype (torch.dtype, optional): precision of the analysis. Default: torch.float64
        tol (float, optional): eigen-solver tolerance. Default: 1e-10

    Examples::

        >>> maps = pyxai.spray.attributions(model, images, target=0, method="gradcam", layer=model.layer3)
        >>> result = pyxai.spray.SpRAy(n_clusters=4).fit(maps)
        >>> result.labels, result.eigenvalues
        >>> result.save_virelay("pyxai_out/spray.analysis.h5")
    """

    def __init__(
        self,
        n_clusters: int | Sequence[int] = 2,
        n_eigval: int = 32,
        n_neighbors: int = 10,
        variant: str = "spectral",
        pool: int = 1,
        clustering: str | Sequence[str] = "kmeans",
        which: str = "LM",
        display: Sequence[str] = ("tsne",),
        seed: int = 0,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
        tol: float = 1e-10,
    ) -> None:
        if not isinstance(n_clusters, (int, Sequence)):
            raise TypeError("n_clusters must be an int or a sequence of ints, got "
                            f"{type(n_clusters).__name__}")
        counts = [n_clusters] if isinstance(n_clusters, int) else list(n_clusters)
        if not counts:
            raise ValueError("n_clusters must name at least one cluster count")
        self.n_clusters = [_check_count(c, "n_clusters") for c in counts]
        self.n_eigval = _check_count(n_eigval, "n_eigval")
        self.n_neighbors = _check_count(n_neighbors, "n_neighbors")
        self.pool = _check_count(pool, "pool")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        methods = [clustering] if isinstance(clustering, str) else list(clustering)
        for m in methods:
            if m not in _cluster.METHODS:
                raise ValueError(f"clustering must be among {_cluster.METHODS}, got {m!r}")
        if not methods:
            raise ValueError("clustering must name at least one method")
        self.clustering = methods
        if which not in ("LM", "LA"):
            raise ValueError(f"which must be 'LM' or 'LA', got {which!r}")
        self.which = which
        display = [display] if isinstance(display, str) else list(display)
        for d in display:
            if d not in _DISPLAYS:
                raise ValueError(f"display must be among {_DISPLAYS}, got {d!r}")
        self.display = display
        self.seed = seed
        self.device = device
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype
        if not tol > 0:
            raise ValueError(f"tol must be > 0, got {tol}")
        self.tol = tol

    def _check_sizes(self, n: int) -> None:
        if max(self.n_clusters) > n and any(m in ("kmeans", "agglomerative") for m in self.clustering):
            raise ValueError(f"attributions has {n} maps, fewer than n_clusters={max(self.n_clusters)}")
        if self.n_neighbors >= n:
            raise ValueError(f"n_neighbors={self.n_neighbors} must be smaller than the number of maps "
                             f"({n})")
        if self.n_eigval >= n:
            raise ValueError(f"n_eigval={self.n_eigval} must be smaller than the number of maps ({n})")

    def features(self, attributions: Tensor) -> Tensor:
        """Preprocessed rows Tensor[N, D] (in the analysis dtype and device)."""
        attributions = check_attributions(attributions)
        device = attributions.device if self.device is None else torch.device(self.device)
        rows = preprocess(attributions.to(device=device, dtype=self.dtype), self.variant, self.pool)
        if not bool(torch.isfinite(rows).all()):
            raise ValueError(f"attributions: some maps sum to zero, so the {self.variant!r} normalisation "
                             "divides by zero; use variant='absspectral' or drop those maps")
        return rows

    def spectral(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Eigenvalues Tensor[K] (``1 - λ``), row-normalised embedding Tensor[N, K] and the
        neighbours Tensor[N, k] of preprocessed rows Tensor[N, D]."""
        neighbours = knn(rows, self.n_neighbors)
        affinity = knn_affinity(neighbours, dtype=rows.dtype)
        adjacency = normalized_adjacency(affinity)
        ones = component_eigenvectors(affinity, components(affinity))  # eigenvalue 1, once per component
        known = (torch.ones(ones.shape[1], dtype=rows.dtype, device=rows.device), ones)
        values, vectors = eigsh(adjacency, self.n_eigval, which=self.which, tol=self.tol, seed=self.seed,
                                known=known)
        embedding = vectors / vectors.norm(dim=1, keepdim=True)
        return 1.0 - values, embedding, neighbours

    def fit(self, attributions: Tensor) -> SpRAyResult:
        """Analyse the maps of one class.

        Args:
            attributions (Tensor[N, C, H, W] or Tensor[N, H, W]): finite float maps, N >= 1.

        Returns:
            SpRAyResult: eigenvalues, embedding, labels, every clustering, the eigengap suggestion
            and the display embeddings.
        """
        attributions = check_attributions(attributions)
        self._check_sizes(attributions.shape[0])
        rows = self.features(attributions)
        eigenvalues, embedding, neighbours = self.spectral(rows)
        clusterings = {
            f"{m}-{c}": _cluster.cluster(embedding, m, c, seed=self.seed)
            for m in self.clustering for c in self.n_clusters
        }
        suggested, gaps = _cluster.eigengap(eigenvalues)
        shown = {d: getattr(_display, d)(embedding, seed=self.seed) for d in self.display}
        return SpRAyResult(
            eigenvalues=eigenvalues, embedding=embedding, labels=next(iter(clusterings.values())),
            clusterings=clusterings, suggested_clusters=suggested, eigengaps=gaps, display=shown,
            neighbours=neighbours,
        )
