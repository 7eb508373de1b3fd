"""KernelShap, drop-in for ``captum.attr.KernelShap`` (Lundberg & Lee, 2017).

Lime with the Shapley kernel: coalitions of interpretable features are drawn by size ``k`` with
probability proportional to ``(F - 1) / (k (F - k))`` (``k = 1 .. F-1``), the features of a
coalition chosen uniformly (the ``k`` largest of F standard normal draws), after the all-on and
all-off coalitions, which get the weight ``inf_weight`` (1e6; every other sample weighs 1) so the
fitted linear model honours the end points. The surrogate is a weighted linear regression; its
coefficients estimate the Shapley values.

Same numbers as Captum with the same ``torch.manual_seed``: the coalitions are drawn as Captum
draws them (per sample, a ``Categorical`` size draw then ``torch.randn(1, F)``, examples one after
the other); the regression is pyxai's closed-form
:class:`~pyxai.perturbation.linear_model.LinearRegression`, equal to scikit-learn's (Captum's
``SkLearnLinearRegression``) to float tolerance, so scikit-learn is not needed. The model runs on
the perturbation runner as in :class:`pyxai.Lime`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.distributions.categorical import Categorical

from pyxai.perturbation.ablation import TensorOrTuple
from pyxai.perturbation.lime import Inputs, Lime
from pyxai.perturbation.linear_model import LinearRegression


class KernelShap(Lime):
    """Kernel SHAP: Shapley values from a weighted linear regression on sampled coalitions.

    Args:
        forward_func: model or callable ``(*inputs, *additional_forward_args)`` returning one
            score row per sample (or one scalar for the whole batch, Captum's aggregated mode).

    Attributes:
        inf_weight: the weight of the all-on and all-off coalitions. Default: 1e6

    Examples::

        >>> ks = pyxai.KernelShap(model)
        >>> attr = ks.attribute(x, target=3, feature_mask=segments, n_samples=200,
        ...                     perturbations_per_eval=32)                # Tensor like x
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        super().__init__(forward_func, interpretable_model=LinearRegression(),
                         similarity_func=self.kernel_shap_similarity_kernel,
                         perturb_func=self.kernel_shap_perturb_generator)
        self.inf_weight = 1000000.0

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: TensorOrTuple | None = None,
        n_samples: int = 25,
        perturbations_per_eval: int = 1,
        return_input_shape: bool = True,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        """Kernel SHAP attributions.

        Args:
            inputs: Tensor[B, ...] or a tuple of such tensors (same B); each example gets its own
                regression (as Captum).
            baselines: the value of features outside a coalition: None (0), a scalar, a Tensor
                broadcastable to the input, or a tuple of those. Default: None
            target: as :meth:`pyxai.Lime.attribute`. Default: None
            additional_forward_args: as :meth:`pyxai.Lime.attribute`. Default: None
            feature_mask: integer Tensor (or tuple) broadcastable to the input (first dim 1 or
                B) of feature ids (at least 2 features). Default: None, one feature per scalar.
            n_samples: coalitions per example, the all-on and all-off ones included. Default: 25
            perturbations_per_eval: coalitions per forward of each example (``that * B`` rows).
                Default: 1
            return_input_shape: True: shaped like the inputs; False: Tensor[B, F] coefficients.
                Default: True
            show_progress: progress bar. Default: False

        Returns:
            Tensor (or tuple) shaped like the inputs, float32, or the coefficients.
        """
        return self._attribute(inputs, baselines, target, additional_forward_args, feature_mask,
                               n_samples, perturbations_per_eval, return_input_shape,
                               show_progress)

    def _sampling_kwargs(self, n_feat: int) -> dict[str, Any]:
        """The coalition-size distribution (Captum's ``num_select_distribution``)."""
        if n_feat < 2:
            raise ValueError(f"KernelShap needs at least 2 interpretable features, the "
                             f"feature_mask gives {n_feat}")
        sizes = torch.arange(n_feat, dtype=torch.float)
        probs = torch.tensor(n_feat - 1) / (sizes * (n_feat - sizes))
        probs[0] = 0.0
        return {"num_select_distribution": Categorical(probs)}

    def _batch_similarity(self, original: torch.Tensor, chunk: Inputs, bits: torch.Tensor,
                          ) -> torch.Tensor | None:
        """The Shapley kernel weights of a chunk's coalitions (Tensor[R] float32), on device."""
        if self.similarity_func != self.kernel_shap_similarity_kernel:
            return super()._batch_similarity(original, chunk, bits)
        size = bits.sum(1)
        end = (size == 0) | (size == bits.shape[1])
        return torch.where(end, float(self.inf_weight), 1.0).float()

    def kernel_shap_similarity_kernel(self, _: Any, __: Any, interpretable_sample: torch.Tensor,
                                      **kwargs: Any) -> torch.Tensor:
        """Captum's similarity: Tensor[1], ``inf_weight`` for the all-on / all-off coalitions,
        else 1."""
        size = int(interpretable_sample.sum(dim=1).item())
        end = size in (0, kwargs["num_interp_features"])
        return torch.tensor([self.inf_weight if end else 1.0])

    def kernel_shap_perturb_generator(self, original_inp: TensorOrTuple, **kwargs: Any
                                      ) -> Iterator[torch.Tensor]:
        """Captum's coalitions, Tensor[1, F] int64 each: all on, all off, then sampled by size
        (``kwargs["num_select_distribution"]``) with uniformly chosen features, forever."""
        f = int(kwargs["num_interp_features"])
        sizes: Categorical = kwargs["num_select_distribution"]
        yield torch.ones(1, f, dtype=torch.long)
        yield torch.zeros(1, f, dtype=torch.long)
        while True:
            k = sizes.sample()
            rand = torch.randn(1, f)
            threshold = torch.kthvalue(rand, f - k).values.item()
            yield (rand > threshold).long()
