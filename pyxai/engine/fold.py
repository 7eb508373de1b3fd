"""BatchNorm folding on a view of the model, for explainers that need input gradients only.

An eval-mode BatchNorm is an affine map per channel. Where it reads a convolution's output and
nothing else does, the two fold into one convolution with the weights
``w * gamma / sqrt(var + eps)`` and bias ``(b - mean) * gamma / sqrt(var + eps) + beta``
(``torch.nn.utils.fusion.fuse_conv_bn_weights``): the same function, one pass over the
activations fewer forward and backward, its values equal up to float rounding.

:func:`fold_batch_norm` does this on a frozen :class:`~pyxai.engine.view.ModelView`, never on the
user's model. Which pairs fold is decided on one probe forward of the view:

* the convolution (``nn.Conv1d/2d/3d``) and the BatchNorm (eval mode, running statistics) each run
  once, neither has hooks (a hook on the convolution would see its output change meaning);
* the BatchNorm's input *is* the convolution's output tensor;
* no other torch call reads that tensor (recorded by a thread-local ``TorchFunctionMode``; calls
  that only read its metadata, such as ``size``, do not count).

At run time the folded BatchNorm checks that it still receives the folded convolution's output and
raises otherwise, so a model whose wiring changes with the input never gives a silently wrong
result. The view's parameters do not require grad: gradients w.r.t. inputs only.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from pyxai.engine.view import ModelView, is_training

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: torch calls that read a tensor's metadata only (folding changes values, not these)
_METADATA = {"size", "dim", "numel", "__len__", "__get__", "is_contiguous", "stride",
             "element_size", "nelement", "ndimension", "is_floating_point", "is_complex"}


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _hooked(module: nn.Module) -> bool:
    """Whether a forward or backward hook is registered on ``module``."""
    return any(len(getattr(module, k, None) or {}) for k in _HOOKS)


def _global_hooks() -> bool:
    from torch.nn.modules import module as m

    return any(len(getattr(m, "_global" + k, None) or {}) for k in _HOOKS)


class _Reads(TorchFunctionMode):
    """Counts, per watched tensor (by id, while alive), the torch calls that read its values."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: dict[int, torch.Tensor] = {}
        self.reads: dict[int, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name not in _METADATA:
            for a in tree_flatten((args, kwargs))[0]:
                if isinstance(a, torch.Tensor) and id(a) in self.watched \
                        and self.watched[id(a)] is a:
                    self.reads[id(a)] += 1
        return func(*args, **kwargs)


class _FoldedConv(nn.Module):
    """A convolution with a BatchNorm folded in; remembers its last output for the check."""

    def __init__(self, conv: nn.Module, bn: _BatchNorm) -> None:
        super().__init__()
        with torch.no_grad():
            w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                        bn.eps, bn.weight, bn.bias)
        self.conv = ModelView(conv, frozen=True).module  # own _parameters dict, shared tensors
        self.conv._parameters["weight"] = w.detach()
        self.conv._parameters["bias"] = b.detach()
        self.last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = self.conv(x)
        return self.last


class _FoldedBatchNorm(nn.Module):
    """Identity in place of a folded BatchNorm: checks it reads the folded convolution's output."""

    def __init__(self, conv: _FoldedConv, name: str) -> None:
        super().__init__()
        self.__dict__["_conv"] = conv  # not a submodule
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last, self._conv.last = self._conv.last, None
        if x is not last:
            raise RuntimeError(
                f"fold_batch_norm: BatchNorm {self.name!r} did not receive the output of the "
                "convolution folded into it (the model's wiring depends on its input); pass "
                "fold_batch_norm=False")
        return x


def _named(root: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    """id(module) -> every (parent, attribute name) that holds it."""
    out: dict[int, list[tuple[nn.Module, str]]] = {}
    for _, parent in root.named_modules(remove_duplicate=False):
        for key, child in parent._modules.items():
            if child is not None:
                out.setdefault(id(child), []).append((parent, key))
    return out


def fold_batch_norm(forward_func: Callable[..., Any], probe: torch.Tensor
                    ) -> Callable[..., Any]:
    """``forward_func`` with its eval-mode BatchNorms folded into the convolutions they read.

    Args:
        forward_func: the model (anything else is returned as it is, as are a TorchScript
            module, a model in training mode, one without BatchNorm and one where nothing
            folds).
        probe: Tensor[N, ...] a model input, run once (no grad) to see which pairs fold.

    Returns:
        a frozen view of the model with the folded pairs (input gradients only), or
        ``forward_func``.
    """
    model = forward_func
    if not isinstance(model, nn.Module) or isinstance(model, torch.jit.ScriptModule) \
            or is_training(model) or _global_hooks() \
            or not any(isinstance(m, _BatchNorm) for m in model.modules()):
        return forward_func
    view = ModelView(model, frozen=True).module
    convs = [m for m in view.modules() if type(m) in _CONVS and not _hooked(m)]
    bns = [m for m in view.modules() if isinstance(m, _BatchNorm) and not _hooked(m)
           and m.track_running_stats and m.running_mean is not None and m.running_var is not None]
    calls: dict[int, list[torch.Tensor]] = {id(m): [] for m in convs + bns}
    reads = _Reads()

    def conv_hook(module, args, out):
        calls[id(module)].append(out)
        if isinstance(out, torch.Tensor):
            reads.watched[id(out)] = out
            reads.reads[id(out)] = 0

    def bn_hook(module, args):
        calls[id(module)].append(args[0] if len(args) == 1 else None)

    handles = [m.register_forward_hook(conv_hook) for m in convs]
    handles += [m.register_forward_pre_hook(bn_hook) for m in bns]
    try:
        with torch.no_grad(), reads:
            view(probe)
    except Exception as e:  # the explainer's own forward reports the model's errors
        warnings.warn(f"fold_batch_norm: the probe forward failed ({e}); nothing is folded",
                      stacklevel=3)
        return forward_func
    finally:
        for h in handles:
            h.remove()
    # the tensor output of each convolution that ran once (outputs and inputs stay alive in
    # calls, so equal ids are the same tensor)
    producer = {id(c[0]): conv for conv in convs
                if len(c := calls[id(conv)]) == 1 and isinstance(c[0], torch.Tensor)}
    holders = _named(view)
    names = {id(m): n for n, m in view.named_modules()}
    folded = 0
    for bn in bns:
        seen = calls[id(bn)]
        if len(seen) != 1 or id(seen[0]) not in producer or reads.reads[id(seen[0])] != 1:
            continue  # not run once on a convolution's output that only it reads
        conv = producer[id(seen[0])]
        if conv.out_channels != bn.num_features:
            continue
        fused = _FoldedConv(conv, bn)
        for parent, key in holders.get(id(conv), []):
            parent._modules[key] = fused
        for parent, key in holders.get(id(bn), []):
            parent._modules[key] = _FoldedBatchNorm(fused, names.get(id(bn), "?"))
        folded += 1
    return view if folded else forward_func
