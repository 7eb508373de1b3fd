"""A matplotlib figure of a SpRAy result: cluster prototypes (mean maps, and mean images) and the
2-d embedding coloured by cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from pyxai.spray.analysis import SpRAyResult

__all__ = ["plot"]


def plot(result: SpRAyResult, attributions: Tensor, images: Tensor | None = None,
         path: str | Path | None = None):
    """Figure with one column per cluster (mean map; mean image below when ``images`` is given) and the
    display embedding (t-SNE, else UMAP, else the first two spectral coordinates) on the right.

    Args:
        result (SpRAyResult): the analysis.
        attributions (Tensor[N, C, H, W]): the analysed maps.
        images (Tensor[N, 3, H, W], optional): the images, for mean-image prototypes. Default: None
        path (str or Path, optional): save the figure there (PNG/PDF by suffix). Default: None

    Returns:
        matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ids = result.labels[result.labels >= 0].unique().tolist()
    maps = result.prototypes(attributions).sum(dim=1).detach().cpu()
    rows = 2 if images is not None else 1
    fig = plt.figure(figsize=(2.2 * len(ids) + 4.5, 2.3 * rows + 0.4))
    grid = fig.add_gridspec(rows, len(ids) + 2)
    counts = torch.bincount(result.labels[result.labels >= 0].cpu())
    for col, c in enumerate(ids):
        ax = fig.add_subplot(grid[0, col])
        lim = float(maps[col].abs().max()) or 1.0
        ax.imshow(maps[col].numpy(), cmap="bwr", vmin=-lim, vmax=lim)
        ax.set_title(f"cluster {c} (n={int(counts[c])})", fontsize=8)
        ax.axis("off")
        if images is not None:
            ax = fig.add_subplot(grid[1, col])
            mean = images[(result.labels == c).to(images.device)].mean(dim=0).detach().cpu()
            ax.imshow(mean.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.axis("off")
    key = next(iter(result.display), None)
    points = result.display[key] if key else result.embedding[:, :2]
    ax = fig.add_subplot(grid[:, len(ids):])
    pts = points.detach().cpu()
    ax.scatter(pts[:, 0].numpy(), pts[:, 1].numpy(), c=result.labels.cpu().numpy(), cmap="tab10", s=6)
    ax.set_title(f"{key or 'spectral'} embedding, {len(pts)} maps", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
