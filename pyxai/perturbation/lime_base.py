"""LimeBase, drop-in for ``captum.attr.LimeBase``: Lime with user-given sampling and transforms,
and the pieces :class:`pyxai.Lime` shares with it (Captum's default similarity kernel and sampler,
the surrogate fit).

``LimeBase`` calls the user's functions exactly as Captum does, sample by sample: ``perturb_func``
draws a sample (in the interpretable space, mapped to a model input by
``from_interp_rep_transform``, or in the input space, mapped back by ``to_interp_rep_transform``),
``similarity_func`` weighs it, and every ``perturbations_per_eval`` samples the model runs once on
their concatenation; the draws of a chunk happen just before its forward, as in Captum, so any
random numbers the functions or the model draw come in Captum's order. The interpretable model is
fitted to the (sample, score, weight) triples and its ``representation()`` returned.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
import warnings
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, TensorDataset

from pyxai.engine.base import CaptumAttribution
from pyxai.engine.checks import check_positive_int, check_same_device
from pyxai.engine.runner import PerturbationRunner
from pyxai.engine.targets import ResolvedTarget, resolve_target
from pyxai.engine.view import forward_view
from pyxai.perturbation._captum import ExpandingForward, as_output, format_args, format_inputs
from pyxai.perturbation.ablation import TensorOrTuple, _check_ppe
from pyxai.perturbation.linear_model import _Linear

Inputs = tuple[torch.Tensor, ...]


class ExpKernelSimilarity:
    """Captum's default similarity: ``exp(-d^2 / (2 * kernel_width^2))`` of the distance ``d``
    between the flattened (float32) original and perturbed inputs.

    Called as Captum calls a ``similarity_func``: ``(original_inp, perturbed_inp,
    interpretable_sample, **kwargs) -> float``; :meth:`batched` scores many perturbed inputs at
    once (the same arithmetic, on device, no host sync).

    Args:
        distance_mode: ``"cosine"`` (1 - cosine similarity) or ``"euclidean"``. Default: "cosine"
        kernel_width: the kernel's width. Default: 1.0
    """

    def __init__(self, distance_mode: str = "cosine", kernel_width: float = 1.0) -> None:
        if distance_mode not in ("cosine", "euclidean"):
            raise ValueError(f"distance_mode must be 'cosine' or 'euclidean', got {distance_mode!r}")
        self.distance_mode = distance_mode
        self.kernel_width = kernel_width

    def _exponent(self, original: torch.Tensor, perturbed: torch.Tensor, dim: int) -> torch.Tensor:
        if self.distance_mode == "cosine":
            d = 1 - torch.nn.functional.cosine_similarity(original, perturbed, dim=dim)
        else:
            d = torch.norm(original - perturbed, dim=dim)
        return -1 * (d**2) / (2 * (self.kernel_width**2))

    def __call__(self, original_inp: TensorOrTuple, perturbed_inp: TensorOrTuple, _: Any,
                 **kwargs: Any) -> float:
        return math.exp(self._exponent(_flat(original_inp), _flat(perturbed_inp), 0))

    def batched(self, original: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        """Similarities Tensor[R] float32 of rows ``original`` [R, N] and ``perturbed`` [R, N]."""
        # exp in float64, as math.exp of the float32 exponent in __call__
        return torch.exp(self._exponent(original.float(), perturbed.float(), 1).double()).float()


def _flat(inp: TensorOrTuple) -> torch.Tensor:
    parts = inp if isinstance(inp, tuple) else (inp,)
    return torch.cat([t.flatten() for t in parts]).float()


def get_exp_kernel_similarity_function(distance_mode: str = "cosine",
                                       kernel_width: float = 1.0) -> ExpKernelSimilarity:
    """Captum's factory of the exponential-kernel similarity (see :class:`ExpKernelSimilarity`)."""
    return ExpKernelSimilarity(distance_mode, kernel_width)


def default_perturb_func(original_inp: TensorOrTuple, **kwargs: Any) -> torch.Tensor:
    """Captum's default sampling: Tensor[1, F] int64 of independent fair coin flips (F =
    ``kwargs["num_interp_features"]``), drawn on the CPU from the global generator."""
    probs = torch.ones(1, int(kwargs["num_interp_features"])) * 0.5
    device = (original_inp[0] if isinstance(original_inp, tuple) else original_inp).device
    return torch.bernoulli(probs).to(device=device).long()


def own_model(model: Any) -> bool:
    """Whether ``model`` is one of pyxai's surrogates with its own ``fit``, which reads its data
    once and draws no random numbers (so the examples of a batch can be evaluated together)."""
    fit = getattr(type(model), "fit", None)
    return isinstance(model, _Linear) and "fit" not in vars(model) and \
        fit.__module__.startswith("pyxai.")


