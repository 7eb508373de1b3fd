"""The bounded decode -> explain -> overlay -> encode pipeline: two helper threads and two queues.

:func:`prefetch` runs an iterator (decoding) in a thread, ``depth`` items ahead of the consumer;
:class:`BackgroundSink` runs a callback (overlay + encode) in a thread on items handed to it. Both
queues are bounded, so memory is flat in the video length whatever the speed of each stage, and
an exception in a helper thread is raised in the caller's thread (at the next item or at close).
PyAV, PIL and PyTorch release the GIL in their heavy parts, so IO overlaps the model's compute.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

__all__ = ["BackgroundSink", "prefetch"]

_DONE = object()
_POLL_S = 0.05


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Iterate ``items`` in a daemon thread, at most ``depth`` items ahead; yields them in order.

    Closing the returned generator early (``break``, an exception) stops the thread at its next
    item. An exception raised by ``items`` is re-raised here, after the items before it.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # forwarded to the consumer
            put(_Failure(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=work, name="pyxai-video-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)


class BackgroundSink:
    """Call ``fn(item)`` for every submitted item in a daemon thread, in order.

    Args:
        fn: the work (e.g. draw the overlay and encode it).
        depth: queue bound; :meth:`submit` blocks while ``depth`` items wait. Default: 8

    An exception raised by ``fn`` stops the sink; it is re-raised by the next :meth:`submit` or
    by :meth:`close`. :meth:`close` waits for every submitted item to be handled.
    """

    def __init__(self, fn: Callable[[Any], None], depth: int = 8) -> None:
        self._fn = fn
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="pyxai-video-encode", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain after a failure
            try:
                self._fn(item)
            except BaseException as exc:
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc

    def submit(self, item: Any) -> None:
        """Queue ``item`` (blocks while the queue is full); raises a failure of ``fn`` so far."""
        self._raise()
        while self._thread.is_alive():
            try:
                self._q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                self._raise()
        self._raise()

    def close(self, raise_error: bool = True) -> None:
        """Handle what was submitted, stop the thread, and raise a failure of ``fn`` if any."""
        if self._thread.is_alive():
            self._q.put(_DONE)
            self._thread.join()
        if raise_error:
            self._raise()
