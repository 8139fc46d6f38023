"""Sinks that show the engine's events on stderr: a rich progress bar on a terminal, plain lines elsewhere.

stdout is left to the command itself (the output path), so `MODEL=$(hfget org/name -q)` works.
"""

from __future__ import annotations

import sys
import threading
import time

from .._events import (
    DownloadFinished,
    DownloadPlanned,
    Event,
    FileDone,
    FileFailed,
    FileRetried,
    FileStarted,
    MetadataRetried,
    MirrorSwitched,
    RevisionResolved,
)


def human_bytes(n: float) -> str:
    """Decimal units, as rich's progress columns and most download tools show them."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def describe(event: Event) -> str | None:
    """The one line a plain log shows for an event (None: not worth a line)."""
    if isinstance(event, RevisionResolved):
        where = f"from {event.endpoint}" if event.endpoint else "from the cache"
        at = "" if event.revision == event.commit else f"{event.revision} = "
        return f"{event.repo} @ {at}{event.commit[:12]} ({where})"
    if isinstance(event, DownloadPlanned):
        if event.files_to_fetch == 0:
            return f"all {event.files_total} files already present ({human_bytes(event.bytes_total)})"
        resumed = f", {human_bytes(event.bytes_on_disk)} resumed from partial files" if event.bytes_on_disk else ""
        return (f"fetching {event.files_to_fetch} of {event.files_total} files, "
                f"{human_bytes(event.bytes_to_fetch)}{resumed}")
    if isinstance(event, FileRetried):
        return f"retrying {event.path}: {event.reason}"
    if isinstance(event, MirrorSwitched):
        return f"switching from {event.previous} to {event.endpoint}: {event.reason}"
    if isinstance(event, MetadataRetried):
        return f"retrying {event.what} in {event.delay:.1f}s: {event.reason}"
    if isinstance(event, FileFailed):
        return f"failed {event.message}"
    if isinstance(event, DownloadFinished):
        speed = event.bytes_fetched / event.seconds if event.seconds > 0 else 0
        failed = f", {event.failed} failed" if event.failed else ""
        return (f"done: {event.files_fetched} files, {human_bytes(event.bytes_fetched)} in {event.seconds:.1f}s "
                f"({human_bytes(speed)}/s){failed}")
    return None


class PlainSink:
    """For logs and pipes: a line per notable event, no control characters."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        line = describe(event)
        if line is not None:
            with self._lock:
                print(line, file=self.stream, flush=True)

    def advance(self, path: str, nbytes: int) -> None:
        pass


class QuietSink(PlainSink):
    """--quiet: only failures."""

    def handle(self, event: Event) -> None:
        if isinstance(event, FileFailed):
            super().handle(event)


class TerminalSink(PlainSink):
    """A terminal: the plain lines, and one overall progress bar while files are in flight."""

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__(sys.stderr)
        self.console = Console(stderr=True)
        self.progress = None
        self.task = None
        self._pending = 0
        self._last = 0.0

    def handle(self, event: Event) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        if isinstance(event, DownloadPlanned) and event.files_to_fetch:
            self.console.print(describe(event), highlight=False)
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=self.console, transient=True,
            )
            self.files_total, self.files_done = event.files_to_fetch, 0
            self.task = self.progress.add_task(self._label(), total=event.bytes_to_fetch + event.bytes_on_disk,
                                               completed=event.bytes_on_disk)
            self.progress.start()
            return
        if isinstance(event, FileStarted):
            return
        if isinstance(event, FileDone) and self.progress is not None:
            self.files_done += 1
            self.progress.update(self.task, description=self._label())
            return
        if isinstance(event, DownloadFinished) and self.progress is not None:
            self._flush()
            self.progress.stop()
            self.progress = None
        line = describe(event)
        if line is not None:
            self.console.print(line, highlight=False, markup=False)

    def _label(self) -> str:
        return f"{self.files_done}/{self.files_total} files"

    def advance(self, path: str, nbytes: int) -> None:
        with self._lock:
            self._pending += nbytes
            now = time.monotonic()
            if now - self._last < 0.1:
                return
            self._last = now
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, 0
        if self.progress is not None and pending:
            self.progress.update(self.task, advance=pending)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
