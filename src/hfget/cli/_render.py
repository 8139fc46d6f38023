"""Sinks that show the engine's events on stderr: a rich progress bar on a terminal, plain lines elsewhere.

stdout is left to the command itself (the output path), so `MODEL=$(hfget org/name -q)` works.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.progress import Progress, TaskID

    from .. import _schema
    from .._errors import HfgetError

from .._events import (
    DownloadFinished,
    DownloadPlanned,
    Event,
    FileDone,
    FileFailed,
    FileRetried,
    FileStarted,
    FirstByteAwaited,
    HostLimited,
    MetadataRetried,
    MirrorStale,
    MirrorSwitched,
    RevisionResolved,
)


def human_bytes(n: float) -> str:
    """Decimal units, as rich's progress columns and most download tools show them."""
    from rich.filesize import decimal

    return decimal(int(n))


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def describe(event: Event) -> str | None:
    """The one line a plain log shows for an event (None: not worth a line)."""
    if isinstance(event, RevisionResolved):
        where = ("a commit: no lookup" if event.pinned else f"from {event.endpoint}" if event.endpoint
                 else "from the cache")
        at = "" if event.revision == event.commit else f"{event.revision} = "
        return f"{event.repo} @ {at}{event.commit[:12]} ({where})"
    if isinstance(event, DownloadPlanned):
        return _describe_plan(event)
    if isinstance(event, FileRetried):
        return f"retrying {event.path}: {event.reason}"
    if isinstance(event, MirrorSwitched):
        return f"switching from {event.previous} to {event.endpoint}: {event.reason}"
    if isinstance(event, MetadataRetried):
        return f"retrying {event.what} in {event.delay:.1f}s: {event.reason}"
    if isinstance(event, MirrorStale):
        return (f"{event.endpoint} serves {event.revision} = {event.commit[:12]} from {event.date[:10]}, behind "
                f"{event.newest_endpoint}'s {event.newest_commit[:12]} from {event.newest_date[:10]}; "
                "not used for this run")
    if isinstance(event, HostLimited):
        return f"{event.host} limits connections: using {event.connections} at a time"
    if isinstance(event, FirstByteAwaited):
        return f"waiting for the first byte of {event.path} from {event.host} ({event.seconds:.0f}s so far)"
    if isinstance(event, FileFailed):
        return f"failed {event.message}"
    if isinstance(event, DownloadFinished):
        return _describe_finish(event)
    return None


def _describe_plan(event: DownloadPlanned) -> str:
    if event.files_to_fetch == 0:
        return f"up to date: all {_files(event.files_total)} present ({human_bytes(event.bytes_total)})"
    resumed = f", {human_bytes(event.bytes_on_disk)} resumed from partial files" if event.bytes_on_disk else ""
    verb = "would fetch" if event.dry_run else "fetching"
    return f"{verb} {event.files_to_fetch} of {_files(event.files_total)}, {human_bytes(event.bytes_to_fetch)}{resumed}"


def _describe_finish(event: DownloadFinished) -> str | None:
    if event.files_fetched == 0 and event.failed == 0:
        return None  # the plan's line said "up to date" already
    speed = event.bytes_fetched / event.seconds if event.seconds > 0 else 0
    failed = f", {event.failed} failed" if event.failed else ""
    return (f"done: {_files(event.files_fetched)}, {human_bytes(event.bytes_fetched)} in {event.seconds:.1f}s "
            f"({human_bytes(speed)}/s){failed}")


class PlainSink:
    """For logs and pipes: a line per notable event and, every few seconds, a progress line; no control codes."""

    EVERY = 5.0

    def __init__(self, stream: TextIO | None = None, *, periodic: bool = True) -> None:
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
    ten times a second; when the run ends the bars go and a one-line summary stays.

    The bars are made when the plan is known but drawn from the transfers' first event on: their redraw is a
    thread, and until then the process runs none, so the engine can fork a helper process (_fanout.py: a fork is
    safe only without other threads, and starts about 0.5 s sooner than a fresh interpreter)."""

    LARGE = 8 << 20  # files this big get a bar of their own

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__(sys.stderr)
        self.console = Console(stderr=True)
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self._pending: dict[str, int] = {}
        self._bars: dict[str, TaskID] = {}
        self._last = 0.0
        self._endpoint: str | None = None
        self._drawing = False

    def handle(self, event: Event) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if isinstance(event, (RevisionResolved, MirrorSwitched)):
            self._endpoint = event.endpoint
        if isinstance(event, DownloadPlanned) and event.files_to_fetch:
            self.console.print(describe(event), highlight=False)
            progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=self.console, transient=True, refresh_per_second=10,
            )
            self.files_total, self.files_done = event.files_to_fetch, 0
            self.task = progress.add_task(self._label(), total=event.bytes_to_fetch + event.bytes_on_disk,
                                          completed=event.bytes_on_disk)
            self.progress, self._drawing = progress, False
            return
        if not isinstance(event, DownloadFinished):
            self._draw()
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
            if self.task is not None:
                self.progress.update(self.task, description=self._label())
            return
        if isinstance(event, DownloadFinished) and self.progress is not None:
            self._flush()
            self.close()
        line = describe(event)
        if line is not None:
            if isinstance(event, DownloadFinished) and self._endpoint:
                line += f" from {self._endpoint}"
            self.console.print(line, highlight=False, markup=False)

    def _label(self) -> str:
        return f"{self.files_done}/{self.files_total} files"

    def _draw(self) -> None:
        """Start the bars' redraw thread, once the transfers have begun (see the class docstring)."""
        if self._drawing:
            return
        with self._lock:
            if self._drawing or self.progress is None:
                return
            self._drawing = True
            self.progress.start()

    def advance(self, path: str, nbytes: int) -> None:
        self._draw()
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
        if self.progress is None or self.task is None or not pending:
            return
        self.progress.update(self.task, advance=sum(pending.values()))
        for path, nbytes in pending.items():
            if path in bars:
                self.progress.update(bars[path], advance=nbytes)

    def close(self) -> None:
        with self._lock:  # and no thread draws it later (_draw)
            progress, self.progress, self._drawing = self.progress, None, True
        if progress is not None:
            progress.stop()


