"""The harness behind ``pyxai bench`` and ``benchmarks/``: workloads, parity first, then timing.

A benchmark module in this package registers a *method* with :func:`register`; its function returns
:class:`Case` objects. Each case holds callables that do the same work in different ways:

* ``"pyxai"`` — the explainer with its default (native when available) backend;
* ``"reference"`` — the same explainer on the pure-PyTorch backend;
* ``"floor"`` — the bare model forwards (and backwards) the method cannot avoid, same batch size;
* anchors (``"captum"``, ``"pytorch-grad-cam"``, ``"zennit"``, ...) when installed;
* anything else worth showing (e.g. ``"original"``: the reference paper's algorithm).

Before timing, the results of the callables named in ``parity`` are compared; a mismatch is reported
and that callable is not timed. Timings are medians over ``repeat`` runs after one warm-up; the ratio
column is time / floor time. Peak memory is measured on the warm-up run: the peak resident-set growth
(CPU, sampled every 2 ms, with freed memory returned to the OS) or the peak CUDA allocation.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import pkgutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Registry = dict[str, Callable[..., list["Case"]]]
REGISTRY: Registry = {}
#: old workload names that still work (silently) -> their registry name (pyxai/registry.py)
ALIASES: dict[str, str] = {"ig": "integrated_gradients"}


@dataclass
class Case:
    """One workload done several ways.

    Attributes:
        name: what is computed, e.g. "resnet18 224x224 b=1, 8000 masks".
        impls: label -> zero-argument callable returning the result (a Tensor, array or None).
        parity: (label, other_label, tolerance) pairs checked before timing; results must agree to
            ``max|a - b| <= tol * (max|b| + 1e-12)``. A fourth element replaces that error by
            another ``(a, b) -> float`` (e.g. :func:`mean_error` for optimisations that amplify
            rounding).
        device: where it runs.
        notes: free text shown under the table (e.g. the number of forwards).
        prepare: label -> callable mapping the raw result to a comparable tensor (optional).
        summarize: callable given the first-run results (label -> result) returning more notes,
            e.g. a quality figure that needs the results themselves (optional).
    """

    name: str
    impls: dict[str, Callable[[], Any]]
    parity: list[tuple] = field(default_factory=list)
    device: str = "cpu"
    notes: str = ""
    prepare: dict[str, Callable[[Any], torch.Tensor]] = field(default_factory=dict)
    summarize: Callable[[dict[str, Any]], str] | None = None


def register(*names: str) -> Callable:
    """Decorator: ``@register("rise")`` on ``def cases(quick: bool, device: str) -> list[Case]``."""

    def deco(fn: Callable[..., list[Case]]) -> Callable[..., list[Case]]:
        for n in names:
            REGISTRY[n] = fn
        return fn

    return deco


def forward_floor(model: torch.nn.Module, x: torch.Tensor, rows: int, batch: int) -> Callable[[], None]:
    """The floor of a perturbation method: ``rows`` bare model inputs at ``batch`` per forward.

    The chunk is made once from ``x[:1]`` (Tensor[1, ...]), so the floor times the model alone.
    """
    chunk = x[:1].expand(min(batch, rows), *x.shape[1:]).contiguous()

    def run() -> None:
        with torch.inference_mode():
            for i in range(0, rows, batch):
                model(chunk[: min(batch, rows - i)])

    return run


def demo_model() -> torch.nn.Module:
    """The bundled, trained demo CNN (eval mode)."""
    from pyxai.models import demo_cnn

    return demo_cnn(pretrained=True).eval()


def random_resnet18() -> torch.nn.Module:
    """torchvision's ResNet-18 with random weights of seed 0 (eval mode); the global RNG is untouched."""
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torchvision.models.resnet18(weights=None).eval()


def load_all() -> Registry:
    """Import every benchmark module of this package so that they register their methods."""
    import pyxai.benchmark as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "core":
            importlib.import_module(f"pyxai.benchmark.{mod.name}")
    return REGISTRY


class _PeakRSS:
    """Samples this process's resident set size in a thread; reports the peak growth in bytes."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                import os

                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux
            return 0

    def __enter__(self) -> _PeakRSS:
        self.base = self.peak = self.rss()  # callers collect garbage first (first_run)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base


def _to_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().double().cpu()
    if isinstance(x, (tuple, list)):
        return torch.cat([_to_tensor(v).reshape(-1) for v in x])
    return torch.as_tensor(x).double()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _release_freed_memory() -> None:
    """Make freed CPU memory go back to the OS so that resident-set growth measures real peaks.

    glibc raises its mmap threshold dynamically after large frees, after which freed tensors stay
    in the heap and a later run shows no growth; a fixed threshold and ``malloc_trim`` prevent that.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: fixed, disables the dynamic threshold
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def first_run(fn: Callable[[], Any], device: str) -> tuple[Any, int]:
    """Run once (this is also the warm-up): returns (result, peak memory growth in bytes)."""
    gc.collect()
    _release_freed_memory()
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with _PeakRSS() as mem:
        result = fn()
        _sync(device)
    peak = torch.cuda.max_memory_allocated() - base if device.startswith("cuda") else mem.growth
    return result, peak


