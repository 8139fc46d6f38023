"""Content hashes the listing promises: sha256 for LFS files, git blob sha1 for the others (§2), and the threads
that hash large files beside the network.

A `ContentHash` is fed bytes in order, as they are written, so verification costs no second read of the
file; on resume the bytes already on disk are fed first (`update_from_file`).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._diskio import pread_into
from ._models import RemoteFile

_READ_SIZE = 1 << 20


class ContentHash:
    def __init__(self, file: RemoteFile) -> None:
        self.file = file
        if file.lfs_sha256:
            self.expected = file.lfs_sha256.lower()
            self._hash = hashlib.sha256()
        else:
            self.expected = file.blob_id.lower()
            self._hash = hashlib.sha1(b"blob %d\0" % file.size)
        self.length = 0

    @property
    def algorithm(self) -> str:
        return self._hash.name

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self.length += len(data)

    def update_from_file(self, path: Path, length: int) -> None:
        """Feed the first `length` bytes of `path` (a partial file being resumed)."""
        with open(path, "rb") as f:
            remaining = length
            while remaining:
                chunk = f.read(min(_READ_SIZE, remaining))
                if not chunk:
                    raise OSError(f"{path} is shorter than {length} bytes")
                self.update(chunk)
                remaining -= len(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def matches(self) -> bool:
        return self.length == self.file.size and self.hexdigest() == self.expected


def check_file(file: RemoteFile, path: Path) -> str | None:
    """What is wrong with the file at `path` (its size, its hash, or it cannot be read); None if it is good."""
    content = ContentHash(file)
    try:
        size = path.stat().st_size
        if size != file.size:
            return f"size {size} bytes, the listing says {file.size}"
        content.update_from_file(path, file.size)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    return mismatch(content)


@dataclass(eq=False)
class HashJob:
    """A large file being hashed beside the network, from its contiguous written prefix (see PrefixHasher)."""

    fd: int
    content: ContentHash
    prefix: Callable[[], int]  # bytes from offset 0 that are written so far
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None  # reading the partial back failed (or a bug): the file fails, nobody hangs
    abandoned: bool = False  # the partial was reset (a server that ignored Range): a new job replaces this one
    queued: bool = False  # waiting for a thread (PrefixHasher's lock guards these three)
    running: bool = False  # a thread is hashing it
    dirty: bool = False  # a request came while it was running: the thread takes it up again when done


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container or `taskset` may give it fewer than the
    machine has), where the system says; else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on this system (macOS, Windows)
        return os.cpu_count() or 1


class PrefixHasher:
    """Threads that hash each large file's contiguous written prefix from the page cache as it grows, so
    verification costs no second pass at the end (hashlib releases the GIL: they run beside the network threads).

    One thread per core, up to `MAX_THREADS`: the pieces of a file in flight finish together at its end (_pieces.py),
    so each file ends with a backlog to hash, and files fetched side by side end together (measured: 2 files of 512
    MiB, 25 MB/s per connection, 0.35 s from the last byte to both files verified with one thread). A file is
    hashed by one thread at a time (a hash is sequential): a request for a file being hashed marks it `dirty`, and
    the thread hashing it goes on. The threads start with the first request (a run of small files needs none).

    A job is done when its whole file is hashed, or when reading it back failed (`error` is then set): a
    failure never leaves a waiter hanging."""

    BLOCK = 4 << 20  # a file's prefix grows by this much before its connections ask for it to be hashed
    READ = _READ_SIZE  # bytes a thread reads back at a time, into the one buffer it keeps (a new 4 MiB block per
    # read, with the last one still held while it was read, was 8 MiB of the transfer's peak memory)
    MAX_THREADS = 4

    def __init__(self, threads: int | None = None) -> None:
        count = threads or min(self.MAX_THREADS, usable_cores())
        self._queue: queue.SimpleQueue[HashJob | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True, name=f"hfget-hash-{n}")
                         for n in range(count)]
        self._started = False

    def stop(self) -> None:
        """The run is over (every file's outcome is in) or cancelled: the threads end, and none starts after this. A
        job requested after it is never hashed; its waiter (_large.finish) is then unwound by the cancellation,
        which Transfers._stop sets before calling this."""
        with self._lock:
            started, self._started = self._started, True
        if started:
            for _ in self._threads:
                self._queue.put(None)

    def request(self, job: HashJob) -> None:
        """Hash what has been written since last time (a no-op if the job is already waiting for a thread)."""
        with self._lock:
            if job.running:
                job.dirty = True
                return
            if job.queued:
                return
            job.queued = True
            if not self._started:
                self._started = True
                for thread in self._threads:
                    thread.start()
        self._queue.put(job)

    def _loop(self) -> None:
        buffer = memoryview(bytearray(self.READ))  # the thread's one read buffer, for all its files
        while (job := self._queue.get()) is not None:
            with self._lock:
                job.queued, job.running, job.dirty = False, True, False
            try:
                self._advance(job, buffer)
            except Exception as error:  # an OSError, or a bug: either way the waiter must hear of it
                job.error = error
                job.done.set()
            with self._lock:
                job.running = False
                again = job.dirty and not job.done.is_set()
                job.dirty, job.queued = False, again
            if again:
                self._queue.put(job)

    def _advance(self, job: HashJob, buffer: memoryview) -> None:
        content = job.content
        while (target := job.prefix()) > content.length and not job.abandoned:
            got = pread_into(job.fd, buffer[:min(len(buffer), target - content.length)], content.length)
            if not got:
                raise OSError(f"the partial file ends at {content.length} bytes")
            content.update(buffer[:got])
        if content.length >= content.file.size:
            job.done.set()


def mismatch(content: ContentHash) -> str | None:
    """What is wrong with hashed content, in words (the size or the hash); None if it matches the listing."""
    if content.length != content.file.size:
        return f"size {content.length} bytes, the listing says {content.file.size}"
    if content.hexdigest() != content.expected:
        return f"{content.algorithm} {content.hexdigest()[:12]}… does not match the listing's {content.expected[:12]}…"
    return None
