"""Requests whose answer has not begun yet: a wait past a few seconds is reported (`FirstByteAwaited`), so progress
can say "waiting for the first byte of X from host" while a caching repository fills its cache."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from ._events import FirstByteAwaited, Sink


class FirstByteWatch:
    """Requests sent whose answer has not begun; each that waits longer than `after` seconds is reported once
    (`FirstByteAwaited`), by one thread that looks twice a second, started with the first request."""

    def __init__(self, sink: Sink | None, *, after: float) -> None:
        self.sink = sink
        self.after = after
        self._waiting: dict[int, tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def waiting(self, path: str, host: str) -> Iterator[None]:
        if self.sink is None:
            yield
            return
        key = object()
        with self._lock:
            self._waiting[id(key)] = (path, host, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._look, daemon=True, name="hfget-first-byte")
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._waiting.pop(id(key), None)

    def _look(self) -> None:
        reported: set[int] = set()
        while not self._closed.wait(0.5):
            now = time.monotonic()
            with self._lock:
                late = [(k, w) for k, w in self._waiting.items() if k not in reported and now - w[2] >= self.after]
                reported &= set(self._waiting)
                reported.update(k for k, _ in late)
            for _, (path, host, since) in late:
                if self.sink is not None:
                    self.sink.handle(FirstByteAwaited(path, host, now - since))

    def close(self) -> None:
        self._closed.set()
