"""What the engine tells the outside world: past-tense events, and the sink protocol that receives them.

The engine never prints. It calls `sink.handle(event)` for each event below and `sink.advance(path, n)` for
every block of bytes received (a hot path: a plain call, no object). The terminal renderer, the plain log
for CI and the quiet mode are sinks (cli/_render.py); a script may pass its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RevisionResolved:
    repo: str
    revision: str
    commit: str
    endpoint: str | None  # None when no request was made
    pinned: bool = False  # the revision is a commit: nothing to look up


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    size: int
    present: bool  # already in the target, verified when it was published
    partial_bytes: int = 0  # bytes a partial file already holds (0 for a present file)

    @property
    def on_disk(self) -> int:  # the JSON schema's deprecated name
        return self.partial_bytes


@dataclass(frozen=True, slots=True)
class DownloadPlanned:
    files_total: int
    bytes_total: int
    files_to_fetch: int
    bytes_to_fetch: int  # bytes not yet on disk, partial files counted as far as they go
    bytes_on_disk: int  # of the files to fetch, already in partial files
    repo: str = ""
    revision: str = ""
    commit: str = ""
    path: Path | None = None  # the snapshot folder or local dir the files go to
    files: tuple[PlannedFile, ...] = ()
    free_bytes: int | None = None  # free space at the target
    endpoint: str | None = None  # where the files would come from
    dry_run: bool = False  # a plan only: nothing will be fetched


@dataclass(frozen=True, slots=True)
class FileStarted:
    path: str
    size: int
    resumed_from: int  # bytes already on disk, not fetched again


@dataclass(frozen=True, slots=True)
class FileRetried:
    path: str
    reason: str
    discarded: int = 0  # bytes thrown away (on a hash mismatch: the whole partial)


@dataclass(frozen=True, slots=True)
class MirrorSwitched:
    """A mirror was dropped for the rest of the run (partial files included), because it failed or lagged;
    `endpoint` is the one in use now (with several serving the commit, the others left keep their share)."""

    previous: str
    endpoint: str
    reason: str


@dataclass(frozen=True, slots=True)
class MirrorStale:
    """A mirror serves an older commit of the revision than another: it is not used for this run."""

    endpoint: str
    revision: str
    commit: str
    date: str
    newest_endpoint: str
    newest_commit: str
    newest_date: str


@dataclass(frozen=True, slots=True)
class HostLimited:
    """A host refused connections past a number: the run keeps to that many (and probes upward slowly)."""

    host: str
    connections: int


@dataclass(frozen=True, slots=True)
class MetadataRetried:
    """A revision or listing request failed transiently and will be sent again."""

    what: str
    reason: str
    delay: float


@dataclass(frozen=True, slots=True)
class FirstByteAwaited:
    """A request for a file's body has had no answer for `seconds` (a caching proxy may be fetching it first)."""

    path: str
    host: str
    seconds: float


@dataclass(frozen=True, slots=True)
class FileDone:
    path: str
    size: int
    fetched: int  # bytes this run received for it


@dataclass(frozen=True, slots=True)
class FileFailed:
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class DownloadFinished:
    path: Path
    commit: str
    files_fetched: int
    bytes_fetched: int
    seconds: float
    failed: int


Event = (RevisionResolved | DownloadPlanned | FileStarted | FileRetried | MirrorSwitched | MetadataRetried
         | HostLimited | MirrorStale | FirstByteAwaited | FileDone | FileFailed | DownloadFinished)


class Sink(Protocol):
    def handle(self, event: Event) -> None: ...

    def advance(self, path: str, nbytes: int) -> None: ...


class NullSink:
    """Receives everything, shows nothing (the default for the Python API)."""

    def handle(self, event: Event) -> None:
        pass

    def advance(self, path: str, nbytes: int) -> None:
        pass
