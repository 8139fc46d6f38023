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
from collections import deque
from collections.abc import Callable
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


THROTTLED_AFTER = 8  # windows (2 s) a once fast stream must crawl before the file takes more connections
BUSY = 0.75  # of a core: a window in which the process itself used this much CPU measured the machine, not the link


def staggered(piece: int, nth: int, cap: int) -> int:
    """The first piece of the `nth` of a file's `cap` connections, joining together at its ramp-up: `nth/cap` of a
    piece, so the connections finish their first pieces, and ask for their next ones, one after another instead of
    all at once. Together, each round of pieces ended at one moment: every connection idle for a round trip at the
    same time, and the hash, which follows the contiguous prefix, handed most of the round (~350 MB a file in
    `mirror`) at once, hashed on both cores while the next round's bytes arrived (measured: 400 MB/s down to 51
    for 0.3 s at each round's end, then 170-300 while the hash caught up)."""
    return max(1, piece * nth // cap)


class RangeSupport(enum.Enum):
    UNKNOWN = "unknown"  # until a 206 proves the server honours Range: one connection, the probe
    YES = "yes"
    NO = "no"  # a 200 came instead: the file is one stream


class IllegalMove(RuntimeError):
    pass


@dataclass
class Throughput:
    """Bytes per second per connection, measured over short windows (the first one shorter); the fastest window
    so far, the last `THROTTLED_AFTER` windows, and whether the last one was `busy`: this process used at least
    `BUSY` of a core's time during it (see Task.cap). The clocks are fields so a unit test can drive them."""

    since: float = 0.0
    nbytes: int = 0
    per_connection: float | None = None
    fastest: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=THROTTLED_AFTER))
    busy: bool = False
    cpu_since: float = 0.0
    clock: Callable[[], float] = time.monotonic
    cpu_clock: Callable[[], float] = time.process_time  # every thread of the process: CPU seconds

    def add(self, nbytes: int, connections: int) -> bool:
        """Count bytes; True when a window closed and `per_connection` was measured again."""
        now = self.clock()
        if not self.since:
            self.since, self.cpu_since = now, self.cpu_clock()
        self.nbytes += nbytes
        elapsed = now - self.since
        if elapsed < (0.25 if self.per_connection is not None else 0.1):
            return False
        cpu = self.cpu_clock()
        self.busy = cpu - self.cpu_since >= BUSY * elapsed
        self.per_connection = self.nbytes / elapsed / max(1, connections)
        self.fastest = max(self.fastest, self.per_connection)
        self.recent.append(self.per_connection)
        self.since, self.nbytes, self.cpu_since = now, 0, cpu
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
        """Connections this file may use now (issue 11's ramp-up).

        One (the probe) until a 206 proves that Range works and the first short window (0.1 s) has measured it.
        If each connection then runs slower than `split_below`, the streams are capped (a mirror or CDN limiting
        each connection), more connections multiply the speed, and the file takes at once as many as its size and
        the budget justify: `per_file`, of which the ledger grants fewer to a file too small to split that often
        (no range below its minimum), and the scheduler no more than the run's budget. Growing from one instead
        cost the capped case a window per step; deciding before the first window would cost the local case,
        where one stream already runs faster than the machine can use (measured: parallel ranges there leave the
        hash of most of the file to do after the last byte, about two seconds on a 1 GiB run). So once a stream
        of this file has run faster than `split_below`, the machine is the limit, and later slow windows (the
        hasher, another process or the disk's writeback taking the machine: measured, down to 0 MB/s for a
        window or two) add nothing, unless every window for `THROTTLED_AFTER` of them runs below a quarter of
        it (a CDN throttling a stream after a burst). A file already at `per_file` stays there.
        While the file has its one connection, a slow window is evidence of a capped stream only if this process
        had CPU to spare during it: a `busy` window (other files' work, start-up) measured the machine, and the file
        waits for a quieter one, for at most `THROTTLED_AFTER` windows (2 s) (measured: 2 x 512 MiB and 200 small
        files from a local Hub, the small files made both first windows read 16-35 MB/s and each file opened 8
        connections, 4.1-4.4 s; one connection each, 3.5-3.7 s). Once it has more, busy windows do not hold it back.
        """
        if self.ranges is not RangeSupport.YES:
            return 1
        speed = self.speed
        deferred = speed.busy and self.connections <= 1 and len(speed.recent) < THROTTLED_AFTER
        if speed.per_connection is None or speed.per_connection >= split_below or deferred:
            return max(1, self.connections)
        throttled = len(speed.recent) == THROTTLED_AFTER and max(speed.recent) < split_below / 4
        if speed.fastest >= split_below and not throttled:
            return max(1, self.connections)
        return per_file

    def join(self, now: float, per_file: int, split_below: float) -> Segment | None:
        """Work for one more connection on this running file, if it may take one (caller holds the scheduler)."""
        if self.ledger is None or self.state is not State.RUNNING or self.retry_at > now:
            return None
        cap = self.cap(per_file, split_below)
        if self.connections >= cap:
            return None
        with self.lock:
            piece = self.ledger.piece_size(self.speed.per_connection, cap)
            segment = self.ledger.claim(staggered(piece, self.connections + 1, cap),
                                        allow_split=self.ranges is RangeSupport.YES)
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
