"""``pyxai similarity``: explain the similarity of image pairs (default: the bundled SSL encoders).

    pyxai similarity                                   # demo encoders on demo pairs, overlays + table
    pyxai similarity a.jpg b.jpg --model torchvision:resnet50 --method conditional_occlusion

With no images, each bundled encoder (SimCLR, Barlow Twins) explains two demo pairs of
:func:`pyxai.data.shapes` images: two augmentations of one image, and two different images. Each
method writes one overlay PNG (row 1: img1, img2 of each pair; row 2: their maps) and a table row:
time, and the mean pairwise deletion (lower is better) / insertion (higher) AUC of the maps with both
images modified at once (:mod:`pyxai.metrics.pairwise`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyxai.cli._inputs import load_image
from pyxai.cli.explain import _heat
from pyxai.models.spec import last_feature_layer as _last_feature_layer
from pyxai.models.spec import load_model as _load_user_model

_DEMOS = ("demo_simclr", "demo_barlow_twins")


def _encoder(spec: str, weights: str | None) -> torch.nn.Module:
    from pyxai import models

    if spec in _DEMOS:
        return getattr(models, spec)()
    return _load_user_model(spec, weights)


def demo_pairs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two demo pairs (Tensor[2, 3, 64, 64] each): two augmentations of one image, two different
    images."""
    from pyxai.data import shapes
    from pyxai.models.train_ssl import augment

    x, _, _ = shapes(3, seed=seed)
    g = torch.Generator().manual_seed(seed)
    v1, v2 = augment(x[:1], g), augment(x[:1], g)
    return torch.cat([v1, x[1:2]]), torch.cat([v2, x[2:3]])


def _save_overlays(images: torch.Tensor, heat: torch.Tensor, path: Path, label: str) -> None:
    """One PNG (pyxai.viz.grid): the images (img1, img2 of each pair) over their maps."""
    from pyxai import viz

    shown = images.detach().float()
    shown = (shown - shown.amin((1, 2, 3), keepdim=True)) / (
        shown.amax((1, 2, 3), keepdim=True) - shown.amin((1, 2, 3), keepdim=True)).clamp_min(1e-12)
    titles = [f"pair {i // 2} img{i % 2 + 1}" for i in range(images.shape[0])]
    path.write_bytes(viz.figure_png(viz.grid(shown, {label: heat[:, None]}, labels=titles)))


def cmd_similarity(args: argparse.Namespace) -> int:
    from pyxai.metrics import pairwise_deletion, pairwise_insertion
    from pyxai.similarity import methods

    wanted = args.method or methods.names()
    for name in wanted:
        if name not in methods.METHODS:
            raise ValueError(f"unknown similarity method {name!r}; choose from {methods.names()}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.images:
        if len(args.images) % 2:
            raise ValueError(f"give images in pairs (a.jpg b.jpg ...), got {len(args.images)} files")
        models = [args.model or "demo_simclr"]
        size = 64 if models[0] in _DEMOS else args.size
        x = torch.stack([load_image(Path(p), size, size) for p in args.images])
        if models[0] not in _DEMOS:  # ImageNet normalisation for torchvision models
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            x = (x - mean) / std
        x1, x2 = x[0::2], x[1::2]
    else:
        models = [args.model] if args.model else list(_DEMOS)
        x1, x2 = demo_pairs(args.seed)
        print(f"demo: pair 0 = two augmentations of one image, pair 1 = two different images "
              f"(pyxai.data.shapes, seed {args.seed})")
    rows = []
    for spec in models:
        enc = _encoder(spec, args.weights)
        layer = _last_feature_layer(enc, x1)
        with torch.no_grad():
            cos = torch.nn.functional.cosine_similarity(enc(x1), enc(x2))
        print(f"{spec}: cosine similarity of the pairs {[round(float(c), 3) for c in cos]}")
        for name in wanted:
            explainer = methods.build(name, enc, layer, x1.shape[-1])
            t0 = time.perf_counter()
            m1, m2 = explainer.attribute(x1, x2)
            dt = time.perf_counter() - t0
            dele = pairwise_deletion(enc, x1, x2, (m1, m2)).mean().item()
            ins = pairwise_insertion(enc, x1, x2, (m1, m2)).mean().item()
            png = out / f"{spec.replace(':', '_')}_{name}.png"
            images = torch.stack([x1, x2], 1).flatten(0, 1)  # img1, img2 of pair 0, then pair 1 ...
            heat = _heat(torch.stack([m1, m2], 1).flatten(0, 1))
            _save_overlays(images, heat, png, f"{spec} {name}")
            rows.append({"model": spec, "method": name, "ms": dt * 1e3, "deletion": dele,
                         "insertion": ins, "png": str(png)})
    head = f"{'model':<18} {'method':<28} {'time ms':>9} {'deletion':>9} {'insertion':>9}  overlay"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<18} {r['method']:<28} {r['ms']:9.1f} {r['deletion']:9.3f} {r['insertion']:9.3f}"
              f"  {r['png']}")
    print("deletion (lower is better) / insertion (higher): mean pairwise AUC of the cosine similarity "
          "with both images modified at once (pyxai.metrics.pairwise_deletion / pairwise_insertion)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``similarity`` sub-command to the ``pyxai`` parser."""
    s = sub.add_parser("similarity", help="explain image-pair similarity (default: bundled SSL encoders)")
    s.add_argument("images", nargs="*", help="image files in pairs: a1 b1 [a2 b2 ...] (default: demo pairs)")
    s.add_argument("--model", help="'demo_simclr', 'demo_barlow_twins' or 'torchvision:<name>' "
                                   "(default: both demo encoders)")
    s.add_argument("--weights", help="state_dict file for a torchvision --model")
    s.add_argument("--method", action="append", help="method name (repeatable; default: all)")
    s.add_argument("--out", default="pyxai_out", help="folder for overlay PNGs")
    s.add_argument("--size", type=int, default=224, help="input size for user images")
    s.add_argument("--seed", type=int, default=2024, help="seed of the demo pairs")
    s.add_argument("--json", help="also write the table as JSON")
    s.set_defaults(fn=cmd_similarity)