class JsonSink:
    """--json: newline-delimited JSON events on stdout (hfget._schema), nothing else there."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._results: dict[str, dict[str, Any]] = {}

    def emit(self, model: BaseModel) -> None:
        line = model.model_dump_json()
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def handle(self, event: Event) -> None:
        from .. import _schema as s

        if isinstance(event, DownloadPlanned):
            self.emit(plan_model(event))
            for f in event.files:
                self._results[f.path] = {"path": f.path, "size": f.size, "status": "present" if f.present
                                         else "fetched"}
        elif isinstance(event, FileStarted):
            self.emit(s.FileStartedEvent.model_validate(event))
        elif isinstance(event, FileDone):
            self._results.setdefault(event.path, {"path": event.path, "size": event.size}).update(
                status="fetched", fetched=event.fetched)
            self.emit(s.FileDoneEvent.model_validate(event))
        elif isinstance(event, FileRetried):
            self.emit(s.RetryEvent(path=event.path, reason=event.reason))
        elif isinstance(event, MetadataRetried):
            self.emit(s.RetryEvent(path=None, reason=f"{event.what}: {event.reason}"))
        elif isinstance(event, MirrorStale):
            self.emit(s.MirrorStaleEvent.model_validate(event))
        elif isinstance(event, HostLimited):
            self.emit(s.RetryEvent(path=None, reason=f"{event.host} limits connections to {event.connections}"))
        elif isinstance(event, MirrorSwitched):
            self.emit(s.MirrorSwitchedEvent.model_validate(event))
        elif isinstance(event, FirstByteAwaited):
            self.emit(s.WaitingEvent(path=event.path, host=event.host, seconds=round(event.seconds, 1)))
        elif isinstance(event, FileFailed):
            self._results.setdefault(event.path, {"path": event.path, "size": 0}).update(
                status="failed", message=event.message)
            self.emit(s.ErrorEvent(path=event.path, message=event.message))
        elif isinstance(event, DownloadFinished):
            self.emit(s.SummaryEvent(
                path=event.path, commit=event.commit, files_fetched=event.files_fetched,
                bytes_fetched=event.bytes_fetched, seconds=round(event.seconds, 3), failed=event.failed,
                files=[s.FileResult.model_validate(r) for r in self._results.values()],
            ))

    def advance(self, path: str, nbytes: int) -> None:
        pass

    def error(self, error: HfgetError) -> None:
        from .. import _schema as s

        self.emit(s.ErrorEvent(path=None, message=error.message, hint=error.hint, exit_code=int(error.exit_code)))


def plan_model(event: DownloadPlanned) -> _schema.PlanEvent:
    from .. import _schema

    return _schema.PlanEvent.model_validate(event)


def plan_table(event: DownloadPlanned, stream: TextIO) -> None:
    """--dry-run and `ls` without --json: one line per file, then the totals. Plain text, no colour codes."""
    for f in event.files:
        state = "cached" if f.present else (f"partial {human_bytes(f.partial_bytes)}" if f.partial_bytes else "fetch")
        print(f"{state:>18}  {human_bytes(f.size):>10}  {f.path}", file=stream)
    free = human_bytes(event.free_bytes) if event.free_bytes is not None else "unknown"
    print(f"{_files(event.files_total)}, {human_bytes(event.bytes_total)}; to fetch: {_files(event.files_to_fetch)}, "
          f"{human_bytes(event.bytes_to_fetch)}; free at the target: {free}", file=stream)
    print(f"{event.repo} @ {event.commit} -> {event.path}", file=stream)


class RepoSink(PlainSink):
    """`sync`: several repos at once, so every line names its repo (no periodic lines: they would interleave)."""

    def __init__(self) -> None:
        super().__init__(periodic=False)

    def for_repo(self, repo: str) -> _Prefixed:
        return _Prefixed(self, repo)


class _Prefixed:
    def __init__(self, sink: PlainSink, repo: str) -> None:
        self.sink = sink
        self.repo = repo

    def handle(self, event: Event) -> None:
        line = describe(event)
        if line is not None and not isinstance(event, RevisionResolved):
            line = f"{self.repo}: {line}"
        if line is not None:
            with self.sink._lock:
                print(line, file=self.sink.stream, flush=True)

    def advance(self, path: str, nbytes: int) -> None:
        pass
