"""The plain single-process loop the dataset runner must equal."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from pyxai import registry


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the body on one torch thread, as a 1-CPU worker does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def plain_loop(model: torch.nn.Module, method: str, images: torch.Tensor, batch: int,
               layer: str | None = None, targets: torch.Tensor | None = None, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(maps, class, its logit) over ``images`` Tensor[N, C, H, W], ``batch`` at a time, on one
    thread (as a 1-CPU worker); the class is ``targets`` Tensor[N] or else the predicted one."""
    with one_thread():
        explain = registry.build(method, model, model.get_submodule(layer) if layer else None, **kwargs)
        maps, classes, scores = [], [], []
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            with torch.no_grad():
                out = model(x)
            t = out.argmax(1) if targets is None else targets[i:i + batch]
            maps.append(explain(x, t).detach())
            classes.append(t)
            scores.append(out.gather(1, t[:, None])[:, 0])
        return torch.cat(maps), torch.cat(classes), torch.cat(scores)
