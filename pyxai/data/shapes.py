"""Procedural "shapes" data set: one labelled object per image on a textured background.

Each image holds one object of a class in :data:`SHAPE_CLASSES` (random colour, size, position and
rotation, with soft shading) on a textured background (gradient, stripes, checker or smooth noise),
plus 1-3 distractors that are none of the classes (thin line segments, thin arcs, small elongated
blobs) kept mostly clear of the object. The mask is the object's own pixels: the region that decides
the label. Distractors are drawn below the object, so the mask is never occluded.

Rendering is vectorised PyTorch over images and pixels (signed distance functions with a one-pixel
anti-aliased edge). Images are produced in blocks of ``_BLOCK`` images whose parameters come from a
CPU ``torch.Generator`` seeded from ``(seed, block index)``, so

* the same ``seed`` gives the same images whatever the machine, thread count or device;
* ``shapes(n, seed)`` is a prefix of ``shapes(n + k, seed)``;
* ``size`` only changes the rendering resolution: the scene (labels, geometry, colours) is the same.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from pyxai.data import _sdf

__all__ = ["SHAPE_CLASSES", "shape_layers", "shapes"]

#: Class names; a label is the index of its name in this tuple.
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "star")

_SHAPE_SDFS = (_sdf.circle, _sdf.square, _sdf.triangle, _sdf.cross, _sdf.ring, _sdf.star)

_BLOCK = 256  # images per independently seeded block
_DISTRACTORS = 3  # distractor slots per image (1-3 used)
_CANDIDATES = 16  # candidates for rejection sampling (colours, distractor positions)
_NOISE_GRIDS = (6, 12)  # resolutions of the smooth-noise background octaves
_MASK64 = (1 << 64) - 1


def shapes(n: int, seed: int = 0, size: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """Render ``n`` labelled images of the procedural shapes data set.

    Args:
        n (int): number of images, ``>= 1``.
        seed (int, optional): seed of the data set; the same seed gives the same images on every
            machine. Default: 0
        size (int, optional): height and width in pixels, ``>= 16``. The scenes do not depend on
            it, only their resolution. Default: 64

    Returns:
        tuple(Tensor, Tensor, Tensor):
        - images: Tensor[n, 3, size, size] float32 in [0, 1].
        - labels: Tensor[n] int64, indices into :data:`SHAPE_CLASSES`.
        - masks: Tensor[n, 1, size, size] bool, the pixels of the labelled object (never empty).

    Examples::

        >>> images, labels, masks = pyxai.data.shapes(8, seed=3)
        >>> images.shape, pyxai.data.SHAPE_CLASSES[labels[0]]
    """
    n, seed, size = _check_args(n, seed, size)
    images = torch.empty(n, 3, size, size)
    labels = torch.empty(n, dtype=torch.int64)
    masks = torch.empty(n, 1, size, size, dtype=torch.bool)
    for start, params, noise in _blocks(n, seed, size):
        img, mask = _render(params, noise, size)
        images[start : start + len(img)] = img
        labels[start : start + len(img)] = params["label"]
        masks[start : start + len(img)] = mask
    return images, labels, masks


def shape_layers(n: int, seed: int = 0, size: int = 64) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The layers of the images of :func:`shapes`: background and object apart, so an object can
    be composited onto another image's background (background-swap augmentation).

    ``alpha * foregrounds + (1 - alpha) * backgrounds`` is ``shapes(n, seed, size)[0]`` except
    that the pixel noise of ``shapes`` also covers the object; here it is in the background only.

    Args:
        n (int): number of images, ``>= 1``.
        seed (int, optional): seed of the data set (the scenes of :func:`shapes`). Default: 0
        size (int, optional): height and width in pixels, ``>= 16``. Default: 64

    Returns:
        tuple(Tensor, Tensor, Tensor, Tensor):
        - backgrounds: Tensor[n, 3, size, size] float32 in [0, 1], the textured background with
          its distractors and pixel noise, without the labelled object.
        - foregrounds: Tensor[n, 3, size, size] float32 in [0, 1], the object's shaded colour
          (meaningful where ``alpha > 0``).
        - alpha: Tensor[n, 1, size, size] float32 in [0, 1], the object's anti-aliased coverage.
        - labels: Tensor[n] int64, indices into :data:`SHAPE_CLASSES`.

    Examples::

        >>> bg, fg, alpha, labels = pyxai.data.shape_layers(8, seed=3)
        >>> swapped = alpha * fg + (1 - alpha) * bg.roll(1, 0)   # each object on another background
    """
    n, seed, size = _check_args(n, seed, size)
    backgrounds, foregrounds = torch.empty(n, 3, size, size), torch.empty(n, 3, size, size)
    alpha = torch.empty(n, 1, size, size)
    labels = torch.empty(n, dtype=torch.int64)
    for start, params, noise in _blocks(n, seed, size):
        background, color, coverage, _ = _layers(params, size)
        stop = start + len(color)
        sigma = params["noise_sigma"][:, None, None, None]
        backgrounds[start:stop] = (background + sigma * noise).clamp(0, 1)
        foregrounds[start:stop] = color
        alpha[start:stop] = coverage[:, None]
        labels[start:stop] = params["label"]
    return backgrounds, foregrounds, alpha, labels


