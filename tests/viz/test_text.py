"""Frame labels stitched from cached word bitmaps equal PIL's ``draw.text`` pixel for pixel."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch

from pyxai import viz
from pyxai.viz.overlay import _label_with_pil
from pyxai.viz.text import text_mask

CHARS = string.ascii_letters + string.digits + ".,:;-_+=%/()[]#&*!?'\"<>@"


def _random_text(g: torch.Generator) -> str:
    words = []
    for _ in range(int(torch.randint(1, 6, (1,), generator=g))):
        n = int(torch.randint(1, 9, (1,), generator=g))
        idx = torch.randint(0, len(CHARS), (n,), generator=g).tolist()
        words.append("".join(CHARS[i] for i in idx))
    return " ".join(words)


def test_stitched_labels_equal_pil(rng):
    for _ in range(300):
        text = _random_text(rng)
        h = int(torch.randint(4, 40, (1,), generator=rng))
        w = int(torch.randint(4, 160, (1,), generator=rng))  # text often wider than the frame
        px = (torch.rand(h, w, 3, generator=rng) * 255).to(torch.uint8).numpy()
        assert text_mask(text) is not None, text
        np.testing.assert_array_equal(viz.label_frame(px, text), _label_with_pil(px.copy(), text),
                                      err_msg=repr(text))


def test_video_labels_equal_pil(rng):
    px = (torch.rand(64, 64, 3, generator=rng) * 255).to(torch.uint8).numpy()
    for score in torch.rand(50, generator=rng).tolist():
        text = f"class {int(score * 10)} {score:.2f} {score * 300:.1f} fps"
        np.testing.assert_array_equal(viz.label_frame(px, text, 2),
                                      _label_with_pil(np.repeat(np.repeat(px, 2, 0), 2, 1), text))


@pytest.mark.parametrize("text", ["  two  spaces", "tab\there", "new\nline", " lead", "trail "])
def test_other_whitespace_is_drawn_by_pil(text):
    px = np.full((20, 80, 3), 128, np.uint8)
    assert text_mask(text) is None
    np.testing.assert_array_equal(viz.label_frame(px, text), _label_with_pil(px.copy(), text))
