"""``pyxai explain-dataset``: explain a whole data set on Ray into a Zarr store.

    pyxai explain-dataset                               # the bundled demo set (2,000 images + masks)
    pyxai explain-dataset val/ --model torchvision:resnet50 --weights r50.pth --method gradcam \\
        --image-size 224 --out maps.zarr --workers 4 --metrics deletion,insertion
"""

from __future__ import annotations

import argparse

import numpy as np


def cmd_explain_dataset(args: argparse.Namespace) -> int:
    import pyxai.dataset

    metrics = [m for m in (args.metrics or "").split(",") if m]
    if args.source:
        source = args.source
    else:
        source = pyxai.dataset.ShapesDataset(args.n, seed=args.seed)
        print(f"demo: {args.n} images of pyxai.data.shapes(seed={args.seed}) with their object masks")
    tolerance = args.pointing_tolerance
    if tolerance is None:
        tolerance = 15.0 if args.source else 4.0
    target = args.target
    if target is not None and target != "label":
        try:
            target = int(target)
        except ValueError:
            raise ValueError(f"--target must be an int or 'label', got {target!r}") from None
    try:
        out = pyxai.dataset.attribute(
            source, args.model, args.method, args.out, target=target, metrics=metrics,
            address=args.address, num_workers=args.workers, gpus_per_worker=args.gpus_per_worker,
            batch_size=args.batch_size, overwrite=args.overwrite, weights=args.weights, layer=args.layer,
            shard_size=args.shard_size, cpus_per_worker=args.cpus_per_worker, dtype=args.dtype,
            image_size=args.image_size, pointing_tolerance=tolerance)
    except (ImportError, RuntimeError) as exc:
        raise ValueError(str(exc)) from None
    import zarr

    g = zarr.open_group(out, mode="r")
    run = g.attrs["history"][-1]
    print(f"{out}: {g['id'].shape[0]} samples; this run computed {run['computed_shards']} shards "
          f"({run['samples']} samples) in {run['seconds']:.1f} s = {run['samples_per_s'] or 0:.1f} "
          f"samples/s, skipped {run['skipped_shards']} finished shards")
    ok = g["ok"][:]
    if not ok.all():
        print(f"{int((~ok).sum())} unreadable samples (see the store's 'error' array)")
    for name in metrics:
        vals = g[name][:][ok]
        print(f"{name}: mean {float(np.mean(vals)):.4f} over {int(ok.sum())} samples")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``explain-dataset`` sub-command to the ``pyxai`` parser."""
    e = sub.add_parser("explain-dataset", help="explain a data set on Ray into a Zarr store "
                                               "(default: the bundled demo set)")
    e.add_argument("source", nargs="?", help="folder or glob of images (default: the bundled demo set)")
    e.add_argument("--model", default="demo", help="'demo', 'torchvision:<name>' or 'timm:<name>'")
    e.add_argument("--weights", help="state_dict file for --model")
    e.add_argument("--method", default="gradcam", help="a method of the registry (default: gradcam)")
    e.add_argument("--out", default="maps.zarr", help="the Zarr store (default: maps.zarr)")
    e.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    e.add_argument("--workers", type=int, help="number of Ray actors (default: one per CPU)")
    e.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per actor (default: 0)")
    e.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs / threads per actor (default: 1)")
    e.add_argument("--metrics", help="comma-separated: deletion,insertion,pointing_game")
    e.add_argument("--target", help="class index, or 'label' (default: the predicted class)")
    e.add_argument("--layer", help="target layer (dotted module name) for CAM methods")
    e.add_argument("--batch-size", type=int, help="images per explainer call (default: 16)")
    e.add_argument("--shard-size", type=int, default=64, help="samples per shard (default: 64)")
    e.add_argument("--image-size", type=int, help="resize image files to this square size")
    e.add_argument("--dtype", default="float32", choices=("float32", "float16"), help="map dtype")
    e.add_argument("--pointing-tolerance", type=float,
                   help="pixels, for pointing_game (default: 15 as TorchRay; on the 64x64 demo set 4, "
                        "TorchRay's 15 px at 224 scaled to 64)")
    e.add_argument("--overwrite", action="store_true", help="replace a store of other parameters")
    e.add_argument("--n", type=int, default=2000, help="number of demo images (default: 2000)")
    e.add_argument("--seed", type=int, default=0, help="seed of the demo images (default: 0)")
    e.set_defaults(fn=cmd_explain_dataset)
