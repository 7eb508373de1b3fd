"""Run Captum's OWN test files against Captum and against pyxai, and print the pass counts.

Captum's tests are not part of pyxai (they are someone else's code): fetch Captum's source and
point this script at its ``tests`` folder::

    git clone https://github.com/pytorch/captum /tmp/captum-src   # or any checkout / archive
    python benchmarks/anchor_suites/captum.py --src /tmp/captum-src

Each test file runs twice in its own pytest process, from the Captum checkout: once as it is
(Captum's classes), once with only the class under test swapped to pyxai's: the name is replaced
in the test module's namespace and in ``captum.attr`` before the tests run (an in-process pytest
plugin, :class:`Swap`); helpers, models, NoiseTunnel (unless it is the class under test) and
every other Captum name stay Captum's. Prints one row per file: passed / total for both.

Tests whose name contains ``future`` exercise Captum's asynchronous ``Future`` forward functions,
which pyxai does not implement; they are counted apart (``--skip-future`` deselects them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: test file (relative to Captum's ``tests/attr``) -> the names swapped to pyxai's classes
FILES: dict[str, tuple[str, ...]] = {
    "test_feature_ablation.py": ("FeatureAblation",),
    "test_occlusion.py": ("Occlusion",),
    "layer/test_grad_cam.py": ("LayerGradCam",),
    "test_guided_grad_cam.py": ("GuidedGradCam",),
    "test_saliency.py": ("Saliency",),
    "test_input_x_gradient.py": ("InputXGradient",),
    "test_integrated_gradients_basic.py": ("IntegratedGradients",),
    "test_guided_backprop.py": ("GuidedBackprop",),
    "test_integrated_gradients_classification.py": ("IntegratedGradients",),
}

#: further files, for the methods pyxai added after the first nine (``--all``)
EXTRA_FILES: dict[str, tuple[str, ...]] = {
    "test_deconvolution.py": ("Deconvolution",),
    "test_gradient_shap.py": ("GradientShap",),
    "test_shapley.py": ("ShapleyValueSampling", "ShapleyValues"),
    "test_kernel_shap.py": ("KernelShap",),
    "test_lime.py": ("Lime", "LimeBase"),
    "layer/test_layer_activation.py": ("LayerActivation",),
    "layer/test_layer_integrated_gradients.py": ("LayerIntegratedGradients",),
    "layer/test_layer_conductance.py": ("LayerConductance",),
    "test_deeplift_basic.py": ("DeepLift", "DeepLiftShap"),
    "test_deeplift_classification.py": ("DeepLift", "DeepLiftShap"),
}


class Swap:
    """pytest plugin: replace ``names`` by pyxai's classes in the collected test modules (and in
    ``captum.attr``), and record each test's outcome."""

    def __init__(self, names: tuple[str, ...], swap: bool, report: str) -> None:
        self.names, self.swap, self.report = names, swap, report
        self.outcomes: dict[str, str] = {}

    def pytest_collection_modifyitems(self, session, config, items) -> None:  # noqa: ANN001
        if not self.swap:
            return
        import captum.attr

        import pyxai

        for name in self.names:
            setattr(captum.attr, name, getattr(pyxai, name))
        for mod in {item.module for item in items if getattr(item, "module", None)}:
            for name in self.names:
                if hasattr(mod, name):
                    setattr(mod, name, getattr(pyxai, name))

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.when == "call":
            self.outcomes.setdefault(report.nodeid, "passed" if report.passed else "skipped")
        elif report.skipped:
            self.outcomes.setdefault(report.nodeid, "skipped")

    def pytest_sessionfinish(self, session) -> None:  # noqa: ANN001
        Path(self.report).write_text(json.dumps(self.outcomes))


def _worker(argv: list[str]) -> int:
    import pytest

    mode, report, path, *names = argv
    plugin = Swap(tuple(names), mode == "pyxai", report)
    extra = os.environ.get("PYXAI_ANCHOR_PYTEST", "").split()
    return pytest.main([path, "-q", "-p", "no:cacheprovider", *extra], plugins=[plugin])


