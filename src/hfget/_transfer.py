"""File bodies over HTTP: worker threads over one `httpx2.Client`, each file fetched, verified and handed over.

Threads, not asyncio, and HTTP/1.1: measured, httpx2's sync client in threads moves bytes with less CPU per byte,
and costs less per request too (2,000 GETs of 8 KiB from the test Hub: 1.6 s of CPU with the sync client, 2.5 s
with httpx2's AsyncClient on one event loop); file writes and hashing release the GIL anyway. Each worker has its
own client (_exchange.ThreadClients), so workers do not queue on one connection pool's lock. HTTP/2 (h2) would
multiplex small files over one connection where a server offers it, but what bounds a run of thousands of small
files here is CPU per request, not connections or round trips, and h2 adds its own framing work in Python to
httpx2's. Measured (nginx 1.22 over TLS on this machine, no added latency, 2,000 GETs of 8 KiB from 32 threads):
HTTP/1.1 with a client per thread 2.34-2.61 s of CPU, HTTP/2 with the threads' streams on one shared client
2.75-2.91 s (+12-18%), slower in wall time too; with 8 threads 1.98 against 2.70 s. It is not used. What does
help is a second process: with many small files, half of them go to a helper (_fanout.py, called by the engine).

    Transfers.run(files)
      workers ask the Scheduler (_schedule.py) for work, then fetch a small file (_small.py: one GET, front to
      back, hashed inline) or a large one's range (_large.py: ranges over several connections, written in place,
      hashed beside the network by the PrefixHasher of _verify.py); each exchange is _exchange.py's.
      Before a file's first byte this process must own it (_ownership.py: a blob lock, a partial of its own).
      A transient failure is retried from the bytes on disk, with the run's RetryPolicy (_retry.py); the
      evidence against the endpoint asked goes to the mirror selector (_mirrors.py), which may drop it for the
      run. With several mirrors serving the commit, each range of a large file goes to the mirror _spread.py
      chooses; small files and each large file's first range go to the endpoint in use.

The caller hears of each verified file through `on_verified(file, partial, received)` (it publishes it) and
gets back the per-file failures; anything else (authentication, storage, a bug) stops the run.

`on_written(file, partial, prefix)`, if given, hears while a file is fetched that its partial file at `partial`
holds its first `prefix` bytes (not yet verified). It is called under the file's lock, so for one partial the
prefix never goes down; a report with another partial or a smaller prefix means the bytes before were discarded
(a hash mismatch, a server that ignored Range). Small files report after every block written front to back,
large ones whenever the contiguous prefix of their ranges grows. `hfget serve` streams files to its clients
from it; it must return quickly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import _large, _memory, _ownership, _small
from ._diskio import storage_error
from ._errors import FileDownloadError
from ._events import FileRetried, Sink
from ._exchange import Exchange, Transient
from ._mirrors import Mirrors
from ._models import RemoteFile
from ._ownership import BlobLocks, Claim
from ._retry import RetryPolicy
from ._schedule import RateLimiter, Scheduler
from ._spread import Spread
from ._task import Cancelled, State, Task
from ._verify import PrefixHasher

if TYPE_CHECKING:
    from ._options import Options

# A file gets another connection only while its connections each run slower than this. Where a mirror or CDN
# caps each stream, more connections multiply throughput; where one stream already runs this fast, the limit
# is the machine (CPU, disk) and more connections only cost (measured: benchmarks/bench.py).
SPLIT_BELOW = 64e6
CAPPED_WAIT = 0.25  # seconds before a file asks again for a connection to a host at its limit


OnWritten = Callable[[RemoteFile, Path, int], None]  # (file, its partial, bytes written from 0)


@dataclass(frozen=True)
class Destination:
    """What the transfer layer needs of the target (see _cache.py)."""

    partial_path: Callable[[RemoteFile], Path]
    resolve_url: Callable[[RemoteFile, str], str]
    on_verified: Callable[[RemoteFile, Path, int], None]
    already_done: Callable[[RemoteFile], bool]  # another process published it meanwhile
    lock_path: Path | None = None
    on_written: OnWritten | None = None  # see the module docstring


Outcome = tuple[Task, BaseException | int]


class Transfers:
    """Fetch files into their partial paths; hand each verified one to `destination.on_verified`."""

    def __init__(self, *, mirrors: Mirrors, token: str | None, sink: Sink, options: Options,
                 destination: Destination) -> None:
        self.mirrors = mirrors
        self.token = token
        self.sink = sink
        self.options = options
        self.destination = destination
        self.cancel = threading.Event()
        self.policy = RetryPolicy(options.retries)
        self.spread = Spread(mirrors)  # which mirror each range of a large file is asked from
        self.scheduler = Scheduler(jobs=options.files_in_flight, max_connections=options.max_connections,
                                   per_file=options.connections_per_file, split_below=SPLIT_BELOW,
                                   cancel=self.cancel)
        self.limiter = RateLimiter(options.limit_rate, self.cancel) if options.limit_rate else None
        self.hasher = PrefixHasher()
        self.locks: BlobLocks | None = None
        self.exchange: Exchange
        # outcomes are gathered under a lock and the main thread is woken once, when all are in or one is fatal:
        # a wake-up per file (a queue) cost a thread switch and a GIL hand-over for every small file
        self._outcomes: list[Outcome] = []
        self._expected = 0
        self._outcomes_lock = threading.Lock()
        self._all_in = threading.Event()
        self._aborted: BaseException | None = None  # an error from outside that ends the run (abort)

    # -- the run -----------------------------------------------------------------------------------------------

    def run(self, files: list[RemoteFile]) -> tuple[list[FileDownloadError], int]:
        """Fetch every file; return the per-file failures and the bytes received. Raises on fatal errors."""
        tasks = [self._task(file) for file in files]
        workers = self._workers(tasks)
        self.exchange = Exchange.start(self.options, self.mirrors, self.token, self.destination.resolve_url,
                                       self.sink)
        lock_path = self.destination.lock_path
        self.locks = BlobLocks.open(lock_path) if lock_path is not None else None
        started: list[threading.Thread] = []
        try:  # from the locks' opening on, whatever happens ends in _stop (which closes them)
            self.scheduler.add(tasks)
            threads = [threading.Thread(target=self._worker, daemon=True, name=f"hfget-worker-{i}")
                       for i in range(workers)]
            if workers > 1:
                _memory.limit_arenas()  # before the threads' first allocations (only in the CLI's process)
            for thread in threads:
                thread.start()
                started.append(thread)
            return self._collect(len(tasks))
        finally:
            self._stop(started)

    def _workers(self, tasks: list[Task]) -> int:
        """As many threads as can have work at once: the files in flight (`jobs`, the largest first), each with
        its connections, within the run's connection budget. An idle worker only waits; more of them than the
        files in flight allow would each wake for every file finished."""
        per_file = self.options.connections_per_file
        wanted = sorted((per_file if task.large else 1 for task in tasks), reverse=True)
        return min(self.options.max_connections, sum(wanted[:self.options.files_in_flight]))

    def _task(self, file: RemoteFile) -> Task:
        return Task(file, self.destination.partial_path(file), self.options.splits(file.size))

    def _collect(self, count: int) -> tuple[list[FileDownloadError], int]:
        with self._outcomes_lock:
            self._expected = count
            if len(self._outcomes) >= count:
                self._all_in.set()
        while not self._all_in.wait(0.2):  # short waits, so Ctrl-C reaches the main thread promptly
            pass
        if self._aborted is not None:
            raise self._aborted
        failures: list[FileDownloadError] = []
        received = 0
        with self._outcomes_lock:
            outcomes = list(self._outcomes)
        for _, outcome in outcomes:
            if isinstance(outcome, FileDownloadError):
                failures.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                received += outcome
        return failures, received

    def abort(self, error: BaseException) -> None:
        """End the run with `error` (raised by `run`), as a fatal error of a worker would (any thread may call it)."""
        self._aborted = error
        self._all_in.set()

    def _stop(self, threads: list[threading.Thread]) -> None:
        self.cancel.set()
        self.scheduler.wake()
        self.hasher.stop()
        deadline = time.monotonic() + 0.5  # Ctrl-C must stop within a second; a thread stuck in a read is a daemon
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.exchange.close()
        for task in self.scheduler.unfinished():  # save what is known, hand the partials to the next run
            self.save_state(task)
            _large.close(task)
            with task.lock:
                task.try_move(State.STOPPED)
            self.release(task)
        if self.locks is not None:
            self.locks.close()

    def _worker(self) -> None:
        while (work := self.scheduler.next_work()) is not None:
            task, segment = work
            try:
                if not task.large:
                    _small.fetch(self, task)
                elif segment is None:
                    _large.start(self, task)
                else:
                    _large.run_segment(self, task, segment)
            except Cancelled:
                pass
            except Exception as error:
                if isinstance(error, OSError):
                    error = storage_error(error, task.partial or task.parked)
                _large.fail(self, task, error) if task.large else self.finish(task, error)
            finally:
                self.scheduler.worker_free()

    # -- what workers share ------------------------------------------------------------------------------------

    def finish(self, task: Task, outcome: BaseException | int) -> None:
        """The file is done with, for good: published (bytes received) or failed (the error)."""
        with task.lock:
            if isinstance(outcome, BaseException):
                task.try_move(State.FAILED)
        self.scheduler.retire(task)
        self.release(task)
        with self._outcomes_lock:
            self._outcomes.append((task, outcome))
            fatal = isinstance(outcome, BaseException) and not isinstance(outcome, FileDownloadError)
            if fatal or (self._expected and len(self._outcomes) >= self._expected):
                self._all_in.set()

    def own(self, task: Task) -> bool:
        """True once this process owns the file; else the file waits for another process, or is done."""
        claim = self.begin(task)
        if claim is Claim.WAIT:
            self.scheduler.requeue(task, 0.5)
        elif claim is Claim.DONE:
            task.move(State.PUBLISHED)
            self.finish(task, 0)
        return claim is Claim.GO

    def begin(self, task: Task) -> Claim:
        """GO once this process owns the file; WAIT while another process fetches it; DONE if it did."""
        if task.partial is not None:
            return Claim.GO
        if task.blob_lock is None and not self._lock(task):
            return Claim.WAIT
        if self.destination.already_done(task.file):  # another process published it since the plan was made
            self._unlock(task)
            return Claim.DONE
        task.partial = _ownership.claim(task.parked)
        return Claim.GO

    def _lock(self, task: Task) -> bool:
        if self.locks is None:
            return True
        if self.locks.try_lock(task.file.etag):
            task.blob_lock = task.file.etag
            return True
        if task.first_time("waiting"):
            self.sink.handle(FileRetried(task.file.path, "another process is fetching it: waiting for it"))
        return False

    def _unlock(self, task: Task) -> None:
        key, task.blob_lock = task.blob_lock, None
        if key is not None and self.locks is not None:
            self.locks.unlock(key)

    def release(self, task: Task) -> None:
        """Park an unpublished partial for the next run and let other processes have the blob; for a large file this
        run published, drop what another process parked for it meanwhile (_ownership.drop_parked), lock held."""
        with task.lock:
            if task.journal is not None:
                task.journal.close()
        try:
            if task.partial is not None and task.state is not State.PUBLISHED:
                _ownership.park(task.partial, task.parked)
            elif task.partial is not None and task.large:  # published by this run (not found done meanwhile)
                _ownership.drop_parked(task.parked)
        except OSError:
            pass
        self._unlock(task)

    def save_state(self, task: Task) -> None:
        """Compact the resume journal to the ranges done (it records every write as it happens; see _resume.py)."""
        with task.lock:  # under the lock, so it cannot land after the file was published or parked
            if task.journal is None or task.ledger is None or task.state not in (State.RUNNING, State.VERIFYING):
                return
            try:
                task.journal.compact(task.ledger.done)
            except OSError:
                pass  # the journal as it stands is still true; the partial itself is intact

    def written(self, task: Task, prefix: int) -> None:
        """Tell `on_written` how far the partial holds the file from byte 0 (the caller holds the file's lock,
        or is the only writer)."""
        hook = self.destination.on_written
        if hook is not None and task.partial is not None:
            hook(task.file, task.partial, prefix)

    def count(self, file: RemoteFile, nbytes: int) -> None:
        self.sink.advance(file.path, nbytes)
        if self.limiter is not None:
            self.limiter.consume(nbytes)

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def retry_delay(self, task: Task, error: Transient) -> float:
        """Decide on a transient failure: the delay before trying again, or raise a final FileDownloadError."""
        path = task.file.path
        if error.capped:  # the host limits connections: wait for a slot, at no cost to the file (see _hosts.py)
            return CAPPED_WAIT
        if error.status == 429:  # the whole run slows down: not this file's fault, not its budget
            if not self.policy.spend():
                raise FileDownloadError(path, f"{path}: still rate limited after the run's retries.",
                                        hint="Wait a few minutes, then run the command again to resume.")
            delay = self.policy.delay(task.failures or 1, error.headers)
            allowed = self.scheduler.pause(delay)
            self.sink.handle(FileRetried(path, f"{error}: rate limited, {allowed} requests at once now, "
                                               f"pausing {delay:.1f}s"))
            return delay
        endpoint = error.endpoint or self.mirrors.current
        if not self.mirrors.healthy(endpoint):
            return 0.0  # it came from a mirror the run has dropped: try the others, at no cost and no blame
        task.failures += 1
        switched = self.mirrors.blame(error.blame, str(error), endpoint) if error.blame else False
        if error.missing and not switched:
            raise FileDownloadError(path, f"{path}: listed, but {endpoint} answers 404 for it.",
                                    hint="The mirror may be out of date: try again later or add another --mirror.")
        if task.failures > self.options.retries or not self.policy.spend():
            raise FileDownloadError(path, f"{path}: {error} (after {task.failures} attempts).",
                                    hint="Run the command again to resume from the bytes on disk.")
        delay = 0.0 if switched else self.policy.delay(task.failures, error.headers)
        self.sink.handle(FileRetried(path, f"{error}; retrying in {delay:.1f}s"))
        return delay

