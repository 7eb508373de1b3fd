"""One worker: a model and an explainer of its own, turning whole shards into results.

:class:`ShardWorker` is a plain class; the driver makes it a Ray actor (``ray.remote(ShardWorker)``),
so each actor builds its own model from the spec or factory (a live model is never pickled) and keeps
it for all the shards it is given. It holds no state that changes between shards, so a restarted
actor recomputes a shard exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pyxai import registry
from pyxai.dataset import sources
from pyxai.models.spec import ModelSpec, build_model, last_feature_layer

#: metric names :func:`pyxai.dataset.attribute` accepts
METRICS = ("deletion", "insertion", "pointing_game")


@dataclass(frozen=True)
class Job:
    """What every worker of a run computes (plain data: it is pickled to the workers).

    Attributes:
        model: spec string or zero-argument factory; ``weights`` an optional state_dict file.
        method: registry name; ``method_kwargs`` its constructor keywords.
        layer: dotted module name of the target layer for CAM-like methods (None: the last
            module with a 4-D/5-D output).
        target: None (predicted class), an int, ``"label"`` (the source's labels), or a callable
            target of :mod:`pyxai.engine.targets`; per-sample targets come with each shard.
        metrics: names of :data:`METRICS`; ``pointing_tolerance`` in pixels.
        batch_size: images per explainer call (batches never cross shards).
        threads: torch intra-op threads of the worker.
    """

    model: ModelSpec
    weights: str | None
    method: str
    method_kwargs: dict[str, Any]
    layer: str | None
    target: Any
    metrics: tuple[str, ...]
    pointing_tolerance: float
    batch_size: int
    threads: int
    device: str = "cpu"


class ShardWorker:
    """Holds one model + explainer; :meth:`run` computes one shard.

    Args:
        job: the run's :class:`Job`.
    """

    def __init__(self, job: Job) -> None:
        torch.set_num_threads(max(1, job.threads))
        self.job = job
        self._state: tuple[str, Any] = ("", None)
        self.model = build_model(job.model, job.weights).to(job.device)
        self.method = registry.get(job.method)
        self._explain = None

    def _source_state(self, state: Any) -> Any:
        """The source's worker state: ``[ObjectRef]`` is fetched once per reference and kept."""
        if not isinstance(state, list):
            return state
        key = state[0].hex()
        if self._state[0] != key:
            import ray

            self._state = (key, ray.get(state[0]))
        return self._state[1]

    def ready(self) -> bool:
        """True once the model is built (the driver calls it to surface construction errors)."""
        return True

    def _explainer(self, x: torch.Tensor) -> Any:
        if self._explain is None:
            layer = None
            if self.method.needs_layer:
                layer = (self.model.get_submodule(self.job.layer) if self.job.layer
                         else last_feature_layer(self.model, x))
            self._explain = self.method.build(self.model, layer, **self.job.method_kwargs)
        return self._explain

    def _targets(self, out: torch.Tensor, labels: torch.Tensor | None, given: torch.Tensor | None
                 ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(target for the explainer, Tensor[b] class or -1, Tensor[b] score) of one batch."""
        from pyxai.engine.targets import resolve_target

        t = self.job.target
        if given is not None:
            t = given
        elif isinstance(t, str):  # "label"
            if labels is None or bool((labels < 0).any()):
                raise ValueError("target='label' needs a label for every sample of the source")
            t = labels
        elif t is None:
            t = out.argmax(1)
        resolved = resolve_target(t, out)
        score = resolved(out).detach().float()
        classes = resolved.classes
        if classes is None:
            return t, torch.full((out.shape[0],), -1, dtype=torch.int64), score
        return classes, classes, score

    def run(self, payload: Any, given_targets: list[int] | None = None, source_state: Any = None
            ) -> dict[str, np.ndarray]:
        """Compute one shard.

        Args:
            payload: the shard's payload (:mod:`pyxai.dataset.sources`).
            given_targets: per-sample target classes of the shard (one per sample), or None.
            source_state: what the source hands workers (a map-style dataset), or ``[ObjectRef]``,
                a one-item list of its Ray reference (fetched on first use), or None.

        Returns:
            dict of NumPy arrays over the shard's n samples: ``maps`` Tensor[n, *map] float32 (NaN
            for unreadable samples), ``target`` int64 (-1: none), ``score`` float32, ``ok`` bool,
            ``error`` str, ``label`` int64 when the source has labels, and each requested metric.
        """
        s = sources.load(payload, self._source_state(source_state))
        n, dev = len(s.errors), self.job.device
        okx = torch.nonzero(s.ok).flatten()
        given = torch.tensor(given_targets, dtype=torch.int64)[okx] if given_targets is not None else None
        maps, targets, scores = [], [], []
        mets: dict[str, list[torch.Tensor]] = {m: [] for m in self.job.metrics}
        bs = self.job.batch_size
        for i in range(0, len(okx), bs):
            x = s.images[i:i + bs].to(dev)
            labels = s.labels[i:i + bs] if s.labels is not None else None
            with torch.no_grad():
                out = self.model(x)
            tgt, cls, score = self._targets(out, labels, given[i:i + bs] if given is not None else None)
            a = self._explainer(x)(x, tgt).detach()
            maps.append(a.float().cpu())
            targets.append(cls.cpu())
            scores.append(score.cpu())
            for name in self.job.metrics:
                mask = s.masks[i:i + bs] if s.masks is not None else None
                mets[name].append(self._metric(name, x, a, cls, mask).cpu())
        result: dict[str, np.ndarray] = {
            "ok": s.ok.numpy(),
            "error": np.array(s.errors, dtype=object),
            "target": _scatter(targets, okx, n, -1, torch.int64),
            "score": _scatter(scores, okx, n, float("nan"), torch.float32),
        }
        if maps:
            result["maps"] = _scatter(maps, okx, n, float("nan"), torch.float32)
        if s.labels is not None:
            result["label"] = _scatter([s.labels], okx, n, -1, torch.int64)
        for name, vals in mets.items():
            fill = False if name == "pointing_game" else float("nan")
            dtype = torch.bool if name == "pointing_game" else torch.float32
            result[name] = _scatter(vals, okx, n, fill, dtype)
        return result

    def _metric(self, name: str, x: torch.Tensor, a: torch.Tensor, cls: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        """One metric of one batch: Tensor[b]."""
        from pyxai import metrics

        heat = _heat_map(a, x.shape[-2:])
        if name == "pointing_game":
            if mask is None:
                raise ValueError("metric 'pointing_game' needs masks in the source")
            return metrics.pointing_game(heat, mask.to(x.device), tolerance=self.job.pointing_tolerance,
                                         on_empty="miss")

        def probs(z: torch.Tensor) -> torch.Tensor:
            return self.model(z).softmax(1)

        fn = metrics.deletion if name == "deletion" else metrics.insertion
        return fn(probs, x, heat, target=cls)


def _heat_map(a: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Tensor[b, 1, H, W] saliency for metrics: the first area of 5-D maps (extremal), channels
    summed, resized bilinearly to the image when the map is smaller (raw Sobol indices)."""
    if a.dim() == 5:
        a = a[:, 0]
    a = a.float().sum(1, keepdim=True)
    if a.shape[-2:] != size:
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    return a


def _scatter(parts: list[torch.Tensor], rows: torch.Tensor, n: int, fill: float | bool,
             dtype: torch.dtype) -> np.ndarray:
    """Concatenate per-batch results of the readable rows into an array over all n samples."""
    if parts:
        vals = torch.cat(parts).to(dtype)
        full = torch.full((n, *vals.shape[1:]), fill, dtype=dtype)
        full[rows] = vals
    else:
        full = torch.full((n,), fill, dtype=dtype)
    return full.numpy()
