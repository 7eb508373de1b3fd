"""LRP rules: how one layer passes relevance back (Zennit's semantics, SPECS §7.2).

A rule is a small, stateless configuration object; one instance may serve many modules. The rules
of Linear-type layers are *declared*, once, as a :class:`pyxai.ops.lrp.Program` — Zennit's
modifier idea: for each pass an input modifier (x, x+, x-, 1, the box bounds), a parameter
modifier of the weight and of the bias, a sign; for each denominator an output modifier (scale,
which output units) — and a stabiliser ``stab(z) = z + eps * sign(z)`` with ``sign(0) = +1``.
As in Zennit 0.5.1, every Linear-type rule takes ``zero_params`` (parameter names treated as zero
in its modified forward passes; the layer's own output, which Gamma's output mask reads, keeps
them) and its stabiliser (``epsilon`` for Epsilon, ``stabilizer`` for the others) as a float or
a callable ``(Tensor) -> Tensor`` returning the stabilised denominator (:class:`Stabilizer`, or
Zennit's own). A callable other than a plain :class:`Stabilizer` cannot be fused: the stabilise /
divide step then runs in PyTorch on every backend (same numbers on both).
The same declaration is executed by the batched ops (:mod:`pyxai.ops.lrp`: fused native kernels
or their reference twins) and, for layers the ops do not cover (transposed convolutions, non-zero
padding modes), pass by pass through the module's own forward (:func:`module_passes`).
Custom rules in Zennit's form (``BasicHook`` with ``ParamMod`` / ``NoMod`` / ``ClampMod`` /
``GammaMod``, ``zero_bias``) live in :mod:`pyxai.lrp.basic_hook` and are exported here.

Examples::

    >>> from pyxai import rules
    >>> composite = pyxai.lrp.Composite(layer_map=[(torch.nn.Conv2d, rules.Gamma(0.5)),
    ...                                            (torch.nn.Linear, rules.Epsilon(1e-3))])
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Union

import torch
from torch import nn
from torch.func import functional_call

from pyxai.lrp.layers import Sum
from pyxai.ops import lrp as lrp_ops
from pyxai.ops.lrp import NEGATIVE, POSITIVE, ZERO, Part, Program, Stab, Term, modify, stabilize

__all__ = [
    "Rule", "Epsilon", "Gamma", "AlphaBeta", "ZPlus", "ZBox", "Flat", "WSquare", "Pass", "Norm",
    "Stabilizer", "BasicHook", "ParamMod", "NoMod", "ClampMod", "GammaMod", "zero_bias",
]

#: the parameters of Linear-type layers, the names ``zero_params`` may hold
PARAM_NAMES = ("weight", "bias")
ZeroParams = Union[str, Iterable[str], None]


class Stabilizer:
    """A stabiliser for a rule's denominator (Zennit's ``zennit.core.Stabilizer``).

    ``stab(z) = z + eps * sign(z)`` (``clip=False``) or ``sign(z) * max(|z|, eps)`` (``clip=True``),
    with ``sign(0) = +1``; ``norm_scale=True`` scales ``eps`` by ``sqrt(mean(z ** 2))`` over
    ``dim`` (every dimension but the batch's by default). Without ``clip`` and ``norm_scale`` it is
    the rules' plain float stabiliser, which the fused kernels run.

    Args:
        epsilon (float, optional): Default: 1e-6
        clip (bool, optional): clip ``|z|`` at ``eps`` instead of adding it. Default: False
        norm_scale (bool, optional): scale ``eps`` by the root mean square of ``z``. Default: False
        dim (tuple of int, optional): dimensions of the root mean square. Default: None (all but 0)

    Examples::

        >>> rule = pyxai.rules.Epsilon(epsilon=Stabilizer(0.25, norm_scale=True))
    """

    def __init__(self, epsilon: float = 1e-6, clip: bool = False, norm_scale: bool = False,
                 dim: tuple | None = None) -> None:
        self.epsilon = _check_eps(epsilon, "epsilon")
        self.clip, self.norm_scale = bool(clip), bool(norm_scale)
        self.dim = None if dim is None else tuple(int(d) for d in dim)

    @property
    def plain(self) -> bool:
        """Whether this is ``z + eps * sign(z)`` (a float stabiliser)."""
        return not (self.clip or self.norm_scale)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Tensor[N, ...] -> the stabilised Tensor[N, ...]."""
        sign = torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
        eps = self.epsilon
        if self.norm_scale:
            dim = self.dim if self.dim is not None else tuple(range(1, z.dim()))
            eps = eps * (z * z).mean(dim=dim, keepdim=True).sqrt()
        if self.clip:
            return sign * z.abs().clamp(min=eps)
        return z + sign * eps

    def __repr__(self) -> str:
        return (f"Stabilizer(epsilon={self.epsilon!r}, clip={self.clip}, norm_scale={self.norm_scale}, "
                f"dim={self.dim})")


def _check_eps(value, name: str, alternative: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite float{alternative}, got {value!r}")
    return float(value)


def _check_stabilizer(value, name: str = "stabilizer") -> Stab:
    """A rule's stabiliser argument as a float, or a callable (Zennit's ``Stabilizer.ensure``)."""
    if isinstance(value, Stabilizer) and value.plain:
        return value.epsilon
    if callable(value):
        return value
    return _check_eps(value, name, " or a callable (Tensor) -> Tensor (e.g. pyxai.rules.Stabilizer)")


def _names(value: ZeroParams, name: str) -> tuple[str, ...] | None:
    """A name or an iterable of names as a tuple (None stays None); TypeError naming ``name``."""
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else value
    try:
        names = tuple(names)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{name} must be a parameter name or a list of names, got {value!r}")
    return names


def _check_zero_params(value: ZeroParams) -> tuple[str, ...]:
    """``zero_params`` as a tuple of names (Zennit: a name or a list of names, None for none)."""
    names = _names(value, "zero_params") or ()
    unknown = [n for n in names if n not in PARAM_NAMES]
    if unknown:
        raise ValueError(f"zero_params names parameters of Linear-type layers, {PARAM_NAMES}; got {unknown}")
    return tuple(dict.fromkeys(names))


def _zeroed(prog: Program, zero_params: tuple[str, ...]) -> Program:
    """``prog`` with the named parameters set to zero in every pass."""
    if not zero_params:
        return prog

    def term(t: Term) -> Term:
        return dataclasses.replace(
            t, weight=ZERO if "weight" in zero_params else t.weight,
            bias=None if "bias" in zero_params else t.bias,
        )

    parts = tuple(dataclasses.replace(p, terms=tuple(term(t) for t in p.terms)) for p in prog.parts)
    return dataclasses.replace(prog, parts=parts)


def _output_view(stabilizer: Callable, shape: tuple) -> Callable:
    """A callable stabiliser seeing ``z`` in the module's output ``shape`` (Linear on [N, ..., C])."""

    def stab(z: torch.Tensor) -> torch.Tensor:
        return stabilizer(z.reshape(shape)).reshape(z.shape)

    return stab


class Rule:
    """Base class: a rule maps (module, stored input, stored output, upper relevance) -> relevance."""

    #: whether the rule reads the stored output (else it is not kept)
    needs_output = False

    def backward(
        self, module: nn.Module, x: torch.Tensor, out: torch.Tensor | None, grad: torch.Tensor,
        backend: str | None = None, nonneg: bool = False,
    ) -> torch.Tensor:
        """Relevance of ``x`` (Tensor[K * N, ...]) from ``grad`` (Tensor[K * N, ...] at the output).

        ``x`` and ``out`` hold N rows; ``grad`` may hold K blocks of N rows (CRP's concepts).
        ``nonneg``: ``x >= 0`` is known (from the graph, never from reading ``x``).
        """
        raise NotImplementedError

    def register(self, module: nn.Module):
        """Zennit's interface: apply this rule to ``module`` (the user's own module, as the user
        asks) until ``handle.remove()``. Returns a handle with ``remove()``
        (:mod:`pyxai.lrp.hook`)."""
        from pyxai.lrp.hook import register

        return register(self, module)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _repeat_rows(t: torch.Tensor, k: int) -> torch.Tensor:
    return t if k == 1 else t.repeat(k, *([1] * (t.dim() - 1)))


def _conv_padding(module: nn.Module) -> list[int] | None:
    """Integer zero padding of a standard convolution, or None when the op cannot express it."""
    if getattr(module, "padding_mode", "zeros") != "zeros":
        return None
    pad = module.padding
    if isinstance(pad, str):
        if pad == "valid":
            return [0] * len(module.kernel_size)
        total = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)]
        if any(t % 2 for t in total):
            return None  # asymmetric 'same' padding
        return [t // 2 for t in total]
    return list(pad)


class _DeclaredRule(Rule):
    """A rule for Linear-type layers (Linear, Conv*d, ConvTranspose*d), declared by :meth:`declare`.

    ``zero_params`` (set by each rule's constructor) applies to every declared pass.
    """

    zero_params: tuple[str, ...] = ()

    def declare(self) -> Program:
        """The rule as a :class:`pyxai.ops.lrp.Program`."""
        raise NotImplementedError

    def program(self) -> Program:
        """:meth:`declare` with ``zero_params`` applied, built once per rule object."""
        prog = self.__dict__.get("_program")
        if prog is None:
            prog = self.__dict__["_program"] = _zeroed(self.declare(), self.zero_params)
        return prog

    def bounds(self) -> tuple:
        return None, None

    def backward(self, module, x, out, grad, backend=None, nonneg=False):
        prog = self.program()
        weight = module.weight
        bias = getattr(module, "bias", None)
        lo, hi = self.bounds()
        if isinstance(module, nn.Linear):
            cin, cout = x.shape[-1], grad.shape[-1]
            if callable(prog.stabilizer) and x.dim() != 2:
                view = _output_view(prog.stabilizer, (*x.shape[:-1], cout))
                prog = dataclasses.replace(prog, stabilizer=view)
            if lo is not None:
                lo, hi = (lrp_ops._box(v, x, n).reshape(-1, cin) for v, n in ((lo, "low"), (hi, "high")))
            rel = lrp_ops.lrp_linear(
                x.reshape(-1, cin), grad.reshape(-1, cout), weight, bias,
                None if out is None else out.reshape(-1, cout), prog, lo, hi, nonneg, backend=backend,
            )
            return rel.reshape(grad.shape[0], *x.shape[1:])
        padding = _conv_padding(module) if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) else None
        if padding is not None:
            return lrp_ops.lrp_conv(
                x, grad, weight, bias, out, list(module.stride), padding, list(module.dilation),
                module.groups, prog, lo, hi, nonneg, backend=backend,
            )
        return module_passes(prog, module, x, out, grad, lo, hi)


