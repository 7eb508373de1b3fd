"""Encoders shared by the similarity tests, built once per session (random weights drawn fresh
each run; the seed is printed)."""

from __future__ import annotations

import pytest
import torch

from tests.similarity import _encoders


@pytest.fixture(scope="session")
def encoders():
    seed = int(torch.seed() % (2**31))
    print(f"[encoder seed {seed}]")
    g = torch.Generator().manual_seed(seed)
    cache = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(seed)
            cache[name] = _encoders.encoder(name, g)
        return cache[name]

    return get
