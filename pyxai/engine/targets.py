"""The one target contract of every explainer, metric and the runner.

A user's ``target`` is one of:

* ``None`` — the model's output itself when it returns one value per sample, else its predicted
  class (argmax of the outputs on the unperturbed inputs);
* ``int`` — the same class for every sample (Tensor[B, K] outputs);
* a sequence of ``int`` or a ``Tensor[B]`` (or one element) — one class per sample;
* a ``tuple`` of ints — an index into every output dim after the batch (Captum, outputs
  Tensor[B, d1, d2, ...]); a list of B such tuples — one per sample;
* a list of B per-sample callables (pytorch-grad-cam's target objects, e.g.
  ``ClassifierOutputTarget(3)``): each maps *one sample's* output to a scalar; ints may be mixed in;
* a callable ``outputs -> Tensor[R]`` or ``(outputs, rows) -> Tensor[R]``: any score per output
  row (similarity models, detectors, segmentation, custom scores). ``rows`` is Tensor[R] int64, the
  index of the input sample each output row came from, so a similarity score against each sample's
  own reference embedding is one line::

      target = lambda out, rows: F.cosine_similarity(out, ref[rows])

Nested lists of ints (``[[1, 2]]``) are an error, not silently flattened.

:func:`resolve_target` turns a target into a :class:`ResolvedTarget` once per call (on the clean
outputs, where ``None`` and range checks are decided); the resolved target then scores any number
of output rows (perturbed copies, integration steps, noise samples) without a host sync.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence, Union

import torch

Target = Union[None, int, Sequence[int], torch.Tensor, Callable[..., torch.Tensor]]

_FORMS = ("an int, a sequence of ints, a Tensor[B], a tuple of ints, a list of target objects, "
          "a callable (outputs) or (outputs, rows) -> Tensor[R], or None")


def takes_rows(fn: Callable) -> bool:
    """Whether a callable target accepts ``(outputs, rows)`` (two positional arguments or more)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: outputs only
        return False
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n >= 2


def _is_callable(t: Any) -> bool:
    return callable(t) and not isinstance(t, torch.Tensor)


def _class_index(t: Any) -> int | None:
    """An int class of a per-sample entry: an int, a one-element integer Tensor, or a
    ``ClassifierOutputTarget``-like object with an int ``category``."""
    if isinstance(t, bool):
        return None
    if isinstance(t, int):
        return t
    if isinstance(t, torch.Tensor) and t.numel() == 1 and not t.is_floating_point() \
            and t.dtype != torch.bool:
        return int(t.item())
    if type(t).__name__ == "ClassifierOutputTarget" and isinstance(getattr(t, "category", None), int):
        return t.category
    return None


