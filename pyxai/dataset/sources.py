"""Where the samples come from: image files, a torchvision-style ``Dataset``, a Ray ``Dataset``.

A :class:`Source` lives on the driver. It numbers its samples ``0 .. n-1`` (a fixed order, so a
rerun cuts the same shards), names them (``ids``), and makes for each shard a small *payload*
that a worker turns into :class:`Samples` with :func:`load`:

* files: the shard's paths (each worker reads its own images);
* a ``Dataset``: ``("dataset", start, stop)``, the dataset itself is handed to each worker once;
* a Ray ``Dataset``: the shard's rows (read in order on the driver, shipped by Ray's object store).

A sample that cannot be read is not an error of the run: its message is kept in
``Samples.errors`` and the shard goes on without it.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


@dataclass
class Samples:
    """The readable samples of one shard.

    Attributes:
        images: Tensor[m, C, H, W] float32, the m readable samples in shard order.
        ok: Tensor[n] bool, which of the shard's n samples were read (m of them).
        errors: n strings, "" for a readable sample, else why it could not be read.
        labels: Tensor[m] int64 (-1 where unknown), or None when the source has no labels.
        masks: Tensor[m, 1, H, W] bool ground-truth regions, or None.
    """

    images: torch.Tensor
    ok: torch.Tensor
    errors: list[str]
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None


@dataclass
class Source:
    """Base: ``n`` samples named ``ids``; subclasses make payloads and describe themselves."""

    ids: list[str]
    has_labels: bool = False
    has_masks: bool = False
    kind: str = ""
    worker_state: Any = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.ids)

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of the source (kind, size, a hash of the ids) for the store's params."""
        digest = hashlib.sha256("\n".join(self.ids).encode()).hexdigest()[:16]
        return {"kind": self.kind, "n": self.n, "ids_sha256": digest}

    def payloads(self, shard_size: int, wanted: set[int]) -> Iterator[tuple[int, Any]]:
        """``(shard index, payload)`` for the shards in ``wanted``, in order."""
        for k in sorted(wanted):
            yield k, self.payload(k * shard_size, min(self.n, (k + 1) * shard_size))

    def payload(self, start: int, stop: int) -> Any:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------
# image files


def _read_image(path: str, size: tuple[int, int] | None) -> torch.Tensor:
    """Tensor[3, H, W] float32 in [0, 1]; resized bilinearly (PIL) to ``size`` = (H, W) if given."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        if size is not None and (img.height, img.width) != size:
            img = img.resize((size[1], size[0]), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255


@dataclass
class FileSource(Source):
    """Image files; every image is read as RGB in [0, 1] and resized to ``size`` (H, W)."""

    size: tuple[int, int] | None = None

    def payload(self, start: int, stop: int) -> Any:
        return ("files", self.ids[start:stop], self.size)


def files_source(spec: str, image_size: int | None) -> FileSource:
    """A :class:`FileSource` from a folder (its image files, recursively, sorted) or a glob."""
    p = Path(spec)
    if p.is_dir():
        paths = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    elif any(c in spec for c in "*?["):
        paths = sorted(f for f in glob.glob(spec, recursive=True) if os.path.isfile(f))
    elif p.is_file():
        paths = [spec]
    else:
        raise ValueError(f"source {spec!r} is neither a folder, a glob nor an image file")
    if not paths:
        raise ValueError(f"source {spec!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    if image_size is not None:
        size: tuple[int, int] | None = (image_size, image_size)
    else:  # the size of the first readable image
        size = None
        for path in paths:
            try:
                size = tuple(_read_image(path, None).shape[1:])  # type: ignore[assignment]
                break
            except OSError:
                continue
        if size is None:
            raise ValueError(f"source {spec!r}: none of its {len(paths)} files is a readable image")
    return FileSource(ids=paths, kind="files", size=size)


# ------------------------------------------------------------------------------------------------
# torchvision-style datasets


def _split_item(item: Any) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """``image`` | ``(image, label)`` | ``(image, label, mask)`` -> (Tensor[C, H, W], label, mask)."""
    if isinstance(item, (tuple, list)):
        if not 1 <= len(item) <= 3:
            raise ValueError(f"a dataset item must be image, (image, label) or (image, label, mask); "
                             f"got a {len(item)}-tuple")
        image = item[0]
        label = int(item[1]) if len(item) > 1 and item[1] is not None else -1
        mask = torch.as_tensor(item[2]) if len(item) > 2 else None
    else:
        image, label, mask = item, -1, None
    image = torch.as_tensor(image)
    if image.dim() != 3 or not image.is_floating_point():
        raise ValueError(f"a dataset image must be a float Tensor[C, H, W], got "
                         f"{image.dtype} of shape {tuple(image.shape)}")
    return image.float(), label, mask


class ShapesDataset(torch.utils.data.Dataset):
    """:func:`pyxai.data.shapes` as a torchvision-style Dataset of ``(image, label, mask)``.

    It pickles as ``(n, seed, size)`` and renders on first use, so each worker renders its own copy
    instead of receiving the images.
    """

    def __init__(self, n: int, seed: int = 0, size: int = 64) -> None:
        self.n, self.seed, self.size = n, seed, size
        self._data: tuple[torch.Tensor, ...] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"n": self.n, "seed": self.seed, "size": self.size, "_data": None}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        if self._data is None:
            from pyxai.data import shapes

            self._data = shapes(self.n, seed=self.seed, size=self.size)
        x, y, m = self._data
        return x[i], int(y[i]), m[i]


@dataclass
class DatasetSource(Source):
    """A map-style dataset (``len`` and ``ds[i]``); workers receive it once and index it."""

    def payload(self, start: int, stop: int) -> Any:
        return ("dataset", start, stop)


def dataset_source(ds: Any) -> DatasetSource:
    """A :class:`DatasetSource`; item 0 is read on the driver to learn about labels and masks."""
    n = len(ds)
    if n == 0:
        raise ValueError("source is an empty dataset")
    _, label, mask = _split_item(ds[0])
    name = f"dataset:{type(ds).__module__}.{type(ds).__qualname__}"
    if isinstance(ds, ShapesDataset):
        name += f"(n={ds.n}, seed={ds.seed}, size={ds.size})"
    return DatasetSource(ids=[str(i) for i in range(n)], kind=name, has_labels=label >= 0,
                         has_masks=mask is not None, worker_state=ds)


# ------------------------------------------------------------------------------------------------
# Ray datasets


@dataclass
class RayDatasetSource(Source):
    """A Ray ``Dataset`` with an ``image`` column (float Tensor[C, H, W] or uint8 [H, W, C]) and
    optional ``label``, ``mask`` and ``id`` columns, read in order on the driver."""

    dataset: Any = field(default=None, repr=False)

    def payloads(self, shard_size: int, wanted: set[int]) -> Iterator[tuple[int, Any]]:
        if not wanted:
            return
        last = max(wanted)
        for k, batch in enumerate(self.dataset.iter_batches(batch_size=shard_size, batch_format="numpy")):
            if k in wanted:
                yield k, ("rows", {c: batch[c] for c in batch if c in ("image", "label", "mask")})
            if k >= last:
                break


def ray_dataset_source(ds: Any) -> RayDatasetSource:
    """A :class:`RayDatasetSource` (ids: the ``id`` column, else the row numbers); sets the
    dataset's ``preserve_order`` execution option."""
    # a fixed row order, so that a rerun cuts the same shards (the dataset's own context: it was
    # captured when the dataset was made)
    ds.context.execution_options.preserve_order = True
    cols = ds.columns()
    if "image" not in cols:
        raise ValueError(f"a Ray Dataset source needs an 'image' column; it has {cols}")
    if "id" in cols:
        ids = [str(v) for v in ds.select_columns(["id"]).to_pandas()["id"]]
    else:
        ids = [str(i) for i in range(ds.count())]
    if not ids:
        raise ValueError("source is an empty Ray Dataset")
    return RayDatasetSource(ids=ids, kind="ray_dataset", has_labels="label" in cols,
                            has_masks="mask" in cols, dataset=ds)


