"""LRP ops: one layer's relevance backward, for any rule declared as a :class:`Program`.

A rule is declared once, as data (Zennit's modifier idea, SPECS §7.2): a :class:`Program` is a list
of :class:`Part` s (output modifiers: a denominator, its scale and which output units it serves),
each a sum of :class:`Term` s (one Zennit "pass": an input modifier, a parameter modifier for the
weight and one for the bias, and a sign), and a stabiliser ``stab(z) = z + e * sign(z)`` with
``sign(0) = +1`` (or any callable ``stab(z)``, Zennit's callable stabilisers). For a layer
``z = W x + b`` and the relevance ``R`` at its output::

    z_p = sum_{t in p} sign_t * (W_t in_t + b_t)
    s_p = scale_p * keep_p * R / stab(z_p)          keep_p: 1, or [z0 > 0], or [z0 < 0] (z0 = W x + b)
    R_x = sum_p sum_{t in p} sign_t * in_t * (W_t^T s_p)      (in_t = 1: just W_t^T s_p)

``pyxai.lrp.rules`` declares Epsilon, ZPlus, AlphaBeta, Gamma, ZBox, Flat and WSquare this way;
:func:`lrp_conv` and :func:`lrp_linear` execute any program, the same way on every backend:

* the heavy part is ATen convolution / matmul: every term is batched into one forward convolution
  for all the ``z_p`` (the term weights form a block matrix: out-parts interleaved per group,
  in-parts concatenated, so grouped convolutions stay grouped) and one transposed convolution for
  all the ``W_t^T s_p``; ``epsilon`` divides by the stored output instead of recomputing it;
* the elementwise steps (split of x into x+ and x-, stabilise / divide / mask / scale, and the
  multiply-by-input-and-sum) are the fused kernels ``torch.ops.pyxai.lrp_split_sign``,
  ``lrp_stab_div`` and ``lrp_combine`` (backend "native") or their PyTorch twins below
  (``"reference"``) — the only place where the backends differ. A *callable* stabiliser cannot be
  fused: the stabilise / divide step then runs in PyTorch on every backend (the callable gets each
  part's ``z_p`` shaped like the layer's output), so both backends still give the same numbers.

Nothing reads a tensor value on the host: whether the negative input half can be skipped is the
caller's ``nonneg`` flag (``pyxai.lrp`` knows it from the graph: the input of a layer after a ReLU),
never a test of ``x``. Every op is differentiable (autograd through ATen and the registered
backwards of the elementwise kernels, the vector-Jacobian products of their twins), so relevances
can be differentiated w.r.t. the layer's parameters, its input and the relevance above.

``grad`` may hold ``K`` blocks of relevance for the same ``x`` (``grad.shape[0] == K * x.shape[0]``,
row ``k * N + n`` belongs to sample ``n``): the ``z_p`` are computed once and only the transposed
convolution runs on all ``K * N`` rows. CRP uses this to explain many concepts in one backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F

from pyxai import _native
from pyxai.engine.checks import check_float_tensor, check_matches, expand_like
from pyxai.ops._dispatch import resolve_backend

IntN = Union[int, Sequence[int]]
#: A parameter modifier ``(a, b, c)``: ``a * p + b * max(p, 0) + c * min(p, 0)``; or ``"ones"``
#: (every weight 1) or ``"square"`` (``p * p``).
Param = Union[tuple, str]
IDENTITY, POSITIVE, NEGATIVE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
#: the parameter modifier of a parameter treated as zero (Zennit's ``zero_params``)
ZERO = (0.0, 0.0, 0.0)
#: A stabiliser: ``eps`` for ``z + eps * sign(z)`` (``sign(0) = +1``), or a callable
#: ``(Tensor) -> Tensor`` returning the stabilised denominator (Zennit's callable stabilisers).
Stab = Union[float, Callable[[torch.Tensor], torch.Tensor]]
INPUTS = ("x", "pos", "neg", "ones", "low", "high")
WHERE = {"all": 0, "pos": 1, "neg": 2}


@dataclass(frozen=True)
class Term:
    """One pass: ``sign * layer(input(x); weight(W), bias(b))``.

    Attributes:
        input: input modifier: ``"x"``, ``"pos"`` (x+), ``"neg"`` (x-), ``"ones"``, ``"low"`` /
            ``"high"`` (the bounds of ZBox).
        weight: parameter modifier of the weight (:data:`Param`).
        bias: parameter modifier of the bias, or None (the pass has no bias).
        sign: +1 or -1.
    """

    input: str
    weight: Param = IDENTITY
    bias: Param | None = IDENTITY
    sign: float = 1.0


@dataclass(frozen=True)
class Part:
    """One denominator (output modifier): ``scale * keep * R / stab(sum of its terms)``.

    Attributes:
        terms: the passes summed into the denominator (and whose inputs share the relevance).
        scale: factor of the part's relevance (AlphaBeta: alpha, -beta).
        where: output units the part serves: ``"all"``, ``"pos"`` / ``"neg"`` (the layer's own
            output ``W x + b`` is > 0 / < 0: generalised Gamma).
    """

    terms: tuple
    scale: float = 1.0
    where: str = "all"


@dataclass(frozen=True)
class Program:
    """A rule for Linear-type layers: its parts and stabiliser (:data:`Stab`, see the module docstring)."""

    parts: tuple
    stabilizer: Stab = 1e-6

    def __post_init__(self) -> None:
        if not callable(self.stabilizer) and (
                not isinstance(self.stabilizer, (int, float)) or isinstance(self.stabilizer, bool)):
            raise TypeError(f"Program.stabilizer must be a float or a callable, got {self.stabilizer!r}")
        if not self.parts or not all(isinstance(p, Part) and p.terms for p in self.parts):
            raise ValueError(f"a Program needs parts with terms, got {self.parts!r}")
        inputs = set()
        for part in self.parts:
            if part.where not in WHERE:
                raise ValueError(f"Part.where must be one of {tuple(WHERE)}, got {part.where!r}")
            for t in part.terms:
                if not isinstance(t, Term) or t.input not in INPUTS:
                    raise ValueError(f"terms must be Terms with an input in {INPUTS}, got {t!r}")
                for mod in (t.weight, t.bias):
                    if mod is not None and mod not in ("ones", "square") and not (
                            isinstance(mod, tuple) and len(mod) == 3):
                        raise ValueError(
                            f"a parameter modifier is (a, b, c), 'ones' or 'square', got {mod!r}"
                        )
                inputs.add(t.input)
        if "ones" in inputs and len(inputs) > 1:
            raise ValueError("a Program with 'ones' inputs takes no other input")
        if len(self.parts) > 4 or len(inputs) > 4:
            raise ValueError("a Program has at most 4 parts and 4 distinct inputs")

    @property
    def bounds(self) -> bool:
        """Whether the program reads the ``low`` / ``high`` bounds."""
        return any(t.input in ("low", "high") for p in self.parts for t in p.terms)


# ----------------------------------------------------------------------------------------------
# argument checks


def _check_program(rule: Program) -> Program:
    if not isinstance(rule, Program):
        raise TypeError(f"rule must be a pyxai.ops.lrp.Program (e.g. pyxai.rules.ZPlus().program()), "
                        f"got {type(rule).__name__}")
    return rule


def _check_tensors(
    x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
    out: torch.Tensor | None,
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
    if isinstance(bound, (int, float)) and not isinstance(bound, bool):
        return expand_like(bound, x, name)  # a device fill, no host-to-device copy
    t = torch.as_tensor(bound, dtype=x.dtype, device=x.device)
    if t.dim() < x.dim() and t.dim() > 0 and t.shape[0] == x.shape[1]:
        t = t.reshape(1, -1, *([1] * (x.dim() - 2)))  # per-channel bounds
    if t.dim() == x.dim() and t.shape[0] > x.shape[0]:
        t = t[: x.shape[0]]
    return expand_like(t, x, name)


def _bounds(
    rule: Program, low: torch.Tensor | float | None, high: torch.Tensor | float | None, x: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The (low, high) bounds expanded to ``x``; (None, None) when the rule has no bound input."""
    if not rule.bounds:
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
# the elementwise steps: PyTorch twins of the fused kernels (csrc/lrp)


