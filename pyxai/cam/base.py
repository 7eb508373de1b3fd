"""BaseCAM: the template every CAM method shares (pytorch-grad-cam's design, on the device).

The base class owns layer capture (hooks always removed), target resolution, the backward (only
down to the target layers: ``torch.autograd.grad`` w.r.t. the captured activations, no parameter
gradients), the weighted sum and ReLU, per-map normalisation, resizing to the input and the
multi-layer mean. A method overrides :meth:`BaseCAM.get_cam_weights` (Tensor[B, K] channel
weights). Everything stays on the input's device; only ``__call__`` converts to NumPy, as
pytorch-grad-cam returns.

Post-processing equals pytorch-grad-cam's ``BaseCAM``: per layer ``relu(sum_k w_k A_k)`` ->
per-map ``(c - min) / (1e-7 + max)`` -> resize (bilinear for images, cubic-spline zoom for video)
-> over layers: relu, mean, min-max again.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from pyxai.cam._resize import resize_cams, scale_cams
from pyxai.cam._targets import Scorer
from pyxai.engine.checks import check_inputs, check_same_device
from pyxai.engine.hooks import capture_layers, check_layers


class BaseCAM:
    """Class activation maps from target-layer activations and channel weights.

    Args:
        model: the ``nn.Module`` to explain (left exactly as found; not switched to eval mode).
        target_layers: modules of ``model`` whose outputs are explained; several layers are
            averaged.
        reshape_transform: callable mapping a layer output (and its gradient) to a map
            Tensor[B, K, h, w] (or Tensor[B, K, t, h, w]), e.g. for transformer tokens.
        backend: "auto" | "native" | "reference" for the ops used (perturbation methods).
    """

    uses_gradients = True

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        backend: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.target_layers = check_layers(model, target_layers)
        self.reshape_transform = reshape_transform
        self.backend = backend

    # -- what a method overrides --------------------------------------------------------------

    def get_cam_weights(
        self,
        inputs: torch.Tensor,
        layer_index: int,
        scorer: Scorer,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
    ) -> torch.Tensor:
        """Channel weights Tensor[B, K] for one layer (``activations``: Tensor[B, K, ...])."""
        raise NotImplementedError

    # -- the template ---------------------------------------------------------------------------

    def _as_map(self, t: torch.Tensor, i: int, what: str) -> torch.Tensor:
        if self.reshape_transform is not None:
            t = self.reshape_transform(t)
        if not isinstance(t, torch.Tensor) or t.dim() not in (4, 5):
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"target_layers[{i}] {what} is not a 4-D/5-D feature map (got {shape}); pass a "
                "reshape_transform that maps it to Tensor[B, K, h, w]"
            )
        return t

    def _capture(self, x: torch.Tensor, target: Any) -> tuple[list, list, Scorer]:
        """Forward (+ backward to the layers when the method uses gradients)."""
        grad = self.uses_gradients
        ctx = torch.enable_grad() if grad else torch.inference_mode()
        with ctx, capture_layers(self.target_layers, grad=grad) as cap:
            out = self.model(x)
            acts = cap.check(self.target_layers)
            if not isinstance(out, torch.Tensor) or out.shape[0] != x.shape[0]:
                raise ValueError("the model must return a Tensor with one row per input")
            scorer = Scorer.resolve(target, out.detach())
            grads: list = [None] * len(acts)
            if grad:
                scores = scorer(out, torch.arange(x.shape[0], device=x.device))
                if not scores.requires_grad:
                    raise ValueError("the model output does not depend on target_layers")
                grads = list(torch.autograd.grad(scores.sum(), acts, allow_unused=True))
                for i, g in enumerate(grads):
                    if g is None:
                        raise ValueError(
                            f"the model output does not depend on target_layers[{i}] "
                            f"({type(self.target_layers[i]).__name__})"
                        )
        self.outputs = out.detach()
        acts = [self._as_map(a.detach(), i, "output") for i, a in enumerate(acts)]
        grads = [None if g is None else self._as_map(g, i, "gradient") for i, g in enumerate(grads)]
        return acts, grads, scorer

    def layer_cams(self, inputs: torch.Tensor, target: Any = None) -> list[torch.Tensor]:
        """Per layer ``relu(sum_k w_k A_k)``: Tensor[B, h, w] (or [B, t, h, w]) at layer size."""
        if isinstance(inputs, torch.Tensor):
            check_same_device(self.model, inputs)  # first: other checks would run on its device
        x = check_inputs(inputs, "input_tensor")
        x = x.detach()
        acts, grads, scorer = self._capture(x, target)
        cams = []
        for i, (a, g) in enumerate(zip(acts, grads)):
            if a.dim() != x.dim():
                raise ValueError(
                    f"target_layers[{i}] gives a {a.dim()}-D map for a {x.dim()}-D input"
                )
            w = self.get_cam_weights(x, i, scorer, a, g).to(a.dtype)
            cam = torch.einsum("bk,bk...->b...", w, a)
            cams.append(cam.clamp_min(0))
        return cams

    def attribute(self, inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
        """The CAM, normalised to [0, 1] and resized to the input.

        Args:
            inputs: Tensor[B, C, H, W] (or Tensor[B, C, T, H, W] video) on the model's device.
            target: None (predicted class), int, sequence/Tensor[B] of ints, a list of
                pytorch-grad-cam target objects, or a callable ``outputs -> Tensor[B]``.

        Returns:
            Tensor[B, 1, H, W] (Tensor[B, 1, T, H, W] for video) in [0, 1], on the input's device.
        """
        cams = self.layer_cams(inputs, target)
        size = tuple(inputs.shape[2:])
        per_layer = torch.stack([resize_cams(scale_cams(c), size) for c in cams], 1)
        out = scale_cams(per_layer.clamp_min(0).mean(1))
        return out[:, None]

    def __call__(
        self,
        input_tensor: torch.Tensor,
        targets: Any = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> Any:
        """pytorch-grad-cam's call: ``np.ndarray[B, H, W]`` float32 in [0, 1].

        Args:
            input_tensor: Tensor[B, C, H, W] (or video Tensor[B, C, T, H, W]).
            targets: list of target objects (e.g. ``ClassifierOutputTarget(3)``) or ints, one
                per sample, or None for the predicted classes.
            aug_smooth, eigen_smooth: not supported (raise NotImplementedError when True).
        """
        if aug_smooth or eigen_smooth:
            raise NotImplementedError("aug_smooth and eigen_smooth are not supported by pyxai")
        cam = self.attribute(input_tensor, targets)[:, 0]
        return cam.detach().float().cpu().numpy()

    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None
