"""``pyxai info``: versions, native status, devices and the registered methods."""

from __future__ import annotations

import argparse
import json

import torch

from pyxai import registry


def cmd_info(args: argparse.Namespace) -> int:
    import pyxai

    status = pyxai.native_status()
    print(f"pyxai {pyxai.__version__}")
    print(f"torch {status['torch']} (CUDA {status['torch_cuda']}), python {status['python']}")
    print("devices: cpu" + (f", cuda x{torch.cuda.device_count()}" if status["cuda_available"] else ""))
    if status["compiled"]:
        print(f"native: compiled for {', '.join(status['devices'])}; ops: {', '.join(status['ops'])}")
        print(f"build: {json.dumps(status['build'])}")
    else:
        print(f"native: not available — {status['reason']}")
    print(f"default backend: {status['backend_default']}")
    print(f"methods: {', '.join(registry.names())}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command to the ``pyxai`` parser."""
    sub.add_parser("info", help="versions, native status, devices").set_defaults(fn=cmd_info)
