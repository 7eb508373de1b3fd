"""The driver of a dataset run: shards the source, feeds Ray actors, writes the Zarr store.

Each actor (:class:`~pyxai.dataset.worker.ShardWorker`) builds one model + explainer and is given
whole shards; up to ``2 * num_workers`` shards are in flight. An actor that dies is restarted by Ray
and its shard is retried (``max_restarts`` / ``max_task_retries``); a shard is written by the driver
once, when its result arrives, and marked done after its data. A rerun skips the shards marked done.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any, Callable, Sequence

import torch

from pyxai import registry
from pyxai.dataset import sources
from pyxai.dataset.store import Store
from pyxai.dataset.worker import METRICS, Job, ShardWorker

EXTRA_HINT = "pip install 'pyxai-attribution[scale]'"


def require() -> tuple[Any, Any]:
    """``(ray, zarr)``; ImportError naming the ``scale`` extra when either is missing."""
    try:
        import ray
        import zarr
    except ImportError as exc:
        raise ImportError(f"pyxai.dataset needs Ray and Zarr (the 'scale' extra): {EXTRA_HINT} "
                          f"({exc})") from None
    if int(zarr.__version__.split(".")[0]) < 3:
        raise ImportError(f"pyxai.dataset needs zarr>=3, found {zarr.__version__}: {EXTRA_HINT}")
    return ray, zarr


def _model_name(model: Any) -> str:
    if isinstance(model, str):
        return model
    return f"{getattr(model, '__module__', '?')}.{getattr(model, '__qualname__', type(model).__name__)}"


def _check_model(model: Any, weights: str | None) -> None:
    """Errors a spec string would give on every worker, raised once on the driver."""
    if isinstance(model, torch.nn.Module):
        raise TypeError("model must be a spec string or a zero-argument factory, not a live nn.Module "
                        "(each worker builds its own model): pass e.g. 'torchvision:resnet18' or "
                        "lambda: MyNet()")
    if isinstance(model, str):
        if model != "demo" and not model.startswith(("torchvision:", "timm:")):
            raise ValueError(f"unknown model {model!r}: use 'demo', 'torchvision:<name>', "
                             "'timm:<name>' or a zero-argument factory")
    elif not callable(model):
        raise TypeError(f"model must be a spec string or a zero-argument factory, got {type(model).__name__}")
    if weights is not None and not os.path.isfile(weights):
        raise ValueError(f"weights file not found: {weights}")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _per_sample_targets(target: Any, n: int) -> list[int] | None:
    """A sequence / Tensor[N] target as a list of N ints (else None)."""
    if isinstance(target, torch.Tensor) or (isinstance(target, Sequence) and not isinstance(target, str)):
        t = torch.as_tensor(target)
        if t.dim() != 1 or t.numel() != n or t.is_floating_point() or t.dtype == torch.bool:
            raise ValueError(f"a per-sample target must be {n} ints (one per sample of the source), got "
                             f"{t.dtype} of shape {tuple(t.shape)}")
        return t.tolist()
    if target is not None and not isinstance(target, (int, str)) and not callable(target):
        raise TypeError(f"target must be None, an int, 'label', one int per sample or a callable, "
                        f"got {type(target).__name__}")
    if isinstance(target, bool) or (isinstance(target, str) and target != "label"):
        raise ValueError(f"target must be None, an int, 'label', one int per sample or a callable, "
                         f"got {target!r}")
    return None


def _start_ray(ray: Any, address: str | None, num_cpus: int) -> bool:
    """Connect to ``address`` or start a small local Ray (its GPUs detected by Ray); True when this
    call started it."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus, object_store_memory=256 * 2**20, **quiet)
    return True


