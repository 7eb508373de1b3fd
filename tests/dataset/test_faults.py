"""A killed worker is retried; a killed driver's run resumes; both equal an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from pyxai.data import shapes
from pyxai.models import demo_cnn
from tests.dataset._loop import plain_loop
from tests.dataset._models import Factory

zarr = pytest.importorskip("zarr")
pytest.importorskip("ray")

import pyxai.dataset  # noqa: E402


def test_killed_worker_is_retried(ray_address, tmp_path, rng):
    """(with per-sample targets)"""
    n = 24
    images = torch.rand(n, 3, 64, 64, generator=rng)
    targets = torch.randint(0, 6, (n,), generator=rng)
    flag = tmp_path / "die-once"
    flag.touch()  # the first forward anywhere deletes it and kills its worker process
    out = pyxai.dataset.attribute(torch.utils.data.TensorDataset(images), Factory(str(flag)), "saliency",
                                  tmp_path / "k.zarr", target=targets, num_workers=2, shard_size=8,
                                  batch_size=4, show_progress=False)
    assert not flag.exists()  # a worker did die
    g = zarr.open_group(out, mode="r")
    maps, target, score = plain_loop(demo_cnn(), "saliency", images, 4, targets=targets)
    assert torch.equal(torch.from_numpy(g["maps"][:]), maps)  # every sample, once, right
    assert torch.equal(torch.from_numpy(g["target"][:]), targets)
    assert torch.equal(torch.from_numpy(g["score"][:]), score)
    assert g["shard_done"][:].tolist() == [1, 1, 1]
    assert g.attrs["history"][-1]["computed_shards"] == 3  # each shard written once


_DRIVER = """
import sys
import pyxai.dataset
from tests.dataset._models import Factory
pyxai.dataset.attribute(pyxai.dataset.ShapesDataset(48, seed=5), Factory(delay=0.25), "saliency",
                        sys.argv[1], address=sys.argv[2], num_workers=1, shard_size=8, batch_size=8,
                        show_progress=False)
"""


def test_killed_driver_resumes(ray_address, tmp_path):
    out = str(tmp_path / "d.zarr")
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, out, ray_address], env=os.environ.copy())
    done = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(os.path.join(out, "shard_done", "zarr.json")):
                done = int(zarr.open_group(out, mode="r")["shard_done"][:].sum())
                if done >= 2:
                    break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 2 <= done < 6, f"the driver was to be killed mid-run, after {done} of 6 shards"
    pyxai.dataset.attribute(pyxai.dataset.ShapesDataset(48, seed=5), Factory(delay=0.25), "saliency", out,
                            num_workers=1, shard_size=8, batch_size=8, show_progress=False)
    g = zarr.open_group(out, mode="r")
    last = g.attrs["history"][-1]
    assert last["skipped_shards"] >= 2 and last["skipped_shards"] + last["computed_shards"] == 6
    images, _, _ = shapes(48, seed=5)
    maps, target, _ = plain_loop(demo_cnn(), "saliency", images, 8)
    assert torch.equal(torch.from_numpy(g["maps"][:]), maps)
    assert torch.equal(torch.from_numpy(g["target"][:]), target)
    assert g["shard_done"][:].all()
