"""Accumulators: what a method sums over perturbations, as small objects that merge.

The runner evaluates perturbations ``[0, n)`` chunk by chunk and hands each chunk's scores to an
accumulator's :meth:`Accumulator.update`. Because an accumulator only *adds* per-perturbation
contributions, the perturbations may be split in any way — chunks of one run, windows of a stream,
shards computed by different workers — and :meth:`Accumulator.merge` of the parts gives the
single-process :meth:`Accumulator.result` exactly (up to floating-point summation order).
"""

from __future__ import annotations

import torch


class Accumulator:
    """Base class. Subclasses hold tensors that are sums over perturbations.

    An accumulator is also the runner's ``consume`` callback: ``acc(start, stop, values)`` is
    ``acc.update(start, stop, values)``.
    """

    def update(self, start: int, stop: int, values: torch.Tensor) -> None:
        """Add the contributions of perturbations ``[start, stop)``.

        Args:
            start, stop: the perturbation indices of this chunk.
            values: Tensor[(stop - start) * rows_per_item] target scores (or the model outputs),
                item-major as the runner produces them.
        """
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        """The method's output from what was added so far."""
        raise NotImplementedError

    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s sums (disjoint perturbations of the same problem) into self; returns self."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for name, value in vars(self).items():
            if name.startswith("sum_") or name == "count":
                theirs = getattr(other, name)
                setattr(self, name, value + theirs.to(value.device) if isinstance(value, torch.Tensor)
                        else value + theirs)
        return self

    def __call__(self, start: int, stop: int, values: torch.Tensor) -> None:
        self.update(start, stop, values)
