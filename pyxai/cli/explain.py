"""``pyxai explain``: explain images (default: the bundled demo model and images).

    pyxai explain                                     # bundled demo model + images, every method
    pyxai explain photos/ --model torchvision:resnet50 --weights resnet50.pth --method gradcam --report
    pyxai explain cat.jpg --model torchvision:vit_b_16 --weights vit.pth --target "tabby"

Writes one labelled PNG per image (input row + one overlay row per method), the method x image grid,
optionally a self-contained HTML report, and prints the table (time per method, pointing game,
deletion, insertion) and the predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from pyxai import registry
from pyxai.cli._device import check_device
from pyxai.cli._inputs import batches, image_paths
from pyxai.cli._layers import target_layer
from pyxai.cli._outputs import print_tables, write_pngs, write_report
from pyxai.cli._preprocess import InputSpec, input_spec, parse_target
from pyxai.cli._progress import bar
from pyxai.models.spec import load_model as _load_user_model

# ------------------------------------------------------------------------------------------------
# maps and metrics


def _heat(attr: torch.Tensor) -> torch.Tensor:
    """Tensor[B, C, H, W] attribution -> Tensor[B, H, W] in [0, 1] (magnitude) for the metrics."""
    a = attr.detach().float()
    if a.dim() == 5:  # video: average over time
        a = a.mean(2)
    a = a.abs().sum(1) if a.shape[1] > 1 else a[:, 0]
    lo = a.flatten(1).min(1).values[:, None, None]
    hi = a.flatten(1).max(1).values[:, None, None]
    return (a - lo) / (hi - lo).clamp_min(1e-12)


def _metrics(model: torch.nn.Module, x: torch.Tensor, heat: torch.Tensor, masks: torch.Tensor | None,
             target: torch.Tensor, batch_size: int) -> dict[str, Any]:
    """Pointing-game hits (TorchRay's 15 px at 224 scaled to the input) when masks are known, and
    RISE's deletion / insertion mean AUC (softmax probability of the target) of the maps."""
    from pyxai import metrics

    def probs(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([model(c).softmax(1) for c in z.split(batch_size)])

    out: dict[str, Any] = {}
    if masks is not None:
        tol = max(1, round(15 * x.shape[-1] / 224))
        out["pointing"] = int(metrics.pointing_game(heat, masks, tolerance=tol, on_empty="miss").sum())
    out["deletion"] = float(metrics.deletion(probs, x, heat, target=target).mean())
    out["insertion"] = float(metrics.insertion(probs, x, heat, target=target).mean())
    return out


# ------------------------------------------------------------------------------------------------
# the run


def _out_dir(out: str | None, overwrite: bool) -> Path:
    """``--out``: a fresh ``pyxai_out/run-<time>`` by default; an existing non-empty folder only with
    ``--overwrite``."""
    if out is None:
        base = Path("pyxai_out") / datetime.now().strftime("run-%Y%m%d-%H%M%S")
        path, k = base, 1
        while path.exists():
            k += 1
            path = base.with_name(f"{base.name}-{k}")
        return path
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(f"--out {out} exists and is not empty: pass --overwrite or another --out")
    return path


def _inputs(args: argparse.Namespace, spec: InputSpec
            ) -> tuple[list[str], torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(names, images Tensor[N, 3, S, S] in [0, 1], true labels or None, masks or None)."""
    if args.images:
        paths = image_paths(args.images)
        imgs = torch.cat([x for _, x in batches(paths, spec.size, spec.resize, args.batch_size)])
        return [str(p) for p in paths], imgs, None, None
    from pyxai.data import shapes

    if args.model != "demo":
        raise ValueError("give image files or folders for a model other than the demo")
    imgs, labels, masks = shapes(args.n, seed=args.seed, size=spec.size)
    return [f"shapes[{i}]" for i in range(args.n)], imgs, labels, masks


def _class(i: int, classes: tuple[str, ...] | None) -> str:
    return classes[i] if classes and 0 <= i < len(classes) else str(i)


def _check_args(args: argparse.Namespace) -> list[str]:
    try:
        import matplotlib  # noqa: F401 - the figures need it; say so before any work
    except ImportError:
        raise ValueError("pyxai explain draws its figures with matplotlib: pip install matplotlib "
                         "(or pip install 'pyxai-attribution[viz]')") from None
    wanted = args.method or registry.names(inputs="image")
    if not args.method:  # every method: those whose optional package is missing are left out
        skipped = [registry.get(n) for n in wanted if registry.get(n).missing]
        if skipped:
            print("pyxai explain: leaving out " + ", ".join(
                f"{m.name} (needs {', '.join(m.missing)}: pip install 'pyxai-attribution[{m.extra}]')"
                for m in skipped))
            wanted = [n for n in wanted if n not in {m.name for m in skipped}]
    for name in wanted:
        if registry.get(name).inputs == "clip":  # unknown names fail here, before any model is loaded
            raise ValueError(f"method {name!r} explains clip models (Tensor[B, C, T, H, W]), not "
                             "images: use `pyxai video` or the API")
    for flag in ("batch_size", "n"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    return list(dict.fromkeys(wanted))


def _explain_all(wanted: list[str], model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                 layer: torch.nn.Module | None, reshape: Any, bs: int, quiet: bool
                 ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Every method on ``x`` (Tensor[N, C, S, S]) in batches of ``bs``, with a progress bar.

    Returns (method -> maps Tensor[N, 1|C, S, S] on the CPU, method -> seconds in its calls).
    """
    maps: dict[str, torch.Tensor] = {}
    times: dict[str, float] = {}
    progress = bar(len(wanted) * len(range(0, x.shape[0], bs)), "explain", quiet, unit="batch")
    for name in wanted:
        method = registry.get(name)
        extra = {"reshape_transform": reshape} if (method.needs_layer and reshape is not None) else {}
        explain = method.build(model, layer if method.needs_layer else None, **extra)
        progress.set_description(name)
        parts, dt = [], 0.0
        for xb, tb in zip(x.split(bs), target.split(bs)):
            t0 = time.perf_counter()
            attr = explain(xb, tb)
            dt += time.perf_counter() - t0
            if attr.dim() == 5:  # (B, A, 1, H, W) of the extremal methods: the first area
                attr = attr[:, 0]
            if attr.shape[-2:] != x.shape[-2:]:
                attr = torch.nn.functional.interpolate(attr.float(), size=x.shape[-2:], mode="bilinear")
            parts.append(attr.detach().float().cpu())
            progress.update(1)
        maps[name], times[name] = torch.cat(parts), dt
    progress.close()
    return maps, times


def cmd_explain(args: argparse.Namespace) -> int:
    wanted = _check_args(args)
    device = check_device(args.device)
    out = _out_dir(args.out, args.overwrite)
    model = _load_user_model(args.model, args.weights).to(device)
    spec = input_spec(args.model, model, args.size)
    fixed_target = parse_target(args.target, spec.classes)
    names, shown, labels, masks = _inputs(args, spec)
    x = spec.normalise(shown).to(device)
    bs = args.batch_size
    try:
        with torch.no_grad():
            probs = torch.cat([model(c).softmax(1) for c in x.split(bs)])
    except RuntimeError as exc:  # e.g. an input too small for the model's pooling
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{args.model} fails on {spec.size}x{spec.size} inputs ({first}); "
                         "try another --size") from None
    if fixed_target is not None and not 0 <= fixed_target < probs.shape[1]:
        raise ValueError(f"--target {fixed_target} is out of range: the model has {probs.shape[1]} classes")
    pred = probs.argmax(1)
    target = pred if fixed_target is None else torch.full_like(pred, fixed_target)
    layer = reshape = None
    layer_desc = "-"
    if any(registry.get(n).needs_layer for n in wanted):
        layer, reshape, layer_desc = target_layer(model, x)
    if not args.quiet:
        random = " (random weights: no --weights)" if args.model != "demo" and not args.weights else ""
        print(f"{len(names)} image(s), {args.model}{random} at {spec.size}x{spec.size}, methods: "
              f"{', '.join(wanted)}; CAM layer: {layer_desc}; writing to {out}/", file=sys.stderr)

    maps, times = _explain_all(wanted, model, x, target, layer, reshape, bs, args.quiet)
    rows: list[dict[str, Any]] = []
    for name in wanted:
        row: dict[str, Any] = {"method": name, "ms": times[name] * 1e3}
        if masks is not None or args.metrics:
            row.update(_metrics(model, x, _heat(maps[name]).to(device), masks, target, bs))
        rows.append(row)

    score = probs.gather(1, target[:, None])[:, 0]
    image_rows = [{"image": n,
                   "true": _class(int(labels[i]), spec.classes) if labels is not None else "-",
                   "predicted": _class(int(pred[i]), spec.classes),
                   "p(pred)": f"{float(probs[i, pred[i]]):.3f}",
                   "target": _class(int(target[i]), spec.classes), "p(target)": f"{float(score[i]):.3f}"}
                  for i, n in enumerate(names)]
    titles = [(f"true {r['true']}\n" if r["true"] != "-" else "")
              + f"target {r['target']} p={r['p(target)']}" for r in image_rows]
    grids = write_pngs(args, out, names, shown, maps, titles, image_rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"methods": rows, "images": image_rows}, indent=1))
    if args.report:
        write_report(args, out / "report.html", grids, rows, image_rows, spec, layer_desc)
    print_tables(rows, image_rows, len(names), masks is not None, out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``explain`` sub-command to the ``pyxai`` parser."""
    e = sub.add_parser(
        "explain", help="explain images (default: the bundled demo)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Explain images with every method (or --method ...): one labelled PNG per image, "
                    "the method x image grid, the table of time / pointing game / deletion / insertion "
                    "and the predictions; --report writes a self-contained HTML page.",
        epilog="methods (registry name, what it is [defaults]):\n" + registry.help_text())
    e.add_argument("images", nargs="*",
                   help="image files, folders (searched recursively) or globs ('photos/**/*.jpg'), "
                        "sorted; default: the bundled demo images. Animated GIFs and videos: use "
                        "`pyxai video`")
    e.add_argument("--model", default="demo",
                   help="'demo' (default), 'torchvision:<name>' or 'timm:<name>' (random weights "
                        "unless --weights)")
    e.add_argument("--weights", help="a state_dict file (torch.save(model.state_dict())) for --model")
    e.add_argument("--method", action="append", help="method name (repeatable; default: all, see below)")
    e.add_argument("--target", help="class to explain: an index, or a class name (demo shapes, "
                                    "ImageNet names of torchvision models); default: the predicted class")
    e.add_argument("--out", help="output folder; default: a fresh pyxai_out/run-<date-time>. An existing "
                                 "non-empty folder needs --overwrite")
    e.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --out")
    e.add_argument("--report", action="store_true", help="also write report.html (one file, images "
                                                         "embedded)")
    e.add_argument("--size", type=int,
                   help="input side: the short side is resized (to size x 256/224, as torchvision's "
                        "ImageNet weights' transforms do; demo: to size) and the centre size x size "
                        "is cropped, keeping the aspect ratio. Default: the model's (demo 64, "
                        "torchvision: its weights' crop size, ViT: its fixed image size)")
    e.add_argument("--batch-size", type=int, default=8, help="images per explainer call (default 8)")
    e.add_argument("--metrics", action="store_true",
                   help="deletion / insertion for user images too (always on for the demo)")
    e.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    e.add_argument("--n", type=int, default=8, help="number of demo images (default 8)")
    e.add_argument("--seed", type=int, default=2024, help="seed of the demo images (default 2024)")
    e.add_argument("--json", help="also write the tables as JSON to this file")
    e.add_argument("--quiet", action="store_true", help="no progress bar or run summary")
    e.set_defaults(fn=cmd_explain)
