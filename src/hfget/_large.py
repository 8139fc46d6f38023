"""A large file: byte ranges over several connections, written in place into one sparse partial.

    start        claim the file, load the ledger from the resume sidecar, open the partial at its final size,
                 send the first ranged GET (the probe: the file's first piece)
    run_segment  one connection's pieces, in file order (_pieces.py), each a bounded request to the mirror
                 _spread.py chose, the next asked on the same keep-alive connection: a 206 proves Range works
                 and lets others join (Task.cap); a 200 means the server ignores Range, so the file becomes one
                 stream from byte 0; a piece whose mirror is dropped mid-way stops there and gives back the rest
    finish       once every byte is written: wait for the prefix hasher, verify, publish (or fetch once more)

Writes go through `pwrite` under the task's lock, which also guards the ledger and the resume journal: each
write is journalled as it returns (_resume.py), so a kill loses only the bytes in flight. A connection that
fails gives its range back and the file waits `retry_at` before another connection starts on it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from . import _resume
from ._diskio import pwrite
from ._errors import FileDownloadError, VerificationError
from ._events import FileRetried, FileStarted
from ._exchange import Transient, check_reply, chunks, sent_by
from ._pieces import MIN_SPLIT, Ledger, Segment
from ._small import too_long, twice
from ._task import RangeSupport, State, Task
from ._verify import ContentHash, HashJob, PrefixHasher, mismatch

if TYPE_CHECKING:
    import httpx2

    from ._transfer import Transfers


def start(run: Transfers, task: Task) -> None:
    if not run.own(task):
        return
    ledger = _open(run, task)
    run.sink.handle(FileStarted(task.file.path, task.file.size, task.resumed))
    if ledger.complete:  # a previous run wrote every byte but was stopped before publishing
        with task.lock:
            task.ledger = ledger
            task.move(State.RUNNING)
            task.move(State.VERIFYING)
        finish(run, task)
        return
    with task.lock:  # the ledger becomes visible to other workers with its probe already claimed
        segment = ledger.claim(ledger.piece_size(None), allow_split=False)
        task.ledger = ledger
        task.connections = 1
        task.move(State.RUNNING)
        run.written(task, ledger.contiguous_prefix())
    assert segment is not None
    run_segment(run, task, segment, probe=True)


def _open(run: Transfers, task: Task) -> Ledger:
    file, partial = task.file, task.partial
    assert partial is not None
    ledger = Ledger(file.size, _resume.load(partial, file), min_split=MIN_SPLIT)
    task.resumed = ledger.done_bytes
    task.journal = _resume.Journal(partial, file, ledger.done)  # before the partial is written at any offset
    task.fd = os.open(partial, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)  # less the umask
    if os.fstat(task.fd).st_size != file.size:
        os.ftruncate(task.fd, file.size)  # sparse: never more than the file's size on disk
    task.hash_job = _hash_job(task, ledger)
    return ledger


def _hash_job(task: Task, ledger: Ledger) -> HashJob:
    assert task.fd is not None

    def prefix() -> int:
        with task.lock:
            return ledger.contiguous_prefix()

    return HashJob(task.fd, ContentHash(task.file), prefix)


def run_segment(run: Transfers, task: Task, segment: Segment, *, probe: bool = False) -> None:
    """Fetch pieces of the file on one connection, each from where _spread.py says (a probe: the endpoint in
    use), the next one claimed when one is done, so the keep-alive connection is reused (see _pieces.py)."""
    piece: Segment | None = segment
    while piece is not None:
        if not _fetch(run, task, piece, probe=probe):
            return
        probe = False
        piece = _next_piece(run, task, piece)


def _fetch(run: Transfers, task: Task, segment: Segment, *, probe: bool) -> bool:
    """One request for `segment`; True when all of it is written, else the segment was given back."""
    endpoint = run.spread.choose(run.mirrors.current if probe else None)
    try:
        asked_end = segment.end  # a split may move segment.end down while the request is in flight
        response = run.exchange.open(task.file, task.link_to(endpoint), segment.http_range(), endpoint)
        try:
            check_reply(response, task.file, segment.position, asked_end)
            segment = _range_support(run, task, segment, response.status_code)
            _write(run, task, segment, response, endpoint)
        finally:
            response.close()
    except Transient as error:
        _segment_failed(run, task, segment, sent_by(endpoint, error))  # a body cut mid-way: its sender
        return False
    except BaseException:
        _release(run, task, segment)
        raise
    finally:
        run.spread.closed(endpoint)
    if segment.position < segment.end and not run.mirrors.healthy(endpoint):
        _release(run, task, segment)  # the mirror was dropped (it failed or lagged): the rest goes elsewhere
        return False
    if segment.position < segment.end:
        _segment_failed(run, task, segment, Transient(
            f"connection closed at byte {segment.position}, range ended at {segment.end}", endpoint=endpoint))
        return False
    return True


def _next_piece(run: Transfers, task: Task, done: Segment) -> Segment | None:
    """The next piece for this connection (same file, same worker), or None after giving the connection back.
    It stops when the file is complete (and is then finished here), stops running, or the run must shed
    requests (a 429's pause)."""
    now = time.monotonic()
    go_on = run.scheduler.may_continue() and not run.cancel.is_set()  # asked first: the scheduler's lock is
    with task.lock:  # taken before a file's (Task.join), never after
        ledger = task.ledger
        assert ledger is not None
        ledger.release(done)
        piece = None
        if go_on and task.state is State.RUNNING and task.ranges is RangeSupport.YES and task.retry_at <= now:
            piece = ledger.claim(ledger.piece_size(task.speed.per_connection, task.connections))
        complete = piece is None and ledger.complete and task.try_move(State.VERIFYING)  # exactly one finishes
    if piece is not None:
        return piece
    run.scheduler.connection_done(task)
    if complete:
        finish(run, task)
    return None


def _range_support(run: Transfers, task: Task, segment: Segment, status: int) -> Segment:
    if status == 200:  # the whole body: the server ignores Range
        if task.ranges is RangeSupport.YES:
            raise Transient("the server ignored Range this time", blame=1)
        return _one_stream(run, task)
    if task.ranges is RangeSupport.UNKNOWN:
        task.ranges = RangeSupport.YES
        run.scheduler.wake()  # other connections may join now
    return segment


def _one_stream(run: Transfers, task: Task) -> Segment:
    """The server sent the whole body: forget the ranges, write it front to back on this connection."""
    with task.lock:
        assert task.ledger is not None and task.hash_job is not None
        task.ledger.reset()
        segment = task.ledger.claim(allow_split=False)
        task.ranges = RangeSupport.NO
        task.resumed = 0
        task.hash_job.abandoned = True
        task.hash_job = _hash_job(task, task.ledger)
        run.written(task, 0)
    assert segment is not None
    return segment


def _write(run: Transfers, task: Task, segment: Segment, response: httpx2.Response, endpoint: str) -> None:
    file, fd, ledger, job = task.file, task.fd, task.ledger, task.hash_job
    assert fd is not None and ledger is not None and job is not None
    received = 0
    try:
        for chunk in chunks(response):
            run.check_cancelled()
            if not run.mirrors.healthy(endpoint):
                break  # dropped for the run: this range's rest is fetched from the others (_spread.py)
            with task.lock:
                room = segment.end - segment.position
                if room <= 0:
                    break  # another connection took over the rest of this range
                if len(chunk) > room:
                    if segment.end == file.size:
                        raise too_long(task)
                    chunk = chunk[:room]
                pwrite(fd, chunk, segment.position)
                if task.journal is not None:
                    task.journal.record(segment.position, segment.position + len(chunk))
                ledger.record(segment, len(chunk))
                prefix = ledger.contiguous_prefix()
                run.written(task, prefix)
            received += len(chunk)
            run.spread.delivered(endpoint, len(chunk))
            _progress(run, task, len(chunk), prefix - job.content.length >= PrefixHasher.BLOCK or ledger.complete)
    finally:
        with task.lock:
            task.received += received


def _progress(run: Transfers, task: Task, nbytes: int, hash_more: bool) -> None:
    task.failures = 0  # bytes arrive: the file's retry budget starts again
    if task.speed.add(nbytes, task.connections) and task.connections < task.cap(
            run.options.connections_per_file, run.scheduler.split_below):
        run.scheduler.wake()  # idle workers may join this file now
    run.count(task.file, nbytes)
    if hash_more and task.hash_job is not None:
        run.hasher.request(task.hash_job)


def _segment_failed(run: Transfers, task: Task, segment: Segment, error: Transient) -> None:
    _release(run, task, segment)
    with task.lock:  # the failing read may have come after the file's last byte was written
        complete = task.ledger is not None and task.ledger.complete and task.try_move(State.VERIFYING)
    if complete:
        finish(run, task)
        return
    try:
        delay = run.retry_delay(task, error)
    except FileDownloadError as final:
        fail(run, task, final)
        return
    task.retry_at = time.monotonic() + delay


def _release(run: Transfers, task: Task, segment: Segment) -> None:
    with task.lock:
        if task.ledger is not None:
            task.ledger.release(segment)
    run.scheduler.connection_done(task)


def finish(run: Transfers, task: Task) -> None:
    """Every byte is written: wait for the hash, then publish, or discard and fetch once more."""
    job = task.hash_job
    assert job is not None and task.partial is not None
    run.hasher.request(job)
    while not job.done.wait(0.2):
        run.check_cancelled()
    close(task)
    if job.error is not None:
        raise FileDownloadError(task.file.path, f"{task.file.path}: cannot read the partial file back to verify "
                                f"it ({job.error}).", hint="Check the disk; the partial file is kept.")
    problem = mismatch(job.content)
    if problem is not None:
        _mismatch(run, task, VerificationError(task.file.path, f"{task.file.path}: {problem}"))
        return
    with task.lock:
        if task.journal is not None:
            task.journal.close()
        _resume.state_path(task.partial).unlink(missing_ok=True)
    run.destination.on_verified(task.file, task.partial, task.received)
    with task.lock:
        task.move(State.PUBLISHED)
    run.finish(task, task.received)


def _mismatch(run: Transfers, task: Task, error: VerificationError) -> None:
    assert task.partial is not None
    with task.lock:
        if task.journal is not None:
            task.journal.close()
    _resume.discard(task.partial)
    if task.verify_attempt >= 2:
        fail(run, task, twice(error))
        return
    run.sink.handle(FileRetried(task.file.path, error.message, discarded=task.file.size))
    with task.lock:
        task.move(State.FAILED)  # this attempt; a fresh task fetches the file again
    run.scheduler.replace(task, task.again())


def fail(run: Transfers, task: Task, error: BaseException) -> None:
    """The file failed: exactly one connection gets here (it claims FAILED), stops the others, posts it."""
    with task.lock:
        if task.state in (State.RUNNING, State.VERIFYING) and task.journal is not None and task.ledger is not None:
            try:
                task.journal.compact(task.ledger.done)
            except OSError:
                pass
        if not task.try_move(State.FAILED):
            return
        if task.ledger is not None:
            for segment in task.ledger.active:
                segment.end = segment.position  # stop its other connections
    close(task)
    run.finish(task, error)


def close(task: Task) -> None:
    """Close the partial's descriptor (once, whoever calls)."""
    with task.lock:
        if task.hash_job is not None and not task.hash_job.done.is_set():
            task.hash_job.abandoned = True  # the hasher must not read a descriptor number that may be reused
        fd, task.fd = task.fd, None
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass

