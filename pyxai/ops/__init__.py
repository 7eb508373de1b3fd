"""pyxai.ops: one function per op; each picks the native kernel or its pure-PyTorch reference.

Every op takes ``backend="auto" | "native" | "reference"`` (default: env ``PYXAI_BACKEND`` or
"auto") and is differentiable whichever runs (native ops: ``torch.library.register_autograd`` in
``pyxai.ops._autograd``); the masks ops also take ``validate`` (see :func:`check_grids`).
"""

from pyxai.ops._dispatch import BACKENDS, NativeUnavailableError, resolve_backend
from pyxai.ops.masks import (
    check_grids,
    upsample_blend,
    upsample_masks,
    upsample_masks_backward,
    weighted_mask_sum,
)
from pyxai.ops.smooth_masks import smooth_masks, smooth_masks_backward

__all__ = [
    "BACKENDS",
    "NativeUnavailableError",
    "check_grids",
    "resolve_backend",
    "smooth_masks",
    "smooth_masks_backward",
    "upsample_blend",
    "upsample_masks",
    "upsample_masks_backward",
    "weighted_mask_sum",
]