def _stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    """Zennit's stabiliser: ``z + eps * sign(z)`` with ``sign(0) = +1``."""
    return z + torch.where(z >= 0, 1.0, -1.0).to(z.dtype) * eps


def stabilize(z: torch.Tensor, stabilizer: Stab) -> torch.Tensor:
    """``z`` stabilised for division by a :data:`Stab` (a float ``eps`` or a callable); a callable's
    result must be a tensor shaped like ``z``."""
    if not callable(stabilizer):
        return _stab(z, stabilizer)
    d = stabilizer(z)
    if not isinstance(d, torch.Tensor) or d.shape != z.shape:
        got = tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__
        raise ValueError(
            f"stabilizer {stabilizer!r} must return a tensor shaped like its input {tuple(z.shape)}, "
            f"got {got}"
        )
    return d


def _stabilize_parts(z: torch.Tensor, stabilizer: Callable, groups: int, parts: int) -> torch.Tensor:
    """A callable stabiliser on each part's ``z_p`` (Tensor[N, Cout, ...], the layer's output
    layout) of the batched ``z`` (Tensor[N, G * P * Cout/G, ...], out-parts interleaved per group)."""
    if parts == 1:
        return stabilize(z, stabilizer)
    nz, rest = z.shape[0], z.shape[2:]
    cout = z.shape[1] // parts
    zv = z.reshape(nz, groups, parts, cout // groups, *rest)
    outs = [stabilize(zv[:, :, i].reshape(nz, cout, *rest), stabilizer) for i in range(parts)]
    outs = [d.reshape(nz, groups, cout // groups, *rest) for d in outs]
    return torch.stack(outs, dim=2).reshape(z.shape)


def _xcat(parts: list[torch.Tensor], groups: int) -> torch.Tensor:
    """Input parts ``[N, C, ...]`` -> ``[N, G * P * C/G, ...]`` (group-interleaved)."""
    if len(parts) == 1:
        return parts[0]
    n, c = parts[0].shape[:2]
    rest = parts[0].shape[2:]
    return torch.stack([p.reshape(n, groups, c // groups, *rest) for p in parts], dim=2).reshape(
        n, len(parts) * c, *rest
    )


def _split_sign_ref(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``[x+, x-]`` group-interleaved: ``[N, C, ...] -> [N, G * 2 * C/G, ...]``."""
    return _xcat([x.clamp(min=0), x.clamp(max=0)], groups)


def _stab_div_ref(
    grad: torch.Tensor, z: torch.Tensor, z0: torch.Tensor | None, groups: int, coef: list[float],
    mask: list[int], eps: float | None,
) -> torch.Tensor:
    """``s[r, g, p, c] = coef[p] * keep_p * grad[r, g, c] / stab(z[r % Nz, g, p, c])``
    (``eps=None``: ``z`` is already stabilised)."""
    p = len(coef)
    nr, cout = grad.shape[:2]
    nz = z.shape[0]
    rg = grad.reshape(nr // nz, nz, groups, 1, cout // groups, -1)
    zz = z.reshape(1, nz, groups, p, cout // groups, -1)
    s = rg / (zz if eps is None else _stab(zz, eps))
    if any(mask):
        n0 = z0.shape[0]
        z0v = z0.reshape(1, n0, groups, 1, cout // groups, -1)
        keep = [torch.ones_like(z0v) if m == 0 else (z0v > 0 if m == 1 else z0v < 0).to(z0.dtype)
                for m in mask]
        s = s.reshape(nr // n0, n0, groups, p, cout // groups, -1) * torch.cat(keep, dim=3)
    if any(v != 1.0 for v in coef):
        s = s * torch.tensor(coef, dtype=grad.dtype, device=grad.device).reshape(1, 1, 1, p, 1, 1)
    return s.reshape(nr, p * cout, *grad.shape[2:])


def _combine_ref(xs: torch.Tensor, g: torch.Tensor, groups: int, coef: list[float]) -> torch.Tensor:
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


class _Elementwise:
    """The three elementwise steps on one backend (fused kernels or their twins)."""

    def __init__(self, native: bool) -> None:
        self.native = native

    def split_sign(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        if self.native:
            return torch.ops.pyxai.lrp_split_sign(x, groups)
        return _split_sign_ref(x, groups)

    def stab_div(self, grad, z, z0, groups, coef, mask, eps) -> torch.Tensor:
        if self.native:
            return torch.ops.pyxai.lrp_stab_div(grad, z, z0, groups, coef, mask, eps)
        return _stab_div_ref(grad, z, z0, groups, coef, mask, eps)

    def combine(self, xs, g, groups, coef) -> torch.Tensor:
        if self.native:
            return torch.ops.pyxai.lrp_combine(xs, g, groups, coef)
        return _combine_ref(xs, g, groups, coef)


# backwards of the fused kernels: the vector-Jacobian products of their twins (exact, and the
# reference path's own gradients), registered once the native library is loaded


def _split_sign_setup(ctx, inputs, output):
    x, groups = inputs
    ctx.save_for_backward(x)
    ctx.groups = groups


def _split_sign_backward(ctx, gy):
    (x,) = ctx.saved_tensors
    _, vjp = torch.func.vjp(lambda t: _split_sign_ref(t, ctx.groups), x)
    return vjp(gy)[0], None


def _stab_div_setup(ctx, inputs, output):
    grad, z, z0, groups, coef, mask, eps = inputs
    ctx.save_for_backward(grad, z, z0)
    ctx.args = (groups, list(coef), list(mask), eps)


def _stab_div_backward(ctx, gs):
    grad, z, z0 = ctx.saved_tensors
    _, vjp = torch.func.vjp(lambda g, zz: _stab_div_ref(g, zz, z0, *ctx.args), grad, z)
    g_grad, g_z = vjp(gs)
    return g_grad, g_z, None, None, None, None, None


def _combine_setup(ctx, inputs, output):
    xs, g, groups, coef = inputs
    ctx.save_for_backward(xs, g)
    ctx.args = (groups, list(coef))


def _combine_backward(ctx, gr):
    xs, g = ctx.saved_tensors
    _, vjp = torch.func.vjp(lambda a, b: _combine_ref(a, b, *ctx.args), xs, g)
    g_xs, g_g = vjp(gr)
    return g_xs, g_g, None, None


if _native.available("cpu") or _native.available("cuda"):
    for _name, _backward, _setup in (
        ("lrp_split_sign", _split_sign_backward, _split_sign_setup),
        ("lrp_stab_div", _stab_div_backward, _stab_div_setup),
        ("lrp_combine", _combine_backward, _combine_setup),
    ):
        torch.library.register_autograd(f"pyxai::{_name}", _backward, setup_context=_setup)


# ----------------------------------------------------------------------------------------------
# the executor (every backend)


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
        """``W^T s``: the input gradient of :meth:`fwd` (ATen's backward-data convolution, faster
        on CPU than a transposed convolution, and differentiable)."""
        if self.d == 0:
            return s @ w
        inp = s.new_empty(s.shape[0], w.shape[1] * self.groups, *in_spatial)
        return torch.ops.aten.convolution_backward(
            s, inp, w, None, self.stride, self.padding, self.dilation, False, [0] * self.d,
            self.groups, [True, False, False],
        )[0]


def modify(p: torch.Tensor, mod: Param) -> torch.Tensor:
    """Apply a parameter modifier (:data:`Param`) to a weight or bias."""
    if mod == "ones":
        return torch.ones_like(p)
    if mod == "square":
        return p * p
    terms = [(float(c), t) for c, t in zip(mod, ("p", "pos", "neg")) if float(c) != 0.0]
    out = None
    for c, which in terms:
        part = p if which == "p" else (p.clamp(min=0) if which == "pos" else p.clamp(max=0))
        part = part if c == 1.0 else part * c
        out = part if out is None else out + part
    return out if out is not None else torch.zeros_like(p)


def _wcat(blocks: list[list[torch.Tensor]], groups: int) -> torch.Tensor:
    """Weight of one convolution doing all terms: ``blocks[out_part][in_part]`` are W-shaped.

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


def _is_plain(rule: Program) -> bool:
    """One part, one term ``W x + b``: its denominator is the layer's own output."""
    if len(rule.parts) != 1 or len(rule.parts[0].terms) != 1:
        return False
    t = rule.parts[0].terms[0]
    return t.input == "x" and t.weight == IDENTITY and t.bias == IDENTITY and t.sign == 1.0


def _execute(
    x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
    out: torch.Tensor | None, geo: _ConvGeometry, rule: Program, low: torch.Tensor | None,
    high: torch.Tensor | None, nonneg: bool, ew: _Elementwise,
) -> torch.Tensor:
    """Run ``rule`` on one layer (module docstring); ``ew`` holds the backend's elementwise steps."""
    g = geo.groups
    parts = []  # per part: [(input, term)], with x >= 0 the x- passes (no bias) vanish, x+ = x
    for part in rule.parts:
        terms = []
        for t in part.terms:
            inp = t.input
            if nonneg and inp == "neg" and t.bias is None:
                continue
            terms.append(("x" if nonneg and inp == "pos" else inp, t))
        parts.append(terms)
    inputs = list(dict.fromkeys(inp for terms in parts for inp, _ in terms))
    ones = inputs == ["ones"]
    if ones:
        xs = torch.ones((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
    elif inputs == ["pos", "neg"]:
        xs = ew.split_sign(x, g)
    else:
        source = {"x": x, "low": low, "high": high}
        if "pos" in inputs or "neg" in inputs:
            source.update(pos=x.clamp(min=0), neg=x.clamp(max=0))
        xs = _xcat([source[i] for i in inputs], g)
    blocks, biases = [], []
    for terms in parts:
        row: list[torch.Tensor | None] = [None] * len(inputs)
        b_part = None
        for inp, t in terms:
            w_t = modify(weight, t.weight)
            w_t = -w_t if t.sign < 0 else w_t
            i = inputs.index(inp)
            row[i] = w_t if row[i] is None else row[i] + w_t
            if t.bias is not None and bias is not None:
                b_t = modify(bias, t.bias)
                b_t = -b_t if t.sign < 0 else b_t
                b_part = b_t if b_part is None else b_part + b_t
        blocks.append([torch.zeros_like(weight) if w is None else w for w in row])
        biases.append(b_part)
    wc = _wcat(blocks, g)
    if _is_plain(rule) and out is not None:
        z = out
    else:
        z = geo.fwd(xs, wc, _bcat(biases, g, weight))
    masks = [WHERE[p.where] for p in rule.parts]
    z0 = None
    if any(masks):
        z0 = out if out is not None else geo.fwd(x, weight, bias)
    coef = [float(p.scale) for p in rule.parts]
    if callable(rule.stabilizer):  # not fusable: the same PyTorch step on every backend
        s = _stab_div_ref(grad, _stabilize_parts(z, rule.stabilizer, g, len(coef)), z0, g, coef, masks, None)
    else:
        s = ew.stab_div(grad, z, z0, g, coef, masks, rule.stabilizer)
    gs = geo.adj(s, wc, x.shape[2:])
    if ones:
        return gs
    return ew.combine(xs, gs, g, [1.0] * len(inputs))


# ----------------------------------------------------------------------------------------------
# public ops


def _elementwise(backend: str | None, device: torch.device) -> _Elementwise:
    return _Elementwise(resolve_backend(backend, device) == "native")


def lrp_stab_div(grad: torch.Tensor, z: torch.Tensor, eps: float, backend: str | None = None) -> torch.Tensor:
    """``grad / stab(z)`` fused (the Norm rule's step): grad Tensor[K * N, C, ...], z Tensor[N, C, ...]
    (row ``r`` of grad is divided by row ``r % N`` of z). Returns Tensor shaped like grad."""
    if grad.dim() < 2 or z.shape[1:] != grad.shape[1:] or grad.shape[0] % z.shape[0]:
        raise ValueError(f"lrp_stab_div takes grad [K*N, C, ...] and z [N, C, ...], got "
                         f"{tuple(grad.shape)} and {tuple(z.shape)}")
    return _elementwise(backend, grad.device).stab_div(grad, z, None, 1, [1.0], [0], float(eps))


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
    rule: Program | None = None,
    low: torch.Tensor | float | None = None,
    high: torch.Tensor | float | None = None,
    nonneg: bool = False,
    backend: str | None = None,
) -> torch.Tensor:
    """Relevance backward of one convolution layer (zero padding, 1-D/2-D/3-D, any groups).

    Args:
        x: Tensor[N, Cin, *S] the layer's input (1 to 3 spatial dims), float32/float64.
        grad: Tensor[K * N, Cout, *S'] relevance at the layer's output (K blocks of N rows).
        weight: Tensor[Cout, Cin / groups, *k].
        bias: Tensor[Cout] or None.
        out: Tensor[N, Cout, *S'] the stored layer output (``conv(x) + bias``), used instead of
            recomputing it (epsilon's denominator, gamma's output mask); None recomputes it.
        stride, padding, dilation, groups: the layer's geometry (ints or one int per spatial dim).
        rule: the rule's :class:`Program` (e.g. ``pyxai.rules.ZPlus().program()``).
        low, high: bounds of the ``"low"`` / ``"high"`` inputs (ZBox), scalars or tensors
            broadcastable to ``x`` (per-channel ``Tensor[Cin]`` allowed).
        nonneg: the caller knows ``x >= 0`` (the passes on x- are skipped: they are zero).
        backend: "auto" | "native" | "reference" | None (env ``PYXAI_BACKEND``).

    Returns:
        Tensor[K * N, Cin, *S] relevance of ``x`` (differentiable).
    """
    rule = _check_program(rule)
    _check_tensors(x, grad, weight, bias, out)
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
    lo, hi = _bounds(rule, low, high, x)
    geo = _ConvGeometry(d, stride, padding, dilation, groups)
    return _execute(x, grad, weight, bias, out, geo, rule, lo, hi, bool(nonneg),
                    _elementwise(backend, x.device))


def lrp_linear(
    x: torch.Tensor,
    grad: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    rule: Program | None = None,
    low: torch.Tensor | float | None = None,
    high: torch.Tensor | float | None = None,
    nonneg: bool = False,
    backend: str | None = None,
) -> torch.Tensor:
    """Relevance backward of one linear layer ``z = x W^T + b``.

    Args:
        x: Tensor[N, Cin]; grad: Tensor[K * N, Cout]; weight: Tensor[Cout, Cin]; bias: Tensor[Cout]
            or None; out: Tensor[N, Cout] stored output or None; rule, low, high, nonneg, backend:
            as :func:`lrp_conv`.

    Returns:
        Tensor[K * N, Cin] relevance of ``x`` (differentiable).
    """
    rule = _check_program(rule)
    _check_tensors(x, grad, weight, bias, out)
    if x.dim() != 2 or weight.dim() != 2 or grad.dim() != 2:
        raise ValueError(
            f"lrp_linear takes x [N, Cin], grad [K*N, Cout], weight [Cout, Cin], got "
            f"{tuple(x.shape)}, {tuple(grad.shape)}, {tuple(weight.shape)}"
        )
    if weight.shape[1] != x.shape[1] or grad.shape[1] != weight.shape[0]:
        raise ValueError(
            f"shapes do not match: x {tuple(x.shape)}, weight {tuple(weight.shape)}, grad {tuple(grad.shape)}"
        )
    lo, hi = _bounds(rule, low, high, x)
    geo = _ConvGeometry(0, [], [], [], 1)
    return _execute(x, grad, weight, bias, out, geo, rule, lo, hi, bool(nonneg),
                    _elementwise(backend, x.device))