def _check_args(n: object, seed: object, size: object) -> tuple[int, int, int]:
    return (_check_int("n", n, minimum=1), _check_int("seed", seed),
            _check_int("size", size, minimum=16))


def _blocks(n: int, seed: int, size: int) -> Iterator[tuple[int, dict[str, Tensor], Tensor]]:
    """The blocks of ``n`` scenes of ``seed``: (first image index, scene parameters, pixel noise
    Tensor[count, 3, size, size])."""
    for block, start in enumerate(range(0, n, _BLOCK)):
        count = min(_BLOCK, n - start)
        gen = torch.Generator(device="cpu").manual_seed(_block_seed(seed, block))
        params = _sample_params(gen, _BLOCK)
        noise = torch.randn(_BLOCK, 3, size, size, generator=gen)[:count]
        yield start, {key: value[:count] for key, value in params.items()}, noise


def _check_int(name: str, value: object, minimum: int | None = None) -> int:
    if isinstance(value, bool) or getattr(value, "dtype", None) in (torch.bool,):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not isinstance(value, int):
        try:
            value = operator.index(value)  # numpy / 0-d integer tensors
        except TypeError:
            raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _block_seed(seed: int, block: int) -> int:
    """Seed of one block: splitmix64 of (seed, block), so blocks and seeds get unrelated streams."""
    z = ((seed & _MASK64) * 0x9E3779B97F4A7C15 + block + 1) & _MASK64
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z = ((z ^ (z >> shift)) * mult) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


