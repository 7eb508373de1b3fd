"""Small image files for the CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_png(path: Path, rng: torch.Generator, h: int = 48, w: int = 64) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (torch.rand(h, w, 3, generator=rng) * 255).to(torch.uint8).numpy()
    Image.fromarray(arr).save(path)
    return path


def write_gif(path: Path, frames: int = 3) -> Path:
    from PIL import Image

    imgs = [Image.fromarray(np.full((16, 16, 3), 40 * k, dtype=np.uint8)) for k in range(frames)]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=50)
    return path
