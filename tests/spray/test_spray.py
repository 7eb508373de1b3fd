"""SpRAy API: results, the ViRelAy files, the figure, the CLI, and bad input."""

from __future__ import annotations

import pytest
import torch

from pyxai.spray import SpRAy, attributions, eigengap, eigsh
from pyxai.spray.demo import cue_cluster
from pyxai.spray.knn import components, knn, knn_affinity
from tests.spray._data import grouped_maps


@pytest.fixture
def maps(rng):
    return grouped_maps(rng, n=150, groups=3, amp=1.0)


def test_finds_the_groups_and_the_eigengap(maps):
    x, group = maps
    from sklearn.metrics import adjusted_rand_score

    # three components: three zero Laplacian eigenvalues (of 6), then a gap the eigengap finds (of
    # 4: with 6, the within-group spectrum can have a larger gap higher up, seed 2115968584)
    spectrum = SpRAy(n_eigval=6, display=()).fit(x).eigenvalues.sort().values
    assert bool((spectrum[:3].abs() < 1e-8).all()) and spectrum[3] > 1e-3
    assert SpRAy(n_eigval=4, display=()).fit(x).suggested_clusters == 3
    # on the 3 component eigenvectors (row-normalised: one point per group) every method is exact
    result = SpRAy(n_clusters=[3, 4], n_eigval=3, clustering=["kmeans", "agglomerative"], display=()).fit(x)
    assert set(result.clusterings) == {"kmeans-3", "kmeans-4", "agglomerative-3", "agglomerative-4"}
    assert torch.equal(result.labels, result.clusterings["kmeans-3"])
    assert adjusted_rand_score(group.numpy(), result.labels.numpy()) > 0.99
    assert adjusted_rand_score(group.numpy(), result.clusterings["agglomerative-3"].numpy()) > 0.99
    assert result.embedding.shape == (150, 3)
    torch.testing.assert_close(result.embedding.norm(dim=1), torch.ones(150, dtype=torch.float64))
    protos = result.prototypes(x)
    assert protos.shape == (3, 3, 16, 16)
    torch.testing.assert_close(protos[0], x[result.labels == 0].mean(0))
    cluster, purity, recall = cue_cluster(result.labels, group == 1)
    assert purity > 0.99 and recall > 0.99
    assert torch.equal(torch.unique(result.labels[group == 1]), torch.tensor([cluster]))


def test_eigengap_and_components():
    n, gaps = eigengap(torch.tensor([0.9, 0.0, 0.01, 0.5, 0.52]))
    assert n == 2
    torch.testing.assert_close(gaps, torch.tensor([0.01, 0.49, 0.02, 0.38]))
    rows = torch.cat([torch.zeros(12, 2), torch.full((12, 2), 10.0)]) + torch.rand(24, 2) * 0.1
    # with 11 neighbours each group's graph is complete: exactly the two groups
    labels = components(knn_affinity(knn(rows, 11)))
    assert torch.equal(labels, torch.tensor([0] * 12 + [1] * 12))
    # with 3 a random group may fall apart into several components, but none spans both groups
    labels = components(knn_affinity(knn(rows, 3)))
    assert not set(labels[:12].tolist()) & set(labels[12:].tolist())


def test_density_clusterings(maps):
    from sklearn.metrics import adjusted_rand_score

    x, group = maps
    result = SpRAy(n_clusters=5, n_eigval=3, clustering=["hdbscan", "dbscan"], display=()).fit(x)
    for labels in result.clusterings.values():  # three well-separated groups, found by both
        assert labels.shape == (150,) and labels.dtype == torch.int64
        keep = labels >= 0
        assert adjusted_rand_score(group[keep].numpy(), labels[keep].numpy()) > 0.99