def captum_fit_draws(n_feat: int) -> None:
    """Draw from the global generator what fitting Captum's ``SkLearn*`` surrogate on F features
    draws: its DataLoader's seed, then the init of the ``nn.Linear(F, 1)`` it builds. pyxai's
    surrogates draw nothing; doing this after each example's samples keeps the next example's
    samples (and the generator after the call) Captum's."""
    torch.empty((), dtype=torch.int64).random_()
    torch.nn.Linear(n_feat, 1)


def default_from_interp_rep_transform(curr_sample: torch.Tensor, original_inputs: TensorOrTuple,
                                      **kwargs: Any) -> TensorOrTuple:
    """Captum's map from an interpretable sample Tensor[1, F] to a model input: the features
    that are on keep ``original_inputs``, the others take ``kwargs["baselines"]`` (ids in
    ``kwargs["feature_mask"]``, a Tensor or a tuple like the inputs)."""
    masks, bases = kwargs["feature_mask"], kwargs["baselines"]
    one = not isinstance(original_inputs, tuple)
    xs = (original_inputs,) if one else original_inputs
    masks, bases = ((masks,), (bases,)) if one else (masks, bases)
    out = tuple(torch.where(curr_sample[0][m].bool(), x, torch.as_tensor(base, device=x.device))
                for x, m, base in zip(xs, masks, bases))
    return out[0] if one else out


def progress_label(cls: type) -> str:
    """Captum's progress label: the class name split at capitals, "Kernel Shap attribution"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__) + " attribution"


def fit_surrogate(model: Any, own: bool, interp: torch.Tensor, scores: torch.Tensor,
                  sims: torch.Tensor) -> torch.Tensor:
    """``model.representation()`` after fitting it to one example's samples (interp [n, F],
    scores and sims [n]); ``own``: pyxai's model (see :func:`own_model`), which gets the one
    batch a DataLoader would give (the caller made Captum's fit draws in its place:
    :func:`captum_fit_draws`)."""
    data = (interp.float(), scores.float(), sims.float())
    if own:
        model.fit([data])
    else:
        model.fit(DataLoader(TensorDataset(*data), batch_size=interp.shape[0]))
    return torch.as_tensor(model.representation()).detach()


def sample_generator(perturb_func: Callable, original: TensorOrTuple, kwargs: dict[str, Any]
                     ) -> Callable[[], Any]:
    """``next sample``: ``perturb_func(original, **kwargs)``, or the next item of its generator
    (raising StopIteration when it ends), as Captum draws."""
    if inspect.isgeneratorfunction(perturb_func):
        gen: Iterator = perturb_func(original, **kwargs)
        return lambda: next(gen)
    return lambda: perturb_func(original, **kwargs)


def as_weight(sim: Any) -> float:
    """A similarity (a number or a one-element Tensor) as a float."""
    sim = torch.as_tensor(sim)
    if sim.numel() != 1:
        raise ValueError(f"similarity_func must return one number per sample, got {sim.numel()} "
                         "values")
    return float(sim.reshape(()))


def _cat(items: list) -> TensorOrTuple:
    """Captum's ``_reduce_list``: model inputs (Tensors or tuples) concatenated along dim 0."""
    if isinstance(items[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*items))
    return torch.cat(items)


