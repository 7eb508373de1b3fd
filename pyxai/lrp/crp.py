"""``pyxai.CRP``: concept relevance propagation and relevance maximization (zennit-crp's semantics).

Conditional heatmaps (SPECS §7.5): the relevance arriving at a layer's output (from the target, as
LRP computes it) is masked to one concept's channels and propagated from that layer down to the
input; relevance through branches parallel to the layer is excluded (zennit-crp's
``exclude_parallel=True``). Many concepts are explained in one backward: the model runs once on the
batch, then the part below the layer runs on ``K`` replicas of the batch where every rule computes
its ``z`` once for all replicas (:mod:`pyxai.lrp.core`), and one backward carries the ``K x B``
masked relevances.

Relevance maximization (``FeatureVisualization.run`` of zennit-crp): over a data set, for every channel
of a layer, the top-k samples ranked by the channel's relevance (and, for comparison, its
activation), with the most relevant (active) spatial neuron; :meth:`CRP.reference_heatmaps` gives
their conditional heatmaps starting at the layer (initial relevance = activation), cropped to the
receptive field of that neuron as zennit-crp's ``vis_opaque_img`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, Union

import torch
from torch import nn

from pyxai.engine.checks import check_output_batch
from pyxai.engine.sync import hot_path
from pyxai.engine.targets import Target
from pyxai.lrp.explainer import _PropagationBase, _Run

ConceptSpec = Mapping[str, Sequence[Union[int, Sequence[int]]]]


class _StopForward(Exception):
    """Raised by a capture hook to end the forward pass once the needed layer has run."""


@dataclass
class TopK:
    """The top-k samples of every channel of one layer.

    Attributes:
        indices: Tensor[k, C] int64 sample indices (position in the data set, 0-based), best first.
        scores: Tensor[k, C] their channel scores (sum or max over space, optionally abs-normed).
        neurons: Tensor[k, C] int64 flat spatial index of the channel's most relevant / active
            neuron in that sample.
    """

    indices: torch.Tensor
    scores: torch.Tensor
    neurons: torch.Tensor


@dataclass
class ReferenceSamples:
    """Relevance and activation maximization results of one layer."""

    layer: str
    relevance: TopK
    activation: TopK
    n_samples: int = 0
    notes: dict = field(default_factory=dict)


def _channel_scores(t: torch.Tensor, max_target: str, abs_norm: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """zennit-crp's ``ChannelConcept.reference_sampling`` per sample: (scores [B, C], neuron [B, C])."""
    flat = t.reshape(t.shape[0], t.shape[1], -1)
    neuron = flat.argmax(-1)
    if max_target == "sum":
        score = flat.sum(-1)
    else:
        score = flat.gather(-1, neuron[..., None]).squeeze(-1)
    if abs_norm:
        score = score / (score.abs().sum(-1, keepdim=True) + 1e-10)
    return score, neuron


def _merge(best: TopK | None, scores, neurons, offset: int, k: int) -> TopK:
    idx = torch.arange(offset, offset + scores.shape[0], device=scores.device)[:, None].expand_as(scores)
    if best is not None:
        scores = torch.cat([best.scores, scores])
        neurons = torch.cat([best.neurons, neurons])
        idx = torch.cat([best.indices, idx])
    order = torch.sort(scores, dim=0, descending=True, stable=True).indices[:k]
    return TopK(idx.gather(0, order), scores.gather(0, order), neurons.gather(0, order))


def _gaussian_blur(h: torch.Tensor, kernel_size: int = 19) -> torch.Tensor:
    """torchvision's ``gaussian_blur`` (sigma from the kernel size, reflect padding) on [N, H, W]."""
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, kernel_size, dtype=h.dtype, device=h.device)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    pad = kernel_size // 2
    img = h[:, None]
    if min(h.shape[-2:]) > pad:
        img = torch.nn.functional.pad(img, (pad, pad, pad, pad), mode="reflect")
        kernel = (k1[:, None] * k1[None, :])[None, None]
        return torch.nn.functional.conv2d(img, kernel)[:, 0]
    return h


