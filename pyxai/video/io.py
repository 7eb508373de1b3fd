"""Video sources and the overlay writer, through PyAV (``pip install 'pyxai-attribution[video]'``).

A *source* is any of

* a path to a file PyAV opens (mp4, mkv, avi, webm, gif, ...), or a stream URL PyAV accepts
  (``rtsp://``, ``http://``, ``udp://``, ...);
* a directory of frame images (png, jpg, bmp, tif, webp), read in sorted file-name order;
* a Tensor[C, H, W] (one frame) or Tensor[T, C, H, W] (float in [0, 1] or uint8);
* an iterable of such tensors (a generator, a list, a camera loop...).

:func:`iter_frames` turns a source into frames Tensor[C, H, W] float32 in [0, 1], all of one size,
and raises ``ValueError`` naming the source for a missing or corrupt file, a container without a
video stream, a stream that stops with a decoding error, a resolution change, or zero frames.
:class:`VideoWriter` encodes uint8 RGB frames with H.264 (libx264), or MPEG-4 Part 2 when no H.264
encoder is available, and always finalises the file (``close`` in ``finally`` / ``with``), so what
was written before an error or Ctrl-C stays playable.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from pyxai.engine.checks import all_finite

__all__ = ["IMAGE_SUFFIXES", "VideoWriter", "describe", "iter_frames", "probe_fps", "require_av"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: libx264's speed presets, fastest first
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
_URL_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://", "rtp://")


def require_av() -> Any:
    """Import PyAV, or ImportError naming the extra that provides it."""
    try:
        import av
    except ImportError:
        raise ImportError("video files and streams need PyAV: pip install "
                          "'pyxai-attribution[video]' (or pip install av)") from None
    return av


def describe(source: object) -> str:
    """A short name of ``source`` for messages."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, Tensor):
        return f"Tensor{list(source.shape)}"
    return type(source).__name__


def _is_url(source: str) -> bool:
    return source.lower().startswith(_URL_SCHEMES)


def probe_fps(source: object, default: float = 25.0) -> float:
    """Frames/s of a video file or stream (``default`` for tensors, directories, unknown rates)."""
    if not isinstance(source, (str, Path)) or Path(source).is_dir():
        return default
    av = require_av()
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                return default
            rate = container.streams.video[0].average_rate
            return float(rate) if rate else default
    except (av.FFmpegError, OSError):
        return default


def iter_frames(source: object, name: str = "source") -> Iterator[Tensor]:
    """Frames of ``source`` (see the module docstring) as Tensor[C, H, W] float32 in [0, 1].

    Raises:
        ValueError naming the source: missing / unreadable file, no video stream, decoding that
        stops, a frame of another size or channel count than the first, a frame that is not a
        finite 3-D tensor, zero frames.
        TypeError: a source of no supported kind.
    """
    label = describe(source)
    shape: tuple[int, ...] | None = None
    count = 0
    for frame in _raw_frames(source, name, label):
        if frame.dim() != 3:
            raise ValueError(f"{name} {label}: frame {count} must be Tensor[C, H, W], got shape "
                             f"{tuple(frame.shape)}")
        if frame.dtype == torch.uint8:
            frame = _unit_float(frame)
        elif not frame.is_floating_point():
            raise TypeError(f"{name} {label}: frames must be float or uint8, got {frame.dtype}")
        else:
            frame = frame.float()
            if not all_finite(frame):
                raise ValueError(f"{name} {label}: frame {count} has NaN or Inf values")
        if shape is None:
            shape = tuple(frame.shape)
        elif tuple(frame.shape) != shape:
            raise ValueError(f"{name} {label}: frame {count} has shape {tuple(frame.shape)}, but "
                             f"the stream started with {shape} (resolution change mid-stream)")
        count += 1
        yield frame
    if count == 0:
        raise ValueError(f"{name} {label}: no frames (empty video or source)")


def _unit_float(frame: Tensor) -> Tensor:
    """uint8 Tensor -> float32 in [0, 1] (``frame.float() / 255``). CPU frames are divided by
    NumPy: this runs in the decode thread, where PyTorch's intra-op pool would spin on the core
    the decoder needs (it made each 224 x 224 frame's conversion cost 3 ms more here)."""
    if frame.device.type != "cpu":
        return frame.float().div_(255)
    return torch.from_numpy(np.divide(frame.numpy(), np.float32(255), dtype=np.float32))


def _raw_frames(source: object, name: str, label: str) -> Iterator[Tensor]:
    if isinstance(source, Tensor):
        if source.dim() == 3:
            yield source
        elif source.dim() == 4:
            yield from source
        else:
            raise ValueError(f"{name} must be Tensor[C, H, W] or Tensor[T, C, H, W], got shape "
                             f"{tuple(source.shape)}")
        return
    if isinstance(source, (str, Path)):
        s = str(source)
        if Path(s).is_dir():
            yield from _directory_frames(Path(s), name)
        elif Path(s).is_file() or _is_url(s):
            yield from _av_frames(s, name)
        else:
            raise ValueError(f"{name} not found: {s}")
        return
    if isinstance(source, Iterable):
        for i, item in enumerate(source):
            if not isinstance(item, Tensor):
                raise TypeError(f"{name} {label}: item {i} is a {type(item).__name__}, not a "
                                "Tensor[C, H, W] or Tensor[T, C, H, W]")
            if item.dim() == 4:
                yield from item
            else:
                yield item
        return
    raise TypeError(f"{name} must be a video path, URL, frame directory, Tensor or iterable of "
                    f"Tensors, got {type(source).__name__}")