def time_runs(fn: Callable[[], Any], device: str, repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` runs, the device synchronised around each."""
    times = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def parity_error(a: Any, b: Any) -> float:
    """Relative max error ``max|a - b| / max|b|`` (inf when the shapes differ)."""
    ta, tb = _to_tensor(a), _to_tensor(b)
    if ta.shape != tb.shape:
        ta, tb = ta.reshape(-1), tb.reshape(-1)
        if ta.shape != tb.shape:
            return float("inf")
    return float((ta - tb).abs().max() / (tb.abs().max() + 1e-12))


def mean_error(a: Any, b: Any) -> float:
    """Relative mean error ``mean|a - b| / max|b|`` (inf when the shapes differ)."""
    ta, tb = _to_tensor(a), _to_tensor(b)
    if ta.numel() != tb.numel():
        return float("inf")
    ta, tb = ta.reshape(-1), tb.reshape(-1)
    return float((ta - tb).abs().mean() / (tb.abs().max() + 1e-12))


def run_case(case: Case, repeat: int = 3, only: list[str] | None = None) -> list[dict]:
    """Check parity, then time every implementation of ``case``. Returns one row per label."""
    rows: dict[str, dict] = {}
    results: dict[str, Any] = {}
    labels = [k for k in case.impls if only is None or k in only or k == "floor"]
    # results first (the warm-up run of each, which also measures peak memory), so parity is
    # known before anything is timed
    for label in labels:
        try:
            out, peak = first_run(case.impls[label], case.device)
            results[label] = case.prepare.get(label, lambda r: r)(out)
            rows[label] = {"case": case.name, "impl": label, "status": "ok", "peak_bytes": peak}
        except ImportError as exc:
            rows[label] = {"case": case.name, "impl": label, "status": f"not installed ({exc.name})"}
    for a, b, tol, *metric in case.parity:
        if a in results and b in results and results[a] is not None and results[b] is not None:
            measure = metric[0] if metric else parity_error
            err = measure(results[a], results[b])
            ok = err <= tol
            kind = "" if measure is parity_error else f" ({measure.__name__})"
            for lab in (a, b):
                rows[lab].setdefault("parity", []).append(f"{a}~{b}{kind}: {err:.1e}")
            if not ok:
                rows[a]["status"] = f"PARITY FAIL vs {b} ({err:.2e} > {tol:.0e})"
    for label in labels:
        row = rows[label]
        if row["status"] != "ok":
            continue
        times = time_runs(case.impls[label], case.device, repeat)
        row.update(median_s=statistics.median(times), times_s=times)
    notes = case.notes
    if case.summarize is not None:
        notes = "; ".join(filter(None, [notes, case.summarize(results)]))
    floor = rows.get("floor", {}).get("median_s")
    for row in rows.values():
        if floor and "median_s" in row:
            row["vs_floor"] = row["median_s"] / floor
        row["parity"] = "; ".join(row.get("parity", []))
        row["notes"] = notes
        row["device"] = case.device
    return list(rows.values())


def format_table(rows: list[dict]) -> str:
    """A plain-text table: case, impl, median ms, x floor, peak MB, parity/status."""
    head = f"{'case':<44} {'impl':<18} {'median ms':>10} {'x floor':>8} {'peak MB':>9}  parity / status"
    lines = [head, "-" * len(head)]
    last = None
    for r in rows:
        case = r["case"] if r["case"] != last else ""
        last = r["case"]
        ms = f"{r['median_s'] * 1e3:10.1f}" if "median_s" in r else f"{'-':>10}"
        ratio = f"{r['vs_floor']:8.2f}" if "vs_floor" in r else f"{'-':>8}"
        mb = f"{r['peak_bytes'] / 2**20:9.1f}" if "peak_bytes" in r else f"{'-':>9}"
        status = r["parity"] if r["status"] == "ok" else r["status"]
        lines.append(f"{case[:44]:<44} {r['impl'][:18]:<18} {ms} {ratio} {mb}  {status}")
    notes = sorted({r["case"] + ": " + r["notes"] for r in rows if r.get("notes")})
    return "\n".join(lines + [""] + notes)


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


def noise_line(rows: list[dict]) -> str:
    """How noisy the machine was: load averages, cores, and the spread ``(max - min) / median`` of
    the repeated floor timings of ``rows`` (the same bare model work, so its spread is noise)."""
    spreads = [(max(r["times_s"]) - min(r["times_s"])) / r["median_s"] for r in rows
               if r.get("impl") == "floor" and len(r.get("times_s", ())) > 1 and r["median_s"] > 0]
    load = load_average()
    text = "noise: load average " + (" / ".join(f"{v:.2f}" for v in load) if load else "n/a")
    text += f" (1/5/15 min, {os.cpu_count()} cores)"
    if spreads:
        text += (f"; floor spread (max-min)/median over repeats: median {statistics.median(spreads):.0%}, "
                 f"worst {max(spreads):.0%} ({len(spreads)} floors)")
    else:
        text += "; floor spread: n/a (needs --repeat >= 2)"
    return text


def run_methods(
    methods: list[str], quick: bool = False, repeat: int = 3, device: str = "cpu",
    only: list[str] | None = None, json_path: str | None = None, echo: Callable[[str], None] = print,
) -> list[dict]:
    """Run the named methods' cases; print a table per method; optionally write all rows as JSON."""
    registry = load_all()
    methods = [ALIASES.get(m, m) for m in methods]
    unknown = [m for m in methods if m not in registry]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown}; known: {sorted(registry)}")
    all_rows = []
    for m in methods:
        rows = []
        start = time.perf_counter()
        for case in registry[m](quick=quick, device=device):
            rows += run_case(case, repeat=repeat, only=only)
        took = time.perf_counter() - start
        echo(f"\n== {m} ({device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
             f"{took:.1f} s in all)")
        echo(format_table(rows))
        echo(noise_line(rows))
        all_rows += [dict(r, method=m, workload_s=took) for r in rows]
    if json_path:
        with open(json_path, "w") as f:
            json.dump(all_rows, f, indent=1)
    return all_rows