class Epsilon(_DeclaredRule):
    """LRP-epsilon: ``R_i = x_i sum_j W_ji R_j / stab_eps(z_j)``, z = the layer output (eps=0: LRP-0).

    Args:
        epsilon (float or callable, optional): stabiliser added with the sign of z, or a callable
            ``(z) -> stabilised z`` (:class:`Stabilizer`). Default: 1e-6
        zero_params (str or list of str, optional): parameters (``"weight"``, ``"bias"``) treated
            as zero, e.g. ``"bias"``: ``z = W x``. Default: None
    """

    needs_output = True

    def __init__(self, epsilon: Stab = 1e-6, zero_params: ZeroParams = None) -> None:
        self.epsilon = _check_stabilizer(epsilon, "epsilon")
        self.zero_params = _check_zero_params(zero_params)

    def declare(self) -> Program:
        return Program((Part((Term("x"),)),), self.epsilon)


class ZPlus(_DeclaredRule):
    """LRP-z+ (alpha=1, beta=0): positive contributions ``W+ x+ + W- x-`` (+ b+) only.

    Args:
        stabilizer (float or callable, optional): Default: 1e-6
        zero_params (str or list of str, optional): as :class:`Epsilon`. Default: None
    """

    def __init__(self, stabilizer: Stab = 1e-6, zero_params: ZeroParams = None) -> None:
        self.stabilizer = _check_stabilizer(stabilizer)
        self.zero_params = _check_zero_params(zero_params)

    def declare(self) -> Program:
        positive = Part((Term("pos", POSITIVE, POSITIVE), Term("neg", NEGATIVE, None)))
        return Program((positive,), self.stabilizer)


