"""SpRAy preprocessing as CoRelAy does it: sum pooling, channel sum, normalisation by the map's sum.

``preprocess(maps, variant="spectral", pool=2)`` turns attribution maps Tensor[N, C, H, W] into
feature rows Tensor[N, D]:

* ``pool``: sum over ``pool x pool`` blocks (CoRelAy ``Pooling(stride=(1, 1, p, p), numpy.sum)``,
  i.e. ``skimage.measure.block_reduce``, which zero-pads the bottom/right edge to a multiple of p);
* ``"spectral"``: sum over channels, then divide each map by its sum (signed, no epsilon);
  ``"absspectral"``: the same on ``|maps|``; ``"fullspectral"``: keep channels, divide by the sum
  over (C, H, W).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["VARIANTS", "sum_pool", "preprocess"]

VARIANTS = ("spectral", "absspectral", "fullspectral")


def sum_pool(maps: Tensor, pool: int) -> Tensor:
    """Block sums of Tensor[N, C, H, W] -> Tensor[N, C, ceil(H / pool), ceil(W / pool)] (zero pad)."""
    if pool == 1:
        return maps
    h, w = maps.shape[-2:]
    maps = F.pad(maps, (0, -w % pool, 0, -h % pool))
    n, c, hp, wp = maps.shape
    return maps.reshape(n, c, hp // pool, pool, wp // pool, pool).sum(dim=(3, 5))


def preprocess(maps: Tensor, variant: str = "spectral", pool: int = 1) -> Tensor:
    """Feature rows for SpRAy from attribution maps.

    Args:
        maps (Tensor[N, C, H, W]): attribution maps of one class (a 3-d Tensor[N, H, W] is one
            channel).
        variant (str, optional): one of :data:`VARIANTS` (see the module docstring).
            Default: "spectral"
        pool (int, optional): sum-pooling block size, ``>= 1``. Default: 1

    Returns:
        Tensor[N, D]: one row per map, ``D = H' * W'`` (``C * H' * W'`` for "fullspectral").
    """
    if maps.dim() == 3:
        maps = maps[:, None]
    if variant == "absspectral":
        maps = maps.abs()
    maps = sum_pool(maps, pool)
    if variant != "fullspectral":
        maps = maps.sum(dim=1)
    rows = maps.flatten(1)
    return rows / rows.sum(dim=1, keepdim=True)
