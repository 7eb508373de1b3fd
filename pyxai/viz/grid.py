"""``grid``: the method x image figure, with labels, row legends and colour bars."""

from __future__ import annotations

from typing import Any

import torch

from pyxai.viz._arrays import as_tensor, to_numpy
from pyxai.viz.overlay import SIGNED_CMAP, UNSIGNED_CMAP, is_signed, overlay, reduce_map


def _colorbar_cmap(name: str) -> Any:
    """A matplotlib colour map for the colour bar (Zennit's ``bwr`` rebuilt from its palette)."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    from pyxai.viz.colormaps import ZENNIT_MAPS, palette

    if name in ZENNIT_MAPS:
        return ListedColormap(to_numpy(palette(name)) / 255.0, name=name)
    return matplotlib.colormaps[name]


def grid(images: torch.Tensor, maps_by_method: dict[str, torch.Tensor], labels: list[str] | None = None,
         alpha: float = 0.5, cell_inches: float = 1.6, input_label: str = "input",
         signed: dict[str, bool] | None = None) -> Any:
    """A figure with one column per image and one row per method (plus the input row on top).

    Args:
        images: the un-normalised images, Tensor[B, C, H, W] in [0, 1].
        maps_by_method: method name -> maps Tensor[B, 1|C, h, w] (resized to the images).
        labels: one title per image (e.g. ``"true circle / pred circle 0.97"``). Default: none.
        alpha: weight of the colour map in each overlay. Default: 0.5.
        cell_inches: size of one cell. Default: 1.6.
        input_label: the legend of the input row. Default: ``"input"``.
        signed: method name -> whether its maps are signed (see :mod:`pyxai.viz.overlay`).
            Default: signed when a map of the row has negative values.

    Each method row carries its name on the left and a colour bar on the right: ``-max .. 0 .. +max``
    on ``bwr`` for signed maps, ``low .. high`` on ``jet`` otherwise (each image scaled on its own).

    Returns:
        a ``matplotlib.figure.Figure`` (not attached to pyplot).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    imgs = as_tensor(images, "images").float()
    if imgs.dim() != 4:
        raise ValueError(f"images must be Tensor[B, C, H, W], got {tuple(imgs.shape)}")
    b = imgs.shape[0]
    if not maps_by_method:
        raise ValueError("maps_by_method is empty")
    for name, maps in maps_by_method.items():
        if not isinstance(maps, torch.Tensor) or maps.dim() < 3 or maps.shape[0] != b:
            raise ValueError(f"maps_by_method[{name!r}] must be a Tensor with {b} maps (batch first)")
    if labels is not None and len(labels) != b:
        raise ValueError(f"labels has {len(labels)} entries for {b} images")
    rows = len(maps_by_method) + 1
    fig = Figure(figsize=(cell_inches * b + 1.3, cell_inches * rows + 0.3 * (labels is not None)))
    grid_axes = fig.subplots(rows, b + 1, squeeze=False,
                             gridspec_kw={"width_ratios": [1.0] * b + [0.07], "wspace": 0.08})
    axes, bar_axes = grid_axes[:, :b], grid_axes[:, b]
    bar_axes[0].axis("off")
    size = tuple(imgs.shape[-2:])
    for j in range(b):
        axes[0, j].imshow(to_numpy(imgs[j].expand(3, -1, -1).permute(1, 2, 0).clamp(0, 1)))
        if labels is not None:
            axes[0, j].set_title(labels[j], fontsize=7)
    axes[0, 0].set_ylabel(input_label, fontsize=8)
    for i, (name, maps) in enumerate(maps_by_method.items(), start=1):
        reduced = [reduce_map(maps[j].detach().cpu(), size) for j in range(b)]
        row_signed = (signed or {}).get(name)
        row_signed = any(is_signed(m) for m in reduced) if row_signed is None else row_signed
        for j in range(b):
            axes[i, j].imshow(to_numpy(overlay(imgs[j], reduced[j], alpha=alpha, signed=row_signed)))
        axes[i, 0].set_ylabel(name, fontsize=8)
        cmap = _colorbar_cmap(SIGNED_CMAP if row_signed else UNSIGNED_CMAP)
        bar = fig.colorbar(ScalarMappable(Normalize(-1 if row_signed else 0, 1), cmap), cax=bar_axes[i])
        bar.set_ticks([-1, 0, 1] if row_signed else [0, 1])
        bar.set_ticklabels(["-max", "0", "+max"] if row_signed else ["low", "high"])
        bar.ax.tick_params(labelsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
