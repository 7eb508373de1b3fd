"""Autograd plumbing: a rule's backward is a custom autograd Function around the module's forward.

Each module of the call's :class:`pyxai.engine.view.ModelView` that a composite gives a rule has its
``forward`` replaced (an instance attribute of the view's module object, never of the user's
module) by a wrapper that runs the original forward inside :class:`_RuleFunction`. The Function
keeps the layer input and output; its backward calls the rule, which calls ``pyxai.ops.lrp_*``:
the layer's forward is never re-run for rules that only need the stored output (Epsilon), and
autograd handles any graph topology.

Differentiable relevances (``create_graph=True``): the wrapper runs the module's forward on the
ordinary autograd graph and passes its output through :class:`_GateFunction`. While the call's
relevance backward runs (``Session.relevance``), the gate's backward is the rule, computed from the
saved input and output with autograd recording; afterwards the gate is transparent (its backward
hands the gradient to the real forward graph), so differentiating the relevances w.r.t. the
parameters uses the true derivatives of every layer's input and output.

Non-negative inputs: whether a layer's input is ``>= 0`` is known from the graph, never by reading
it — the outputs of ReLU-like modules are tagged, pooling / flatten / dropout / identity pass the tag
on, and a tag is trusted only while the tensor has not been modified in place. Rules then skip
the passes on ``x-`` (they are zero), which is what keeps z+ as cheap as one convolution.

Replicas (CRP): when a :class:`Session` has ``replicas = K`` and a hooked module receives
``K * N`` rows, the rows are K copies of the same N samples (the input was ``x.repeat(K, ...)``).
The module then computes its output on the first N rows only and repeats it; its backward gets the
K blocks of relevance at once and the ops compute each rule's ``z`` once for all of them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from pyxai.lrp import types
from pyxai.lrp.rules import Rule

#: modules whose output is >= 0 whatever their input
NONNEG_OUTPUT = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Softplus, nn.Hardsigmoid)
#: modules whose output is >= 0 when their input is (in eval mode)
SIGN_PRESERVING = types.MaxPool + types.AvgPool + (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
)


@dataclass
class Session:
    """Settings shared by every hooked module during one attribution."""

    backend: str | None = None
    replicas: int = 1
    create_graph: bool = False
    relevance: bool = True  # False once the call's relevance backward is done (gates transparent)
    token: object = field(default_factory=object)  # marks this call's non-negative tensors

    def tag(self, t: torch.Tensor) -> None:
        """Mark ``t`` as known to be >= 0 (until it is modified in place)."""
        t._pyxai_nonneg = (self.token, t._version)

    def nonneg(self, t: torch.Tensor) -> bool:
        """Whether ``t`` is known to be >= 0 (tagged in this call, not modified since)."""
        tag = getattr(t, "_pyxai_nonneg", None)
        return tag is not None and tag[0] is self.token and tag[1] == t._version


@dataclass
class _LayerState:
    module: nn.Module
    rule: Rule
    forward: Callable
    session: Session
    inplace: bool
    bypass: bool = False  # True while the rule's backward re-runs the module (Norm, generic path)
    takes_nonneg: bool = True  # False: a user's Rule written before ``nonneg`` existed

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The module's own forward; in-place modules (ReLU(inplace=True)) run out of place."""
        if self.inplace:
            self.module.inplace = False
            try:
                out = self.forward(x)
            finally:
                self.module.inplace = True
        else:
            out = self.forward(x)
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"rule {self.rule!r} on {type(self.module).__name__}: the module returned "
                f"{type(out).__name__}, rules need modules with one tensor output"
            )
        return out

    def relevance(self, x, out, grad, nonneg: bool) -> torch.Tensor:
        self.bypass = True
        try:
            if self.takes_nonneg:
                return self.rule.backward(self.module, x, out, grad.contiguous(), self.session.backend,
                                          nonneg)
            return self.rule.backward(self.module, x, out, grad.contiguous(), self.session.backend)
        finally:
            self.bypass = False