def _uniform(gen: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _pick_contrasting(candidates: Tensor, references: Tensor, min_dist: float) -> Tensor:
    """First candidate colour at RGB distance >= ``min_dist`` from every reference, else the
    farthest one. candidates: Tensor[m, K, 3], references: Tensor[m, R, 3] -> Tensor[m, 3]."""
    dist = torch.cdist(candidates, references).amin(dim=2)  # [m, K]
    k = candidates.shape[1]
    order = torch.arange(k, 0, -1, dtype=dist.dtype)  # prefer earlier valid candidates
    key = torch.where(dist >= min_dist, 10.0 + order, dist)
    idx = key.argmax(dim=1)
    return candidates[torch.arange(candidates.shape[0]), idx]


def _sample_params(gen: torch.Generator, m: int) -> dict[str, Tensor]:
    """Draw every scene parameter of ``m`` images, in a fixed order."""
    p: dict[str, Tensor] = {}
    # object
    p["label"] = torch.randint(len(SHAPE_CLASSES), (m,), generator=gen)
    r = _uniform(gen, (m,), 0.15, 0.26)
    p["radius"] = r
    p["center"] = (r + 0.02)[:, None] + (1 - 2 * r - 0.04)[:, None] * torch.rand(m, 2, generator=gen)
    p["angle"] = _uniform(gen, (m,), 0.0, 2 * math.pi)
    p["light_angle"] = _uniform(gen, (m,), 0.0, 2 * math.pi)
    p["light"] = _uniform(gen, (m,), 0.0, 0.25)
    # background
    p["bg_kind"] = torch.randint(4, (m,), generator=gen)
    c1 = _uniform(gen, (m, 3), 0.08, 0.92)
    c2 = (c1 + _uniform(gen, (m, 3), -0.35, 0.35)).clamp(0.0, 1.0)
    p["bg_c1"], p["bg_c2"] = c1, c2
    p["bg_angle"] = _uniform(gen, (m,), 0.0, 2 * math.pi)
    p["bg_freq"] = _uniform(gen, (m,), 2.0, 9.0)
    p["bg_phase"] = _uniform(gen, (m, 2), 0.0, 2 * math.pi)
    p["bg_slope"] = _uniform(gen, (m,), 0.6, 1.4)
    for res in _NOISE_GRIDS:
        p[f"bg_grid{res}"] = torch.rand(m, 1, res, res, generator=gen)
    p["noise_sigma"] = _uniform(gen, (m,), 0.0, 0.04)
    # object colour: contrasting with both background colours and their midpoint
    refs = torch.stack([c1, c2, 0.5 * (c1 + c2)], dim=1)
    cand = torch.rand(m, _CANDIDATES, 3, generator=gen)
    obj_col = _pick_contrasting(cand, refs, 0.45)
    p["color"] = obj_col
    # distractors
    d = _DISTRACTORS
    p["d_count"] = torch.randint(1, d + 1, (m,), generator=gen)
    p["d_kind"] = torch.randint(3, (m, d), generator=gen)  # 0 segment, 1 arc, 2 blob
    p["d_angle"] = _uniform(gen, (m, d), 0.0, 2 * math.pi)
    p["d_len"] = _uniform(gen, (m, d), 0.06, 0.18)  # segment half-length
    p["d_arc_r"] = _uniform(gen, (m, d), 0.05, 0.12)
    p["d_arc_half"] = _uniform(gen, (m, d), 0.35, 1.35)  # < 160 degrees in all
    p["d_blob_a"] = _uniform(gen, (m, d), 0.02, 0.045)
    p["d_blob_ratio"] = _uniform(gen, (m, d), 0.35, 0.75)
    p["d_width"] = _uniform(gen, (m, d), 0.008, 0.018)  # stroke half-width
    same = torch.rand(m, d, generator=gen) < 0.5  # half of them share the object's colour
    jitter = 0.08 * torch.randn(m, d, 3, generator=gen)
    cand = torch.rand(m * d, _CANDIDATES, 3, generator=gen)
    own = _pick_contrasting(cand, refs.repeat_interleave(d, dim=0), 0.35).view(m, d, 3)
    p["d_color"] = torch.where(same[..., None], (obj_col[:, None] + jitter).clamp(0, 1), own)
    # distractor positions: rejection sampling to stay mostly clear of the object
    bound = torch.stack(
        [p["d_len"] + p["d_width"], p["d_arc_r"] + p["d_width"], p["d_blob_a"]], dim=-1
    ).gather(-1, p["d_kind"][..., None])[..., 0]  # [m, d]
    cand = _uniform(gen, (m, d, _CANDIDATES, 2), 0.04, 0.96)
    dist = (cand - p["center"][:, None, None]).norm(dim=-1)  # [m, d, K]
    need = (0.95 * r[:, None] + 0.5 * bound)[..., None]
    order = torch.arange(_CANDIDATES, 0, -1, dtype=dist.dtype)
    idx = torch.where(dist >= need, 10.0 + order, dist).argmax(dim=-1)
    p["d_center"] = cand.gather(2, idx[..., None, None].expand(m, d, 1, 2))[:, :, 0]
    return p


def _col(x: Tensor) -> Tensor:
    """Tensor[m] -> Tensor[m, 1, 1] for broadcasting over pixels."""
    return x[:, None, None]


def _background(p: dict[str, Tensor], size: int, px: Tensor, py: Tensor) -> Tensor:
    """Textured backgrounds, Tensor[m, 3, size, size]."""
    m = p["bg_kind"].shape[0]
    t = torch.empty(m, size, size)
    cos, sin = _col(torch.cos(p["bg_angle"])), _col(torch.sin(p["bg_angle"]))
    u = (px - 0.5) * cos + (py - 0.5) * sin
    v = (py - 0.5) * cos - (px - 0.5) * sin
    freq = _col(p["bg_freq"]) * 2 * math.pi
    ph0, ph1 = _col(p["bg_phase"][:, 0]), _col(p["bg_phase"][:, 1])
    kind = p["bg_kind"]
    for k in range(4):
        idx = (kind == k).nonzero()[:, 0]
        if idx.numel() == 0:
            continue
        if k == 0:  # linear gradient
            tk = (0.5 + _col(p["bg_slope"])[idx] * u[idx]).clamp(0, 1)
        elif k == 1:  # stripes
            tk = 0.5 + 0.5 * torch.sin(freq[idx] * u[idx] + ph0[idx])
        elif k == 2:  # soft checker board
            s = torch.sin(0.5 * freq[idx] * u[idx] + ph0[idx])
            s = s * torch.sin(0.5 * freq[idx] * v[idx] + ph1[idx])
            tk = 0.5 + 0.5 * torch.tanh(4.0 * s)
        else:  # smooth noise, two octaves
            tk = 0
            for weight, res in zip((1.0, 0.5), _NOISE_GRIDS):
                grid = p[f"bg_grid{res}"][idx]
                up = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
                tk = tk + weight * up[:, 0]
            lo = tk.amin(dim=(1, 2), keepdim=True)
            hi = tk.amax(dim=(1, 2), keepdim=True)
            tk = (tk - lo) / (hi - lo).clamp(min=1e-6)
        t[idx] = tk
    c1, c2 = p["bg_c1"][:, :, None, None], p["bg_c2"][:, :, None, None]
    return c1 + (c2 - c1) * t[:, None]


def _paint(img: Tensor, idx: Tensor, coverage: Tensor, color: Tensor) -> None:
    """Alpha-blend ``color`` (Tensor[k, 3]) into ``img[idx]`` with ``coverage`` (Tensor[k, H, W])."""
    a = coverage[:, None]
    img[idx] = img[idx] * (1 - a) + color[:, :, None, None] * a


def _render(p: dict[str, Tensor], noise: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Render the scenes described by ``p``: images Tensor[m, 3, S, S], masks Tensor[m, 1, S, S]."""
    background, color, coverage, mask = _layers(p, size)
    a = coverage[:, None]
    img = background * (1 - a) + color * a
    img = (img + p["noise_sigma"][:, None, None, None] * noise).clamp(0, 1)
    return img.contiguous(), mask[:, None].contiguous()


def _layers(p: dict[str, Tensor], size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The layers of the scenes described by ``p``, before pixel noise: background with its
    distractors Tensor[m, 3, S, S], the object's shaded colour Tensor[m, 3, S, S], its coverage
    Tensor[m, S, S] in [0, 1] and its mask Tensor[m, S, S] bool."""
    m = p["label"].shape[0]
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    px, py = grid.view(1, 1, size), grid.view(1, size, 1)
    img = _background(p, size, px, py)

    # distractors (below the object)
    for j in range(_DISTRACTORS):
        kind = torch.where(p["d_count"] > j, p["d_kind"][:, j], -1)
        for k in range(3):
            idx = (kind == k).nonzero()[:, 0]
            if idx.numel() == 0:
                continue
            ang = _col(p["d_angle"][idx, j])
            dx = px - _col(p["d_center"][idx, j, 0])
            dy = py - _col(p["d_center"][idx, j, 1])
            qx = dx * torch.cos(ang) + dy * torch.sin(ang)
            qy = dy * torch.cos(ang) - dx * torch.sin(ang)
            width = _col(p["d_width"][idx, j])
            if k == 0:
                sdf = _sdf.segment(qx, qy, _col(p["d_len"][idx, j]), width)
            elif k == 1:
                sdf = _sdf.arc(qx, qy, _col(p["d_arc_r"][idx, j]), _col(p["d_arc_half"][idx, j]), width)
            else:
                a = _col(p["d_blob_a"][idx, j])
                sdf = _sdf.ellipse(qx, qy, a, a * _col(p["d_blob_ratio"][idx, j]))
            _paint(img, idx, (0.5 - sdf * size).clamp(0, 1), p["d_color"][idx, j])

    # the labelled object
    coverage = torch.empty(m, size, size)
    shade = torch.empty(m, size, size)
    for k, sdf_fn in enumerate(_SHAPE_SDFS):
        idx = (p["label"] == k).nonzero()[:, 0]
        if idx.numel() == 0:
            continue
        r = _col(p["radius"][idx])
        ang = _col(p["angle"][idx])
        dx = (px - _col(p["center"][idx, 0])) / r
        dy = (py - _col(p["center"][idx, 1])) / r
        qx = dx * torch.cos(ang) + dy * torch.sin(ang)
        qy = dy * torch.cos(ang) - dx * torch.sin(ang)
        coverage[idx] = (0.5 - sdf_fn(qx, qy) * r * size).clamp(0, 1)
        light = _col(p["light_angle"][idx])
        shade[idx] = 1 + _col(p["light"][idx]) * (dx * torch.cos(light) + dy * torch.sin(light))
    color = (p["color"][:, :, None, None] * shade[:, None]).clamp(0, 1)
    peak = coverage.amax(dim=(1, 2), keepdim=True)
    mask = (coverage >= 0.5) | ((coverage == peak) & (peak > 0))
    return img, color, coverage, mask
