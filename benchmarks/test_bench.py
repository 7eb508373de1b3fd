"""pytest-benchmark front end to the registered workloads (pyxai/benchmark/*).

    pytest benchmarks -k rise --benchmark-only            # quick shapes
    PYXAI_BENCH_FULL=1 pytest benchmarks -k rise          # the full shapes of `pyxai bench rise`

For each method and case, parity between implementations is checked first (a mismatch fails the
test); then the pyxai implementation is timed by pytest-benchmark, and the medians of every other
implementation (floor, reference backend, anchors) with their ratios go into ``extra_info``.
"""

from __future__ import annotations

import os

import pytest

from pyxai.benchmark import core

METHODS = sorted(core.load_all())


@pytest.mark.parametrize("method", METHODS)
def test_method(benchmark, method):
    quick = os.environ.get("PYXAI_BENCH_FULL", "0") != "1"
    cases = core.REGISTRY[method](quick=quick, device="cpu")
    rows = []
    for case in cases:
        rows += core.run_case(case, repeat=3)
    failures = [r for r in rows if r["status"].startswith("PARITY FAIL")]
    assert not failures, core.format_table(failures)
    for r in rows:
        if "median_s" in r:
            key = f"{r['case']} | {r['impl']}"
            benchmark.extra_info[key + " median_ms"] = round(r["median_s"] * 1e3, 3)
            if "vs_floor" in r:
                benchmark.extra_info[key + " x_floor"] = round(r["vs_floor"], 3)
    print("\n" + core.format_table(rows))
    first = cases[0]
    benchmark.pedantic(first.impls["pyxai"], rounds=3, warmup_rounds=1)
