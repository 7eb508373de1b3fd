"""pytest-benchmark suite for LRP and CRP (workloads in pyxai/benchmark/lrp.py).

    pytest benchmarks/bench_lrp.py --benchmark-only          # quick shapes
    PYXAI_BENCH_FULL=1 pytest benchmarks/bench_lrp.py         # ResNet-18 b=8 112x112; 32 concepts

Parity (pyxai ~ reference ~ Zennit / zennit-crp) is checked first; then each implementation is
timed by pytest-benchmark. Timings are reported, never asserted.
"""

from __future__ import annotations

import os

import pytest
import torch

from pyxai.benchmark import lrp as workloads
from pyxai.benchmark.core import parity_error

QUICK = os.environ.get("PYXAI_BENCH_FULL", "0") != "1"
CASES = {
    "lrp": workloads.lrp_cases(quick=QUICK)[0],
    "crp": workloads.crp_cases(quick=QUICK)[0],
}
IMPLS = [(m, impl) for m, case in CASES.items() for impl in case.impls]


@pytest.mark.parametrize("method,impl", IMPLS, ids=[f"{m}-{i}" for m, i in IMPLS])
def test_bench(benchmark, method, impl):
    case = CASES[method]
    if impl in ("zennit", "zennit-crp"):
        pytest.importorskip("zennit" if impl == "zennit" else "crp")
    fn = case.impls[impl]
    result = fn()
    if impl not in ("pyxai", "floor"):
        err = parity_error(case.impls["pyxai"](), result)
        assert err <= 1e-4, f"{impl} differs from pyxai by {err:.2e}"
    benchmark.extra_info["case"] = case.name
    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1)
