"""STEP and the video causal metrics on CUDA: no host sync in the optimisation loop (every
iteration runs in ``pyxai.engine.sync.hot_path``, which ``PYXAI_SYNC_DEBUG=1`` turns into
``torch.cuda.set_sync_debug_mode("error")``; the permutations are CPU draws copied from pinned
memory without blocking), CUDA == CPU for a few iterations, and r3d_18 timings (printed, never
asserted). Skipped without a GPU."""

from __future__ import annotations

import copy
import time

import pytest
import torch

import pyxai
from tests.video.test_step import tiny_net, video_net

DEV = "cuda"


@pytest.mark.parametrize("objective, variant", [("step", "preserve"), ("step", "dual"),
                                                ("2d_ep", "delete")])
def test_step_is_sync_free_and_equals_cpu(rng, sync_debug, objective, variant):
    model = tiny_net(rng)
    x = torch.rand(2, 3, 8, 32, 32, generator=rng)
    labels = torch.tensor([1, 4])
    kw = dict(areas=(0.05, 0.2), max_iter=8, sigma=11.0, core_start=3, objective=objective,
              variant=variant, seed=7, stable_sort=True)  # ties: the same order on both devices
    cpu, hist_cpu = pyxai.STEP(model, **kw).attribute(x, labels, return_history=True)
    gpu, hist_gpu = pyxai.STEP(copy.deepcopy(model).to(DEV), **kw).attribute(
        x.to(DEV), labels.to(DEV), return_history=True)
    assert gpu.device.type == "cuda" and hist_gpu.device.type == "cuda"
    # last-bit differences of the mask generator (CUDA expf vs the CPU kernel's) grow through
    # the optimisation as 1-ulp noise does (tests/perturbation/test_extremal.py)
    assert (gpu.cpu() - cpu).abs().mean() < 2e-3
    assert ((hist_gpu.cpu() - hist_cpu).abs().mean() / hist_cpu.abs().mean()) < 1e-2


def test_video_metrics_on_cuda_equal_cpu(rng, sync_debug):
    model = tiny_net(rng)
    x = torch.rand(3, 3, 4, 16, 16, generator=rng)
    sal = torch.rand(3, 1, 4, 16, 16, generator=rng)
    for fn in (pyxai.metrics.video_insertion, pyxai.metrics.video_deletion):
        cpu = fn(model, x, sal, [0, 1, 2], n_steps=16, new_size=8)
        gpu = fn(copy.deepcopy(model).to(DEV), x.to(DEV), sal.to(DEV), [0, 1, 2], n_steps=16,
                 new_size=8)
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


def test_step_r3d_18_timing(rng):
    model = video_net("r3d_18", rng).to(DEV)
    x = torch.rand(4, 3, 16, 112, 112, generator=rng).to(DEV)
    step = pyxai.STEP(model, areas=(0.05, 0.1, 0.2), max_iter=50)
    step.attribute(x[:1], 0)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    masks = step.attribute(x, 0)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20
    print(f"STEP r3d_18 4 clips x 3 areas, 16x112x112, 50 steps on {torch.cuda.get_device_name()}: "
          f"{dt:.2f} s ({dt / 4 / 50 * 1e3:.1f} ms per clip and step), peak {peak:.0f} MiB")
    assert masks.shape == (4, 3, 1, 16, 112, 112) and torch.isfinite(masks).all()
