"""pyxai.ops: one function per op; each picks the native kernel or its pure-PyTorch reference.

Every op takes ``backend="auto" | "native" | "reference"`` (default: env ``PYXAI_BACKEND`` or
"auto").
"""

from pyxai.ops._dispatch import BACKENDS, NativeUnavailableError, resolve_backend
from pyxai.ops.masks import (
    check_grids,
    upsample_blend,
    upsample_masks,
    upsample_masks_backward,
    weighted_mask_sum,
)

__all__ = [
    "BACKENDS",
    "NativeUnavailableError",
    "check_grids",
    "resolve_backend",
    "upsample_blend",
    "upsample_masks",
    "upsample_masks_backward",
    "weighted_mask_sum",
]
