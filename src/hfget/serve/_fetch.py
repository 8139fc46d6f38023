"""Cache misses: each file fetched once into the cache by hfget's engine, and streamed to every client as it fills.

    Fetcher.get(repo, commit, file) -> Partial     one fetch per blob, however many clients ask at once
      a thread runs `Download(...).run()` for that one file (verified, published atomically, as any hfget run);
      the engine's `on_written(file, partial, prefix)` hook (see _transfer.py) moves the Partial on
    stream(partial, start, end)                     a client's bytes, in order, as soon as they are contiguous

Rules that keep a client from ever holding a wrong file:
- the last byte of every response waits until the file is verified and published: a body that fails its hash
  never ends cleanly (the connection is dropped short of its Content-Length, and the client retries);
- a report with another partial, or a smaller prefix, means the bytes before were discarded: a client that
  already received some of them is dropped; one that had received none reads the new partial;
- a partial's descriptor stays valid when the engine renames it into `blobs/`, so a reader keeps reading it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from .._errors import HfgetError
from .._events import DownloadFinished, Event, NullSink
from .._models import RemoteFile
from .._repo import Repo
from ._source import Source

CHUNK = 1 << 20
log = logging.getLogger("hfget.serve")


class StreamBroken(Exception):
    """The bytes this client got may not be the file's: drop the connection (the client retries)."""


@dataclass(frozen=True)
class State:
    partial: Path | None
    prefix: int
    generation: int  # changes when the bytes written so far were discarded
    done: Path | None  # the published blob
    failed: str | None


class Partial:
    """One file being fetched: where its bytes are and how many from byte 0 are written. Engine threads move it;
    readers on the event loop wait for it to move."""

    def __init__(self, file: RemoteFile, loop: asyncio.AbstractEventLoop) -> None:
        self.file = file
        self._loop = loop
        self._lock = threading.Lock()
        self._state = State(None, 0, 0, None, None)
        self._changed = asyncio.Event()
        self._wake_pending = False

    def written(self, file: RemoteFile, partial: Path, prefix: int) -> None:
        """The engine's on_written hook (an engine thread, under the file's lock: quick)."""
        with self._lock:
            old = self._state
            moved_back = old.partial is not None and (partial != old.partial or prefix < old.prefix)
            self._state = State(partial, prefix, old.generation + moved_back, None, None)
        self._wake()

    def finish(self, blob: Path | None, failed: str | None) -> None:
        with self._lock:
            old = self._state
            self._state = State(old.partial, old.prefix, old.generation, blob, failed)
        self._wake()

    def state(self) -> State:
        with self._lock:
            return self._state

    def event(self) -> asyncio.Event:
        """Set at the next change (take it before reading `state()`, on the event loop)."""
        return self._changed

    def _wake(self) -> None:
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        with self._lock:
            self._wake_pending = False
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class _Sink(NullSink):
    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher

    def handle(self, event: Event) -> None:
        if isinstance(event, DownloadFinished):
            with self.fetcher.lock:
                self.fetcher.fetched_bytes += event.bytes_fetched


class Fetcher:
    """The fetches under way, one per blob."""

    def __init__(self, source: Source, loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.loop = loop
        self.lock = threading.Lock()
        self.fetched_bytes = 0
        self.fetches = 0
        self._running: dict[tuple[Repo, str], Partial] = {}

    def get(self, repo: Repo, commit: str, file: RemoteFile) -> Partial:
        """The fetch of this file's blob: the one under way, or a new one (called on the event loop)."""
        key = (repo, file.etag)
        running = self._running.get(key)
        if running is not None:
            return running
        partial = self._running[key] = Partial(file, self.loop)
        with self.lock:
            self.fetches += 1
        threading.Thread(target=self._run, args=(partial, repo, commit, key), daemon=True,
                         name=f"hfget-serve-{file.path}").start()
        return partial

    def _run(self, partial: Partial, repo: Repo, commit: str, key: tuple[Repo, str]) -> None:
        from .._engine import Download

        file = partial.file
        try:
            target = self.source.target(repo, commit, (file.path,))
            Download(target, self.source.options, _Sink(self), on_written=partial.written).run()
        except HfgetError as error:
            partial.finish(None, error.message)
        except Exception as error:  # a bug of ours: the client gets a broken stream, the log the traceback
            log.exception("fetching %s failed", file.path)
            partial.finish(None, f"{type(error).__name__}: {error}")
        else:
            blob = self.source.blob(repo, commit, file)
            partial.finish(blob, None if blob else f"{file.path} was fetched but is not in the cache")
        finally:
            self.loop.call_soon_threadsafe(self._running.pop, key, None)


async def stream(partial: Partial, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes [start, end) of the file as they become contiguous; the last one only once the file is verified."""
    reader = _Reader(partial)
    position = start
    try:
        while position < end:
            changed = partial.event()
            state = partial.state()
            if state.failed is not None:
                raise StreamBroken(state.failed)
            readable = end if state.done is not None else min(state.prefix, end - 1)
            if readable > position and reader.open(state, position > start):
                chunk = await asyncio.to_thread(reader.read, position, min(CHUNK, readable - position))
                if not chunk:
                    raise StreamBroken(f"{partial.file.path}: the partial file is shorter than reported")
                position += len(chunk)
                yield chunk
                continue
            await changed.wait()
    finally:
        reader.close()


class _Reader:
    """A descriptor on the partial (or the blob it became), reopened when the fetch started over."""

    def __init__(self, partial: Partial) -> None:
        self.partial = partial
        self.fd: int | None = None
        self.generation = -1

    def open(self, state: State, started: bool) -> bool:
        """Ready to read; False when there is nothing to open yet. Raises if bytes already sent were dropped."""
        if self.fd is not None and state.generation == self.generation:
            return True
        if self.fd is not None and started:
            raise StreamBroken(f"{self.partial.file.path}: the fetch started over")
        self.close()
        path = state.done or state.partial
        if path is None:
            return False
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return False  # renamed meanwhile (published or parked): the next change says where
        self.generation = state.generation
        return True

    def read(self, position: int, count: int) -> bytes:
        assert self.fd is not None
        return os.pread(self.fd, count, position)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
