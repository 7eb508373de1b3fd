"""SpRAy at scale: pyxai (torch, sparse, no N x N matrix) vs CoRelAy 1.0 (dense pdist + ARPACK).

Workload: N synthetic attribution maps Tensor[N, 1, 16, 16] in 4 groups (a hot block per group on
uniform noise), the default pipeline: 'spectral' preprocessing, 10-NN affinity, 32 eigenpairs of
``D^-1/2 A D^-1/2`` ('LM'), k-means with 4 clusters, no display embedding. N = 1k, 10k, 100k
(quick: 1k). CoRelAy runs where its dense N x N distance matrix fits (1k and 10k: 8 bytes x N^2).
Floor: the k-NN search alone (blocked distances + top-k), the part every SpRAy must do.
Parity before timing: the 32 eigenvalues (sorted), pyxai vs CoRelAy; the notes give the adjusted
Rand index of the two clusterings.
"""

from __future__ import annotations

import numpy as np
import torch

from pyxai.benchmark.core import Case, register


def _maps(n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(n)
    maps = torch.rand(n, 1, 16, 16, generator=gen)
    group = torch.randint(4, (n,), generator=gen)
    for c in range(4):
        i, j = divmod(c, 2)
        maps[group == c, :, 8 * i : 8 * i + 6, 8 * j : 8 * j + 6] += 0.1
    return maps


def _corelay(rows: np.ndarray, labels: dict[str, np.ndarray]) -> torch.Tensor:
    from corelay.pipeline.spectral import SpectralClustering
    from corelay.processor.clustering import KMeans
    from corelay.processor.embedding import EigenDecomposition

    pipe = SpectralClustering(embedding=EigenDecomposition(n_eigval=32, is_output=True),
                              clustering=KMeans(n_clusters=4, kwargs={"random_state": 0}, is_output=True))
    (eigenvalues, _), clusters = pipe(rows)
    labels.setdefault("corelay", clusters)
    return torch.from_numpy(np.sort(eigenvalues))


@register("spray")
def spray_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    from pyxai.spray import SpRAy, knn, preprocess

    cases = []
    for n in (1000,) if quick else (1000, 10_000, 100_000):
        maps = _maps(n).to(device)
        spray = SpRAy(n_clusters=4, n_eigval=32, n_neighbors=10, display=())

        labels: dict[str, np.ndarray] = {}  # the clusterings of the first runs, for the notes

        def ours(spray=spray, maps=maps, labels=labels) -> torch.Tensor:
            r = spray.fit(maps)
            labels.setdefault("pyxai", r.labels.numpy())
            return r.eigenvalues.sort().values.cpu()

        def floor(maps=maps) -> None:
            knn(preprocess(maps.double()), 10)

        impls = {"pyxai": ours, "floor": floor}
        if n <= 10_000:
            rows = preprocess(maps.double()).cpu().numpy()
            impls["corelay"] = lambda rows=rows, labels=labels: _corelay(rows, labels)

        def ari(results: dict, labels=labels, n=n) -> str:
            if "corelay" not in labels:
                return "CoRelAy not run: its dense distance matrix would need " \
                       f"{8 * n * n / 2**30:.0f} GiB"
            from sklearn.metrics import adjusted_rand_score

            return f"ARI(pyxai, CoRelAy) = {adjusted_rand_score(labels['pyxai'], labels['corelay']):.4f}"

        cases.append(Case(
            name=f"spray N={n} 16x16 maps, k=10, 32 eigenpairs",
            impls=impls,
            parity=[("pyxai", "corelay", 1e-4)],
            device=device,
            notes="floor = the k-NN search alone",
            summarize=ari,
        ))
    return cases
