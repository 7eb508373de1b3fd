"""Backend choice shared by every op: native kernel or pure-PyTorch reference."""

from __future__ import annotations

import os

import torch

from pyxai import _native

BACKENDS = ("auto", "native", "reference")


class NativeUnavailableError(RuntimeError):
    """Raised when backend='native' is asked for but cannot run; the message says why."""


def check_backend(backend: str | None) -> str:
    """Validate a backend name; ``None`` means the ``PYXAI_BACKEND`` environment variable or "auto"."""
    name = backend if backend is not None else os.environ.get("PYXAI_BACKEND", "auto")
    if name not in BACKENDS:
        source = "backend" if backend is not None else "PYXAI_BACKEND"
        raise ValueError(f"{source} must be one of {BACKENDS}, got {name!r}")
    return name


def resolve_backend(backend: str | None, device: torch.device | str) -> str:
    """Pick the implementation for data on ``device``.

    Args:
        backend: "auto" (native when compiled for that device, else reference), "native" (error if
            unavailable, saying why), "reference", or None (``PYXAI_BACKEND`` or "auto").
        device: the device the op's tensors live on.

    Returns:
        "native" or "reference".
    """
    name = check_backend(backend)
    if name == "reference":
        return "reference"
    device_type = torch.device(device).type
    if _native.available(device_type):
        return "native"
    if name == "native":
        raise NativeUnavailableError(
            f"backend='native' requested on {device_type}: {_native.why_unavailable(device_type)}"
        )
    return "reference"
