"""``pyxai.rules``: the LRP rules, importable as a module (``from pyxai.rules import Epsilon``, as
``from zennit.rules import Epsilon``). They live in :mod:`pyxai.lrp.rules`."""

from pyxai.lrp.rules import (  # noqa: F401  (re-exported)
    AlphaBeta,
    BasicHook,
    ClampMod,
    Epsilon,
    Flat,
    Gamma,
    GammaMod,
    NoMod,
    Norm,
    ParamMod,
    Pass,
    Rule,
    Stabilizer,
    WSquare,
    ZBox,
    ZPlus,
    __all__,
    zero_bias,
)
