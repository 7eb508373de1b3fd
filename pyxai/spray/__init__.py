"""SpRAy (spectral relevance analysis) on attribution maps, as CoRelAy/ViRelAy do it, in torch.

    >>> maps = pyxai.spray.attributions(model, images, target=0, method="lrp")
    >>> result = pyxai.spray.SpRAy(n_clusters=[2, 3, 4]).fit(maps)
    >>> result.eigenvalues, result.labels, result.suggested_clusters
    >>> result.save_virelay("pyxai_out/spray.analysis.h5", attributions=maps)
    >>> result.figure(maps, images, path="pyxai_out/spray.png")
"""

from pyxai.spray.analysis import SpRAy, SpRAyResult
from pyxai.spray.attributions import attributions
from pyxai.spray.cluster import eigengap
from pyxai.spray.eigen import eigsh
from pyxai.spray.knn import knn, knn_affinity, normalized_adjacency
from pyxai.spray.preprocess import preprocess
from pyxai.spray.virelay import save_analysis, save_attributions

__all__ = ["SpRAy", "SpRAyResult", "attributions", "eigengap", "eigsh", "knn", "knn_affinity",
           "normalized_adjacency", "preprocess", "save_analysis", "save_attributions"]
