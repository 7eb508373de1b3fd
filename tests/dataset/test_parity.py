"""Stored maps equal a plain single-process loop over the same samples, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai.models import demo_cnn
from tests.dataset._loop import one_thread, plain_loop

zarr = pytest.importorskip("zarr")
pytest.importorskip("ray")

import pyxai.dataset  # noqa: E402
import pyxai.registry  # noqa: E402


@pytest.mark.parametrize("method,kwargs,workers",
                         [("gradcam", {}, 2), ("rise", {"n_masks": 16, "seed": 3}, 1)])
def test_maps_equal_plain_loop(ray_address, tmp_path, rng, method, kwargs, workers):
    n, shard, batch = 21, 8, 4  # a short last shard
    images = torch.rand(n, 3, 64, 64, generator=rng)
    labels = torch.randint(0, 6, (n,), generator=rng)
    ds = torch.utils.data.TensorDataset(images, labels)
    out = pyxai.dataset.attribute(ds, "demo", method, tmp_path / "m.zarr", num_workers=workers,
                                  shard_size=shard, batch_size=batch, layer="layer3", show_progress=False,
                                  **kwargs)
    g = zarr.open_group(out, mode="r")
    maps, target, score = plain_loop(demo_cnn(), method, images, batch, layer="layer3", **kwargs)
    assert torch.equal(torch.from_numpy(g["maps"][:]), maps)
    assert torch.equal(torch.from_numpy(g["target"][:]), target)
    assert torch.equal(torch.from_numpy(g["score"][:]), score)
    assert g["id"][:].tolist() == [str(i) for i in range(n)]
    assert g["label"][:].tolist() == labels.tolist()
    assert g["ok"][:].all() and g["shard_done"][:].tolist() == [1, 1, 1]
    params = g.attrs["params"]
    assert params["method"] == method and params["method_kwargs"] == kwargs


def test_files_metrics_and_float16(ray_address, tmp_path):
    """A folder of PNGs (the demo shapes, with their masks), maps stored as float16, metrics."""
    from PIL import Image

    from pyxai import metrics
    from pyxai.data import shapes

    x, _, masks = shapes(10, seed=7)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(x):
        arr = (img.permute(1, 2, 0) * 255).round().byte().numpy()
        Image.fromarray(arr).save(folder / f"{i:03d}.png")
    out = pyxai.dataset.attribute(str(folder), "demo", "saliency", tmp_path / "f.zarr", num_workers=1,
                                  shard_size=4, batch_size=4, dtype="float16",
                                  metrics=["deletion", "insertion"], show_progress=False)
    g = zarr.open_group(out, mode="r")
    files = sorted(str(p) for p in folder.iterdir())
    assert g["id"][:].tolist() == files
    read = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
                        for f in files]).float() / 255
    model = demo_cnn()
    maps, target, _ = plain_loop(model, "saliency", read, 4)
    assert g["maps"].dtype == np.float16
    assert torch.equal(torch.from_numpy(g["maps"][:]), maps.half())

    def probs(z):
        return model(z).softmax(1)

    for name, fn in [("deletion", metrics.deletion), ("insertion", metrics.insertion)]:
        with one_thread():
            want = torch.cat([fn(probs, read[i:i + 4], maps[i:i + 4], target=target[i:i + 4])
                              for i in range(0, 10, 4)])
        assert torch.allclose(torch.from_numpy(g[name][:]), want, atol=1e-6), name
    assert "pointing_game" not in g and masks.shape[0] == 10


def test_ray_dataset_source_with_label_targets(ray_address, tmp_path, rng):
    """A Ray Dataset (image, label, id columns), explained for its labels (target='label')."""
    import ray

    n = 10
    images = torch.rand(n, 3, 64, 64, generator=rng)
    labels = torch.randint(0, 6, (n,), generator=rng)
    rows = [{"image": images[i].numpy(), "label": int(labels[i]), "id": f"s{i}"} for i in range(n)]
    out = pyxai.dataset.attribute(ray.data.from_items(rows), "demo", "inputxgradient", tmp_path / "r.zarr",
                                  target="label", num_workers=1, shard_size=4, batch_size=4,
                                  show_progress=False)
    g = zarr.open_group(out, mode="r")
    assert g["id"][:].tolist() == [f"s{i}" for i in range(n)]
    assert g["target"][:].tolist() == labels.tolist()
    explain = pyxai.registry.build("inputxgradient", demo_cnn())
    with one_thread():
        want = torch.cat([explain(images[i:i + 4], labels[i:i + 4]) for i in range(0, n, 4)])
    assert torch.equal(torch.from_numpy(g["maps"][:]), want)

