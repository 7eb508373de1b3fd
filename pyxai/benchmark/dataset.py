"""Dataset runner benchmark: Ray actors vs the plain single-process loop at the same total threads.

Workload: ``n`` images of the demo shapes set (512), the demo CNN, Grad-CAM on ``layer3``, 16
images per explainer call, shards of 64, CPU. Rows:

* ``pyxai`` — :func:`pyxai.dataset.attribute` with 2 workers of 1 CPU/thread each;
* ``1 worker`` — one worker with 2 CPUs/threads;
* ``in-process worker`` — the shards through :class:`~pyxai.dataset.worker.ShardWorker` in this
  process, 2 threads, no Ray (the runner's own overhead: shard loading, result assembly);
* ``plain loop`` — the same batches explained in this process on 2 threads (the reference: parity
  is checked against it);
* ``floor`` — the model's forward + backward over the same batches on 2 threads (what Grad-CAM
  cannot avoid).

A dataset run's time includes Ray's start-up and the actors' model builds (one local Ray is
started once for the whole case, outside the timings); the notes give the runs' samples/s with and
without that start-up, read from the store's ``history``. ``quick=True``: 64 images and no Ray rows
(starting Ray and its actors alone takes seconds).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from pyxai.benchmark.core import Case, demo_model, register

_BATCH, _SHARD, _LAYER = 16, 64, "layer3"


def _plain_loop(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    from pyxai import registry

    explain = registry.build("gradcam", model, model.get_submodule(_LAYER))
    maps = []
    for i in range(0, len(x), _BATCH):
        b = x[i:i + _BATCH]
        with torch.no_grad():
            t = model(b).argmax(1)
        maps.append(explain(b, t))
    return torch.cat(maps)


def _floor(model: torch.nn.Module, x: torch.Tensor) -> None:
    for i in range(0, len(x), _BATCH):
        b = x[i:i + _BATCH].clone().requires_grad_(True)
        model(b).max(1).values.sum().backward()


def _two_threads(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            return fn()
        finally:
            torch.set_num_threads(threads)
    return run


@register("dataset")
def cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    if device != "cpu":
        return []
    import pyxai.dataset
    from pyxai.data import shapes
    from pyxai.dataset.worker import Job, ShardWorker

    n = 64 if quick else 512
    ds = pyxai.dataset.ShapesDataset(n, seed=0)
    x = shapes(n, seed=0)[0]
    model = demo_model()
    job = Job(model="demo", weights=None, method="gradcam", method_kwargs={}, layer=_LAYER, target=None,
              metrics=(), pointing_tolerance=15, batch_size=_BATCH, threads=2)
    worker = ShardWorker(job)

    def in_process() -> torch.Tensor:
        return torch.cat([torch.from_numpy(worker.run(("dataset", a, min(n, a + _SHARD)), None, ds)["maps"])
                          for a in range(0, n, _SHARD)])

    impls: dict[str, Callable[[], Any]] = {
        "in-process worker": _two_threads(in_process),
        "plain loop": _two_threads(lambda: _plain_loop(model, x)),
        "floor": _two_threads(lambda: _floor(model, x)),
    }
    parity = [("in-process worker", "plain loop", 1e-5)]
    name = f"demo CNN gradcam, {n} images 64x64, shards of {_SHARD}, batch {_BATCH}, 2 CPUs"
    notes = "in-process worker, plain loop and floor: this process, 2 threads"
    try:
        import ray
        import zarr
    except ImportError:
        ray = None
    if quick or ray is None:
        return [Case(name=name, impls=impls, parity=parity, notes=notes + "; no Ray rows (quick or "
                     "Ray not installed)")]
    tmp = Path(tempfile.mkdtemp(prefix="pyxai-bench-dataset-"))
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 2**20,
                 log_to_driver=False, configure_logging=False)
    runs: dict[str, list[dict[str, Any]]] = {}

    def ray_run(label: str, workers: int, cpus: int) -> Any:
        def run() -> torch.Tensor:
            out = pyxai.dataset.attribute(ds, "demo", "gradcam", tmp / f"{label}.zarr", num_workers=workers,
                                          cpus_per_worker=cpus, batch_size=_BATCH, shard_size=_SHARD,
                                          layer=_LAYER, overwrite=True, show_progress=False)
            g = zarr.open_group(out, mode="r")
            runs.setdefault(label, []).append(g.attrs["history"][-1])
            return torch.from_numpy(g["maps"][:])
        return run

    def summarize(_: dict[str, Any]) -> str:
        parts = []
        for label, hist in runs.items():
            total = [h["samples"] / h["seconds"] for h in hist]
            steady = [h["samples"] / (h["seconds"] - h["startup_seconds"]) for h in hist
                      if h["seconds"] > h["startup_seconds"]]
            start = sorted(h["startup_seconds"] for h in hist)[len(hist) // 2]
            parts.append(f"{label}: {max(total):.0f} samples/s ({max(steady):.0f} without the "
                         f"{start:.1f} s actor start-up)")
        return "; ".join(parts)

    return [Case(
        name=name,
        impls={"pyxai": ray_run("pyxai", 2, 1), "1 worker": ray_run("1 worker", 1, 2), **impls},
        parity=[("pyxai", "plain loop", 1e-5), ("1 worker", "plain loop", 1e-5), *parity],
        notes="pyxai: 2 Ray actors x 1 thread; 1 worker: 1 actor x 2 threads; " + notes +
              ". Ray times include Ray's actor start-up and each actor's model build",
        summarize=summarize,
    )]
