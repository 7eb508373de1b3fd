"""Shared helpers of the anchor-suite runners: extract an anchor's tests from a fetched bare git
directory into a scratch folder (never into the repository), run pytest on them in a subprocess
with a plugin, and count the outcomes from the JUnit XML report."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path


def extract(git_dir: str, paths: list[str], rev: str = "HEAD") -> Path:
    """``git archive rev paths | tar -x`` into a fresh temporary folder; returns it."""
    if not Path(git_dir).exists():
        raise SystemExit(f"anchor repository not found: {git_dir} (fetch it first)")
    out = Path(tempfile.mkdtemp(prefix="pyxai-anchor-"))
    archive = subprocess.run(["git", "--git-dir", git_dir, "archive", rev, *paths],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def run_suite(cwd: Path, tests: list[str], plugin_dir: Path, plugin: str, mode: str,
              extra: list[str] | None = None, env: dict | None = None) -> dict[str, int]:
    """Run pytest on ``tests`` (relative to ``cwd``) with ``-p plugin``; ``PYXAI_ANCHOR_MODE``
    = ``mode``. Returns counts {passed, failed, error, skipped, total}."""
    report = cwd / f"report-{mode}.xml"
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYXAI_ANCHOR_MODE"] = mode
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(plugin_dir), str(Path(__file__).resolve().parents[2]), full_env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", plugin, "-p", "no:cacheprovider",
           f"--junitxml={report}", *tests, *(extra or [])]
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "total": 0}
    if not report.exists():
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        return counts
    root = ET.parse(report).getroot()
    for case in root.iter("testcase"):
        counts["total"] += 1
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            counts["failed"] += 1
        elif "error" in kinds:
            counts["error"] += 1
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    failed = [c.get("classname", "") + "::" + c.get("name", "") for c in root.iter("testcase")
              if any(ch.tag in ("failure", "error") for ch in c)]
    counts["failures"] = failed  # type: ignore[assignment]
    return counts


def print_table(rows: list[tuple[str, dict, dict]]) -> None:
    """One line per test file: anchor vs pyxai passes."""
    print(f"{'tests':45s} {'anchor':>14s} {'pyxai':>14s}")
    for name, a, p in rows:
        print(f"{name:45s} {a['passed']:>6d} / {a['total']:<6d} {p['passed']:>6d} / {p['total']:<6d}")
