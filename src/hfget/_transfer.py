"""File bodies over HTTP: the only module with concurrent network I/O. Worker threads over one `httpx2.Client`.

Threads, not asyncio: measured on the benchmark scenarios, httpx2's sync client in threads moves bytes with
less CPU per byte, and file writes and hashing release the GIL anyway.

    Transfers.run(files)
      workers (max_connections threads) ask the Scheduler for work, in this order:
        1. another connection for a large file already running (below --connections): the largest free range
           of its Ledger, else half of its widest in-flight segment (dynamic splitting, _pieces.py);
        2. the next file, while fewer than --jobs files are in flight: a small file is one GET, written front
           to back; a large file starts with one ranged GET (the probe) and is split once a 206 proves that
           the server honours Range. A 200 instead means it does not: that file stays one stream.
      a hasher thread hashes each large file's contiguous written prefix from the page cache as it grows
      (hashlib releases the GIL: it runs beside the network threads on the other core).

Per request: GET the resolve URL, following redirects by hand; the token goes to the endpoint's origin only
(hub-protocol.md §3). A large file's CDN location is resolved once and reused for all its ranges; a 401/403/410
from the CDN (signed URLs expire) drops it, and the next request resolves again, from the bytes on disk.
Replies are checked before a byte is written (house style, habit 4): 206 must start where asked, 200 must
carry the listed size, a body longer than listed is an error.

Large files are written in place (`os.pwrite`) into one partial file truncated to the final size; the
ranges written are saved to a sidecar (_resume.py) about every second and when a connection stops.
Verification: size and hash against the listing; a mismatch discards the partial and fetches once more, a
second fails the file. Transient errors (resets, truncation, 5xx, expired URLs) retry from the bytes on disk.
"""

from __future__ import annotations

import os
import queue

try:
    import fcntl
except ImportError:  # Windows: no flock; owned partial names still keep concurrent runs correct
    fcntl = None
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from . import _resume
from ._errors import AuthError, FileDownloadError, HfgetError, InterruptedError_, StorageError, VerificationError
from ._events import FileRetried, FileStarted, MirrorSwitched, Sink
from ._hub import RemoteFile
from ._pieces import Ledger, Segment
from ._retry import RETRY_STATUSES, Concurrency, RetryPolicy
from ._settings import TransferSettings
from ._verify import ContentHash
from ._version import __version__

if TYPE_CHECKING:
    import httpx2

_MAX_REDIRECTS = 10
_SAVE_EVERY = 0.25  # seconds between resume-state writes of one file: what a kill -9 may cost
_HASH_BLOCK = 4 << 20
_READ_SIZE = 256 << 10


class _Transient(Exception):
    """Worth another attempt from the bytes on disk (reset, truncated body, 5xx, 429, stall, expired URL).

    `mirror_fault` says how much it speaks against the endpoint in use (see `Transfers._mirror_trouble`);
    `missing` marks a 404 for a file the listing has: final, unless another mirror may have it."""

    def __init__(self, message: str, *, received: int = 0, status: int | None = None, headers=None,
                 mirror_fault: int = 0, missing: bool = False) -> None:
        super().__init__(message)
        self.received, self.status, self.headers = received, status, headers
        self.mirror_fault, self.missing = mirror_fault, missing


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def make_client(*, connections: int, connect_timeout: float, stall_timeout: float) -> "httpx2.Client":
    import httpx2
    from httpcore2._sync.http11 import HTTP11Connection

    # httpcore reads 64 KiB per recv; a quarter MiB quarters the per-chunk Python work on fast links
    # (measured: -15% wall time on a 1 GiB localhost download). A class attribute, read per read().
    if getattr(HTTP11Connection, "READ_NUM_BYTES", 0) < _READ_SIZE:
        HTTP11Connection.READ_NUM_BYTES = _READ_SIZE

    return httpx2.Client(
        limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
        # read: the stall watchdog, the longest wait for the next byte of a body
        timeout=httpx2.Timeout(connect=connect_timeout, read=stall_timeout, write=stall_timeout, pool=None),
        follow_redirects=False,
        headers={"User-Agent": f"hfget/{__version__}", "Accept-Encoding": "identity"},
    )


