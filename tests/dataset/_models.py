"""Model factories for the dataset tests (importable by Ray workers: pickled by reference)."""

from __future__ import annotations

import os
import time

import torch

from pyxai.models import demo_cnn


class ExitOnce(torch.nn.Module):
    """The demo CNN; the first forward (in any process) that finds ``flag`` deletes it and kills
    its own process, as a crashing worker would."""

    def __init__(self, flag: str, delay: float = 0.0) -> None:
        super().__init__()
        self.net, self.flag, self.delay = demo_cnn(), flag, delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            os.unlink(self.flag)
        except FileNotFoundError:
            pass
        else:
            os._exit(1)
        if self.delay:
            time.sleep(self.delay)
        return self.net(x)


class Factory:
    """A picklable zero-argument factory of :class:`ExitOnce`."""

    def __init__(self, flag: str = "", delay: float = 0.0) -> None:
        self.flag, self.delay = flag, delay

    def __call__(self) -> torch.nn.Module:
        return ExitOnce(self.flag or "/nonexistent/flag", self.delay).eval()


def broken_factory() -> torch.nn.Module:
    raise RuntimeError("no such checkpoint on this worker")
