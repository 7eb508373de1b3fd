"""The bench harness: parity before timing, floor ratio, table, registry."""

from __future__ import annotations

import torch

from pyxai.benchmark import core


def test_run_case_parity_and_ratio():
    x = torch.randn(1000)
    case = core.Case(
        name="toy",
        impls={"pyxai": lambda: x * 2, "reference": lambda: x + x, "wrong": lambda: x * 3,
               "floor": lambda: None},
        parity=[("pyxai", "reference", 1e-6), ("wrong", "reference", 1e-6)],
    )
    rows = {r["impl"]: r for r in core.run_case(case, repeat=2)}
    assert rows["pyxai"]["status"] == "ok" and "median_s" in rows["pyxai"]
    assert rows["pyxai"]["vs_floor"] > 0
    assert rows["wrong"]["status"].startswith("PARITY FAIL") and "median_s" not in rows["wrong"]
    table = core.format_table(list(rows.values()))
    assert "PARITY FAIL" in table and "pyxai" in table


def test_summarize_sees_first_run_results():
    x = torch.randn(50)
    case = core.Case(name="toy", impls={"pyxai": lambda: x * 2, "floor": lambda: None}, notes="n",
                     summarize=lambda res: f"max {float(res['pyxai'].max()):.3f}")
    rows = core.run_case(case, repeat=1)
    assert rows[0]["notes"] == f"n; max {float((x * 2).max()):.3f}"


def test_first_run_peak_memory_sees_allocations():
    _, peak = core.first_run(lambda: torch.ones(25_000_000).sum(), "cpu")  # 100 MB
    assert peak > 50 * 2**20


def test_registry_loads_every_family():
    reg = core.load_all()
    assert reg, "no benchmark registered"
    for name, fn in reg.items():
        assert callable(fn), name
