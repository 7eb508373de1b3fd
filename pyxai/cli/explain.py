"""``pyxai explain``: explain images (default: the bundled demo model and images).

    pyxai explain                           # bundled demo model + images, every method, overlays + table
    pyxai explain cat.jpg --model torchvision:resnet50 --weights resnet50.pth --method gradcam
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyxai import registry
from pyxai.models.spec import last_feature_layer as _last_feature_layer
from pyxai.models.spec import load_model as _load_user_model

# ------------------------------------------------------------------------------------------------
# helpers


def _heat(attr: torch.Tensor) -> torch.Tensor:
    """Tensor[B, C, H, W] attribution -> Tensor[B, H, W] in [0, 1] for display and pointing."""
    a = attr.detach().float()
    if a.dim() == 5:  # video: average over time
        a = a.mean(2)
    a = a.abs().sum(1) if a.shape[1] > 1 else a[:, 0]
    lo = a.flatten(1).min(1).values[:, None, None]
    hi = a.flatten(1).max(1).values[:, None, None]
    return (a - lo) / (hi - lo).clamp_min(1e-12)


def _demo_metrics(model: torch.nn.Module, x: torch.Tensor, heat: torch.Tensor,
                  masks: torch.Tensor, target: torch.Tensor) -> dict:
    """Pointing-game hits (tolerance 4 px: TorchRay's 15 px at 224 scaled to 64x64) and RISE's
    deletion / insertion mean AUC (softmax probability of the target) of the displayed maps."""
    from pyxai import metrics

    def probs(z: torch.Tensor) -> torch.Tensor:
        return model(z).softmax(1)

    return {
        "pointing": int(metrics.pointing_game(heat, masks, tolerance=4, on_empty="miss").sum()),
        "deletion": float(metrics.deletion(probs, x, heat, target=target).mean()),
        "insertion": float(metrics.insertion(probs, x, heat, target=target).mean()),
    }


def _jet(v: torch.Tensor) -> torch.Tensor:
    """Jet colormap: Tensor[H, W] in [0, 1] -> Tensor[3, H, W]."""
    r = (1.5 - (4 * v - 3).abs()).clamp(0, 1)
    g = (1.5 - (4 * v - 2).abs()).clamp(0, 1)
    b = (1.5 - (4 * v - 1).abs()).clamp(0, 1)
    return torch.stack([r, g, b])


def _save_overlays(images: torch.Tensor, heat: torch.Tensor, path: Path, scale: int = 3) -> None:
    """One PNG: a row of images, a row of heat-map overlays."""
    from PIL import Image

    imgs = images.detach().float().cpu()
    if imgs.shape[1] != 3:
        imgs = imgs[:, :1].expand(-1, 3, -1, -1)
    lo = imgs.flatten(1).min(1).values[:, None, None, None]
    hi = imgs.flatten(1).max(1).values[:, None, None, None]
    imgs = (imgs - lo) / (hi - lo).clamp_min(1e-12)
    over = torch.stack([0.5 * i + 0.5 * _jet(h) for i, h in zip(imgs, heat.cpu())])
    grid = torch.cat([torch.cat(list(imgs), 2), torch.cat(list(over), 2)], 1)
    arr = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    img = Image.fromarray(arr)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)


def _load_images(paths: list[str], size: int) -> torch.Tensor:
    from PIL import Image

    out = []
    for p in paths:
        if not Path(p).is_file():
            raise ValueError(f"image file not found: {p}")
        try:
            img = Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)
        except OSError as exc:
            raise ValueError(f"cannot read image {p}: {exc}") from None
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        out.append(t.reshape(size, size, 3).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def cmd_explain(args: argparse.Namespace) -> int:
    wanted = args.method or registry.names(inputs="image")
    for name in wanted:
        if registry.get(name).inputs == "clip":  # unknown names fail here, before any model is loaded
            raise ValueError(f"method {name!r} explains clip models (Tensor[B, C, T, H, W]), "
                             "not images")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    masks = None
    if args.images:
        if args.model == "demo":
            size = 64
        else:
            size = args.size
        model = _load_user_model(args.model, args.weights)
        x = _load_images(args.images, size)
        if args.model != "demo":  # ImageNet normalisation for torchvision models
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            x = (x - mean) / std
    else:
        from pyxai.data import SHAPE_CLASSES, shapes
        from pyxai.models import demo_cnn

        model = _load_user_model(args.model, args.weights) if args.model != "demo" else demo_cnn()
        x, labels, masks = shapes(args.n, seed=args.seed)
        print(f"demo: {args.n} images of pyxai.data.shapes(seed={args.seed}); classes "
              f"{[SHAPE_CLASSES[int(i)] for i in labels]}")
    layer = _last_feature_layer(model, x)
    with torch.no_grad():
        target = model(x).argmax(1)
    rows = []
    for name in wanted:
        method = registry.get(name)
        explain = method.build(model, layer if method.needs_layer else None)
        t0 = time.perf_counter()
        attr = explain(x, target)
        dt = time.perf_counter() - t0
        if attr.dim() >= 4 and attr.shape[-2:] != x.shape[-2:]:
            attr = torch.nn.functional.interpolate(attr.float(), size=x.shape[-2:], mode="bilinear")
        heat = _heat(attr)
        png = out / f"{name}.png"
        _save_overlays(x, heat, png)
        row = {"method": name, "ms": dt * 1e3, "png": str(png)}
        if masks is not None:
            row.update(_demo_metrics(model, x, heat, masks, target))
        rows.append(row)
    metric_head = "pointing deletion insertion " if masks is not None else ""
    head = f"{'method':<22} {'time ms':>9} " + metric_head + " overlay"
    print(head)
    print("-" * len(head))
    for r in rows:
        point = (f"{r['pointing']:>3}/{x.shape[0]:<4} {r['deletion']:8.3f} {r['insertion']:9.3f} "
                 if masks is not None else "")
        print(f"{r['method']:<22} {r['ms']:9.1f} {point} {r['png']}")
    if masks is not None:
        print("pointing: hits within 4 px of the object (pyxai.metrics.pointing_game); deletion "
              "(lower is better) / insertion (higher) mean AUC of the softmax probability, RISE "
              "protocol (pyxai.metrics)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0




def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``explain`` sub-command to the ``pyxai`` parser."""
    e = sub.add_parser("explain", help="explain images (default: the bundled demo)")
    e.add_argument("images", nargs="*", help="image files (default: bundled demo images)")
    e.add_argument("--model", default="demo", help="'demo' or 'torchvision:<name>'")
    e.add_argument("--weights", help="state_dict file for --model")
    e.add_argument("--method", action="append", help="method name (repeatable; default: all)")
    e.add_argument("--out", default="pyxai_out", help="folder for overlay PNGs")
    e.add_argument("--size", type=int, default=224, help="input size for user images")
    e.add_argument("--n", type=int, default=8, help="number of demo images")
    e.add_argument("--seed", type=int, default=2024, help="seed of the demo images")
    e.add_argument("--json", help="also write the table as JSON")
    e.set_defaults(fn=cmd_explain)