class BlobLocks:
    """Advisory locks, one per blob, as byte-range locks in one file per repo (`fcntl.lockf`).

    One lock file for the run, not one per blob: creating a file per blob cost ~1 s per 2,000 small files here
    (profiled). A blob's lock is one byte at an offset drawn from its etag. These locks only spare duplicate
    downloads between processes; correctness never depends on them (see _resume.claim), so where they are
    unavailable (Windows, some network filesystems, HFGET_LOCKS=0) hfget runs without them."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, path: Path) -> "BlobLocks | None":
        if fcntl is None or os.environ.get("HFGET_LOCKS") == "0":
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls(os.open(path, os.O_RDWR | os.O_CREAT, 0o664))
        except OSError:
            return None

    @staticmethod
    def _offset(key: str) -> int:
        return int(key[:12], 16) if all(c in "0123456789abcdef" for c in key[:12]) else hash(key) & (2**47 - 1)

    def try_lock(self, key: str) -> bool:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset(key), os.SEEK_SET)
        except (BlockingIOError, PermissionError):
            return False
        except OSError:
            return True  # the filesystem does not lock: carry on without
        return True

    def unlock(self, key: str) -> None:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self._offset(key), os.SEEK_SET)
        except OSError:
            pass

    def close(self) -> None:
        os.close(self.fd)


class RateLimiter:
    """One budget of bytes per second for the whole run (--limit-rate), shared by every connection."""

    def __init__(self, rate: float, cancel: threading.Event) -> None:
        self.rate = rate
        self.cancel = cancel
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def consume(self, nbytes: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now - 0.05)  # a 50 ms burst at most
            self._next = start + nbytes / self.rate
            delay = self._next - now
        if delay > 0:
            self.cancel.wait(delay)


@dataclass(eq=False)
class _Task:
    """One file in flight."""

    file: RemoteFile
    parked: Path  # where a partial of this file waits between runs (see _resume.claim)
    large: bool
    partial: Path | None = None  # our own partial, once claimed
    location: str | None = None  # the CDN URL the resolve URL redirected to, reused for every range
    ledger: Ledger | None = None
    fd: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    ranges_ok: bool | None = None  # None until a 206 proves the server honours Range; False: it does not
    connections: int = 0
    failures: int = 0
    retry_at: float = 0.0
    verify_attempt: int = 1
    received: int = 0  # bytes received by this run
    window_started: float = 0.0  # throughput measurement: since when, and how much
    window_bytes: int = 0
    speed_per_connection: float | None = None  # bytes/s, measured over the last window
    resumed: int = 0
    saved_at: float = 0.0
    hashed: int = 0
    digest: object = None
    hash_queued: bool = False
    hash_done: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    published: bool = False  # verified and moved into place: its resume state must not come back
    started: bool = False  # FileStarted was reported
    file_lock: str | None = None  # the key of the BlobLocks lock that says "this process fetches it"
    waiting: bool = False  # another process holds the lock


class Transfers:
    """Fetch files into their partial paths; call `on_verified(file, partial, received)` for each good one."""

    def __init__(
        self,
        *,
        endpoint: str,
        token: str | None,
        sink: Sink,
        settings: TransferSettings,
        partial_path: Callable[[RemoteFile], Path],
        resolve_url: Callable[[RemoteFile, str], str],
        on_verified: Callable[[RemoteFile, Path, int], None],
        lock_path: Path | None = None,
        already_done: Callable[[RemoteFile], bool] = lambda file: False,
    ) -> None:
        self.endpoints = list(settings.endpoints or (endpoint,))
        self.endpoint_index = 0
        self.token = token
        self.sink = sink
        self.settings = settings
        self.partial_path = partial_path
        self.resolve_url = resolve_url
        self.on_verified = on_verified
        self.locks = BlobLocks.open(lock_path) if lock_path is not None else None
        self.already_done = already_done
        self.cancel = threading.Event()
        self.limiter = RateLimiter(settings.limit_rate, self.cancel) if settings.limit_rate else None
        self.policy = RetryPolicy(settings.retries)
        self.concurrency = Concurrency(settings.max_connections)
        self._busy = 0  # workers with work in hand
        self._paused_until = 0.0  # a 429's Retry-After: no new request before then
        self._trouble = 0  # evidence against the endpoint in use since its last good answer
        self._trouble_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: deque[_Task] = deque()
        self._running: list[_Task] = []
        self._hash_queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[RemoteFile, BaseException | int]] = queue.SimpleQueue()

    # -- the run -----------------------------------------------------------------------------------------------

    def run(self, files: list[RemoteFile]) -> tuple[list[FileDownloadError], int]:
        """Fetch every file; return the per-file failures and the bytes received. Raises on fatal errors."""
        settings = self.settings
        for file in files:
            self._pending.append(_Task(file, self.partial_path(file),
                                       large=file.size >= 2 * settings.min_split and settings.connections_per_file > 1))
        workers = min(settings.max_connections, sum(settings.connections_per_file if t.large else 1
                                                     for t in self._pending))
        self.client = make_client(connections=settings.max_connections, connect_timeout=settings.connect_timeout,
                                  stall_timeout=settings.stall_timeout)
        threads = [threading.Thread(target=self._worker, daemon=True, name=f"hfget-{i}") for i in range(workers)]
        threads.append(threading.Thread(target=self._hasher, daemon=True, name="hfget-hash"))
        for thread in threads:
            thread.start()
        failures: list[FileDownloadError] = []
        received = 0
        try:
            for _ in files:
                file, outcome = self._next_result()
                if isinstance(outcome, FileDownloadError):
                    failures.append(outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    received += outcome
        except BaseException as error:
            self._stop(threads)
            if isinstance(error, KeyboardInterrupt):
                raise InterruptedError_() from None
            raise
        self._stop(threads)
        return failures, received

    def _stop(self, threads: list[threading.Thread]) -> None:
        self.cancel.set()
        with self._cond:
            self._cond.notify_all()
        self._hash_queue.put(None)
        deadline = time.monotonic() + 0.5  # Ctrl-C must stop within a second; a thread stuck in a read is a daemon
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.client.close()
        if self.locks is not None:
            self.locks.close()
        for task in list(self._running):  # save what is known, hand the partials to the next run
            self._save_state(task, force=True)
            self._park(task)
            self._unlock(task)

    def _next_result(self):
        while True:  # short waits, so Ctrl-C reaches the main thread promptly
            try:
                return self._results.get(timeout=0.2)
            except queue.Empty:
                continue

    # -- scheduling --------------------------------------------------------------------------------------------

    def _next_work(self) -> tuple[_Task, Segment | None] | None:
        with self._cond:
            while not self.cancel.is_set():
                now = time.monotonic()
                if self._busy >= self.concurrency.current() or now < self._paused_until:  # 429s (AIMD)
                    self._cond.wait(min(0.25, max(0.01, self._paused_until - now)))
                    continue
                for task in self._running:  # 1. another connection for a running large file
                    if task.large and task.ledger is not None and not task.finished and task.retry_at <= now \
                            and task.connections < self._cap(task):
                        with task.lock:
                            segment = task.ledger.claim(allow_split=task.ranges_ok is True)
                        if segment is not None:
                            task.connections += 1
                            self._busy += 1
                            return task, segment
                if self._pending and len(self._running) < self.settings.jobs:  # 2. the next file
                    task = self._next_pending(now)
                    if task is not None:
                        self._running.append(task)
                        self._busy += 1
                        return task, None
                if not self._pending and not self._running:
                    return None
                self._cond.wait(0.25)
        return None

    def _next_pending(self, now: float) -> _Task | None:
        """The first waiting file whose retry time has come (files waiting to retry sit at the back)."""
        for index, task in enumerate(self._pending):
            if task.retry_at <= now:
                del self._pending[index]
                return task
        return None

    def _requeue(self, task: _Task, delay: float) -> None:
        """Give the worker back while this file waits to retry, so the scheduler keeps the limits."""
        task.retry_at = time.monotonic() + delay
        with self._cond:
            if task in self._running:
                self._running.remove(task)
            self._pending.append(task)
            self._cond.notify_all()

    def _cap(self, task: _Task) -> int:
        """Until a 206 proves that Range works, one connection (the probe); then one more at a time, up to
        --connections, while each connection runs slower than `split_below` (see TransferSettings)."""
        if not task.ranges_ok:
            return 1
        speed = task.speed_per_connection
        if speed is None:
            return max(1, task.connections)  # not measured yet: wait for the first window
        if speed >= self.settings.split_below:
            return max(1, task.connections)
        return min(self.settings.connections_per_file, task.connections + 1)

    def _done_with(self, task: _Task, outcome: BaseException | int) -> None:
        with self._cond:
            if task in self._running:
                self._running.remove(task)
            task.finished = True
            self._cond.notify_all()
        if isinstance(outcome, BaseException):
            self._park(task)
        self._unlock(task)
        self._results.put((task.file, outcome))

    # -- one process per file: advisory lock, and a partial of our own ------------------------------------------

    def _begin(self, task: _Task) -> str:
        """"go" once this process owns the file; "wait" while another process fetches it; "done" if it did."""
        if task.partial is not None:
            return "go"
        if task.file_lock is None and not self._lock(task):
            return "wait"
        if self.already_done(task.file):  # another process published it since the plan was made
            self._unlock(task)
            return "done"
        task.partial = _resume.claim(task.parked)
        return "go"

    def _lock(self, task: _Task) -> bool:
        if self.locks is None:
            return True
        if self.locks.try_lock(task.file.etag):
            task.file_lock = task.file.etag
            return True
        if not task.waiting:
            task.waiting = True
            self.sink.handle(FileRetried(task.file.path, "another process is fetching it: waiting for it"))
        return False

    def _unlock(self, task: _Task) -> None:
        key, task.file_lock = task.file_lock, None
        if key is not None and self.locks is not None:
            self.locks.unlock(key)

    def _park(self, task: _Task) -> None:
        if task.partial is not None and not task.published:
            try:
                _resume.park(task.partial, task.parked)
            except OSError:
                pass

    def _worker(self) -> None:
        while (work := self._next_work()) is not None:
            task, segment = work
            try:
                if not task.large:
                    outcome = self._fetch_small(task)
                    if outcome is not None:
                        self._done_with(task, outcome)
                elif segment is None:
                    self._start_large(task)
                else:
                    self._run_segment(task, segment)
            except BaseException as error:
                if isinstance(error, OSError) and not isinstance(error, HfgetError):
                    error = _storage_error(error, task)
                if task.large:
                    self._fail_large(task, error)
                else:
                    self._done_with(task, error)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify()

    # -- small files: one request, front to back, hashed inline -------------------------------------------------

    def _fetch_small(self, task: _Task) -> int | None:
        """Fetch and publish a small file; None if it went back to the queue to retry later."""
        state = self._begin(task)
        if state == "wait":
            self._requeue(task, 0.5)
            return None
        if state == "done":
            return 0
        file, partial = task.file, task.partial
        if not task.started:
            task.started = True
            on_disk = _size(partial)
            self.sink.handle(FileStarted(file.path, file.size, on_disk if on_disk and on_disk <= file.size else 0))
        while True:
            try:
                task.received += self._stream_small(task)
            except VerificationError as error:
                _resume.discard(partial)
                if task.verify_attempt == 2:
                    raise _twice(file, error) from None
                task.verify_attempt = 2
                self.sink.handle(FileRetried(file.path, error.message))
                continue
            except _Transient as error:
                task.received += error.received
                if error.status != 429:
                    task.failures += 1
                self._requeue(task, self._after_failure(task, error, task.failures))
                return None
            self.on_verified(file, partial, task.received)
            return task.received

    def _stream_small(self, task: _Task) -> int:
        import httpx2

        file, partial = task.file, task.partial
        content = ContentHash(file)
        offset = _size(partial)
        if offset is None or offset > file.size:
            with open(partial, "wb"):  # a fresh (or untrustworthy) partial
                offset = 0
        elif offset:
            content.update_from_file(partial, offset)
        if offset == file.size:
            return _verified(content, 0)
        received = 0
        try:
            response = self._open(task, f"bytes={offset}-" if offset else None)
            try:
                start = self._check_reply(response, file, offset, None)
                if start == 0 and offset:
                    content = ContentHash(file)  # the server ignored Range: start again
                with open(partial, "r+b", buffering=0) as out:
                    out.truncate(start)
                    out.seek(start)
                    for chunk in response.iter_raw():
                        if self.cancel.is_set():
                            raise InterruptedError_()
                        if content.length + len(chunk) > file.size:
                            raise _too_long(file)
                        out.write(chunk)
                        content.update(chunk)
                        received += len(chunk)
                        self._count(file, len(chunk))
            finally:
                response.close()
        except httpx2.TransportError as error:
            raise _from_transport(error, received) from None
        if content.length < file.size:
            raise _Transient(f"connection closed at {content.length} of {file.size} bytes", received=received)
        return _verified(content, received)

    # -- large files: ranges over several connections -----------------------------------------------------------

    def _start_large(self, task: _Task) -> None:
        state = self._begin(task)
        if state == "wait":
            self._requeue(task, 0.5)
            return
        if state == "done":
            self._done_with(task, 0)
            return
        file = task.file
        ledger = Ledger(file.size, _resume.load(task.partial, file), min_split=self.settings.min_split)
        task.resumed = ledger.done_bytes
        _resume.save(task.partial, file, ledger.done)  # before the partial is written at any offset
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
        task.fd = os.open(task.partial, flags, 0o644)
        if os.fstat(task.fd).st_size != file.size:
            os.ftruncate(task.fd, file.size)  # sparse: never more than the file's size on disk
        task.digest = ContentHash(file)
        self.sink.handle(FileStarted(file.path, file.size, task.resumed))
        if ledger.complete:  # a previous run wrote every byte but was stopped before publishing
            task.ledger = ledger
            self._finish_large(task)
            return
        with self._cond:  # the ledger becomes visible to other workers with its probe already claimed
            segment = ledger.claim(allow_split=False)
            task.ledger = ledger
            task.connections = 1
        self._run_segment(task, segment)

    def _run_segment(self, task: _Task, segment: Segment) -> None:
        import httpx2

        file = task.file
        try:
            asked_end = segment.end  # a split may move segment.end down while the request is in flight
            response = self._open(task, segment.http_range())
            try:
                self._check_reply(response, file, segment.position, asked_end)
                if response.status_code == 200:  # the whole body: the server ignores Range
                    if task.ranges_ok:
                        raise _Transient("the server ignored Range this time", mirror_fault=1)
                    segment = self._one_stream(task)
                elif not task.ranges_ok:
                    with self._cond:
                        task.ranges_ok = True
                        self._cond.notify_all()  # other connections may join now
                self._write_ranges(task, segment, response)
            finally:
                response.close()
        except httpx2.TransportError as error:
            self._segment_failed(task, segment, _from_transport(error, 0))
            return
        except _Transient as error:
            self._segment_failed(task, segment, error)
            return
        except BaseException:
            self._release(task, segment)
            raise
        if segment.position < segment.end:
            self._segment_failed(task, segment, _Transient(
                f"connection closed at byte {segment.position}, range ended at {segment.end}"))
            return
        self._release(task, segment)
        with task.lock:
            complete = task.ledger.complete and not task.finished
            if complete:
                task.finished = True  # exactly one connection finishes the file
        if complete:
            self._finish_large(task)

    def _one_stream(self, task: _Task) -> Segment:
        """The server sent the whole body: forget the ranges, write it front to back on this connection."""
        with task.lock:
            task.ledger.reset()
            segment = task.ledger.claim(allow_split=False)
            task.ranges_ok = False
            task.resumed = 0
            task.hashed, task.digest = 0, ContentHash(task.file)
        return segment

    def _write_ranges(self, task: _Task, segment: Segment, response: "httpx2.Response") -> None:
        file, fd, ledger = task.file, task.fd, task.ledger
        for chunk in response.iter_raw():
            if self.cancel.is_set():
                raise InterruptedError_()
            with task.lock:
                room = segment.end - segment.position
                if room <= 0:
                    break  # another connection took over the rest of this range
                if len(chunk) > room:
                    if segment.end == file.size:
                        raise _too_long(file)
                    chunk = chunk[:room]
                _pwrite(fd, chunk, segment.position)
                before = ledger.contiguous_prefix()
                ledger.record(segment, len(chunk))
                grew = ledger.contiguous_prefix() - before
            task.received += len(chunk)
            task.failures = 0  # bytes arrive: the file's retry budget starts again
            self._measure(task, len(chunk))
            self._count(file, len(chunk))
            if grew and ledger.contiguous_prefix() - task.hashed >= _HASH_BLOCK or ledger.complete:
                self._queue_hash(task)
            self._save_state(task)

    def _measure(self, task: _Task, nbytes: int) -> None:
        now = time.monotonic()
        if not task.window_started:
            task.window_started = now
        task.window_bytes += nbytes
        elapsed = now - task.window_started
        # the first window is short, so a capped link gets its extra connections early
        if elapsed >= (0.25 if task.speed_per_connection is not None else 0.1):
            task.speed_per_connection = task.window_bytes / elapsed / max(1, task.connections)
            task.window_started, task.window_bytes = now, 0
            if task.connections < self._cap(task):
                with self._cond:
                    self._cond.notify_all()  # idle workers may join this file now

    def _segment_failed(self, task: _Task, segment: Segment, error: _Transient) -> None:
        self._release(task, segment)
        task.failures += 1
        try:
            delay = self._after_failure(task, error, task.failures)
        except FileDownloadError as final:
            self._fail_large(task, final)
            return
        task.retry_at = time.monotonic() + delay

    def _after_failure(self, task: _Task, error: _Transient, attempt: int) -> float:
        """Decide on a transient failure: the delay before trying again, or a final FileDownloadError."""
        path = task.file.path
        if error.status == 429:  # the whole run slows down: not this file's fault, not its budget
            if not self.policy.spend():
                raise FileDownloadError(path, f"{path}: still rate limited after the run's retries.",
                                        hint="Wait a few minutes, then run the command again to resume.")
            delay = self.policy.delay(attempt, error.headers)
            allowed = self.concurrency.rate_limited()
            with self._cond:
                self._paused_until = max(self._paused_until, time.monotonic() + delay)
            self.sink.handle(FileRetried(path, f"{error}: rate limited, {allowed} requests at once now, "
                                               f"pausing {delay:.1f}s"))
            return delay
        switched = self._mirror_trouble(error) if error.mirror_fault else False
        if error.missing and not switched:
            raise FileDownloadError(path, f"{path}: listed, but {self.endpoint} answers 404 for it.",
                                    hint="The mirror may be out of date: try again later or add another --mirror.")
        if attempt > self.settings.retries or not self.policy.spend():
            raise FileDownloadError(path, f"{path}: {error} (after {attempt} attempts).",
                                    hint="Run the command again to resume from the bytes on disk.")
        delay = 0.0 if switched else self.policy.delay(attempt, error.headers)
        self.sink.handle(FileRetried(path, f"{error}; retrying in {delay:.1f}s"))
        return delay

    # -- the endpoint in use, and failing over to the next mirror ------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.endpoints[self.endpoint_index]

    def _mirror_trouble(self, error: _Transient) -> bool:
        """Count evidence against the endpoint; at 3 points move the rest of the run to the next mirror."""
        with self._trouble_lock:
            self._trouble += error.mirror_fault
            if self._trouble < 3 or self.endpoint_index + 1 >= len(self.endpoints):
                return False
            old = self.endpoint
            self.endpoint_index += 1
            self._trouble = 0
        for task in list(self._running) + list(self._pending):
            task.location = None  # CDN links came from the old mirror
        self.sink.handle(MirrorSwitched(old, self.endpoint, str(error)))
        return True

    def _endpoint_answered(self) -> None:
        if self._trouble:
            with self._trouble_lock:
                self._trouble = 0

    def _release(self, task: _Task, segment: Segment) -> None:
        with task.lock:
            task.ledger.release(segment)
        with self._cond:
            task.connections = max(0, task.connections - 1)
            self._cond.notify_all()
        self._save_state(task, force=True)

    def _save_state(self, task: _Task, *, force: bool = False) -> None:
        now = time.monotonic()
        if task.ledger is None or (not force and now - task.saved_at < _SAVE_EVERY):
            return
        task.saved_at = now
        with task.lock:  # under the lock, so it cannot land after the file was published
            if task.published:
                return
            try:
                _resume.save(task.partial, task.file, task.ledger.done)
            except OSError:
                pass  # the next save may succeed; the partial itself is intact

    def _finish_large(self, task: _Task) -> None:
        self._queue_hash(task)
        while not task.hash_done.wait(0.2):
            if self.cancel.is_set():
                raise InterruptedError_()
        os.close(task.fd)
        task.fd = None
        try:
            _verified(task.digest, 0)
        except VerificationError as error:
            _resume.discard(task.partial)
            if task.verify_attempt == 2:
                self._done_with(task, _twice(task.file, error))
                return
            self.sink.handle(FileRetried(task.file.path, error.message, discarded=task.file.size))
            self._restart(task)
            return
        with task.lock:
            task.published = True
            _resume.state_path(task.partial).unlink(missing_ok=True)
        self.on_verified(task.file, task.partial, task.received)
        self._done_with(task, task.received)

    def _restart(self, task: _Task) -> None:
        fresh = _Task(task.file, task.parked, large=True, verify_attempt=2, received=task.received,
                      file_lock=task.file_lock)
        task.file_lock = None
        with self._cond:
            if task in self._running:
                self._running.remove(task)
            task.finished = True
            self._pending.appendleft(fresh)
            self._cond.notify_all()

    def _fail_large(self, task: _Task, error: BaseException) -> None:
        with task.lock:
            if task.finished:
                return
            task.finished = True
            if task.ledger is not None:
                for segment in task.ledger.active:
                    segment.end = segment.position  # stop its other connections
        self._save_state(task, force=True)
        if task.fd is not None:
            try:
                os.close(task.fd)
            except OSError:
                pass
        self._done_with(task, error)

    # -- hashing the contiguous prefix, beside the network --------------------------------------------------------

    def _queue_hash(self, task: _Task) -> None:
        with task.lock:
            if task.hash_queued:
                return
            task.hash_queued = True
        self._hash_queue.put(task)

    def _hasher(self) -> None:
        while (task := self._hash_queue.get()) is not None:
            with task.lock:
                task.hash_queued = False
                target = task.ledger.contiguous_prefix()
                digest, fd = task.digest, task.fd
            while task.hashed < target and fd is not None:
                try:
                    block = _pread(fd, min(_HASH_BLOCK, target - task.hashed), task.hashed)
                except OSError:
                    break
                if not block or digest is not task.digest:
                    break  # the file was reset under us (a server that ignores Range)
                digest.update(block)
                task.hashed += len(block)
            if task.hashed >= task.file.size:
                task.hash_done.set()

    # -- one HTTP exchange ---------------------------------------------------------------------------------------

    def _open(self, task: _Task, range_header: str | None) -> "httpx2.Response":
        """GET with Range, following redirects; the token only ever goes to the endpoint's origin."""
        endpoint = self.endpoint
        endpoint_origin = _origin(endpoint)
        url = task.location or self.resolve_url(task.file, endpoint)
        for _ in range(_MAX_REDIRECTS):
            headers = {"Range": range_header} if range_header else {}
            if self.token and _origin(url) == endpoint_origin:
                headers["Authorization"] = f"Bearer {self.token}"
            response = self.client.send(self.client.build_request("GET", url, headers=headers), stream=True)
            location = response.headers.get("Location")
            if response.is_redirect and location:
                response.close()
                url = urljoin(url, location)
                if _origin(url) != endpoint_origin:
                    task.location = url  # the CDN: reuse it for the other ranges of this file
                continue
            if response.status_code >= 400:
                self._raise_for_status(response, task, on_endpoint=_origin(url) == endpoint_origin)
            self._endpoint_answered()
            return response
        raise FileDownloadError(task.file.path, f"{task.file.path}: too many redirects.")

    def _raise_for_status(self, response: "httpx2.Response", task: _Task, *, on_endpoint: bool) -> None:
        status, host, path = response.status_code, response.url.host, task.file.path
        headers = response.headers  # case-insensitive, still readable once closed
        response.close()
        if status in RETRY_STATUSES:
            raise _Transient(f"HTTP {status} from {host}", status=status, headers=headers,
                             mirror_fault=1 if status >= 500 else 0)
        if status in (401, 403) and on_endpoint:
            raise AuthError(f"{path}: the endpoint refused access ({status}).",
                            hint="Pass a token with --token or HF_TOKEN that may read this repo.")
        if status in (401, 403, 410):  # a signed CDN URL that expired: resolve again
            task.location = None
            raise _Transient(f"HTTP {status} from {host} (expired link, resolving again)", status=status)
        if status == 404 and on_endpoint:
            raise _Transient(f"HTTP 404 from {host}", status=status, mirror_fault=3, missing=True)
        if status == 404:  # the CDN lost it: the Hub may point elsewhere next time
            task.location = None
            raise _Transient(f"HTTP 404 from {host}", status=status, mirror_fault=1)
        if status == 416:
            raise FileDownloadError(path, f"{path}: the server has fewer bytes than the {task.file.size} listed.")
        raise FileDownloadError(path, f"{path}: HTTP {status} from {host}.")

    def _check_reply(self, response: "httpx2.Response", file: RemoteFile, offset: int, end: int | None) -> int:
        """Where the body starts in the file; raise if the reply does not fit what was asked."""
        if response.status_code == 206:
            content_range = response.headers.get("Content-Range", "")
            unit, _, rest = content_range.partition(" ")
            span, _, total = rest.partition("/")
            first, _, last = span.partition("-")
            fits = (unit == "bytes" and first.isdigit() and int(first) == offset
                    and total in ("*", str(file.size))
                    and (end is None or (last.isdigit() and int(last) < end)))
            if not fits:
                response.close()
                raise FileDownloadError(file.path, f"{file.path}: asked for bytes {offset}-"
                                        f"{'' if end is None else end - 1}, the server answered {content_range!r}.")
            return offset
        if response.status_code == 200:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != file.size:
                response.close()
                raise FileDownloadError(file.path, f"{file.path}: the server sends {length} bytes, "
                                        f"the listing says {file.size}.")
            return 0
        response.close()
        raise FileDownloadError(file.path, f"{file.path}: unexpected HTTP {response.status_code}.")

    # -- small helpers -------------------------------------------------------------------------------------------

    def _count(self, file: RemoteFile, nbytes: int) -> None:
        self.sink.advance(file.path, nbytes)
        if self.limiter is not None:
            self.limiter.consume(nbytes)

    def _sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise InterruptedError_()


