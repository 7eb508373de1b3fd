"""Similarity targets for every explainer: scores of each output row against a reference embedding.

The callables follow the engine's target contract (:mod:`pyxai.engine.targets`): they take
``(outputs, rows)``, where ``rows`` Tensor[R] int64 says which input sample each output row came
from, so row ``r`` is compared with ``reference[rows[r]]`` — one reference per sample, also when an
explainer runs the model on many perturbed copies at once::

    ref = encoder(img2)                                   # Tensor[B, D]
    pyxai.RISE(encoder).attribute(img1, target=pyxai.similarity.cosine_to(ref))
    pyxai.IntegratedGradients(encoder).attribute(img1, target=cosine_to(ref))

A single reference Tensor[D] (or Tensor[1, D]) is compared with every row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pyxai.similarity._common import Pooling, check_nonzero, check_pooling, pool

__all__ = ["SimilarityTarget", "cosine_to", "dot_to", "neg_distance_to"]

_KINDS = ("cosine", "dot", "neg_distance")


class SimilarityTarget:
    """``(outputs, rows) -> Tensor[R]``: similarity of each output row to its sample's reference.

    Args:
        reference: Tensor[B, D] (one per sample) or Tensor[D] / Tensor[1, D] (shared) embeddings.
        kind: "cosine", "dot" or "neg_distance" (minus the Euclidean distance).
        pooling: turns non-2-D model outputs into Tensor[R, D] (see :mod:`pyxai.similarity`).
    """

    def __init__(self, reference: Tensor, kind: str = "cosine", pooling: Pooling = None) -> None:
        if not isinstance(reference, Tensor):
            raise TypeError(f"reference must be a Tensor of embeddings, got {type(reference).__name__}")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        if reference.dim() == 1:
            reference = reference[None]
        if reference.dim() != 2 or reference.shape[0] == 0:
            raise ValueError(f"reference must be Tensor[B, D] or Tensor[D] embeddings, got shape "
                             f"{tuple(reference.shape)}")
        if not reference.is_floating_point():
            raise TypeError(f"reference must be a floating-point Tensor, got {reference.dtype}")
        if kind == "cosine":
            check_nonzero(reference, "reference")
        elif not bool(torch.isfinite(reference).all()):
            raise ValueError("reference contains NaN or Inf values")
        self.reference = reference.detach()
        self.kind = kind
        self.pooling = check_pooling(pooling)

    def __call__(self, outputs: Tensor, rows: Tensor) -> Tensor:
        z = pool(outputs, self.pooling)
        ref = self.reference.to(device=z.device, dtype=z.dtype)
        if ref.shape[1] != z.shape[1]:
            raise ValueError(f"the model's embeddings have {z.shape[1]} dims but reference has "
                             f"{ref.shape[1]}")
        if ref.shape[0] == 1:
            ref = ref.expand(z.shape[0], -1)
        else:
            ref = ref[rows.to(z.device)]
        if self.kind == "cosine":
            return F.cosine_similarity(z, ref, dim=-1)
        if self.kind == "dot":
            return (z * ref).sum(-1)
        return -(z - ref).norm(dim=-1)

    def __repr__(self) -> str:
        return f"SimilarityTarget(kind={self.kind!r}, reference={tuple(self.reference.shape)})"


def cosine_to(reference: Tensor, pooling: Pooling = None) -> SimilarityTarget:
    """Target: cosine similarity (``nn.CosineSimilarity``, eps 1e-8) of each output row to
    ``reference[rows]``. Raises ValueError for zero-norm reference embeddings."""
    return SimilarityTarget(reference, "cosine", pooling)


def dot_to(reference: Tensor, pooling: Pooling = None) -> SimilarityTarget:
    """Target: dot product of each output row with ``reference[rows]``."""
    return SimilarityTarget(reference, "dot", pooling)


def neg_distance_to(reference: Tensor, pooling: Pooling = None) -> SimilarityTarget:
    """Target: minus the Euclidean distance of each output row to ``reference[rows]``."""
    return SimilarityTarget(reference, "neg_distance", pooling)
