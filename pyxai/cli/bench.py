"""``pyxai bench``: native vs reference vs anchors, parity checked before timing.

    pyxai bench rise occlusion --json out.json
"""

from __future__ import annotations

import argparse


def cmd_bench(args: argparse.Namespace) -> int:
    from pyxai.benchmark import core

    registry = core.load_all()
    methods = args.methods or sorted(registry)
    rows = core.run_methods(methods, quick=args.quick, repeat=args.repeat, device=args.device,
                            only=args.only, json_path=args.json)
    return 1 if any(r["status"].startswith("PARITY FAIL") for r in rows) else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command to the ``pyxai`` parser."""
    b = sub.add_parser("bench", help="native vs reference vs anchors, parity checked first")
    b.add_argument("methods", nargs="*", help="methods (default: all registered)")
    b.add_argument("--quick", action="store_true", help="small shapes only")
    b.add_argument("--repeat", type=int, default=3, help="timed runs per implementation")
    b.add_argument("--device", default="cpu")
    b.add_argument("--only", action="append", help="only these implementations (plus the floor)")
    b.add_argument("--json", help="write all rows as JSON")
    b.set_defaults(fn=cmd_bench)
