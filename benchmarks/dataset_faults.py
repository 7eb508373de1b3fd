"""The dataset runner's acceptance run: the 2,000-image demo on local Ray with 2 workers.

    python benchmarks/dataset_faults.py [--n 2000] [--method gradcam] [--workers 2]

1. an uninterrupted ``pyxai explain-dataset`` run (its samples/s);
2. the same run into a second store, in a driver subprocess: one worker process is killed with
   SIGKILL after a few shards (Ray restarts it and retries its shards), then the driver itself is
   killed with SIGKILL after more shards;
3. the same command again: it resumes (skips the finished shards) and completes;
4. checks: the resumed store equals the uninterrupted one and a plain single-process loop over the
   same images, bit for bit, every sample exactly once.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

ROOT = Path(__file__).resolve().parents[1]


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from pyxai.cli import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", code, "explain-dataset", *args], env=env)


def _done(out: str) -> int:
    if not os.path.exists(os.path.join(out, "shard_done", "zarr.json")):
        return 0
    return int(zarr.open_group(out, mode="r")["shard_done"][:].sum())


def _worker_pids(exclude: set[int]) -> list[int]:
    """PIDs of this machine's Ray ShardWorker actor processes (started by this script's runs)."""
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in ps.splitlines()
            if "ray::ShardWorker" in line and int(line.split()[0]) not in exclude]


def _wait(out: str, shards: int, proc: subprocess.Popen, timeout: float = 600) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        d = _done(out)
        if d >= shards:
            return d
        time.sleep(0.05)
    return _done(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--method", default="gradcam")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--metrics", default="pointing_game")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pyxai-dataset-faults-"))
    common = ["--n", str(a.n), "--method", a.method, "--workers", str(a.workers), "--layer", "layer3",
              "--metrics", a.metrics]
    n_shards = -(-a.n // 64)

    ref, out = str(tmp / "uninterrupted.zarr"), str(tmp / "killed.zarr")
    t0 = time.perf_counter()
    assert _cli([*common, "--out", ref]).wait() == 0
    print(f"1. uninterrupted: {time.perf_counter() - t0:.1f} s wall (CLI process, Ray start-up included)")

    proc = _cli([*common, "--out", out])
    d = _wait(out, 3, proc)
    victims = _worker_pids(set())
    assert victims, "no ShardWorker process found"
    os.kill(victims[0], signal.SIGKILL)
    print(f"2. killed worker pid {victims[0]} after {d}/{n_shards} shards")
    d = _wait(out, max(d + 6, n_shards // 2), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    d = _done(out)
    print(f"   killed the driver after {d}/{n_shards} shards")
    assert d < n_shards, "the driver finished before it was killed: use a larger --n"
    assert _cli([*common, "--out", out]).wait() == 0
    g, r = zarr.open_group(out, mode="r"), zarr.open_group(ref, mode="r")
    last = g.attrs["history"][-1]
    print(f"3. resumed: skipped {last['skipped_shards']}, computed {last['computed_shards']} shards")

    for name in ("maps", "target", "score", "id", "pointing_game"):
        if name in r:
            np.testing.assert_array_equal(g[name][:], r[name][:], err_msg=name)
    assert g["shard_done"][:].all() and len(set(g["id"][:].tolist())) == a.n
    from pyxai import registry
    from pyxai.data import shapes
    from pyxai.models import demo_cnn

    torch.set_num_threads(1)
    model = demo_cnn()
    x = shapes(a.n, seed=0)[0]
    explain = registry.build(a.method, model, model.get_submodule("layer3"))
    maps = []
    for i in range(0, a.n, 16):
        with torch.no_grad():
            t = model(x[i:i + 16]).argmax(1)
        maps.append(explain(x[i:i + 16], t))
    assert torch.equal(torch.cat(maps), torch.from_numpy(g["maps"][:]))
    print(f"4. the resumed store equals the uninterrupted one and the plain loop, bit for bit "
          f"({a.n} samples, each once). Uninterrupted run: {r.attrs['history'][-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
