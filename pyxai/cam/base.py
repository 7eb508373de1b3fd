"""BaseCAM: the template every CAM method shares (pytorch-grad-cam's design, on the device).

The base class owns layer capture (on a :class:`~pyxai.engine.view.ModelView` of the model: hooks
on the view's copies of the target layers, never on the user's modules), target resolution (the
one target contract, :mod:`pyxai.engine.targets`), the backward (only down to the target layers:
``torch.autograd.grad`` w.r.t. the captured activations, no parameter gradients), the weighted sum
and ReLU, per-map normalisation, resizing to the input and the multi-layer mean. A method
overrides :meth:`BaseCAM.get_cam_weights` (Tensor[B, K] channel weights) or
:meth:`BaseCAM.get_cam_image` (the layer's map). Everything stays on the
input's device; only ``__call__`` converts to NumPy, as pytorch-grad-cam returns. Nothing is kept
between calls (pytorch-grad-cam's ``cam.outputs``: ``attribute(..., return_outputs=True)``).

Post-processing equals pytorch-grad-cam's ``BaseCAM``: per layer ``relu(sum_k w_k A_k)`` ->
per-map ``(c - min) / (1e-7 + max)`` -> resize (bilinear for images, cubic-spline zoom for video)
-> over layers: relu, mean, min-max again. With ``create_graph=True`` (gradient methods) every step
is differentiable w.r.t. the model parameters.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from pyxai.cam._resize import resize_cams, scale_cams
from pyxai.cam.projection import project_2d
from pyxai.engine.base import Explainer
from pyxai.engine.checks import check_inputs, check_same_device
from pyxai.engine.hooks import capture_layers, check_layers, model_view
from pyxai.engine.targets import ResolvedTarget, resolve_target
from pyxai.engine.view import ModelView

#: aug_smooth's intensity factors (ttach ``Multiply``), each with and without a horizontal flip.
AUG_FACTORS = (0.9, 1.0, 1.1)


class BaseCAM(Explainer):
    """Class activation maps from target-layer activations and channel weights.

    Args:
        model: the ``nn.Module`` to explain, never modified: every call runs on its own
            :class:`~pyxai.engine.view.ModelView` (not switched to eval mode; a train-mode model
            is explained as it is, with a warning, and its BatchNorm statistics do not change).
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
        super().__init__(model)
        self.model = model
        self.target_layers = check_layers(model, target_layers)
        self.reshape_transform = reshape_transform
        self.backend = backend

    # -- what a method overrides --------------------------------------------------------------

    def get_cam_weights(
        self,
        inputs: torch.Tensor,
        layer_index: int,
        target: ResolvedTarget,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        forward: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Channel weights Tensor[B, K] for one layer.

        Args:
            inputs: Tensor[B, C, ...] the (checked) inputs.
            layer_index: which of ``target_layers``.
            target: the call's resolved target (scores any output rows: ``target(out, rows)``).
            activations: Tensor[B, K, ...] the layer's feature maps.
            grads: Tensor[B, K, ...] the target's gradient w.r.t. them (None without gradients).
            forward: the model to run for more forwards: the call's
                :class:`~pyxai.engine.view.ModelView` (callable like the model).
        """
        raise NotImplementedError

    # -- the template ---------------------------------------------------------------------------

    @property
    def outputs(self) -> torch.Tensor:
        """Not kept: explainers keep no state between calls."""
        raise AttributeError(
            f"{type(self).__name__} keeps no state between calls, so there is no .outputs; use "
            "cam.attribute(x, target, return_outputs=True) to get the model outputs with the CAM"
        )

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

    def _capture(self, view: ModelView, x: torch.Tensor, target: Any, create_graph: bool,
                 name: str, input_grad: bool = False
                 ) -> tuple[list, list, ResolvedTarget, torch.Tensor, torch.Tensor | None]:
        """Forward (+ backward to the layers when the method uses gradients) on the view.

        Returns (activations, their gradients, the resolved target, the outputs, the gradient
        w.r.t. the inputs when ``input_grad`` else None)."""
        grad = self.uses_gradients
        ctx = torch.enable_grad() if grad else torch.inference_mode()
        with ctx, capture_layers(self.target_layers, grad=grad, view=view) as cap:
            if input_grad:
                x = x.detach().requires_grad_()
            out = view.module(x)
            acts = cap.check(self.target_layers)
            if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != x.shape[0]:
                raise ValueError("the model must return a Tensor with one row per input")
            resolved = resolve_target(target, out.detach(), name=name)
            grads: list = [None] * len(acts)
            x_grad = None
            if grad:
                scores = resolved(out)
                if not scores.requires_grad:
                    raise ValueError("the model output does not depend on target_layers")
                wrt = [x, *acts] if input_grad else acts
                grads = list(torch.autograd.grad(scores.sum(), wrt, allow_unused=True,
                                                 create_graph=create_graph))
                x_grad = grads.pop(0) if input_grad else None
                for i, g in enumerate(grads):
                    if g is None:
                        raise ValueError(
                            f"the model output does not depend on target_layers[{i}] "
                            f"({type(self.target_layers[i]).__name__})"
                        )
        if not create_graph:
            acts = [a.detach() for a in acts]
        acts = [self._as_map(a, i, "output") for i, a in enumerate(acts)]
        grads = [None if g is None else self._as_map(g, i, "gradient") for i, g in enumerate(grads)]
        return acts, grads, resolved, out if create_graph else out.detach(), x_grad

    def get_cam_image(
        self,
        inputs: torch.Tensor,
        layer_index: int,
        target: ResolvedTarget,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        forward: Callable[[torch.Tensor], torch.Tensor],
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        """One layer's map before the ReLU: Tensor[B, *spatial] (``sum_k w_k A_k``, or with
        ``eigen_smooth`` the first principal component of ``w_k A_k``). Methods whose map is not
        a channel-weighted sum (HiResCAM, LayerCAM, EigenCAM...) override this."""
        w = self.get_cam_weights(inputs, layer_index, target, activations, grads, forward)
        w = w.to(activations.dtype)
        if eigen_smooth:
            return project_2d(w.reshape(*w.shape, *([1] * (activations.dim() - 2))) * activations)
        return torch.einsum("bk,bk...->b...", w, activations)

    def _check_call(self, inputs: torch.Tensor, create_graph: bool) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            check_same_device(self.model, inputs)  # first: other checks would run on its device
        x = check_inputs(inputs, "input_tensor")
        if create_graph and not self.uses_gradients:
            raise ValueError(f"{type(self).__name__} does not support create_graph=True (its "
                             "weights come from forwards without gradients)")
        return x.detach()

    def _cams(self, inputs: torch.Tensor, target: Any, create_graph: bool, name: str,
              eigen_smooth: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(per layer ``relu(sum_k w_k A_k)`` at layer size, the model outputs)."""
        x = self._check_call(inputs, create_graph)
        view = model_view(self.model, frozen=not create_graph)  # no graph before the layers
        assert view is not None
        acts, grads, resolved, out, _ = self._capture(view, x, target, create_graph, name)
        cams = []
        for i, (a, g) in enumerate(zip(acts, grads)):
            if a.dim() != x.dim():
                raise ValueError(
                    f"target_layers[{i}] gives a {a.dim()}-D map for a {x.dim()}-D input"
                )
            cam = self.get_cam_image(x, i, resolved, a, g, view, eigen_smooth)
            cams.append(cam.clamp_min(0))
        return cams, out

    def layer_cams(self, inputs: torch.Tensor, target: Any = None,
                   create_graph: bool = False) -> list[torch.Tensor]:
        """Per layer ``relu(sum_k w_k A_k)``: Tensor[B, h, w] (or [B, t, h, w]) at layer size."""
        return self._cams(inputs, target, create_graph, "target")[0]

    def attribute(self, inputs: torch.Tensor, target: Any = None, create_graph: bool = False,
                  return_outputs: bool = False, aug_smooth: bool = False,
                  eigen_smooth: bool = False) -> Any:
        """The CAM, normalised to [0, 1] and resized to the input.

        Args:
            inputs: Tensor[B, C, H, W] (or Tensor[B, C, T, H, W] video) on the model's device.
            target: None (predicted class), int, sequence/Tensor[B] of ints, a list of
                pytorch-grad-cam target objects, or a callable ``(outputs) -> Tensor[B]`` /
                ``(outputs, rows) -> Tensor[R]``. Default: None
            create_graph: return a map differentiable w.r.t. the model parameters (gradient
                methods). Default: False
            return_outputs: also return the model outputs Tensor[B, ...] on the inputs (what
                pytorch-grad-cam keeps in ``cam.outputs``). Default: False
            aug_smooth: pytorch-grad-cam's test-time augmentation: the mean of the maps of the
                six inputs {x, hflip(x)} x {0.9, 1, 1.1} (each map flipped back). Default: False
            eigen_smooth: each layer's map is the first principal component of the weighted
                activations instead of their sum (:mod:`pyxai.cam.projection`). Default: False

        Returns:
            Tensor[B, 1, H, W] (Tensor[B, 1, T, H, W] for video) in [0, 1], on the input's device;
            with ``return_outputs``, (that map, the outputs).
        """
        return self._attribute(inputs, target, create_graph, return_outputs, "target",
                               aug_smooth, eigen_smooth)

    def _maps(self, inputs: torch.Tensor, target: Any, create_graph: bool, name: str,
              eigen_smooth: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(Tensor[B, *input spatial] final map, the model outputs) for one input batch."""
        cams, outputs = self._cams(inputs, target, create_graph, name, eigen_smooth)
        size = tuple(inputs.shape[2:])
        per_layer = torch.stack([resize_cams(scale_cams(c), size) for c in cams], 1)
        return scale_cams(per_layer.clamp_min(0).mean(1)), outputs

    def _attribute(self, inputs: torch.Tensor, target: Any, create_graph: bool,
                   return_outputs: bool, name: str, aug_smooth: bool = False,
                   eigen_smooth: bool = False) -> Any:
        if not aug_smooth:
            cam, outputs = self._maps(inputs, target, create_graph, name, eigen_smooth)
        else:
            if self._check_call(inputs, create_graph).dim() != 4:
                raise ValueError("aug_smooth needs image inputs Tensor[B, C, H, W]")
            maps = []
            for flip in (False, True):
                for factor in AUG_FACTORS:
                    x = inputs.flip(3) if flip else inputs
                    m, out = self._maps(x * factor, target, create_graph, name, eigen_smooth)
                    maps.append(m.flip(2) if flip else m)
                    if not flip and factor == 1:
                        outputs = out
            cam = torch.stack(maps).mean(0)
        out = cam[:, None]
        return (out, outputs) if return_outputs else out

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
            aug_smooth, eigen_smooth: as :meth:`attribute`.
        """
        cam = self._attribute(input_tensor, targets, False, False, "targets", aug_smooth,
                              eigen_smooth)[:, 0]
        return cam.detach().float().cpu().numpy()

    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None
