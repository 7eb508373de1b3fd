"""Shared test fixtures: fresh random inputs every run (the seed is printed on failure)."""

from __future__ import annotations

import os

import pytest
import torch

# Two shared cores: keep intra-op threads modest so parallel test jobs don't thrash.
torch.set_num_threads(int(os.environ.get("PYXAI_TEST_THREADS", "2")))


def fresh_seed() -> int:
    """``PYXAI_TEST_SEED`` when set, else a fresh seed; printed, for fixtures wider than one test."""
    fixed = os.environ.get("PYXAI_TEST_SEED")
    seed = int(fixed) if fixed else int(torch.seed() % (2**31))
    print(f"[seed {seed}]")
    return seed


@pytest.fixture
def rng(request) -> torch.Generator:
    """A CPU generator seeded freshly for each test (the global one too); the seed is in the report.

    ``PYXAI_TEST_SEED=N`` replays a run: every test that uses this fixture then starts from seed N.
    """
    seed = fresh_seed()
    torch.manual_seed(seed)  # the global generator too (model inits), so the printed seed replays the test
    request.node.user_properties.append(("seed", seed))
    return torch.Generator().manual_seed(seed)


def native_or_skip(device: str = "cpu") -> None:
    from pyxai import _native

    if not _native.available(device):
        pytest.skip(f"native kernels unavailable on {device}: {_native.why_unavailable(device)}")
