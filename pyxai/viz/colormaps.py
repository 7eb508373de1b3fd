"""Colour maps: OpenCV / matplotlib lookup tables and Zennit's signed relevance maps.

Relevance (LRP, gradients) is signed; :func:`imgify` shows it as Zennit's ``zennit.image.imgify``
does: ``symmetric=True`` maps 0 to the centre of a diverging map (``"bwr"``: blue - white - red,
``"coldnhot"``: cyan - blue - black - red - yellow - white), so positive evidence is red and negative
is blue. The maps are piecewise-linear over 256 entries with the same nodes as Zennit's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from pyxai.viz._arrays import as_tensor, to_numpy

#: Zennit's colour maps as (index in 0..255, RGB) nodes, linear in between.
ZENNIT_MAPS: dict[str, tuple[tuple[int, tuple[int, int, int]], ...]] = {
    "gray": ((0, (0, 0, 0)), (255, (255, 255, 255))),
    "wred": ((0, (255, 255, 255)), (255, (255, 0, 0))),
    "wblue": ((0, (255, 255, 255)), (255, (0, 0, 255))),
    "hot": ((0, (0, 0, 0)), (85, (255, 0, 0)), (170, (255, 255, 0)), (255, (255, 255, 255))),
    "cold": ((0, (0, 0, 0)), (127, (0, 0, 255)), (255, (0, 255, 255))),
    "coldnhot": ((0, (0, 255, 255)), (64, (0, 0, 255)), (128, (0, 0, 0)), (170, (255, 0, 0)),
                 (212, (255, 255, 0)), (255, (255, 255, 255))),
    "bwr": ((0, (0, 0, 255)), (128, (255, 255, 255)), (255, (255, 0, 0))),
    "france": ((0, (0, 85, 164)), (128, (255, 255, 255)), (255, (239, 65, 53))),
    "seismic": ((0, (0, 0, 208)), (128, (208, 208, 208)), (255, (208, 0, 0))),
}
#: the diverging maps (white or black at the centre), for signed relevance
SIGNED_MAPS = ("bwr", "coldnhot", "france", "seismic")


def zennit_colors(name: str, x: torch.Tensor) -> torch.Tensor:
    """Zennit colour map ``name`` at ``x`` (any shape, clipped to [0, 1]) -> Tensor[..., 3] in [0, 1]."""
    if name not in ZENNIT_MAPS:
        raise ValueError(f"cmap {name!r} is not one of {sorted(ZENNIT_MAPS)}")
    nodes = ZENNIT_MAPS[name]
    idx = torch.tensor([i for i, _ in nodes] + [256], dtype=torch.float64)
    col = torch.tensor([c for _, c in nodes] + [nodes[-1][1]], dtype=torch.float64)
    v = (x.double() * 255).clamp(0, 255)
    k = torch.searchsorted(idx[:-1].contiguous(), v.contiguous(), right=True)
    alpha = ((v - idx[k - 1]) / (idx[k] - idx[k - 1]))[..., None]
    return (col[k - 1] * (1 - alpha) + col[k] * alpha) / 255


def palette(cmap: str = "bwr", level: float = 1.0) -> torch.Tensor:
    """The 256-entry uint8 palette of a Zennit colour map (``zennit.image.palette``): Tensor[256, 3]."""
    x = torch.from_numpy(np.linspace(-1.0, 1.0, 256)) * level  # NumPy's grid, to the last bit
    x = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    return (zennit_colors(cmap, x) * 255.0).clamp(0.0, 255.0).to(torch.uint8)


def imgify(obj: Any, vmin: float | None = None, vmax: float | None = None, cmap: str = "bwr",
           level: float = 1.0, symmetric: bool = False) -> np.ndarray:
    """A map (or RGB image) as uint8 RGB pixels, as ``zennit.image.imgify(...).convert("RGB")``.

    Args:
        obj: ``Tensor[H, W]``, ``[1, H, W]``, ``[3, H, W]`` (or ``[H, W, 1|3]``).
        vmin, vmax: value shown at the low / high end. Default: the data's min / max, or
            ``-max|x|`` / ``max|x|`` when ``symmetric``.
        cmap: a Zennit colour map name (single-channel input only). Default: ``"bwr"``.
        level: colour-range level (Zennit's; > 1 saturates earlier). Default: 1.0.
        symmetric: centre the colour map on 0 (signed relevance). Default: False.

    Returns:
        ``np.ndarray[H, W, 3]`` uint8.
    """
    a = as_tensor(obj, "obj")
    if a.dim() not in (2, 3):
        raise ValueError(f"obj must have 2 or 3 axes, got shape {tuple(a.shape)}")
    if a.dim() == 3 and a.shape[2] not in (1, 3):
        if a.shape[0] not in (1, 3):
            raise ValueError(f"obj needs 1 or 3 colour channels first or last, got {tuple(a.shape)}")
        a = a.permute(1, 2, 0)
    if a.dim() == 2:
        a = a[:, :, None]
    if a.dtype != torch.uint8:
        # Zennit's NumPy arithmetic: bounds taken from the data keep its float dtype (float32
        # stays float32), a bound given as a number is a float64 array and promotes the rest
        a = a if a.is_floating_point() else a.double()
        lo = -a.abs().max() if symmetric else a.min()
        hi = a.abs().max() if symmetric else a.max()
        lo = _bound(vmin) if vmin is not None else lo
        hi = _bound(vmax) if vmax is not None else hi
        dtype = torch.promote_types(a.dtype, torch.promote_types(lo.dtype, hi.dtype))
        a, lo, hi = a.to(dtype), lo.to(dtype), hi.to(dtype)
        a = ((a - lo) / (hi - lo) * 255).nan_to_num(0.0).clamp(0, 255).to(torch.uint8)
    if a.shape[2] == 1:
        a = palette(cmap, level)[a[:, :, 0].long()]
    return to_numpy(a)


def _bound(value: Any) -> torch.Tensor:
    """A ``vmin`` / ``vmax`` as NumPy's ``np.array(value)`` types it (a Python float: float64)."""
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return torch.from_numpy(np.array(arr))


@lru_cache(maxsize=32)
def _cv2_table(code: int) -> torch.Tensor:
    try:
        import cv2
    except ImportError:
        raise ImportError("an OpenCV colormap code needs opencv-python (pip install "
                          "opencv-python-headless), or pass a matplotlib colour map name") from None
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], code)[:, 0]
    return torch.from_numpy(np.ascontiguousarray(lut))                   # BGR


