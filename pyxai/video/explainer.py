"""``VideoExplainer``: attribution maps for every frame of a video, streamed.

Frame models (``Tensor[B, C, H, W] -> Tensor[B, K]``) get batches of ``batch_frames`` frames explained
by any registry method. Clip models (``Tensor[B, C, T, H, W] -> Tensor[B, K]``, ``clip_len`` set) get
sliding windows (:mod:`pyxai.video.clips`), each frame's map the mean of the windows covering it.
``masks_per_frame`` turns RISE, Score-CAM and SIDU into the streaming estimates of
:mod:`pyxai.video.streaming` (RISE) and :mod:`pyxai.video.streaming_cam` (Score-CAM, SIDU).
Decoding runs ahead in a thread and overlay + encoding behind in another (:mod:`pyxai.video.pipeline`),
with bounded queues.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyxai import registry
from pyxai.engine.checks import check_positive_int, model_device
from pyxai.engine.targets import resolve_target
from pyxai.engine.view import forward_view
from pyxai.video.clips import WindowAverage
from pyxai.video.io import describe, iter_frames
from pyxai.video.pipeline import prefetch

__all__ = ["VideoExplainer"]

#: Methods that run the model once on the frames and apply the target once to those outputs, so the
#: frames' scores come with the map (no extra forward).
SINGLE_PASS = ("saliency", "inputxgradient", "guided_backprop", "gradcam", "gradcampp", "lrp")

#: Methods with a streaming mode (``masks_per_frame``): a per-frame budget of masks.
STREAMING = ("rise", "scorecam", "sidu")

Frame = tuple[int, Tensor, Tensor, float]


class _Recorder:
    """A callable target that resolves ``target`` and keeps the scores of its first call."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.scores: Tensor | None = None
        self.classes: Tensor | None = None

    def __call__(self, outputs: Tensor) -> Tensor:
        resolved = resolve_target(self.target, outputs)
        scores = resolved(outputs)
        if self.scores is None:
            self.scores, self.classes = scores.detach(), resolved.classes
        return scores


def _frame_map(attr: Tensor, size: tuple[int, int]) -> Tensor:
    """Attribution Tensor[B, C, h, w] (or [B, A, C, h, w], e.g. extremal areas) ->
    Tensor[B, 1, H, W] float32 (channels, areas summed; resized)."""
    a = attr.detach().float()
    if a.dim() > 4:
        a = a.flatten(1, -3)
    if a.shape[1] != 1:
        a = a.sum(1, keepdim=True)
    if tuple(a.shape[-2:]) != tuple(size):
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    return a