class _RuleFunction(torch.autograd.Function):
    """Forward: the module's own forward (no graph). Backward: the rule's relevance of the input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, state: _LayerState, nonneg: bool) -> torch.Tensor:  # type: ignore[override]
        k = state.session.replicas
        xb = x
        if k > 1 and x.shape[0] % k == 0:
            xb = x[: x.shape[0] // k]
        else:
            k = 1
        out = state.run(xb)
        ctx.state, ctx.nonneg = state, nonneg
        ctx.x, ctx.x_version = xb.detach(), xb._version
        ctx.out, ctx.out_version = out.detach(), out._version
        return out.repeat(k, *([1] * (out.dim() - 1))) if k > 1 else out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        state = ctx.state
        if ctx.x._version != ctx.x_version:
            raise RuntimeError(
                f"the input of {type(state.module).__name__} (rule {state.rule!r}) was modified in "
                "place after the forward pass; use a canonizer or out-of-place operations"
            )
        out = ctx.out if ctx.out._version == ctx.out_version else None  # None: the rule recomputes
        return state.relevance(ctx.x, out, grad, ctx.nonneg), None, None


class _GateFunction(torch.autograd.Function):
    """``create_graph``: identity on the real output; backward = the rule during the call's
    relevance pass, the plain gradient (to the real forward graph) afterwards."""

    @staticmethod
    def forward(ctx, x, out, state: _LayerState, nonneg: bool):  # type: ignore[override]
        ctx.save_for_backward(x, out)
        ctx.state, ctx.nonneg = state, nonneg
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        state = ctx.state
        if not state.session.relevance:
            return None, grad, None, None
        x, out = ctx.saved_tensors
        return state.relevance(x, out, grad, ctx.nonneg), None, None, None


def _wrapper(state: _LayerState) -> Callable:
    def forward(*args, **kwargs):
        if (
            not state.bypass
            and len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)
            and torch.is_grad_enabled() and args[0].requires_grad
        ):
            x = args[0]
            nonneg = state.session.nonneg(x)
            if state.session.create_graph:
                return _GateFunction.apply(x, state.run(x), state, nonneg)
            return _RuleFunction.apply(x, state, nonneg)
        return state.forward(*args, **kwargs)

    forward._pyxai_forward = state.forward  # the module's own forward (a BasicHook's passes run it)
    return forward


def _sign_hook(session: Session, always: bool) -> Callable:
    def hook(module, args, output):
        if isinstance(output, torch.Tensor) and (
            always or (args and isinstance(args[0], torch.Tensor) and session.nonneg(args[0]))
        ):
            session.tag(output)

    return hook


#: autograd nodes (``<Name>Backward<k>``) that are not piecewise linear in their input
NONLINEAR = frozenset({
    "Exp", "Exp2", "Expm1", "Log", "Log2", "Log10", "Log1p", "Sigmoid", "LogSigmoid", "Tanh",
    "Softmax", "LogSoftmax", "Pow", "Sqrt", "Rsqrt", "Reciprocal", "Gelu", "Silu", "Mish",
    "Softplus", "Elu", "Selu", "Celu", "Sin", "Cos", "Tan", "Erf", "Erfc", "Prod", "Norm",
    "LinalgVectorNorm", "Hardswish", "Hardsigmoid", "Atan", "Asin", "Acos", "Sinh", "Cosh",
})


def _node_name(node) -> str:
    name = type(node).__name__
    return name[: name.index("Backward")] if "Backward" in name else name


def nonlinear_op(output: torch.Tensor, x: torch.Tensor) -> str | None:
    """The first autograd node between ``x`` and ``output`` that is not piecewise linear in ``x``
    (a nonlinear function, or a product / quotient of two terms that both depend on ``x``), or
    None. Reads the graph only, never a tensor value."""
    root = output.grad_fn
    if root is None:
        return None

    def is_input(node) -> bool:
        return node is x.grad_fn or getattr(node, "variable", None) is x

    reaches: dict[int, bool] = {}
    order: list = []
    stack = [(root, False)]
    while stack:  # iterative post-order: a node's inputs are decided before the node
        node, expanded = stack.pop()
        if id(node) in reaches:
            continue
        if is_input(node):
            reaches[id(node)] = True
            continue
        children = [n for n, _ in node.next_functions if n is not None]
        if not expanded:
            stack.append((node, True))
            stack.extend((n, False) for n in children if id(n) not in reaches)
        else:
            reaches[id(node)] = any(reaches.get(id(n), False) for n in children)
            order.append(node)
    for node in order:
        if not reaches[id(node)]:
            continue
        name = _node_name(node)
        deps = [n is not None and reaches.get(id(n), False) for n, _ in node.next_functions]
        if name in NONLINEAR or (name == "Mul" and sum(deps) >= 2) or (
                name == "Div" and deps[1:2] == [True]):
            return name
    return None


def _linearity_hook(name: str, composite: str) -> Callable:
    from pyxai.lrp.composites import how_to_add

    def hook(module, args, output):
        if not (args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor)):
            return
        op = nonlinear_op(output, args[0])
        if op is not None:
            raise ValueError(
                f"composite {composite!r} has no rule for module {name!r} ({type(module).__name__}), "
                f"whose forward is not piecewise linear ({op}); its relevance would silently be its "
                f"plain gradient. {how_to_add(name, module, composite)}"
            )

    return hook


def install_rules(
    model: nn.Module, assignments: list[tuple[nn.Module, Rule]], session: Session,
    watch: list[tuple[str, nn.Module]] = (), composite: str = "custom",
) -> None:
    """Attach each rule to its module and the sign tags to the modules that know them.

    ``model`` and the modules are a :class:`pyxai.engine.view.ModelView`'s: wrappers and hooks are
    attributes of the view's module objects; the user's modules never see them, and nothing needs
    undoing (the view is dropped after the call). ``watch``: modules without a rule whose forward
    must be piecewise linear (their relevance is their gradient); the forward raises otherwise,
    naming the module and how to give it a rule.
    """
    for name, module in watch:
        module.register_forward_hook(_linearity_hook(name, composite))
    for module, rule in assignments:
        inplace = bool(getattr(module, "inplace", False))
        takes = "nonneg" in inspect.signature(rule.backward).parameters
        state = _LayerState(module, rule, module.forward, session, inplace, takes_nonneg=takes)
        module.forward = _wrapper(state)
    for module in model.modules():
        if isinstance(module, NONNEG_OUTPUT + SIGN_PRESERVING):
            module.register_forward_hook(_sign_hook(session, isinstance(module, NONNEG_OUTPUT)))