class AlphaBeta(_DeclaredRule):
    """LRP-alpha-beta: ``alpha * positive part - beta * negative part`` (alpha - beta = 1).

    Args:
        alpha (float, optional): Default: 2.0
        beta (float, optional): Default: 1.0
        stabilizer (float or callable, optional): Default: 1e-6
        zero_params (str or list of str, optional): as :class:`Epsilon`. Default: None
    """

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: Stab = 1e-6,
                 zero_params: ZeroParams = None) -> None:
        if alpha < 0 or beta < 0:
            raise ValueError(f"AlphaBeta needs alpha >= 0 and beta >= 0, got alpha={alpha}, beta={beta}")
        if alpha - beta != 1:
            raise ValueError(f"AlphaBeta needs alpha - beta == 1, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.stabilizer = _check_stabilizer(stabilizer)
        self.zero_params = _check_zero_params(zero_params)

    def declare(self) -> Program:
        positive = Part((Term("pos", POSITIVE, POSITIVE), Term("neg", NEGATIVE, None)), self.alpha)
        negative = Part((Term("pos", NEGATIVE, NEGATIVE), Term("neg", POSITIVE, None)), -self.beta)
        return Program((positive, negative), self.stabilizer)


class Gamma(_DeclaredRule):
    """LRP-gamma, generalised to negative inputs (Zennit >= 0.5).

    Output units with ``z > 0`` pass relevance through ``(W + gamma W+) x+ + (W + gamma W-) x-``
    (bias ``b + gamma b+``), units with ``z < 0`` through ``(W + gamma W-) x+ + (W + gamma W+) x-``
    (bias ``b + gamma b-``), units with ``z == 0`` pass nothing. For ``x >= 0`` and ``z > 0`` this is
    the original Gamma rule.

    Args:
        gamma (float, optional): weight of the added positive (negative) parts. Default: 0.25
        stabilizer (float or callable, optional): Default: 1e-6
        generalized (bool, optional): False gives Zennit <= 0.4's rule, one pass with
            ``W + gamma W+`` and ``b + gamma b+`` for every unit. Default: True
        zero_params (str or list of str, optional): as :class:`Epsilon`; the output mask
            (``z > 0`` / ``z < 0``) is the layer's own output, unmodified, as in Zennit. Default: None
    """

    def __init__(self, gamma: float = 0.25, stabilizer: Stab = 1e-6, generalized: bool = True,
                 zero_params: ZeroParams = None) -> None:
        self.gamma, self.generalized = float(gamma), bool(generalized)
        self.stabilizer = _check_stabilizer(stabilizer)
        self.zero_params = _check_zero_params(zero_params)

    @property
    def needs_output(self) -> bool:  # type: ignore[override]
        return self.generalized

    def declare(self) -> Program:
        up, down = (1.0, self.gamma, 0.0), (1.0, 0.0, self.gamma)
        if not self.generalized:
            return Program((Part((Term("x", up, up),)),), self.stabilizer)
        positive = Part((Term("pos", up, up), Term("neg", down, None)), where="pos")
        negative = Part((Term("pos", down, down), Term("neg", up, None)), where="neg")
        return Program((positive, negative), self.stabilizer)


class ZBox(_DeclaredRule):
    """LRP-z^B for bounded inputs: ``R = x g_x - low g_low - high g_high``.

    Args:
        low (float or Tensor): lowest input values (scalar, per-channel ``Tensor[C]`` or anything
            broadcastable to the input).
        high (float or Tensor): highest input values.
        stabilizer (float or callable, optional): Default: 1e-6
        zero_params (str or list of str, optional): as :class:`Epsilon`. Default: None
    """

    def __init__(self, low, high, stabilizer: Stab = 1e-6, zero_params: ZeroParams = None) -> None:
        self.low, self.high = low, high
        self.stabilizer = _check_stabilizer(stabilizer)
        self.zero_params = _check_zero_params(zero_params)

    def declare(self) -> Program:
        terms = (Term("x"), Term("low", POSITIVE, POSITIVE, -1.0), Term("high", NEGATIVE, NEGATIVE, -1.0))
        return Program((Part(terms),), self.stabilizer)

    def bounds(self) -> tuple:
        return self.low, self.high


class Flat(_DeclaredRule):
    """LRP-flat: relevance spread uniformly over each output's receptive field (weights 1, no bias).

    Args:
        stabilizer (float or callable, optional): Default: 1e-6
        zero_params (str or list of str, optional): as :class:`Epsilon` (Flat: its weights are
            ones and it has no bias; ``"weight"`` makes them zero). Default: None
    """

    def __init__(self, stabilizer: Stab = 1e-6, zero_params: ZeroParams = None) -> None:
        self.stabilizer = _check_stabilizer(stabilizer)
        self.zero_params = _check_zero_params(zero_params)

    def declare(self) -> Program:
        return Program((Part((Term("ones", "ones", None),)),), self.stabilizer)


class WSquare(_DeclaredRule):
    """LRP-w²: ``R_i = sum_j W_ji² R_j / stab(sum_i W_ji² + b_j²)`` (the bias enters squared).

    Args:
        stabilizer (float or callable, optional): Default: 1e-6
        zero_params (str or list of str, optional): as :class:`Epsilon`. Default: None
    """

    def __init__(self, stabilizer: Stab = 1e-6, zero_params: ZeroParams = None) -> None:
        self.stabilizer = _check_stabilizer(stabilizer)
        self.zero_params = _check_zero_params(zero_params)

    def declare(self) -> Program:
        return Program((Part((Term("ones", "square", "square"),)),), self.stabilizer)


class Pass(Rule):
    """Pass the relevance through unchanged (activations, un-merged BatchNorm)."""

    def backward(self, module, x, out, grad, backend=None, nonneg=False):
        if grad.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"rule Pass on {type(module).__name__} needs an output shaped like its input, got "
                f"{tuple(x.shape)} -> {tuple(grad.shape)}"
            )
        return grad


