"""The similarity methods by name, with defaults scaled to the image size (the CLI and the benchmark).

The references use 224 x 224 images with 64-pixel windows and a stride of 8; :func:`build` keeps
those proportions for other sizes (at least a 2-pixel window).
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

import pyxai.similarity as S


def _window(size: int, ref: int) -> int:
    return max(1, round(size * ref / 224))


def _occlusion(cls: type) -> Callable[..., Any]:
    def make(encoder: nn.Module, layer: nn.Module | None, size: int, **kw: Any) -> Any:
        kw.setdefault("window", max(2, _window(size, 64)))
        kw.setdefault("stride", max(1, _window(size, 16)))
        return cls(encoder, **kw)
    return make


#: name -> (builder(encoder, layer, image_size, **overrides), needs a target layer)
METHODS: dict[str, tuple[Callable[..., Any], bool]] = {
    "conditional_occlusion": (_occlusion(S.ConditionalOcclusion), False),
    "context_agnostic_occlusion": (_occlusion(S.ContextAgnosticConditionalOcclusion), False),
    "pairwise_occlusion": (lambda e, layer, size, **kw: S.PairwiseOcclusion(e, **kw), False),
    "interaction_cam": (lambda e, layer, size, **kw: S.InteractionCAM(
        e, layer, **{"reduction": "attn", "grad_interact": True, **kw}), True),
    "averaged_transforms": (lambda e, layer, size, **kw: S.AveragedTransforms(e, **{"guided": True, **kw}),
                            False),
    "pixel_invariance": (lambda e, layer, size, **kw: S.PixelInvariance(
        e, **{"n_augments": 200, "epochs": 300, "size": min(64, size), **kw}), False),
}


def names() -> list[str]:
    """Every method name, in table order."""
    return list(METHODS)


def build(name: str, encoder: nn.Module, layer: nn.Module | None, size: int, **overrides: Any) -> Any:
    """The explainer ``name`` for ``encoder`` and images of side ``size``."""
    if name not in METHODS:
        raise ValueError(f"unknown similarity method {name!r}; choose from {names()}")
    make, needs_layer = METHODS[name]
    return make(encoder, layer if needs_layer else None, size, **overrides)