def _verified(content: ContentHash, received: int) -> int:
    if not content.matches():
        raise VerificationError(
            content.file.path,
            f"{content.algorithm} {content.hexdigest()[:12]}… does not match the listing's {content.expected[:12]}…",
        )
    return received


def _twice(file: RemoteFile, error: HfgetError) -> VerificationError:
    return VerificationError(file.path, f"{file.path}: {error.message}; fetched twice, discarded.",
                             hint="The endpoint serves wrong bytes: try another --mirror.")


def _too_long(file: RemoteFile) -> FileDownloadError:
    return FileDownloadError(file.path, f"{file.path}: the server sent more than the {file.size} bytes listed; "
                             "discarded.")


if hasattr(os, "pwrite"):
    _pwrite, _pread = os.pwrite, os.pread
else:  # Windows: seek and write under the file's lock (writers hold it; see _write_ranges)
    _POSITIONED = threading.Lock()

    def _pwrite(fd: int, data, offset: int) -> int:
        with _POSITIONED:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.write(fd, data)

    def _pread(fd: int, size: int, offset: int) -> bytes:
        with _POSITIONED:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, size)


def _storage_error(error: OSError, task: _Task) -> StorageError:
    import errno

    where = task.partial or task.parked
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"No space left on the device while writing {task.file.path} ({where.parent}).",
                            hint="Free some space, then run the same command again: the partial file is kept.")
    return StorageError(f"Cannot write {where}: {error.strerror or error}.",
                        hint="Check the permissions and free space of the target folder.")


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _from_transport(error: Exception, received: int) -> _Transient:
    """httpx2's transport errors, weighed as evidence against the endpoint (connect and stall weigh most)."""
    import httpx2

    name = type(error).__name__
    if isinstance(error, (httpx2.ConnectError, httpx2.ConnectTimeout)):
        return _Transient(f"cannot connect ({name}: {error})", received=received, mirror_fault=2)
    if isinstance(error, httpx2.ReadTimeout):
        return _Transient("stalled: no byte for the --stall-timeout", received=received, mirror_fault=2)
    return _Transient(f"{name}: {error or 'connection lost'}", received=received)


