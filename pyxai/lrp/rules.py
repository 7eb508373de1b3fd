"""LRP rules: how one layer passes relevance back (Zennit's semantics, SPECS §7.2).

A rule is a small, stateless configuration object; one instance may serve many modules. Its
:meth:`Rule.backward` gets the module, the layer input ``x`` stored in the forward pass, the stored
output (``None`` when it was modified in place afterwards) and the relevance at the output, and
returns the relevance of ``x``. Linear and convolution layers go through :mod:`pyxai.ops.lrp`
(native kernels or their reference); modules the ops do not cover (transposed convolutions,
non-zero padding modes) take a pass-by-pass path that mirrors Zennit's hooks.

The stabiliser is ``stab(z) = z + eps * sign(z)`` with ``sign(0) = +1`` everywhere.

Examples::

    >>> from pyxai import rules
    >>> composite = pyxai.lrp.Composite(layer_map=[(torch.nn.Conv2d, rules.Gamma(0.5)),
    ...                                            (torch.nn.Linear, rules.Epsilon(1e-3))])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call

from pyxai.lrp.layers import Sum
from pyxai.ops import lrp as lrp_ops
from pyxai.ops.lrp import _stab

__all__ = [
    "Rule", "Epsilon", "Gamma", "AlphaBeta", "ZPlus", "ZBox", "Flat", "WSquare", "Pass", "Norm",
]


class Rule:
    """Base class: a rule maps (module, stored input, stored output, upper relevance) -> relevance."""

    #: whether the rule reads the stored output (else it is not kept)
    needs_output = False

    def backward(
        self, module: nn.Module, x: torch.Tensor, out: torch.Tensor | None, grad: torch.Tensor,
        backend: str | None = None,
    ) -> torch.Tensor:
        """Relevance of ``x`` (Tensor[K * N, ...]) from ``grad`` (Tensor[K * N, ...] at the output).

        ``x`` and ``out`` hold N rows; ``grad`` may hold K blocks of N rows (CRP's concepts).
        """
        raise NotImplementedError

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


class _WeightRule(Rule):
    """A rule for Linear-type layers (Linear, Conv*d, ConvTranspose*d) run by ``pyxai.ops.lrp``."""

    op_rule = ""

    def params(self) -> list[float]:
        raise NotImplementedError

    def bounds(self) -> tuple:
        return None, None

    def backward(self, module, x, out, grad, backend=None):
        weight = module.weight
        bias = getattr(module, "bias", None)
        if isinstance(module, nn.Linear):
            cin, cout = x.shape[-1], grad.shape[-1]
            lo, hi = self.bounds()
            if lo is not None:
                lo, hi = (torch.as_tensor(v, dtype=x.dtype, device=x.device).expand_as(x).reshape(-1, cin)
                          for v in (lo, hi))
            rel = lrp_ops.lrp_linear(
                x.reshape(-1, cin), grad.reshape(-1, cout), weight, bias,
                None if out is None else out.reshape(-1, cout), self.op_rule, self.params(), lo, hi,
                backend=backend,
            )
            return rel.reshape(grad.shape[0], *x.shape[1:])
        padding = _conv_padding(module) if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) else None
        if padding is not None:
            lo, hi = self.bounds()
            return lrp_ops.lrp_conv(
                x, grad, weight, bias, out, list(module.stride), padding, list(module.dilation),
                module.groups, self.op_rule, self.params(), lo, hi, backend=backend,
            )
        return _generic_backward(self.op_rule, self.params(), self.bounds(), module, x, out, grad)


class Epsilon(_WeightRule):
    """LRP-epsilon: ``R_i = x_i sum_j W_ji R_j / stab_eps(z_j)``, z = the layer output (eps=0: LRP-0).

    Args:
        epsilon (float, optional): stabiliser added with the sign of z. Default: 1e-6
    """

    op_rule = "epsilon"
    needs_output = True

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = float(epsilon)

    def params(self) -> list[float]:
        return [self.epsilon]


class ZPlus(_WeightRule):
    """LRP-z+ (alpha=1, beta=0): positive contributions ``W+ x+ + W- x-`` (+ b+) only.

    Args:
        stabilizer (float, optional): Default: 1e-6
    """

    op_rule = "zplus"

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = float(stabilizer)

    def params(self) -> list[float]:
        return [self.stabilizer]


class AlphaBeta(_WeightRule):
    """LRP-alpha-beta: ``alpha * positive part - beta * negative part`` (alpha - beta = 1).

    Args:
        alpha (float, optional): Default: 2.0
        beta (float, optional): Default: 1.0
        stabilizer (float, optional): Default: 1e-6
    """

    op_rule = "alpha_beta"

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6) -> None:
        if alpha < 0 or beta < 0:
            raise ValueError(f"AlphaBeta needs alpha >= 0 and beta >= 0, got alpha={alpha}, beta={beta}")
        if alpha - beta != 1:
            raise ValueError(f"AlphaBeta needs alpha - beta == 1, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta, self.stabilizer = float(alpha), float(beta), float(stabilizer)

    def params(self) -> list[float]:
        return [self.alpha, self.beta, self.stabilizer]


class Gamma(_WeightRule):
    """LRP-gamma, generalised to negative inputs (Zennit >= 0.5).

    Output units with ``z > 0`` pass relevance through ``(W + gamma W+) x+ + (W + gamma W-) x-``
    (bias ``b + gamma b+``), units with ``z < 0`` through ``(W + gamma W-) x+ + (W + gamma W+) x-``
    (bias ``b + gamma b-``), units with ``z == 0`` pass nothing. For ``x >= 0`` and ``z > 0`` this is
    the original Gamma rule.

    Args:
        gamma (float, optional): weight of the added positive (negative) parts. Default: 0.25
        stabilizer (float, optional): Default: 1e-6
        generalized (bool, optional): False gives Zennit <= 0.4's rule, one pass with
            ``W + gamma W+`` and ``b + gamma b+`` for every unit. Default: True
    """

    op_rule = "gamma"

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6, generalized: bool = True) -> None:
        self.gamma, self.stabilizer, self.generalized = float(gamma), float(stabilizer), bool(generalized)

    @property
    def needs_output(self) -> bool:  # type: ignore[override]
        return self.generalized

    def params(self) -> list[float]:
        return [self.gamma, self.stabilizer, 1.0 if self.generalized else 0.0]


class ZBox(_WeightRule):
    """LRP-z^B for bounded inputs: ``R = x g_x - low g_low - high g_high``.

    Args:
        low (float or Tensor): lowest input values (scalar, per-channel ``Tensor[C]`` or anything
            broadcastable to the input).
        high (float or Tensor): highest input values.
        stabilizer (float, optional): Default: 1e-6
    """

    op_rule = "zbox"

    def __init__(self, low, high, stabilizer: float = 1e-6) -> None:
        self.low, self.high, self.stabilizer = low, high, float(stabilizer)

    def params(self) -> list[float]:
        return [self.stabilizer]

    def bounds(self) -> tuple:
        return self.low, self.high


class Flat(_WeightRule):
    """LRP-flat: relevance spread uniformly over each output's receptive field (weights 1, no bias).

    Args:
        stabilizer (float, optional): Default: 1e-6
    """

    op_rule = "flat"

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = float(stabilizer)

    def params(self) -> list[float]:
        return [self.stabilizer]


class WSquare(_WeightRule):
    """LRP-w²: ``R_i = sum_j W_ji² R_j / stab(sum_i W_ji² + b_j²)`` (the bias enters squared).

    Args:
        stabilizer (float, optional): Default: 1e-6
    """

    op_rule = "wsquare"

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = float(stabilizer)

    def params(self) -> list[float]:
        return [self.stabilizer]


class Pass(Rule):
    """Pass the relevance through unchanged (activations, un-merged BatchNorm)."""

    def backward(self, module, x, out, grad, backend=None):
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
        stabilizer (float, optional): Default: 1e-6
    """

    needs_output = True

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = float(stabilizer)

    def backward(self, module, x, out, grad, backend=None):
        k = grad.shape[0] // x.shape[0]
        if isinstance(module, Sum) and out is not None:  # dz/dx is a broadcast: no autograd needed
            s = grad / _stab(_repeat_rows(out, k), self.stabilizer)
            return _repeat_rows(x, k) * s.unsqueeze(module.dim)
        xx = _repeat_rows(x, k).detach().requires_grad_(True)
        with torch.enable_grad():
            z = module.forward(xx)
        zs = z.detach() if out is None else _repeat_rows(out, k)
        s = grad / _stab(zs, self.stabilizer)
        (g,) = torch.autograd.grad(z, xx, s)
        return xx.detach() * g


# ----------------------------------------------------------------------------------------------
# pass-by-pass path (Zennit's way) for modules the ops do not cover


def _generic_backward(
    rule: str, params: Sequence[float], bounds: tuple, module: nn.Module, x: torch.Tensor,
    out: torch.Tensor | None, grad: torch.Tensor,
) -> torch.Tensor:
    """Rule backward through the module's own forward with modified parameters (any Linear-type)."""
    k = grad.shape[0] // x.shape[0]
    x = _repeat_rows(x, k).detach()
    out = None if out is None else _repeat_rows(out, k)
    w = module.weight.detach()
    b = None if getattr(module, "bias", None) is None else module.bias.detach()

    def run(inp: torch.Tensor, wm: torch.Tensor, bm: torch.Tensor | None):
        inp = inp.detach().requires_grad_(True)
        p = {"weight": wm}
        if b is not None:
            p["bias"] = bm if bm is not None else torch.zeros_like(b)
        with torch.enable_grad():
            z = functional_call(module, p, (inp,))
        return z, inp

    def vjp(z, inp, s):
        return torch.autograd.grad(z, inp, s, retain_graph=True)[0]

    def pos(t):
        return None if t is None else t.clamp(min=0)

    def neg(t):
        return None if t is None else t.clamp(max=0)

    xp, xn = x.clamp(min=0), x.clamp(max=0)
    if rule == "epsilon":
        z, inp = run(x, w, b)
        zz = z.detach() if out is None else out
        return x * vjp(z, inp, grad / _stab(zz, params[0]))
    if rule in ("flat", "wsquare"):
        wm = torch.ones_like(w) if rule == "flat" else w * w
        bm = None if rule == "flat" or b is None else b * b
        z, inp = run(torch.ones_like(x), wm, bm)
        return vjp(z, inp, grad / _stab(z.detach(), params[0]))
    if rule == "zbox":
        lo = lrp_ops._box(bounds[0], x, "low")
        hi = lrp_ops._box(bounds[1], x, "high")
        passes = [run(x, w, b), run(lo, w.clamp(min=0), pos(b)), run(hi, w.clamp(max=0), neg(b))]
        den = passes[0][0] - passes[1][0] - passes[2][0]
        s = grad / _stab(den.detach(), params[0])
        return x * vjp(*passes[0], s) - lo * vjp(*passes[1], s) - hi * vjp(*passes[2], s)
    if rule == "gamma" and params[2] == 0.0:
        a = w + params[0] * w.clamp(min=0)
        ba = None if b is None else b + params[0] * b.clamp(min=0)
        z, inp = run(x, a, ba)
        return x * vjp(z, inp, grad / _stab(z.detach(), params[1]))
    if rule == "zplus":
        p1, p2 = run(xp, w.clamp(min=0), pos(b)), run(xn, w.clamp(max=0), None)
        s = grad / _stab((p1[0] + p2[0]).detach(), params[0])
        return xp * vjp(*p1, s) + xn * vjp(*p2, s)
    if rule == "alpha_beta":
        alpha, beta, stab = params
        p1, p2 = run(xp, w.clamp(min=0), pos(b)), run(xn, w.clamp(max=0), None)
        p3, p4 = run(xp, w.clamp(max=0), neg(b)), run(xn, w.clamp(min=0), None)
        s_t = grad / _stab((p1[0] + p2[0]).detach(), stab)
        s_b = grad / _stab((p3[0] + p4[0]).detach(), stab)
        return alpha * (xp * vjp(*p1, s_t) + xn * vjp(*p2, s_t)) - beta * (
            xp * vjp(*p3, s_b) + xn * vjp(*p4, s_b)
        )
    # generalized gamma
    gm, stab = params[0], params[1]
    a, bneg = w + gm * w.clamp(min=0), w + gm * w.clamp(max=0)
    ba = None if b is None else b + gm * b.clamp(min=0)
    bb = None if b is None else b + gm * b.clamp(max=0)
    p1, p2 = run(xp, a, ba), run(xn, bneg, None)
    p3, p4 = run(xp, bneg, bb), run(xn, a, None)
    z0 = out if out is not None else run(x, w, b)[0].detach()
    s_t = (z0 > 0).to(grad.dtype) * grad / _stab((p1[0] + p2[0]).detach(), stab)
    s_b = (z0 < 0).to(grad.dtype) * grad / _stab((p3[0] + p4[0]).detach(), stab)
    return xp * vjp(*p1, s_t) + xn * vjp(*p2, s_t) + xp * vjp(*p3, s_b) + xn * vjp(*p4, s_b)
