"""The Zarr (v3) store of a dataset run: one row per sample, chunked per shard.

Layout of the group at ``out``::

    maps           float16|float32 [N, *map]   chunks (shard_size, *map); NaN: sample not readable
    target         int64 [N]        the class explained (-1: a callable target)
    score          float32 [N]      the model's output for the target (logit)
    ok             bool [N]         the sample was read
    error          str [N]          why not ("" when read)
    id             str [N]          the source's sample ids (paths, dataset indices, the Ray id column)
    label          int64 [N]        the source's labels, when it has them
    deletion, insertion  float32 [N], pointing_game bool [N]   the requested metrics
    shard_done     uint8 [n_shards] chunks (1,): 1 once every array of the shard is written

attributes: ``params`` (what determines the result: source, model, method and its keywords,
target, metrics, dtype, shard and batch size; a rerun must match them), ``history`` (one entry per
run: shards skipped and computed, samples/s). Only the driver writes, and a shard's
``shard_done`` entry is written after all its data, so a run killed at any point leaves finished
shards finished and the others to redo.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

#: per-sample arrays: name -> (dtype, fill value)
COLUMNS: dict[str, tuple[Any, Any]] = {
    "target": ("int64", -1),
    "score": ("float32", float("nan")),
    "ok": ("bool", False),
    "error": (str, ""),
    "id": (str, ""),
    "label": ("int64", -1),
    "deletion": ("float32", float("nan")),
    "insertion": ("float32", float("nan")),
    "pointing_game": ("bool", False),
}


def _canonical(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as it reads back from the store's JSON attributes."""
    return json.loads(json.dumps(params, default=repr, sort_keys=True))


class Store:
    """A run's Zarr group: created or reopened by :meth:`open`, written shard by shard.

    Args:
        path: the store's folder.
        group: the open ``zarr.Group``.
        n, shard_size: samples and samples per shard.
    """

    def __init__(self, path: str, group: Any, n: int, shard_size: int) -> None:
        self.path, self.group, self.n, self.shard_size = path, group, n, shard_size

    @classmethod
    def open(cls, path: str, params: dict[str, Any], n: int, shard_size: int,
             columns: list[str], ids: list[str], overwrite: bool = False) -> Store:
        """Reopen the store at ``path`` for the same ``params``, or create it.

        Raises:
            ValueError: ``path`` holds a store of other ``params`` and ``overwrite`` is False, or
                something that is not a store (a file, a folder with other things: never deleted).
        """
        import zarr

        params = _canonical(params)
        p = Path(path)
        if p.exists() and not (p.is_dir() and not any(p.iterdir())):
            if not p.is_dir() or not (p / "zarr.json").is_file() or not (p / "shard_done").is_dir():
                # never deleted, even with overwrite=True: it may be anything of the user's
                raise ValueError(f"out {path!r} exists and is not a pyxai Zarr store; choose another path")
            if overwrite:
                shutil.rmtree(p)
        if p.exists() and any(p.iterdir()):
            group = zarr.open_group(str(p), mode="r+")
            old = group.attrs.get("params")
            if old != params:
                diff = sorted(k for k in set(params) | set(old or {})
                              if (old or {}).get(k) != params.get(k))
                raise ValueError(f"out {path!r} holds a store of a run with other parameters (differing: "
                                 f"{', '.join(diff)}); choose another path or pass overwrite=True")
            return cls(str(p), group, n, shard_size)
        group = zarr.open_group(str(p), mode="w")
        for name in columns:
            dtype, fill = COLUMNS[name]
            group.create_array(name, shape=(n,), chunks=(shard_size,), dtype=dtype, fill_value=fill)
        group.create_array("shard_done", shape=(-(-n // shard_size),), chunks=(1,), dtype="uint8",
                           fill_value=0)
        group["id"][:] = np.array(ids, dtype=object)
        group.attrs["params"] = params
        group.attrs["history"] = []
        return cls(str(p), group, n, shard_size)

    def done(self) -> set[int]:
        """Indices of the finished shards."""
        return set(np.flatnonzero(self.group["shard_done"][:]).tolist())

    def write(self, k: int, result: dict[str, np.ndarray], map_dtype: str) -> None:
        """Write shard ``k``'s arrays, then mark it done."""
        a, b = k * self.shard_size, min(self.n, (k + 1) * self.shard_size)
        if "maps" in result:
            if "maps" not in self.group:
                shape = result["maps"].shape[1:]
                self.group.create_array("maps", shape=(self.n, *shape), chunks=(self.shard_size, *shape),
                                        dtype=map_dtype, fill_value=float("nan"))
            self.group["maps"][a:b] = result["maps"].astype(map_dtype)
        for name, values in result.items():
            if name != "maps" and name in self.group:
                self.group[name][a:b] = values
        self.group["shard_done"][k] = 1

    def log_run(self, entry: dict[str, Any]) -> None:
        """Append one run's summary to the ``history`` attribute."""
        self.group.attrs["history"] = [*self.group.attrs.get("history", []), _canonical(entry)]
