"""Custom LRP rules written the way Zennit users write them: :class:`BasicHook` and parameter modifiers.

A :class:`BasicHook` is a rule given as k passes, each an (input modifier, parameter modifier,
output modifier) triple, plus a gradient mapper and a reducer (Zennit 0.5.1's
``zennit.core.BasicHook``). For a layer ``f`` with input ``x`` and upper relevance ``R``::

    in_i  = input_modifiers[i](x)
    out_i = output_modifiers[i](f(in_i; param_modifiers[i](params)))
    g     = gradient_mapper(R, [out_1, ..., out_k])          # one tensor per pass
    grad_i = sum_j (d out_j / d in_i)^T g_j                   # one autograd.grad over all passes
    R_x   = reducer([in_1, ..., in_k], [grad_1, ..., grad_k])

Each ``f(in_i; ...)`` is the module's own forward run with ``torch.func.functional_call`` on a private
copy of the module (its own parameter dictionaries, no hooks) holding the modified parameters: the
module itself is never written to, not even for the length of a pass, so other threads may run it
meanwhile. As in Zennit, the gradient of a pass's input sums over every pass whose output depends on
that tensor: the passes whose input modifier returns its argument unchanged share one input tensor
(Zennit's ``original_input.requires_grad_()``), so each of their gradients sums over all of them; any
other modified input is a tensor of its own pass.

Parameter modifiers are :class:`ParamMod` objects (or plain callables ``(param, name) -> Tensor``,
made into one by :meth:`ParamMod.ensure`); :class:`NoMod`, :class:`ClampMod`, :class:`GammaMod` and
:func:`zero_bias` are Zennit's. pyxai's built-in rules (:mod:`pyxai.lrp.rules`) are declared
programs run by the fused ops; a BasicHook runs pass by pass, like the declared rules on layers the ops
do not cover (:func:`pyxai.lrp.rules.module_passes`), and works on any module with one tensor input
and one tensor output.

Examples::

    >>> from pyxai.rules import BasicHook, ClampMod, zero_bias
    >>> zplus = BasicHook(
    ...     input_modifiers=[lambda x: x.clamp(min=0), lambda x: x.clamp(max=0)],
    ...     param_modifiers=[ClampMod(min=0.0), ClampMod(max=0.0, zero_params=zero_bias())],
    ...     gradient_mapper=lambda g, outs: [g / (outs[0] + outs[1] + 1e-6)] * 2,
    ...     reducer=lambda ins, grads: ins[0] * grads[0] + ins[1] * grads[1])
    >>> handle = zplus.register(model.features[0])   # or Composite(layer_map=[(nn.Conv2d, zplus)])
"""

from __future__ import annotations

import contextlib
import types
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call

from pyxai.lrp.rules import Rule, _check_stabilizer, _names, _repeat_rows
from pyxai.lrp.rules import ZeroParams as Names  # a name or names of parameters
from pyxai.ops.lrp import Stab, stabilize

__all__ = ["BasicHook", "ParamMod", "NoMod", "ClampMod", "GammaMod", "zero_bias"]

#: an input or output modifier: ``(Tensor) -> Tensor``
TensorMod = Callable[[torch.Tensor], torch.Tensor]


def zero_bias(zero_params: Names = None) -> list[str]:
    """``zero_params`` with ``"bias"`` added (Zennit's ``zennit.rules.zero_bias``).

    Args:
        zero_params (str or list of str, optional): names to add ``"bias"`` to. Default: None

    Returns:
        list of str: the names, ``"bias"`` last if it was not among them.
    """
    names = list(_names(zero_params, "zero_params") or ())
    return names if "bias" in names else names + ["bias"]


