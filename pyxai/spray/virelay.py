"""ViRelAy's HDF5 files (h5py): the analysis file, and optionally the attribution file.

Layout of the analysis file (ViRelAy ``docs/examples/hdf5_structure.py``; ``<a>`` is the analysis
name, every dataset relative to it)::

    <a>/name                                   str
    <a>/index                                  uint32[N]   indices into the attribution file
    <a>/embedding/spectral/{name, root, eigenvalue}          float32[N, K], float32[K]
    <a>/embedding/{tsne,umap}/{name, root, base}              float32[N, 2], base -> spectral
    <a>/clustering/<method>-<n>/{name, root, base, #clusters} int[N], base -> spectral
    <a>/clustering/<method>-<n>/prototype/average/{name, root}  float32[n, H, W] (given maps)

The attribution file holds ``attribution`` float32[N, C, H, W], ``index`` uint32[N] and, where
given, ``label`` and ``prediction``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from pyxai.spray.analysis import SpRAyResult

__all__ = ["save_analysis", "save_attributions"]

_DISPLAY_NAMES = {"tsne": "t-SNE", "umap": "UMAP"}


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("writing ViRelAy files needs h5py: pip install 'pyxai-attribution[spray]'") from err
    return h5py


def _np(t: Tensor, dtype) -> np.ndarray:
    return t.detach().to("cpu").numpy().astype(dtype)


def save_analysis(result: SpRAyResult, path: str | Path, attributions: Tensor | None = None,
                  name: str = "spray", indices: Tensor | None = None) -> Path:
    """Write ``result`` as the analysis ``name`` of a ViRelAy analysis file (appending to it).

    Args:
        result (SpRAyResult): the analysis of N maps.
        path (str or Path): the ``.analysis.h5`` file; parent folders are created.
        attributions (Tensor[N, C, H, W], optional): the analysed maps, for the per-cluster
            prototypes (channel sums of the cluster means). Default: None (no prototypes)
        name (str, optional): the analysis (HDF5 group) name. Default: "spray"
        indices (Tensor[N], optional): indices of the maps in the attribution file.
            Default: ``0 .. N-1``

    Returns:
        Path: ``path``.
    """
    h5py = _h5py()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = result.embedding.shape[0]
    index = torch.arange(n) if indices is None else indices
    if index.shape != (n,):
        raise ValueError(f"indices must be Tensor[{n}], got shape {tuple(index.shape)}")
    with h5py.File(path, "a") as f:
        if name in f:
            del f[name]
        g = f.create_group(name)
        g["name"] = name
        g["index"] = _np(index, np.uint32)
        emb = g.create_group("embedding")
        spectral = emb.create_group("spectral")
        spectral["name"] = "Spectral Embedding"
        spectral["root"] = _np(result.embedding, np.float32)
        spectral["eigenvalue"] = _np(result.eigenvalues, np.float32)
        for key, points in result.display.items():
            d = emb.create_group(key)
            d["name"] = _DISPLAY_NAMES.get(key, key)
            d["root"] = _np(points, np.float32)
            d["base"] = spectral.ref
        clu = g.create_group("clustering")
        for key, labels in result.clusterings.items():
            c = clu.create_group(key)
            c["name"] = key
            c["root"] = _np(labels, np.int64)
            c["base"] = spectral.ref
            c["#clusters"] = int(labels.max().item()) + 1
            if attributions is not None:
                proto = result.prototypes(attributions, labels).sum(dim=1)
                avg = c.create_group("prototype").create_group("average")
                avg["name"] = "Average"
                avg["root"] = _np(proto, np.float32)
    return path


def save_attributions(path: str | Path, attributions: Tensor, labels: Tensor | None = None,
                      predictions: Tensor | None = None, indices: Tensor | None = None) -> Path:
    """Write ViRelAy's attribution file: ``attribution``, ``index`` and optional ``label``/``prediction``."""
    h5py = _h5py()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = attributions.shape[0]
    with h5py.File(path, "w") as f:
        f["attribution"] = _np(attributions, np.float32)
        f["index"] = _np(torch.arange(n) if indices is None else indices, np.uint32)
        if labels is not None:
            f["label"] = _np(labels, np.float32)
        if predictions is not None:
            f["prediction"] = _np(predictions, np.float32)
    return path
