"""Similarity benchmarks: conditional and pairwise occlusion of SSL encoders vs the one-pair reference.

Workloads (CPU, the bundled SimCLR encoder, pairs of demo images; 64 encoder inputs per forward for
everyone):

* ``similarity``: conditional occlusion with the reference's 64-pixel window and stride 8 on
  224 x 224 pairs (441 windows; quick: 16/8 on 64 x 64, 49 windows) and pairwise occlusion with 100
  erasings, for B pairs at once — pyxai (windows generated per chunk on the runner, all pairs of the
  batch in one pass, the conditioning embeddings computed once) vs *original*, the explain-cl
  algorithm run one pair at a time (every occluded copy built and held in memory, batches of 32,
  :mod:`pyxai.benchmark._similarity_original`) and the floor (the same number of bare encoder
  forwards at batch 64). Pairs/s = B / time. Parity is checked on the raw window grids / maps.
  Context-agnostic occlusion (four encoder inputs a window) likewise; its original runs them
  one image per forward.
* ``similarity_memory``: peak memory of conditional occlusion as the number of windows grows
  (stride 8 -> 2 on 64 x 64: 49 -> 625 windows): flat for pyxai, linear for the original.
"""

from __future__ import annotations

import torch

from pyxai.benchmark import _similarity_original as original
from pyxai.benchmark.core import Case, register

BATCH = 64


def _encoder() -> torch.nn.Module:
    from pyxai.models import demo_simclr

    return demo_simclr()


def _pairs(b: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from pyxai.data import shapes

    x, _, _ = shapes(2 * b, seed=99, size=size)
    return x[:b], x[b:]


def _floor(enc: torch.nn.Module, x: torch.Tensor, rows: int) -> None:
    chunk = x[:1].expand(min(BATCH, rows), *x.shape[1:]).contiguous()
    with torch.inference_mode():
        for i in range(0, rows, BATCH):
            enc(chunk[: min(BATCH, rows - i)])


def _occlusion_case(b: int, size: int, window: int, stride: int,
                    context_agnostic: bool = False) -> Case:
    """Conditional occlusion (two encoder inputs a window and pair: the window of each image
    zeroed), or its context-agnostic variant (four: also everything but the window zeroed)."""
    from pyxai.similarity import ConditionalOcclusion, ContextAgnosticConditionalOcclusion
    from pyxai.similarity.occlusion import window_grid

    enc = _encoder()
    x1, x2 = _pairs(b, size)
    n_h, n_w = window_grid((size, size), (window, window), (stride, stride))
    n = n_h * n_w
    cls = ContextAgnosticConditionalOcclusion if context_agnostic else ConditionalOcclusion
    reference = original.occlusion_context_agnostic if context_agnostic else original.occlusion
    explainer = cls(enc, window=window, stride=stride, batch_size=BATCH)

    def ours() -> torch.Tensor:
        return torch.cat(explainer.attribute(x1, x2, resize=False), 1)

    def orig() -> torch.Tensor:
        maps = [reference(x1[i:i + 1], x2[i:i + 1], enc, window, stride) for i in range(b)]
        grids = [torch.from_numpy(m).float() for pair in maps for m in pair]
        return torch.stack(grids).reshape(b, 2, n_h, n_w)

    rows = ((4 if context_agnostic else 2) * n + 2) * b
    if context_agnostic:
        what = "context-agnostic occlusion"
        held = "the original runs them one image per forward (4 a window and pair)"
    else:
        what = "conditional occlusion"
        held = (f"the original holds {2 * n} occluded copies per pair "
                f"({2 * n * 3 * size * size * 4 / 2**20:.0f} MB)")
    return Case(
        name=f"{what} {size}x{size} w={window}/s={stride} ({n} windows), {b} pairs",
        impls={"pyxai": ours, "original": orig, "floor": lambda: _floor(enc, x1, rows)},
        parity=[("original", "pyxai", 1e-4)],
        notes=f"{rows} encoder rows; pairs/s = {b} / time; {held}",
    )


def _pairwise_case(b: int, size: int, erases: int) -> Case:
    from pyxai.similarity import PairwiseOcclusion

    enc = _encoder()
    x1, x2 = _pairs(b, size)
    explainer = PairwiseOcclusion(enc, num_erases=erases, seed=5, batch_size=BATCH)

    def ours() -> torch.Tensor:
        return torch.cat(explainer.attribute(x1, x2), 1)

    def orig() -> torch.Tensor:
        torch.manual_seed(5)
        out = []
        for i in range(b):
            a1, a2 = original.pairwise_occlusion(x1[i:i + 1], x2[i:i + 1], enc, erases)
            out.append(torch.stack([torch.from_numpy(a1), torch.from_numpy(a2)]).float())
        return torch.stack(out)

    rows = (2 * erases + 2) * b
    return Case(
        name=f"pairwise occlusion {size}x{size}, {erases} erasings, {b} pairs",
        impls={"pyxai": ours, "original": orig, "floor": lambda: _floor(enc, x1, rows)},
        parity=[("original", "pyxai", 1e-4)],
        notes=f"{rows} encoder rows; pairs/s = {b} / time",
    )


@register("similarity")
def similarity_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    if quick:
        return [_occlusion_case(2, 64, 16, 8), _occlusion_case(2, 64, 16, 8, context_agnostic=True),
                _pairwise_case(2, 64, 20)]
    return [_occlusion_case(8, 64, 16, 8), _occlusion_case(2, 224, 64, 8),
            _occlusion_case(8, 64, 16, 8, context_agnostic=True), _pairwise_case(8, 64, 100)]


@register("similarity_memory")
def similarity_memory_cases(quick: bool = False, device: str = "cpu") -> list[Case]:
    strides = (8, 4) if quick else (8, 4, 2)
    return [_occlusion_case(1, 64, 16, s) for s in strides]