class LimeBase(CaptumAttribution):
    """Lime with user-given sampling and interpretable representation (Captum's ``LimeBase``).

    Args:
        forward_func: model or callable ``(*inputs, *additional_forward_args)``; on a chunk of
            k perturbed inputs it must give k numbers (after ``target``).
        interpretable_model: Captum ``Model``-like surrogate (``fit(DataLoader)`` and
            ``representation()``); each call fits its own copy.
        similarity_func: ``(original_inp, perturbed_inp, interpretable_sample, **kwargs) ->
            float | Tensor``.
        perturb_func: ``(original_inp, **kwargs) -> sample`` (or a generator function of them).
        perturb_interpretable_space: the samples are interpretable (True: mapped to model inputs
            by ``from_interp_rep_transform``) or model inputs (False: mapped to interpretable
            samples Tensor[1, F] by ``to_interp_rep_transform``).
        from_interp_rep_transform: ``(sample, original_inp, **kwargs) -> model input``.
        to_interp_rep_transform: ``(model_input, original_inp, **kwargs) -> Tensor[1, F]``.

    Examples::

        >>> lime = pyxai.LimeBase(model, SkLearnLasso(alpha=0.1), similarity, sampler, True,
        ...                       to_input, None)
        >>> coefs = lime.attribute(x, target=3, n_samples=100, num_interp_features=16)
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        interpretable_model: Any,
        similarity_func: Callable[..., Any],
        perturb_func: Callable[..., Any],
        perturb_interpretable_space: bool,
        from_interp_rep_transform: Callable[..., Any] | None,
        to_interp_rep_transform: Callable[..., Any] | None,
    ) -> None:
        super().__init__(forward_func)
        for name in ("fit", "representation"):
            if not callable(getattr(interpretable_model, name, None)):
                raise TypeError(f"interpretable_model must have fit() and representation() "
                                f"(Captum's Model interface); {type(interpretable_model).__name__} "
                                f"has no {name}()")
        need = (from_interp_rep_transform if perturb_interpretable_space
                else to_interp_rep_transform)
        if need is None:
            which = "from_interp_rep_transform" if perturb_interpretable_space else \
                "to_interp_rep_transform"
            raise ValueError(f"{which} is required with perturb_interpretable_space="
                             f"{perturb_interpretable_space}")
        self.interpretable_model = interpretable_model
        self.similarity_func = similarity_func
        self.perturb_func = perturb_func
        self.perturb_interpretable_space = perturb_interpretable_space
        self.from_interp_rep_transform = from_interp_rep_transform
        self.to_interp_rep_transform = to_interp_rep_transform

    @torch.no_grad()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: Any = None,
        additional_forward_args: Any = None,
        n_samples: int = 50,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The fitted surrogate's ``representation()`` (Tensor[1, F] for a linear model).

        Args:
            inputs: Tensor[B, ...] or a tuple of such tensors, explained as one example (each
                perturbed input gives one score: B = 1, or a model that aggregates its batch).
            target: Captum target or any pyxai target form (None: the output itself when it is
                one number per perturbed input, else the predicted class of the inputs).
                Default: None
            additional_forward_args: extra forward arguments (Tensors repeated per
                perturbation). Default: None
            n_samples: samples drawn (fewer if a generator ends). Default: 50
            perturbations_per_eval: samples per forward. Default: 1
            show_progress: progress bar. Default: False
            **kwargs: passed to every user function (Captum's ``feature_mask``, ``baselines``,
                ``num_interp_features``, ...).
        """
        xs, _ = format_inputs(inputs)
        for x in xs:
            check_same_device(self.forward_func, x)
        check_positive_int(n_samples, "n_samples")
        ppe = _check_ppe(perturbations_per_eval)
        b, dev = xs[0].shape[0], xs[0].device
        forward = ExpandingForward(forward_view(self.forward_func), format_args(
            additional_forward_args), b)
        runner = PerturbationRunner(forward)
        draw = sample_generator(self.perturb_func, inputs, kwargs)
        interps, sims, scores = [], [], []
        scorer = _Scorer(target, forward, xs)
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=math.ceil(n_samples / ppe), desc=progress_label(type(self)))
        try:
            done = False
            while len(interps) < n_samples and not done:
                chunk = []
                while len(chunk) < ppe and len(interps) < n_samples:
                    try:
                        sample = draw()
                    except StopIteration:
                        warnings.warn("Generator completed prior to given n_samples iterations!",
                                      UserWarning, stacklevel=3)
                        done = True
                        break
                    if self.perturb_interpretable_space:
                        interp, model_in = sample, self.from_interp_rep_transform(
                            sample, inputs, **kwargs)
                    else:
                        interp, model_in = self.to_interp_rep_transform(
                            sample, inputs, **kwargs), sample
                    sims.append(as_weight(self.similarity_func(inputs, model_in, interp,
                                                               **kwargs)))
                    chunk.append(model_in)
                    interps.append(torch.as_tensor(interp).reshape(1, -1).to(dev))
                if chunk:
                    scores.append(scorer(runner.forward(_cat(chunk)), len(chunk)))
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        if not interps:
            raise ValueError("perturb_func produced no samples")
        model = copy.deepcopy(self.interpretable_model)
        own = own_model(model)
        interp = torch.cat(interps)
        if own:
            captum_fit_draws(interp.shape[1])
        return fit_surrogate(model, own, interp, torch.cat(scores), torch.tensor(sims, device=dev))


class _Scorer:
    """One score per perturbed input of a chunk's outputs (Captum's target selection), the
    target resolved once (``None`` on outputs of more than one number per input: the predicted
    class of the clean inputs, one extra forward)."""

    def __init__(self, target: Any, forward: Callable, xs: Inputs) -> None:
        self.target, self.forward, self.xs = target, forward, xs
        self.resolved: ResolvedTarget | None = None

    def __call__(self, outputs: Any, k: int) -> torch.Tensor:
        out = as_output(outputs)
        if self.target is not None or out.numel() != k:
            if self.resolved is None:  # resolved for the B rows of one perturbed input
                if self.target is None:
                    with torch.inference_mode():
                        clean = as_output(self.forward(*self.xs))
                else:
                    clean = out[: self.xs[0].shape[0]] if out.dim() else out
                self.resolved = resolve_target(self.target, clean)
            out = self.resolved(out)
        if out.numel() != k:
            raise ValueError(f"forward_func gave {out.numel()} scores for {k} perturbed inputs; "
                             "it must give one per perturbed input (after the target)")
        return out.reshape(k).float()