@lru_cache(maxsize=32)
def _mpl_table(name: str) -> torch.Tensor:
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"colormap {name!r} is not a matplotlib colour map") from None
    rgb = cmap(np.linspace(0, 1, 256))[:, :3]
    return torch.from_numpy((rgb * 255).round().astype(np.uint8)).flip(1)  # BGR


def lookup_table(colormap: int | str, bgr: bool = False, matplotlib: bool = False) -> torch.Tensor:
    """A colour map as a uint8 table Tensor[256, 3] (RGB, or BGR when ``bgr``).

    ``colormap``: an OpenCV code (``cv2.COLORMAP_JET`` = 2), a Zennit map name, or a matplotlib name.
    ``matplotlib``: look the name up among matplotlib's maps only (its own ``bwr``, ``gray``,
    ``hot`` and ``seismic`` rather than Zennit's). Default: False
    """
    if isinstance(colormap, bool) or not isinstance(colormap, (int, str)):
        raise TypeError(f"colormap must be an OpenCV code (int) or a colour map name, got {colormap!r}")
    if isinstance(colormap, int):
        table = _cv2_table(colormap)
    elif colormap in ZENNIT_MAPS and not matplotlib:
        table = palette(colormap).flip(1)
    else:
        table = _mpl_table(colormap)
    return table if bgr else table.flip(1)


def colorize(values: torch.Tensor, colormap: int | str = "jet", matplotlib: bool = False) -> torch.Tensor:
    """Values in [0, 1] (any shape) -> Tensor[..., 3] float RGB in [0, 1] through ``colormap``
    (``matplotlib`` as :func:`lookup_table`)."""
    table = lookup_table(colormap, matplotlib=matplotlib).to(torch.float32) / 255
    return table[(values.float().clamp(0, 1) * 255).round().long()]
