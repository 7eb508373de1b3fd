"""SpRAy against CoRelAy 1.0 (``corelay.pipeline.spectral``) on the same maps and settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai.spray import SpRAy, eigsh, knn, knn_affinity, normalized_adjacency, preprocess
from pyxai.spray.knn import components
from tests.spray._data import grouped_maps

corelay = pytest.importorskip("corelay")
from corelay.pipeline.spectral import SpectralClustering, SpectralEmbedding  # noqa: E402
from corelay.processor.affinity import SparseKNN  # noqa: E402
from corelay.processor.clustering import KMeans  # noqa: E402
from corelay.processor.embedding import EigenDecomposition  # noqa: E402
from corelay.processor.laplacian import SymmetricNormalLaplacian  # noqa: E402
from corelay.processor.preprocessing import Pooling  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402


def _corelay_rows(maps: torch.Tensor, pool: int) -> np.ndarray:
    """CoRelAy's 'spectral' preprocessing: Pooling (sum), channel sum, divide by the sum, flatten."""
    x = maps.numpy()
    if pool > 1:
        x = Pooling(stride=(1, 1, pool, pool), pooling_function=np.sum)(x)
    x = x.sum(1)
    return (x / x.sum((1, 2), keepdims=True)).reshape(len(x), -1)


@pytest.mark.parametrize("pool", [1, 3])
def test_preprocessing_matches_corelay(rng, pool):
    maps = torch.randn(7, 3, 14, 13, generator=rng, dtype=torch.float64) + 0.5
    torch.testing.assert_close(preprocess(maps, pool=pool), torch.from_numpy(_corelay_rows(maps, pool)))


@pytest.mark.parametrize("n_eigval,n_neighbors", [(32, 10), (8, 32)])
def test_eigenvalues_and_clusters_match_corelay(rng, n_eigval, n_neighbors):
    maps, _ = grouped_maps(rng, n=240, groups=3, amp=0.1)
    rows = _corelay_rows(maps, 1)
    knn_proc = SparseKNN(n_neighbors=n_neighbors, symmetric=True)
    ref_values, ref_vectors = SpectralEmbedding(
        affinity=knn_proc, embedding=EigenDecomposition(n_eigval=n_eigval))(rows)
    ref_labels = SpectralClustering(
        affinity=knn_proc, embedding=EigenDecomposition(n_eigval=n_eigval),
        clustering=KMeans(n_clusters=3, kwargs={"random_state": 0}))(rows)
    result = SpRAy(n_clusters=3, n_eigval=n_eigval, n_neighbors=n_neighbors, display=()).fit(maps)
    # the graph is connected here, so ARPACK sees every eigenvalue once
    assert int(components(knn_affinity(result.neighbours)).max()) == 0
    torch.testing.assert_close(result.eigenvalues, torch.from_numpy(ref_values), rtol=1e-4, atol=1e-8)
    # same embedding up to the sign (or rotation) of eigenvectors: the rows' Gram matrices agree
    ref = torch.from_numpy(ref_vectors)
    torch.testing.assert_close(result.embedding @ result.embedding.T, ref @ ref.T, rtol=0, atol=1e-6)
    ari = adjusted_rand_score(ref_labels, result.labels.numpy())
    diff = (result.eigenvalues - torch.from_numpy(ref_values)).abs().max()
    print(f"eigenvalues max |diff| {diff:.2e}, ARI {ari:.4f}")
    assert ari >= 0.99


def test_affinity_and_laplacian_match_corelay(rng):
    maps, _ = grouped_maps(rng, n=120, groups=2, amp=0.3)
    rows = _corelay_rows(maps, 1)
    from scipy.spatial.distance import pdist, squareform

    ref_a = SparseKNN(n_neighbors=10, symmetric=True)(squareform(pdist(rows)))
    ref_m = SymmetricNormalLaplacian()(ref_a).toarray()
    affinity = knn_affinity(knn(torch.from_numpy(rows), 10))
    torch.testing.assert_close(affinity.to_dense(), torch.from_numpy(ref_a.toarray()))
    torch.testing.assert_close(normalized_adjacency(affinity).to_dense(), torch.from_numpy(ref_m))


def test_disconnected_graph_gets_every_copy_of_eigenvalue_one(rng):
    """One eigenvalue 1 per connected component (ARPACK can miss copies; dense eigh is the truth)."""
    maps, _ = grouped_maps(rng, n=200, groups=4, amp=1.0)
    spray = SpRAy(n_clusters=4, n_eigval=8, display=())
    values, _, neighbours = spray.spectral(spray.features(maps))
    affinity = knn_affinity(neighbours)
    assert int(components(affinity).max()) + 1 == 4
    dense = np.linalg.eigvalsh(normalized_adjacency(affinity).to_dense().numpy())
    truth = dense[np.argsort(-np.abs(dense), kind="stable")[:8]]
    torch.testing.assert_close(values.sort().values, torch.from_numpy(1 - truth).sort().values,
                               rtol=1e-4, atol=1e-8)
    assert int((values.abs() < 1e-8).sum()) == 4


@pytest.mark.parametrize("which", ["LM", "LA", "SA"])
def test_eigsh_matches_scipy(rng, which):
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import eigsh as scipy_eigsh

    rows = torch.randn(300, 20, generator=rng, dtype=torch.float64)
    m = normalized_adjacency(knn_affinity(knn(rows, 8)))
    dense = m.to_dense().numpy()
    ref, _ = scipy_eigsh(csr_matrix(dense), k=12, which=which)
    values, vectors = eigsh(m, 12, which=which)
    torch.testing.assert_close(values, torch.from_numpy(ref), rtol=1e-8, atol=1e-10)
    residual = torch.from_numpy(dense) @ vectors - vectors * values
    assert residual.abs().max() < 1e-8
