"""Hot paths that must not synchronise the host with the device, and a switch that proves it.

Per-chunk and per-layer work (building a chunk of perturbed inputs, scoring it, accumulating, an LRP
rule's backward) runs inside :func:`hot_path`. Normally that costs nothing. With the environment
variable ``PYXAI_SYNC_DEBUG=1`` and CUDA tensors, it turns on
``torch.cuda.set_sync_debug_mode("error")`` for the block, so any ``.item()``, ``.tolist()``,
``bool(tensor)`` or blocking copy inside raises: ``tests/gpu`` runs every explainer that way.
(The debug mode is process-wide: it is a developer's check, not for production.)
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

SYNC_DEBUG_ENV = "PYXAI_SYNC_DEBUG"


@contextlib.contextmanager
def hot_path(device: torch.device | str) -> Iterator[None]:
    """A block that must not synchronise; checked when ``PYXAI_SYNC_DEBUG=1`` on CUDA."""
    if os.environ.get(SYNC_DEBUG_ENV) != "1" or torch.device(device).type != "cuda":
        yield
        return
    prev = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(prev)
