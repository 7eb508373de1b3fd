"""Composites: which rule goes on which module (Zennit's composites, SPECS §7.3).

A :class:`Composite` holds

* ``name_map``: module name -> rule (checked first);
* ``first_map``: (types, rule) pairs for the first module, in ``named_modules()`` order, matching
  one of its types (Zennit's ``SpecialFirstLayerMapComposite``);
* ``layer_map``: (types, rule) pairs, first match wins.

Named composites (:func:`named_composite`) share Zennit's base map: activations -> Pass, ``Sum`` and
average pooling -> Norm, BatchNorm -> Pass; max pooling has no rule (plain gradient).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence, Union

import torch
from torch import nn

from pyxai.lrp import types
from pyxai.lrp.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, Rule, ZBox, ZPlus

TypeMap = Union[Mapping[type, Rule], Sequence[tuple]]

COMPOSITES = (
    "epsilon_plus", "epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1",
    "epsilon_alpha2_beta1_flat", "gradient",
)


def _pairs(mapping: TypeMap | None, what: str) -> list[tuple[tuple, Rule]]:
    if mapping is None:
        return []
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    pairs = []
    for item in items:
        try:
            key, rule = item
        except (TypeError, ValueError):
            raise TypeError(f"{what} entries must be (module type(s), rule) pairs, got {item!r}") from None
        key = key if isinstance(key, tuple) else (key,)
        if not all(isinstance(t, type) for t in key):
            raise TypeError(f"{what} keys must be module types or tuples of types, got {key!r}")
        if not isinstance(rule, Rule):
            raise TypeError(f"{what} values must be pyxai.rules rules, got {rule!r}")
        pairs.append((key, rule))
    return pairs


def _type_names(types_: tuple) -> str:
    return "/".join(t.__name__ for t in types_[:4]) + ("/..." if len(types_) > 4 else "")


class Composite:
    """Rule assignment by module name, first layer and module type.

    Args:
        layer_map (dict or list of (types, rule), optional): rules by module type; first match wins.
        first_map (dict or list of (types, rule), optional): rules for the first module (in
            ``model.named_modules()`` order) matching one of the types.
        name_map (dict of str -> rule, optional): rules by module name; checked before the others.
        strict (bool, optional): raise when a module with parameters gets no rule (its relevance
            would be a plain gradient). Default: True
        name (str, optional): shown in error messages. Default: "custom"

    Examples::

        >>> comp = Composite(layer_map={torch.nn.Conv2d: rules.ZPlus(), torch.nn.Linear: rules.Epsilon(),
        ...                             torch.nn.ReLU: rules.Pass()})
        >>> pyxai.LRP(model, composite=comp).attribute(x, target=3)
    """

    def __init__(
        self,
        layer_map: TypeMap | None = None,
        first_map: TypeMap | None = None,
        name_map: Mapping[str, Rule] | None = None,
        strict: bool = True,
        name: str = "custom",
    ) -> None:
        self.layer_map = _pairs(layer_map, "layer_map")
        self.first_map = _pairs(first_map, "first_map")
        self.name_map = dict(name_map or {})
        for key, rule in self.name_map.items():
            if not isinstance(key, str) or not isinstance(rule, Rule):
                raise TypeError(f"name_map must map module names to rules, got {key!r}: {rule!r}")
        self.strict = strict
        self.name = name

    def describe(self) -> str:
        """The rule map as text (for error messages)."""
        parts = [f"{n!r}: {r!r}" for n, r in self.name_map.items()]
        parts += [f"first {_type_names(t)}: {r!r}" for t, r in self.first_map]
        parts += [f"{_type_names(t)}: {r!r}" for t, r in self.layer_map]
        return "{" + ", ".join(parts) + "}"

    def assign(self, model: nn.Module) -> list[tuple[str, nn.Module, Rule]]:
        """Rules for the modules of ``model`` (after canonizers): list of (name, module, rule).

        Raises:
            ValueError: a name in ``name_map`` is not in the model, or (``strict``) a module with
                parameters of its own (a layer, ``nn.MultiheadAttention``, ...) is covered by no
                rule.
        """
        modules = dict(model.named_modules())
        missing = [n for n in self.name_map if n not in modules]
        if missing:
            raise ValueError(
                f"composite {self.name!r}: name_map refers to modules not in the model: {missing}"
            )
        out = []
        first_done = not self.first_map
        uncovered = []
        for name, module in model.named_modules():
            rule = self.name_map.get(name)
            if rule is None and not first_done:
                rule = next((r for t, r in self.first_map if isinstance(module, t)), None)
                first_done = rule is not None
            if rule is None:
                rule = next((r for t, r in self.layer_map if isinstance(module, t)), None)
            if rule is not None:
                out.append((name, module, rule))
            elif next(module.parameters(False), None) is not None and not _inside(name, out):
                uncovered.append((name, module))
        if self.strict and uncovered:
            name, module = uncovered[0]
            more = f" (and {len(uncovered) - 1} more)" if len(uncovered) > 1 else ""
            raise ValueError(
                f"composite {self.name!r} has no rule for module {name!r} ({type(module).__name__}){more}; "
                f"its rule map is {self.describe()}. {how_to_add(name, module, self.name)}, or pass "
                "strict=False to let its relevance be the plain gradient"
            )
        return out

    def unruled_custom(self, model: nn.Module, assigned: list) -> list[tuple[str, nn.Module]]:
        """Parameter-free leaf modules of the user's own classes (not ``torch.nn``) with no rule:
        their relevance is their plain gradient, right only when they are piecewise linear (checked
        on the forward graph by :mod:`pyxai.lrp.core`)."""
        ruled = {id(m) for _, m, _ in assigned}
        return [
            (n, m) for n, m in model.named_modules()
            if id(m) not in ruled and next(m.children(), None) is None
            and next(m.parameters(False), None) is None
            and not type(m).__module__.startswith(("torch.", "pyxai.lrp."))
            and not _inside(n, assigned)
        ]

    def __repr__(self) -> str:
        return f"Composite({self.name!r}, {self.describe()})"


def _inside(name: str, assigned: list) -> bool:
    """Whether module ``name`` lies inside a module that has a rule (its rule covers it)."""
    return any(name.startswith(n + ".") for n, _, _ in assigned if n)


def how_to_add(name: str, module: nn.Module, composite: str) -> str:
    """The sentence telling how to give ``module`` a rule."""
    kind = type(module).__name__
    base = f"{composite!r}" if composite in COMPOSITES else "'epsilon_plus_flat'"
    return (
        f"Give {kind} a rule with a composite entry: pyxai.lrp.named_composite({base}, "
        f"layer_map=[({kind}, rule)]), Composite(layer_map=[({kind}, rule), ...]) or "
        f"Composite(name_map={{{name!r}: rule}}), with one of pyxai.rules (Pass, Norm, Epsilon, ...) "
        "or your own Rule"
    )


def layer_map_base(stabilizer: float = 1e-6) -> list[tuple[tuple, Rule]]:
    """Zennit's base map shared by every named composite."""
    return [
        (types.Activation, Pass()),
        (types.SumLayer, Norm(stabilizer)),
        (types.AvgPool, Norm(stabilizer)),
        (types.BatchNorm, Pass()),
    ]


