"""Run Zennit's own ``tests/`` (rules, canonizers, composites) against pyxai's rules and print
the pass counts.

    python benchmarks/anchor_suites/zennit.py [--repo GIT_DIR] [--rev 0.4.6] [-k EXPR]

The anchor's repository is a fetched bare git directory (default
``/work/.mirror/chr5tphr+zennit/repo``); its tests at ``--rev`` (default ``0.4.6``, the Zennit
installed here, which zennit-crp pins) are extracted into a temporary folder and run twice:
as they are (``anchor``) and with the plugin ``_zennit_plugin`` replacing the rule classes of
``zennit.rules`` that pyxai has by pyxai's (``pyxai``; Gamma as ``Gamma(generalized=False)`` for
Zennit 0.4.x, whose Gamma is not yet the generalised one). Only rule names are swapped: Zennit's
canonizer classes and composites keep their own (pyxai's canonizers have Zennit's
``register(model)``/``remove()`` and, for the BatchNorm merge, its per-layer
``register(linears, batch_norm)``, but not its ``AttributeCanonizer`` / ``apply(root)`` protocol).
With ``--rev 0.5.1`` put Zennit 0.5.1 first on ``PYTHONPATH`` (e.g. ``/tmp/zennit051``): its
tests exercise ``zero_params`` and the stabiliser keywords.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from _common import extract, print_table, run_suite

DEFAULT_REPO = "/work/.mirror/chr5tphr+zennit/repo"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=DEFAULT_REPO)
    ap.add_argument("--rev", default="0.4.6")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    ap.add_argument("--show-failures", action="store_true")
    ap.add_argument("--modes", nargs="+", default=["anchor", "pyxai"], choices=["anchor", "pyxai"],
                    help="which runs (default both)")
    args = ap.parse_args()
    listed = subprocess.run(["git", "--git-dir", args.repo, "ls-tree", "-r", "--name-only",
                             args.rev, "tests"], check=True, capture_output=True, text=True)
    paths = [p for p in listed.stdout.split() if p.endswith(".py")]
    root = extract(args.repo, ["tests"], args.rev)
    files = sorted(p for p in paths if Path(p).name.startswith("test_")
                   and any(w in p for w in ("rules", "canonizers", "composites")))
    extra = ["-k", args.k] if args.k else []
    here = Path(__file__).resolve().parent / "plugins"
    rows = []
    for f in files:
        res = {mode: run_suite(root, [f], here, "_zennit_plugin", mode, extra,
                               env={"PYXAI_ZENNIT_REV": args.rev})
               for mode in args.modes}
        empty = {"passed": 0, "total": 0}
        rows.append((f, res.get("anchor", empty), res.get("pyxai", empty)))
        if args.show_failures:
            for name in res.get("pyxai", {}).get("failures", [])[:10]:
                print(f"  [pyxai fails] {name}")
    tot = [{k: sum(r[i][k] for r in rows) for k in ("passed", "total")} for i in (1, 2)]
    print_table(rows + [("TOTAL", tot[0], tot[1])])
    print(f"(tests extracted to {root}, rev {args.rev})")


if __name__ == "__main__":
    main()