class Norm(Rule):
    """Normalise by the output and weight by each input's contribution (sum and average pooling).

    ``R_i = x_i (dz/dx_i)^T (R / stab(z))`` for a parameter-free module ``z = f(x)``.

    Args:
        stabilizer (float or callable, optional): Default: 1e-6
    """

    needs_output = True

    def __init__(self, stabilizer: Stab = 1e-6) -> None:
        self.stabilizer = _check_stabilizer(stabilizer)

    def backward(self, module, x, out, grad, backend=None, nonneg=False):
        k = grad.shape[0] // x.shape[0]
        if isinstance(module, Sum) and out is not None and out.dim() >= 2:  # dz/dx: a broadcast
            if callable(self.stabilizer):
                s = grad / _repeat_rows(stabilize(out, self.stabilizer), k)
            else:
                s = lrp_ops.lrp_stab_div(grad, out, self.stabilizer, backend)  # fused on native
            return _repeat_rows(x, k) * s.unsqueeze(module.dim)
        xx = _repeat_rows(x, k)
        z, vjp = torch.func.vjp(module.forward, xx)
        s = grad / (stabilize(z, self.stabilizer) if out is None
                    else _repeat_rows(stabilize(out, self.stabilizer), k))
        return xx * vjp(s)[0]


# ----------------------------------------------------------------------------------------------
# pass-by-pass execution (Zennit's way) for modules the ops do not cover