def _own_module(module: nn.Module) -> nn.Module:
    """A private copy of ``module`` for running its own forward with other parameters.

    A new object with the module's attributes, its own ``_parameters`` / ``_buffers`` / ``_modules``
    dictionaries (the same tensors and children) and no hooks; an instance ``forward`` bound to the
    module (a canonizer's patched forward, pyxai's rule wrapper's original) is bound to the copy.
    """
    own = object.__new__(type(module))
    d = own.__dict__
    d.update(module.__dict__)
    for key, value in module.__dict__.items():
        if "hooks" in key and isinstance(value, dict):
            d[key] = type(value)()
    d["_parameters"] = dict(module._parameters)
    d["_buffers"] = dict(module._buffers)
    d["_modules"] = dict(module._modules)
    forward = d.get("forward")
    if forward is not None:
        forward = getattr(forward, "_pyxai_forward", forward)  # pyxai.lrp.core's rule wrapper
        if isinstance(forward, types.MethodType) and forward.__self__ is module:
            forward = types.MethodType(forward.__func__, own)
        d["forward"] = forward
    return own


class ParamMod:
    """A parameter modifier (Zennit's ``zennit.core.ParamMod``): how one pass sees the parameters.

    Args:
        modifier (callable): ``(param: Tensor, name: str) -> Tensor`` of the same shape, e.g.
            ``lambda p, name: p.clamp(min=0)``; it must return a new tensor, never write into ``param``.
        param_keys (str or list of str, optional): attributes to modify; None: every parameter of the
            module itself (not of its children), ``[]``: none (``modifier`` is unused). Default: None
        zero_params (str or list of str, optional): names among ``param_keys`` set to zero instead.
            Default: None
        require_params (bool, optional): raise when the module lacks an attribute of ``param_keys``
            (an attribute that is None is skipped either way). Default: True

    Examples::

        >>> positive = ParamMod(lambda p, name: p.clamp(min=0), zero_params="bias")
        >>> positive.params(torch.nn.Linear(3, 2))["bias"]
        tensor([0., 0.])
    """

    def __init__(self, modifier: Callable[[torch.Tensor, str], torch.Tensor], param_keys: Names = None,
                 zero_params: Names = None, require_params: bool = True) -> None:
        if not callable(modifier):
            raise TypeError(f"modifier must be a callable (param, name) -> Tensor, got {modifier!r}")
        self.modifier = modifier
        self.param_keys = _names(param_keys, "param_keys")
        self.zero_params = _names(zero_params, "zero_params") or ()
        self.require_params = bool(require_params)

    @classmethod
    def ensure(cls, modifier: ParamMod | Callable) -> ParamMod:
        """``modifier`` as a :class:`ParamMod`: as it is, or a plain callable ``(param, name) -> Tensor``
        wrapped (Zennit's ``ParamMod.ensure``). A ``zennit.core.ParamMod`` is taken over with its
        settings. Raises TypeError for anything else."""
        if isinstance(modifier, ParamMod):
            return modifier
        if all(hasattr(modifier, a) for a in ("modifier", "param_keys", "zero_params", "require_params")):
            return ParamMod(modifier.modifier, modifier.param_keys, modifier.zero_params,
                            modifier.require_params)
        if callable(modifier):
            return ParamMod(modifier)
        raise TypeError(
            f"a parameter modifier must be a pyxai.rules.ParamMod or a callable (param, name) -> Tensor, "
            f"got {modifier!r}"
        )

    def params(self, module: nn.Module, differentiable: bool = False) -> dict[str, torch.Tensor]:
        """The modified parameters of ``module``, by attribute name (for ``functional_call``).

        Args:
            module: the module whose parameters are read (never written).
            differentiable: keep the results attached to the parameters (``create_graph``); else
                they are detached.

        Returns:
            dict of str -> Tensor: each modified attribute (``param_keys``), shaped as the original.
        """
        keys = self.param_keys
        if keys is None:
            keys = tuple(name for name, _ in module.named_parameters(recurse=False))
        missing = [key for key in keys if not hasattr(module, key)]
        if missing and self.require_params:
            raise RuntimeError(
                f"{type(self).__name__} modifies {missing}, which {type(module).__name__} does not have "
                "(require_params=False skips missing parameters)"
            )
        out = {}
        for key in keys:
            value = None if key in missing else getattr(module, key)
            if value is None:
                continue
            where = f"{type(module).__name__}.{key}"
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"param_keys names {where}, a {type(value).__name__}, not a tensor")
            if key in self.zero_params:
                out[key] = torch.zeros_like(value)
                continue
            # the modifier sees a leaf that requires grad (the parameter itself, or an alias of it):
            # an in-place modification then raises before it writes into the module
            src = value if differentiable and value.requires_grad else value.detach()
            if not src.requires_grad and (src.is_floating_point() or src.is_complex()):
                src.requires_grad_()
            version = value._version
            try:
                with torch.enable_grad():
                    new = self.modifier(src, key)
            except RuntimeError as e:
                hint = " (a modifier must return a new tensor, never modify its argument in place)"
                raise RuntimeError(f"the parameter modifier {self.modifier!r} failed on {where}: {e}"
                                   f"{hint if 'in-place' in str(e) else ''}") from e
            if value._version != version:
                raise RuntimeError(
                    f"the parameter modifier {self.modifier!r} wrote into {where} in place; it must "
                    "return a new tensor (p.clamp(min=0), not p.clamp_(min=0))"
                )
            if not isinstance(new, torch.Tensor) or new.shape != value.shape:
                got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                raise ValueError(
                    f"the parameter modifier {self.modifier!r} must return a tensor shaped like "
                    f"{key} {tuple(value.shape)}, got {got}"
                )
            out[key] = new if differentiable and value.requires_grad else new.detach()
        return out

    @contextlib.contextmanager
    def __call__(self, module: nn.Module) -> Iterator[nn.Module]:
        """Zennit's ``with param_mod(module) as modified``: ``modified`` is a private copy of ``module``
        with the modified parameters (``module`` itself is left as it is)."""
        own = _own_module(module)
        for key, value in self.params(module, torch.is_grad_enabled()).items():
            table = own._parameters if key in own._parameters else (
                own._buffers if key in own._buffers else own.__dict__)
            table[key] = value
        yield own

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(modifier={self.modifier!r}, param_keys={self.param_keys!r}, "
                f"zero_params={list(self.zero_params)!r}, require_params={self.require_params})")