#: ``gamma_rule`` values of the named composites: Zennit >= 0.5's generalised Gamma, Zennit 0.4's.
GAMMA_RULES = ("zennit>=0.5", "zennit<0.5")


def named_composite(
    name: str,
    epsilon: float = 1e-6,
    gamma: float | Gamma = 0.25,
    low: float | torch.Tensor | None = None,
    high: float | torch.Tensor | None = None,
    stabilizer: float = 1e-6,
    layer_map: TypeMap | None = None,
    gamma_rule: str = "zennit>=0.5",
    zero_params: str | list[str] | None = None,
) -> Composite:
    """Build one of Zennit's composites by name (``COMPOSITES``).

    Args:
        name: ``epsilon_plus``, ``epsilon_plus_flat``, ``epsilon_gamma_box``, ``epsilon_alpha2_beta1``,
            ``epsilon_alpha2_beta1_flat`` or ``gradient`` (no rules: the plain gradient).
        epsilon: Epsilon rule of the dense layers. gamma: Gamma rule of the convolutions
            (``epsilon_gamma_box``): its gamma (float) or a :class:`~pyxai.rules.Gamma` object.
        gamma_rule: which Gamma rule a float ``gamma`` builds: ``"zennit>=0.5"`` (default, the
            generalised rule of Zennit 0.5.x, equal to Zennit 0.5.1) or ``"zennit<0.5"`` (the
            rule of Zennit 0.4.x, equal to Zennit 0.4.6, which zennit-crp pins).
        low, high: ZBox bounds of the first convolution (``epsilon_gamma_box``, required).
        stabilizer: stabiliser of every other rule (a float or a callable, as the rules take).
        layer_map: extra (types, rule) pairs checked before the composite's own.
        zero_params: parameters (``"bias"``, ``"weight"``) the composite's Linear-type rules treat
            as zero (Zennit 0.5.1's composites' keyword; a given Gamma object keeps its own).

    Returns:
        Composite
    """
    if not isinstance(name, str) or name not in COMPOSITES:
        raise ValueError(f"unknown composite {name!r}; known: {', '.join(COMPOSITES)}")
    extra = _pairs(layer_map, "layer_map")
    base = extra + layer_map_base(stabilizer)
    dense = (nn.Linear,), Epsilon(epsilon, zero_params=zero_params)
    if name == "gradient":
        return Composite(layer_map=extra, strict=False, name=name)
    if name == "epsilon_gamma_box":
        if low is None or high is None:
            raise ValueError("composite 'epsilon_gamma_box' needs low= and high= (the input's bounds)")
        if gamma_rule not in GAMMA_RULES:
            raise ValueError(f"gamma_rule must be one of {GAMMA_RULES}, got {gamma_rule!r}")
        if isinstance(gamma, Gamma):
            conv = gamma
        elif isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
            conv = Gamma(gamma, stabilizer, generalized=gamma_rule == "zennit>=0.5", zero_params=zero_params)
        else:
            raise TypeError(f"gamma must be a float or a pyxai.rules.Gamma, got {type(gamma).__name__}")
        return Composite(
            layer_map=base + [(types.Convolution, conv), dense],
            first_map=[(types.Convolution, ZBox(low, high, stabilizer, zero_params=zero_params))], name=name,
        )
    conv_rule = (ZPlus(stabilizer, zero_params) if "plus" in name
                 else AlphaBeta(2.0, 1.0, stabilizer, zero_params))
    first = [(types.Linear, Flat(stabilizer, zero_params))] if name.endswith("_flat") else None
    return Composite(layer_map=base + [(types.Convolution, conv_rule), dense], first_map=first, name=name)


def resolve_composite(composite: str | Composite, **kwargs) -> Composite:
    """A Composite from a name (with the keywords of :func:`named_composite`) or a Composite."""
    if isinstance(composite, Composite):
        return composite
    if isinstance(composite, str):
        return named_composite(composite, **{k: v for k, v in kwargs.items() if v is not None})
    raise TypeError(
        f"composite must be a name ({', '.join(COMPOSITES)}) or a pyxai.lrp.Composite, got "
        f"{type(composite).__name__}"
    )


def modules_of(model: nn.Module, kinds: Iterable[type]) -> list[str]:
    """Names of the modules of ``model`` that are instances of ``kinds``."""
    kinds = tuple(kinds)
    return [n for n, m in model.named_modules() if isinstance(m, kinds)]
