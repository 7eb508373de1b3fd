"""LRP ops: one layer's relevance backward for every rule, on linear and convolution layers.

``lrp_conv`` (1-D, 2-D, 3-D convolutions, any groups) and ``lrp_linear`` take the layer's stored input
``x``, the relevance ``grad`` arriving at its output, its parameters and a rule, and return the
relevance of ``x``. Rules and their ``params`` (Zennit's semantics, SPECS §7.2; ``stab(z) = z + e *
sign(z)`` with ``sign(0) = +1``):

==============  ====================================  ================================================
rule            params                                relevance of x
==============  ====================================  ================================================
``epsilon``     ``(epsilon,)``                        ``x * W^T (R / stab(z))``, z = the stored output
``zplus``       ``(stabilizer,)``                     ``x+ W+^T s + x- W-^T s``,
                                                      ``s = R / stab(W+ x+ + W- x- + b+)``
``alpha_beta``  ``(alpha, beta, stabilizer)``         alpha * (positive part) - beta * (negative part)
``gamma``       ``(gamma, stabilizer, generalized)``  generalized Gamma (Zennit >= 0.5) or, with
                                                      ``generalized=0``, ``x * A^T (R / stab(A x + b_A))``,
                                                      ``A = W + gamma W+`` (Zennit <= 0.4)
``zbox``        ``(stabilizer,)``                     ``x g_x - low g_low - high g_high``
``flat``        ``(stabilizer,)``                     ``1^T (R / stab(1^T 1))`` (weights 1, no bias)
``wsquare``     ``(stabilizer,)``                     ``(W^2)^T (R / stab(W^2 1 + b^2))``
==============  ====================================  ================================================

How the work is organised (native kernels and this reference alike):

* the heavy part is ATen convolution / matmul: one forward convolution for the rule's ``z`` (none for
  ``epsilon``, which divides by the stored output) and one transposed convolution for ``W^T s``;
* the positive and negative weight parts of ``zplus``, ``alpha_beta`` and ``gamma`` are batched into
  one convolution: the parts of the weight are concatenated along the output channels (``[A; B]``)
  and, when ``x`` has negative entries, along the input channels too (input ``[x+, x-]``), interleaved
  per group so that grouped convolutions stay grouped; when ``x >= 0`` (after a ReLU) the negative
  input half is skipped: it contributes exactly zero;
* the stabilise / divide / mask / scale step and the final multiply-by-input-and-sum step are fused
  elementwise kernels (``_stab_div`` and ``_combine`` below are their reference twins).

``grad`` may hold ``K`` blocks of relevance for the same ``x`` (``grad.shape[0] == K * x.shape[0]``,
row ``k * N + n`` belongs to sample ``n``): the rule's ``z`` is computed once and only the transposed
convolution runs on all ``K * N`` rows. CRP uses this to explain many concepts in one backward.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

from pyxai.engine.checks import check_float_tensor, check_matches, expand_like
from pyxai.ops._dispatch import resolve_backend

RULES = {"epsilon": 0, "zplus": 1, "alpha_beta": 2, "gamma": 3, "zbox": 4, "flat": 5, "wsquare": 6}
N_PARAMS = {"epsilon": 1, "zplus": 1, "alpha_beta": 3, "gamma": 3, "zbox": 1, "flat": 1, "wsquare": 1}
IntN = Union[int, Sequence[int]]


# ----------------------------------------------------------------------------------------------
# argument checks


def _check_rule(rule: str, params: Sequence[float]) -> list[float]:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")
    params = [float(p) for p in params]
    if len(params) != N_PARAMS[rule]:
        raise ValueError(f"rule {rule!r} takes {N_PARAMS[rule]} params, got {len(params)}: {params}")
    if rule == "alpha_beta" and (params[0] < 0 or params[1] < 0):
        raise ValueError(f"alpha_beta needs alpha >= 0 and beta >= 0, got {params[:2]}")
    return params


def _check_tensors(
    x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
    out: torch.Tensor | None, rule: str,
) -> None:
    for name, t in (("x", x), ("grad", grad), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(t).__name__}")
        check_float_tensor(t, name)
    for name, t in (("grad", grad), ("weight", weight), ("bias", bias), ("out", out)):
        if t is not None:
            check_matches(t, x, name, "x")
    if x.shape[0] == 0:
        raise ValueError(f"x is an empty batch (shape {tuple(x.shape)})")
    if grad.shape[0] % x.shape[0] != 0:
        raise ValueError(
            f"grad has {grad.shape[0]} rows, not a multiple of the {x.shape[0]} rows of x"
        )
    if out is not None and (out.shape[0] != x.shape[0] or out.shape[1:] != grad.shape[1:]):
        raise ValueError(
            f"out of shape {tuple(out.shape)} does not match x's batch {x.shape[0]} and grad's "
            f"shape {tuple(grad.shape)}"
        )


def _box(bound: torch.Tensor | float | None, x: torch.Tensor, name: str) -> torch.Tensor:
    if bound is None:
        raise ValueError(f"rule 'zbox' needs {name}")
    t = torch.as_tensor(bound, dtype=x.dtype, device=x.device)
    if t.dim() < x.dim() and t.dim() > 0 and t.shape[0] == x.shape[1]:
        t = t.reshape(1, -1, *([1] * (x.dim() - 2)))  # per-channel bounds
    if t.dim() == x.dim() and t.shape[0] > x.shape[0]:
        t = t[: x.shape[0]]
    return expand_like(t, x, name).contiguous()


def _zbox_bounds(
    rule: str, low: torch.Tensor | float | None, high: torch.Tensor | float | None, x: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``zbox``'s (low, high) bounds expanded to ``x``; (None, None) for the other rules."""
    if rule != "zbox":
        return None, None
    return _box(low, x, "low"), _box(high, x, "high")