class VideoExplainer:
    """Explain every frame of a video with a registry method (see the module docstring).

    Args:
        model: frame model ``Tensor[B, C, H, W] -> Tensor[B, K]`` or, with ``clip_len``, clip model
            ``Tensor[B, C, T, H, W] -> Tensor[B, K]``. Never modified (explainers run on views).
        method: a :mod:`pyxai.registry` name, or a callable ``explain(inputs, target) -> Tensor``.
            Default: "gradcam"
        clip_len: frames per clip window for clip models; None for a frame model. Default: None
        stride: frames between the starts of two clip windows. Default: 1
        batch_frames: frames (frame model) or windows (clip model) per explainer call.
            Default: 8 frames / 1 window
        layer: target layer for methods that need one; default: the last module with a 4-D/5-D
            output (found on a view with one probe forward).
        target: any form of :mod:`pyxai.engine.targets`; None = each frame's (window's) predicted
            class. Default: None
        transform: callable Tensor[N, C, H, W] frames in [0, 1] -> model inputs of the same
            batch (normalisation, resizing). Default: None
        labels: class names for the overlay text. Default: None (the class index)
        masks_per_frame: with ``method="rise"``, ``"scorecam"`` or ``"sidu"`` on a frame model,
            the streaming mode with this budget of masks per frame
            (:class:`pyxai.video.streaming.StreamingRISE`: masks of a fixed pool;
            :class:`~pyxai.video.streaming_cam.StreamingScoreCAM` /
            :class:`~pyxai.video.streaming_cam.StreamingSIDU`: channel masks, round-robin).
            Default: None
        decay: streaming RISE decay per frame (RISE only). Default: 0.9
        device: device the frames are moved to. Default: the model's device
        queue_depth: bound of the decode and encode queues. Default: 8
        **method_kwargs: constructor keywords of the method (e.g. ``n_masks=500``); streaming
            RISE also takes ``center`` (centred scores, default True: see
            :mod:`pyxai.video.streaming`).

    Examples::

        >>> vx = pyxai.video.VideoExplainer(model, "gradcam", batch_frames=16)
        >>> for i, frame, heat, score in vx.stream("in.mp4"):
        ...     ...
        >>> stats = vx.explain_file("in.mp4", out="out.mp4")
    """

    def __init__(self, model: nn.Module | Callable, method: str | Callable = "gradcam",
                 clip_len: int | None = None, stride: int = 1, batch_frames: int | None = None,
                 *, layer: nn.Module | None = None, target: Any = None,
                 transform: Callable[[Tensor], Tensor] | None = None,
                 labels: Sequence[str] | None = None, masks_per_frame: int | None = None,
                 decay: float = 0.9, device: torch.device | str | None = None,
                 queue_depth: int = 8, **method_kwargs: Any) -> None:
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or callable, got {type(model).__name__}")
        self.model = model
        if isinstance(method, str):
            self._method = registry.get(method)
            self.method_name = method
        elif callable(method):
            self._method, self.method_name = None, getattr(method, "__name__", "custom")
        else:
            raise TypeError(f"method must be a registry name or a callable, got "
                            f"{type(method).__name__}")
        self.method = method
        self.clip_len = None if clip_len is None else check_positive_int(clip_len, "clip_len")
        self.stride = check_positive_int(stride, "stride")
        if self._method is not None and self._method.inputs == "clip" and self.clip_len is None:
            raise ValueError(f"method {method!r} explains clip models (Tensor[B, C, T, H, W]): "
                             "give clip_len for a clip model")
        if batch_frames is not None:
            check_positive_int(batch_frames, "batch_frames")
        self.batch_frames = batch_frames or (1 if self.clip_len else 8)
        self.layer, self.target, self.transform = layer, target, transform
        self.labels = None if labels is None else list(labels)
        if masks_per_frame is not None:
            if method not in STREAMING or self.clip_len is not None:
                raise ValueError(f"masks_per_frame (streaming mode) needs method= one of "
                                 f"{', '.join(map(repr, STREAMING))} on a frame model "
                                 f"(clip_len=None), got method={method!r}")
            check_positive_int(masks_per_frame, "masks_per_frame")
        self.masks_per_frame, self.decay = masks_per_frame, decay
        self.device = torch.device(device) if device is not None else \
            model_device(model, torch.device("cpu"))
        self.queue_depth = check_positive_int(queue_depth, "queue_depth")
        self.method_kwargs = method_kwargs
        self._explain: Callable | None = None
        if masks_per_frame is not None and method == "rise":  # validate its arguments now
            from pyxai.video.streaming import StreamingRISE

            StreamingRISE(model, masks_per_frame, decay, **method_kwargs)

    # ------------------------------------------------------------------------------------------
    def label(self, cls: int) -> str:
        """The overlay text of class ``cls``."""
        if self.labels is not None and 0 <= cls < len(self.labels):
            return self.labels[cls]
        return f"class {cls}" if cls >= 0 else self.method_name

    def _layer(self, probe: Tensor) -> nn.Module | None:
        """The target layer: ``layer``, else (methods that need one) the last feature layer."""
        if self.layer is None and self._method is not None and self._method.needs_layer:
            from pyxai.models.spec import last_feature_layer

            self.layer = last_feature_layer(self.model, probe)
        return self.layer

    def _build(self, probe: Tensor) -> Callable:
        """The ``explain(inputs, target)`` callable, built once (layer found on ``probe``)."""
        if self._explain is None:
            if self._method is None:
                self._explain = self.method
            else:
                self._explain = self._method.build(self.model, self._layer(probe),
                                                   **self.method_kwargs)
        return self._explain

    def _new_streaming(self, probe: Tensor) -> Any:
        """A fresh streaming explainer (``update(frame, target) -> map``) for one stream."""
        assert self._method is not None
        k = self.masks_per_frame
        if self.method == "rise":  # its pool defaults to StreamingRISE's, not the registry's
            from pyxai.video.streaming import StreamingRISE

            return StreamingRISE(self.model, k, self.decay, **self.method_kwargs)
        kwargs = {**self._method.init, **self.method_kwargs}
        if self.method == "scorecam":
            from pyxai.video.streaming_cam import StreamingScoreCAM

            return StreamingScoreCAM(self.model, [self._layer(probe)], k, **kwargs)
        from pyxai.video.streaming_cam import StreamingSIDU

        return StreamingSIDU(self.model, self._layer(probe), k, **kwargs)

    def _inputs(self, frames: Tensor) -> Tensor:
        """Frames Tensor[N, C, H, W] in [0, 1] -> model inputs (on the device, transformed)."""
        x = frames.to(self.device, non_blocking=True)
        return self.transform(x) if self.transform is not None else x

    def explain_inputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Explain one batch of model inputs: ``(attribution, scores Tensor[B], classes Tensor[B])``.

        ``x`` is Tensor[B, C, H, W] (frame model) or Tensor[B, C, T, H, W] (clip model); the
        attribution is the method's output as returned.
        """
        explain = self._build(x)
        if self.method_name in SINGLE_PASS:
            rec = _Recorder(self.target)
            attr = explain(x, rec)
            if rec.scores is None:
                raise RuntimeError(f"method {self.method_name!r} did not evaluate the target")
            scores, classes = rec.scores, rec.classes
        else:
            with torch.no_grad():
                outputs = forward_view(self.model)(x)
            resolved = resolve_target(self.target, outputs)
            scores = resolved(outputs).detach()
            target = resolved.classes if resolved.classes is not None else self.target
            attr = explain(x, target)
            classes = resolved.classes
        if classes is None:
            classes = torch.full((x.shape[0],), -1, dtype=torch.int64)
        return attr, scores, classes

    # ------------------------------------------------------------------------------------------
    def stream(self, source: Any) -> Iterator[Frame]:
        """Explain ``source`` frame by frame (any source of :mod:`pyxai.video.io`).

        Yields:
            ``(frame_index, frame Tensor[C, H, W] in [0, 1] (CPU), map Tensor[1, H, W] float32
            (CPU), score float)`` in frame order, as soon as each frame's map is final.

        Raises:
            ValueError naming the source: see :func:`pyxai.video.io.iter_frames`; frames that do
            not fit the model; a video shorter than ``clip_len``. Frames explained before the
            error are yielded first.
        """
        for item in self._timed(source):
            yield item[:4]

    def _timed(self, source: Any) -> Iterator[tuple[int, Tensor, Tensor, float, int, float]]:
        """As :meth:`stream`, plus each frame's class (-1 if the target has none) and decode
        time stamp (``time.perf_counter``)."""
        name = describe(source)
        frames = prefetch(((f, time.perf_counter()) for f in iter_frames(source)), self.queue_depth)
        if self.clip_len is not None:
            yield from self._clip_stream(frames, name)
        elif self.masks_per_frame is not None:
            yield from self._streaming_stream(frames, name)
        else:
            yield from self._frame_stream(frames, name)

    def _batches(self, frames: Iterator, size: int) -> Iterator[tuple[list, BaseException | None]]:
        """Lists of ``size`` items; on an error of ``frames``, the partial list then the error."""
        batch: list = []
        try:
            for item in frames:
                batch.append(item)
                if len(batch) == size:
                    yield batch, None
                    batch = []
        except (ValueError, TypeError) as exc:
            yield batch, exc
            return
        if batch:
            yield batch, None

    def _fit(self, name: str, shape: tuple[int, ...], fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``; a model error on frames of ``shape`` becomes a ValueError naming them."""
        try:
            return fn(*args)
        except RuntimeError as exc:
            msg = str(exc).splitlines()[0]
            raise ValueError(f"source {name}: frames of shape {shape} do not fit the model: "
                             f"{msg}") from None

    def _frame_stream(self, frames: Iterator, name: str) -> Iterator:
        index = 0
        for batch, error in self._batches(frames, self.batch_frames):
            if batch:
                imgs = torch.stack([f for f, _ in batch])
                x = self._inputs(imgs)
                attr, scores, classes = self._fit(name, tuple(imgs.shape[1:]),
                                                  self.explain_inputs, x)
                maps = _frame_map(attr, tuple(imgs.shape[-2:])).cpu()
                scores, classes = scores.float().cpu().tolist(), classes.tolist()
                for j, (frame, stamp) in enumerate(batch):
                    yield index, frame, maps[j], scores[j], classes[j], stamp
                    index += 1
            if error is not None:
                raise error

    def _streaming_stream(self, frames: Iterator, name: str) -> Iterator:
        view = forward_view(self.model)
        live: Any = None  # this stream's own running state, built on the first frame
        for index, (frame, stamp) in enumerate(frames):
            x = self._inputs(frame[None])

            def run(x: Tensor) -> tuple[Tensor, float, int]:
                with torch.no_grad():
                    outputs = view(x)
                resolved = resolve_target(self.target, outputs)
                classes = resolved.classes
                target = classes if classes is not None else self.target
                cls = -1 if classes is None else int(classes[0])
                nonlocal live
                if live is None:
                    live = self._new_streaming(x)
                return live.update(x, target), float(resolved(outputs)), cls

            heat, score, cls = self._fit(name, tuple(frame.shape), run, x)
            heat = _frame_map(heat, tuple(frame.shape[-2:])).cpu()[0]
            yield index, frame, heat, score, cls, stamp

    def _clip_stream(self, frames: Iterator, name: str) -> Iterator:
        t_len, stride = self.clip_len, self.stride
        pending: list[tuple[Tensor, float]] = []  # frames from index `first` on
        first = 0  # index of pending[0]
        next_start = 0  # next window start
        seen = 0
        avg = WindowAverage()
        windows: list[int] = []

        def run(starts: list[int]) -> None:
            clips = torch.stack([torch.stack([pending[s - first + t][0] for t in range(t_len)], 1)
                                 for s in starts])  # [W, C, T, H, W]
            x = self._window_inputs(clips)
            attr, scores, classes = self._fit(name, tuple(clips.shape[1:]), self.explain_inputs, x)
            maps = self._clip_maps(attr, t_len, tuple(clips.shape[-2:])).cpu()
            for k, s in enumerate(starts):
                avg.add(s, maps[k], float(scores[k]), int(classes[k]))

        def emit(stop: int) -> Iterator:
            nonlocal first
            for i, heat, score, cls in avg.pop_until(stop):
                frame, stamp = pending[i - first]
                yield i, frame, heat, score, cls, stamp
            drop = stop - first
            if drop > 0:
                del pending[:drop]
                first += drop

        error: BaseException | None = None
        try:
            for item in frames:
                pending.append(item)
                seen += 1
                if next_start + t_len <= seen:
                    windows.append(next_start)
                    next_start += stride
                if len(windows) == self.batch_frames:
                    run(windows)
                    windows = []
                    # final: no later window starts before next_start, and the tail window (if
                    # any) starts at or after seen - t_len
                    yield from emit(min(next_start, seen - t_len))
        except (ValueError, TypeError) as exc:
            error = exc  # explain what came before, then raise
        if seen < t_len:
            raise error or ValueError(f"source {name}: {seen} frames are fewer than "
                                      f"clip_len={t_len}")
        if next_start - stride + t_len < seen:  # the tail window, ending at the last frame
            windows.append(seen - t_len)
        if windows:
            run(windows)
        yield from emit(seen)
        if error is not None:
            raise error

    def _window_inputs(self, clips: Tensor) -> Tensor:
        """Clips Tensor[W, C, T, H, W] in [0, 1] -> model inputs (``transform`` per frame)."""
        if self.transform is None:
            return clips.to(self.device, non_blocking=True)
        w, c, t = clips.shape[:3]
        frames = clips.permute(0, 2, 1, 3, 4).reshape(w * t, c, *clips.shape[-2:])
        x = self._inputs(frames)
        return x.reshape(w, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)

    @staticmethod
    def _clip_maps(attr: Tensor, t_len: int, size: tuple[int, int]) -> Tensor:
        """Window attribution [W, C, T', h, w] (or a 2-D [W, C, h, w] for all frames) -> per-frame
        maps Tensor[W, T, 1, H, W] float32."""
        a = attr.detach().float()
        if a.dim() == 4:  # one map for the whole window (e.g. RISE's 2-D masks)
            a = a[:, :, None].expand(-1, -1, t_len, -1, -1)
        if a.shape[1] != 1:
            a = a.sum(1, keepdim=True)
        if a.shape[2] != t_len or tuple(a.shape[-2:]) != tuple(size):
            a = F.interpolate(a, size=(t_len, *size), mode="trilinear", align_corners=False)
        return a.permute(0, 2, 1, 3, 4)

    # ------------------------------------------------------------------------------------------
    def explain_file(self, src: Any, out: Any = None, maps: Any = None, fps: float | None = None,
                     show_progress: bool = False, alpha: float = 0.5, cmap: str = "jet",
                     scale: int = 1, measure_model: bool = True,
                     preset: str = "ultrafast") -> dict[str, Any]:
        """Explain ``src`` and write the overlay video ``out`` (and the raw maps ``maps``).

        Args:
            src: any source of :mod:`pyxai.video.io`.
            out: output video path (H.264, else MPEG-4), or None for no video. Default: None
            maps: ``.npz`` or ``.zarr`` path for the raw maps (``maps`` float16 [N, 1, H, W],
                ``scores`` float32 [N]; Zarr is appended every 64 frames, memory flat:
                :class:`pyxai.video.maps.MapsWriter`), or None. Default: None
            fps: frame rate of the output. Default: the source's, else 25
            show_progress: tqdm bar with frames/s. Default: False
            alpha, cmap, scale: overlay settings (:func:`pyxai.video.overlay.overlay_frame`).
            measure_model: also time the bare model forward on the first frames of the stream.
                Default: True
            preset: libx264's speed preset (:class:`pyxai.video.io.VideoWriter`): "ultrafast"
                leaves the most CPU to the model; a slower one makes a smaller file.
                Default: "ultrafast"

        Returns:
            dict: ``frames``, ``seconds``, ``fps`` (explained frames/s, end to end),
            ``model_fps`` (bare model forwards/s on the same frames, batched alike),
            ``latency_p50_ms`` / ``latency_p95_ms`` (decode to map), ``codec``, ``out``, ``maps``.

        The output video is finalised whatever happens (error, Ctrl-C): every frame explained
        before is in it. Errors are re-raised after that.
        """
        from pyxai.video.io import VideoWriter, probe_fps
        from pyxai.video.maps import MapsWriter
        from pyxai.video.overlay import overlay_frame
        from pyxai.video.pipeline import BackgroundSink

        out_fps = fps if fps is not None else probe_fps(src)
        maps_writer = MapsWriter(maps) if maps is not None else None
        writer = VideoWriter(out, out_fps, preset=preset) if out is not None else None
        latencies: list[float] = []
        probe: list[Tensor] = []
        bar = None
        start = time.perf_counter()
        count = 0

        def draw(item: tuple) -> None:
            frame, heat, score, text, live = item
            writer.write(overlay_frame(frame, heat, text, score, live, alpha, cmap, scale))

        sink = BackgroundSink(draw, self.queue_depth) if writer is not None else None
        failed = True
        try:
            for _, frame, heat, score, cls, stamp in self._timed(src):
                now = time.perf_counter()
                latencies.append(now - stamp)
                count += 1
                live = count / max(now - start, 1e-9)
                if sink is not None:
                    sink.submit((frame, heat, score, self.label(cls), live))
                if maps_writer is not None:
                    maps_writer.add(heat, score)
                if measure_model and len(probe) < self._probe_frames():
                    probe.append(frame)
                if show_progress and bar is None:  # after the first frame: bad sources print no bar
                    from tqdm import tqdm

                    bar = tqdm(unit="frame", desc=f"pyxai video {self.method_name}", initial=count - 1)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(fps=f"{live:.1f}")
            failed = False
        finally:
            if bar is not None:
                bar.close()
            try:
                if sink is not None:
                    sink.close(raise_error=not failed)
            finally:
                if writer is not None:
                    writer.close()
                if maps_writer is not None:
                    maps_writer.close()
        seconds = time.perf_counter() - start
        lat = np.asarray(latencies) * 1e3
        stats = {
            "frames": count, "seconds": seconds, "fps": count / seconds,
            "latency_p50_ms": float(np.percentile(lat, 50)),
            "latency_p95_ms": float(np.percentile(lat, 95)),
            "method": self.method_name, "codec": writer.codec if writer else None,
            "out": None if out is None else str(out), "maps": None if maps is None else str(maps),
        }
        if measure_model and probe:
            stats["model_fps"] = self.model_fps(torch.stack(probe))
        return stats

    def _probe_frames(self) -> int:
        """Frames kept from the stream to time the bare model on: at least 128 and 8 batches (a
        32-frame probe read a third of the true rate here: one-time costs dominate it)."""
        return max(128, 8 * self.batch_frames * (self.clip_len or 1))

    @torch.no_grad()
    def model_fps(self, frames: Tensor, repeat: int = 3) -> float:
        """Bare model frames/s on Tensor[N, C, H, W] frames, batched as the explainer batches
        them (frame model: ``batch_frames`` frames; clip model: windows of ``clip_len`` at
        ``stride``, counted as ``stride`` new frames each), best of ``repeat`` passes."""
        view = forward_view(self.model)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            if self.clip_len is None:
                done = 0
                for i in range(0, len(frames), self.batch_frames):
                    out = view(self._inputs(frames[i : i + self.batch_frames]))
                    done += min(self.batch_frames, len(frames) - i)
            else:
                t_len = min(self.clip_len, len(frames))
                starts = list(range(0, len(frames) - t_len + 1, self.stride))
                done = 0
                for i in range(0, len(starts), self.batch_frames):
                    group = starts[i : i + self.batch_frames]
                    clips = torch.stack([frames[s : s + t_len].transpose(0, 1) for s in group])
                    out = view(self._window_inputs(clips))
                    done += len(group) * self.stride
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            del out
            best = min(best, (time.perf_counter() - t0) / max(done, 1))
        return 1.0 / best