def module_passes(
    rule: Program, module: nn.Module, x: torch.Tensor, out: torch.Tensor | None, grad: torch.Tensor,
    low: torch.Tensor | float | None = None, high: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Run a declared rule through the module's own forward, one pass per term (any Linear-type).

    Each term is ``functional_call(module, modified parameters, modified input)`` with its
    vector-Jacobian product (``torch.func.vjp``, so the result stays differentiable); the parts
    are combined as the ops do (:mod:`pyxai.ops.lrp`).
    """
    k = grad.shape[0] // x.shape[0]
    x = _repeat_rows(x, k)
    out = None if out is None else _repeat_rows(out, k)
    w = module.weight
    b = getattr(module, "bias", None)
    inputs = {"x": x, "pos": x.clamp(min=0), "neg": x.clamp(max=0), "ones": torch.ones_like(x)}
    if rule.bounds:
        inputs["low"] = lrp_ops._box(low, x, "low")
        inputs["high"] = lrp_ops._box(high, x, "high")

    def run(t: Term):
        params = {"weight": modify(w, t.weight)}
        if b is not None:
            params["bias"] = modify(b, t.bias) if t.bias is not None else torch.zeros_like(b)
        return torch.func.vjp(lambda inp: functional_call(module, params, (inp,)), inputs[t.input])

    z0 = None
    if any(p.where != "all" for p in rule.parts):
        z0 = out if out is not None else run(Term("x"))[0]
    rel = None
    for part in rule.parts:
        passes = [(t, *run(t)) for t in part.terms]
        z = sum(t.sign * zt for t, zt, _ in passes)
        s = part.scale * grad / stabilize(z, rule.stabilizer)
        if part.where != "all":
            s = s * ((z0 > 0) if part.where == "pos" else (z0 < 0)).to(s.dtype)
        for t, _, vjp in passes:
            g = vjp(s)[0]
            r = t.sign * (g if t.input == "ones" else inputs[t.input] * g)
            rel = r if rel is None else rel + r
    return rel


# custom rules in Zennit's form (defined after Rule, which they extend)
from pyxai.lrp.basic_hook import (  # noqa: E402
    BasicHook,
    ClampMod,
    GammaMod,
    NoMod,
    ParamMod,
    zero_bias,
)
