"""Disk primitives every writer shares: write-then-rename, positioned reads and writes, storage errors.

`write_atomically` is the one way hfget replaces a small file (a ref, a resume sidecar, hfget.lock): a unique
temporary name in the same folder, then `os.replace`, so a reader sees the old or the new content, never half,
and two writers never share a temporary file.
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from pathlib import Path

from ._errors import StorageError


def write_atomically(path: Path, text: str, *, tail: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(text.encode() + tail)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_size(path: Path | str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def storage_error(error: OSError, where: Path, *, action: str = "write") -> StorageError:
    """An OSError at `where`, as the one-line StorageError the user sees (full disk named as such)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"No space left on the device while writing {where}.",
                            hint="Free some space, then run the same command again: partial files are kept.")
    return StorageError(f"Cannot {action} {where}: {error.strerror or error}.",
                        hint="Check the permissions and free space of the target folder.")


if hasattr(os, "pwrite"):
    pwrite, pread = os.pwrite, os.pread
else:  # Windows: seek and write under one lock
    _POSITIONED = threading.Lock()

    def pwrite(fd: int, data: bytes | memoryview, offset: int, /) -> int:  # type: ignore[misc]
        with _POSITIONED:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.write(fd, data)

    def pread(fd: int, size: int, offset: int, /) -> bytes:
        with _POSITIONED:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, size)


def pread_into(fd: int, buffer: memoryview, offset: int) -> int:
    """Read into `buffer` from `offset` (a buffer kept by its reader: no new block of memory a read); the bytes
    read, 0 at the end of the file."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buffer], offset)
    data = pread(fd, len(buffer), offset)  # Windows has no preadv
    buffer[:len(data)] = data
    return len(data)
