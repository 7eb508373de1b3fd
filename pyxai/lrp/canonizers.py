"""Canonizers: model rewrites that make LRP rules applicable (SPECS §7.4), done on a view.

A canonizer rewrites the modules of a :class:`pyxai.engine.view.ModelView` — never the user's
model: merged weights are new tensors *replacing* the view module's parameters, inserted modules
and patched forwards live on the view's module objects only. Nothing needs undoing (the view is
dropped after the call), and two threads canonizing one model never see each other's changes.

* :class:`SequentialMergeBatchNorm` folds every BatchNorm that directly follows a Linear-type leaf
  (in registration order) into that layer (or, Zennit's per-layer ``register(linears, batch_norm)``,
  one given BatchNorm into the given layers): ``W' = W s``, ``b' = (b - mean) s + beta`` with
  ``s = gamma / sqrt(var + eps)``; the view's BatchNorm becomes the identity (mean 0, var 1,
  weight 1, bias 0; ``eps`` is kept, as Zennit does). The merged tensors are computed with autograd
  on, so relevances stay differentiable w.r.t. the model's parameters (``create_graph=True``).
* :class:`ResidualBlockCanonizer` rewrites torchvision ResNet ``BasicBlock``/``Bottleneck`` (and any
  block with their attributes, such as ``pyxai.models.demo_cnn``'s) so the residual addition is a
  :class:`~pyxai.lrp.layers.Sum` module over ``stack([identity, out], -1)``, which composites give
  the Norm rule.
* :class:`AttributeCanonizer` (Zennit's): any attributes a user's ``attribute_map(name, module)``
  returns (patched forwards, inserted modules), set on the view's modules.
* ``VGGCanonizer`` = merge; ``ResNetCanonizer`` = merge + residual blocks; ``"auto"`` picks by
  looking at the model.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence, Union

import torch
from torch import nn

from pyxai.engine.view import ModelView
from pyxai.lrp import types
from pyxai.lrp.layers import Sum


class Canonizer:
    """Base class: :meth:`apply` rewrites the modules of a view (``ModelView.module``) in place."""

    def apply(self, view: nn.Module) -> None:
        """Rewrite ``view`` (the root module of a :class:`ModelView`; never a user's model)."""
        raise NotImplementedError

    def register(self, model: nn.Module) -> CanonizerHandle:
        """Zennit's interface: canonize the user's ``model`` *in place* (the user asks for it)
        until ``handle.remove()`` (or :meth:`remove`) restores every parameter, buffer, child
        module and forward the rewrite touched. pyxai's own LRP/CRP never call this: they
        canonize a view (:func:`canonize`)."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        return self._registered(CanonizerHandle(model.modules()), lambda: self.apply(model))

    def _registered(self, handle: CanonizerHandle | _AttributeHandle, rewrite: Callable[[], None]
                    ) -> CanonizerHandle | _AttributeHandle:
        """Run ``rewrite()`` on user modules, undoable by ``handle`` (taken before it), returned."""
        try:
            rewrite()
        except BaseException:
            handle.remove()
            raise
        self.__dict__.setdefault("_handles", []).append(handle)
        return handle

    def remove(self) -> None:
        """Undo every :meth:`register` of this canonizer, newest first."""
        handles = self.__dict__.get("_handles", [])
        while handles:
            handles.pop().remove()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CanonizerHandle:
    """Undo record of one :meth:`Canonizer.register`: the parameter, buffer and child dicts and
    instance-level ``forward`` of every module the rewrite may touch, before the rewrite."""

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self._saved: list | None = [
            (m, dict(m._parameters), dict(m._buffers), dict(m._modules), m.__dict__.get("forward"),
             "forward" in m.__dict__)
            for m in modules
        ]

    def remove(self) -> None:
        """Restore the model (idempotent)."""
        if self._saved is None:
            return
        for m, params, buffers, modules, forward, had_forward in self._saved:
            m._parameters.clear()
            m._parameters.update(params)
            m._buffers.clear()
            m._buffers.update(buffers)
            m._modules.clear()
            m._modules.update(modules)
            if had_forward:
                m.__dict__["forward"] = forward
            else:
                m.__dict__.pop("forward", None)
        self._saved = None


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    children = list(module.children())
    if not children:
        yield module
    for child in children:
        yield from _leaves(child)


def _replace(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace a parameter or buffer of a view module by a new tensor (the old one is untouched)."""
    if name in module._buffers:
        module._buffers[name] = value
    else:
        module._parameters[name] = value  # a plain tensor: the view's own, not a user Parameter


class SequentialMergeBatchNorm(Canonizer):
    """Merge each BatchNorm that directly follows a Linear-type leaf module into it."""

    def apply(self, view: nn.Module) -> None:
        last = None
        for leaf in _leaves(view):
            if isinstance(last, types.Linear) and isinstance(leaf, types.BatchNorm):
                self._merge([last], leaf)
            last = leaf

    def register(self, model, batch_norm: nn.Module | None = None) -> CanonizerHandle:
        """``register(model)``: :meth:`Canonizer.register`. ``register(linears, batch_norm)``:
        Zennit's per-layer ``MergeBatchNorm.register``: fold ``batch_norm`` into each of
        ``linears`` (one Linear-type module or a list of them, e.g. parallel branches the
        BatchNorm follows) in place, until ``handle.remove()``.

        Examples::

            >>> handle = SequentialMergeBatchNorm().register([model.conv1], model.bn1)
        """
        if batch_norm is None:
            return super().register(model)
        linears = [model] if isinstance(model, nn.Module) else []
        if isinstance(model, (list, tuple)):
            linears = list(model)
        if not linears or not all(isinstance(m, types.Linear) for m in linears):
            raise TypeError(
                f"linears must be a Linear-type module or a non-empty list of them, got {model!r}"
            )
        if not isinstance(batch_norm, types.BatchNorm):
            raise TypeError(f"batch_norm must be a BatchNorm module, got {type(batch_norm).__name__}")
        for m in linears:
            out = m.out_channels if isinstance(m, types.Convolution) else m.out_features
            if out != batch_norm.num_features:
                raise ValueError(f"batch_norm has {batch_norm.num_features} features but linears has a "
                                 f"{type(m).__name__} with {out} outputs")
        return self._registered(CanonizerHandle([*linears, batch_norm]),
                                lambda: self._merge(linears, batch_norm))

    @staticmethod
    def _merge(linears: list[nn.Module], bn: nn.Module) -> None:
        if bn.running_mean is None or bn.running_var is None or bn.weight is None or bn.bias is None:
            raise ValueError(
                f"cannot merge {type(bn).__name__} without running statistics and affine parameters; "
                "pass canonizers=None"
            )
        scale = bn.weight / (bn.running_var + bn.eps) ** 0.5
        for linear in linears:
            w = linear.weight
            if isinstance(linear, types.ConvolutionTranspose):
                index = (None, slice(None), *((None,) * (w.dim() - 2)))
            else:
                index = (slice(None), *((None,) * (w.dim() - 1)))
            bias = linear.bias if linear.bias is not None else torch.zeros_like(bn.running_mean)
            _replace(linear, "weight", w * scale[index])
            _replace(linear, "bias", (bias - bn.running_mean) * scale + bn.bias)
        _replace(bn, "running_mean", torch.zeros_like(bn.running_mean))
        _replace(bn, "running_var", torch.ones_like(bn.running_var))
        _replace(bn, "weight", torch.ones_like(bn.weight))
        _replace(bn, "bias", torch.zeros_like(bn.bias))


def _is_block(module: nn.Module) -> str | None:
    """'basic' / 'bottleneck' for torchvision-style residual blocks, else None."""
    name = type(module).__name__
    need = ("conv1", "bn1", "conv2", "bn2", "relu", "downsample")
    if not all(hasattr(module, a) for a in need):
        return None
    if name == "Bottleneck" and hasattr(module, "conv3") and hasattr(module, "bn3"):
        return "bottleneck"
    if name == "BasicBlock":
        return "basic"
    return None


def _basic_forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    if self.downsample is not None:
        identity = self.downsample(x)
    out = self.canonizer_sum(torch.stack([identity, out], dim=-1))
    return self.relu(out)


def _bottleneck_forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    if self.downsample is not None:
        identity = self.downsample(x)
    out = self.canonizer_sum(torch.stack([identity, out], dim=-1))
    return self.relu(out)


class ResidualBlockCanonizer(Canonizer):
    """Make the residual addition of ResNet BasicBlock/Bottleneck blocks a ``Sum`` module."""

    def apply(self, view: nn.Module) -> None:
        for module in list(view.modules()):
            kind = _is_block(module)
            if kind is None or "canonizer_sum" in module._modules:
                continue
            fwd = _basic_forward if kind == "basic" else _bottleneck_forward
            module.canonizer_sum = Sum()
            module.forward = fwd.__get__(module)


_MISSING = object()


def _set_attributes(targets: list[tuple[nn.Module, dict]]) -> None:
    for module, attributes in targets:
        for key, value in attributes.items():
            setattr(module, key, value)


class AttributeCanonizer(Canonizer):
    """Zennit's ``AttributeCanonizer``: set the attributes ``attribute_map(name, module)`` returns
    on every module it returns a dict for (``None``: leave the module alone).

    Typical attributes are a patched ``forward`` (``types.MethodType(fn, module)``: bind it to the
    ``module`` passed in, which is the view's copy) and new child modules (``Sum()``). On a view
    (pyxai's LRP/CRP) nothing needs undoing; :meth:`register` sets them on the user's model until
    ``handle.remove()``, which restores each attribute as it was (Zennit deletes them).

    Args:
        attribute_map (callable): ``(name: str, module: nn.Module) -> dict | None``.

    Examples::

        >>> def attribute_map(name, module):
        ...     if isinstance(module, BasicBlock):
        ...         return {"forward": types.MethodType(my_forward, module), "canonizer_sum": Sum()}
        >>> lrp = pyxai.LRP(model, canonizers=[SequentialMergeBatchNorm(), AttributeCanonizer(attribute_map)])
    """

    def __init__(self, attribute_map) -> None:
        if not callable(attribute_map):
            raise TypeError(f"attribute_map must be a callable (name, module) -> dict or None, got "
                            f"{type(attribute_map).__name__}")
        self.attribute_map = attribute_map

    def _targets(self, root: nn.Module) -> list[tuple[nn.Module, dict]]:
        """(module, attributes) for every module of ``root`` the map applies to, found before any
        is set (new child modules are not visited)."""
        found = []
        for name, module in list(root.named_modules()):
            attributes = self.attribute_map(name, module)
            if attributes is None:
                continue
            if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
                raise TypeError(f"attribute_map({name!r}, ...) must return None or a dict of attribute "
                                f"names, got {type(attributes).__name__}")
            found.append((module, attributes))
        return found

    def apply(self, view: nn.Module) -> None:
        _set_attributes(self._targets(view))

    def register(self, model: nn.Module, attributes: dict | None = None) -> CanonizerHandle:
        """``register(model)``: set the attributes on the user's ``model`` in place, until
        ``handle.remove()``. ``register(module, attributes)``: Zennit's per-module form, the given
        attributes on one module."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        targets = [(model, attributes)] if attributes is not None else self._targets(model)
        return self._registered(_AttributeHandle(targets), lambda: _set_attributes(targets))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.attribute_map!r})"


class _AttributeHandle(CanonizerHandle):
    """Undo record of an :class:`AttributeCanonizer` registration: each attribute's previous value
    where it lived (parameter, buffer, child module or instance dict), or its absence."""

    def __init__(self, targets: list[tuple[nn.Module, dict]]) -> None:
        self._saved = []
        for module, attrs in targets:
            for key in attrs:
                where = next((d for d in ("_parameters", "_buffers", "_modules")
                              if key in getattr(module, d)), "__dict__")
                self._saved.append((module, key, where, getattr(module, where).get(key, _MISSING)))

    def remove(self) -> None:
        if self._saved is None:
            return
        for module, key, where, old in reversed(self._saved):
            for d in ("_parameters", "_buffers", "_modules"):
                getattr(module, d).pop(key, None)
            vars(module).pop(key, None)
            if old is not _MISSING:
                getattr(module, where)[key] = old
        self._saved = None


class CompositeCanonizer(Canonizer):
    """Several canonizers applied in order."""

    def __init__(self, canonizers: Sequence[Canonizer]) -> None:
        self.canonizers = list(canonizers)

    def apply(self, view: nn.Module) -> None:
        for c in self.canonizers:
            c.apply(view)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.canonizers!r})"


class VGGCanonizer(SequentialMergeBatchNorm):
    """Canonizer for VGG-style models: BatchNorm merging."""


class ResNetCanonizer(CompositeCanonizer):
    """Canonizer for ResNet-style models: BatchNorm merging, then residual sums as modules."""

    def __init__(self) -> None:
        super().__init__([SequentialMergeBatchNorm(), ResidualBlockCanonizer()])

    def __repr__(self) -> str:
        return "ResNetCanonizer()"


CanonizerSpec = Union[str, None, Canonizer, Sequence[Canonizer]]


def resolve_canonizers(spec: CanonizerSpec, model: nn.Module) -> list[Canonizer]:
    """``"auto"`` (ResNet blocks -> ResNetCanonizer, BatchNorm -> merge, else none), None, one
    canonizer or a list of them."""
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec != "auto":
            raise ValueError(f"canonizers must be 'auto', None, a Canonizer or a list of them, got {spec!r}")
        if any(_is_block(m) for m in model.modules()):
            return [ResNetCanonizer()]
        if any(isinstance(m, types.BatchNorm) for m in model.modules()):
            return [SequentialMergeBatchNorm()]
        return []
    if isinstance(spec, Canonizer):
        return [spec]
    spec = list(spec)
    bad = [c for c in spec if not isinstance(c, Canonizer)]
    if bad:
        raise TypeError(f"canonizers must be pyxai.lrp canonizers, got {bad[0]!r}")
    return spec


def canonize(model: nn.Module, canonizers: Sequence[Canonizer]) -> ModelView:
    """A :class:`ModelView` of ``model`` in eval mode, rewritten by ``canonizers``.

    ``model`` is not touched (its mode neither: only the view's modules are set to eval, the mode
    the BatchNorm merge assumes).

    Returns:
        The view; ``view.module`` is the canonized model to run.
    """
    view = ModelView(model)
    view.module.eval()
    for c in canonizers:
        c.apply(view.module)
    return view
