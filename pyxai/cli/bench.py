"""``pyxai bench``: native vs reference vs anchors, parity checked before timing.

    pyxai bench rise occlusion --json out.json
    pyxai bench --quick                          # every workload, small shapes

Workload names are the method registry's names (``pyxai explain --method``); ``ig`` still works as
an alias of ``integrated_gradients``. Workloads of APIs outside the registry: ``crp``,
``feature_ablation``, ``metrics``, ``rise_adaptive``.
"""

from __future__ import annotations

import argparse

from pyxai import registry
from pyxai.cli._device import check_device


def cmd_bench(args: argparse.Namespace) -> int:
    from pyxai.benchmark import core

    if args.repeat is None:
        args.repeat = 2 if args.quick else 3  # two floors still give the spread line
    if args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {args.repeat}")
    check_device(args.device)
    workloads = core.load_all()
    methods = args.methods or sorted(workloads)
    unknown = [m for m in methods if core.ALIASES.get(m, m) not in workloads]
    if unknown:
        raise ValueError(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(sorted(workloads))}")
    import gc

    # everything imported so far lives until exit: frozen, it is not traversed again by the
    # collections before each first run (a full collection took 0.12 s here, ~20 s a quick bench)
    gc.freeze()
    rows = core.run_methods(methods, quick=args.quick, repeat=args.repeat, device=args.device,
                            only=args.only, json_path=args.json)
    return 1 if any(r["status"].startswith("PARITY FAIL") for r in rows) else 0


class _Help(argparse.RawDescriptionHelpFormatter):
    """Appends the workload list when help is shown (importing the workloads only then)."""

    def format_help(self) -> str:
        from pyxai.benchmark import core

        workloads = set(core.load_all())
        shared = sorted(workloads & set(registry.names()))
        missing = sorted(set(registry.names()) - workloads)
        return (super().format_help() + "\nworkloads named as the method registry (defaults of "
                "`pyxai explain`; bench runs its own fixed shapes):\n" + registry.help_text(only=shared)
                + "\nother workloads: " + ", ".join(sorted(workloads - set(shared)))
                + "\nregistry methods without a bench workload: " + ", ".join(missing)
                + "\naliases: " + ", ".join(f"{a} = {b}" for a, b in core.ALIASES.items()) + "\n")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command to the ``pyxai`` parser."""
    b = sub.add_parser("bench", help="native vs reference vs anchors, parity checked first",
                       formatter_class=_Help,
                       description="Time each workload's implementations (pyxai, reference backend, "
                                   "anchors) against the floor (the bare model work), parity "
                                   "checked first; prints the machine's noise (load average, "
                                   "spread of the repeated floor timings) under each table.")
    b.add_argument("methods", nargs="*", help="workloads (default: all)")
    b.add_argument("--quick", action="store_true", help="small shapes only (all: a few minutes)")
    b.add_argument("--repeat", type=int, default=None,
                   help="timed runs per implementation (default 3; 2 with --quick)")
    b.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    b.add_argument("--only", action="append", help="only these implementations (plus the floor)")
    b.add_argument("--json", help="write all rows as JSON")
    b.set_defaults(fn=cmd_bench)