def crop_to_receptive_field(
    image: torch.Tensor, heatmap: torch.Tensor, crop_th: float = 0.1, kernel_size: int = 19
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop an image and its heatmap to where the blurred, max-normed heatmap exceeds ``crop_th``.

    As zennit-crp's ``vis_opaque_img(rf=True)`` / ``get_crop_range``: the rows/columns from the first
    to (excluding) the last above the threshold; no crop when that region is empty.

    Args:
        image: Tensor[C, H, W]; heatmap: Tensor[H, W] (channel-summed relevance).

    Returns:
        (image crop Tensor[C, h, w], heatmap crop Tensor[h, w]).
    """
    filt = _gaussian_blur(heatmap[None].double(), kernel_size)[0]
    filt = filt / (filt.max() + 1e-10)
    rows, cols = torch.where(filt > crop_th)
    if len(rows) == 0:
        return image, heatmap
    r1, r2, c1, c2 = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
    if r1 >= r2 and c1 >= c2:
        return image, heatmap
    return image[..., r1:r2, c1:c2], heatmap[r1:r2, c1:c2]


class CRP(_PropagationBase):
    """Concept relevance propagation: conditional heatmaps for many concepts of a layer at once.

    Args: as :class:`pyxai.LRP` (``model``, ``composite``, ``canonizers``, ``epsilon``, ``gamma``,
    ``low``, ``high``, ``stabilizer``, ``zero_params``, ``output_relevance``, ``backend``,
    ``allow_training``).

    Every call works on its own canonized view of the model and keeps no state: one CRP object
    may serve many threads at once.

    Examples::

        >>> crp = pyxai.CRP(model, composite="epsilon_plus_flat")
        >>> maps = crp.attribute(x, target=3, concepts={"features.28": [3, 17]})  # [B, 2, C, H, W]
        >>> rel = crp.channel_relevances(x, target=3, layers=["features.28"])     # {name: [B, C]}
    """

    # ------------------------------------------------------------------------------------------
    # checks

    def _named(self) -> dict[str, nn.Module]:
        return dict(self.model.named_modules())

    def _check_layers(self, names: Iterable[str], modules: Mapping[str, nn.Module]) -> None:
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"layer names must be strings, got {name!r}")
            if name not in modules or name == "":
                some = [n for n in modules if n][:8]
                raise ValueError(f"layer {name!r} is not in the model; its layers include {some} ...")

    @staticmethod
    def _n_channels(module: nn.Module) -> int | None:
        for attr in ("out_channels", "out_features", "num_features"):
            if isinstance(getattr(module, attr, None), int):
                return getattr(module, attr)
        return None

    def _concepts(self, concepts: ConceptSpec) -> dict[str, list[list[int]]]:
        if not isinstance(concepts, Mapping) or not concepts:
            raise ValueError("concepts must be a non-empty dict {layer name: [channel ids]}")
        modules = self._named()
        self._check_layers(concepts, modules)
        out: dict[str, list[list[int]]] = {}
        for name, ids in concepts.items():
            if isinstance(ids, (int, torch.Tensor)) and not isinstance(ids, bool):
                ids = torch.as_tensor(ids).reshape(-1).tolist()
            groups = []
            for c in ids:
                group = [int(c)] if isinstance(c, (int, torch.Tensor)) else [int(v) for v in c]
                if not group:
                    raise ValueError(f"concepts[{name!r}] contains an empty channel group")
                groups.append(group)
            if not groups:
                raise ValueError(f"concepts[{name!r}] is empty")
            n = self._n_channels(modules[name])
            if n is not None:
                self._check_ids(name, groups, n)
            out[name] = groups
        return out

    @staticmethod
    def _check_ids(name: str, groups: list[list[int]], n: int) -> None:
        bad = [c for g in groups for c in g if c < 0 or c >= n]
        if bad:
            raise ValueError(f"concept ids {bad} out of range for layer {name!r} with {n} channels")

    # ------------------------------------------------------------------------------------------
    # forward / backward helpers

    def _forward_capture(
        self, run: _Run, x: torch.Tensor, layers: Sequence[str], stop_at: str | None = None
    ):
        """Run the call's view on x, capturing the outputs of ``layers``; optionally stop after
        ``stop_at``. Returns (model output or None, {name: output})."""
        captured: dict[str, torch.Tensor] = {}
        modules = run.modules()
        handles = []

        def hook_for(name):
            def hook(module, args, output):
                if not isinstance(output, torch.Tensor):
                    raise TypeError(f"layer {name!r} returns {type(output).__name__}, not a Tensor")
                captured[name] = output
                if name == stop_at and all(n in captured for n in layers):
                    raise _StopForward

            return hook

        try:
            for name in layers:
                handles.append(modules[name].register_forward_hook(hook_for(name)))
            try:
                out = run.model(x)
            except _StopForward:
                out = None
        finally:
            for h in handles:
                h.remove()
        if out is not None:
            check_output_batch(out, x.shape[0])
        missing = [n for n in layers if n not in captured]
        if missing:
            raise ValueError(f"layers {missing} were not run by the model's forward pass")
        return out, captured

    def _layer_relevances(self, run: _Run, x: torch.Tensor, target: Target, layers: Sequence[str]):
        """(outputs, init, {name: activation}, {name: relevance at the output of the layer})."""
        out, acts = self._forward_capture(run, x, layers)
        init, _ = self._initial_relevance(out, target)
        rels = torch.autograd.grad(out, [acts[n] for n in layers], init)
        return out, init, acts, dict(zip(layers, rels))

    def _replicated_backward(
        self, run: _Run, x: torch.Tensor, layer: str, rel_rows: torch.Tensor, k: int
    ) -> torch.Tensor:
        """Relevance of the input for ``k`` blocks of relevance at ``layer``'s output.

        ``rel_rows``: Tensor[k * B, ...] (block-major). Runs the view's part up to ``layer`` on k
        replicas of x (rules compute their z once per replica set) and backpropagates all at once.
        """
        x_rep = x.detach().repeat(k, *([1] * (x.dim() - 1))).requires_grad_(True)
        run.session.replicas = k
        try:
            _, acts = self._forward_capture(run, x_rep, [layer], stop_at=layer)
        finally:
            run.session.replicas = 1
        with hot_path(x.device):  # the replicated rules' backward: no host sync
            (rel,) = torch.autograd.grad(acts[layer], x_rep, rel_rows.to(acts[layer].dtype))
        return rel

    # ------------------------------------------------------------------------------------------
    # public API

    def attribute(
        self,
        inputs: torch.Tensor,
        target: Target = None,
        concepts: ConceptSpec | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Conditional heatmaps of many concepts.

        Args:
            inputs (Tensor): Tensor[B, C, H, W] (or any Tensor[B, ...] the model takes).
            target (optional): as :meth:`pyxai.LRP.attribute`. Default: None (predicted class)
            concepts (dict): ``{layer name: [channel, ...]}``; an entry may be a list of channels
                (one concept made of several channels). Concepts of several layers are
                concatenated in dict order.
            batch_size (int, optional): most rows (concepts x samples) per backward. Default: all

        Returns:
            Tensor[B, n_concepts, C, H, W]: relevance of every input element for each concept.
        """
        self._check(inputs)
        groups = self._concepts(concepts)
        x = inputs.detach().clone().requires_grad_(True)
        b = x.shape[0]
        results = []
        run = self._prepare()
        with torch.enable_grad():
            names = list(groups)
            _, _, acts, rels = self._layer_relevances(run, x, target, names)
            for name in names:
                r = rels[name]
                self._check_ids(name, groups[name], r.shape[1])
                masks = torch.zeros(len(groups[name]), r.shape[1], dtype=r.dtype, device=r.device)
                for i, g in enumerate(groups[name]):
                    masks[i, g] = 1
                step = len(groups[name]) if batch_size is None else max(1, batch_size // b)
                for start in range(0, len(groups[name]), step):
                    m = masks[start : start + step]
                    k = m.shape[0]
                    masked = r[None] * m.reshape(k, 1, -1, *([1] * (r.dim() - 2)))
                    rows = masked.reshape(k * b, *r.shape[1:])
                    rel = self._replicated_backward(run, x, name, rows, k)
                    results.append(rel.reshape(k, b, *x.shape[1:]).transpose(0, 1))
        return torch.cat(results, dim=1).detach()

    def channel_relevances(
        self, inputs: torch.Tensor, target: Target = None, layers: Sequence[str] | str = (),
        abs_norm: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Relevance of every channel of the given layers (zennit-crp's ``ChannelConcept.attribute``).

        Returns:
            {layer name: Tensor[B, C]} (spatial sums; divided by the sum of their absolute values
            per sample when ``abs_norm``).
        """
        self._check(inputs)
        layers = [layers] if isinstance(layers, str) else list(layers)
        if not layers:
            raise ValueError("layers must name at least one layer")
        self._check_layers(layers, self._named())
        x = inputs.detach().clone().requires_grad_(True)
        run = self._prepare()
        with torch.enable_grad():
            _, _, _, rels = self._layer_relevances(run, x, target, layers)
        out = {}
        for name, r in rels.items():
            s = r.detach().reshape(r.shape[0], r.shape[1], -1).sum(-1)
            out[name] = s / (s.abs().sum(-1, keepdim=True) + 1e-10) if abs_norm else s
        return out

    def relevance_maximization(
        self,
        data: Iterable,
        layers: Sequence[str] | str,
        k: int = 40,
        target: Union[str, Target] = "label",
        max_target: str = "sum",
        abs_norm: bool = True,
    ) -> dict[str, ReferenceSamples]:
        """Top-k reference samples per channel, ranked by relevance and by activation.

        Args:
            data: any iterable of batches: ``Tensor[B, ...]`` or ``(inputs, labels, ...)`` tuples.
                Sample indices count from 0 across batches in iteration order.
            layers: layer name(s).
            k: samples kept per channel (zennit-crp keeps 40). Default: 40
            target: ``"label"`` (the batch's labels, as zennit-crp), or any LRP target (None:
                predicted class). Default: "label"
            max_target: ``"sum"`` or ``"max"`` over space. Default: "sum"
            abs_norm: divide each sample's channel scores by their absolute sum. Default: True

        Returns:
            {layer name: ReferenceSamples}
        """
        layers = [layers] if isinstance(layers, str) else list(layers)
        if not layers:
            raise ValueError("layers must name at least one layer")
        self._check_layers(layers, self._named())
        if max_target not in ("sum", "max"):
            raise ValueError(f"max_target must be 'sum' or 'max', got {max_target!r}")
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}")
        best_r: dict[str, TopK | None] = {n: None for n in layers}
        best_a: dict[str, TopK | None] = {n: None for n in layers}
        seen = 0
        run = self._prepare()
        for batch in data:
            if isinstance(batch, (tuple, list)):
                xb, labels = batch[0], (batch[1] if len(batch) > 1 else None)
            else:
                xb, labels = batch, None
            if target == "label":
                if labels is None:
                    raise ValueError("target='label' needs batches of (inputs, labels)")
                tgt = torch.as_tensor(labels).reshape(-1).long()
            else:
                tgt = target
            self._check(xb)
            x = xb.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                _, _, acts, rels = self._layer_relevances(run, x, tgt, layers)
            for name in layers:
                rs, rn = _channel_scores(rels[name].detach(), max_target, abs_norm)
                a_s, an = _channel_scores(acts[name].detach(), max_target, abs_norm)
                best_r[name] = _merge(best_r[name], rs, rn, seen, k)
                best_a[name] = _merge(best_a[name], a_s, an, seen, k)
            seen += x.shape[0]
        if seen == 0:
            raise ValueError("data yielded no batches")
        return {n: ReferenceSamples(n, best_r[n], best_a[n], seen) for n in layers}

    def reference_heatmaps(
        self,
        data: Iterable,
        refs: ReferenceSamples,
        channels: Sequence[int] | int,
        mode: str = "relevance",
        r_range: tuple[int, int] = (0, 8),
        rf: bool = True,
        crop: bool = True,
    ) -> dict[int, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Reference samples of channels with their conditional heatmaps (zennit-crp's
        ``get_max_reference`` + ``vis_opaque_img``).

        The heatmap of a reference sample starts at ``refs.layer`` with the layer's activation as
        initial relevance, masked to the channel (and, with ``rf``, to its stored neuron), and is
        summed over the input channels. With ``crop`` the image and heatmap are cropped to the
        receptive field (blurred heatmap above 10 % of its maximum).

        Args:
            data: the same iterable of batches given to :meth:`relevance_maximization`.
            refs: its result for one layer. channels: channel id(s).
            mode: "relevance" or "activation" ranking. r_range: ranks [first, last).

        Returns:
            {channel: [(image Tensor[C, h, w], heatmap Tensor[h, w]), ...]} best first.
        """
        if mode not in ("relevance", "activation"):
            raise ValueError(f"mode must be 'relevance' or 'activation', got {mode!r}")
        top = refs.relevance if mode == "relevance" else refs.activation
        channels = [channels] if isinstance(channels, int) else [int(c) for c in channels]
        self._check_ids(refs.layer, [channels], top.indices.shape[1])
        lo, hi = r_range
        rows = [(c, int(top.indices[r, c]), int(top.neurons[r, c]))
                for c in channels for r in range(lo, min(hi, top.indices.shape[0]))]
        wanted = sorted({i for _, i, _ in rows})
        samples = _fetch(data, wanted)
        x = torch.stack([samples[i] for _, i, _ in rows]).detach().requires_grad_(True)
        run = self._prepare()
        with torch.enable_grad():
            _, acts = self._forward_capture(run, x, [refs.layer], stop_at=refs.layer)
            a = acts[refs.layer]
            mask = torch.zeros_like(a).reshape(a.shape[0], a.shape[1], -1)
            for j, (c, _, n) in enumerate(rows):
                if rf:
                    mask[j, c, n] = 1
                else:
                    mask[j, c] = 1
            (rel,) = torch.autograd.grad(a, x, a.detach() * mask.reshape(a.shape))
        heat = rel.detach().sum(1)
        out: dict[int, list] = {c: [] for c in channels}
        for j, (c, _, _) in enumerate(rows):
            img, h = x[j].detach(), heat[j]
            if crop and rf:
                img, h = crop_to_receptive_field(img, h)
            out[c].append((img, h))
        return out


def _fetch(data: Iterable, indices: Sequence[int]) -> dict[int, torch.Tensor]:
    """Samples at global positions ``indices`` from an iterable of batches."""
    want = set(indices)
    got: dict[int, torch.Tensor] = {}
    seen = 0
    for batch in data:
        xb = batch[0] if isinstance(batch, (tuple, list)) else batch
        for j in range(xb.shape[0]):
            if seen + j in want:
                got[seen + j] = xb[j]
        seen += xb.shape[0]
        if len(got) == len(want):
            break
    missing = want - set(got)
    if missing:
        raise ValueError(f"data has no samples at positions {sorted(missing)[:8]}")
    return got


__all__ = ["CRP", "ReferenceSamples", "TopK", "crop_to_receptive_field"]
