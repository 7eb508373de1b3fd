"""Captum-compatible figures: ``visualize_image_attr`` and ``visualize_image_attr_multiple``.

Same arguments, defaults, normalisation (outlier-clipped by the cumulative-sum threshold), colour
maps and figure layout as ``captum.attr.visualization``; tensors (``Tensor[C, H, W]``) are accepted
next to Captum's ``ndarray[H, W, C]``, and bad arguments raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from pyxai.viz._arrays import image_hwc, to_numpy

METHODS = ("heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling")
SIGNS = ("positive", "absolute_value", "negative", "all")


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def cumulative_sum_threshold(values: torch.Tensor, percentile: float) -> torch.Tensor:
    """The smallest sorted value whose cumulative sum reaches ``percentile`` % of the total.

    ``values``: non-negative Tensor of any shape. Returns a 0-d tensor.
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"outlier_perc must be in [0, 100], got {100 - percentile}")
    v = values.flatten().sort().values
    cum = v.cumsum(0)
    hits = torch.nonzero(cum >= cum[-1] * 0.01 * percentile)
    # percentile 100: the product may round just above the total; then the total itself counts
    idx = int(hits[0, 0]) if hits.numel() else v.numel() - 1
    return v[idx]


def normalize_attr(attr: torch.Tensor, sign: str = "absolute_value", outlier_perc: float = 2
                   ) -> torch.Tensor:
    """Captum's normalisation of a Tensor[H, W] map: sign filter, then divide by the threshold that
    drops the top ``outlier_perc`` % of total absolute attribution, clipped to [-1, 1]."""
    _check_choice(sign, SIGNS, "sign")
    if sign == "positive":
        attr = attr.clamp_min(0)
    elif sign == "negative":
        attr = attr.clamp_max(0)
    elif sign == "absolute_value":
        attr = attr.abs()
    threshold = cumulative_sum_threshold(attr.abs(), 100.0 - outlier_perc)
    if sign == "negative":
        threshold = -threshold
    if threshold == 0:
        raise ValueError("cannot normalise attributions that are all zero (for this sign)")
    if abs(float(threshold)) < 1e-5:
        warnings.warn("Attempting to normalize by value approximately 0, visualized results may be "
                      "misleading. This likely means that attribution values are all close to 0.",
                      stacklevel=3)
    return (attr / threshold).clamp(-1, 1)


def sign_cmap(sign: str) -> tuple[Any, float, float]:
    """Captum's default colour map and range for ``sign``."""
    from matplotlib.colors import LinearSegmentedColormap

    _check_choice(sign, SIGNS, "sign")
    if sign == "all":
        return LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"]), -1, 1
    return {"positive": "Greens", "negative": "Reds", "absolute_value": "Blues"}[sign], 0, 1


def _uint8_image(img: torch.Tensor) -> np.ndarray:
    """Captum's ``_prepare_image``: an image in [0, 1] becomes integers 0..255 (int64)."""
    arr = to_numpy(img)
    if np.max(arr) <= 1.0:
        arr = np.clip((arr * 255).astype(int), 0, 255)
    return arr