def run_file(src: Path, rel: str, names: tuple[str, ...], mode: str, skip_future: bool,
             verbose: bool) -> dict[str, str]:
    """Outcomes (nodeid -> passed/failed/skipped) of one Captum test file in one mode."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        report = f.name
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([str(src), root, env.get("PYTHONPATH", "")])
    if skip_future:
        env["PYXAI_ANCHOR_PYTEST"] = env.get("PYXAI_ANCHOR_PYTEST", "") + " -k not_future"
    path = str(Path("tests") / "attr" / rel)
    if not (src / path).exists():
        return {}
    proc = subprocess.run([sys.executable, __file__, "--worker", mode, report, path, *names],
                          cwd=src, env=env, capture_output=not verbose, text=True)
    try:
        out = json.loads(Path(report).read_text())
    except (OSError, json.JSONDecodeError):
        out = {}
    finally:
        Path(report).unlink(missing_ok=True)
    if not out and proc.returncode not in (0, 1, 5):
        sys.stderr.write((proc.stdout or "") + (proc.stderr or ""))
    return out


def _count(outcomes: dict[str, str]) -> tuple[int, int]:
    return sum(v == "passed" for v in outcomes.values()), len(outcomes)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=os.environ.get("CAPTUM_SRC", "/tmp/captum-src"),
                    help="Captum checkout (holding tests/attr); default $CAPTUM_SRC or "
                         "/tmp/captum-src")
    ap.add_argument("--all", action="store_true", help="also the files of the methods added "
                    "later (Deconvolution, GradientShap, ...)")
    ap.add_argument("--only", nargs="*", help="run only these files (relative to tests/attr)")
    ap.add_argument("--skip-future", action="store_true", help="deselect the Future tests")
    ap.add_argument("--failures", action="store_true", help="list pyxai's failing tests")
    ap.add_argument("-v", "--verbose", action="store_true", help="show pytest's output")
    args = ap.parse_args(argv)
    src = Path(args.src)
    if not (src / "tests" / "attr").is_dir():
        print(f"error: --src {src} holds no tests/attr (a Captum checkout is needed)",
              file=sys.stderr)
        return 2
    files = dict(FILES)
    if args.all:  # the later methods pyxai has (all the names a file swaps)
        import pyxai

        files.update({k: v for k, v in EXTRA_FILES.items()
                      if all(hasattr(pyxai, n) for n in v)})
    if args.only:
        files = {k: v for k, v in {**FILES, **EXTRA_FILES}.items() if k in args.only}
    print(f"{'Captum test file':<46} {'Captum':>9} {'pyxai':>9}  (future tests failing)")
    tot = [0, 0, 0, 0]
    failing: list[str] = []
    for rel, names in files.items():
        ref = run_file(src, rel, names, "captum", args.skip_future, args.verbose)
        ours = run_file(src, rel, names, "pyxai", args.skip_future, args.verbose)
        if not ref and not ours:
            print(f"{rel:<46} {'(missing)':>9}")
            continue
        (rp, rn), (op, on) = _count(ref), _count(ours)
        fails = [k for k, v in ours.items() if v == "failed"]
        fut = sum("future" in k.lower() for k in fails)
        failing += fails
        tot = [tot[0] + rp, tot[1] + rn, tot[2] + op, tot[3] + on]
        print(f"{rel:<46} {f'{rp}/{rn}':>9} {f'{op}/{on}':>9}  ({fut})")
    print(f"{'total':<46} {f'{tot[0]}/{tot[1]}':>9} {f'{tot[2]}/{tot[3]}':>9}")
    if args.failures:
        print("\n".join(["", "pyxai failures:"] + failing))
    return 0


if __name__ == "__main__":
    # run as a script, this file's folder is sys.path[0]: drop it, or "import captum" finds this file
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.exit(main())
