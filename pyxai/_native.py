"""Loading the native extension ``pyxai._C`` and reporting what it offers.

Importing ``pyxai._C`` registers the kernels as ``torch.ops.pyxai.*``. When it is missing or fails to
load, pyxai keeps working on its pure-PyTorch reference backend; :func:`native_status` says why.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import cache
from typing import Any

import torch

_INSTALL_HINT = (
    "build it with `pip install -e .` (or `python setup.py build_ext --inplace`) with a C++ compiler "
    "and ninja installed, and without PYXAI_NO_NATIVE=1; or use backend='reference'"
)


@cache
def _load() -> tuple[Any, str]:
    """Import pyxai._C once. Returns (module or None, reason it is missing)."""
    try:
        from pyxai import _C  # noqa: F401  (registers torch.ops.pyxai.*)
    except ImportError as exc:
        return None, f"pyxai._C could not be imported ({exc}); {_INSTALL_HINT}"
    except OSError as exc:  # e.g. undefined symbol: built against another torch
        return None, f"pyxai._C failed to load ({exc}); rebuild it against torch {torch.__version__}"
    try:
        from pyxai.ops import _fake  # noqa: F401  (fake kernels for torch.compile / opcheck)
    except RuntimeError as exc:  # an op of the Python sources is missing from the built library
        return None, f"pyxai._C is older than the Python sources ({exc}); rebuild it"
    return _C, ""


def available(device_type: str = "cpu") -> bool:
    """Whether native kernels can run on ``device_type`` ("cpu" or "cuda")."""
    module, _ = _load()
    if module is None:
        return False
    if device_type == "cpu":
        return True
    if device_type == "cuda":
        return bool(module.build_info()["cuda"])
    return False


def why_unavailable(device_type: str = "cpu") -> str:
    """A sentence saying why native kernels cannot run on ``device_type`` ("" when they can)."""
    module, reason = _load()
    if module is None:
        return reason
    if available(device_type):
        return ""
    if device_type == "cuda":
        return (
            "pyxai._C was built without CUDA kernels (torch without CUDA, nvcc not found, or "
            "PYXAI_NO_CUDA=1 at build time); rebuild with CUDA_HOME set, or use backend='reference'"
        )
    return f"pyxai has no native kernels for device type '{device_type}'; use backend='reference'"


def native_status() -> dict[str, Any]:
    """Report the native extension's state.

    Returns:
        dict with keys ``compiled`` (bool), ``devices`` (list of device types with native kernels),
        ``reason`` (why not, "" when compiled), ``build`` (build flags reported by the extension),
        ``ops`` (registered ``torch.ops.pyxai`` op names), ``torch``, ``torch_cuda``,
        ``cuda_available``, ``python``, ``platform`` and ``backend_default``.
    """
    module, reason = _load()
    build = dict(module.build_info()) if module is not None else {}
    devices = [d for d in ("cpu", "cuda") if available(d)]
    ops: list[str] = []
    if module is not None:
        ops = sorted(
            name.split("::", 1)[1]
            for name in torch._C._dispatch_get_all_op_names()
            if name.startswith("pyxai::")
        )
    return {
        "compiled": module is not None,
        "devices": devices,
        "reason": reason,
        "build": build,
        "ops": ops,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend_default": os.environ.get("PYXAI_BACKEND", "auto"),
    }