def _ray_image(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.dtype == torch.uint8 and t.dim() == 3 and t.shape[-1] in (1, 3, 4):
        return t.permute(2, 0, 1).float() / 255
    return _split_item(t)[0]


# ------------------------------------------------------------------------------------------------


def as_source(source: Any, image_size: int | None = None) -> Source:
    """The :class:`Source` for a folder / glob / file path, a map-style Dataset or a Ray Dataset.

    Raises:
        ValueError: an empty source, a path that matches nothing.
        TypeError: anything else.
    """
    if isinstance(source, (str, os.PathLike)):
        return files_source(os.fspath(source), image_size)
    if type(source).__module__.startswith("ray.data"):
        return ray_dataset_source(source)
    if hasattr(source, "__getitem__") and hasattr(source, "__len__"):
        return dataset_source(source)
    raise TypeError("source must be a folder or glob of images, a torchvision-style Dataset or a Ray "
                    f"Dataset, got {type(source).__name__}")


def load(payload: Any, worker_state: Any = None) -> Samples:
    """Read one shard's payload into :class:`Samples` (on a worker)."""
    kind = payload[0]
    images: list[torch.Tensor] = []
    labels: list[int] = []
    masks: list[torch.Tensor] = []
    errors: list[str] = []
    if kind == "files":
        _, paths, size = payload
        for path in paths:
            try:
                images.append(_read_image(path, size))
                errors.append("")
            except Exception as exc:  # noqa: BLE001 - any unreadable file is recorded, the run goes on
                errors.append(f"cannot read image {path}: {type(exc).__name__}: {exc}")
    elif kind == "dataset":
        _, start, stop = payload
        for i in range(start, stop):
            try:
                image, label, mask = _split_item(worker_state[i])
            except Exception as exc:  # noqa: BLE001 - recorded per sample
                errors.append(f"cannot read sample {i}: {type(exc).__name__}: {exc}")
                continue
            images.append(image)
            labels.append(label)
            if mask is not None:
                masks.append(mask.reshape(1, *mask.shape[-2:]).bool())
            errors.append("")
    elif kind == "rows":
        rows = payload[1]
        for j in range(len(rows["image"])):
            images.append(_ray_image(rows["image"][j]))
            labels.append(int(rows["label"][j]) if "label" in rows else -1)
            if "mask" in rows:
                m = torch.from_numpy(np.asarray(rows["mask"][j]))
                masks.append(m.reshape(1, *m.shape[-2:]).bool())
            errors.append("")
    else:
        raise ValueError(f"unknown shard payload {kind!r}")
    ok = torch.tensor([not e for e in errors], dtype=torch.bool)
    if images and any(im.shape != images[0].shape for im in images):
        raise ValueError(f"the images of a shard differ in shape: "
                         f"{sorted({tuple(im.shape) for im in images})}; pass image_size=...")
    return Samples(
        images=torch.stack(images) if images else torch.empty(0),
        ok=ok, errors=errors,
        labels=torch.tensor(labels, dtype=torch.int64) if labels else None,
        masks=torch.stack(masks) if masks and len(masks) == len(images) else None,
    )


def shard_count(n: int, shard_size: int) -> int:
    """Number of shards of ``shard_size`` samples (the last may be shorter)."""
    return -(-n // shard_size)

