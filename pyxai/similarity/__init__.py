"""pyxai.similarity: explainers of two-image similarity models (self-supervised encoders).

Every explainer takes an *encoder* (any ``nn.Module`` or callable mapping images Tensor[N, C, H, W]
to embeddings Tensor[N, D]; other outputs need ``pooling``) and explains batches of pairs:
``attribute(img1, img2)`` with ``img1, img2: Tensor[B, C, H, W]`` (pair ``b`` is row ``b``) returns
the maps of both images ``(Tensor[B, 1, H1, W1], Tensor[B, 1, H2, W2])`` — or, for
:class:`FeatureVisualization` and :class:`ModelDifference`, synthesised images Tensor[B, C, H, W].

Methods (SPECS §9, from explain-cl and xai-self-supervision): :class:`ConditionalOcclusion`,
:class:`ContextAgnosticConditionalOcclusion`, :class:`PairwiseOcclusion`, :class:`InteractionCAM`,
:class:`AveragedTransforms`, :class:`PixelInvariance`, :class:`FeatureVisualization`,
:class:`ModelDifference`. Targets for any other pyxai explainer: :func:`cosine_to`, :func:`dot_to`,
:func:`neg_distance_to` (``(outputs, rows)`` callables of the engine's target contract).
"""

from pyxai.similarity.interaction_cam import InteractionCAM
from pyxai.similarity.invariance import PixelInvariance, no_shift_augment
from pyxai.similarity.occlusion import ConditionalOcclusion, ContextAgnosticConditionalOcclusion
from pyxai.similarity.pairwise import PairwiseOcclusion
from pyxai.similarity.synthesis import FeatureVisualization, ModelDifference
from pyxai.similarity.targets import SimilarityTarget, cosine_to, dot_to, neg_distance_to
from pyxai.similarity.transforms import AveragedTransforms

__all__ = [
    "AveragedTransforms",
    "ConditionalOcclusion",
    "ContextAgnosticConditionalOcclusion",
    "FeatureVisualization",
    "InteractionCAM",
    "ModelDifference",
    "PairwiseOcclusion",
    "PixelInvariance",
    "SimilarityTarget",
    "cosine_to",
    "dot_to",
    "neg_distance_to",
    "no_shift_augment",
]
