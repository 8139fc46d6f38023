"""A small file: one GET, written front to back into its partial, hashed as it arrives, resumed from its length.

A transient failure sends the file back to the queue (its worker is freed) with the delay the retry policy
chose; a hash mismatch discards the partial and fetches once more; a second mismatch fails the file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import _resume
from ._diskio import pwrite
from ._errors import FileDownloadError, VerificationError
from ._events import FileRetried, FileStarted
from ._exchange import Transient, check_reply, chunks, sent_by
from ._task import State, Task
from ._verify import ContentHash, mismatch

if TYPE_CHECKING:
    from ._transfer import Transfers


def fetch(run: Transfers, task: Task) -> None:
    """Fetch, verify and publish `task`'s file, or put it back in the queue to retry later."""
    if not run.own(task):
        return
    if task.state is State.QUEUED:
        task.move(State.RUNNING)
    try:
        _fetch_verified(run, task)
    except Transient as error:
        task.received += error.received
        run.scheduler.requeue(task, run.retry_delay(task, error))
        return
    assert task.partial is not None
    run.destination.on_verified(task.file, task.partial, task.received)
    task.move(State.PUBLISHED)
    run.finish(task, task.received)


def _fetch_verified(run: Transfers, task: Task) -> None:
    """Stream until the partial holds the whole file with the right hash (a mismatch is fetched once more)."""
    assert task.partial is not None
    while True:
        content = _stream(run, task)
        problem = mismatch(content)
        if problem is None:
            return
        _resume.discard(task.partial)
        error = VerificationError(task.file.path, f"{task.file.path}: {problem}")
        if task.verify_attempt >= 2:
            raise twice(error)
        task.verify_attempt += 1
        run.sink.handle(FileRetried(task.file.path, error.message))


def _stream(run: Transfers, task: Task) -> ContentHash:
    """One GET into the partial, opened once: the descriptor says how much a resumed partial holds, and the same
    descriptor takes the body (a fresh file costs an open, an fstat, the writes and a close: each call here is a
    GIL hand-off among 32 workers, and two opens, a stat, seeks and a truncate per file showed in the profile)."""
    partial = task.partial
    assert partial is not None
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)  # as open(): the umask
    try:
        return _stream_into(run, task, fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _stream_into(run: Transfers, task: Task, fd: int, held: int) -> ContentHash:
    file, partial = task.file, task.partial
    assert partial is not None
    content = ContentHash(file)
    offset = held if held <= file.size else 0  # a longer partial is not this file's: start again
    if offset:
        content.update_from_file(partial, offset)
    if task.first_time("started"):  # here, where the partial's length is known: one stat per file, not two
        run.sink.handle(FileStarted(file.path, file.size, offset))
    if offset == file.size:
        return content
    endpoint = run.mirrors.current
    response = run.exchange.open(file, task.link_to(endpoint), f"bytes={offset}-" if offset else None, endpoint)
    received = 0
    try:
        start = check_reply(response, file, offset, None)
        if start == 0 and offset:
            content = ContentHash(file)  # the server ignored Range: start again
        if held != start:
            os.ftruncate(fd, start)
        run.written(task, start)
        for chunk in chunks(response):
            run.check_cancelled()
            if content.length + len(chunk) > file.size:
                raise too_long(task)
            pwrite(fd, chunk, content.length)
            content.update(chunk)
            run.written(task, content.length)
            received += len(chunk)
            run.count(file, len(chunk))
    except Transient as error:
        error.received += received
        sent_by(endpoint, error)  # a body cut mid-way counts against the mirror that sent it
        raise
    finally:
        response.close()
    task.received += received
    if content.length < file.size:
        raise Transient(f"connection closed at {content.length} of {file.size} bytes", endpoint=endpoint)
    return content


def twice(error: FileDownloadError) -> VerificationError:
    return VerificationError(error.path, f"{error.message}; fetched twice, discarded.",
                             hint="The endpoint serves wrong bytes: try another --mirror.")


def too_long(task: Task) -> FileDownloadError:
    file = task.file
    return FileDownloadError(file.path, f"{file.path}: the server sent more than the {file.size} bytes listed; "
                             "discarded.")
