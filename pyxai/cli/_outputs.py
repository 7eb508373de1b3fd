"""What ``pyxai explain`` writes: one labelled PNG per image, the grid PNG(s), the HTML report and
the printed tables."""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import datetime
from pathlib import Path

import torch

from pyxai import registry
from pyxai.cli._preprocess import InputSpec

#: images per grid figure (a wider grid would be unreadable)
GRID_COLUMNS = 8


def write_pngs(args: argparse.Namespace, out: Path, names: list[str], shown: torch.Tensor,
               maps: dict[str, torch.Tensor], titles: list[str], image_rows: list[dict]
               ) -> list[tuple[str, bytes]]:
    """One PNG per image (its name goes into ``image_rows``) and the grid PNG(s), returned as
    (caption, PNG bytes) no wider than the report page."""
    from pyxai import viz
    from pyxai.viz import report

    (out / "images").mkdir(parents=True, exist_ok=True)
    signed = {m: registry.get(m).signed for m in maps}
    stems: dict[str, int] = {}
    for i, n in enumerate(names):
        stem = Path(n).stem if args.images else f"image{i:03d}"
        k = stems[stem] = stems.get(stem, 0) + 1
        png = out / "images" / (f"{stem}.png" if k == 1 else f"{stem}-{k}.png")
        fig = viz.grid(shown[i:i + 1], {m: v[i:i + 1] for m, v in maps.items()}, labels=[titles[i]],
                       signed=signed)
        png.write_bytes(viz.figure_png(fig, dpi=120))
        image_rows[i]["png"] = str(png.relative_to(out))
    grids = []
    for j, start in enumerate(range(0, len(names), GRID_COLUMNS)):
        sl = slice(start, start + GRID_COLUMNS)
        fig = viz.grid(shown[sl], {m: v[sl] for m, v in maps.items()}, labels=titles[sl], signed=signed)
        dpi = min(100, int(report.PAGE_WIDTH / fig.get_size_inches()[0]))
        png = viz.figure_png(fig, dpi=dpi)
        name = "grid.png" if len(names) <= GRID_COLUMNS else f"grid-{j + 1}.png"
        (out / name).write_bytes(png)
        grids.append((f"images {start + 1}-{min(len(names), start + GRID_COLUMNS)}: rows are methods; "
                      "title: true class (demo), the explained target class and its softmax probability; "
                      "signed maps (LRP, gradients x input, occlusion): red for, blue against the "
                      "target; others: jet from low to high", png))
    return grids


def write_report(args: argparse.Namespace, path: Path, grids: list[tuple[str, bytes]], rows: list[dict],
                 image_rows: list[dict], spec: InputSpec, layer_desc: str) -> None:
    """The self-contained HTML report: tables, grids, settings."""
    from pyxai.viz import report

    default_weights = "(bundled)" if args.model == "demo" else "(random init)"
    settings = {"command": "pyxai explain " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
                "model": args.model, "weights": args.weights or default_weights,
                "input": f"short side resized to {spec.resize}, centre crop {spec.size}x{spec.size}",
                "normalisation": f"mean {spec.mean}, std {spec.std}" if spec.mean else "none ([0, 1])",
                "target": args.target or "predicted class", "CAM layer": layer_desc,
                "batch size": args.batch_size, "device": args.device, "torch": torch.__version__,
                "date": datetime.now().isoformat(timespec="seconds")}
    settings.update({f"method {r['method']}": f"{registry.get(r['method']).description} "
                     f"[{registry.defaults(registry.get(r['method']))}]" for r in rows})
    cols = ["method", "time ms"] + [c for c in ("pointing", "deletion", "insertion") if c in rows[0]]
    table = [{"method": r["method"], "time ms": f"{r['ms']:.1f}",
              **{c: (f"{r[c]}/{len(image_rows)}" if c == "pointing" else f"{r[c]:.3f}")
                 for c in cols[2:]}} for r in rows]
    page = report.render("pyxai explain", settings, table, cols, image_rows,
                         ["image", "true", "predicted", "p(pred)", "target", "p(target)", "png"],
                         grids, notes=_NOTES if len(cols) > 2 else "")
    path.write_text(page, encoding="utf-8")


_NOTES = ("pointing: hits within 15 px at 224 (scaled) of the object (pyxai.metrics.pointing_game); "
          "deletion (lower is better) / insertion (higher) mean AUC of the softmax probability of the "
          "target, RISE protocol (pyxai.metrics)")


def print_tables(rows: list[dict], image_rows: list[dict], n: int, pointing: bool, out: Path) -> None:
    metric = "deletion" in rows[0]
    head = f"{'method':<22} {'time ms':>9}" + (" pointing" if pointing else "") + \
        (" deletion insertion" if metric else "")
    print(head)
    print("-" * len(head))
    for r in rows:
        line = f"{r['method']:<22} {r['ms']:9.1f}"
        if pointing:
            line += f" {r['pointing']:>4}/{n:<4}"
        if metric:
            line += f" {r['deletion']:8.3f} {r['insertion']:9.3f}"
        print(line)
    if metric:
        print(_NOTES)
    print()
    print(f"{'image':<32} {'true':<12} {'predicted':<16} {'p':>6}  {'target':<16} {'p':>6}  png")
    for r in image_rows:
        print(f"{r['image'][-32:]:<32} {r['true'][:12]:<12} {r['predicted'][:16]:<16} {r['p(pred)']:>6}  "
              f"{r['target'][:16]:<16} {r['p(target)']:>6}  {out / r['png']}")
