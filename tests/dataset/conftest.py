"""One local Ray session for all dataset tests (starting Ray costs seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="session")
def ray_address() -> str:
    """Start a 2-CPU local Ray whose workers can import ``pyxai`` and ``tests``; its GCS address."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("zarr")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *([old] if old else [])])  # inherited by workers
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old
