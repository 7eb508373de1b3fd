"""Image inputs of ``pyxai explain``: files, folders and globs -> sorted paths -> batches of pixels.

Images keep their aspect ratio: the short side is resized to ``resize`` and the centre
``size`` x ``size`` is cropped, as torchvision's ImageNet weights' transforms do (``Resize(256)`` then
``CenterCrop(224)``). Animated images and videos are refused with a pointer to ``pyxai video``.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def image_paths(sources: list[str]) -> list[Path]:
    """Expand files, folders (recursively) and globs (``**`` allowed) into image paths.

    Each folder or glob contributes its images sorted by path; the sources keep their order and a
    path named twice is kept once. ValueError when a source matches nothing.
    """
    out: list[Path] = []
    for src in sources:
        p = Path(src)
        if any(c in src for c in "*?["):
            found = sorted(Path(m) for m in glob.glob(src, recursive=True))
            found = [f for f in found if _is_image(f) or f.suffix.lower() in VIDEO_SUFFIXES]
            if not found:
                raise ValueError(f"no image matches {src!r}")
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if _is_image(f))
            if not found:
                raise ValueError(f"no image file ({', '.join(IMAGE_SUFFIXES)}) in folder {src}")
        elif p.is_file():
            found = [p]
        else:
            raise ValueError(f"image file not found: {src}")
        out += [f for f in found if f not in out]
    return out


def load_image(path: Path, size: int, resize: int) -> torch.Tensor:
    """One image: short side resized to ``resize`` (bilinear), centre ``size`` crop ->
    Tensor[3, size, size] in [0, 1]. ValueError for videos, animations and unreadable files."""
    from PIL import Image

    if path.suffix.lower() in VIDEO_SUFFIXES:
        raise ValueError(f"{path} is a video: use `pyxai video {path}`")
    try:
        img = Image.open(path)
        frames = getattr(img, "n_frames", 1)
        if frames > 1:
            raise ValueError(f"{path} is animated ({frames} frames): use `pyxai video {path}` "
                             "to explain every frame, or pass a still image")
        img = img.convert("RGB")
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    w, h = img.size
    scale = resize / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return t.reshape(size, size, 3).permute(2, 0, 1).float() / 255


def batches(paths: list[Path], size: int, resize: int, batch_size: int
            ) -> Iterator[tuple[list[Path], torch.Tensor]]:
    """(paths, Tensor[b, 3, size, size] in [0, 1]) per batch of at most ``batch_size`` images."""
    for i in range(0, len(paths), batch_size):
        chunk = paths[i:i + batch_size]
        yield chunk, torch.stack([load_image(p, size, resize) for p in chunk])