def test_virelay_files_and_figure(maps, tmp_path):
    h5py = pytest.importorskip("h5py")
    x, _ = maps
    result = SpRAy(n_clusters=[2, 3], n_eigval=6, display=()).fit(x)
    from pyxai.spray.display import tsne

    result.display["tsne"] = tsne(result.embedding[:, :3], max_iter=250)
    path = result.save_virelay(tmp_path / "a.analysis.h5", attributions=x, name="cls0")
    with h5py.File(path) as f:
        g = f["cls0"]
        assert g["index"][()].tolist() == list(range(150))
        root = torch.from_numpy(g["embedding/spectral/root"][()])
        torch.testing.assert_close(root, result.embedding.float())
        torch.testing.assert_close(torch.from_numpy(g["embedding/spectral/eigenvalue"][()]),
                                   result.eigenvalues.float())
        assert g["embedding/tsne/root"].shape == (150, 2)
        assert f[g["embedding/tsne/base"][()]].name == "/cls0/embedding/spectral"
        c = g["clustering/kmeans-3"]
        assert c["root"][()].tolist() == result.clusterings["kmeans-3"].tolist()
        assert c["#clusters"][()] == 3
        assert c["prototype/average/root"].shape == (3, 16, 16)
    fig = result.figure(x, images=torch.rand(150, 3, 16, 16), path=tmp_path / "spray.png")
    assert (tmp_path / "spray.png").stat().st_size > 1000
    assert len(fig.axes) == 2 * 2 + 1


def test_attributions_helper_batches(rng):
    import pyxai

    model = pyxai.models.demo_cnn()
    x = torch.rand(5, 3, 64, 64, generator=rng)
    maps = attributions(model, x, 1, method="saliency", batch_size=2)
    torch.testing.assert_close(maps, pyxai.Saliency(model).attribute(x, target=1))
    with pytest.raises(ValueError, match="inputs is empty"):
        attributions(model, x[:0], 1)
    with pytest.raises(ValueError, match="target must be"):
        attributions(model, x, torch.tensor([1, 2]))


def test_cli_on_saved_maps(maps, tmp_path, capsys):
    from pyxai.cli import main

    x, _ = maps
    torch.save(x, tmp_path / "maps.pt")
    assert main(["spray", "--maps", str(tmp_path / "maps.pt"), "--out", str(tmp_path), "--n-clusters", "3",
                 "--n-eigval", "6", "--display", "none"]) == 0
    out = capsys.readouterr().out
    assert "kmeans-3: cluster sizes" in out and (tmp_path / "spray.analysis.h5").is_file()
    assert main(["spray", "--maps", str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    torch.save(x[:2], tmp_path / "few.pt")
    assert main(["spray", "--maps", str(tmp_path / "few.pt"), "--out", str(tmp_path)]) == 2
    assert "must be smaller than the number of maps" in capsys.readouterr().err


def test_bad_input(maps):
    x, _ = maps
    with pytest.raises(ValueError, match="attributions is empty"):
        SpRAy().fit(x[:0])
    with pytest.raises(ValueError, match="attributions contains NaN"):
        SpRAy().fit(torch.where(x > 1.5, float("nan"), x))
    with pytest.raises(TypeError, match="attributions must be a floating"):
        SpRAy().fit(x.long())
    with pytest.raises(ValueError, match="attributions must be Tensor"):
        SpRAy().fit(x[0, 0])
    with pytest.raises(ValueError, match="fewer than n_clusters=4"):
        SpRAy(n_clusters=4, n_eigval=1, n_neighbors=1).fit(x[:3])
    with pytest.raises(ValueError, match="n_neighbors=10 must be smaller"):
        SpRAy(n_clusters=2, n_eigval=2).fit(x[:8])
    with pytest.raises(ValueError, match="n_eigval=32 must be smaller"):
        SpRAy(n_clusters=2, n_neighbors=5).fit(x[:20])
    with pytest.raises(ValueError, match="sum to zero"):
        SpRAy(n_eigval=4).fit(torch.cat([torch.zeros(1, 3, 16, 16, dtype=x.dtype), x]))
    with pytest.raises(ValueError, match="variant"):
        SpRAy(variant="ssim")
    with pytest.raises(ValueError, match="clustering"):
        SpRAy(clustering="spectral")
    with pytest.raises(TypeError, match="n_clusters"):
        SpRAy(n_clusters=2.0)
    with pytest.raises(ValueError, match="n_eigval must be >= 1"):
        SpRAy(n_eigval=0)
    with pytest.raises(ValueError, match="k must be in"):
        eigsh(torch.eye(4), 4)