def _directory_frames(folder: Path, name: str) -> Iterator[Tensor]:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{name} {folder}: no frame images ({', '.join(IMAGE_SUFFIXES)}) in the "
                         "directory")
    for path in files:
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise ValueError(f"{name} {folder}: cannot read frame {path.name}: {exc}") from None
        yield torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _av_frames(path: str, name: str) -> Iterator[Tensor]:
    av = require_av()
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"{name} {path}: cannot open as a video: {exc}") from None
    with container:
        if not container.streams.video:
            raise ValueError(f"{name} {path}: the container has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # one converter for the stream: frame.to_ndarray(format=...) sets up a new swscale
        # context for every frame (0.8 ms of a 64 x 64 frame's 1 ms here)
        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()
        count = 0
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except (av.FFmpegError, OSError) as exc:
                raise ValueError(f"{name} {path}: decoding stopped after {count} frames: "
                                 f"{exc}") from None
            count += 1
            rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
            yield torch.from_numpy(rgb).permute(2, 0, 1)


class VideoWriter:
    """Encode uint8 RGB frames ``[H, W, 3]`` into a video file, H.264 or MPEG-4 as available.

    The output path is checked when the writer is made (a ``ValueError`` naming it if it cannot be
    written); the stream is set up from the first frame (odd sizes are padded by one pixel, as
    yuv420p needs even sizes). :meth:`close` flushes the encoder and finalises the container; use
    the writer as a context manager so that happens after an error or Ctrl-C too.

    Args:
        path: output file; its suffix picks the container (``.mp4``, ``.mkv``, ``.avi``...).
        fps: frames per second of the output. Default: 25
        codec: encoder name, or None for ``libx264`` then ``mpeg4``. Default: None
        preset: libx264's speed preset. The encoder shares the CPU with the model, so the default
            trades file size for speed: "ultrafast" encoded 224 x 224 frames in a quarter of the
            time of "veryfast" and a tenth of libx264's own default ("medium"). Default: "ultrafast"
        threads: encoder threads (0: the encoder's own choice, about 1.5 per core). One thread
            leaves the other cores to the model; on 2 cores it halved the CPU time of a 64 x 64
            frame against the encoder's choice. Default: 1

    Attributes:
        codec: the encoder used (after the first frame); frames: number of frames written.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 25.0, codec: str | None = None,
                 preset: str = "ultrafast", threads: int = 1) -> None:
        av = require_av()
        self.path = Path(path)
        if preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be an int >= 0, got {threads!r}")
        if not (fps > 0):
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.fps = Fraction(fps).limit_denominator(1001)
        parent = self.path.parent
        if not parent.is_dir():
            raise ValueError(f"output {self.path}: the folder {parent} does not exist")
        if self.path.is_dir() or not os.access(parent, os.W_OK):
            raise ValueError(f"output {self.path}: not writable")
        try:
            self._container = av.open(str(self.path), mode="w")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise ValueError(f"output {self.path}: cannot open for writing: {exc}") from None
        self._wanted, self.preset, self.threads = codec, preset, threads
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        self.codec: str | None = None
        self.frames = 0

    def _open_stream(self, height: int, width: int) -> None:
        av = require_av()
        candidates = [self._wanted] if self._wanted else ["libx264", "mpeg4"]
        last: Exception | None = None
        for codec in candidates:
            try:
                stream = self._container.add_stream(codec, rate=self.fps)
            except (av.FFmpegError, ValueError, KeyError) as exc:
                last = exc
                continue
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = self.threads
            if codec == "mpeg4":
                stream.bit_rate = 4_000_000
            elif codec == "libx264":
                stream.options = {"preset": self.preset}
            self._stream, self.codec, self._size = stream, codec, (height, width)
            return
        raise ValueError(f"output {self.path}: no usable encoder among {candidates}: {last}")

    def write(self, image: np.ndarray) -> None:
        """Append one frame, uint8 ``[H, W, 3]`` RGB (every frame of one size)."""
        av = require_av()
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"frames to encode must be uint8 [H, W, 3], got {image.dtype} "
                             f"{image.shape}")
        h, w = image.shape[:2]
        if self._stream is None:
            self._open_stream(h, w)
        elif (h, w) != self._size:
            raise ValueError(f"output {self.path}: frame of {h}x{w} after frames of "
                             f"{self._size[0]}x{self._size[1]}")
        if h % 2 or w % 2:
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finalise the file (idempotent)."""
        if self._container is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