def _tuple(v: IntN, d: int, name: str) -> list[int]:
    if isinstance(v, int):
        return [v] * d
    v = [int(i) for i in v]
    if len(v) == 1:
        return v * d
    if len(v) != d:
        raise ValueError(f"{name} must have {d} entries for a {d}-D convolution, got {v}")
    return v


# ----------------------------------------------------------------------------------------------
# reference implementation (same steps and layouts as csrc/lrp)


def _stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    """Zennit's stabiliser: ``z + eps * sign(z)`` with ``sign(0) = +1``."""
    return z + torch.where(z >= 0, 1.0, -1.0).to(z.dtype) * eps


def _wcat(blocks: list[list[torch.Tensor]], groups: int) -> torch.Tensor:
    """Weight of one convolution doing all parts: ``blocks[out_part][in_part]`` are W-shaped.

    In-parts are concatenated along dim 1 (an input of ``[N, G, P_in, C/G]`` channels); out-parts
    are interleaved per group (an output of ``[N, G, P_out, Cout/G]`` channels).
    """
    rows = [torch.cat(row, dim=1) if len(row) > 1 else row[0] for row in blocks]
    if len(rows) == 1:
        return rows[0]
    cout = rows[0].shape[0]
    w = torch.stack([r.reshape(groups, cout // groups, *r.shape[1:]) for r in rows], dim=1)
    return w.reshape(groups * len(rows) * (cout // groups), *rows[0].shape[1:])


def _bcat(biases: list[torch.Tensor | None], groups: int, like: torch.Tensor) -> torch.Tensor | None:
    if all(b is None for b in biases):
        return None
    cout = like.shape[0]
    bs = [torch.zeros(cout, dtype=like.dtype, device=like.device) if b is None else b for b in biases]
    if len(bs) == 1:
        return bs[0]
    return torch.stack([b.reshape(groups, -1) for b in bs], dim=1).reshape(-1)


def _xcat(parts: list[torch.Tensor], groups: int) -> torch.Tensor:
    """Input parts ``[N, C, ...]`` -> ``[N, G * P * C/G, ...]`` (group-interleaved)."""
    if len(parts) == 1:
        return parts[0]
    n, c = parts[0].shape[:2]
    rest = parts[0].shape[2:]
    return torch.stack([p.reshape(n, groups, c // groups, *rest) for p in parts], dim=2).reshape(
        n, len(parts) * c, *rest
    )


def _stab_div(
    grad: torch.Tensor, z: torch.Tensor, z0: torch.Tensor | None, groups: int, coef: list[float],
    stab: float, gamma_mask: bool,
) -> torch.Tensor:
    """``s[r, g, p, c] = coef[p] * mask_p * grad[r, g, c] / stab(z[r % Nz, g, p, c])``."""
    p = len(coef)
    nr, cout = grad.shape[:2]
    nz = z.shape[0]
    rg = grad.reshape(nr // nz, nz, groups, 1, cout // groups, -1)
    zz = z.reshape(1, nz, groups, p, cout // groups, -1)
    c = torch.tensor(coef, dtype=grad.dtype, device=grad.device).reshape(1, 1, 1, p, 1, 1)
    s = rg / _stab(zz, stab)
    if gamma_mask:
        z0v = z0.reshape(1, nz, groups, 1, cout // groups, -1)
        s = s * torch.cat([z0v > 0, z0v < 0], dim=3).to(grad.dtype)
    s = s * c if any(v != 1.0 for v in coef) else s
    return s.reshape(nr, p * cout, *grad.shape[2:])


def _combine(xs: torch.Tensor, g: torch.Tensor, groups: int, coef: list[float]) -> torch.Tensor:
    """``R[r, g, c] = sum_p coef[p] * xs[r % N, g, p, c] * g[r, g, p, c]``."""
    p = len(coef)
    n, nr = xs.shape[0], g.shape[0]
    cin = xs.shape[1] // p
    xv = xs.reshape(1, n, groups, p, cin // groups, -1)
    gv = g.reshape(nr // n, n, groups, p, cin // groups, -1)
    prod = xv * gv
    if any(v != 1.0 for v in coef):
        prod = prod * torch.tensor(coef, dtype=g.dtype, device=g.device).reshape(1, 1, 1, p, 1, 1)
    r = prod[:, :, :, 0]
    for i in range(1, p):
        r = r + prod[:, :, :, i]
    return r.reshape(nr, cin, *g.shape[2:])


class _ConvGeometry:
    """Forward and transposed (adjoint) convolution of one layer (or a linear layer: ``d == 0``)."""

    def __init__(self, d: int, stride, padding, dilation, groups: int) -> None:
        self.d, self.stride, self.padding, self.dilation, self.groups = d, stride, padding, dilation, groups

    def fwd(self, inp: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if self.d == 0:
            return F.linear(inp, w, b)
        return torch.ops.aten.convolution(
            inp, w, b, self.stride, self.padding, self.dilation, False, [0] * self.d, self.groups
        )

    def adj(self, s: torch.Tensor, w: torch.Tensor, in_spatial: Sequence[int]) -> torch.Tensor:
        """``W^T s``: the input gradient of :meth:`fwd` (ATen's backward-data convolution)."""
        if self.d == 0:
            return s @ w
        inp = s.new_empty(s.shape[0], w.shape[1] * self.groups, *in_spatial)
        return torch.ops.aten.convolution_backward(
            s, inp, w, None, self.stride, self.padding, self.dilation, False, [0] * self.d,
            self.groups, [True, False, False],
        )[0]


def _lrp_reference(
    x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
    out: torch.Tensor | None, geo: _ConvGeometry, rule: str, params: list[float],
    low: torch.Tensor | None, high: torch.Tensor | None,
) -> torch.Tensor:
    g = geo.groups
    sp = x.shape[2:]
    w, b = weight, bias
    if rule == "epsilon":
        z = out if out is not None else geo.fwd(x, w, b)
        s = _stab_div(grad, z, None, g, [1.0], params[0], False)
        return _combine(x, geo.adj(s, w, sp), g, [1.0])
    if rule in ("flat", "wsquare"):
        if rule == "flat":
            wm, bm = torch.ones_like(w), None
        else:
            wm, bm = w * w, (b * b if b is not None else None)
        ones = torch.ones((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
        z = geo.fwd(ones, wm, bm)
        s = _stab_div(grad, z, None, g, [1.0], params[0], False)
        return geo.adj(s, wm, sp)
    if rule == "zbox":
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        bz = None if b is None else b - b.clamp(min=0) - b.clamp(max=0)
        xs = _xcat([x, low, high], g)
        z = geo.fwd(xs, _wcat([[w, -wp, -wn]], g), bz)
        s = _stab_div(grad, z, None, g, [1.0], params[0], False)
        gs = geo.adj(s, _wcat([[w, wp, wn]], g), sp)
        return _combine(xs, gs, g, [1.0, -1.0, -1.0])
    if rule == "gamma" and params[2] == 0.0:  # Zennit <= 0.4: one pass with W + gamma W+
        a = w + params[0] * w.clamp(min=0)
        ba = None if b is None else b + params[0] * b.clamp(min=0)
        z = geo.fwd(x, a, ba)
        s = _stab_div(grad, z, None, g, [1.0], params[1], False)
        return _combine(x, geo.adj(s, a, sp), g, [1.0])
    # two-part rules: top z_t = A x+ + B x- + b_t, bottom z_b = B x+ + A x- + b_b
    gamma_mask = False
    if rule == "zplus":
        a, bb = w.clamp(min=0), w.clamp(max=0)
        bt, bbot, coef, stab = (None if b is None else b.clamp(min=0)), None, [1.0], params[0]
    elif rule == "alpha_beta":
        a, bb = w.clamp(min=0), w.clamp(max=0)
        bt = None if b is None else b.clamp(min=0)
        bbot = None if b is None else b.clamp(max=0)
        coef, stab = [params[0], -params[1]], params[2]
    else:  # generalized gamma
        gm = params[0]
        a, bb = w + gm * w.clamp(min=0), w + gm * w.clamp(max=0)
        bt = None if b is None else b + gm * b.clamp(min=0)
        bbot = None if b is None else b + gm * b.clamp(max=0)
        coef, stab, gamma_mask = [1.0, 1.0], params[1], True
    two = len(coef) == 2
    z0 = None
    if gamma_mask:
        z0 = out if out is not None else geo.fwd(x, w, b)
    positive = bool((x >= 0).all())
    if positive:
        wc = _wcat([[a], [bb]] if two else [[a]], g)
        z = geo.fwd(x, wc, _bcat([bt, bbot] if two else [bt], g, w))
        s = _stab_div(grad, z, z0, g, coef, stab, gamma_mask)
        return _combine(x, geo.adj(s, wc, sp), g, [1.0])
    xs = _xcat([x.clamp(min=0), x.clamp(max=0)], g)
    wc = _wcat([[a, bb], [bb, a]] if two else [[a, bb]], g)
    z = geo.fwd(xs, wc, _bcat([bt, bbot] if two else [bt], g, w))
    s = _stab_div(grad, z, z0, g, coef, stab, gamma_mask)
    return _combine(xs, geo.adj(s, wc, sp), g, [1.0, 1.0])


# ----------------------------------------------------------------------------------------------
# public ops


def lrp_conv(
    x: torch.Tensor,
    grad: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    stride: IntN = 1,
    padding: IntN = 0,
    dilation: IntN = 1,
    groups: int = 1,
    rule: str = "epsilon",
    params: Sequence[float] = (1e-6,),
    low: torch.Tensor | float | None = None,
    high: torch.Tensor | float | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Relevance backward of one convolution layer (zero padding, 1-D/2-D/3-D, any groups).

    Args:
        x: Tensor[N, Cin, *S] the layer's input (1 to 3 spatial dims), float32/float64.
        grad: Tensor[K * N, Cout, *S'] relevance at the layer's output (K blocks of N rows).
        weight: Tensor[Cout, Cin / groups, *k].
        bias: Tensor[Cout] or None.
        out: Tensor[N, Cout, *S'] the stored layer output (``conv(x) + bias``), used by ``epsilon``
            and ``gamma`` instead of recomputing it; None recomputes it.
        stride, padding, dilation, groups: the layer's geometry (ints or one int per spatial dim).
        rule: one of ``RULES``; params: the rule's parameters (module docstring).
        low, high: ``zbox`` bounds, scalars or tensors broadcastable to ``x`` (per-channel
            ``Tensor[Cin]`` allowed).
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``).

    Returns:
        Tensor[K * N, Cin, *S] relevance of ``x``.
    """
    params = _check_rule(rule, params)
    _check_tensors(x, grad, weight, bias, out, rule)
    d = x.dim() - 2
    if d not in (1, 2, 3) or weight.dim() != x.dim():
        raise ValueError(
            f"x must be Tensor[N, C, *S] with 1 to 3 spatial dims and weight of the same rank, got "
            f"x {tuple(x.shape)}, weight {tuple(weight.shape)}"
        )
    if groups < 1 or x.shape[1] != weight.shape[1] * groups or weight.shape[0] % groups:
        raise ValueError(
            f"x has {x.shape[1]} channels but weight {tuple(weight.shape)} with groups={groups} "
            f"expects {weight.shape[1] * groups}"
        )
    if grad.dim() != x.dim() or grad.shape[1] != weight.shape[0]:
        raise ValueError(f"grad must be Tensor[K*N, {weight.shape[0]}, *S'], got {tuple(grad.shape)}")
    stride, padding, dilation = (_tuple(v, d, n) for v, n in
                                 ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    lo, hi = _zbox_bounds(rule, low, high, x)
    if resolve_backend(backend, x.device) == "native":
        return torch.ops.pyxai.lrp_conv(
            x, grad, weight, bias, out, stride, padding, dilation, groups, RULES[rule], params, lo, hi
        )
    geo = _ConvGeometry(d, stride, padding, dilation, groups)
    return _lrp_reference(x, grad, weight, bias, out, geo, rule, params, lo, hi)


def lrp_linear(
    x: torch.Tensor,
    grad: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    rule: str = "epsilon",
    params: Sequence[float] = (1e-6,),
    low: torch.Tensor | float | None = None,
    high: torch.Tensor | float | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Relevance backward of one linear layer ``z = x W^T + b``.

    Args:
        x: Tensor[N, Cin]; grad: Tensor[K * N, Cout]; weight: Tensor[Cout, Cin]; bias: Tensor[Cout]
            or None; out: Tensor[N, Cout] stored output or None; rule, params, low, high, backend:
            as :func:`lrp_conv`.

    Returns:
        Tensor[K * N, Cin] relevance of ``x``.
    """
    params = _check_rule(rule, params)
    _check_tensors(x, grad, weight, bias, out, rule)
    if x.dim() != 2 or weight.dim() != 2 or grad.dim() != 2:
        raise ValueError(
            f"lrp_linear takes x [N, Cin], grad [K*N, Cout], weight [Cout, Cin], got "
            f"{tuple(x.shape)}, {tuple(grad.shape)}, {tuple(weight.shape)}"
        )
    if weight.shape[1] != x.shape[1] or grad.shape[1] != weight.shape[0]:
        raise ValueError(
            f"shapes do not match: x {tuple(x.shape)}, weight {tuple(weight.shape)}, grad {tuple(grad.shape)}"
        )
    lo, hi = _zbox_bounds(rule, low, high, x)
    if resolve_backend(backend, x.device) == "native":
        return torch.ops.pyxai.lrp_linear(x, grad, weight, bias, out, RULES[rule], params, lo, hi)
    geo = _ConvGeometry(0, [], [], [], 1)
    return _lrp_reference(x, grad, weight, bias, out, geo, rule, params, lo, hi)
