"""Running Zennit 0.5.1 in a subprocess (it cannot share the venv with zennit-crp, which pins 0.4.6).

Zennit 0.5.1 is taken from ``PYXAI_ZENNIT051`` (default ``/tmp/zennit051``, made with
``pip install --no-deps --target /tmp/zennit051 zennit==0.5.1``); :func:`run` skips the calling
test without it. A test gives the Zennit side of its computation as a script body (its imports,
the namespace ``ns`` its rule expressions are evaluated in, and ``make_composite``);
:func:`run` wraps it: the rules of ``data["rules"]`` registered on the layers of ``data["layers"]``
one at a time, the composite ``make_composite(data["composite"])`` on ``data["model"]``, the
results saved back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ZENNIT051 = os.environ.get("PYXAI_ZENNIT051", "/tmp/zennit051")

_HEAD = r'''
import sys, torch
sys.path.insert(0, sys.argv[1])
import zennit
from zennit.attribution import Gradient
data = torch.load(sys.argv[2], weights_only=False)
'''

_TAIL = r'''
rels = []
for expr, (module, x, g) in zip(data["rules"], data["layers"]):
    handle = eval(expr, ns).register(module)
    x = x.clone().requires_grad_(True)
    rel, = torch.autograd.grad(module(x), x, g)
    handle.remove()
    rels.append(rel)
with Gradient(data["model"], make_composite(data["composite"])) as attributor:
    _, net = attributor(data["x"].clone().requires_grad_(True), data["onehot"])
import importlib.metadata as md
torch.save({"rels": rels, "net": net, "version": md.version("zennit"), "file": zennit.__file__}, sys.argv[3])
'''


def require() -> None:
    """Skip the calling test when Zennit 0.5.1 is not at ``ZENNIT051``."""
    if not (Path(ZENNIT051) / "zennit").is_dir():
        pytest.skip(f"zennit 0.5.1 not found at {ZENNIT051} (pip install --no-deps --target "
                    f"{ZENNIT051} zennit==0.5.1)")


def run(body: str, payload: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run ``body`` with Zennit 0.5.1 on ``payload`` and return its results.

    Args:
        body: Python run after ``data`` (the payload) is loaded; it defines ``ns`` (the namespace of
            the rule expressions) and ``make_composite(exprs)`` (the composite of
            ``data["composite"]``).
        payload: ``rules`` (expressions), ``layers`` ((module, x, grad) each), ``composite``,
            ``model``, ``x``, ``onehot``.
        tmp_path: where the payload and the results are exchanged.

    Returns:
        ``rels`` (one relevance per rule and layer), ``net`` (the composite's input relevance),
        ``version`` and ``file`` of the Zennit that ran (checked to be 0.5.1 from ``ZENNIT051``).
    """
    require()
    src, dst = tmp_path / "in.pt", tmp_path / "out.pt"
    torch.save(payload, src)
    proc = subprocess.run([sys.executable, "-c", _HEAD + body + _TAIL, ZENNIT051, str(src), str(dst)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = torch.load(dst, weights_only=False)
    assert res["version"] == "0.5.1" and res["file"].startswith(ZENNIT051)
    return res
