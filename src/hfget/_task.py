"""One file in flight: its state, its ledger of byte ranges, its partial, and how many connections it may use.

    QUEUED ──> RUNNING ──> VERIFYING ──> PUBLISHED     (a small file goes RUNNING ──> PUBLISHED: verified inline)
      ^  │       │  │          │
      └──┼───────┘  └──────────┴──────> FAILED   (partial parked for the next run)
         └──> PUBLISHED (another process fetched it)       any state but PUBLISHED ──> STOPPED (the run stopped)

A task moves only through `move`/`try_move`, which refuse any other transition. Moves that several connections
of one large file may race for (VERIFYING, FAILED, STOPPED) and the ledger, the journal and the descriptor are
changed under the task's `lock`; a small file has one worker at a time, and the scheduler's moves happen under
its own lock while no worker holds the task.
A small file is one GET written front to back; a large one (`large`) is fetched in ranges over several
connections (see _large.py).
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._exchange import Link
from ._models import RemoteFile
from ._pieces import Ledger, Segment
from ._resume import Journal
from ._verify import HashJob


class State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    VERIFYING = "verifying"
    PUBLISHED = "published"
    FAILED = "failed"
    STOPPED = "stopped"


_MOVES = {
    State.QUEUED: {State.RUNNING, State.PUBLISHED, State.FAILED, State.STOPPED},
    State.RUNNING: {State.QUEUED, State.VERIFYING, State.PUBLISHED, State.FAILED, State.STOPPED},
    State.VERIFYING: {State.PUBLISHED, State.FAILED, State.STOPPED},
    State.PUBLISHED: set(),
    State.FAILED: set(),
    State.STOPPED: set(),
}


class RangeSupport(enum.Enum):
    UNKNOWN = "unknown"  # until a 206 proves the server honours Range: one connection, the probe
    YES = "yes"
    NO = "no"  # a 200 came instead: the file is one stream


class IllegalMove(RuntimeError):
    pass


@dataclass
class Throughput:
    """Bytes per second per connection, measured over short windows (the first one shorter)."""

    since: float = 0.0
    nbytes: int = 0
    per_connection: float | None = None

    def add(self, nbytes: int, connections: int) -> bool:
        """Count bytes; True when a window closed and `per_connection` was measured again."""
        now = time.monotonic()
        if not self.since:
            self.since = now
        self.nbytes += nbytes
        elapsed = now - self.since
        if elapsed < (0.25 if self.per_connection is not None else 0.1):
            return False
        self.per_connection = self.nbytes / elapsed / max(1, connections)
        self.since, self.nbytes = now, 0
        return True


@dataclass(eq=False)
class Task:
    file: RemoteFile
    parked: Path  # where a partial of this file waits between runs (see _ownership.py)
    large: bool
    state: State = State.QUEUED
    partial: Path | None = None  # our own partial, once claimed
    blob_lock: str | None = None  # the key of the BlobLocks lock that says "this process fetches it"
    links: dict[str, Link] = field(default_factory=dict)  # endpoint -> where it last sent this file's body
    ledger: Ledger | None = None
    fd: int | None = None
    hash_job: HashJob | None = None
    journal: Journal | None = None  # the resume sidecar, open for appending (guarded by `lock`)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ranges: RangeSupport = RangeSupport.UNKNOWN
    connections: int = 0
    failures: int = 0  # transient failures in a row
    retry_at: float = 0.0
    verify_attempt: int = 1
    received: int = 0  # bytes received by this run
    resumed: int = 0  # bytes found on disk at the start
    speed: Throughput = field(default_factory=Throughput)
    reported: set[str] = field(default_factory=set)  # notices already given ("started", "waiting")

    def move(self, to: State) -> None:
        if to not in _MOVES[self.state]:
            raise IllegalMove(f"{self.file.path}: {self.state.value} -> {to.value}")
        self.state = to

    def try_move(self, to: State) -> bool:
        """Move if allowed (e.g. exactly one of several connections moves a file to VERIFYING)."""
        if to not in _MOVES[self.state]:
            return False
        self.state = to
        return True

    def link_to(self, endpoint: str) -> Link:
        """The CDN link `endpoint` gave for this file (each mirror gives its own; empty until it answered)."""
        return self.links.setdefault(endpoint, Link())

    def first_time(self, notice: str) -> bool:
        if notice in self.reported:
            return False
        self.reported.add(notice)
        return True

    def cap(self, per_file: int, split_below: float) -> int:
        """Connections this file may use now: one until a 206 proves that Range works and the first short window
        has measured it; then twice as many each window (up to `per_file`) while each connection runs slower than
        `split_below` (a capped stream: more connections multiply the speed), and no more once they run faster
        (the machine is the limit: measured, jumping to all at once cost a second on a local 1 GiB run). The
        ledger never splits a range below its minimum, so a small file takes fewer."""
        if self.ranges is not RangeSupport.YES:
            return 1
        speed = self.speed.per_connection
        if speed is None or speed >= split_below:
            return max(1, self.connections)
        return min(per_file, max(2, 2 * self.connections))

    def join(self, now: float, per_file: int, split_below: float) -> Segment | None:
        """Work for one more connection on this running file, if it may take one (caller holds the scheduler)."""
        if self.ledger is None or self.state is not State.RUNNING or self.retry_at > now:
            return None
        if self.connections >= self.cap(per_file, split_below):
            return None
        with self.lock:
            segment = self.ledger.claim(allow_split=self.ranges is RangeSupport.YES)
        if segment is not None:
            self.connections += 1
        return segment

    def again(self) -> Task:
        """A fresh task for the same file (after a hash mismatch), keeping this run's byte count and the lock."""
        fresh = Task(self.file, self.parked, self.large, verify_attempt=self.verify_attempt + 1,
                     received=self.received, blob_lock=self.blob_lock, reported=set(self.reported))
        self.blob_lock = None
        return fresh


class Cancelled(Exception):
    """The run is stopping: unwinds a worker thread. Never leaves the transfer layer."""
