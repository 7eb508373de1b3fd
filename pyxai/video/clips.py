"""Sliding clip windows over a frame stream, and the per-frame average of the windows' maps.

Windows of ``clip_len`` frames start at ``0, stride, 2 * stride, ...`` while they fit; when the
last of them ends before the last frame, one more window ends exactly at the last frame, so every
frame is covered. A frame's map (and score) is the mean over the windows covering it.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["WindowAverage", "window_starts"]


def window_starts(n_frames: int, clip_len: int, stride: int) -> list[int]:
    """Start frames of the windows over ``n_frames`` frames (see the module docstring).

    Raises:
        ValueError: ``n_frames < clip_len``.
    """
    if n_frames < clip_len:
        raise ValueError(f"{n_frames} frames are fewer than clip_len={clip_len}")
    starts = list(range(0, n_frames - clip_len + 1, stride))
    if starts[-1] + clip_len < n_frames:
        starts.append(n_frames - clip_len)
    return starts


class WindowAverage:
    """Running per-frame sums of window maps and scores; frames come out once final.

    ``add(start, maps, score, cls)`` adds one window's maps Tensor[T, 1, H, W] (T = ``clip_len``)
    and its score to frames ``start .. start + T - 1``; ``pop_until(stop)`` returns, in order, the
    frames ``< stop`` as ``(index, mean map Tensor[1, H, W], mean score, class of the last window
    covering it)`` and forgets them.
    """

    def __init__(self) -> None:
        self._sum: dict[int, Tensor] = {}
        self._score: dict[int, float] = {}
        self._count: dict[int, int] = {}
        self._cls: dict[int, int] = {}

    def add(self, start: int, maps: Tensor, score: float, cls: int = -1) -> None:
        for t in range(maps.shape[0]):
            i = start + t
            if i in self._sum:
                self._sum[i] = self._sum[i] + maps[t]
                self._score[i] += score
                self._count[i] += 1
            else:
                self._sum[i], self._score[i], self._count[i] = maps[t], score, 1
            self._cls[i] = cls

    def pop_until(self, stop: int) -> list[tuple[int, Tensor, float, int]]:
        done = sorted(i for i in self._sum if i < stop)
        out = []
        for i in done:
            c = self._count.pop(i)
            out.append((i, self._sum.pop(i) / c, self._score.pop(i) / c, self._cls.pop(i)))
        return out