def visualize_image_attr(
    attr: Any, original_image: Any = None, method: str = "heat_map", sign: str = "absolute_value",
    plt_fig_axis: tuple | None = None, outlier_perc: float = 2, cmap: Any = None,
    alpha_overlay: float = 0.5, show_colorbar: bool = False, title: str | None = None,
    fig_size: tuple[int, int] = (6, 6), use_pyplot: bool = True,
) -> tuple[Any, Any]:
    """Captum's ``visualize_image_attr``: an attribution drawn on one matplotlib axis.

    Args:
        attr: ``Tensor[C, H, W]`` / ``[H, W]`` or Captum's ``ndarray[H, W, C]``; channels are summed.
        original_image: the image (same layouts), values in [0, 1] or 0..255; needed by every
            method except ``heat_map``.
        method: ``heat_map``, ``blended_heat_map``, ``original_image``, ``masked_image`` or
            ``alpha_scaling``. Default: ``heat_map``.
        sign: ``absolute_value``, ``positive``, ``negative`` or ``all``. Default: ``absolute_value``.
        plt_fig_axis: (figure, axis) to draw on. Default: a new figure.
        outlier_perc: percentage of total attribution clipped as outliers. Default: 2.
        cmap: colour map. Default: Blues / Greens / Reds / red-white-green by sign.
        alpha_overlay: heat-map alpha in ``blended_heat_map``. Default: 0.5.
        show_colorbar: a horizontal colour bar below the axis. Default: False.
        title: axis title. Default: None.
        fig_size: figure size in inches. Default: (6, 6).
        use_pyplot: create through pyplot and ``plt.show()``; else a bare ``Figure``. Default: True.

    Returns:
        (figure, axis).
    """
    _check_choice(method, METHODS, "method")
    _check_choice(sign, SIGNS, "sign")
    if method in ("masked_image", "alpha_scaling") and sign == "all":
        raise ValueError(f"method {method!r} cannot show both positive and negative attributions; "
                         "choose another sign")
    a = image_hwc(attr, "attr").double()
    image = None
    if original_image is not None:
        image = image_hwc(original_image, "original_image")
        if image.shape[:2] != a.shape[:2]:
            raise ValueError(f"attr is {tuple(a.shape[:2])} but original_image is "
                             f"{tuple(image.shape[:2])} (H, W)")
    elif method != "heat_map":
        raise ValueError("Original Image must be provided for any visualization other than heatmap.")
    norm = normalize_attr(a.sum(2), sign, outlier_perc)
    default_cmap, vmin, vmax = sign_cmap(sign)
    cmap = cmap if cmap is not None else default_cmap

    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    if plt_fig_axis is not None:
        fig, ax = plt_fig_axis
    elif use_pyplot:
        fig, ax = plt.subplots(figsize=fig_size)
    else:
        fig = Figure(figsize=fig_size)
        ax = fig.subplots()
    ax.xaxis.set_ticks_position("none")
    ax.yaxis.set_ticks_position("none")
    ax.set_yticklabels([])
    ax.set_xticklabels([])
    ax.grid(visible=False)

    img = _uint8_image(image) if image is not None else None
    n = to_numpy(norm)
    heat = None
    if method == "heat_map":
        heat = ax.imshow(n, cmap=cmap, vmin=vmin, vmax=vmax)
    elif method == "blended_heat_map":
        ax.imshow(np.mean(img, axis=2), cmap="gray")
        heat = ax.imshow(n, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha_overlay)
    elif method == "original_image":
        ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img)
    elif method == "masked_image":
        ax.imshow(np.clip((img * n[:, :, None]).astype(int), 0, 255))
    else:  # alpha_scaling
        ax.imshow(np.concatenate([img, np.clip((n[:, :, None] * 255).astype(int), 0, 255)], axis=2))
    if show_colorbar:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        cax = make_axes_locatable(ax).append_axes("bottom", size="5%", pad=0.1)
        if heat is not None:
            fig.colorbar(heat, orientation="horizontal", cax=cax)
        else:
            cax.axis("off")
    if title:
        ax.set_title(title)
    if use_pyplot:
        plt.show()
    return fig, ax


def visualize_image_attr_multiple(
    attr: Any, original_image: Any, methods: list[str], signs: list[str],
    titles: list[str] | None = None, fig_size: tuple[int, int] = (8, 6), use_pyplot: bool = True,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Captum's ``visualize_image_attr_multiple``: a 1 x k row of :func:`visualize_image_attr` axes.

    ``methods``, ``signs`` (and ``titles``) are lists of the same length k; ``kwargs`` go to every
    :func:`visualize_image_attr` (``show_colorbar``, ``alpha_overlay``, ``cmap``...).
    Returns (figure, axis) — a list of k axes when k > 1.
    """
    if len(methods) != len(signs):
        raise ValueError(f"methods and signs must have the same length ({len(methods)} != {len(signs)})")
    if titles is not None and len(titles) != len(methods):
        raise ValueError(f"titles must have the length of methods ({len(titles)} != {len(methods)})")
    if not methods:
        raise ValueError("methods must name at least one visualisation")
    for m in methods:
        _check_choice(m, METHODS, "methods")
    for s in signs:
        _check_choice(s, SIGNS, "signs")
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    fig = plt.figure(figsize=fig_size) if use_pyplot else Figure(figsize=fig_size)
    axes = fig.subplots(1, len(methods), squeeze=True)
    axis_list = [axes] if len(methods) == 1 else list(axes.tolist())
    for i, (m, s) in enumerate(zip(methods, signs)):
        visualize_image_attr(attr, original_image=original_image, method=m, sign=s,
                             plt_fig_axis=(fig, axis_list[i]), use_pyplot=False,
                             title=titles[i] if titles else None, **kwargs)
    fig.tight_layout()
    if use_pyplot:
        plt.show()
    return fig, axis_list[0] if len(methods) == 1 else axis_list
