"""``pyxai video``: explain every frame of a video and write the overlay video.

    pyxai video                                            # bundled demo clips + demo video model
    pyxai video in.mp4 --model torchvision:r3d_18 --weights w.pth --method gradcam -o out.mp4
    pyxai video frames_dir/ --model torchvision:resnet18 --method gradcam --batch-frames 16
    pyxai video in.mp4 --model demo --method rise --masks-per-frame 64     # streaming RISE
    pyxai video in.mp4 --model demo --method scorecam --masks-per-frame 16 # streaming Score-CAM

Clip models (torchvision's video models, the bundled ``demo-video``) get sliding windows of
``--clip-len`` frames; image models get batches of ``--batch-frames`` frames.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from pyxai import registry
from pyxai.video.io import X264_PRESETS

DEMO_OUT = Path("pyxai_out") / "demo_video.mp4"

# input normalisation of torchvision's Kinetics video models and ImageNet image models
_KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _is_video_model(spec: str) -> bool:
    if spec == "demo-video":
        return True
    if not spec.startswith("torchvision:"):
        return False
    try:
        import torchvision
    except ImportError:
        return False
    return spec.split(":", 1)[1] in torchvision.models.list_models(module=torchvision.models.video)


def _transform(spec: str, size: int, video: bool) -> Any:
    """Resize to ``size`` and normalise for torchvision models; None for the bundled ones."""
    if not spec.startswith("torchvision:"):
        return None
    mean, std = _KINETICS if video else _IMAGENET
    mean_t = torch.tensor(mean)[:, None, None]
    std_t = torch.tensor(std)[:, None, None]

    def transform(frames: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(frames, size=(size, size), mode="bilinear",
                                            align_corners=False, antialias=True)
        return (x - mean_t.to(x.device)) / std_t.to(x.device)

    return transform


def _demo_source(n: int, seed: int) -> tuple[torch.Tensor, list[int]]:
    """``n`` demo clips of 16 frames one after the other: Tensor[n * 16, 3, 64, 64], labels."""
    from pyxai.data import moving_shapes

    clips, labels, _ = moving_shapes(n, seed=seed)
    return clips.permute(0, 2, 1, 3, 4).reshape(-1, 3, 64, 64), labels.tolist()


def cmd_video(args: argparse.Namespace) -> int:
    from pyxai.video import VideoExplainer
    from pyxai.video.io import _is_url

    registry.get(args.method)  # an unknown name fails before any model is loaded
    if args.input is not None and not (Path(args.input).exists() or _is_url(args.input)):
        raise ValueError(f"video source not found: {args.input}")
    if args.input is None:
        out = Path(args.out) if args.out else DEMO_OUT
    else:
        out = Path(args.out) if args.out else Path("pyxai_out") / f"{Path(args.input).stem}_video.mp4"
    if out.parent == Path("pyxai_out"):
        out.parent.mkdir(exist_ok=True)
    if not out.parent.is_dir():
        raise ValueError(f"output {out}: the folder {out.parent} does not exist")
    spec = args.model
    video = _is_video_model(spec)
    if spec == "demo-video":
        from pyxai.data import MOTION_CLASSES
        from pyxai.models import demo_video_cnn

        model, labels = demo_video_cnn(), list(MOTION_CLASSES)
    else:
        from pyxai.models.spec import load_model

        model = load_model(spec, args.weights, kind="video")
        labels = None
        if spec == "demo":
            from pyxai.data import SHAPE_CLASSES

            labels = list(SHAPE_CLASSES)
    if args.input is None:
        from pyxai.data import MOTION_CLASSES

        source, truth = _demo_source(args.n, args.seed)
        print(f"demo: {args.n} clips of pyxai.data.moving_shapes(seed={args.seed}), 16 frames each; "
              f"directions {[MOTION_CLASSES[i] for i in truth]}")
        scale = args.scale or 4
    else:
        source = args.input
        scale = args.scale or 1
    clip_len = args.clip_len or (16 if video else None)
    kwargs: dict[str, Any] = {}
    if args.n_masks is not None:
        kwargs["n_masks"] = args.n_masks
    vx = VideoExplainer(model, args.method, clip_len=clip_len, stride=args.stride,
                        batch_frames=args.batch_frames, labels=labels,
                        transform=_transform(spec, args.size or (112 if video else 224), video),
                        masks_per_frame=args.masks_per_frame, **kwargs)
    try:
        stats = vx.explain_file(source, out=out, maps=args.maps, fps=args.fps,
                                show_progress=not args.no_progress, scale=scale,
                                preset=args.preset)
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    except KeyboardInterrupt:
        print(f"pyxai video: interrupted; {out} holds the frames explained so far", file=sys.stderr)
        return 130
    model_fps = stats.get("model_fps")
    kind = f"clip model, windows of {clip_len} stride {args.stride}" if clip_len else "frame model"
    print(f"{stats['frames']} frames, {stats['fps']:.1f} frames/s explained ({args.method}, {kind})"
          + (f"; bare model {model_fps:.1f} frames/s" if model_fps else "")
          + f"; latency p50 {stats['latency_p50_ms']:.0f} ms, p95 {stats['latency_p95_ms']:.0f} ms")
    print(f"wrote {out} ({stats['codec']})" + (f" and {args.maps}" if args.maps else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``video`` sub-command to the ``pyxai`` parser."""
    v = sub.add_parser("video", help="explain every frame of a video (default: the bundled demo)")
    v.add_argument("input", nargs="?", help="video file, stream URL or frame directory "
                   "(default: bundled demo clips)")
    v.add_argument("--model", default="demo-video",
                   help="'demo-video' (bundled clip model), 'demo' (bundled image model) or "
                   "'torchvision:<name>' (video models get clip windows)")
    v.add_argument("--weights", help="state_dict file for --model")
    v.add_argument("--method", default="gradcam", help="registry method name (default: gradcam)")
    v.add_argument("-o", "--out", help="output video (default: pyxai_out/demo_video.mp4 for the "
                   "demo, pyxai_out/<input>_video.mp4 otherwise)")
    v.add_argument("--maps", help="also write the raw maps to this .npz file or .zarr store")
    v.add_argument("--clip-len", type=int, help="frames per window (clip models; default 16)")
    v.add_argument("--stride", type=int, default=4, help="frames between windows (default 4)")
    v.add_argument("--batch-frames", type=int, help="frames (or windows) per explainer call")
    v.add_argument("--masks-per-frame", type=int, help="streaming mode of rise, scorecam or sidu: masks "
                   "per frame (RISE: of its pool; Score-CAM / SIDU: channel masks, round-robin)")
    v.add_argument("--n-masks", type=int, help="masks of RISE (the pool in streaming mode)")
    v.add_argument("--size", type=int, help="model input size for torchvision models "
                   "(default 112 video, 224 image)")
    v.add_argument("--fps", type=float, help="frame rate of the output (default: the input's)")
    v.add_argument("--preset", default="ultrafast", choices=X264_PRESETS,
                   help="libx264 speed preset of the output (default ultrafast: the most CPU "
                   "left to the model; slower presets make smaller files)")
    v.add_argument("--scale", type=int, help="upscale the overlay (default 4 for the demo, else 1)")
    v.add_argument("--n", type=int, default=8, help="number of demo clips")
    v.add_argument("--seed", type=int, default=2024, help="seed of the demo clips")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(fn=cmd_video)
