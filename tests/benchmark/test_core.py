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


def test_noise_line_reports_load_and_floor_spread():
    rows = [{"impl": "floor", "median_s": 1.0, "times_s": [0.9, 1.0, 1.2]},
            {"impl": "floor", "median_s": 2.0, "times_s": [2.0, 2.0, 2.2]},
            {"impl": "pyxai", "median_s": 1.0, "times_s": [0.1, 5.0]}]
    line = core.noise_line(rows)
    assert line.startswith("noise: load average ")
    assert "median 20%, worst 30% (2 floors)" in line  # spreads 0.3 and 0.1 -> median 0.2
    assert "needs --repeat >= 2" in core.noise_line([{"impl": "floor", "median_s": 1.0, "times_s": [1.0]}])


def test_old_names_are_silent_aliases(monkeypatch):
    core.load_all()
    x = torch.randn(10)
    toy = core.Case(name="toy", impls={"pyxai": lambda: x * 2, "floor": lambda: None})
    monkeypatch.setitem(core.REGISTRY, "integrated_gradients", lambda quick, device: [toy])
    printed = []
    rows = core.run_methods(["ig"], quick=True, repeat=2, echo=printed.append)
    assert rows and all(r["method"] == "integrated_gradients" for r in rows)
    assert printed[0].lstrip().startswith("== integrated_gradients") and "noise:" in printed[-1]
