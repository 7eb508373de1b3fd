"""The ``pyxai`` command line. One module per sub-command, each with ``register(sub)``.

    pyxai info                              # versions, native status, devices
    pyxai explain                           # bundled demo model + images, every method, overlays + table
    pyxai bench rise occlusion --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command modules of this package, in ``--help`` order (each defines ``register(sub)``)
COMMANDS: tuple[str, ...] = (
    "info",
    "explain",
    "bench",
    "video",
    "explain_dataset",
    "similarity",
    "spray",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``pyxai`` parser with every sub-command of :data:`COMMANDS`."""
    p = argparse.ArgumentParser(prog="pyxai", description="Fast, faithful attribution for PyTorch.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"pyxai.cli.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a user error is one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"pyxai {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
