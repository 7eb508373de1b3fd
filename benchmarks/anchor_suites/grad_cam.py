"""Run pytorch-grad-cam's own ``tests/`` against pyxai's classes and print the pass counts.

    python benchmarks/anchor_suites/grad_cam.py [--repo GIT_DIR] [--rev HEAD] [-k EXPR]

The anchor's repository is a fetched bare git directory (default
``/work/.mirror/jacobgil+pytorch-grad-cam/repo``); its ``tests/`` and ``examples/both.png`` are
extracted into a temporary folder and run twice with pytest: once as they are (``anchor``), once
with the plugin ``_grad_cam_plugin`` replacing, in ``pytorch_grad_cam`` and
``pytorch_grad_cam.utils.model_targets``, every class name pyxai provides by pyxai's class
(``pyxai``). In both runs torchvision's model builders ignore ``weights=`` / ``pretrained=``
(random weights: nothing is downloaded). Not collected by pytest (not a ``test_*`` file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import extract, print_table, run_suite

DEFAULT_REPO = "/work/.mirror/jacobgil+pytorch-grad-cam/repo"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=DEFAULT_REPO)
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    ap.add_argument("--files", nargs="*", default=None, help="test files (default: all)")
    ap.add_argument("--show-failures", action="store_true")
    ap.add_argument("--modes", nargs="+", default=["anchor", "pyxai"], choices=["anchor", "pyxai"],
                    help="which runs (default both)")
    args = ap.parse_args()
    root = extract(args.repo, ["tests", "examples/both.png"], args.rev)
    files = args.files or sorted(p.name for p in (root / "tests").glob("test_*.py"))
    extra = ["-k", args.k] if args.k else []
    here = Path(__file__).resolve().parent / "plugins"
    rows = []
    for f in files:
        res = {mode: run_suite(root, [f"tests/{f}"], here, "_grad_cam_plugin", mode, extra)
               for mode in args.modes}
        empty = {"passed": 0, "total": 0}
        rows.append((f, res.get("anchor", empty), res.get("pyxai", empty)))
        if args.show_failures:
            for mode in args.modes:
                for name in res[mode].get("failures", [])[:20]:
                    print(f"  [{mode} fails] {name}")
    total_a = {k: sum(r[1][k] for r in rows) for k in ("passed", "total")}
    total_p = {k: sum(r[2][k] for r in rows) for k in ("passed", "total")}
    print_table(rows + [("TOTAL", total_a, total_p)])
    print(f"(tests extracted to {root}, rev {args.rev})")


if __name__ == "__main__":
    main()
