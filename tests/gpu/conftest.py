"""tests/gpu: CUDA parity (native CUDA vs reference vs native CPU). Skipped without a GPU."""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "tests/gpu" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
def sync_debug(monkeypatch):
    """``PYXAI_SYNC_DEBUG=1``: host syncs inside pyxai's hot paths raise (pyxai.engine.sync)."""
    monkeypatch.setenv("PYXAI_SYNC_DEBUG", "1")
    yield
    torch.cuda.set_sync_debug_mode(0)
