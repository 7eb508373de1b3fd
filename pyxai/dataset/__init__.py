"""Dataset-scale attribution on Ray: sharded, resumable, fault-tolerant, into a Zarr store.

    >>> import pyxai.dataset
    >>> pyxai.dataset.attribute("images/", "torchvision:resnet50", "gradcam", "maps.zarr",
    ...                         weights="resnet50.pth", image_size=224, num_workers=4)

Modules: :mod:`~pyxai.dataset.sources` (files, Datasets, Ray Datasets, cut into shards),
:mod:`~pyxai.dataset.worker` (the actor: one model + explainer per worker),
:mod:`~pyxai.dataset.store` (the Zarr v3 layout, shard markers, run parameters),
:mod:`~pyxai.dataset.driver` (:func:`attribute`). Ray and Zarr are the ``scale`` extra
(``pip install 'pyxai-attribution[scale]'``), imported only when a run starts.
"""

from pyxai.dataset.driver import attribute
from pyxai.dataset.sources import ShapesDataset

__all__ = ["ShapesDataset", "attribute"]
