"""``pyxai spray``: spectral relevance analysis. With no arguments, the Clever-Hans demo.

    pyxai spray                                   # demo: finds the tagged circles, writes pyxai_out/
    pyxai spray --maps maps.pt --n-clusters 2 3 4 # SpRAy on saved maps (torch.save of Tensor[N, C, H, W])
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_spray(args: argparse.Namespace) -> int:
    import torch

    from pyxai.spray import SpRAy, demo, save_attributions

    out = Path(args.out)
    if args.maps is None:
        found = demo.run(out, n_circles=args.n_images, method=args.method, n_clusters=args.n_clusters[0],
                         seed=args.seed)
        return 0 if found["purity"] > 0 else 1
    path = Path(args.maps)
    if not path.is_file():
        raise FileNotFoundError(f"--maps {path}: no such file")
    maps = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"--maps {path} must hold a Tensor[N, C, H, W] (torch.save), "
                        f"got {type(maps).__name__}")
    spray = SpRAy(n_clusters=args.n_clusters, n_eigval=args.n_eigval, n_neighbors=args.n_neighbors,
                  pool=args.pool, seed=args.seed, display=[] if args.display == "none" else [args.display])
    result = spray.fit(maps)
    save_attributions(out / "spray.attribution.h5", maps)
    result.save_virelay(out / "spray.analysis.h5", attributions=maps, name=path.stem)
    result.figure(maps, path=out / "spray.png")
    for key, labels in result.clusterings.items():
        print(f"{key}: cluster sizes {torch.bincount(labels[labels >= 0]).tolist()}")
    smallest = ', '.join(f'{v:.4f}' for v in result.eigenvalues.sort().values[:8].tolist())
    print(f"eigenvalues (1 - λ): {smallest}"
          f" ...; eigengap suggests {result.suggested_clusters} clusters")
    print(f"wrote {out / 'spray.analysis.h5'}, {out / 'spray.attribution.h5'}, {out / 'spray.png'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``spray`` sub-command to the ``pyxai`` parser."""
    p = sub.add_parser("spray", help="SpRAy: cluster attribution maps (no arguments: Clever-Hans demo)")
    p.add_argument("--maps", help="a torch.save'd Tensor[N, C, H, W] of maps of one class (default: demo)")
    p.add_argument("--out", default="pyxai_out", help="output folder (default: pyxai_out)")
    p.add_argument("--n-clusters", type=int, nargs="+", default=[2], help="cluster counts (default: 2)")
    p.add_argument("--n-eigval", type=int, default=32, help="eigenpairs (default: 32)")
    p.add_argument("--n-neighbors", type=int, default=10, help="k of the k-NN graph (default: 10)")
    p.add_argument("--pool", type=int, default=1, help="sum-pooling block (default: 1)")
    p.add_argument("--display", default="tsne", choices=["tsne", "umap", "none"],
                   help="2-d embedding for the figure and ViRelAy (default: tsne)")
    p.add_argument("--method", default="lrp", help="demo: registry method for the maps (default: lrp)")
    p.add_argument("--n-images", type=int, default=300, help="demo: circle images (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the solver, k-means, t-SNE (default: 0)")
    p.set_defaults(fn=cmd_spray)