class ResolvedTarget:
    """A target resolved against the clean outputs of ``batch`` samples.

    Call it on any outputs whose rows belong to known samples to get one score per row:
    ``scores = resolved(outputs, rows)`` with ``rows`` Tensor[R] int64 (default: block-major,
    row ``r`` belongs to sample ``r % batch``).

    Attributes:
        batch: B, the number of samples.
        index: Tensor[B, m] int64 — per sample, the index of the selected output element in the
            ``m`` dims after the batch (m = 1: a class) — or None for callables / ``identity``.
        identity: the output is the score (one value per sample, ``target=None``).
        fn: a batch callable (with ``fn_rows`` telling whether it takes ``rows``), or None.
        per_sample: a list of B per-sample callables (pytorch-grad-cam target objects), or None.
    """

    def __init__(self, batch: int, *, index: torch.Tensor | None = None, identity: bool = False,
                 fn: Callable | None = None, per_sample: list | None = None) -> None:
        self.batch = batch
        self.index = index
        self.identity = identity
        self.fn = fn
        self.fn_rows = takes_rows(fn) if fn is not None else False
        self.per_sample = per_sample
        self._rows: dict[tuple[int, str], torch.Tensor] = {}

    @property
    def classes(self) -> torch.Tensor | None:
        """Tensor[B] int64 class per sample when the target is one class per sample, else None."""
        if self.index is not None and self.index.shape[1] == 1:
            return self.index[:, 0]
        return None

    def block_rows(self, n_rows: int, device: torch.device) -> torch.Tensor:
        """Tensor[n_rows] int64: ``r % batch`` (rows in block-major order, row ``j * B + b``)."""
        key = (n_rows, str(device))
        rows = self._rows.get(key)
        if rows is None:
            rows = torch.arange(n_rows, device=device) % self.batch
            self._rows = {key: rows}  # keep one: chunks of a run share their size
        return rows

    def __call__(self, outputs: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Scores Tensor[R] of ``outputs`` (R rows); row ``r`` came from sample ``rows[r]``."""
        if not isinstance(outputs, torch.Tensor):
            raise TypeError(f"the model must return a Tensor, got {type(outputs).__name__}")
        n = outputs.shape[0] if outputs.dim() else 1
        if rows is None:
            rows = self.block_rows(n, outputs.device)
        if self.identity:
            return outputs.reshape(n)
        if self.index is not None:
            idx = self.index.to(outputs.device)[rows.to(outputs.device)]
            if idx.shape[1] == 1 and outputs.dim() == 2:
                return outputs.gather(1, idx).squeeze(1)
            r = torch.arange(n, device=outputs.device)
            return outputs[(r, *idx.T)]
        if self.per_sample is not None:
            scores = [self.per_sample[b](outputs[r]) for r, b in enumerate(rows.tolist())]
            return torch.stack([torch.as_tensor(s, device=outputs.device).reshape(()) for s in scores])
        s = self.fn(outputs, rows) if self.fn_rows else self.fn(outputs)  # type: ignore[misc]
        if not isinstance(s, torch.Tensor):
            raise TypeError(f"a callable target must return a Tensor, got {type(s).__name__}")
        if s.numel() != n:
            raise ValueError(f"the callable target returned {s.numel()} scores for {n} output rows; "
                             "it must return one score per row")
        return s.reshape(n)


def _check_range(idx: torch.Tensor, shape: Sequence[int], target: Any) -> None:
    dims = torch.as_tensor(list(shape), dtype=torch.int64)
    cpu = idx.cpu()
    if bool((cpu < 0).any()) or bool((cpu >= dims).any()):
        shown = cpu[:, 0].tolist() if cpu.shape[1] == 1 else cpu.tolist()
        shown = shown if len(shown) <= 16 else f"{shown[:16]}..."
        what = f"a model with {shape[0]} outputs" if len(shape) == 1 else f"outputs of shape {tuple(shape)}"
        raise ValueError(f"target {shown} out of range for {what}")


def resolve_target(target: Target, outputs: torch.Tensor, name: str = "target") -> ResolvedTarget:
    """Resolve a user's ``target`` against the model outputs on the unperturbed inputs.

    Args:
        target: any form listed in the module docstring.
        outputs: Tensor[B, ...] clean model outputs (one row per sample).
        name: the argument's name in error messages (``"targets"`` for pytorch-grad-cam calls).

    Returns:
        A :class:`ResolvedTarget` for B samples.

    Raises:
        TypeError / ValueError naming ``name``: an unknown form, nested lists, a class out of range,
        a per-sample target of the wrong length.
    """
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(f"the model must return a Tensor, got {type(outputs).__name__}")
    if outputs.dim() == 0:
        raise ValueError("the model returned a 0-d Tensor; it must return one row per sample")
    b = outputs.shape[0]
    tail = tuple(outputs.shape[1:])
    dev = outputs.device
    if _is_callable(target):
        return ResolvedTarget(b, fn=target)
    if target is None:
        if outputs[0].numel() == 1:
            return ResolvedTarget(b, identity=True)
        if outputs.dim() != 2:
            raise ValueError(f"{name} is required for outputs of shape {tuple(outputs.shape)}: give "
                             "a tuple indexing every output dim after the batch, or a callable")
        return ResolvedTarget(b, index=outputs.detach().argmax(1)[:, None])
    if isinstance(target, bool):
        raise TypeError(f"{name} must be {_FORMS}, got a bool")
    if isinstance(target, tuple) and target and all(isinstance(t, int) and not isinstance(t, bool)
                                                    for t in target):
        return _tuple_target([target] * b, outputs, name)
    if isinstance(target, (list, tuple)):
        if any(isinstance(t, list) for t in target):
            raise ValueError(f"{name} must be a flat sequence (one entry per sample), got nested "
                             f"lists {list(target)[:4]}")
        tuples = [isinstance(t, tuple) for t in target]
        if any(tuples):
            if not all(tuples):
                raise TypeError(f"{name} mixes tuples and other entries: {list(target)[:4]}")
            if len(target) != b:
                raise ValueError(f"{name} has {len(target)} entries but the batch has {b} samples")
            return _tuple_target(list(target), outputs, name)
        if any(_is_callable(t) for t in target):
            if len(target) != b:
                raise ValueError(f"{name} has {len(target)} entries but the batch has {b} samples")
            idx = [_class_index(t) for t in target]
            if all(i is not None for i in idx):
                target = idx
            else:
                for i, t in enumerate(target):
                    if not _is_callable(t) and _class_index(t) is None:
                        raise TypeError(f"{name}[{i}] must be an int or a target object (a callable "
                                        f"on one sample's output), got {type(t).__name__}")
                per = [t if _is_callable(t) else _ClassOf(_class_index(t)) for t in target]
                return ResolvedTarget(b, per_sample=per)
        else:
            for i, t in enumerate(target):
                if _class_index(t) is None and not isinstance(t, torch.Tensor):
                    raise TypeError(f"{name}[{i}] must be an integer class index, got {type(t).__name__}")
    if isinstance(target, int):
        idx = torch.full((b,), target, dtype=torch.int64)
    else:
        try:
            idx = torch.as_tensor(target)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be {_FORMS}, got {type(target).__name__}") from None
        if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class indices, got dtype {idx.dtype}")
        if idx.dim() > 1:
            raise ValueError(f"{name} must be a flat sequence or Tensor[B] (one class per sample), "
                             f"got shape {tuple(idx.shape)}")
        idx = idx.long().reshape(-1)
        if idx.numel() == 1:
            idx = idx.expand(b)
        elif idx.numel() != b:
            raise ValueError(f"{name} has {idx.numel()} entries but the batch has {b} samples")
    if outputs.dim() != 2:
        raise ValueError(
            f"{name} selects a class, but the model output has shape {tuple(outputs.shape)}; give a "
            "tuple indexing every output dim after the batch, or a callable"
        )
    _check_range(idx[:, None], tail, target)
    return ResolvedTarget(b, index=idx.to(dev).reshape(b, 1).contiguous())


class _ClassOf:
    """A per-sample target selecting one class of one sample's output."""

    def __init__(self, c: int) -> None:
        self.c = c

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        return out[..., self.c]


def _tuple_target(rows: list, outputs: torch.Tensor, name: str) -> ResolvedTarget:
    idx = torch.as_tensor([list(t) for t in rows], dtype=torch.int64)
    if idx.dim() != 2 or idx.shape[1] != outputs.dim() - 1:
        raise ValueError(
            f"{name}: tuple targets must index every output dim after the batch "
            f"(output shape {tuple(outputs.shape)}), got {rows[:4]}"
        )
    _check_range(idx, tuple(outputs.shape[1:]), rows)
    return ResolvedTarget(outputs.shape[0], index=idx.to(outputs.device))


def as_resolved(target: Any, outputs: torch.Tensor) -> ResolvedTarget:
    """``target`` if it is resolved already, else :func:`resolve_target` on ``outputs``."""
    return target if isinstance(target, ResolvedTarget) else resolve_target(target, outputs)
