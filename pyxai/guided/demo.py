"""The Clever-Hans fine-tuning demo: does an explanation loss on a few annotated images remove the cue?

    python -m pyxai.guided.demo            # prints the README table (CPU, a few minutes)

Starting from ``demo_cnn(variant="clever_hans")``, each run fine-tunes a copy on ``--images``
images of the training distribution (circles tagged at 80 %, seed 50, never used before) for
``--epochs`` epochs: cross-entropy on all of them plus the explanation loss on the first
``--annotated`` ones, whose masks are known (RRR and occlusion: the tag is the irrelevant region;
CAM and LRP: the object is the relevant one). ``none`` is cross-entropy alone (the control).
Reported: accuracy on clean (no tag) and cue-flipped (tag on every non-circle, none on circles)
held-out images and their gap (the cue's effect on the predictions); SpRAy on the circle class's LRP
maps (300 circles, half tagged): purity and recall of the cue cluster; the share of positive LRP
relevance that falls on the tag (what the explanation shows of the cue).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from pyxai.data import shapes_cued
from pyxai.guided.fit import fit
from pyxai.models import demo_cnn
from pyxai.models.train import evaluate
from pyxai.models.train_clever_hans import cued_test_sets
from pyxai.spray.demo import analyse, demo_images

WEIGHTS = {"none": 0.0, "rrr": 10.0, "cam": 1.0, "lrp": 0.3, "occlusion": 3.0}
IRRELEVANT = ("rrr", "occlusion")  # the losses that take the cue's mask (the others the object's)


def measure(model: torch.nn.Module, tests: dict, circles: tuple) -> dict[str, float]:
    """Accuracies on the test sets, SpRAy cue-cluster purity/recall and relevance share on the tag."""
    images, cues, cued = circles
    found = analyse(model, images, cued, method="lrp", n_clusters=2, display=())
    rel = found["maps"].sum(1, keepdim=True).clamp(min=0)
    on_tag = (rel * cues).flatten(1).sum(1) / rel.flatten(1).sum(1).clamp(min=1e-12)
    out = {name: evaluate(model, *xy) for name, xy in tests.items()}
    out.update(purity=found["purity"], recall=found["recall"], tag_share=float(on_tag[cued].mean()))
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--losses", nargs="+", default=["none", "rrr", "cam", "lrp", "occlusion"])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--annotated", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tests = cued_test_sets(args.test_images)
    tests = {k: v for k, v in tests.items() if k != "train-like"}
    circles = demo_images(300)
    x, y, obj, cue = shapes_cued(args.images, seed=50, cue_rate=0.8)
    annotated = torch.arange(args.images) < args.annotated
    base = demo_cnn(variant="clever_hans")
    rows = {"before": measure(base, tests, circles)}
    print(f"before: {rows['before']}", flush=True)
    for loss in args.losses:
        model = copy.deepcopy(base)
        mask = cue if loss in IRRELEVANT else obj
        fit(model, x, y, mask, annotated=annotated, loss=loss, weight=WEIGHTS[loss], epochs=args.epochs,
            lr=args.lr, batch_size=32, seed=0)
        rows[loss] = measure(model, tests, circles)
        print(f"{loss}: done, {time.perf_counter() - start:.0f} s: {rows[loss]}", flush=True)
    print("\n| model | clean acc | cue-flipped acc | gap | SpRAy cue-cluster purity | recall "
          "| relevance on tag |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        label = "Clever-Hans model" if name == "before" else f"fine-tuned, {name} (weight {WEIGHTS[name]:g})"
        print(f"| {label} | {r['clean']:.3f} | {r['cue-flipped']:.3f} | {r['clean'] - r['cue-flipped']:.3f} "
              f"| {r['purity']:.3f} "
              f"| {r['recall']:.3f} | {r['tag_share']:.3f} |")
    print(f"\n{args.images} fine-tuning images, {args.annotated} annotated, {args.epochs} epochs, "
          f"lr {args.lr}; {args.test_images} test images per set; {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
