"""The raw maps of a video run, written as frames arrive: ``.npz`` or a Zarr store.

* ``*.npz``: ``maps`` float16 [N, 1, H, W] and ``scores`` float32 [N], compressed, written when
  the run ends (the maps are kept until then: memory grows with the video).
* ``*.zarr`` (Zarr v3, the ``video`` extra's ``zarr``): the same two arrays, appended every
  ``block`` frames (chunks of ``block`` frames), so memory stays flat however long the video; a
  run stopped part-way leaves every block written before. Read it with
  ``zarr.open_group(path, mode="r")["maps"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["MapsWriter"]


class MapsWriter:
    """Collect per-frame maps and scores into ``path`` (``.npz`` or ``.zarr``, see the module).

    Args:
        path (str or Path): where to write; its folder must exist. A ``.zarr`` path is created (or
            replaced, when it is a Zarr store) at once, so an unwritable path fails before any frame
            is explained.
        block (int, optional): frames per appended Zarr chunk. Default: 64

    Raises:
        ValueError: a path that is neither ``.npz`` nor ``.zarr``, a missing folder, or a ``.zarr``
            path that exists and is not a Zarr store (never deleted).
    """

    def __init__(self, path: str | Path, block: int = 64) -> None:
        self.path = Path(path)
        self.block = block
        self.zarr = self.path.suffix == ".zarr"
        if not self.zarr and self.path.suffix != ".npz":
            raise ValueError(f"maps must be a .npz or .zarr path, got {str(path)!r}")
        if not self.path.parent.is_dir():
            raise ValueError(f"maps: folder {str(self.path.parent)!r} does not exist")
        self._maps: list[np.ndarray] = []
        self._scores: list[float] = []
        self._group: Any = None
        self._shape: tuple[int, ...] | None = None
        self.frames = 0
        if self.zarr:
            self._group = self._open_group()

    def _open_group(self) -> Any:
        try:
            import zarr
        except ImportError as e:  # pragma: no cover - zarr is in the video and test extras
            raise ImportError("maps=*.zarr needs zarr: pip install 'pyxai-attribution[video]'") from e
        p = self.path
        if p.exists() and not (p.is_dir() and (p / "zarr.json").is_file()):
            raise ValueError(f"maps {str(p)!r} exists and is not a Zarr store; choose another path")
        try:
            return zarr.open_group(str(p), mode="w")
        except OSError as e:
            raise ValueError(f"maps: cannot write {str(p)!r}: {e}") from e

    def add(self, heat: Tensor, score: float) -> None:
        """One frame's map Tensor[1, H, W] (any float dtype, stored as float16) and score."""
        if self._shape is None:
            self._shape = tuple(heat.shape)
        elif tuple(heat.shape) != self._shape:
            raise ValueError(f"maps: a frame map of shape {tuple(heat.shape)} after {self.frames} of "
                             f"shape {self._shape}; one store holds one map size")
        self._maps.append(heat.detach().cpu().numpy().astype(np.float16))
        self._scores.append(float(score))
        self.frames += 1
        if self.zarr and len(self._maps) >= self.block:
            self._flush()

    def _flush(self) -> None:
        if not self._maps:
            return
        block = np.stack(self._maps)
        scores = np.asarray(self._scores, dtype=np.float32)
        g = self._group
        if "maps" not in g:
            g.create_array("maps", shape=(0, *block.shape[1:]), chunks=(self.block, *block.shape[1:]),
                           dtype="float16")
            g.create_array("scores", shape=(0,), chunks=(max(self.block, 1024),), dtype="float32")
        maps = g["maps"]
        maps.append(block)
        g["scores"].append(scores)
        g.attrs["frames"] = int(maps.shape[0])
        self._maps, self._scores = [], []

    def close(self) -> None:
        """Write what is left (``.npz``: everything). A run with no frame writes no ``.npz``."""
        if self.zarr:
            self._flush()
        elif self._maps:
            np.savez_compressed(self.path, maps=np.stack(self._maps),
                                scores=np.asarray(self._scores, dtype=np.float32))
