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
    """For logs and pipes: a line per notable event and, every few seconds, a progress line; no control codes."""

    EVERY = 5.0

    def __init__(self, stream=None, *, periodic: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.periodic = periodic
        self._lock = threading.Lock()
        self._total = self._done = 0
        self._started = self._last = time.monotonic()

    def handle(self, event: Event) -> None:
        if isinstance(event, DownloadPlanned):  # several at once under `sync`: the totals add up
            with self._lock:
                if not self._total:
                    self._started = self._last = time.monotonic()
                self._total += event.bytes_to_fetch
        line = describe(event)
        if line is not None:
            with self._lock:
                print(line, file=self.stream, flush=True)

    def advance(self, path: str, nbytes: int) -> None:
        if not self.periodic:
            return
        with self._lock:
            self._done += nbytes
            now = time.monotonic()
            if now - self._last < self.EVERY:
                return
            self._last = now
            speed = self._done / max(now - self._started, 1e-6)
            percent = f" ({self._done * 100 // self._total}%)" if self._total else ""
            print(f"{human_bytes(self._done)} of {human_bytes(self._total)}{percent}, {human_bytes(speed)}/s",
                  file=self.stream, flush=True)


class QuietSink(PlainSink):
    """--quiet: only failures."""

    def handle(self, event: Event) -> None:
        if isinstance(event, FileFailed):
            super().handle(event)

    def advance(self, path: str, nbytes: int) -> None:
        pass


class TerminalSink(PlainSink):
    """A terminal: one overall bar (bytes, speed, ETA, files done/total), a bar per large file in flight, redrawn
    ten times a second; when the run ends the bars go and a one-line summary stays."""

    LARGE = 8 << 20  # files this big get a bar of their own

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__(sys.stderr)
        self.console = Console(stderr=True)
        self.progress = None
        self.task = None
        self._pending: dict[str, int] = {}
        self._bars: dict[str, object] = {}
        self._last = 0.0
        self._endpoint: str | None = None

    def handle(self, event: Event) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        if isinstance(event, RevisionResolved):
            self._endpoint = event.endpoint
        elif isinstance(event, MirrorSwitched):
            self._endpoint = event.endpoint
        if isinstance(event, DownloadPlanned) and event.files_to_fetch:
            self.console.print(describe(event), highlight=False)
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=self.console, transient=True, refresh_per_second=10,
            )
            self.files_total, self.files_done = event.files_to_fetch, 0
            self.task = self.progress.add_task(self._label(), total=event.bytes_to_fetch + event.bytes_on_disk,
                                               completed=event.bytes_on_disk)
            self.progress.start()
            return
        if isinstance(event, FileStarted):
            if self.progress is not None and event.size >= self.LARGE:
                name = event.path if len(event.path) <= 40 else "…" + event.path[-39:]
                with self._lock:
                    self._bars[event.path] = self.progress.add_task(f"  {name}", total=event.size,
                                                                    completed=event.resumed_from)
            return
        if isinstance(event, FileDone) and self.progress is not None:
            self._flush()
            self.files_done += 1
            with self._lock:
                bar = self._bars.pop(event.path, None)
            if bar is not None:
                self.progress.remove_task(bar)
            self.progress.update(self.task, description=self._label())
            return
        if isinstance(event, DownloadFinished) and self.progress is not None:
            self._flush()
            self.progress.stop()
            self.progress = None
        line = describe(event)
        if line is not None:
            if isinstance(event, DownloadFinished) and self._endpoint:
                line += f" from {self._endpoint}"
            self.console.print(line, highlight=False, markup=False)

    def _label(self) -> str:
        return f"{self.files_done}/{self.files_total} files"

    def advance(self, path: str, nbytes: int) -> None:
        with self._lock:
            self._pending[path] = self._pending.get(path, 0) + nbytes
            now = time.monotonic()
            if now - self._last < 0.1:
                return
            self._last = now
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            bars = dict(self._bars)
        if self.progress is None or not pending:
            return
        self.progress.update(self.task, advance=sum(pending.values()))
        for path, nbytes in pending.items():
            if path in bars:
                self.progress.update(bars[path], advance=nbytes)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class JsonSink:
    """--json: newline-delimited JSON events on stdout (hfget._schema), nothing else there."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._endpoint: str | None = None
        self._results: dict[str, dict] = {}

    def emit(self, model) -> None:
        line = model.model_dump_json()
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def handle(self, event: Event) -> None:
        from .. import _schema as s

        if isinstance(event, RevisionResolved):
            self._endpoint = event.endpoint
        elif isinstance(event, DownloadPlanned):
            self.emit(plan_model(event, self._endpoint))
            for f in event.files:
                self._results[f.path] = {"path": f.path, "size": f.size, "status": "present" if f.present
                                         else "fetched"}
        elif isinstance(event, FileStarted):
            self.emit(s.FileStartedEvent(path=event.path, size=event.size, resumed_from=event.resumed_from))
        elif isinstance(event, FileDone):
            self._results.setdefault(event.path, {"path": event.path, "size": event.size}).update(
                status="fetched", fetched=event.fetched)
            self.emit(s.FileDoneEvent(path=event.path, size=event.size, fetched=event.fetched))
        elif isinstance(event, FileRetried):
            self.emit(s.RetryEvent(path=event.path, reason=event.reason))
        elif isinstance(event, MetadataRetried):
            self.emit(s.RetryEvent(path=None, reason=f"{event.what}: {event.reason}"))
        elif isinstance(event, MirrorSwitched):
            self.emit(s.MirrorSwitchedEvent(previous=event.previous, endpoint=event.endpoint, reason=event.reason))
        elif isinstance(event, FileFailed):
            self._results.setdefault(event.path, {"path": event.path, "size": 0}).update(
                status="failed", message=event.message)
            self.emit(s.ErrorEvent(path=event.path, message=event.message))
        elif isinstance(event, DownloadFinished):
            self.emit(s.SummaryEvent(
                path=str(event.path), commit=event.commit, files_fetched=event.files_fetched,
                bytes_fetched=event.bytes_fetched, seconds=round(event.seconds, 3), failed=event.failed,
                files=[s.FileResult(**r) for r in self._results.values()],
            ))

    def advance(self, path: str, nbytes: int) -> None:
        pass

    def error(self, error) -> None:
        from .. import _schema as s

        self.emit(s.ErrorEvent(path=None, message=error.message, hint=error.hint, exit_code=int(error.exit_code)))


def plan_model(event: DownloadPlanned, endpoint: str | None):
    from .. import _schema as s

    return s.PlanEvent(
        repo=event.repo, revision=event.revision, commit=event.commit, endpoint=endpoint, path=str(event.path),
        files_total=event.files_total, bytes_total=event.bytes_total, files_to_fetch=event.files_to_fetch,
        bytes_to_fetch=event.bytes_to_fetch, bytes_on_disk=event.bytes_on_disk, free_bytes=event.free_bytes,
        files=[s.PlanFile(path=f.path, size=f.size, present=f.present, on_disk=f.on_disk) for f in event.files],
    )


def plan_table(event: DownloadPlanned, stream) -> None:
    """--dry-run and `ls` without --json: one line per file, then the totals. Plain text, no colour codes."""
    for f in event.files:
        state = "cached" if f.present else (f"partial {human_bytes(f.on_disk)}" if f.on_disk else "fetch")
        print(f"{state:>18}  {human_bytes(f.size):>10}  {f.path}", file=stream)
    free = human_bytes(event.free_bytes) if event.free_bytes is not None else "unknown"
    print(f"{event.files_total} files, {human_bytes(event.bytes_total)}; to fetch: {event.files_to_fetch} files, "
          f"{human_bytes(event.bytes_to_fetch)}; free at the target: {free}", file=stream)
    print(f"{event.repo} @ {event.commit} -> {event.path}", file=stream)
