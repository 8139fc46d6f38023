"""The resume sidecar of a multi-connection download: which byte ranges of the partial file are written.

`<partial minus .incomplete>.ranges` is a journal: one JSON header line, {"version": 2, "size": N, "etag": "..."},
then one 16-byte record per completed write (start and end, half-open, two little-endian uint64), appended with
O_APPEND as each write to the partial returns. A run killed at any instant therefore loses at most the bytes in
flight, with no fsync per write (the records are in the page cache with the bytes they describe, and both
survive the death of the process). The journal is compacted (header plus the merged ranges, written to a
temporary name and renamed) when it is opened and when a run stops, so it stays small. It never lists a byte
whose write had not returned, so it understates the partial file, never overstates it. It is trusted only when
its version, size and etag match the listing; anything else means "start this file again". Version 1 (one JSON
document with a "done" list) is still read.

A partial file with no sidecar was written front to back (a single-connection download): its length is
what is done. Who owns a partial, and parking it between runs, is _ownership.py's business.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from ._diskio import write_atomically
from ._models import RemoteFile
from ._pieces import Range, merge

VERSION = 2
_RECORD = struct.Struct("<QQ")


def state_path(partial: Path) -> Path:
    return partial.with_name(partial.name.removesuffix(".incomplete") + ".ranges")


def load(partial: Path, file: RemoteFile) -> list[Range]:
    """The ranges of `partial` already written for `file` (empty when nothing can be trusted)."""
    try:
        on_disk = partial.stat().st_size
    except FileNotFoundError:
        return []
    try:
        data = state_path(partial).read_bytes()
    except FileNotFoundError:
        return [(0, on_disk)] if 0 < on_disk <= file.size else []
    except OSError:
        return []
    ranges = _parse(data, file)
    if ranges is None or any(a < 0 or b > min(file.size, on_disk) or a > b for a, b in ranges):
        return []
    return merge(ranges)


def _parse(data: bytes, file: RemoteFile) -> list[Range] | None:
    header, newline, records = data.partition(b"\n")
    try:
        state = json.loads(header)
        if state["size"] != file.size or state["etag"] != file.etag:
            return None
        if state["version"] == 1 and not newline:
            return [(int(a), int(b)) for a, b in state["done"]]
        if state["version"] != VERSION:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    usable = len(records) - len(records) % _RECORD.size  # a record cut short by a kill is ignored
    return [_RECORD.unpack_from(records, i) for i in range(0, usable, _RECORD.size)]


class Journal:
    """The open sidecar of one partial: `record` each completed write, `compact` to rewrite it small."""

    def __init__(self, partial: Path, file: RemoteFile, done: list[Range]) -> None:
        self.partial, self.file = partial, file
        self._fd: int | None = None
        self.compact(done)

    def compact(self, done: list[Range]) -> None:
        """Rewrite the journal as the header and `done` (atomically), and append to the new one from now on."""
        path = state_path(self.partial)
        header = json.dumps({"version": VERSION, "size": self.file.size, "etag": self.file.etag})
        body = b"".join(_RECORD.pack(a, b) for a, b in merge(done))
        write_atomically(path, header + "\n", tail=body)
        self.close()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def record(self, start: int, end: int) -> None:
        if self._fd is not None and end > start:
            os.write(self._fd, _RECORD.pack(start, end))

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    state_path(partial).unlink(missing_ok=True)