def attribute(
    source: Any,
    model: str | Callable[[], torch.nn.Module],
    method: str,
    out: str | os.PathLike,
    *,
    target: Any = None,
    metrics: Sequence[str] = (),
    address: str | None = None,
    num_workers: int | None = None,
    gpus_per_worker: float = 0,
    batch_size: int | None = None,
    overwrite: bool = False,
    weights: str | None = None,
    layer: str | None = None,
    shard_size: int = 64,
    cpus_per_worker: int = 1,
    dtype: str = "float32",
    image_size: int | None = None,
    pointing_tolerance: float = 15,
    max_retries: int = 3,
    show_progress: bool = True,
    **method_kwargs: Any,
) -> str:
    """Explain every sample of a data set on Ray actors into a resumable Zarr store.

    Args:
        source: a folder (its image files, recursively) or a glob of images, a torchvision-style
            map-style ``Dataset`` (items ``image``, ``(image, label)`` or ``(image, label, mask)``,
            image a float Tensor[C, H, W]), or a Ray ``Dataset`` with an ``image`` column (and
            optional ``label``, ``mask``, ``id``).
        model: ``"demo"``, ``"torchvision:<name>"``, ``"timm:<name>"`` (see ``weights``) or a
            zero-argument factory returning an ``nn.Module``; every worker builds its own model.
        method: a name of :mod:`pyxai.registry` (``"gradcam"``, ``"rise"``, ...).
        out: path of the Zarr store (see :mod:`pyxai.dataset.store` for its layout).
        target: None (the predicted class), an int, ``"label"`` (the source's labels), one int per
            sample (sequence or Tensor[N]) or a callable target. Default: None
        metrics: any of ``"deletion"``, ``"insertion"`` (softmax probability of the target, RISE
            protocol) and ``"pointing_game"`` (needs masks in the source). Default: ()
        address: a Ray cluster to connect to; None starts a local Ray (or uses the one this
            process already started). Default: None
        num_workers: actors; None = the cluster's CPUs / ``cpus_per_worker`` (GPUs /
            ``gpus_per_worker`` when GPUs are asked for). Default: None
        gpus_per_worker: GPUs per actor (fractions share a GPU); > 0 runs the model on CUDA.
            Default: 0
        batch_size: images per explainer call (batches never cross shards); None = 16.
            Default: None
        overwrite: replace a store at ``out`` made with other parameters. Default: False
        weights: state_dict file for a spec or factory model. Default: None
        layer: dotted name of the target layer for CAM methods (None: the last module with a
            4-D/5-D output). Default: None
        shard_size: samples per shard (the unit of work, of resumption and of Zarr chunks).
            Default: 64
        cpus_per_worker: CPUs (and torch threads) per actor. Default: 1
        dtype: ``"float32"`` or ``"float16"`` maps. Default: "float32"
        image_size: files are resized to image_size x image_size (None: the first image's size).
            Default: None
        pointing_tolerance: pixels, for ``"pointing_game"``. Default: 15
        max_retries: restarts of a dead actor and retries of its shard. Default: 3
        show_progress: a tqdm bar (samples/s). Default: True
        **method_kwargs: constructor keywords of the method (``n_masks=4000``...).

    Returns:
        str: ``out``.

    Raises:
        ImportError: Ray or Zarr missing (the ``scale`` extra).
        ValueError / TypeError: bad arguments, an empty source, a store of other parameters at
            ``out``, a model that cannot be built on a worker.

    Examples::

        >>> import pyxai.dataset, zarr
        >>> pyxai.dataset.attribute("val/", "torchvision:resnet50", "gradcam", "maps.zarr",
        ...                         weights="resnet50.pth", image_size=224, metrics=["deletion"])
        >>> zarr.open_group("maps.zarr")["maps"]            # Array [N, 1, 224, 224]
    """
    ray, _ = require()
    meth = registry.get(method)
    _check_model(model, weights)
    metrics = tuple(metrics)
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r}; available: {', '.join(METRICS)}")
    if callable(target) and any(m != "pointing_game" for m in metrics):
        raise ValueError("metrics deletion/insertion need class targets, not a callable target")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    shard_size = _check_int(shard_size, "shard_size", 1)
    batch_size = _check_int(16 if batch_size is None else batch_size, "batch_size", 1)
    cpus_per_worker = _check_int(cpus_per_worker, "cpus_per_worker", 1)
    max_retries = _check_int(max_retries, "max_retries", 0)
    if num_workers is not None:
        num_workers = _check_int(num_workers, "num_workers", 1)
    if isinstance(gpus_per_worker, bool) or not isinstance(gpus_per_worker, (int, float)) or \
            gpus_per_worker < 0:
        raise ValueError(f"gpus_per_worker must be a number >= 0, got {gpus_per_worker!r}")
    if layer is not None and not isinstance(layer, str):
        raise TypeError("layer must be the dotted name of a module (e.g. 'layer4'), as workers build "
                        "their own models")
    if image_size is not None:
        _check_int(image_size, "image_size", 1)

    src = sources.as_source(source, image_size)
    given = _per_sample_targets(target, src.n)
    if target == "label" and not src.has_labels:
        raise ValueError("target='label' but the source has no labels")
    if "pointing_game" in metrics and not src.has_masks:
        raise ValueError("metric 'pointing_game' needs masks in the source (items (image, label, mask))")

    params = {
        "source": src.describe(), "model": _model_name(model), "weights": weights, "method": method,
        "method_kwargs": method_kwargs, "layer": layer if meth.needs_layer else None,
        "target": "per-sample" if given is not None else (
            _model_name(target) if callable(target) else target),
        "target_values": given, "metrics": list(metrics), "dtype": dtype, "shard_size": shard_size,
        "batch_size": batch_size, "image_size": image_size,
        "pointing_tolerance": pointing_tolerance if "pointing_game" in metrics else None,
    }
    columns = ["target", "score", "ok", "error", "id", *metrics]
    if src.has_labels:
        columns.append("label")
    store = Store.open(os.fspath(out), params, src.n, shard_size, columns, src.ids, overwrite)
    n_shards = sources.shard_count(src.n, shard_size)
    todo = set(range(n_shards)) - store.done()
    job = Job(model=model, weights=weights, method=method, method_kwargs=method_kwargs, layer=layer,
              target=None if given is not None else target, metrics=metrics,
              pointing_tolerance=pointing_tolerance, batch_size=batch_size, threads=cpus_per_worker,
              device="cuda" if gpus_per_worker > 0 else "cpu")

    t0 = time.perf_counter()
    computed, startup, dt = 0, 0.0, 0.0
    if todo:
        want = num_workers or max(1, (os.cpu_count() or 1) // cpus_per_worker)
        started = _start_ray(ray, address, num_cpus=want * cpus_per_worker)
        try:
            init = time.perf_counter() - t0
            computed, startup = _run(ray, src, store, job, todo, given, num_workers, cpus_per_worker,
                                     gpus_per_worker, max_retries, dtype, show_progress)
            startup += init
            dt = time.perf_counter() - t0  # Ray's shutdown not included
        finally:
            if started:
                ray.shutdown()
    samples = sum(min(src.n, (k + 1) * shard_size) - k * shard_size for k in todo)
    store.log_run({"skipped_shards": n_shards - len(todo), "computed_shards": computed,
                   "samples": samples, "seconds": round(dt, 3), "startup_seconds": round(startup, 3),
                   "samples_per_s": round(samples / dt, 2) if dt > 0 else None,
                   "num_workers": num_workers, "cpus_per_worker": cpus_per_worker,
                   "gpus_per_worker": gpus_per_worker})
    _report_errors(store)
    return os.fspath(out)


def _run(ray: Any, src: sources.Source, store: Store, job: Job, todo: set[int],
         given: list[int] | None, num_workers: int | None, cpus_per_worker: int,
         gpus_per_worker: float, max_retries: int, dtype: str, show_progress: bool
         ) -> tuple[int, float]:
    """Start the actors and stream the shards of ``todo`` through them.

    Returns:
        (shards written, seconds until every actor had built its model: Ray and actor start-up)
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    res = ray.cluster_resources()
    fit = int(res.get("CPU", 0) // cpus_per_worker)
    if gpus_per_worker > 0:
        fit = min(fit, int(res.get("GPU", 0) // gpus_per_worker))
    if num_workers is None:
        num_workers = max(1, min(fit, len(todo)))
    if num_workers > fit:  # the actors would wait for resources forever
        raise ValueError(f"num_workers={num_workers} actors of {cpus_per_worker} CPU(s) and "
                         f"{gpus_per_worker} GPU(s) do not fit the Ray cluster ({res.get('CPU', 0):g} CPUs, "
                         f"{res.get('GPU', 0):g} GPUs): lower num_workers / cpus_per_worker / "
                         "gpus_per_worker")
    actor_cls = ray.remote(ShardWorker).options(
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=max_retries,
        max_task_retries=max_retries)
    state = [ray.put(src.worker_state)] if src.worker_state is not None else None
    actors = [actor_cls.remote(job) for _ in range(num_workers)]
    try:
        ray.get([a.ready.remote() for a in actors])
    except ray.exceptions.RayActorError as exc:
        raise ValueError(f"the model could not be built on a worker: {_cause(exc)}") from None
    startup = time.perf_counter() - t0

    shard_size = store.shard_size
    bar = tqdm(total=sum(min(src.n, (k + 1) * shard_size) - k * shard_size for k in todo),
               unit="img", desc="explain-dataset", disable=not show_progress, file=sys.stderr)
    payloads = src.payloads(shard_size, todo)
    pending: dict[Any, tuple[int, Any]] = {}
    free = list(actors) * 2  # two shards in flight per actor: one computing, one queued
    written = 0
    try:
        while True:
            while free:
                nxt = next(payloads, None)
                if nxt is None:
                    break
                k, payload = nxt
                actor = free.pop(0)
                targets = given[k * shard_size:(k + 1) * shard_size] if given is not None else None
                pending[actor.run.remote(payload, targets, state)] = (k, actor)
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            k, actor = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                raise ValueError(f"shard {k} failed on a worker: {_cause(exc)}") from None
            except ray.exceptions.RayActorError as exc:
                raise RuntimeError(f"shard {k}: its worker died more than max_retries times: "
                                   f"{_cause(exc)}") from None
            store.write(k, result, dtype)
            written += 1
            bar.update(len(result["ok"]))
            free.append(actor)
    finally:
        bar.close()
        for a in actors:
            ray.kill(a, no_restart=True)
    return written, startup


def _cause(exc: BaseException) -> str:
    """The worker-side error of a Ray exception, one line."""
    cause = getattr(exc, "cause", None) or getattr(exc, "error_msg", None) or exc
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(exc).__name__


def _report_errors(store: Store) -> None:
    """Warn once, naming the samples that could not be read (they are recorded in ``error``)."""
    err = store.group["error"][:]
    bad = [str(e) for e in err if e]
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        warnings.warn(f"{len(bad)} sample(s) could not be read and are recorded in the store's 'error' "
                      f"array: {'; '.join(bad[:3])}{more}", stacklevel=3)
