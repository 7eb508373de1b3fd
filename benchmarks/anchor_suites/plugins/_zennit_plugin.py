"""pytest plugin (``-p _zennit_plugin``) for the Zennit anchor suite: with
``PYXAI_ANCHOR_MODE=pyxai`` the rules of ``zennit.rules`` that pyxai has are replaced by pyxai's
before the tests import them (Gamma as the 0.4.x rule when ``PYXAI_ZENNIT_REV`` is 0.4.x)."""

from __future__ import annotations

import os

SWAPPED: list[str] = []

if os.environ.get("PYXAI_ANCHOR_MODE") == "pyxai":
    import zennit.rules as zr

    from pyxai import rules as pr

    old_gamma = os.environ.get("PYXAI_ZENNIT_REV", "").startswith("0.4")

    class Gamma04(pr.Gamma):
        """Zennit 0.4's Gamma signature and rule."""

        def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6) -> None:
            super().__init__(gamma, stabilizer, generalized=False)

    for _name in ("Epsilon", "ZPlus", "AlphaBeta", "Gamma", "ZBox", "Norm", "WSquare", "Flat",
                  "Pass"):
        if hasattr(zr, _name):
            setattr(zr, _name, Gamma04 if (_name == "Gamma" and old_gamma) else getattr(pr, _name))
            SWAPPED.append(_name)


def pytest_report_header(config):
    return "pyxai zennit suite: " + (", ".join(SWAPPED) or "Zennit's own rules")