def _bound(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float or None, got {value!r}")
    return float(value)


class NoMod(ParamMod):
    """The parameters as they are, with :class:`ParamMod`'s options (e.g. ``NoMod(zero_params="bias")``).

    Args:
        **kwargs: ``param_keys``, ``zero_params``, ``require_params`` of :class:`ParamMod`.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(_unmodified, **kwargs)


def _unmodified(param: torch.Tensor, name: str) -> torch.Tensor:
    return param


class ClampMod(ParamMod):
    """The parameters clamped: ``p.clamp(min, max)`` (``ClampMod(min=0.0)``: the positive part).

    Args:
        min (float, optional): lower bound, or None. Default: None
        max (float, optional): upper bound, or None (one of the two is needed). Default: None
        **kwargs: ``param_keys``, ``zero_params``, ``require_params`` of :class:`ParamMod`.
    """

    def __init__(self, min: float | None = None, max: float | None = None, **kwargs) -> None:
        lo, hi = _bound(min, "min"), _bound(max, "max")
        if lo is None and hi is None:
            raise ValueError("ClampMod needs min or max (e.g. ClampMod(min=0.0): the positive part)")
        self.min, self.max = lo, hi

        def clamp(param: torch.Tensor, name: str) -> torch.Tensor:
            return param.clamp(min=lo, max=hi)

        super().__init__(clamp, **kwargs)


class GammaMod(ParamMod):
    """The parameters plus ``gamma`` times their clamped part: ``p + gamma * p.clamp(min, max)``.

    Args:
        gamma (float, optional): weight of the added part. Default: 0.25
        min (float, optional): lower bound of the added part, or None. Default: None
        max (float, optional): upper bound, or None (one of the two is needed). Default: None
        **kwargs: ``param_keys``, ``zero_params``, ``require_params`` of :class:`ParamMod`.
    """

    def __init__(self, gamma: float = 0.25, min: float | None = None, max: float | None = None,
                 **kwargs) -> None:
        lo, hi = _bound(min, "min"), _bound(max, "max")
        if lo is None and hi is None:
            raise ValueError("GammaMod needs min or max (e.g. GammaMod(0.25, min=0.0): W + 0.25 W+)")
        g = _bound(gamma, "gamma")
        if g is None:
            raise TypeError("gamma must be a float, got None")
        self.gamma, self.min, self.max = g, lo, hi

        def gamma_mod(param: torch.Tensor, name: str) -> torch.Tensor:
            return param + g * param.clamp(min=lo, max=hi)

        super().__init__(gamma_mod, **kwargs)


def _modifiers(value, name: str, check: Callable) -> tuple | None:
    if value is None:
        return None
    if callable(value) or isinstance(value, (str, torch.Tensor)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list with one modifier per pass, got {value!r}")
    out = []
    for i, mod in enumerate(value):
        try:
            out.append(check(mod))
        except TypeError as e:
            raise TypeError(f"{name}[{i}]: {e}") from None
    return tuple(out)


def _tensor_mod(mod: TensorMod) -> TensorMod:
    if not callable(mod):
        raise TypeError(f"a modifier must be a callable (Tensor) -> Tensor, got {mod!r}")
    return mod


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


class BasicHook(Rule):
    """A rule given as passes of modified forwards (Zennit 0.5.1's ``zennit.core.BasicHook``).

    See the module docstring for the computation. Lists given must have the same length k (the
    number of passes); a list not given is k identities (k = 1 when none is given).

    Args:
        input_modifiers (list of callable, optional): ``(x: Tensor[N, ...]) -> Tensor[N, ...]`` per
            pass. Default: the identity
        param_modifiers (list of ParamMod or callable, optional): per pass, a :class:`ParamMod` or a
            callable ``(param, name) -> Tensor`` applied to every parameter of the module. Default:
            the parameters as they are
        output_modifiers (list of callable, optional): ``(out: Tensor[N, ...]) -> Tensor[N, ...]``
            applied to each pass's output. Default: the identity
        gradient_mapper (callable, optional): ``(grad: Tensor[N, ...], outputs: list of Tensor) ->``
            one Tensor per pass (a list, or one Tensor when k = 1): the vectors whose vector-Jacobian
            products are taken. Default: ``grad / stab(out_i)`` for each pass
        reducer (callable, optional): ``(inputs: list of Tensor, gradients: list of Tensor) ->
            Tensor[N, ...]``, the relevance of the input. Default: ``sum_i inputs[i] * gradients[i]``
        stabilizer (float or callable, optional): the stabiliser of the default gradient mapper
            (Zennit 0.5.1 accepts this argument and ignores it, using 1e-6: the same at the
            default). Default: 1e-6

    Examples::

        >>> eps = BasicHook(param_modifiers=[NoMod(zero_params="bias")],
        ...                 gradient_mapper=lambda g, outs: g / (outs[0] + 0.1 * outs[0].sign()))
        >>> composite = pyxai.lrp.Composite(layer_map=[(torch.nn.Linear, eps)])
    """

    needs_output = False

    def __init__(
        self,
        input_modifiers: Sequence[TensorMod] | None = None,
        param_modifiers: Sequence[ParamMod | Callable] | None = None,
        output_modifiers: Sequence[TensorMod] | None = None,
        gradient_mapper: Callable | None = None,
        reducer: Callable | None = None,
        stabilizer: Stab = 1e-6,
    ) -> None:
        given = {
            "input_modifiers": _modifiers(input_modifiers, "input_modifiers", _tensor_mod),
            "param_modifiers": _modifiers(param_modifiers, "param_modifiers", ParamMod.ensure),
            "output_modifiers": _modifiers(output_modifiers, "output_modifiers", _tensor_mod),
        }
        lengths = {name: len(mods) for name, mods in given.items() if mods is not None}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the modifier lists need one entry per pass, the same number each; got "
                             f"lengths {lengths}")
        k = next(iter(lengths.values()), 1)
        if k == 0:
            raise ValueError(f"the modifier lists need at least one pass, got {lengths}")
        for name, check in (("gradient_mapper", gradient_mapper), ("reducer", reducer)):
            if check is not None and not callable(check):
                raise TypeError(f"{name} must be a callable or None, got {check!r}")
        self.input_modifiers = given["input_modifiers"] or (_identity,) * k
        self.param_modifiers = given["param_modifiers"] or tuple(NoMod() for _ in range(k))
        self.output_modifiers = given["output_modifiers"] or (_identity,) * k
        self.stabilizer = _check_stabilizer(stabilizer)
        self.gradient_mapper = gradient_mapper if gradient_mapper is not None else self._default_mapper
        self.reducer = reducer if reducer is not None else _default_reducer

    def _default_mapper(self, grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [grad / stabilize(out, self.stabilizer) for out in outputs]

    def copy(self) -> BasicHook:
        """A new rule with the same modifiers (Zennit's ``Hook.copy``; pyxai rules keep no state)."""
        other = BasicHook.__new__(type(self))
        other.__dict__.update(self.__dict__)
        return other

    def _run(self, own: nn.Module, module: nn.Module, pmod: ParamMod, inp: torch.Tensor,
             differentiable: bool) -> torch.Tensor:
        if type(pmod).__call__ is not ParamMod.__call__:  # a subclass with its own context manager
            with pmod(own) as modified:
                return modified.forward(inp)
        return functional_call(own, pmod.params(module, differentiable), (inp,), tie_weights=False,
                               strict=False)

    def backward(self, module, x, out, grad, backend=None, nonneg=False):
        """Relevance of ``x`` (Tensor[K * N, ...]) from ``grad`` (Tensor[K * N, ...]).

        Differentiable (w.r.t. ``x``, ``grad`` and the parameters) when called with grad mode on
        (``create_graph``), with the same values as without: Zennit 0.5.1 under ``create_graph=True``
        also connects each modified input to the shared unmodified one (its input modifiers then run
        on a tensor that requires grad), pyxai keeps the passes apart as in Zennit's plain backward.
        """
        differentiable = torch.is_grad_enabled()
        src = _repeat_rows(x if differentiable else x.detach(), grad.shape[0] // x.shape[0])
        own = _own_module(module)
        name = type(module).__name__
        inputs, outputs = [], []
        original = None  # the one input tensor of every pass whose input modifier returns its argument
        with torch.enable_grad():
            for in_mod, pmod, out_mod in zip(self.input_modifiers, self.param_modifiers,
                                             self.output_modifiers):
                base = src.clone()  # a modifier writing in place writes into this copy
                inp = in_mod(base)
                if not isinstance(inp, torch.Tensor):
                    raise TypeError(f"input modifier {in_mod!r} returned {type(inp).__name__}, not a Tensor")
                if inp is base:
                    if original is None:
                        original = base if base.requires_grad else base.requires_grad_()
                    inp = original
                elif not inp.requires_grad:
                    inp = inp.detach().requires_grad_()
                z = self._run(own, module, pmod, inp, differentiable)
                if not isinstance(z, torch.Tensor):
                    raise TypeError(f"BasicHook on {name}: the module returned {type(z).__name__}, "
                                    "rules need modules with one tensor output")
                inputs.append(inp)
                outputs.append(out_mod(z))
        with torch.set_grad_enabled(differentiable):
            mapped = self.gradient_mapper(grad, outputs)
        if isinstance(mapped, torch.Tensor):
            mapped = (mapped,)
        mapped = tuple(mapped) if isinstance(mapped, (list, tuple)) else mapped
        if not isinstance(mapped, tuple) or len(mapped) != len(outputs) or not all(
                isinstance(g, torch.Tensor) for g in mapped):
            got = f"{len(mapped)} values" if isinstance(mapped, tuple) else type(mapped).__name__
            raise ValueError(f"gradient_mapper must return one tensor per pass ({len(outputs)}), got {got}")
        with torch.enable_grad():
            gradients = torch.autograd.grad(outputs, inputs, mapped, create_graph=differentiable,
                                            allow_unused=True, materialize_grads=True)
        with torch.set_grad_enabled(differentiable):
            rel = self.reducer(inputs, list(gradients))
        if not isinstance(rel, torch.Tensor) or rel.shape != src.shape:
            got = tuple(rel.shape) if isinstance(rel, torch.Tensor) else type(rel).__name__
            raise ValueError(f"reducer must return the relevance of {name}'s input, shaped "
                             f"{tuple(src.shape)}; got {got}")
        return rel

    def __repr__(self) -> str:
        return f"{type(self).__name__}(passes={len(self.input_modifiers)})"


def _default_reducer(inputs: list[torch.Tensor], gradients: list[torch.Tensor]) -> torch.Tensor:
    return sum(inp * g for inp, g in zip(inputs, gradients))
